using System;
using System.Collections.Generic;
using AlexNet.Aot.Generator.Model;
using AlexNet.Aot.Generator.Planning;
using static AlexNet.Aot.Generator.Emit.Format;

namespace AlexNet.Aot.Generator.Emit;

/// <summary>
/// Emits the training kernels of a model: per layer line, one class per operation that the trainer runs (ReLU, LRN,
/// max, average and adaptive average pooling, batch norm in training mode, dropout) plus the convolution's or dense
/// layer's products (<see cref="ProductEmitter"/>) and bias gradient and a convolution's column gather (im2col) and
/// scatter (col2im), each with its shapes, windows and constants compiled in and one copy per rung of the
/// ISA ladder; and per model, the table through which <c>ModelInfo.Training</c> hands them to the trainer. The
/// arithmetic is the runtime reference operations' (runtime Training/NormPoolOps.cs and LayerOps.cs), in the same
/// order, so that the results are the same bit for bit.
/// </summary>
internal static class TrainingEmitter
{
    private const string Ns = "global::AlexNet.Aot.Training.";

    /// <summary>The name of the per-model table class, nested in the network class.</summary>
    public const string TableClass = "GeneratedTraining";

    /// <summary>Every training file of one model: one per layer and the table.</summary>
    public static IEnumerable<(string HintName, string Source)> Emit(ModelPlan plan, string ns)
    {
        var table = new List<List<string?>>();
        foreach (LayerPlan l in plan.Layers)
        {
            var ops = new List<string?>();
            string source = EmitLayer(plan, l, ns, ops);
            table.Add(ops);
            yield return (plan.Spec.ClassName + "." + l.Spec.Name + ".train.g.cs", source);
        }
        yield return (plan.Spec.ClassName + ".train.g.cs", EmitTable(plan, ns, table));
    }

    /// <summary>The class that holds layer <paramref name="l"/>'s training kernels.</summary>
    private static string LayerClass(LayerPlan l) => char.ToUpperInvariant(l.Spec.Name[0]) + l.Spec.Name.Substring(1) + "Training";

