using AlexNet.Aot.Generator.Planning;
using static AlexNet.Aot.Generator.Emit.Format;

namespace AlexNet.Aot.Generator.Emit;

/// <summary>
/// Emits a direct convolution's three training products with the layer's shapes compiled in, one copy per rung of the
/// ISA ladder: the forward Y = W x col, the input gradient dcol = Wᵀ x dY (scattered back by the col2im kernel) and the
/// weight gradient dWᵀ += col x dYᵀ. Each is a register-tiled micro-kernel (MR x NR: 8 x 32 on AVX-512, 6 x 16 on AVX2,
/// 4 x 8 on Vector128, 4 x 4 scalar) inside loops whose bounds are the layer's M and K, over one column panel packed per
/// step into the scratch; the depth runs whole, the accumulators never leaving the registers.
/// <para>
/// The results are the runtime GEMM's (runtime Training/Gemm.cs) bit for bit: every output element is the same chain of
/// multiply-adds, in the same depth order, from zero or from the accumulated value (the GEMM cuts the depth into blocks
/// and stores and reloads the partial sums between them, which changes no bit). What the generated form saves is the
/// GEMM's detours: the forward writes each image's output (bias added) straight from the registers, and both backward
/// products read dY of a stack of images where it lies instead of from a gathered copy.
/// </para>
/// </summary>
internal static class ProductEmitter
{
    /// <summary>The widest column panel of the ladder (AVX-512's 2 x 16) and the tallest row panel: the scratch is sized for them.</summary>
    private const int MaxNr = 32, MaxMr = 8;

    /// <summary>One rung's register tile and the expressions its code is written with.</summary>
    private sealed class Rung
    {
        public Rung(IsaPath isa)
        {
            Isa = isa;
            MR = isa.PanelRows;
            NV = isa.IsScalar ? 4 : 2;
            L = isa.Lanes;
            NR = NV * L;
        }

        public IsaPath Isa { get; }
        /// <summary>Rows of the tile (broadcasts per step).</summary>
        public int MR { get; }
        /// <summary>Vectors per tile row.</summary>
        public int NV { get; }
        /// <summary>Lanes per vector.</summary>
        public int L { get; }
        /// <summary>Columns of the tile.</summary>
        public int NR { get; }
        public string S => Isa.Suffix;
        public string T => Isa.IsScalar ? "float" : $"{Isa.Vector}<float>";
        public string Zero => Isa.IsScalar ? "0f" : $"{Isa.Vector}<float>.Zero";
        public string Load(string r, string off) =>
            Isa.IsScalar ? (off == "0" ? r : $"Unsafe.Add(ref {r}, {off})") : $"{Isa.Vector}.LoadUnsafe(ref {r}{Offset(off)})";
        public string Store(string v, string r, string off) =>
            Isa.IsScalar ? $"{(off == "0" ? r : $"Unsafe.Add(ref {r}, {off})")} = {v};" : $"{v}.StoreUnsafe(ref {r}{Offset(off)});";

        /// <summary>The element offset argument of LoadUnsafe / StoreUnsafe: none for 0, a plain cast for a literal.</summary>
        private static string Offset(string off) =>
            off == "0" ? "" : int.TryParse(off, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _) ? $", {off}" : $", (nuint)({off})";
        public string Broadcast(string x) => Isa.IsScalar ? x : $"{Isa.Vector}.Create({x})";
        public string Fma(string a, string b, string c) => Isa.IsScalar ? $"{a} * {b} + {c}" : $"{Isa.Vector}.MultiplyAddEstimate({a}, {b}, {c})";
    }

    private static SourceWriter.Scope Method(SourceWriter w, string header)
    {
        w.Line("[MethodImpl(MethodImplOptions.AggressiveOptimization)]");
        return w.Block(header);
    }

    /// <summary>Emits <c>ref float NAME = ref MemoryMarshal.GetReference(SPAN);</c> for each (NAME, SPAN) pair: how every
    /// public entry point takes its spans before it dispatches on the ladder.</summary>
    private static void References(SourceWriter w, params string[] nameSpanPairs)
    {
        for (int i = 0; i + 1 < nameSpanPairs.Length; i += 2)
            w.Line($"ref float {nameSpanPairs[i]} = ref MemoryMarshal.GetReference({nameSpanPairs[i + 1]});");
    }

    /// <summary>Opens one tile row's block: under <paramref name="guard"/> (a row that may lie past the matrix), or plain.</summary>
    private static SourceWriter.Scope Row(SourceWriter w, string? guard)
    {
        if (guard is not null) return w.Block(guard);
        w.Line("{");
        w.Indent();
        return new SourceWriter.Scope(w);
    }

    private static void Summary(SourceWriter w, params string[] lines)
    {
        w.Line("/// <summary>");
        foreach (string line in lines) w.Line("/// " + line);
        w.Line("/// </summary>");
    }

    private static string Ladder(System.Func<Rung, string> value)
    {
        string r = "";
        foreach (IsaPath isa in IsaPath.Ladder)
            r += isa.IsScalar ? value(new Rung(isa)) : $"{isa.Guard} ? {value(new Rung(isa))} : ";
        return r;
    }