    private static string EmitTable(ModelPlan plan, string ns, List<List<string?>> table)
    {
        var w = new SourceWriter();
        Emitter.Header(w);
        using (w.Block("namespace " + ns))
        using (w.Block($"partial class {plan.Spec.ClassName}"))
        {
            w.Line("/// <summary>");
            w.Line("/// The generated training kernels of every operation of this model, by layer and operation index (operation 0 is the");
            w.Line("/// convolution or dense layer: its products, its bias gradient and a convolution's column gather and scatter).");
            w.Line("/// <c>Metadata.Training</c> points here, so a <c>Trainer</c> runs these kernels instead of its reference operations.");
            w.Line("/// Every kernel object is created once, with the table: a training step only makes virtual calls.");
            w.Line("/// </summary>");
            w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({S(Emitter.GeneratorName)}, {S(Emitter.GeneratorVersion)})]");
            using (w.Block($"private sealed class {TableClass} : {Ns}ModelTrainingKernels"))
            {
                w.Line("/// <summary>The one instance (<c>Metadata.Training</c>).</summary>");
                w.Line($"public static readonly {TableClass} Instance = new {TableClass}();");
                w.Line();
                w.Line($"private readonly {Ns}OperationKernels?[][] _ops = new {Ns}OperationKernels?[][]");
                w.Line("{");
                w.Indent();
                for (int i = 0; i < table.Count; i++)
                {
                    var items = new List<string>();
                    foreach (string? k in table[i]) items.Add(k is null ? "null" : $"new {LayerClass(plan.Layers[i])}.{k}()");
                    w.Line($"new {Ns}OperationKernels?[] {{ {string.Join(", ", items)} }}, // {plan.Layers[i].Spec.Name}");
                }
                w.Dedent();
                w.Line("};");
                w.Line();
                w.Line("/// <inheritdoc />");
                w.Line($"public override {Ns}OperationKernels? Find(int layer, int operation) =>");
                w.Line("    (uint)layer < (uint)_ops.Length && (uint)operation < (uint)_ops[layer].Length ? _ops[layer][operation] : null;");
                w.Line();
                w.Line("private static readonly SoftmaxLoss s_loss = new SoftmaxLoss();");
                w.Line();
                w.Line("/// <inheritdoc />");
                w.Line($"public override {Ns}SoftmaxCrossEntropyKernels? Loss => s_loss;");
                w.Line();
                EmitLoss(w, plan.Classes);
            }
        }
        return w.ToString();
    }

    /// <summary>
    /// The softmax cross-entropy with the class count compiled in: per image, the maximum, Σ exp(z - max) in double, the
    /// loss log-sum-exp - z[label], the label's rank (top-1, top-5) and the gradient (softmax - onehot) / batch, in the
    /// runtime trainer's order and precision (its <c>Score</c>), so every result is the same bit for bit.
    /// </summary>
    private static void EmitLoss(SourceWriter w, int classes)
    {
        Summary(w,
            $"Softmax cross-entropy over {I(classes)} classes: loss = log Σ exp(z) - z[label] per image (the maximum subtracted, sums in",
            "double), top-1 and top-5 counts (ties to the lower class), and dL/dz = (softmax(z) - onehot) / batch.");
        using (w.Block($"private sealed class SoftmaxLoss : {Ns}SoftmaxCrossEntropyKernels"))
        {
            w.Line($"private const int Classes_ = {I(classes)};");
            w.Line();
            w.Line("/// <inheritdoc />");
            w.Line("public override int Classes => Classes_;");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override double Score(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int batch, Span<float> gradient, out int correct, out int top5)"))
            {
                w.Line("if (batch < 0 || logits.Length < batch * Classes_ || labels.Length < batch || (gradient.Length != 0 && gradient.Length < batch * Classes_))");
                w.Line("    throw new ArgumentException(\"A span is shorter than the batch needs.\");");
                w.Line("double loss = 0;");
                w.Line("correct = 0;");
                w.Line("top5 = 0;");
                using (w.Block("for (int b = 0; b < batch; b++)"))
                {
                    w.Line("ReadOnlySpan<float> z = logits.Slice(b * Classes_, Classes_);");
                    w.Line("int label = labels[b];");
                    w.Line("if ((uint)label >= Classes_) throw new ArgumentOutOfRangeException(nameof(labels), label, \"A label is outside the model's classes.\");");
                    w.Line("float max = float.NegativeInfinity;");
                    w.Line("for (int c = 0; c < Classes_; c++) if (z[c] > max) max = z[c];");
                    w.Line("double sum = 0;");
                    w.Line("for (int c = 0; c < Classes_; c++) sum += Math.Exp(z[c] - max);");
                    w.Line("double lse = max + Math.Log(sum);");
                    w.Line("loss += lse - z[label];");
                    w.Line("int above = 0;");
                    w.Line("for (int c = 0; c < Classes_; c++)");
                    w.Line("    if (z[c] > z[label] || (z[c] == z[label] && c < label)) above++;");
                    w.Line("if (above == 0) correct++;");
                    w.Line("if (above < 5) top5++;");
                    using (w.Block("if (gradient.Length != 0)"))
                    {
                        w.Line("Span<float> g = gradient.Slice(b * Classes_, Classes_);");
                        w.Line("for (int c = 0; c < Classes_; c++)");
                        w.Line("    g[c] = (float)((Math.Exp(z[c] - lse) - (c == label ? 1 : 0)) / batch);");
                    }
                }
                w.Line("return loss;");
            }
        }
    }

    /// <summary>A per-image shape as the runtime's <c>OperationKernels</c> takes it (C, H, W; features as F, 1, 1).</summary>
    private static string ShapeArray(int c, int h, int wd) => IntArray(new[] { c, h, wd });

    private static string EmitLayer(ModelPlan plan, LayerPlan l, string ns, List<string?> ops)
    {
        LayerSpec s = l.Spec;
        var w = new SourceWriter();
        Emitter.Header(w);
        using (w.Block("namespace " + ns))
        using (w.Block($"partial class {plan.Spec.ClassName}"))
        {
            w.Line("/// <summary>");
            w.Line($"/// Training kernels of layer {X(s.Name)} (spec line {I(s.Position.Line + 1)}): <c>{X(s.Text)}</c>.");
            w.Line("/// One class for the convolution or dense layer (its products and bias gradient) and one per operation after it, with");
            w.Line("/// this line's shapes compiled in. Each kernel computes exactly what the runtime's reference operation does, in the same order (the");
            w.Line("/// trainer's tests compare them bit for bit), and dispatches once per call on the ISA ladder:");
            w.Line("/// AVX-512 (Vector512) → AVX2 (Vector256) → NEON/SSE (Vector128) → scalar.");
            w.Line("/// </summary>");
            w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({S(Emitter.GeneratorName)}, {S(Emitter.GeneratorVersion)})]");
            using (w.Block($"internal static class {LayerClass(l)}"))
            {
                // The product's bias gradient.
                if (l.IsConv)
                {
                    EmitConv(w, l);
                    ops.Add("Conv");
                }
                else
                {
                    EmitDense(w, l, l.Index == 0 ? ShapeArray(plan.Spec.InputC, plan.Spec.InputH, plan.Spec.InputW)
                        : ShapeArray(plan.Layers[l.Index - 1].FinalC, plan.Layers[l.Index - 1].FinalH, plan.Layers[l.Index - 1].FinalW));
                    ops.Add("Dense");
                }
                // The operations after it, walked with the shapes Emitter.OperationInfos gives them.
                int c = l.OutC, h = l.OutH, wd = l.OutW;
                for (int i = 0; i < s.Ops.Count; i++)
                {
                    OpSpec op = s.Ops[i];
                    string name = "Op" + I(i + 1) + op.Kind;
                    switch (op.Kind)
                    {
                        case OpKind.Relu:
                            w.Line();
                            EmitRelu(w, name, op, c, h, wd);
                            ops.Add(name);
                            break;
                        case OpKind.Lrn:
                            w.Line();
                            EmitLrn(w, name, op, c, h, wd);
                            ops.Add(name);
                            break;
                        case OpKind.MaxPool:
                        {
                            int oh = Planner.PoolOut(h, op), ow = Planner.PoolOut(wd, op);
                            w.Line();
                            EmitMaxPool(w, name, op, c, h, wd, oh, ow);
                            ops.Add(name);
                            h = oh;
                            wd = ow;
                            break;
                        }
                        case OpKind.AvgPool:
                        case OpKind.AdaptiveAvgPool:
                        {
                            bool adaptive = op.Kind == OpKind.AdaptiveAvgPool;
                            int oh = adaptive ? op.OutH : Planner.PoolOut(h, op), ow = adaptive ? op.OutW : Planner.PoolOut(wd, op);
                            if (adaptive && oh == h && ow == wd) ops.Add(null); // the identity: the trainer skips it
                            else
                            {
                                w.Line();
                                EmitAvgPool(w, name, op, adaptive, c, h, wd, oh, ow);
                                ops.Add(name);
                            }
                            h = oh;
                            wd = ow;
                            break;
                        }
                        case OpKind.BatchNorm:
                            w.Line();
                            EmitBatchNorm(w, name, op, c, h, wd);
                            ops.Add(name);
                            break;
                        case OpKind.Dropout:
                            w.Line();
                            EmitDropout(w, name, op, c, h, wd);
                            ops.Add(name);
                            break;
                        default:
                            ops.Add(null); // flatten and softmax pass data through (the loss applies the softmax)
                            break;
                    }
                }
            }
        }
        return w.ToString();
    }

    // ------------------------------------------------------------------ helpers

    private static void Summary(SourceWriter w, params string[] lines)
    {
        w.Line("/// <summary>");
        foreach (string line in lines) w.Line("/// " + line);
        w.Line("/// </summary>");
    }

    /// <summary>Opens a kernel method, compiled at full optimization from its first call: each kernel is specialized to
    /// one layer and called a few times per step, so under tiered compilation it would otherwise spend the first dozens
    /// of steps as unoptimized code (NativeAOT compiles it fully anyway).</summary>
    private static SourceWriter.Scope Method(SourceWriter w, string header)
    {
        w.Line("[MethodImpl(MethodImplOptions.AggressiveOptimization)]");
        return w.Block(header);
    }

    private static void Generated(SourceWriter w) =>
        w.Line($"[global::System.CodeDom.Compiler.GeneratedCode({S(Emitter.GeneratorName)}, {S(Emitter.GeneratorVersion)})]");

    /// <summary>The widest vector of the ladder no wider than <paramref name="isa"/>'s whose lanes fit in <paramref name="n"/>
    /// (a short row on the AVX-512 rung runs 8 or 4 lanes rather than none), or the scalar rung.</summary>
    private static IsaPath Fit(IsaPath isa, int n)
    {
        foreach (IsaPath p in IsaPath.Ladder)
            if (p.Lanes <= isa.Lanes && (p.IsScalar || p.Lanes <= n)) return p;
        return isa;
    }

    /// <summary>Replaces <c>VEC</c> by the rung's vector class (Vector512 ...) and <c>LANES</c> by its width.</summary>
    private static string V(string code, IsaPath isa) => code.Replace("VEC", isa.Vector).Replace("LANES", I(isa.Lanes));

    // ------------------------------------------------------------------ bias gradients

    private static void EmitConv(SourceWriter w, LayerPlan l)
    {
        LayerSpec sp = l.Spec;
        int plane = l.OutH * l.OutW;
        Summary(w,
            $"The convolution's training kernels ({I(l.CinG)} input channels per group, {I(l.InH)}x{I(l.InW)} in, {I(sp.KernelH)}x{I(sp.KernelW)} window,",
            $"stride {I(sp.Stride)}, padding {I(sp.Padding)}, {I(l.OutH)}x{I(l.OutW)} out): the column gather and scatter, the products (forward,",
            "input and weight gradients, and Winograd's point products for a stride-1 3x3 or 5x5 layer), and the bias gradient db[o] = Σ over the images and the output plane of dy[o] (used when the convolution has a",
            "bias): floats widened to double as they are loaded and summed in double vector lanes (the reference sums in double",
            "too, in another grouping: the two agree to the last float bit but in rare ties).");
        Generated(w);
        using (w.Block($"internal sealed class Conv : {Ns}ConvKernels"))
        {
            w.Line($"private const int Plane = {I(plane)};");
            EmitGatherScatter(w, l);
            w.Line();
            ProductEmitter.EmitConv(w, l);
            w.Line();
            w.Line($"public Conv() : base({ShapeArray(l.InC, l.InH, l.InW)}, {ShapeArray(l.OutC, l.OutH, l.OutW)}, {I(l.Groups)}, {I(sp.KernelH)}, {I(sp.KernelW)}, {I(sp.Stride)}, {I(sp.Padding)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override double PlaneSums(ReadOnlySpan<float> dy, int images, int imageStride)"))
            {
                w.Line("ref float d = ref MemoryMarshal.GetReference(dy);");
                w.Line("double s = 0;");
                w.Line("for (int j = 0; j < images; j++)");
                w.Line("{");
                w.Line("    ref float p = ref Unsafe.Add(ref d, (nint)j * imageStride);");
                w.Indent();
                LayerEmitter.Ladder(w, isa => $"s += Sum{isa.Suffix}(ref p);");
                w.Dedent();
                w.Line("}");
                w.Line("return s;");
            }
            foreach (IsaPath isa0 in IsaPath.Ladder)
            {
                IsaPath isa = Fit(isa0, plane);
                w.Line();
                w.Line($"/// <summary>Σ of one plane, {X(isa0.Description)}{(isa == isa0 ? "" : $" (its {I(plane)} floats take {I(isa.Lanes)} at a time)")}.</summary>");
                using (Method(w, $"private static double Sum{isa0.Suffix}(ref float p)"))
                {
                    w.Line("int i = 0;");
                    w.Line("double s = 0;");
                    if (!isa.IsScalar)
                    {
                        w.Line(V("VEC<double> acc = VEC<double>.Zero;", isa));
                        w.Line(V("for (; i + LANES <= Plane; i += LANES)", isa));
                        w.Line("{");
                        w.Line(V("    VEC<float> v = VEC.LoadUnsafe(ref p, (nuint)i);", isa));
                        w.Line(V("    acc += VEC.WidenLower(v) + VEC.WidenUpper(v);", isa));
                        w.Line("}");
                        w.Line(V("s = VEC.Sum(acc);", isa));
                    }
                    w.Line("for (; i < Plane; i++) s += Unsafe.Add(ref p, i);");
                    w.Line("return s;");
                }
            }
        }
    }

    // ------------------------------------------------------------------ convolution gather and scatter

    /// <summary>Emits <paramref name="n"/> floats copied from <paramref name="src"/> to <paramref name="dst"/> (refs, not
    /// overlapping) with the widest vectors of <paramref name="isa0"/>'s rung that fit, the remainder by an overlapping last
    /// vector (a copy may write a float twice); a loop when there are more than four vectors.</summary>
    internal static void EmitCopy(SourceWriter w, IsaPath isa0, int n, string src, string dst)
    {
        IsaPath isa = Fit(isa0, n);
        if (isa.IsScalar)
        {
            w.Line($"for (int i = 0; i < {I(n)}; i++) Unsafe.Add(ref {dst}, i) = Unsafe.Add(ref {src}, i);");
            return;
        }
        int L = isa.Lanes, full = n / L;
        if (full > 4)
            w.Line(V($"for (nuint i = 0; i < {I(full * L)}; i += LANES) VEC.LoadUnsafe(ref {src}, i).StoreUnsafe(ref {dst}, i);", isa));
        else
            for (int v = 0; v < full; v++)
                w.Line(V($"VEC.LoadUnsafe(ref {src}, {I(v * L)}).StoreUnsafe(ref {dst}, {I(v * L)});", isa));
        if (n % L != 0)
            w.Line(V($"VEC.LoadUnsafe(ref {src}, {I(n - L)}).StoreUnsafe(ref {dst}, {I(n - L)});", isa));
    }

    /// <summary>Emits dst[0..n) += src[0..n), each float once: the widest vectors that fit, then narrower rungs, then scalars.</summary>
    private static void EmitAdd(SourceWriter w, IsaPath isa0, int n, string src, string dst)
    {
        int at = 0;
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            if (isa.IsScalar || isa.Lanes > isa0.Lanes) continue;
            int L = isa.Lanes, full = (n - at) / L;
            if (full == 0) continue;
            string add = V($"(VEC.LoadUnsafe(ref {dst}, IDX) + VEC.LoadUnsafe(ref {src}, IDX)).StoreUnsafe(ref {dst}, IDX);", isa);
            if (full > 4)
                w.Line(V($"for (nuint i = {I(at)}; i < {I(at + full * L)}; i += LANES) ", isa) + add.Replace("IDX", "i"));
            else
                for (int v = 0; v < full; v++) w.Line(add.Replace("IDX", I(at + v * L)));
            at += full * L;
        }
        if (n - at > 4) w.Line($"for (int i = {I(at)}; i < {I(n)}; i++) Unsafe.Add(ref {dst}, i) += Unsafe.Add(ref {src}, i);");
        else
            for (; at < n; at++) w.Line($"Unsafe.Add(ref {dst}, {I(at)}) += Unsafe.Add(ref {src}, {I(at)});");
    }

    /// <summary>The output positions [lo, hi) along one axis whose input position o·stride - pad + tap lies inside
    /// [0, inSize) (the runtime's ConvOp.ValidRange).</summary>
    private static (int Lo, int Hi) ValidRange(int tap, int inSize, int outSize, int stride, int pad)
    {
        int first = pad - tap, last = inSize - 1 + pad - tap;
        int lo = first <= 0 ? 0 : System.Math.Min(outSize, (first + stride - 1) / stride);
        int hi = last < 0 ? 0 : System.Math.Min(outSize, last / stride + 1);
        return (lo, hi < lo ? lo : hi);
    }

    /// <summary>
    /// The convolution's column gather (im2col) and scatter-add (col2im) with every shape compiled in: the runtime
    /// ConvOp's Im2Col and Col2Im, the same layouts and the same order of adds. The input is first laid out, in the
    /// scratch, so that every row of the column matrix is OH contiguous runs of OW floats: zero-padded (stride 1 with
    /// padding), or zero-padded and split by column phase (stride s &gt; 1: row iy, phase r holds padded columns r, r+s,
    /// ...). Stride 1 without padding reads the input in place.
    /// </summary>
    private static void EmitGatherScatter(SourceWriter w, LayerPlan l)
    {
        LayerSpec sp = l.Spec;
        int cin = l.CinG, h = l.InH, wd = l.InW, oh = l.OutH, ow = l.OutW, kh = sp.KernelH, kw = sp.KernelW, st = sp.Stride, pad = sp.Padding;
        int taps = kh * kw, k = cin * taps, hp = h + 2 * pad, wp = wd + 2 * pad;
        int len = (wp + st - 1) / st, rowLen = st == 1 ? wp : st * len, pplane = hp * rowLen;
        bool staged = st > 1 || pad > 0;
        int scratch = staged ? cin * pplane : 0;
        w.Line($"private const int CinG = {I(cin)}, H = {I(h)}, W = {I(wd)}, InPlane = {I(h * wd)};");
        w.Line($"private const int OH = {I(oh)}, OW = {I(ow)}, KH = {I(kh)}, KW = {I(kw)}, S = {I(st)}, Pad = {I(pad)};");
        w.Line($"/// <summary>Rows of the column matrix: (ci, ky, kx).</summary>");
        w.Line($"private const int K = {I(k)};");
        w.Line(st == 1
            ? $"/// <summary>The {(pad > 0 ? "zero-padded input's row length and plane (in the scratch)" : "input's row length and plane (read in place)")}.</summary>"
            : "/// <summary>One phase of a padded row (columns r, r+S, ...), a split row (S phases) and a split plane (in the scratch).</summary>");
        if (st > 1) w.Line($"private const int Len = {I(len)};");
        w.Line($"private const int RowLen = {I(rowLen)}, PPlane = {I(pplane)};");
        w.Line($"private const int Scratch = {I(scratch)};");
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line("public override int ScratchFloats => Scratch;");
        w.Line();
        w.Line("private static void Check(int x, int col, int ld, int scratch)");
        w.Line("{");
        w.Line("    if (x < CinG * InPlane || ld < Plane || col < (K - 1) * ld + Plane || scratch < Scratch)");
        w.Line("        throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
        w.Line("}");

        // ---- Gather
        w.Line();
        Summary(w,
            "im2col of one image's group: row (ci, ky, kx) of col, column oy·OW + ox, gets",
            $"x[ci][oy·{I(st)} - {I(pad)} + ky][ox·{I(st)} - {I(pad)} + kx], zero in the padding (the runtime's ConvOp.Im2Col).",
            staged
                ? (st == 1 ? "The input is copied once into the zeroed scratch with its padding around it, so that each row is OH plain"
                    : "The input is copied once into the zeroed scratch with its padding, each row split by column phase (ox·S + kx is")
                : "Each row is OH plain copies of OW floats from the input, no bounds to check.",
            staged
                ? (st == 1 ? "copies of OW floats with no bounds to check: pure data movement, so bit for bit the reference's."
                    : "phase kx mod S at ox + kx / S), so that each row is OH contiguous copies of OW floats.")
                : "Pure data movement, so bit for bit the reference's.");
        using (Method(w, "public override void Gather(ReadOnlySpan<float> x, Span<float> col, int ld, Span<float> scratch)"))
        {
            w.Line("Check(x.Length, col.Length, ld, scratch.Length);");
            if (staged) w.Line("scratch.Slice(0, Scratch).Clear();");
            w.Line("ref float xr = ref MemoryMarshal.GetReference(x);");
            w.Line("ref float c = ref MemoryMarshal.GetReference(col);");
            w.Line("ref float sc = ref MemoryMarshal.GetReference(scratch);");
            LayerEmitter.Ladder(w, isa => $"Gather{isa.Suffix}(ref xr, ref c, ld, ref sc);");
        }
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            w.Line();
            w.Line($"/// <summary>The gather, {X(isa.Description)}: the kx window unrolled, each tap one call of Rows{isa.Suffix}.</summary>");
            using (Method(w, $"private static void Gather{isa.Suffix}(ref float x, ref float col, nint ld, ref float scratch)"))
            {
                if (st == 1 && pad > 0)
                {
                    w.Line("for (int ci = 0; ci < CinG; ci++)");
                    w.Line("    for (int iy = 0; iy < H; iy++)");
                    w.Line("    {");
                    w.Line("        ref float s = ref Unsafe.Add(ref x, ci * InPlane + iy * W);");
                    w.Line("        ref float d = ref Unsafe.Add(ref scratch, ci * PPlane + (iy + Pad) * RowLen + Pad);");
                    w.Indent(); w.Indent();
                    EmitCopy(w, isa, wd, "s", "d");
                    w.Dedent(); w.Dedent();
                    w.Line("    }");
                    w.Line("ref float src = ref scratch;");
                }
                else if (st > 1)
                {
                    w.Line("for (int ci = 0; ci < CinG; ci++)");
                    w.Line("    for (int iy = 0; iy < H; iy++)");
                    w.Line("    {");
                    w.Line("        ref float s = ref Unsafe.Add(ref x, ci * InPlane + iy * W);");
                    w.Line("        ref float d = ref Unsafe.Add(ref scratch, ci * PPlane + (iy + Pad) * RowLen);");
                    w.Line("        for (int ix = 0; ix < W; ix++)");
                    w.Line("        {");
                    w.Line("            int xp = ix + Pad;");
                    w.Line("            Unsafe.Add(ref d, xp % S * Len + xp / S) = Unsafe.Add(ref s, ix);");
                    w.Line("        }");
                    w.Line("    }");
                    w.Line("ref float src = ref scratch;");
                }
                else w.Line("ref float src = ref x;");
                w.Line("for (int ci = 0; ci < CinG; ci++)");
                w.Line("    for (int ky = 0; ky < KH; ky++)");
                w.Line("    {");
                w.Line("        ref float s = ref Unsafe.Add(ref src, ci * PPlane + ky * RowLen);");
                w.Line("        ref float d = ref Unsafe.Add(ref col, (ci * KH + ky) * KW * ld);");
                for (int kx = 0; kx < kw; kx++)
                {
                    int off = st == 1 ? kx : kx % st * len + kx / st;
                    string sArg = off == 0 ? "ref s" : $"ref Unsafe.Add(ref s, {I(off)})";
                    string dArg = kx == 0 ? "ref d" : kx == 1 ? "ref Unsafe.Add(ref d, ld)" : $"ref Unsafe.Add(ref d, {I(kx)} * ld)";
                    w.Line($"        Rows{isa.Suffix}({sArg}, {dArg}); // kx = {I(kx)}");
                }
                w.Line("    }");
            }
            w.Line();
            w.Line($"/// <summary>One row of the column matrix: OH runs of OW floats, {I(st == 1 ? rowLen : st * rowLen)} floats apart in the source, {X(isa.Description)}.</summary>");
            w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
            using (w.Block($"private static void Rows{isa.Suffix}(ref float src, ref float dst)"))
            {
                w.Line("for (int oy = 0; oy < OH; oy++)");
                w.Line("{");
                w.Line($"    ref float s = ref Unsafe.Add(ref src, oy * {(st == 1 ? "RowLen" : "S * RowLen")});");
                w.Line("    ref float d = ref Unsafe.Add(ref dst, oy * OW);");
                w.Indent();
                EmitCopy(w, isa, ow, "s", "d");
                w.Dedent();
                w.Line("}");
            }
        }

        // ---- Scatter
        w.Line();
        if (st == 1)
            Summary(w,
                "col2im of one image's group: every element of row (ci, ky, kx), column oy·OW + ox, added onto",
                "dx[ci][oy - Pad + ky][ox - Pad + kx], rows in order and each row's runs in order (the runtime's ConvOp.Col2Im):",
                pad > 0 ? "onto the zeroed padded gradient in the scratch, whose inside is then copied to dx (zero before), so every"
                    : "straight onto dx (zero before), so every",
                "element gets the reference's sum, in the reference's order, bit for bit.");
        else
            Summary(w,
                "col2im of one image's group: every element of row (ci, ky, kx), column oy·OW + ox, added onto",
                $"dx[ci][oy·{I(st)} - {I(pad)} + ky][ox·{I(st)} - {I(pad)} + kx] where that is inside the image (the runtime's ConvOp.Col2Im):",
                "taps in order, each with its rows and columns inside the image compiled in, straight onto dx (zero before). The",
                "adds are S floats apart in dx, so scalar on every rung: the reference's sums in the reference's order, bit for bit.");
        using (Method(w, "public override void Scatter(ReadOnlySpan<float> col, int ld, Span<float> dx, Span<float> scratch)"))
        {
            w.Line("Check(dx.Length, col.Length, ld, scratch.Length);");
            if (st == 1 && pad > 0) w.Line("scratch.Slice(0, Scratch).Clear();");
            w.Line("ref float c = ref MemoryMarshal.GetReference(col);");
            w.Line("ref float d = ref MemoryMarshal.GetReference(dx);");
            if (st == 1)
            {
                w.Line("ref float sc = ref MemoryMarshal.GetReference(scratch);");
                LayerEmitter.Ladder(w, isa => $"Scatter{isa.Suffix}(ref c, ld, ref d, ref sc);");
            }
            else w.Line("ScatterStrided(ref c, ld, ref d);");
        }
        if (st == 1)
        {
            foreach (IsaPath isa in IsaPath.Ladder)
            {
                w.Line();
                w.Line($"/// <summary>The scatter, {X(isa.Description)}: the kx window unrolled, each tap one call of AddRows{isa.Suffix}.</summary>");
                using (Method(w, $"private static void Scatter{isa.Suffix}(ref float col, nint ld, ref float dx, ref float scratch)"))
                {
                    w.Line(pad > 0 ? "ref float dp = ref scratch;" : "ref float dp = ref dx;");
                    w.Line("for (int ci = 0; ci < CinG; ci++)");
                    w.Line("    for (int ky = 0; ky < KH; ky++)");
                    w.Line("    {");
                    w.Line("        ref float s = ref Unsafe.Add(ref col, (ci * KH + ky) * KW * ld);");
                    w.Line("        ref float d = ref Unsafe.Add(ref dp, ci * PPlane + ky * RowLen);");
                    for (int kx = 0; kx < kw; kx++)
                    {
                        string sArg = kx == 0 ? "ref s" : kx == 1 ? "ref Unsafe.Add(ref s, ld)" : $"ref Unsafe.Add(ref s, {I(kx)} * ld)";
                        string dArg = kx == 0 ? "ref d" : $"ref Unsafe.Add(ref d, {I(kx)})";
                        w.Line($"        AddRows{isa.Suffix}({sArg}, {dArg}); // kx = {I(kx)}");
                    }
                    w.Line("    }");
                    if (pad > 0)
                    {
                        w.Line("for (int ci = 0; ci < CinG; ci++)");
                        w.Line("    for (int iy = 0; iy < H; iy++)");
                        w.Line("    {");
                        w.Line("        ref float s = ref Unsafe.Add(ref dp, ci * PPlane + (iy + Pad) * RowLen + Pad);");
                        w.Line("        ref float d = ref Unsafe.Add(ref dx, ci * InPlane + iy * W);");
                        w.Indent(); w.Indent();
                        EmitCopy(w, isa, wd, "s", "d");
                        w.Dedent(); w.Dedent();
                        w.Line("    }");
                    }
                }
                w.Line();
                w.Line($"/// <summary>One row of the column gradient added onto OH runs of OW floats, {I(rowLen)} floats apart, {X(isa.Description)}.</summary>");
                w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
                using (w.Block($"private static void AddRows{isa.Suffix}(ref float src, ref float dst)"))
                {
                    w.Line("for (int oy = 0; oy < OH; oy++)");
                    w.Line("{");
                    w.Line("    ref float s = ref Unsafe.Add(ref src, oy * OW);");
                    w.Line("    ref float d = ref Unsafe.Add(ref dst, oy * RowLen);");
                    w.Indent();
                    EmitAdd(w, isa, ow, "s", "d");
                    w.Dedent();
                    w.Line("}");
                }
            }
        }
        else
        {
            w.Line();
            w.Line("/// <summary>The strided scatter: one call of Tap per tap (ky, kx) that reads inside the image, with the output rows");
            w.Line("/// [oyLo, oyHi) and columns [oxLo, oxLo + n) that do compiled in.</summary>");
            using (Method(w, "private static void ScatterStrided(ref float col, nint ld, ref float dx)"))
            {
                w.Line("for (int ci = 0; ci < CinG; ci++)");
                w.Line("{");
                w.Line("    ref float s = ref Unsafe.Add(ref col, ci * KH * KW * ld);");
                w.Line("    ref float d = ref Unsafe.Add(ref dx, ci * InPlane);");
                for (int ky = 0; ky < kh; ky++)
                {
                    (int oyLo, int oyHi) = ValidRange(ky, h, oh, st, pad);
                    for (int kx = 0; kx < kw; kx++)
                    {
                        (int oxLo, int oxHi) = ValidRange(kx, wd, ow, st, pad);
                        int n = oxHi - oxLo;
                        if (n <= 0 || oyHi <= oyLo) continue;
                        w.Line($"    Tap(ref Unsafe.Add(ref s, {I(ky * kw + kx)} * ld), ref d, {I(oyLo)}, {I(oyHi)}, {I(oxLo)}, {I(n)}, {I(ky)}, {I(kx)});");
                    }
                }
                w.Line("}");
            }
            w.Line();
            w.Line("/// <summary>Adds tap (ky, kx)'s row of the column gradient onto the input positions it read.</summary>");
            w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
            using (w.Block("private static void Tap(ref float src, ref float dc, int oyLo, int oyHi, int oxLo, int n, int ky, int kx)"))
            {
                w.Line("for (int oy = oyLo; oy < oyHi; oy++)");
                w.Line("{");
                w.Line("    ref float sr = ref Unsafe.Add(ref src, oy * OW + oxLo);");
                w.Line("    ref float d = ref Unsafe.Add(ref dc, (oy * S - Pad + ky) * W + oxLo * S - Pad + kx);");
                w.Line("    for (int ox = 0; ox < n; ox++) Unsafe.Add(ref d, ox * S) += Unsafe.Add(ref sr, ox);");
                w.Line("}");
            }
        }
    }

    private static void EmitDense(SourceWriter w, LayerPlan l, string inputShape)
    {
        Summary(w,
            $"The dense layer's training kernels ({I(l.GemmK)} inputs, {I(l.OutC)} features): the three products (forward, weight",
            "gradient, input gradient), and the bias gradient db[o] = Σ_b dy[b, o] over the batch (used when the layer has a bias):",
            "vectors run across features, each lane a double that adds its feature's dy image by image in batch order, the",
            "reference's sum per feature, bit for bit, several features at once.");
        Generated(w);
        using (w.Block($"internal sealed class Dense : {Ns}DenseKernels"))
        {
            w.Line($"private const int Features = {I(l.OutC)};");
            ProductEmitter.EmitDense(w, l);
            w.Line();
            w.Line($"public Dense() : base({inputShape}, {ShapeArray(l.OutC, 1, 1)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Gradient(ReadOnlySpan<float> dy, int batch, int o0, int o1, Span<float> gradient)"))
            {
                w.Line("ref float d = ref MemoryMarshal.GetReference(dy);");
                w.Line("ref float g = ref MemoryMarshal.GetReference(gradient);");
                LayerEmitter.Ladder(w, isa => $"Gradient{isa.Suffix}(ref d, batch, o0, o1, ref g);");
            }
            foreach (IsaPath isa in IsaPath.Ladder)
            {
                w.Line();
                w.Line($"/// <summary>{X(isa.Description)}{(isa.IsScalar ? "" : $": {I(isa.Lanes)} features per step")}.</summary>");
                using (Method(w, $"private static void Gradient{isa.Suffix}(ref float dy, int batch, int o0, int o1, ref float g)"))
                {
                    w.Line("int o = o0;");
                    if (!isa.IsScalar)
                    {
                        using (w.Block(V("for (; o + LANES <= o1; o += LANES)", isa)))
                        {
                            w.Line(V("VEC<double> lo = VEC<double>.Zero, hi = VEC<double>.Zero;", isa));
                            using (w.Block("for (int b = 0; b < batch; b++)"))
                            {
                                w.Line(V("VEC<float> v = VEC.LoadUnsafe(ref dy, (nuint)(b * Features + o));", isa));
                                w.Line(V("lo += VEC.WidenLower(v);", isa));
                                w.Line(V("hi += VEC.WidenUpper(v);", isa));
                            }
                            w.Line(V("VEC.Narrow(lo, hi).StoreUnsafe(ref g, (nuint)o);", isa));
                        }
                    }
                    using (w.Block("for (; o < o1; o++)"))
                    {
                        w.Line("double s = 0;");
                        w.Line("for (int b = 0; b < batch; b++) s += Unsafe.Add(ref dy, b * Features + o);");
                        w.Line("Unsafe.Add(ref g, o) = (float)s;");
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ ReLU

    private static void EmitRelu(SourceWriter w, string name, OpSpec op, int c, int h, int wd)
    {
        Summary(w,
            $"<c>{X(op.Text)}</c> on {Shape(c, h, wd)} per image: y = max(x, 0); backward dx = dy where y &gt; 0.",
            "Element-wise, so the trainer hands it any run of the batch; one vector compare per step on each rung, the tail scalar.");
        Generated(w);
        using (w.Block($"internal sealed class {name} : {Ns}ReluKernels"))
        {
            w.Line($"public {name}() : base({ShapeArray(c, h, wd)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Forward(ReadOnlySpan<float> x, Span<float> y)"))
            {
                w.Line("ref float xs = ref MemoryMarshal.GetReference(x);");
                w.Line("ref float ys = ref MemoryMarshal.GetReference(y);");
                LayerEmitter.Ladder(w, isa => $"Forward{isa.Suffix}(ref xs, ref ys, x.Length);");
            }
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Backward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)"))
            {
                w.Line("ref float ys = ref MemoryMarshal.GetReference(y);");
                w.Line("ref float g = ref MemoryMarshal.GetReference(dy);");
                w.Line("ref float d = ref MemoryMarshal.GetReference(dx);");
                LayerEmitter.Ladder(w, isa => $"Backward{isa.Suffix}(ref ys, ref g, ref d, y.Length);");
            }
            foreach (IsaPath isa in IsaPath.Ladder)
            {
                w.Line();
                w.Line($"/// <summary>y = max(x, 0), {X(isa.Description)}.</summary>");
                using (Method(w, $"private static void Forward{isa.Suffix}(ref float x, ref float y, int n)"))
                {
                    w.Line("int i = 0;");
                    if (!isa.IsScalar)
                        w.Line(V("for (; i + LANES <= n; i += LANES) VEC.Max(VEC.LoadUnsafe(ref x, (nuint)i), VEC<float>.Zero).StoreUnsafe(ref y, (nuint)i);", isa));
                    using (w.Block("for (; i < n; i++)"))
                    {
                        w.Line("float v = Unsafe.Add(ref x, i);");
                        w.Line("Unsafe.Add(ref y, i) = v > 0 ? v : 0f;");
                    }
                }
                w.Line();
                w.Line($"/// <summary>dx = y &gt; 0 ? dy : 0, {X(isa.Description)}.</summary>");
                using (Method(w, $"private static void Backward{isa.Suffix}(ref float y, ref float dy, ref float dx, int n)"))
                {
                    w.Line("int i = 0;");
                    if (!isa.IsScalar)
                    {
                        using (w.Block(V("for (; i + LANES <= n; i += LANES)", isa)))
                        {
                            w.Line(V("VEC<float> m = VEC.GreaterThan(VEC.LoadUnsafe(ref y, (nuint)i), VEC<float>.Zero);", isa));
                            w.Line(V("(m & VEC.LoadUnsafe(ref dy, (nuint)i)).StoreUnsafe(ref dx, (nuint)i);", isa));
                        }
                    }
                    w.Line("for (; i < n; i++) Unsafe.Add(ref dx, i) = Unsafe.Add(ref y, i) > 0 ? Unsafe.Add(ref dy, i) : 0f;");
                }
            }
        }
    }

    // ------------------------------------------------------------------ dropout

    private static void EmitDropout(SourceWriter w, string name, OpSpec op, int c, int h, int wd)
    {
        float keep = 1f / (1f - op.P);
        Summary(w,
            $"<c>{X(op.Text)}</c> on {Shape(c, h, wd)} per image: inverted dropout with p = {X(F(op.P))}, y = x · m, m = {X(F(keep))} or 0.",
            "The masks come from the runtime's counter-based generator keyed by (seed, step, op, element), draw for draw the",
            "reference's, so they stay bit-identical whichever kernels run. The draws are scalar; the backward's product is a",
            "vector multiply on each rung.");
        Generated(w);
        using (w.Block($"internal sealed class {name} : {Ns}DropoutKernels"))
        {
            w.Line($"private const float Probability = {F(op.P)};");
            w.Line($"/// <summary>1/(1-p), the scale of a kept element.</summary>");
            w.Line($"private const float Keep = {F(keep)};");
            w.Line();
            w.Line($"public {name}() : base({ShapeArray(c, h, wd)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            w.Line("public override float P => Probability;");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Forward(ReadOnlySpan<float> x, Span<float> y, Span<float> mask, long start, ulong stream)"))
            {
                using (w.Block("for (int i = 0; i < x.Length; i++)"))
                {
                    w.Line($"float m = {Ns}CounterRng.Uniform(stream, (ulong)(start + i)) >= Probability ? Keep : 0f;");
                    w.Line("mask[i] = m;");
                    w.Line("y[i] = x[i] * m;");
                }
            }
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> mask, Span<float> dx)"))
            {
                w.Line("ref float g = ref MemoryMarshal.GetReference(dy);");
                w.Line("ref float m = ref MemoryMarshal.GetReference(mask);");
                w.Line("ref float d = ref MemoryMarshal.GetReference(dx);");
                LayerEmitter.Ladder(w, isa => $"Backward{isa.Suffix}(ref g, ref m, ref d, dy.Length);");
            }
            foreach (IsaPath isa in IsaPath.Ladder)
            {
                w.Line();
                w.Line($"/// <summary>dx = dy · mask, {X(isa.Description)}.</summary>");
                using (Method(w, $"private static void Backward{isa.Suffix}(ref float dy, ref float mask, ref float dx, int n)"))
                {
                    w.Line("int i = 0;");
                    if (!isa.IsScalar)
                        w.Line(V("for (; i + LANES <= n; i += LANES) (VEC.LoadUnsafe(ref dy, (nuint)i) * VEC.LoadUnsafe(ref mask, (nuint)i)).StoreUnsafe(ref dx, (nuint)i);", isa));
                    w.Line("for (; i < n; i++) Unsafe.Add(ref dx, i) = Unsafe.Add(ref dy, i) * Unsafe.Add(ref mask, i);");
                }
            }
        }
    }

    // ------------------------------------------------------------------ max pooling

    private static void EmitMaxPool(SourceWriter w, string name, OpSpec op, int c, int h, int wd, int oh, int ow)
    {
        int k = op.Kernel, st = op.Stride, pad = op.Padding;
        bool separable = pad == 0;
        // Output rows (columns) whose whole window lies inside the input; the rest (ceil mode) are cut at the edge.
        int fullRows = 0, fullCols = 0;
        for (int o = 0; o < oh; o++) if (o * st + k <= h) fullRows++;
        for (int o = 0; o < ow; o++) if (o * st + k <= wd) fullCols++;
        Summary(w,
            $"<c>{X(op.Text)}</c>: {Shape(c, h, wd)} → {Shape(c, oh, ow)} per image, window {I(k)}x{I(k)}, stride {I(st)}, padding {I(pad)}{(op.CeilMode ? ", ceil mode" : "")}.",
            "Forward: each output's maximum and the index of its input in the plane (the arg-max the backward needs).",
            separable
                ? "Without padding the window is reduced as the reference's MaxPoolOp does: each column's maximum over the window's rows"
                  + " (vector compares across the row, the first row kept on a tie), then the window's columns left to right (the"
                  + " first kept on a tie); strict compares, so NaN never replaces a number. The window is unrolled."
                : "With padding, a row-major scan of the part of the window inside the image (strictly greater replaces; a NaN"
                  + " replaces a number, as PyTorch's), the reference's order exactly: a scalar scan on every rung.",
            "Backward: dx = 0, then each output's dy added at its arg-max (a scatter: scalar on every rung).");
        Generated(w);
        using (w.Block($"internal sealed class {name} : {Ns}MaxPoolKernels"))
        {
            w.Line($"private const int C = {I(c)}, H = {I(h)}, W = {I(wd)}, OH = {I(oh)}, OW = {I(ow)};");
            w.Line($"private const int InPlane = H * W, OutPlane = OH * OW, InSize = C * InPlane, OutSize = C * OutPlane;");
            w.Line();
            w.Line($"public {name}() : base({ShapeArray(c, h, wd)}, {ShapeArray(c, oh, ow)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Forward(ReadOnlySpan<float> x, Span<float> y, Span<int> argmax)"))
            {
                w.Line("ref float xs = ref MemoryMarshal.GetReference(x);");
                w.Line("ref float ys = ref MemoryMarshal.GetReference(y);");
                w.Line("ref int a = ref MemoryMarshal.GetReference(argmax);");
                w.Line("int planes = x.Length / InPlane;");
                if (separable) LayerEmitter.Ladder(w, isa => $"Forward{isa.Suffix}(ref xs, ref ys, ref a, planes);");
                else w.Line("ForwardScan(ref xs, ref ys, ref a, planes);");
            }
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx)"))
            {
                w.Line("dx.Clear();");
                w.Line("ref float g = ref MemoryMarshal.GetReference(dy);");
                w.Line("ref int a = ref MemoryMarshal.GetReference(argmax);");
                w.Line("ref float d = ref MemoryMarshal.GetReference(dx);");
                w.Line("int planes = dx.Length / InPlane;");
                using (w.Block("for (int p = 0; p < planes; p++)"))
                {
                    w.Line("ref float dp = ref Unsafe.Add(ref d, p * InPlane);");
                    w.Line("int o = p * OutPlane;");
                    w.Line("for (int i = 0; i < OutPlane; i++) Unsafe.Add(ref dp, Unsafe.Add(ref a, o + i)) += Unsafe.Add(ref g, o + i);");
                }
            }
            if (!separable)
            {
                w.Line();
                w.Line("/// <summary>The padded window, scanned row-major inside the image (every rung).</summary>");
                using (Method(w, "private static void ForwardScan(ref float x0, ref float y, ref int a, int planes)"))
                {
                    using (w.Block("for (int p = 0; p < planes; p++)"))
                    {
                        w.Line("ref float x = ref Unsafe.Add(ref x0, p * InPlane);");
                        w.Line("int o = p * OutPlane;");
                        using (w.Block("for (int oy = 0; oy < OH; oy++)"))
                        {
                            w.Line($"int ys = Math.Max(oy * {I(st)} - {I(pad)}, 0), ye = Math.Min(oy * {I(st)} - {I(pad)} + {I(k)}, H);");
                            using (w.Block("for (int ox = 0; ox < OW; ox++, o++)"))
                            {
                                w.Line($"int xs = Math.Max(ox * {I(st)} - {I(pad)}, 0), xe = Math.Min(ox * {I(st)} - {I(pad)} + {I(k)}, W);");
                                w.Line("int arg = ys * W + xs;");
                                w.Line("float best = Unsafe.Add(ref x, arg);");
                                using (w.Block("for (int yy = ys; yy < ye; yy++)"))
                                using (w.Block("for (int xx = xs; xx < xe; xx++)"))
                                {
                                    w.Line("float v = Unsafe.Add(ref x, yy * W + xx);");
                                    using (w.Block("if (v > best || (float.IsNaN(v) && !float.IsNaN(best)))"))
                                    {
                                        w.Line("best = v;");
                                        w.Line("arg = yy * W + xx;");
                                    }
                                }
                                w.Line("Unsafe.Add(ref y, o) = best;");
                                w.Line("Unsafe.Add(ref a, o) = arg;");
                            }
                        }
                    }
                }
                return;
            }
            foreach (IsaPath isa0 in IsaPath.Ladder)
            {
                IsaPath isa = Fit(isa0, wd);
                w.Line();
                w.Line($"/// <summary>{X(isa0.Description)}{(isa == isa0 ? "" : $" (rows of {I(wd)} take {(isa.IsScalar ? "scalar compares" : I(isa.Lanes) + " lanes")})")}: per output row, the column maxima");
                w.Line($"/// of its {I(k)} input rows for the whole width, then each output's {I(k)} columns.</summary>");
                using (Method(w, $"private static void Forward{isa0.Suffix}(ref float x0, ref float y, ref int a, int planes)"))
                {
                    w.Line("Span<float> colMax = stackalloc float[W];");
                    w.Line("Span<int> colArg = stackalloc int[W];");
                    w.Line("ref float cm = ref MemoryMarshal.GetReference(colMax);");
                    w.Line("ref int ca = ref MemoryMarshal.GetReference(colArg);");
                    using (w.Block("for (int p = 0; p < planes; p++)"))
                    {
                        w.Line("ref float x = ref Unsafe.Add(ref x0, p * InPlane);");
                        w.Line("int o = p * OutPlane;");
                        using (w.Block("for (int oy = 0; oy < OH; oy++)"))
                        {
                            w.Line($"int ys = oy * {I(st)};");
                            if (fullRows < oh)
                                w.Line($"int rows = oy < {I(fullRows)} ? {I(k)} : H - ys; // the last row{(oh - fullRows > 1 ? "s" : "")} of a ceil-mode pool cut at the edge");
                            EmitColumnMax(w, isa, k, wd, fullRows < oh);
                            // The window's columns, left to right.
                            using (w.Block($"for (int ox = 0; ox < {I(fullCols)}; ox++, o++)"))
                            {
                                w.Line($"int xs = ox * {I(st)};");
                                w.Line("float best = Unsafe.Add(ref cm, xs);");
                                w.Line("int arg = Unsafe.Add(ref ca, xs);");
                                // Selects, not branches: which column wins is data (a branch mispredicts about half the time).
                                for (int t = 1; t < k; t++)
                                {
                                    w.Line($"float v{I(t)} = Unsafe.Add(ref cm, xs + {I(t)});");
                                    w.Line($"bool gt{I(t)} = v{I(t)} > best;");
                                    w.Line($"arg = gt{I(t)} ? Unsafe.Add(ref ca, xs + {I(t)}) : arg;");
                                    w.Line($"best = gt{I(t)} ? v{I(t)} : best;");
                                }
                                w.Line("Unsafe.Add(ref y, o) = best;");
                                w.Line("Unsafe.Add(ref a, o) = arg;");
                            }
                            if (fullCols < ow)
                            {
                                using (w.Block($"for (int ox = {I(fullCols)}; ox < OW; ox++, o++)"))
                                {
                                    w.Line($"int xs = ox * {I(st)};");
                                    w.Line("float best = Unsafe.Add(ref cm, xs);");
                                    w.Line("int arg = Unsafe.Add(ref ca, xs);");
                                    w.Line("for (int xx = xs + 1; xx < W; xx++)");
                                    w.Line("    if (Unsafe.Add(ref cm, xx) > best) { best = Unsafe.Add(ref cm, xx); arg = Unsafe.Add(ref ca, xx); }");
                                    w.Line("Unsafe.Add(ref y, o) = best;");
                                    w.Line("Unsafe.Add(ref a, o) = arg;");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>colMax/colArg[i] = the maximum of column i over input rows ys .. ys+rows-1 and its plane index (the first on a tie).</summary>
    private static void EmitColumnMax(SourceWriter w, IsaPath isa, int k, int wd, bool cut)
    {
        if (!isa.IsScalar)
        {
            w.Line(V("VEC<int> iota = VEC<int>.Indices;", isa));
            // Vectors across the row; the last one overlaps the one before (its columns come out the same).
            using (w.Block(V("for (int i = 0; ; i = i + LANES > W - LANES ? W - LANES : i + LANES)", isa)))
            {
                w.Line(V("VEC<float> best = VEC.LoadUnsafe(ref x, (nuint)(ys * W + i));", isa));
                w.Line(V("VEC<int> arg = iota + VEC.Create(ys * W + i);", isa));
                if (cut)
                {
                    using (w.Block("for (int r = 1; r < rows; r++)"))
                    {
                        w.Line(V("VEC<float> v = VEC.LoadUnsafe(ref x, (nuint)((ys + r) * W + i));", isa));
                        w.Line(V("VEC<int> gt = VEC.GreaterThan(v, best).AsInt32();", isa));
                        w.Line(V("best = VEC.ConditionalSelect(gt.AsSingle(), v, best);", isa));
                        w.Line(V("arg = VEC.ConditionalSelect(gt, iota + VEC.Create((ys + r) * W + i), arg);", isa));
                    }
                }
                else
                {
                    for (int r = 1; r < k; r++)
                    {
                        w.Line(V($"VEC<float> v{r} = VEC.LoadUnsafe(ref x, (nuint)((ys + {I(r)}) * W + i));", isa));
                        w.Line(V($"VEC<int> gt{r} = VEC.GreaterThan(v{r}, best).AsInt32();", isa));
                        w.Line(V($"best = VEC.ConditionalSelect(gt{r}.AsSingle(), v{r}, best);", isa));
                        w.Line(V($"arg = VEC.ConditionalSelect(gt{r}, iota + VEC.Create((ys + {I(r)}) * W + i), arg);", isa));
                    }
                }
                w.Line(V("best.StoreUnsafe(ref cm, (nuint)i);", isa));
                w.Line(V("arg.StoreUnsafe(ref ca, (nuint)i);", isa));
                w.Line(V("if (i == W - LANES) break;", isa));
            }
            return;
        }
        using (w.Block("for (int i = 0; i < W; i++)"))
        {
            w.Line("float best = Unsafe.Add(ref x, ys * W + i);");
            w.Line("int arg = ys * W + i;");
            if (cut)
            {
                w.Line("for (int r = 1; r < rows; r++)");
                w.Line("    if (Unsafe.Add(ref x, (ys + r) * W + i) > best) { best = Unsafe.Add(ref x, (ys + r) * W + i); arg = (ys + r) * W + i; }");
            }
            else
            {
                for (int r = 1; r < k; r++)
                    w.Line($"if (Unsafe.Add(ref x, (ys + {I(r)}) * W + i) > best) {{ best = Unsafe.Add(ref x, (ys + {I(r)}) * W + i); arg = (ys + {I(r)}) * W + i; }}");
            }
            w.Line("Unsafe.Add(ref cm, i) = best;");
            w.Line("Unsafe.Add(ref ca, i) = arg;");
        }
    }

    // ------------------------------------------------------------------ average pooling

    private static void Window(bool adaptive, OpSpec op, int o, int n, int outN, out int start, out int end, out int padded)
    {
        if (adaptive)
        {
            start = (int)((long)o * n / outN);
            end = (int)(((long)(o + 1) * n + outN - 1) / outN);
            padded = end - start;
            return;
        }
        int s = o * op.Stride - op.Padding;
        int e = Math.Min(s + op.Kernel, n + op.Padding);
        padded = e - s;
        start = Math.Max(s, 0);
        end = Math.Min(e, n);
    }

    private static void EmitAvgPool(SourceWriter w, string name, OpSpec op, bool adaptive, int c, int h, int wd, int oh, int ow)
    {
        var ys = new int[oh]; var ye = new int[oh]; var ph = new int[oh];
        var xs = new int[ow]; var xe = new int[ow]; var pw = new int[ow];
        for (int o = 0; o < oh; o++) Window(adaptive, op, o, h, oh, out ys[o], out ye[o], out ph[o]);
        for (int o = 0; o < ow; o++) Window(adaptive, op, o, wd, ow, out xs[o], out xe[o], out pw[o]);
        var div = new List<int>();
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                div.Add(adaptive || op.CountIncludePad ? ph[oy] * pw[ox] : (ye[oy] - ys[oy]) * (xe[ox] - xs[ox]));
        Summary(w,
            $"<c>{X(op.Text)}</c>: {Shape(c, h, wd)} → {Shape(c, oh, ow)} per image, " + (adaptive
                ? "PyTorch's AdaptiveAvgPool2d windows (rows floor(i·H/OH) .. ceil((i+1)·H/OH))."
                : $"window {I(op.Kernel)}, stride {I(op.Stride)}, padding {I(op.Padding)}{(op.CeilMode ? ", ceil mode" : "")}, "
                  + (op.CountIncludePad ? "divided by the window including padding (count_include_pad)." : "divided by the pixels inside the image.")),
            "Every window's rows, columns and divisor are compiled into the tables below. Forward: the window summed in double",
            "row by row and divided; backward: dy / divisor added over the window, outputs in order. Both keep the reference's",
            "order exactly (sequential sums, overlapping windows adding in turn), so they are scalar on every rung.");
        Generated(w);
        using (w.Block($"internal sealed class {name} : {Ns}AvgPoolKernels"))
        {
            w.Line($"private const int C = {I(c)}, H = {I(h)}, W = {I(wd)}, OH = {I(oh)}, OW = {I(ow)};");
            w.Line($"private const int InPlane = H * W, OutPlane = OH * OW;");
            w.Line("/// <summary>Per output row: the first input row and one past the last inside the image.</summary>");
            w.Line($"private static ReadOnlySpan<int> RowStart => {IntArray(ys)};");
            w.Line($"private static ReadOnlySpan<int> RowEnd => {IntArray(ye)};");
            w.Line("/// <summary>Per output column: the first input column and one past the last inside the image.</summary>");
            w.Line($"private static ReadOnlySpan<int> ColStart => {IntArray(xs)};");
            w.Line($"private static ReadOnlySpan<int> ColEnd => {IntArray(xe)};");
            w.Line("/// <summary>Per output: what its sum is divided by.</summary>");
            w.Line($"private static ReadOnlySpan<int> Divisor => {IntArray(div)};");
            w.Line();
            w.Line($"public {name}() : base({ShapeArray(c, h, wd)}, {ShapeArray(c, oh, ow)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Forward(ReadOnlySpan<float> x, Span<float> y)"))
            {
                w.Line("int planes = x.Length / InPlane;");
                using (w.Block("for (int p = 0; p < planes; p++)"))
                {
                    w.Line("ReadOnlySpan<float> xp = x.Slice(p * InPlane, InPlane);");
                    w.Line("Span<float> yp = y.Slice(p * OutPlane, OutPlane);");
                    using (w.Block("for (int oy = 0; oy < OH; oy++)"))
                    using (w.Block("for (int ox = 0; ox < OW; ox++)"))
                    {
                        w.Line("double sum = 0;");
                        w.Line("for (int yy = RowStart[oy]; yy < RowEnd[oy]; yy++)");
                        w.Line("    for (int xx = ColStart[ox]; xx < ColEnd[ox]; xx++) sum += xp[yy * W + xx];");
                        w.Line("yp[oy * OW + ox] = (float)(sum / Divisor[oy * OW + ox]);");
                    }
                }
            }
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Backward(ReadOnlySpan<float> dy, Span<float> dx)"))
            {
                w.Line("dx.Clear();");
                w.Line("int planes = dx.Length / InPlane;");
                using (w.Block("for (int p = 0; p < planes; p++)"))
                {
                    w.Line("Span<float> d = dx.Slice(p * InPlane, InPlane);");
                    w.Line("ReadOnlySpan<float> gp = dy.Slice(p * OutPlane, OutPlane);");
                    using (w.Block("for (int oy = 0; oy < OH; oy++)"))
                    using (w.Block("for (int ox = 0; ox < OW; ox++)"))
                    {
                        w.Line("float g = gp[oy * OW + ox] / Divisor[oy * OW + ox];");
                        w.Line("for (int yy = RowStart[oy]; yy < RowEnd[oy]; yy++)");
                        w.Line("    for (int xx = ColStart[ox]; xx < ColEnd[ox]; xx++) d[yy * W + xx] += g;");
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ LRN

    /// <summary>s^-beta of a vector <paramref name="v"/> on a rung, for the compiled-in beta.</summary>
    private static string PowNeg(IsaPath isa, float beta, string v)
    {
        if (isa.IsScalar)
        {
            if (beta == 0.75f) return $"1f / MathF.Sqrt({v} * MathF.Sqrt({v}))";
            if (beta == 0.5f) return $"1f / MathF.Sqrt({v})";
            if (beta == 1f) return $"1f / {v}";
            return $"MathF.Pow({v}, -Beta)";
        }
        if (beta == 0.75f) return V($"VEC<float>.One / VEC.Sqrt({v} * VEC.Sqrt({v}))", isa);
        if (beta == 0.5f) return V($"VEC<float>.One / VEC.Sqrt({v})", isa);
        if (beta == 1f) return V($"VEC<float>.One / {v}", isa);
        return $"PowLanes{isa.Suffix}({v})";
    }

    private static void EmitLrn(SourceWriter w, string name, OpSpec op, int c, int h, int wd)
    {
        int size = op.Size, before = size / 2, after = (size - 1) / 2, plane = h * wd;
        float a = op.Alpha / op.Size, coef = 2f * op.Alpha * op.Beta / op.Size;
        string powText = op.Beta == 0.75f ? "1/sqrt(s·sqrt(s))" : op.Beta == 0.5f ? "1/sqrt(s)" : op.Beta == 1f ? "1/s" : "s^-beta lane by lane";
        Summary(w,
            $"<c>{X(op.Text)}</c> on {Shape(c, h, wd)} per image: s_c = k + alpha/size · Σ x_j² over channels j in [c - {I(before)}, c + {I(after)}]",
            $"cut at the edges, y_c = x_c · s_c^-beta ({X(powText)}); backward dx_i = dy_i · s_i^-beta - (2·alpha·beta/size) · x_i ·",
            $"Σ_j dy_j · x_j · s_j^(-beta-1) over the channels j whose window holds i ([i - {I(after)}, i + {I(before)}]).",
            "Why this shape: the forward sums the window's squares straight from x (one pass per channel, no squares buffer) and",
            $"keeps s^-beta and s^-beta/s for the backward; the {I(size)}-channel window is unrolled for the channels whose window",
            "is whole. Every value is the reference's LrnOp's bit for bit: the same sums in the same order (from zero, channel",
            "by channel) and the same multiplies, lane by lane, with no fused multiply-add.");
        Generated(w);
        using (w.Block($"internal sealed class {name} : {Ns}LrnKernels"))
        {
            w.Line($"private const int C = {I(c)}, Plane = {I(plane)}, Size = C * Plane;");
            w.Line($"/// <summary>alpha / size, k, beta and 2·alpha·beta/size.</summary>");
            w.Line($"private const float A = {F(a)}, K = {F(op.K)}, Beta = {F(op.Beta)}, Coef = {F(coef)};");
            w.Line();
            w.Line($"public {name}() : base({ShapeArray(c, h, wd)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Forward(ReadOnlySpan<float> x, Span<float> y, Span<float> pow, Span<float> ratio, Span<float> scratch)"))
            {
                w.Line("int images = x.Length / Size;");
                w.Line("ref float x0 = ref MemoryMarshal.GetReference(x);");
                w.Line("ref float y0 = ref MemoryMarshal.GetReference(y);");
                w.Line("ref float p0 = ref MemoryMarshal.GetReference(pow);");
                w.Line("ref float r0 = ref MemoryMarshal.GetReference(ratio);");
                using (w.Block("for (int b = 0; b < images; b++)"))
                {
                    w.Line("nint o = (nint)b * Size;");
                    LayerEmitter.Ladder(w, isa => $"Forward{isa.Suffix}(ref Unsafe.Add(ref x0, o), ref Unsafe.Add(ref y0, o), ref Unsafe.Add(ref p0, o), ref Unsafe.Add(ref r0, o));");
                }
            }
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, "public override void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> pow, ReadOnlySpan<float> ratio, ReadOnlySpan<float> dy, Span<float> dx, Span<float> scratch)"))
            {
                w.Line("int images = x.Length / Size;");
                w.Line("ref float x0 = ref MemoryMarshal.GetReference(x);");
                w.Line("ref float p0 = ref MemoryMarshal.GetReference(pow);");
                w.Line("ref float r0 = ref MemoryMarshal.GetReference(ratio);");
                w.Line("ref float g0 = ref MemoryMarshal.GetReference(dy);");
                w.Line("ref float d0 = ref MemoryMarshal.GetReference(dx);");
                w.Line("ref float t = ref MemoryMarshal.GetReference(scratch);");
                using (w.Block("for (int b = 0; b < images; b++)"))
                {
                    w.Line("nint o = (nint)b * Size;");
                    LayerEmitter.Ladder(w, isa => $"Backward{isa.Suffix}(ref Unsafe.Add(ref x0, o), ref Unsafe.Add(ref p0, o), ref Unsafe.Add(ref r0, o), ref Unsafe.Add(ref g0, o), ref Unsafe.Add(ref d0, o), ref t);");
                }
            }
            foreach (IsaPath isa in IsaPath.Ladder)
            {
                bool general = op.Beta != 0.75f && op.Beta != 0.5f && op.Beta != 1f;
                if (general && !isa.IsScalar)
                {
                    w.Line();
                    w.Line($"/// <summary>s^-beta lane by lane (beta {X(F(op.Beta))} has no root form).</summary>");
                    using (Method(w, V($"private static VEC<float> PowLanes{isa.Suffix}(VEC<float> s)", isa)))
                    {
                        w.Line("Span<float> lanes = stackalloc float[LANES];".Replace("LANES", I(isa.Lanes)));
                        w.Line("s.CopyTo(lanes);");
                        w.Line("for (int i = 0; i < lanes.Length; i++) lanes[i] = MathF.Pow(lanes[i], -Beta);");
                        w.Line(V("return VEC.Create<float>(lanes);", isa));
                    }
                }
                EmitLrnForward(w, isa, op, c, before, after);
                EmitLrnBackward(w, isa, op, c, before, after);
            }
        }
    }

    private static void EmitLrnForward(SourceWriter w, IsaPath isa, OpSpec op, int c, int before, int after)
    {
        w.Line();
        w.Line($"/// <summary>One image, {X(isa.Description)}: channel by channel, {(isa.IsScalar ? "pixel by pixel" : I(isa.Lanes) + " pixels at a time")}.</summary>");
        using (Method(w, $"private static void Forward{isa.Suffix}(ref float x, ref float y, ref float pow, ref float ratio)"))
        {
            // The window sum: from zero, channel j = lo .. hi in order (the reference's WindowSum of the squares).
            void Body(string lo, string hi, bool unrolled, int count)
            {
                w.Line($"int p = 0;");
                if (!isa.IsScalar) LrnForwardStep(w, isa, op, lo, hi, unrolled, count, vector: true);
                LrnForwardStep(w, isa, op, lo, hi, unrolled, count, vector: false);
            }
            EachChannel(w, c, before, after, op.Size, (lo, hi, unrolled) => Body(lo, hi, unrolled, op.Size));
        }
    }

    private static void LrnForwardStep(SourceWriter w, IsaPath isa, OpSpec op, string lo, string hi, bool unrolled, int count, bool vector)
    {
        string Ld(string arr, string at) => vector ? V($"VEC.LoadUnsafe(ref {arr}, (nuint)({at}))", isa) : $"Unsafe.Add(ref {arr}, {at})";
        string T = vector ? V("VEC<float>", isa) : "float";
        string zero = vector ? V("VEC<float>.Zero", isa) : "0f";
        using (w.Block(vector ? V("for (; p + LANES <= Plane; p += LANES)", isa) : "for (; p < Plane; p++)"))
        {
            w.Line($"{T} acc = {zero};");
            if (unrolled)
            {
                for (int j = 0; j < count; j++)
                {
                    string at = $"({lo} + {I(j)}) * Plane + p";
                    w.Line($"{T} x{j} = {Ld("x", at)};");
                    w.Line($"acc += x{j} * x{j};");
                }
            }
            else
            {
                using (w.Block($"for (int j = {lo}; j <= {hi}; j++)"))
                {
                    w.Line($"{T} xj = {Ld("x", "j * Plane + p")};");
                    w.Line("acc += xj * xj;");
                }
            }
            w.Line($"{T} s = {(vector ? V("VEC.Create(K)", isa) : "K")} + {(vector ? V("VEC.Create(A)", isa) : "A")} * acc;");
            w.Line($"{T} pw = {PowNeg(vector ? isa : IsaPath.Ladder[IsaPath.Ladder.Length - 1], op.Beta, "s")};");
            if (vector)
            {
                w.Line("pw.StoreUnsafe(ref pow, (nuint)(ch * Plane + p));");
                w.Line("(pw / s).StoreUnsafe(ref ratio, (nuint)(ch * Plane + p));");
                w.Line($"({Ld("x", "ch * Plane + p")} * pw).StoreUnsafe(ref y, (nuint)(ch * Plane + p));");
            }
            else
            {
                w.Line("Unsafe.Add(ref pow, ch * Plane + p) = pw;");
                w.Line("Unsafe.Add(ref ratio, ch * Plane + p) = pw / s;");
                w.Line("Unsafe.Add(ref y, ch * Plane + p) = Unsafe.Add(ref x, ch * Plane + p) * pw;");
            }
        }
    }

    private static void EmitLrnBackward(SourceWriter w, IsaPath isa, OpSpec op, int c, int before, int after)
    {
        w.Line();
        w.Line($"/// <summary>One image's input gradient, {X(isa.Description)}: t = dy · x · s^(-beta-1) for the whole image into the");
        w.Line("/// scratch, then per channel the window sum of t and dx = dy · s^-beta - Coef · x · Σt.</summary>");
        using (Method(w, $"private static void Backward{isa.Suffix}(ref float x, ref float pow, ref float ratio, ref float dy, ref float dx, ref float t)"))
        {
            w.Line("int i = 0;");
            if (!isa.IsScalar)
                w.Line(V("for (; i + LANES <= Size; i += LANES) (VEC.LoadUnsafe(ref dy, (nuint)i) * VEC.LoadUnsafe(ref x, (nuint)i) * VEC.LoadUnsafe(ref ratio, (nuint)i)).StoreUnsafe(ref t, (nuint)i);", isa));
            w.Line("for (; i < Size; i++) Unsafe.Add(ref t, i) = Unsafe.Add(ref dy, i) * Unsafe.Add(ref x, i) * Unsafe.Add(ref ratio, i);");
            void Body(string lo, string hi, bool unrolled)
            {
                w.Line("int p = 0;");
                if (!isa.IsScalar) LrnBackwardStep(w, isa, op, lo, hi, unrolled, vector: true);
                LrnBackwardStep(w, isa, op, lo, hi, unrolled, vector: false);
            }
            EachChannel(w, c, after, before, op.Size, Body);
        }
    }

    /// <summary>The loops over channels: those whose window [ch - <paramref name="below"/>, ch + <paramref name="above"/>] is
    /// whole (the window unrolled), then those at either edge, where it is cut.</summary>
    private static void EachChannel(SourceWriter w, int c, int below, int above, int size, Action<string, string, bool> body)
    {
        int interiorLo = below, interiorHi = c - 1 - above;
        if (interiorLo > interiorHi)
        {
            w.Line("// Every window is cut at an edge (fewer channels than the window).");
            using (w.Block("for (int ch = 0; ch < C; ch++)"))
            {
                w.Line($"int lo = Math.Max(0, ch - {I(below)}), hi = Math.Min(C - 1, ch + {I(above)});");
                body("lo", "hi", false);
            }
            return;
        }
        w.Line($"// Channels {I(interiorLo)} .. {I(interiorHi)}: the whole {I(size)}-channel window, unrolled.");
        using (w.Block($"for (int ch = {I(interiorLo)}; ch <= {I(interiorHi)}; ch++)"))
            body("ch - " + I(below), "ch + " + I(above), true);
        if (interiorLo > 0)
        {
            w.Line($"// Channels 0 .. {I(interiorLo - 1)}: the window cut at channel 0.");
            using (w.Block($"for (int ch = 0; ch < {I(interiorLo)}; ch++)"))
            {
                w.Line($"int lo = 0, hi = ch + {I(above)};");
                body("lo", "hi", false);
            }
        }
        if (interiorHi < c - 1)
        {
            w.Line($"// Channels {I(interiorHi + 1)} .. {I(c - 1)}: the window cut at channel {I(c - 1)}.");
            using (w.Block($"for (int ch = {I(interiorHi + 1)}; ch < C; ch++)"))
            {
                w.Line($"int lo = ch - {I(below)}, hi = C - 1;");
                body("lo", "hi", false);
            }
        }
    }

    private static void LrnBackwardStep(SourceWriter w, IsaPath isa, OpSpec op, string lo, string hi, bool unrolled, bool vector)
    {
        string Ld(string arr, string at) => vector ? V($"VEC.LoadUnsafe(ref {arr}, (nuint)({at}))", isa) : $"Unsafe.Add(ref {arr}, {at})";
        string T = vector ? V("VEC<float>", isa) : "float";
        using (w.Block(vector ? V("for (; p + LANES <= Plane; p += LANES)", isa) : "for (; p < Plane; p++)"))
        {
            w.Line($"{T} acc = {(vector ? V("VEC<float>.Zero", isa) : "0f")};");
            if (unrolled)
                for (int j = 0; j < op.Size; j++) w.Line($"acc += {Ld("t", $"({lo} + {I(j)}) * Plane + p")};");
            else
                w.Line($"for (int j = {lo}; j <= {hi}; j++) acc += {Ld("t", "j * Plane + p")};");
            string at = "ch * Plane + p";
            string coef = vector ? V("VEC.Create(Coef)", isa) : "Coef";
            string value = $"{Ld("dy", at)} * {Ld("pow", at)} - {coef} * {Ld("x", at)} * acc";
            if (vector) w.Line($"({value}).StoreUnsafe(ref dx, (nuint)({at}));");
            else w.Line($"Unsafe.Add(ref dx, {at}) = {value};");
        }
    }

    // ------------------------------------------------------------------ batch norm

    private static void EmitBatchNorm(SourceWriter w, string name, OpSpec op, int c, int h, int wd)
    {
        int plane = h * wd;
        Summary(w,
            $"<c>{X(op.Text)}</c> on {Shape(c, h, wd)} per image, training mode: each channel normalized with its batch mean and",
            "biased variance (two passes: the mean, then squared deviations from it), the running statistics updated as",
            $"PyTorch's (momentum {X(F(op.Momentum))}, variance unbiased by n/(n-1)); evaluation uses the running statistics. Backward:",
            "dx = gamma·invstd·(dy - Σdy/n - x̂·Σ(dy·x̂)/n), dgamma = Σ dy·x̂, dbeta = Σ dy. By channel over the batch.",
            $"Why this shape: each of the {I(plane)}-float planes is reduced in float vector lanes and then in double, as the",
            "reference BatchNormOp does with System.Numerics.Vector; the rung is picked by Vector&lt;float&gt;'s width so that",
            "these sums group exactly as the reference's and the statistics are bit for bit the same. The element-wise passes",
            "(y = x·scale + shift; dx = dy·k1 + x·kx + k0) multiply and add in the reference's order, no fused multiply-add.");
        Generated(w);
        using (w.Block($"internal sealed class {name} : {Ns}BatchNormKernels"))
        {
            w.Line($"private const int C = {I(c)}, Plane = {I(plane)}, Size = C * Plane;");
            w.Line($"private const float Eps = {F(op.Eps)}, Momentum = {F(op.Momentum)};");
            w.Line();
            w.Line($"public {name}() : base({ShapeArray(c, h, wd)}) {{ }}");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, $"public override void Forward(float[] x, float[] y, int batch, int c0, int c1, bool training, {Ns}BatchNormTensors t)"))
                BnLadder(w, "Forward", "x, y, batch, c0, c1, training, t");
            w.Line();
            w.Line("/// <inheritdoc />");
            using (Method(w, $"public override void Backward(float[] x, float[] dy, float[] dx, int batch, int c0, int c1, bool trainingForward, bool needDx, bool frozen, {Ns}BatchNormTensors t)"))
                BnLadder(w, "Backward", "x, dy, dx, batch, c0, c1, trainingForward, needDx, frozen, t");
            foreach (IsaPath isa in IsaPath.Ladder)
            {
                EmitBnForward(w, isa);
                EmitBnBackward(w, isa);
                EmitBnSums(w, isa);
            }
        }
    }

    private static void BnLadder(SourceWriter w, string method, string args)
    {
        bool first = true;
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            if (isa.IsScalar) w.Line($"else {method}{isa.Suffix}({args});");
            else w.Line($"{(first ? "if" : "else if")} ({isa.Guard} && global::System.Numerics.Vector<float>.Count == {I(isa.Lanes)}) {method}{isa.Suffix}({args});");
            first = false;
        }
    }

    private static void EmitBnForward(SourceWriter w, IsaPath isa)
    {
        w.Line();
        w.Line($"/// <summary>Channels [c0, c1), {X(isa.Description)}.</summary>");
        using (Method(w, $"private static void Forward{isa.Suffix}(float[] x, float[] y, int batch, int c0, int c1, bool training, {Ns}BatchNormTensors t)"))
        {
            w.Line("ref float x0 = ref MemoryMarshal.GetArrayDataReference(x);");
            w.Line("ref float y0 = ref MemoryMarshal.GetArrayDataReference(y);");
            using (w.Block("for (int c = c0; c < c1; c++)"))
            {
                w.Line("float mean, invStd;");
                using (w.Block("if (training)"))
                {
                    w.Line("double sum = 0, sq = 0;");
                    w.Line($"for (int b = 0; b < batch; b++) sum += Sum{isa.Suffix}(ref Unsafe.Add(ref x0, b * Size + c * Plane));");
                    w.Line("long n = (long)batch * Plane;");
                    w.Line("double m = sum / n;");
                    w.Line($"for (int b = 0; b < batch; b++) sq += Squares{isa.Suffix}(ref Unsafe.Add(ref x0, b * Size + c * Plane), (float)m);");
                    w.Line("double v = sq / n;");
                    w.Line("mean = (float)m;");
                    w.Line("invStd = (float)(1.0 / Math.Sqrt(v + Eps));");
                    w.Line("double unbiased = n > 1 ? v * n / (n - 1) : v;");
                    w.Line("t.RunningMean[c] = (float)((1 - Momentum) * t.RunningMean[c] + Momentum * m);");
                    w.Line("t.RunningVar[c] = (float)((1 - Momentum) * t.RunningVar[c] + Momentum * unbiased);");
                }
                using (w.Block("else"))
                {
                    w.Line("mean = t.RunningMean[c];");
                    w.Line("invStd = (float)(1.0 / Math.Sqrt(t.RunningVar[c] + (double)Eps));");
                }
                w.Line("t.BatchMean[c] = mean;");
                w.Line("t.InvStd[c] = invStd;");
                w.Line("float scale = t.Gamma[c] * invStd, shift = t.Beta[c] - mean * scale;");
                using (w.Block("for (int b = 0; b < batch; b++)"))
                {
                    w.Line("ref float xp = ref Unsafe.Add(ref x0, b * Size + c * Plane);");
                    w.Line("ref float yp = ref Unsafe.Add(ref y0, b * Size + c * Plane);");
                    w.Line("int i = 0;");
                    if (!isa.IsScalar)
                    {
                        w.Line(V("VEC<float> va = VEC.Create(scale), vc = VEC.Create(shift);", isa));
                        w.Line(V("for (; i + LANES <= Plane; i += LANES) (VEC.LoadUnsafe(ref xp, (nuint)i) * va + vc).StoreUnsafe(ref yp, (nuint)i);", isa));
                    }
                    w.Line("for (; i < Plane; i++) Unsafe.Add(ref yp, i) = Unsafe.Add(ref xp, i) * scale + shift;");
                }
            }
        }
    }

    private static void EmitBnBackward(SourceWriter w, IsaPath isa)
    {
        w.Line();
        w.Line($"/// <summary>Channels [c0, c1), {X(isa.Description)}.</summary>");
        using (Method(w, $"private static void Backward{isa.Suffix}(float[] x, float[] dy, float[] dx, int batch, int c0, int c1, bool trainingForward, bool needDx, bool frozen, {Ns}BatchNormTensors t)"))
        {
            w.Line("ref float x0 = ref MemoryMarshal.GetArrayDataReference(x);");
            w.Line("ref float g0 = ref MemoryMarshal.GetArrayDataReference(dy);");
            w.Line("ref float d0 = ref MemoryMarshal.GetArrayDataReference(dx);");
            w.Line("long n = (long)batch * Plane;");
            using (w.Block("for (int c = c0; c < c1; c++)"))
            {
                w.Line("float mean = t.BatchMean[c], inv = t.InvStd[c];");
                w.Line("double sdy = 0, sdyx = 0;");
                using (w.Block("for (int b = 0; b < batch; b++)"))
                {
                    w.Line($"(double s1, double s2) = SumAndDot{isa.Suffix}(ref Unsafe.Add(ref g0, b * Size + c * Plane), ref Unsafe.Add(ref x0, b * Size + c * Plane), mean);");
                    w.Line("sdy += s1;");
                    w.Line("sdyx += s2;");
                }
                w.Line("sdyx *= inv; // Σ dy·x̂ = invstd·Σ dy·(x - mean)");
                using (w.Block("if (!frozen)"))
                {
                    w.Line("t.GammaGradient[c] = (float)sdyx;");
                    w.Line("t.BetaGradient[c] = (float)sdy;");
                }
                w.Line("if (!needDx) continue;");
                w.Line("float k1 = t.Gamma[c] * inv;");
                w.Line("float m1 = trainingForward ? (float)(sdy / n) : 0f, m2 = trainingForward ? (float)(sdyx / n) : 0f;");
                w.Line("float xs = -k1 * inv * m2, cs = k1 * (inv * m2 * mean - m1);");
                using (w.Block("for (int b = 0; b < batch; b++)"))
                {
                    w.Line("ref float gp = ref Unsafe.Add(ref g0, b * Size + c * Plane);");
                    w.Line("ref float xp = ref Unsafe.Add(ref x0, b * Size + c * Plane);");
                    w.Line("ref float dp = ref Unsafe.Add(ref d0, b * Size + c * Plane);");
                    w.Line("int i = 0;");
                    if (!isa.IsScalar)
                    {
                        w.Line(V("VEC<float> va = VEC.Create(k1), vb = VEC.Create(xs), vc = VEC.Create(cs);", isa));
                        w.Line(V("for (; i + LANES <= Plane; i += LANES) (VEC.LoadUnsafe(ref gp, (nuint)i) * va + VEC.LoadUnsafe(ref xp, (nuint)i) * vb + vc).StoreUnsafe(ref dp, (nuint)i);", isa));
                    }
                    w.Line("for (; i < Plane; i++) Unsafe.Add(ref dp, i) = Unsafe.Add(ref gp, i) * k1 + Unsafe.Add(ref xp, i) * xs + cs;");
                }
            }
        }
    }

    private static void EmitBnSums(SourceWriter w, IsaPath isa)
    {
        // The scalar rung stands in for System.Numerics.Vector<float> without hardware: 4 lanes summed in order.
        bool scalar = isa.IsScalar;
        string[] lanes = { "s0", "s1", "s2", "s3" };
        w.Line();
        w.Line($"/// <summary>Σ of one plane: {(scalar ? "4 float lanes (Vector&lt;float&gt;'s software width) summed lane by lane" : X(isa.Vector) + " lanes, then their sum")}, then the tail in double.</summary>");
        using (Method(w, $"private static double Sum{isa.Suffix}(ref float g)"))
        {
            w.Line("int i = 0;");
            if (scalar)
            {
                w.Line("float s0 = 0, s1 = 0, s2 = 0, s3 = 0;");
                w.Line("for (; i + 4 <= Plane; i += 4) { s0 += Unsafe.Add(ref g, i); s1 += Unsafe.Add(ref g, i + 1); s2 += Unsafe.Add(ref g, i + 2); s3 += Unsafe.Add(ref g, i + 3); }");
                w.Line("double sum = 0f + s0 + s1 + s2 + s3;");
            }
            else
            {
                w.Line(V("VEC<float> s = VEC<float>.Zero;", isa));
                w.Line(V("for (; i + LANES <= Plane; i += LANES) s += VEC.LoadUnsafe(ref g, (nuint)i);", isa));
                w.Line(V("double sum = VEC.Sum(s);", isa));
            }
            w.Line("for (; i < Plane; i++) sum += Unsafe.Add(ref g, i);");
            w.Line("return sum;");
        }
        w.Line();
        w.Line("/// <summary>Σ (g - mean)² of one plane, lanes as in the sum.</summary>");
        using (Method(w, $"private static double Squares{isa.Suffix}(ref float g, float mean)"))
        {
            w.Line("int i = 0;");
            if (scalar)
            {
                w.Line("float s0 = 0, s1 = 0, s2 = 0, s3 = 0;");
                using (w.Block("for (; i + 4 <= Plane; i += 4)"))
                    for (int j = 0; j < 4; j++)
                        w.Line($"{{ float e = Unsafe.Add(ref g, i + {j}) - mean; {lanes[j]} += e * e; }}");
                w.Line("double dot = 0f + s0 + s1 + s2 + s3;");
            }
            else
            {
                w.Line(V("VEC<float> d = VEC<float>.Zero, vm = VEC.Create(mean);", isa));
                using (w.Block(V("for (; i + LANES <= Plane; i += LANES)", isa)))
                {
                    w.Line(V("VEC<float> e = VEC.LoadUnsafe(ref g, (nuint)i) - vm;", isa));
                    w.Line("d += e * e;");
                }
                w.Line(V("double dot = VEC.Sum(d);", isa));
            }
            w.Line("for (; i < Plane; i++) dot += ((double)Unsafe.Add(ref g, i) - mean) * (Unsafe.Add(ref g, i) - mean);");
            w.Line("return dot;");
        }
        w.Line();
        w.Line("/// <summary>Σ g and Σ g·(x - mean) of one plane, lanes as in the sum.</summary>");
        using (Method(w, $"private static (double Sum, double Dot) SumAndDot{isa.Suffix}(ref float g, ref float x, float mean)"))
        {
            w.Line("int i = 0;");
            if (scalar)
            {
                w.Line("float s0 = 0, s1 = 0, s2 = 0, s3 = 0, d0 = 0, d1 = 0, d2 = 0, d3 = 0;");
                using (w.Block("for (; i + 4 <= Plane; i += 4)"))
                {
                    for (int j = 0; j < 4; j++)
                        w.Line($"{{ float gv = Unsafe.Add(ref g, i + {j}); s{j} += gv; d{j} += gv * (Unsafe.Add(ref x, i + {j}) - mean); }}");
                }
                w.Line("double sum = 0f + s0 + s1 + s2 + s3, dot = 0f + d0 + d1 + d2 + d3;");
            }
            else
            {
                w.Line(V("VEC<float> s = VEC<float>.Zero, d = VEC<float>.Zero, vm = VEC.Create(mean);", isa));
                using (w.Block(V("for (; i + LANES <= Plane; i += LANES)", isa)))
                {
                    w.Line(V("VEC<float> gv = VEC.LoadUnsafe(ref g, (nuint)i);", isa));
                    w.Line("s += gv;");
                    w.Line(V("d += gv * (VEC.LoadUnsafe(ref x, (nuint)i) - vm);", isa));
                }
                w.Line(V("double sum = VEC.Sum(s), dot = VEC.Sum(d);", isa));
            }
            using (w.Block("for (; i < Plane; i++)"))
            {
                w.Line("sum += Unsafe.Add(ref g, i);");
                w.Line("dot += (double)Unsafe.Add(ref g, i) * (Unsafe.Add(ref x, i) - mean);");
            }
            w.Line("return (sum, dot);");
        }
    }
}