    /// <summary>
    /// Emits the members of the generated <c>Conv</c> class that implement the runtime's product API (<c>ConvKernels</c>):
    /// the weight packing, <c>Forward</c>, <c>InputGradient</c> and <c>WeightGradient</c>, each checking its spans and
    /// dispatching once on the ladder. The class already has the constants <c>K</c>, <c>Plane</c> and <c>CinG</c>.
    /// </summary>
    public static void EmitConv(SourceWriter w, LayerPlan l)
    {
        int m = l.CoutG, k = l.GemmK, plane = l.OutH * l.OutW;
        w.Line($"private const int CoutG = {I(m)};");
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line("public override int PackedFloats => " + Ladder(r => I((m + r.MR - 1) / r.MR * r.MR * k)) + ";");
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line("public override int PackedTransposedFloats => " + Ladder(r => I((k + r.MR - 1) / r.MR * r.MR * m)) + ";");
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line("/// <summary>One image's group input as the forward stages it: zero-padded" + (l.Spec.Stride > 1 ? ", each row split by column phase" : "") + ".</summary>");
        w.Line("private const int Staged = CinG * PPlane;");
        w.Line();
        w.Line("/// <summary>Where the forward's column panel starts in the scratch, after the staged images and their slack.</summary>");
        w.Line($"private static int PanelAt(int images) => (images * Staged + {I(MaxNr)} + 15) & ~15;");
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line("public override int ProductScratchFloats(int images) => ScratchFor(images);");
        w.Line();
        w.Line($"private static int ScratchFor(int images) => Math.Max(PanelAt(images) + K * {I(2 * MaxNr)}, Math.Max(Math.Max(K, CoutG), images * Plane) * {I(MaxNr)}) + {I(MaxMr * MaxNr)};");
        w.Line();
        w.Line("private static void CheckProduct(int images, int stride, int a, int b, int c, int scratch, int need)");
        w.Line("{");
        w.Line("    if (images < 1 || stride < CoutG * Plane || a < need || b < (images - 1) * stride + CoutG * Plane || c < K * images * Plane");
        w.Line("        || scratch < ScratchFor(images))");
        w.Line("        throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
        w.Line("}");

        // ---- packing
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void PackWeights(ReadOnlySpan<float> weights, Span<float> packed)"))
        {
            w.Line("if (weights.Length < CoutG * K || packed.Length < PackedFloats) throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
            References(w, "wr", "weights", "d", "packed");
            LayerEmitter.Ladder(w, isa => $"Pack{isa.Suffix}(ref wr, ref d);");
        }
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void PackWeightsTransposed(ReadOnlySpan<float> weights, Span<float> packed)"))
        {
            w.Line("if (weights.Length < CoutG * K || packed.Length < PackedTransposedFloats) throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
            References(w, "wr", "weights", "d", "packed");
            LayerEmitter.Ladder(w, isa => $"PackTransposed{isa.Suffix}(ref wr, ref d);");
        }
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            var r = new Rung(isa);
            int mPanels = (m + r.MR - 1) / r.MR, kPanels = (k + r.MR - 1) / r.MR;
            w.Line();
            Summary(w, $"W [{I(m)}, {I(k)}] in {I(mPanels)} panels of {I(r.MR)} rows, {X(isa.Description)}: panel p holds, for each k, rows p·{I(r.MR)}.. (zero past {I(m)}).");
            using (Method(w, $"private static void Pack{r.S}(ref float w, ref float dst)"))
            {
                w.Line($"for (int row = 0; row < {I(mPanels * r.MR)}; row++)");
                w.Line("{");
                w.Line($"    ref float d = ref Unsafe.Add(ref dst, row / {I(r.MR)} * {I(r.MR * k)} + row % {I(r.MR)});");
                w.Line("    if (row < CoutG)");
                w.Line("    {");
                w.Line("        ref float s = ref Unsafe.Add(ref w, row * K);");
                w.Line($"        for (int k = 0; k < K; k++) Unsafe.Add(ref d, k * {I(r.MR)}) = Unsafe.Add(ref s, k);");
                w.Line("    }");
                w.Line($"    else for (int k = 0; k < K; k++) Unsafe.Add(ref d, k * {I(r.MR)}) = 0f;");
                w.Line("}");
            }
            w.Line();
            Summary(w, $"Wᵀ [{I(k)}, {I(m)}] in {I(kPanels)} panels of {I(r.MR)} rows, {X(isa.Description)}: panel p holds, for each output channel o, W[o][p·{I(r.MR)}..] (zero past {I(k)}).");
            using (Method(w, $"private static void PackTransposed{r.S}(ref float w, ref float dst)"))
            {
                w.Line($"for (int p = 0; p < {I(kPanels)}; p++)");
                w.Line("    for (int o = 0; o < CoutG; o++)");
                w.Line("    {");
                w.Line($"        ref float d = ref Unsafe.Add(ref dst, p * {I(r.MR * m)} + o * {I(r.MR)});");
                w.Line($"        ref float s = ref Unsafe.Add(ref w, o * K + p * {I(r.MR)});");
                if (k % r.MR == 0)
                    w.Line($"        for (int i = 0; i < {I(r.MR)}; i++) Unsafe.Add(ref d, i) = Unsafe.Add(ref s, i);");
                else
                    w.Line($"        for (int i = 0; i < {I(r.MR)}; i++) Unsafe.Add(ref d, i) = p * {I(r.MR)} + i < K ? Unsafe.Add(ref s, i) : 0f;");
                w.Line("    }");
            }
        }

        // ---- the three products: public entry points
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void Forward(ReadOnlySpan<float> packed, ReadOnlySpan<float> x, int inputStride, int images, ReadOnlySpan<float> bias, Span<float> y, int outputStride, Span<float> scratch)"))
        {
            w.Line("if (images < 1 || inputStride < CinG * InPlane || outputStride < CoutG * Plane || packed.Length < PackedFloats");
            w.Line("    || x.Length < (images - 1) * inputStride + CinG * InPlane || y.Length < (images - 1) * outputStride + CoutG * Plane");
            w.Line("    || scratch.Length < ScratchFor(images) || (bias.Length != 0 && bias.Length < CoutG))");
            w.Line("    throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
            References(w, "a", "packed", "xr", "x", "b", "bias", "yr", "y", "s", "scratch");
            LayerEmitter.Ladder(w, isa => $"Forward{isa.Suffix}(ref a, ref xr, inputStride, images, ref b, bias.Length != 0, ref yr, outputStride, ref s);");
        }
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void InputGradient(ReadOnlySpan<float> packedTransposed, ReadOnlySpan<float> dy, int imageStride, int images, Span<float> col, Span<float> scratch)"))
        {
            w.Line("CheckProduct(images, imageStride, packedTransposed.Length, dy.Length, col.Length, scratch.Length, PackedTransposedFloats);");
            References(w, "a", "packedTransposed", "d", "dy", "c", "col", "s", "scratch");
            LayerEmitter.Ladder(w, isa => $"InputGradient{isa.Suffix}(ref a, ref d, imageStride, images, ref c, ref s);");
        }
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void WeightGradient(ReadOnlySpan<float> col, ReadOnlySpan<float> dy, int imageStride, int images, Span<float> weightGradientT, Span<float> scratch)"))
        {
            w.Line("CheckProduct(images, imageStride, weightGradientT.Length, dy.Length, col.Length, scratch.Length, K * CoutG);");
            References(w, "c", "col", "d", "dy", "g", "weightGradientT", "s", "scratch");
            LayerEmitter.Ladder(w, isa => $"WeightGradient{isa.Suffix}(ref c, ref d, imageStride, images, ref g, ref s);");
        }
        if (l.Spec.Stride == 1 && l.Spec.KernelH == l.Spec.KernelW && (l.Spec.KernelH == 3 || l.Spec.KernelH == 5))
            EmitWinograd(w, m, l.CinG);
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            var r = new Rung(isa);
            w.Line();
            EmitStage(w, l, isa);
            w.Line();
            EmitForward(w, l, r, m, k, plane);
            w.Line();
            EmitInputGradient(w, r, m, k, plane);
            w.Line();
            EmitWeightGradient(w, r, m, k, plane);
        }
    }

    /// <summary>Emits a loop over <paramref name="count"/> rows that copies NR floats from <paramref name="source"/> (an
    /// expression of <paramref name="index"/>) to row <paramref name="index"/> of the packed panel: NV vector copies.</summary>
    private static void EmitPanelRows(SourceWriter w, Rung r, string index, string count, string source)
    {
        w.Line($"for (int {index} = 0; {index} < {count}; {index}++)");
        w.Line("{");
        w.Line($"    ref float s = ref {source};");
        w.Line($"    ref float d = ref Unsafe.Add(ref panel, {index} * {I(r.NR)});");
        var copies = new System.Collections.Generic.List<string>();
        for (int v = 0; v < r.NV; v++) copies.Add(r.Store(r.Load("s", I(v * r.L)), "d", I(v * r.L)));
        w.Line("    " + string.Join(" ", copies));
        w.Line("}");
    }

    /// <summary>Declares the MR x NV accumulators c{r}{v}, zero.</summary>
    private static void ZeroAccumulators(SourceWriter w, Rung r)
    {
        for (int i = 0; i < r.MR; i++)
        {
            var names = new System.Collections.Generic.List<string>();
            for (int v = 0; v < r.NV; v++) names.Add($"c{i}{v} = {r.Zero}");
            w.Line($"{r.T} {string.Join(", ", names)};");
        }
    }

    /// <summary>The loop of one tile over <paramref name="depth"/> steps: NV loads of the packed B panel at <c>bk</c>, then per
    /// row one broadcast (<paramref name="aElement"/>) and NV multiply-adds; <c>bk</c> (and a packed <c>ak</c>) advance.</summary>
    private static void EmitDepthLoop(SourceWriter w, Rung r, string depth, System.Func<int, string> aElement, bool packedA, int? bStride = null)
    {
        using (w.Block($"for (int k = 0; k < {depth}; k++)"))
        {
            var loads = new System.Collections.Generic.List<string>();
            for (int v = 0; v < r.NV; v++) loads.Add($"b{v} = {r.Load("bk", I(v * r.L))}");
            w.Line($"{r.T} {string.Join(", ", loads)};");
            for (int i = 0; i < r.MR; i++)
            {
                var fmas = new System.Collections.Generic.List<string>();
                for (int v = 0; v < r.NV; v++) fmas.Add($"c{i}{v} = {r.Fma($"a{i}", $"b{v}", $"c{i}{v}")};");
                w.Line($"{r.T} a{i} = {r.Broadcast(aElement(i))}; {string.Join(" ", fmas)}");
            }
            if (packedA) w.Line($"ak = ref Unsafe.Add(ref ak, {I(r.MR)});");
            w.Line($"bk = ref Unsafe.Add(ref bk, {I(bStride ?? r.NR)});");
        }
    }

    /// <summary>Stores tile row <paramref name="i"/> (values <c>v{v}</c>) at <paramref name="dst"/>.</summary>
    private static void StoreRow(SourceWriter w, Rung r, string prefix, string dst)
    {
        var stores = new System.Collections.Generic.List<string>();
        for (int v = 0; v < r.NV; v++) stores.Add(r.Store($"{prefix}{v}", dst, I(v * r.L)));
        w.Line(string.Join(" ", stores));
    }

    /// <summary>The copy of one run of output pixels in <see cref="EmitForward"/>'s panel gather: for a vector rung, the
    /// narrowest vectors that cover the longest run (min(OW, NR) floats), which may write past the run (the panel's row
    /// stride leaves room, and the runs of a row are copied in order, so a later run overwrites the excess); scalar, exact.</summary>
    private static (string Vector, int Lanes, int Count) RunCopy(LayerPlan l, Rung r)
    {
        int run = System.Math.Min(l.OutW, r.NR);
        if (r.Isa.IsScalar) return ("", 1, 0);
        if (run <= 4) return ("Vector128", 4, 1);
        if (run <= 8 && r.L >= 8) return ("Vector256", 8, 1);
        return (r.Isa.Vector, r.L, (run + r.L - 1) / r.L);
    }

    private static void EmitStage(SourceWriter w, LayerPlan l, IsaPath isa)
    {
        int st = l.Spec.Stride, pad = l.Spec.Padding;
        Summary(w,
            $"Stages <paramref name=\"images\"/> images' group input for the forward, {X(isa.Description)}: each into Staged floats,",
            st == 1 ? (pad > 0 ? "zero-padded, so that every tap of an output row is one contiguous run." : "as it is (no padding), one after the other.")
                : "zero-padded and split by column phase (padded column c at phase c mod S, position c / S), so that every tap of an output row is one contiguous run.");
        using (Method(w, $"private static void Stage{isa.Suffix}(ref float x, nint inputStride, int images, ref float staged)"))
        {
            using (w.Block("for (int im = 0; im < images; im++)"))
            {
                w.Line("ref float xs = ref Unsafe.Add(ref x, im * inputStride);");
                w.Line("ref float dst = ref Unsafe.Add(ref staged, im * Staged);");
                if (st > 1 || pad > 0) w.Line("MemoryMarshal.CreateSpan(ref dst, Staged).Clear();");
                w.Line("for (int ci = 0; ci < CinG; ci++)");
                w.Line("    for (int iy = 0; iy < H; iy++)");
                w.Line("    {");
                w.Line("        ref float s = ref Unsafe.Add(ref xs, ci * InPlane + iy * W);");
                if (st == 1)
                {
                    w.Line("        ref float d = ref Unsafe.Add(ref dst, ci * PPlane + (iy + Pad) * RowLen + Pad);");
                    w.Indent(); w.Indent();
                    TrainingEmitter.EmitCopy(w, isa, l.InW, "s", "d");
                    w.Dedent(); w.Dedent();
                }
                else
                {
                    w.Line("        ref float d = ref Unsafe.Add(ref dst, ci * PPlane + (iy + Pad) * RowLen);");
                    w.Line("        for (int ix = 0; ix < W; ix++)");
                    w.Line("        {");
                    w.Line("            int xp = ix + Pad;");
                    w.Line("            Unsafe.Add(ref d, xp % S * Len + xp / S) = Unsafe.Add(ref s, ix);");
                    w.Line("        }");
                }
                w.Line("    }");
            }
        }
    }

    private static void EmitForward(SourceWriter w, LayerPlan l, Rung r, int m, int k, int plane)
    {
        int mPanels = (m + r.MR - 1) / r.MR;
        bool rowGuard = m % r.MR != 0;
        int st = l.Spec.Stride, kw = l.Spec.KernelW;
        int len = (l.InW + 2 * l.Spec.Padding + st - 1) / st;
        (string cv, int cl, int cc) = RunCopy(l, r);
        int excess = r.Isa.IsScalar ? 0 : cl * cc;
        int stride = r.NR + excess;
        Summary(w,
            $"Y = W x im2col(x) (+ bias), {X(r.Isa.Description)}: M = {I(m)} output channels, K = {I(k)}, N = images x {I(plane)} pixels.",
            "The images are staged (padded) in the scratch; per column panel of " + I(r.NR) + " pixels, the panel's K rows are gathered from them",
            $"straight into an L2 buffer ({I(stride)} floats a row: each run of an output row is one copy{(r.Isa.IsScalar ? "" : $" of {I(cc)} x {cv}")}), so no column",
            $"matrix is written; then each of the {I(mPanels)} row panels of packed weights runs the whole depth over it in {I(r.MR)} x {I(r.NV)}",
            $"{(r.Isa.IsScalar ? "scalar" : "vector")} accumulators. The epilogue adds the bias and stores each row into the image's output plane, or, for a",
            "panel that straddles two images or ends the stack, column by column.");
        using (Method(w, $"private static void Forward{r.S}(ref float a, ref float x, nint inputStride, int images, ref float bias, bool hasBias, ref float y, nint outputStride, ref float scratch)"))
        {
            w.Line("int n = images * Plane;");
            w.Line($"Stage{r.S}(ref x, inputStride, images, ref scratch);");
            w.Line("ref float panel = ref Unsafe.Add(ref scratch, PanelAt(images));");
            w.Line($"ref float tile = ref Unsafe.Add(ref panel, K * {I(stride)});");
            w.Line($"Span<int> runAt = stackalloc int[{I(r.NR)}], runFrom = stackalloc int[{I(r.NR)}]{(r.Isa.IsScalar ? $", runLength = stackalloc int[{I(r.NR)}]" : "")};");
            using (w.Block($"for (int n0 = 0; n0 < n; n0 += {I(r.NR)})"))
            {
                w.Line($"int cols = Math.Min({I(r.NR)}, n - n0);");
                w.Line("// The panel's runs: pixels of one output row of one image, contiguous in the staged input for every tap.");
                w.Line("int runs = 0;");
                using (w.Block("for (int j = 0; j < cols; runs++)"))
                {
                    w.Line("int at = n0 + j, im = at / Plane, p = at - im * Plane, oy = p / OW, ox = p - oy * OW;");
                    w.Line("runAt[runs] = j;");
                    w.Line("runFrom[runs] = im * Staged + oy * S * RowLen + ox;");
                    w.Line("int length = Math.Min(OW - ox, cols - j);");
                    if (r.Isa.IsScalar) w.Line("runLength[runs] = length;");
                    w.Line("j += length;");
                }
                w.Line("for (int ci = 0; ci < CinG; ci++)");
                w.Line("    for (int ky = 0; ky < KH; ky++)");
                w.Line("    {");
                w.Line("        ref float srow = ref Unsafe.Add(ref scratch, ci * PPlane + ky * RowLen);");
                w.Line($"        ref float drow = ref Unsafe.Add(ref panel, (ci * KH + ky) * {I(kw * stride)});");
                w.Line("        for (int q = 0; q < runs; q++)");
                w.Line("        {");
                w.Line("            ref float sp = ref Unsafe.Add(ref srow, runFrom[q]);");
                w.Line("            ref float dp = ref Unsafe.Add(ref drow, runAt[q]);");
                for (int kx = 0; kx < kw; kx++)
                {
                    int off = st == 1 ? kx : kx % st * len + kx / st;
                    if (r.Isa.IsScalar)
                        w.Line($"            for (int i = 0; i < runLength[q]; i++) Unsafe.Add(ref dp, {I(kx * stride)} + i) = Unsafe.Add(ref sp, {I(off)} + i); // kx = {I(kx)}");
                    else
                    {
                        var copies = new System.Collections.Generic.List<string>();
                        for (int v = 0; v < cc; v++)
                            copies.Add($"{cv}.LoadUnsafe(ref sp, {I(off + v * cl)}).StoreUnsafe(ref dp, {I(kx * stride + v * cl)});");
                        w.Line($"            {string.Join(" ", copies)} // kx = {I(kx)}");
                    }
                }
                w.Line("        }");
                w.Line("    }");
                w.Line("int img = n0 / Plane, pix = n0 - img * Plane;");
                w.Line($"bool direct = cols == {I(r.NR)} && pix + {I(r.NR)} <= Plane;");
                w.Line("ref float yi = ref Unsafe.Add(ref y, img * outputStride + pix);");
                using (w.Block($"for (int mp = 0; mp < {I(mPanels)}; mp++)"))
                {
                    w.Line($"int m0 = mp * {I(r.MR)};");
                    w.Line($"ref float ak = ref Unsafe.Add(ref a, mp * {I(r.MR * k)});");
                    w.Line("ref float bk = ref panel;");
                    ZeroAccumulators(w, r);
                    EmitDepthLoop(w, r, "K", i => $"Unsafe.Add(ref ak, {I(i)})", packedA: true, bStride: stride);
                    for (int i = 0; i < r.MR; i++)
                    {
                        using (Row(w, rowGuard ? $"if (m0 + {I(i)} < CoutG)" : null))
                        {
                            var vals = new System.Collections.Generic.List<string>();
                            for (int v = 0; v < r.NV; v++) vals.Add($"v{v} = c{i}{v}");
                            w.Line($"{r.T} {string.Join(", ", vals)};");
                            using (w.Block("if (hasBias)"))
                            {
                                w.Line($"{r.T} bv = {r.Broadcast($"Unsafe.Add(ref bias, m0 + {I(i)})")};");
                                var adds = new System.Collections.Generic.List<string>();
                                for (int v = 0; v < r.NV; v++) adds.Add($"v{v} += bv;");
                                w.Line(string.Join(" ", adds));
                            }
                            using (w.Block("if (direct)"))
                            {
                                w.Line($"ref float o = ref Unsafe.Add(ref yi, (m0 + {I(i)}) * Plane);");
                                StoreRow(w, r, "v", "o");
                            }
                            using (w.Block("else"))
                            {
                                StoreRow(w, r, "v", "tile");
                                w.Line("for (int j = 0; j < cols; j++)");
                                w.Line("{");
                                w.Line("    int at = n0 + j, im = at / Plane;");
                                w.Line($"    Unsafe.Add(ref y, im * outputStride + (m0 + {I(i)}) * Plane + (at - im * Plane)) = Unsafe.Add(ref tile, j);");
                                w.Line("}");
                            }
                        }
                    }
                }
            }
        }
    }

    private static void EmitInputGradient(SourceWriter w, Rung r, int m, int k, int plane)
    {
        int kPanels = (k + r.MR - 1) / r.MR;
        bool rowGuard = k % r.MR != 0;
        Summary(w,
            $"dcol = Wᵀ x dY, {X(r.Isa.Description)}: M = K = {I(k)} rows of the column matrix, depth {I(m)} output channels, N = images x {I(plane)} pixels.",
            $"Per column panel of {I(r.NR)} pixels: dY's {I(m)} rows packed from the images' planes where they lie (a vector copy per row",
            $"when the panel is inside one image), then each of the {I(kPanels)} row panels of packed Wᵀ runs the depth over it; rows go",
            "straight into col (ld = N), a partial last panel through the tile.");
        using (Method(w, $"private static void InputGradient{r.S}(ref float a, ref float dy, nint imageStride, int images, ref float col, ref float scratch)"))
        {
            w.Line("int n = images * Plane;");
            w.Line("ref float panel = ref scratch;");
            w.Line($"ref float tile = ref Unsafe.Add(ref scratch, Math.Max(K, CoutG) * {I(r.NR)});");
            using (w.Block($"for (int n0 = 0; n0 < n; n0 += {I(r.NR)})"))
            {
                w.Line($"int cols = Math.Min({I(r.NR)}, n - n0);");
                w.Line("int img = n0 / Plane, pix = n0 - img * Plane;");
                using (w.Block($"if (cols == {I(r.NR)} && pix + {I(r.NR)} <= Plane)"))
                {
                    w.Line("ref float src = ref Unsafe.Add(ref dy, img * imageStride + pix);");
                    EmitPanelRows(w, r, "o", "CoutG", "Unsafe.Add(ref src, o * Plane)");
                }
                using (w.Block("else"))
                {
                    w.Line($"for (int j = 0; j < {I(r.NR)}; j++)");
                    w.Line("{");
                    w.Line("    if (j >= cols)");
                    w.Line("    {");
                    w.Line($"        for (int o = 0; o < CoutG; o++) Unsafe.Add(ref panel, o * {I(r.NR)} + j) = 0f;");
                    w.Line("        continue;");
                    w.Line("    }");
                    w.Line("    int at = n0 + j, im = at / Plane;");
                    w.Line("    ref float s = ref Unsafe.Add(ref dy, im * imageStride + (at - im * Plane));");
                    w.Line($"    for (int o = 0; o < CoutG; o++) Unsafe.Add(ref panel, o * {I(r.NR)} + j) = Unsafe.Add(ref s, o * Plane);");
                    w.Line("}");
                }
                w.Line("ref float cn = ref Unsafe.Add(ref col, n0);");
                EmitPackedTiles(w, r, "K", k, "CoutG", m, "n");
            }
        }
    }

    private static void EmitWeightGradient(SourceWriter w, Rung r, int m, int k, int plane)
    {
        int kPanels = (k + r.MR - 1) / r.MR, jPanels = (m + r.NR - 1) / r.NR;
        bool colEdge = m % r.NR != 0;
        Summary(w,
            $"dWᵀ [{I(k)}, {I(m)}] += col x dYᵀ, {X(r.Isa.Description)}: M = K = {I(k)}, N = {I(m)} output channels, depth images x {I(plane)} pixels.",
            $"Per panel of {I(r.NR)} output channels ({I(jPanels)}): dYᵀ packed from the images' planes, then each of the {I(kPanels)} row panels",
            $"of the column matrix runs the whole depth over it, its {I(r.MR)} rows read in place (one broadcast stream per row, no packing),",
            "the accumulators starting from dWᵀ's values.");
        using (Method(w, $"private static void WeightGradient{r.S}(ref float col, ref float dy, nint imageStride, int images, ref float g, ref float scratch)"))
        {
            w.Line("int n = images * Plane;");
            w.Line("ref float panel = ref scratch;");
            w.Line($"ref float tile = ref Unsafe.Add(ref scratch, n * {I(r.NR)});");
            using (w.Block($"for (int jp = 0; jp < {I(jPanels)}; jp++)"))
            {
                w.Line($"int j0 = jp * {I(r.NR)};");
                w.Line($"for (int j = 0; j < {I(r.NR)}; j++)");
                w.Line("{");
                w.Line($"    ref float d = ref Unsafe.Add(ref panel, j);");
                if (colEdge)
                {
                    w.Line("    if (j0 + j >= CoutG)");
                    w.Line("    {");
                    w.Line($"        for (int p = 0; p < n; p++) Unsafe.Add(ref d, p * {I(r.NR)}) = 0f;");
                    w.Line("        continue;");
                    w.Line("    }");
                }
                w.Line("    for (int im = 0; im < images; im++)");
                w.Line("    {");
                w.Line("        ref float s = ref Unsafe.Add(ref dy, im * imageStride + (j0 + j) * Plane);");
                w.Line($"        ref float di = ref Unsafe.Add(ref d, im * {I(plane * r.NR)});");
                w.Line($"        for (int p = 0; p < Plane; p++) Unsafe.Add(ref di, p * {I(r.NR)}) = Unsafe.Add(ref s, p);");
                w.Line("    }");
                w.Line("}");
                EmitRowStreamTiles(w, r, "K", k, "CoutG", m, "col", "n", "n", "g");
            }
        }
    }

    /// <summary>
    /// The row panels of C [M, cols] (at <c>cn</c>, row stride <paramref name="ldc"/>) = A x B over one column panel: A
    /// packed whole in panels of MR rows ([K][MR] each), B the packed panel at <c>panel</c> ([K][NR]); each tile runs the
    /// whole depth in registers from zero; rows past M are not stored, a partial panel goes through the tile. Shared by
    /// the convolution's input gradient and Winograd's forward and input gradient.
    /// </summary>
    private static void EmitPackedTiles(SourceWriter w, Rung r, string mName, int m, string kName, int k, string ldc)
    {
        int mPanels = (m + r.MR - 1) / r.MR;
        bool rowGuard = m % r.MR != 0;
        using (w.Block($"for (int mp = 0; mp < {I(mPanels)}; mp++)"))
        {
            w.Line($"int m0 = mp * {I(r.MR)};");
            w.Line($"ref float ak = ref Unsafe.Add(ref a, mp * {I(r.MR * k)});");
            w.Line("ref float bk = ref panel;");
            ZeroAccumulators(w, r);
            EmitDepthLoop(w, r, kName, i => $"Unsafe.Add(ref ak, {I(i)})", packedA: true);
            for (int i = 0; i < r.MR; i++)
            {
                using (Row(w, rowGuard ? $"if (m0 + {I(i)} < {mName})" : null))
                {
                    w.Line($"ref float o = ref Unsafe.Add(ref cn, (m0 + {I(i)}) * {ldc});");
                    using (w.Block($"if (cols == {I(r.NR)})")) StoreRow(w, r, $"c{i}", "o");
                    using (w.Block("else"))
                    {
                        StoreRow(w, r, $"c{i}", "tile");
                        w.Line("for (int j = 0; j < cols; j++) Unsafe.Add(ref o, j) = Unsafe.Add(ref tile, j);");
                    }
                }
            }
        }
    }

    /// <summary>
    /// The row panels of C [M, N] (row stride N) += A [M, depth] x B over one panel of NR columns at <c>j0</c>: A's MR rows
    /// read in place as broadcast streams (<paramref name="lda"/> floats apart; rows past M clamp to the last and are never
    /// stored), B the packed panel at <c>panel</c>, the accumulators starting from C (a tile at the edges). Shared by the
    /// convolution's weight gradient (A the column matrix, C = dWᵀ) and Winograd's (A = dM[ξ], C = dU[ξ]).
    /// </summary>
    private static void EmitRowStreamTiles(SourceWriter w, Rung r, string mName, int m, string nName, int n, string a, string lda, string depth, string c)
    {
        int mPanels = (m + r.MR - 1) / r.MR;
        bool rowEdge = m % r.MR != 0, colEdge = n % r.NR != 0;
        using (w.Block($"for (int mp = 0; mp < {I(mPanels)}; mp++)"))
        {
            w.Line($"int m0 = mp * {I(r.MR)};");
            for (int i = 0; i < r.MR; i++)
                w.Line(rowEdge
                    ? $"ref float a{i}r = ref Unsafe.Add(ref {a}, Math.Min(m0 + {I(i)}, {mName} - 1) * {lda});"
                    : $"ref float a{i}r = ref Unsafe.Add(ref {a}, (m0 + {I(i)}) * {lda});");
            w.Line($"ref float ct = ref Unsafe.Add(ref {c}, m0 * {nName} + j0);");
            string whole = (rowEdge, colEdge) switch
            {
                (false, false) => "true",
                (true, false) => $"m0 + {I(r.MR)} <= {mName}",
                (false, true) => $"j0 + {I(r.NR)} <= {nName}",
                _ => $"m0 + {I(r.MR)} <= {mName} && j0 + {I(r.NR)} <= {nName}",
            };
            w.Line($"bool whole = {whole};");
            if (rowEdge || colEdge)
            {
                using (w.Block("if (!whole)"))
                {
                    w.Line($"for (int i = 0; i < {I(r.MR)}; i++)");
                    w.Line($"    for (int j = 0; j < {I(r.NR)}; j++)");
                    w.Line($"        Unsafe.Add(ref tile, i * {I(r.NR)} + j) = m0 + i < {mName} && j0 + j < {nName} ? Unsafe.Add(ref ct, i * {nName} + j) : 0f;");
                }
            }
            w.Line("ref float cl = ref whole ? ref ct : ref tile;");
            w.Line($"nint ldc = whole ? {nName} : {I(r.NR)};");
            for (int i = 0; i < r.MR; i++)
            {
                var loads = new System.Collections.Generic.List<string>();
                for (int v = 0; v < r.NV; v++) loads.Add($"c{i}{v} = {r.Load("cl", (i == 0 ? "" : $"{I(i)} * ldc + ") + I(v * r.L))}");
                w.Line($"{r.T} {string.Join(", ", loads)};");
            }
            w.Line("ref float bk = ref panel;");
            EmitDepthLoop(w, r, depth, i => $"Unsafe.Add(ref a{i}r, k)", packedA: false);
            for (int i = 0; i < r.MR; i++)
            {
                var stores = new System.Collections.Generic.List<string>();
                for (int v = 0; v < r.NV; v++) stores.Add(r.Store($"c{i}{v}", "cl", (i == 0 ? "" : $"{I(i)} * ldc + ") + I(v * r.L)));
                w.Line(string.Join(" ", stores));
            }
            if (rowEdge || colEdge)
            {
                using (w.Block("if (!whole)"))
                {
                    w.Line($"for (int i = 0; i < {I(r.MR)} && m0 + i < {mName}; i++)");
                    w.Line($"    for (int j = 0; j < {I(r.NR)} && j0 + j < {nName}; j++)");
                    w.Line($"        Unsafe.Add(ref ct, i * {nName} + j) = Unsafe.Add(ref tile, i * {I(r.NR)} + j);");
                }
            }
        }
    }

    // ------------------------------------------------------------------ Winograd training products

    /// <summary>
    /// The Winograd training convolution's products (runtime Training/WinogradConvOp.cs), for a stride-1 3x3 or 5x5
    /// layer: per tile element ξ (36), the forward M[ξ] = U[ξ] x V[ξ], the input gradient dV[ξ] = U[ξ]ᵀ x dM[ξ] and the
    /// weight gradient dU[ξ] += dM[ξ] x V[ξ]ᵀ, with Cout/g and Cin/g compiled in and the tiles of a chunk at run time.
    /// U is packed by the runtime (its GEMM's panel layout, which is this rung's), V, M, dV and dM are [channels, tiles]
    /// with a row stride <c>ld</c>.
    /// </summary>
    private static void EmitWinograd(SourceWriter w, int coutG, int cinG)
    {
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line("public override bool HasWinograd => true;");
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line($"public override int WinogradScratchFloats(int ld) => Math.Max(Math.Max(CoutG, CinG), ld) * {I(MaxNr)} + {I(MaxMr * MaxNr)};");
        w.Line();
        w.Line("private void CheckWinograd(int a, int need, int ld, int tiles, int b, int bRows, int c, int cRows, int scratch)");
        w.Line("{");
        w.Line("    if (tiles < 1 || ld < tiles || a < need || b < 35 * bRows * ld + (bRows - 1) * ld + tiles || c < 35 * cRows * ld + (cRows - 1) * ld + tiles || scratch < WinogradScratchFloats(ld))");
        w.Line("        throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
        w.Line("}");
        w.Line();
        // Each entry point checks its spans, then runs its product once per tile element ξ on the ladder.
        void Entry(string header, string check, string[] references, System.Func<IsaPath, string> call)
        {
            w.Line("/// <inheritdoc />");
            using (Method(w, header))
            {
                w.Line(check);
                References(w, references);
                w.Line("for (int xi = 0; xi < 36; xi++)");
                w.Line("{");
                w.Indent();
                LayerEmitter.Ladder(w, call);
                w.Dedent();
                w.Line("}");
            }
            w.Line();
        }
        Entry("public override void WinogradForward(ReadOnlySpan<float> packedU, int packedStride, ReadOnlySpan<float> v, int ld, int tiles, Span<float> m, Span<float> scratch)",
            "CheckWinograd(packedU.Length, 35 * packedStride + PanelFloats(CoutG, CinG), ld, tiles, v.Length, CinG, m.Length, CoutG, scratch.Length);",
            new[] { "a", "packedU", "b", "v", "c", "m", "s", "scratch" },
            isa => $"WinogradMultiply{isa.Suffix}(ref Unsafe.Add(ref a, xi * packedStride), ref Unsafe.Add(ref b, xi * CinG * ld), ld, tiles, ref Unsafe.Add(ref c, xi * CoutG * ld), ref s);");
        Entry("public override void WinogradInputGradient(ReadOnlySpan<float> packedUT, int packedStride, ReadOnlySpan<float> dm, int ld, int tiles, Span<float> dv, Span<float> scratch)",
            "CheckWinograd(packedUT.Length, 35 * packedStride + PanelFloats(CinG, CoutG), ld, tiles, dm.Length, CoutG, dv.Length, CinG, scratch.Length);",
            new[] { "a", "packedUT", "b", "dm", "c", "dv", "s", "scratch" },
            isa => $"WinogradMultiplyT{isa.Suffix}(ref Unsafe.Add(ref a, xi * packedStride), ref Unsafe.Add(ref b, xi * CoutG * ld), ld, tiles, ref Unsafe.Add(ref c, xi * CinG * ld), ref s);");
        Entry("public override void WinogradWeightGradient(ReadOnlySpan<float> dm, ReadOnlySpan<float> v, int ld, int tiles, Span<float> du, Span<float> scratch)",
            "CheckWinograd(du.Length, 36 * CoutG * CinG, ld, tiles, dm.Length, CoutG, v.Length, CinG, scratch.Length);",
            new[] { "a", "dm", "b", "v", "c", "du", "s", "scratch" },
            isa => $"WinogradWeight{isa.Suffix}(ref Unsafe.Add(ref a, xi * CoutG * ld), ref Unsafe.Add(ref b, xi * CinG * ld), ld, tiles, ref Unsafe.Add(ref c, xi * (CoutG * CinG)), ref s);");
        w.Line("/// <summary>Floats of an m x k matrix packed in whole panels of the rung's rows (the runtime's Gemm.PackedLength).</summary>");
        w.Line("private static int PanelFloats(int m, int k) => " + Ladder(r => $"(m + {I(r.MR - 1)}) / {I(r.MR)} * {I(r.MR)} * k") + ";");
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            var r = new Rung(isa);
            w.Line();
            EmitPlainProduct(w, r, "WinogradMultiply", "CoutG", "CinG", coutG, cinG,
                $"M[ξ] [{I(coutG)}, tiles] = U[ξ] [{I(coutG)}, {I(cinG)}] x V[ξ] [{I(cinG)}, tiles], {X(r.Isa.Description)}");
            w.Line();
            EmitPlainProduct(w, r, "WinogradMultiplyT", "CinG", "CoutG", cinG, coutG,
                $"dV[ξ] [{I(cinG)}, tiles] = U[ξ]ᵀ [{I(cinG)}, {I(coutG)}] x dM[ξ] [{I(coutG)}, tiles], {X(r.Isa.Description)}");
            w.Line();
            EmitWinogradWeight(w, r, coutG, cinG);
        }
    }

    /// <summary>C [M, tiles] = A (packed whole, panels of MR rows) [M, K] x B [K, tiles], B and C with row stride ld: per
    /// column panel of NR tiles, B's K rows packed into the scratch, then every row panel runs the depth over it.</summary>
    private static void EmitPlainProduct(SourceWriter w, Rung r, string name, string mName, string kName, int m, int k, string what)
    {
        int mPanels = (m + r.MR - 1) / r.MR;
        bool rowGuard = m % r.MR != 0;
        Summary(w,
            what + ".",
            $"Per column panel of {I(r.NR)} tiles, B's {I(k)} rows packed into the scratch; each of the {I(mPanels)} row panels of A runs the",
            "whole depth over it in registers; rows stored into C, a partial last panel through the tile.");
        using (Method(w, $"private static void {name}{r.S}(ref float a, ref float b, int ld, int tiles, ref float c, ref float scratch)"))
        {
            w.Line("ref float panel = ref scratch;");
            w.Line($"ref float tile = ref Unsafe.Add(ref scratch, Math.Max(CoutG, CinG) * {I(r.NR)});");
            using (w.Block($"for (int n0 = 0; n0 < tiles; n0 += {I(r.NR)})"))
            {
                w.Line($"int cols = Math.Min({I(r.NR)}, tiles - n0);");
                w.Line("ref float src = ref Unsafe.Add(ref b, n0);");
                using (w.Block($"if (cols == {I(r.NR)})"))
                {
                    EmitPanelRows(w, r, "k", kName, "Unsafe.Add(ref src, k * ld)");
                }
                using (w.Block("else"))
                {
                    w.Line($"for (int k = 0; k < {kName}; k++)");
                    w.Line($"    for (int j = 0; j < {I(r.NR)}; j++) Unsafe.Add(ref panel, k * {I(r.NR)} + j) = j < cols ? Unsafe.Add(ref src, k * ld + j) : 0f;");
                }
                w.Line("ref float cn = ref Unsafe.Add(ref c, n0);");
                EmitPackedTiles(w, r, mName, m, kName, k, "ld");
            }
        }
    }

    /// <summary>dU[ξ] [CoutG, CinG] += dM[ξ] [CoutG, tiles] x V[ξ]ᵀ: dM's rows read in place as broadcast streams, Vᵀ packed
    /// per panel of NR input channels, the accumulators starting from dU.</summary>
    private static void EmitWinogradWeight(SourceWriter w, Rung r, int coutG, int cinG)
    {
        int mPanels = (coutG + r.MR - 1) / r.MR, jPanels = (cinG + r.NR - 1) / r.NR;
        bool colEdge = cinG % r.NR != 0;
        Summary(w,
            $"dU[ξ] [{I(coutG)}, {I(cinG)}] += dM[ξ] [{I(coutG)}, tiles] x V[ξ]ᵀ [tiles, {I(cinG)}], {X(r.Isa.Description)}.",
            $"Per panel of {I(r.NR)} input channels ({I(jPanels)}): Vᵀ packed from V's rows; each of the {I(mPanels)} row panels of dM runs",
            "the whole depth over it, its rows read in place (one broadcast stream per row), the accumulators starting from dU.");
        using (Method(w, $"private static void WinogradWeight{r.S}(ref float dm, ref float v, int ld, int tiles, ref float g, ref float scratch)"))
        {
            w.Line("ref float panel = ref scratch;");
            w.Line($"ref float tile = ref Unsafe.Add(ref scratch, Math.Max(Math.Max(CoutG, CinG), ld) * {I(r.NR)});");
            using (w.Block($"for (int jp = 0; jp < {I(jPanels)}; jp++)"))
            {
                w.Line($"int j0 = jp * {I(r.NR)};");
                w.Line($"for (int j = 0; j < {I(r.NR)}; j++)");
                w.Line("{");
                w.Line("    ref float d = ref Unsafe.Add(ref panel, j);");
                if (colEdge)
                {
                    w.Line("    if (j0 + j >= CinG)");
                    w.Line("    {");
                    w.Line($"        for (int p = 0; p < tiles; p++) Unsafe.Add(ref d, p * {I(r.NR)}) = 0f;");
                    w.Line("        continue;");
                    w.Line("    }");
                }
                w.Line("    ref float s = ref Unsafe.Add(ref v, (j0 + j) * ld);");
                w.Line($"    for (int p = 0; p < tiles; p++) Unsafe.Add(ref d, p * {I(r.NR)}) = Unsafe.Add(ref s, p);");
                w.Line("}");
                EmitRowStreamTiles(w, r, "CoutG", coutG, "CinG", cinG, "dm", "ld", "tiles", "g");
            }
        }
    }

    // ------------------------------------------------------------------ dense layers

    /// <summary>
    /// Emits the members of the generated <c>Dense</c> class that implement the runtime's dense products
    /// (<c>DenseKernels</c>): the forward Y = X x Wᵀ (+ bias), the weight gradient dW = dYᵀ x X and the input gradient
    /// dX = dY x W, with Fin and Fout compiled in and the batch and the thread's slice at run time. The blocking is the
    /// runtime GEMM's (Training/Gemm.Dense.cs and Gemm.cs) where it decides a bit: the forward adds the partial sums of
    /// the same depth chunks in the same order, so the results are the same bit for bit.
    /// </summary>
    public static void EmitDense(SourceWriter w, LayerPlan l)
    {
        int fin = l.GemmK, fout = l.OutC;
        w.Line($"private const int Fin = {I(fin)}, Fout = {I(fout)};");
        w.Line("/// <summary>The runtime GEMM's budgets (Gemm.StreamBudget, Gemm.NC, Gemm.KC, Gemm.MC x Gemm.KC): the forward's depth chunks follow them.</summary>");
        w.Line("private const int StreamBudget = 131072, NC = 1536, KC = 256, PackA = 24576;");
        w.Line();
        w.Line("/// <inheritdoc />");
        w.Line("public override int ScratchFloats(int batch) => Math.Max(Math.Max(StreamBudget, KC * (NC + 32)), batch * (NC + 32) + 8 * batch) + 256;");
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void Forward(ReadOnlySpan<float> weights, ReadOnlySpan<float> x, int batch, ReadOnlySpan<float> bias, Span<float> y, int o0, int o1, Span<float> scratch)"))
        {
            w.Line("if (batch < 1 || o0 < 0 || o1 > Fout || o0 > o1 || weights.Length < Fout * Fin || x.Length < batch * Fin || y.Length < batch * Fout");
            w.Line("    || scratch.Length < ScratchFloats(batch) || (bias.Length != 0 && bias.Length < Fout))");
            w.Line("    throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
            w.Line("if (o1 == o0) return;");
            References(w, "wr", "weights", "xr", "x", "b", "bias", "yr", "y", "s", "scratch");
            LayerEmitter.Ladder(w, isa => $"Forward{isa.Suffix}(ref wr, ref xr, batch, ref b, bias.Length != 0, ref yr, o0, o1, ref s);");
        }
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void WeightGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int batch, Span<float> weightGradient, int o0, int o1, Span<float> scratch)"))
        {
            w.Line("if (batch < 1 || o0 < 0 || o1 > Fout || o0 > o1 || dy.Length < batch * Fout || x.Length < batch * Fin || weightGradient.Length < Fout * Fin || scratch.Length < ScratchFloats(batch))");
            w.Line("    throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
            w.Line("if (o1 == o0) return;");
            References(w, "d", "dy", "xr", "x", "g", "weightGradient", "s", "scratch");
            LayerEmitter.Ladder(w, isa => $"WeightGradient{isa.Suffix}(ref d, ref xr, batch, ref g, o0, o1, ref s);");
            w.Line("global::AlexNet.Aot.Training.StreamingStores.Fence();");
        }
        w.Line();
        w.Line("/// <inheritdoc />");
        using (Method(w, "public override void InputGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> weights, int batch, Span<float> dx, int i0, int i1, Span<float> scratch)"))
        {
            w.Line("if (batch < 1 || i0 < 0 || i1 > Fin || i0 > i1 || dy.Length < batch * Fout || weights.Length < Fout * Fin || dx.Length < batch * Fin || scratch.Length < ScratchFloats(batch))");
            w.Line("    throw new ArgumentException(\"A span is shorter than the layer's shapes need.\");");
            w.Line("if (i1 == i0) return;");
            References(w, "d", "dy", "wr", "weights", "xr", "dx", "s", "scratch");
            LayerEmitter.Ladder(w, isa => $"InputGradient{isa.Suffix}(ref d, ref wr, batch, ref xr, i0, i1, ref s);");
        }
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            var r = new Rung(isa);
            w.Line();
            EmitDenseForward(w, r, fin, fout);
            w.Line();
            EmitDenseWeightGradient(w, r, fin, fout);
            w.Line();
            EmitDenseInputGradient(w, r, fin, fout);
        }
    }

    /// <summary>Packs B[depth, cols] into panels of NR columns at <c>panel</c> (panel q at q · depth · NR, zero past cols):
    /// <paramref name="element"/> reads B(p, j) given the names <c>p</c> and <c>j</c>.</summary>
    private static void EmitPackPanels(SourceWriter w, Rung r, string depth, string cols, System.Func<string, string, string> element, bool contiguous = false)
    {
        w.Line($"for (int jr = 0; jr < {cols}; jr += {I(r.NR)})");
        w.Line("{");
        w.Line($"    ref float pq = ref Unsafe.Add(ref panel, jr * {depth});");
        w.Line($"    int width = Math.Min({I(r.NR)}, {cols} - jr);");
        if (contiguous && !r.Isa.IsScalar)
        {
            // B(p, jr..) is a contiguous run: whole panels by vector copies.
            w.Line($"    if (width == {I(r.NR)})");
            w.Line("    {");
            w.Line($"        for (int p = 0; p < {depth}; p++)");
            w.Line("        {");
            w.Line($"            ref float sp = ref {element("p", "jr")};");
            var copies = new System.Collections.Generic.List<string>();
            for (int v = 0; v < r.NV; v++) copies.Add(r.Store(r.Load("sp", I(v * r.L)), "d", I(v * r.L)));
            w.Line($"            ref float d = ref Unsafe.Add(ref pq, p * {I(r.NR)});");
            w.Line("            " + string.Join(" ", copies));
            w.Line("        }");
            w.Line("        continue;");
            w.Line("    }");
        }
        w.Line($"    for (int p = 0; p < {depth}; p++)");
        w.Line("    {");
        w.Line($"        ref float d = ref Unsafe.Add(ref pq, p * {I(r.NR)});");
        w.Line("        int j = 0;");
        w.Line($"        for (; j < width; j++) Unsafe.Add(ref d, j) = {element("p", "jr + j")};");
        w.Line($"        for (; j < {I(r.NR)}; j++) Unsafe.Add(ref d, j) = 0f;");
        w.Line("    }");
        w.Line("}");
    }

    private static void EmitDenseForward(SourceWriter w, Rung r, int fin, int fout)
    {
        int gemmNr = r.Isa.IsScalar ? 2 : 2 * r.L;
        Summary(w,
            $"Y[b, o] = Σ_p W[o, p] X[b, p] (+ bias[o]) for features [o0, o1), {X(r.Isa.Description)}: Fin = {I(fin)}, Fout = {I(fout)}.",
            "W is read in place, never packed: each tile's MR rows are MR broadcast streams, which the hardware prefetches while the",
            "multiply-adds run. X is packed, transposed, a depth chunk at a time into panels of NR images (the chunks the runtime",
            $"GEMM takes: as deep as half an L2 allows, computed with its panel width {I(gemmNr)}). Each chunk's tile sum is added to Y",
            "(stored transposed, feature by feature), and the bias after the last chunk.");
        using (Method(w, $"private static void Forward{r.S}(ref float w, ref float x, int batch, ref float bias, bool hasBias, ref float y, int o0, int o1, ref float scratch)"))
        {
            w.Line($"ref float tile = ref scratch;");
            w.Line($"ref float panel = ref Unsafe.Add(ref scratch, {I(MaxMr * MaxNr)});");
            using (w.Block("for (int jc = 0; jc < batch; jc += NC)"))
            {
                w.Line("int nc = Math.Min(NC, batch - jc);");
                w.Line($"int kMax = Math.Max(1, Math.Min(StreamBudget / ((nc + {I(gemmNr - 1)}) / {I(gemmNr)} * {I(gemmNr)}), PackA / {I(r.MR)}));");
                w.Line("int chunks = (Fin + kMax - 1) / kMax, kStep = (Fin + chunks - 1) / chunks;");
                using (w.Block("for (int pc = 0; pc < Fin; pc += kStep)"))
                {
                    w.Line("int kc = Math.Min(kStep, Fin - pc);");
                    w.Line("bool last = pc + kc >= Fin;");
                    EmitPackPanels(w, r, "kc", "nc", (p, j) => $"Unsafe.Add(ref x, (jc + {j}) * Fin + pc + {p})");
                    using (w.Block($"for (int ir = o0; ir < o1; ir += {I(r.MR)})"))
                    {
                        w.Line($"int rows = Math.Min({I(r.MR)}, o1 - ir);");
                        for (int i = 0; i < r.MR; i++)
                            w.Line(i == 0 ? "ref float a0r = ref Unsafe.Add(ref w, ir * Fin + pc);"
                                : $"ref float a{i}r = ref Unsafe.Add(ref w, Math.Min(ir + {I(i)}, o1 - 1) * Fin + pc);");
                        using (w.Block($"for (int jr = 0; jr < nc; jr += {I(r.NR)})"))
                        {
                            w.Line($"int cols = Math.Min({I(r.NR)}, nc - jr);");
                            w.Line("ref float bk = ref Unsafe.Add(ref panel, jr * kc);");
                            ZeroAccumulators(w, r);
                            EmitDepthLoop(w, r, "kc", i => $"Unsafe.Add(ref a{i}r, k)", packedA: false);
                            for (int i = 0; i < r.MR; i++) StoreRow(w, r, $"c{i}", i == 0 ? "tile" : $"Unsafe.Add(ref tile, {I(i * r.NR)})");
                            w.Line("for (int j = 0; j < cols; j++)");
                            w.Line("{");
                            w.Line("    ref float yj = ref Unsafe.Add(ref y, (jc + jr + j) * Fout + ir);");
                            w.Line("    for (int i = 0; i < rows; i++)");
                            w.Line("    {");
                            w.Line($"        float v = Unsafe.Add(ref tile, i * {I(r.NR)} + j);");
                            w.Line("        ref float d = ref Unsafe.Add(ref yj, i);");
                            w.Line("        d = pc > 0 ? d + v : v;");
                            w.Line("        if (last && hasBias) d += Unsafe.Add(ref bias, ir + i);");
                            w.Line("    }");
                            w.Line("}");
                        }
                    }
                }
            }
        }
    }

    private static void EmitDenseWeightGradient(SourceWriter w, Rung r, int fin, int fout)
    {
        Summary(w,
            $"dW[o, i] = Σ_b dy[b, o] X[b, i] for features [o0, o1), {X(r.Isa.Description)}: Fin = {I(fin)}, the batch the depth.",
            "X is packed a block of NC columns at a time into panels of NR (it stays in L2 while every row panel of dyᵀ runs over",
            "it); each MR rows of dyᵀ are packed once per block; each tile is one chain of multiply-adds over the batch, written",
            "to dW's rows by non-temporal stores where aligned (dW is far larger than the caches: no read before the write).");
        using (Method(w, $"private static void WeightGradient{r.S}(ref float dy, ref float x, int batch, ref float g, int o0, int o1, ref float scratch)"))
        {
            w.Line("ref float tile = ref scratch;");
            w.Line($"ref float pa = ref Unsafe.Add(ref scratch, {I(MaxMr * MaxNr)});");
            w.Line($"ref float panel = ref Unsafe.Add(ref pa, {I(MaxMr)} * batch);");
            using (w.Block("for (int jc = 0; jc < Fin; jc += NC)"))
            {
                w.Line("int nc = Math.Min(NC, Fin - jc);");
                EmitPackPanels(w, r, "batch", "nc", (p, j) => $"Unsafe.Add(ref x, {p} * Fin + jc + {j})", contiguous: true);
                using (w.Block($"for (int ir = o0; ir < o1; ir += {I(r.MR)})"))
                {
                    w.Line($"int rows = Math.Min({I(r.MR)}, o1 - ir);");
                    w.Line("for (int p = 0; p < batch; p++)");
                    w.Line($"    for (int i = 0; i < {I(r.MR)}; i++) Unsafe.Add(ref pa, p * {I(r.MR)} + i) = i < rows ? Unsafe.Add(ref dy, p * Fout + ir + i) : 0f;");
                    using (w.Block($"for (int jr = 0; jr < nc; jr += {I(r.NR)})"))
                    {
                        w.Line($"int cols = Math.Min({I(r.NR)}, nc - jr);");
                        w.Line("ref float ak = ref pa;");
                        w.Line("ref float bk = ref Unsafe.Add(ref panel, jr * batch);");
                        ZeroAccumulators(w, r);
                        EmitDepthLoop(w, r, "batch", i => $"Unsafe.Add(ref ak, {I(i)})", packedA: true);
                        w.Line("ref float ct = ref Unsafe.Add(ref g, ir * Fin + jc + jr);");
                        for (int i = 0; i < r.MR; i++) StoreRow(w, r, $"c{i}", i == 0 ? "tile" : $"Unsafe.Add(ref tile, {I(i * r.NR)})");
                        w.Line($"global::AlexNet.Aot.Training.StreamingStores.Rows(ref tile, {I(r.NR)}, ref ct, Fin, rows, cols);");
                    }
                }
            }
        }
    }

    private static void EmitDenseInputGradient(SourceWriter w, Rung r, int fin, int fout)
    {
        Summary(w,
            $"dX[b, i] = Σ_o dy[b, o] W[o, i] for inputs [i0, i1), {X(r.Isa.Description)}: Fout = {I(fout)}, the depth, in blocks of KC.",
            "Per block of NC inputs and KC outputs, W's rows are packed into panels of NR; each panel (in L1) serves every MR images",
            "of dy, read in place as MR broadcast streams; a tile continues from dX's partial sums after the first depth block (one",
            "chain per element, as the runtime GEMM's).");
        using (Method(w, $"private static void InputGradient{r.S}(ref float dy, ref float w, int batch, ref float dx, int i0, int i1, ref float scratch)"))
        {
            w.Line("ref float tile = ref scratch;");
            w.Line($"ref float panel = ref Unsafe.Add(ref scratch, {I(MaxMr * MaxNr)});");
            w.Line("int n = i1 - i0;");
            w.Line("int kStep = (Fout + (Fout + KC - 1) / KC - 1) / ((Fout + KC - 1) / KC);");
            using (w.Block("for (int jc = 0; jc < n; jc += NC)"))
            {
                w.Line("int nc = Math.Min(NC, n - jc);");
                using (w.Block("for (int pc = 0; pc < Fout; pc += kStep)"))
                {
                    w.Line("int kc = Math.Min(kStep, Fout - pc);");
                    EmitPackPanels(w, r, "kc", "nc", (p, j) => $"Unsafe.Add(ref w, (pc + {p}) * Fin + i0 + jc + {j})", contiguous: true);
                    // Column panels outside, images inside: each packed panel of W (kc x NR, in L1) serves every image
                    // before the next is read.
                    using (w.Block($"for (int jr = 0; jr < nc; jr += {I(r.NR)})"))
                    {
                        w.Line($"int cols = Math.Min({I(r.NR)}, nc - jr);");
                        using (w.Block($"for (int ir = 0; ir < batch; ir += {I(r.MR)})"))
                        {
                            w.Line($"int rows = Math.Min({I(r.MR)}, batch - ir);");
                            for (int i = 0; i < r.MR; i++)
                                w.Line(i == 0 ? "ref float a0r = ref Unsafe.Add(ref dy, ir * Fout + pc);"
                                    : $"ref float a{i}r = ref Unsafe.Add(ref dy, Math.Min(ir + {I(i)}, batch - 1) * Fout + pc);");
                            w.Line("ref float ct = ref Unsafe.Add(ref dx, ir * Fin + i0 + jc + jr);");
                            w.Line($"bool whole = rows == {I(r.MR)} && cols == {I(r.NR)};");
                            using (w.Block("if (!whole)"))
                            {
                                w.Line($"for (int i = 0; i < {I(r.MR)}; i++)");
                                w.Line($"    for (int j = 0; j < {I(r.NR)}; j++) Unsafe.Add(ref tile, i * {I(r.NR)} + j) = pc > 0 && i < rows && j < cols ? Unsafe.Add(ref ct, i * Fin + j) : 0f;");
                            }
                            w.Line("ref float cl = ref whole ? ref ct : ref tile;");
                            w.Line($"nint ldc = whole ? Fin : {I(r.NR)};");
                            ZeroAccumulators(w, r);
                            w.Line("if (pc > 0 || !whole)");
                            w.Line("{");
                            w.Indent();
                            for (int i = 0; i < r.MR; i++)
                            {
                                var loads = new System.Collections.Generic.List<string>();
                                for (int v = 0; v < r.NV; v++) loads.Add($"c{i}{v} = {r.Load("cl", (i == 0 ? "" : $"{I(i)} * ldc + ") + I(v * r.L))};");
                                w.Line(string.Join(" ", loads));
                            }
                            w.Dedent();
                            w.Line("}");
                            w.Line("ref float bk = ref Unsafe.Add(ref panel, jr * kc);");
                            EmitDepthLoop(w, r, "kc", i => $"Unsafe.Add(ref a{i}r, k)", packedA: false);
                            for (int i = 0; i < r.MR; i++)
                            {
                                var stores = new System.Collections.Generic.List<string>();
                                for (int v = 0; v < r.NV; v++) stores.Add(r.Store($"c{i}{v}", "cl", (i == 0 ? "" : $"{I(i)} * ldc + ") + I(v * r.L)));
                                w.Line(string.Join(" ", stores));
                            }
                            using (w.Block("if (!whole)"))
                            {
                                w.Line("for (int i = 0; i < rows; i++)");
                                w.Line($"    for (int j = 0; j < cols; j++) Unsafe.Add(ref ct, i * Fin + j) = Unsafe.Add(ref tile, i * {I(r.NR)} + j);");
                            }
                        }
                    }
                }
            }
        }
    }
}
