using System.Collections.Generic;
using AlexNet.Aot.Generator.Model;
using AlexNet.Aot.Generator.Planning;
using static AlexNet.Aot.Generator.Emit.Format;

namespace AlexNet.Aot.Generator.Emit;

/// <summary>Emits one layer line as a nested static class: its constants, its Forward, and one kernel per step and ISA.</summary>
internal static class LayerEmitter
{
    public static string Emit(ModelPlan model, LayerPlan layer, string ns)
    {
        var w = new SourceWriter();
        Emitter.Header(w);
        using (w.Block("namespace " + ns))
        {
            using (w.Block("partial class " + model.Spec.ClassName))
            {
                if (layer.IsConv) EmitConv(w, model, layer);
                else EmitDense(w, model, layer);
            }
        }
        return w.ToString();
    }

    // ------------------------------------------------------------------ shared pieces

    internal static List<int> AffineSteps(LayerPlan layer)
    {
        var list = new List<int>();
        for (int i = 0; i < layer.Steps.Count; i++)
            if (layer.Steps[i].Kind == StepKind.Affine) list.Add(i);
        return list;
    }

    private static string Ref(Slot s) => s.Region switch
    {
        Region.Input => "input",
        Region.Worker => "Unsafe.Add(ref arena, " + I(s.Offset) + ")",
        Region.Dense => "features",
        _ => "output",
    };

    private static void Summary(SourceWriter w, params string[] lines)
    {
        w.Line("/// <summary>");
        foreach (string l in lines) w.Line("/// " + l);
        w.Line("/// </summary>");
    }

    private static string StepComment(LayerPlan layer, StepPlan s, int i)
    {
        string shapes = Shape(s.InC, s.InH, s.InW) + " → " + Shape(s.OutC, s.OutH, s.OutW);
        string extra = i == 0 ? Fusions(layer) : "";
        return $"{i}. {s.Text}{extra}: {shapes}";
    }

    private static string Fusions(LayerPlan layer)
    {
        var parts = new List<string> { layer.Spec.Bias || layer.FoldedBatchNorm is not null ? "bias" : "no bias" };
        if (layer.FoldedBatchNorm is not null) parts.Add("batch norm folded into the weights at load");
        if (layer.FuseRelu) parts.Add("ReLU fused");
        return " (" + string.Join(", ", parts) + ")";
    }

    private static void EmitSteps(SourceWriter w, LayerPlan layer, int first, int end = int.MaxValue)
    {
        int affine = 0;
        for (int j = 1; j < first; j++)
            if (layer.Steps[j].Kind == StepKind.Affine) affine++;
        for (int i = first; i < layer.Steps.Count && i < end; i++)
        {
            StepPlan s = layer.Steps[i];
            w.Line("// " + StepComment(layer, s, i));
            if (layer.IsConv && LrnPoolFused(layer, i))
            {
                StepPlan p = layer.Steps[i + 1];
                w.Line("// " + StepComment(layer, p, i + 1) + " (fused with the LRN: each normalized plane is pooled while in L1)");
                w.Line("if (parts > 1) team!.Barrier();");
                w.Line($"LrnMaxPool{i}(ref {Ref(s.In)}, ref {Ref(p.Out)}, part, parts);");
                i++;
                continue;
            }
            bool computes = s.Kind is StepKind.Relu or StepKind.Affine or StepKind.Lrn or StepKind.MaxPool or StepKind.AvgPool
                || (s.Kind == StepKind.AdaptiveAvgPool && s.In != s.Out);
            // Conv lines: every worker must have finished the step before (it reads all channels). Dense lines run
            // their steps on the rows this worker computed, so they need no barrier.
            if (computes && layer.IsConv) w.Line("if (parts > 1) team!.Barrier();");
            string range = layer.IsConv ? "part, parts" : "batch, o0, o1";
            switch (s.Kind)
            {
                case StepKind.Relu:
                    w.Line(layer.IsConv ? $"Relu{i}(ref {Ref(s.Out)}, {range});" : $"Relu{i}(ref output, {range});");
                    break;
                case StepKind.Affine:
                    w.Line(layer.IsConv ? $"Affine{i}(ref {Ref(s.Out)}, scale{affine}, shift{affine}, {range});" : $"Affine{i}(ref output, scale{affine}, shift{affine}, {range});");
                    affine++;
                    break;
                case StepKind.Lrn:
                    w.Line($"Lrn{i}(ref {Ref(s.In)}, ref {Ref(s.Out)}, {range});");
                    break;
                case StepKind.MaxPool:
                case StepKind.AvgPool:
                    w.Line($"{s.Kind}{i}(ref {Ref(s.In)}, ref {Ref(s.Out)}, {range});");
                    break;
                case StepKind.AdaptiveAvgPool:
                    if (s.In == s.Out) w.Line($"// the identity at {Shape(s.InC, s.InH, s.InW)}: nothing to do");
                    else w.Line($"AdaptiveAvgPool{i}(ref {Ref(s.In)}, ref {Ref(s.Out)}, {range});");
                    break;
                case StepKind.Dropout:
                    w.Line("// the identity at inference (inverted dropout scales while training)");
                    break;
                case StepKind.Flatten:
                    w.Line("// NCHW is already flat in C, H, W order: nothing to do");
                    break;
                case StepKind.Softmax:
                    w.Line("// applied by Network.Forward unless logits are asked for");
                    break;
            }
        }
    }

    private static void EmitStepKernels(SourceWriter w, LayerPlan layer)
    {
        for (int i = 1; i < layer.Steps.Count; i++)
        {
            StepPlan s = layer.Steps[i];
            switch (s.Kind)
            {
                case StepKind.Relu: EmitRelu(w, s, i, layer.IsConv); break;
                case StepKind.Affine: EmitAffine(w, s, i, layer.IsConv); break;
                case StepKind.Lrn: EmitLrn(w, layer, i); break;
                case StepKind.MaxPool: EmitPool(w, s, i, max: true, standalone: !LrnPoolFused(layer, i - 1)); break;
                case StepKind.AvgPool: EmitPool(w, s, i, max: false); break;
                case StepKind.AdaptiveAvgPool: if (s.In != s.Out) EmitAdaptive(w, s, i); break;
            }
        }
    }

    private static string ParamList(LayerPlan layer)
    {
        string p = "float[] weights, float[] bias";
        int n = AffineSteps(layer).Count;
        for (int j = 0; j < n; j++) p += $", float[] scale{j}, float[] shift{j}";
        return p;
    }

    /// <summary>Emits <c>int lo = total * part / parts, hi = ...;</c>: this worker's share of <paramref name="total"/> items.</summary>
    private static void Share(SourceWriter w, string lo, string hi, string total)
    {
        w.Line($"int {lo} = (int)((long){total} * part / parts), {hi} = (int)((long){total} * (part + 1) / parts);");
    }

    // ------------------------------------------------------------------ convolution

    private static void EmitConv(SourceWriter w, ModelPlan model, LayerPlan L)
    {
        LayerSpec s = L.Spec;
        var summary = new List<string>
        {
            $"Layer {X(s.Name)} (spec line {s.Position.Line + 1}): <c>{X(s.Text)}</c>.",
            $"Input {Shape(L.InC, L.InH, L.InW)}, convolution output {Shape(L.OutC, L.OutH, L.OutW)}, line output {Shape(L.FinalC, L.FinalH, L.FinalW)}; {I(L.MultiplyAdds)} multiply-adds per image.",
            $"Convolution as a GEMM per group ({I(L.Groups)}): M = {I(L.CoutG)} output channels, K = {I(L.GemmK)} = {I(L.CinG)}x{I(s.KernelH)}x{I(s.KernelW)}, N = {I(L.GemmN)} output pixels.",
            "Why: with compile-time K and N, each NR-pixel column panel of the image is gathered (im2col, the kernel window",
            "unrolled along its width) into a K x NR buffer that stays in cache while every MR-row panel of packed weights runs",
            "over it: MR broadcasts and 2*MR vector FMAs per step of K. Bias and ReLU are applied in the tile's epilogue while it",
            "is in registers; batch norm right after the convolution is folded into the weights at load.",
            "ISA ladder (MR x NR): AVX-512 8 x 32, AVX2 6 x 16, NEON/SSE Vector128 4 x 8, portable scalar 4 x 4.",
            "Threads: column panels are split into <c>parts</c> (each worker gathers its own), channels for the steps after, with a",
            "barrier between steps; a batch of at least as many images as threads instead gives each thread whole images.",
        };
        for (int i = 1; i < L.Steps.Count; i++)
            if (LrnPoolFused(L, i))
                summary.Add($"Steps {i} and {i + 1} (LRN, max-pool) run as one pass per channel: the normalized plane is pooled from an L1 buffer, never written out.");
        if (L.Winograd)
        {
            summary.AddRange(new[]
            {
                $"Winograd {L.WinogradName} (<c>Forward(..., winograd: true)</c>, what a session uses unless told otherwise): the {Shape(L.OutC, L.OutH, L.OutW)}",
                $"output is covered by {I(L.TilesH)}x{I(L.TilesW)} tiles of {I(L.WinogradTile)}x{I(L.WinogradTile)} outputs, each from a 6x6 input tile, so a tile costs 36 multiply-adds per",
                $"channel pair instead of {I(L.WinogradTile * L.WinogradTile * s.KernelH * s.KernelW)}: {I(36L * L.TilesH * L.TilesW)} per channel pair against {I((long)s.KernelH * s.KernelW * L.OutH * L.OutW)} direct ({((double)s.KernelH * s.KernelW * L.OutH * L.OutW / (36.0 * L.TilesH * L.TilesW)).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)}x fewer, the partial edge tiles counted).",
                $"Why here: the layer is {I(s.KernelH)}x{I(s.KernelW)} at stride 1 and its tiles fill the vector lanes; the transforms cost a few percent of the",
                "products. The weights are transformed once, at load (<c>PackWinogradWeights</c>). Threads: input channels for the input",
                "transform, then a barrier, then row panels of output channels for the products and the output transform.",
            });
            if (WinogradPoolFused(L))
                summary.Add("The max-pool after it runs in the product's epilogue: each output channel is pooled as soon as its plane is complete, while in L1 (the direct product pools after a barrier).");
        }
        Summary(w, summary.ToArray());
        using (w.Block($"public static class {L.ClassName}"))
        {
            w.Line($"public const int InC = {I(L.InC)}, InH = {I(L.InH)}, InW = {I(L.InW)};");
            w.Line($"public const int OutC = {I(L.OutC)}, OutH = {I(L.OutH)}, OutW = {I(L.OutW)};");
            w.Line($"public const int KH = {I(s.KernelH)}, KW = {I(s.KernelW)}, Stride = {I(s.Stride)}, Pad = {I(s.Padding)}, Groups = {I(L.Groups)};");
            w.Line($"public const int CinG = {I(L.CinG)}, CoutG = {I(L.CoutG)}, K = {I(L.GemmK)}, N = {I(L.GemmN)};");
            w.Line("/// <summary>Offset of this line's column-panel buffer (K x 32 floats) in a worker's own region.</summary>");
            w.Line($"public const int ScratchOffset = {I(L.ScratchOffset)};");
            w.Line();
            w.Line("/// <summary>Rows per packed weight panel on the path in use (the GEMM tile's MR).</summary>");
            w.Line("public static int PanelRows => " + PanelRowsLadder() + ";");
            w.Line();
            w.Line("/// <summary>Packs [OutC, CinG, KH, KW] weights into the panels of the path in use; once, at load.</summary>");
            w.Line("public static float[] PackWeights(global::System.ReadOnlySpan<float> weights) => global::AlexNet.Aot.WeightPacking.PackRowPanels(weights, Groups, CoutG, K, PanelRows);");
            w.Line();
            if (L.Winograd) WinogradEmitter.EmitMembers(w, L);
            Summary(w,
                "Runs the line for one image, this worker's share (<paramref name=\"part\"/> of <paramref name=\"parts\"/>).",
                "<paramref name=\"arena\"/> holds the image's activations (shared by the team when it splits one image);",
                "<paramref name=\"own\"/> is this worker's own region, for its column panel. <paramref name=\"features\"/> is this",
                "image's row of the dense input when the line is the last convolution." + (L.Winograd
                    ? " <paramref name=\"winograd\"/> picks the Winograd product, for weights packed by <see cref=\"PackWinogradWeights\"/>;"
                    : ""),
                L.Winograd ? "otherwise the direct product, for weights packed by <see cref=\"PackWeights\"/>." : "The weights are packed by <see cref=\"PackWeights\"/>.");
            using (w.Block($"public static void Forward(ref float arena, ref float own, ref float input, ref float features, {ParamList(L)}, int part, int parts, global::AlexNet.Aot.ThreadTeam? team{(L.Winograd ? ", bool winograd = false" : "")})"))
            {
                w.Line("ref float w = ref MemoryMarshal.GetArrayDataReference(weights);");
                w.Line("ref float b = ref MemoryMarshal.GetArrayDataReference(bias);");
                w.Line("ref float panel = ref Unsafe.Add(ref own, ScratchOffset);");
                w.Line("if (parts > 1) team!.Barrier(); // the line before has finished with the shared buffers");
                StepPlan c = L.Steps[0];
                w.Line("// " + StepComment(L, c, 0));
                if (WinogradPoolFused(L))
                {
                    StepPlan p = L.Steps[1];
                    using (w.Block("if (winograd)"))
                    {
                        w.Line("// " + StepComment(L, p, 1) + " (fused: each output channel is pooled as soon as its plane is complete, while in cache)");
                        WinogradEmitter.EmitCall(w, Ref(c.In), Ref(c.Out), Ref(p.Out));
                    }
                    using (w.Block("else"))
                    {
                        Ladder(w, isa => $"Conv{isa.Suffix}(ref {Ref(c.In)}, ref panel, ref w, ref b, ref {Ref(c.Out)}, part, parts);");
                        EmitSteps(w, L, 1, 2);
                    }
                    EmitSteps(w, L, 2);
                }
                else if (L.Winograd)
                {
                    using (w.Block("if (winograd)")) WinogradEmitter.EmitCall(w, Ref(c.In), Ref(c.Out), null);
                    using (w.Block("else")) Ladder(w, isa => $"Conv{isa.Suffix}(ref {Ref(c.In)}, ref panel, ref w, ref b, ref {Ref(c.Out)}, part, parts);");
                    EmitSteps(w, L, 1);
                }
                else
                {
                    Ladder(w, isa => $"Conv{isa.Suffix}(ref {Ref(c.In)}, ref panel, ref w, ref b, ref {Ref(c.Out)}, part, parts);");
                    EmitSteps(w, L, 1);
                }
            }
            var panelWidths = new SortedSet<int>();
            foreach (IsaPath isa in IsaPath.Ladder) panelWidths.Add(isa.PanelColumns);
            foreach (int nr in panelWidths) { w.Line(); EmitGather(w, L, nr); }
            foreach (IsaPath isa in IsaPath.Ladder) { w.Line(); EmitConvGemm(w, L, isa); }
            if (L.Winograd) WinogradEmitter.EmitKernels(w, L);
            EmitStepKernels(w, L);
        }
    }

    private static string PanelRowsLadder() => RowsLadder(isa => isa.PanelRows);

    /// <summary>A conditional expression picking each ISA path's tile height (rungs equal to the scalar path's are left out).</summary>
    internal static string RowsLadder(System.Func<IsaPath, int> rows)
    {
        int fallback = rows(IsaPath.Ladder[IsaPath.Ladder.Length - 1]);
        string r = "";
        foreach (IsaPath isa in IsaPath.Ladder)
            r += isa.IsScalar ? I(rows(isa)) : rows(isa) == fallback ? "" : $"{isa.Guard} ? {I(rows(isa))} : ";
        return r;
    }

    /// <summary>Emits one call per ISA path, each guarded by its rung (<c>if (Vector512.IsHardwareAccelerated) ... else ...</c>).</summary>
    internal static void Ladder(SourceWriter w, System.Func<IsaPath, string> call)
    {
        bool first = true;
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            if (isa.IsScalar) w.Line($"else {call(isa)}");
            else w.Line($"{(first ? "if" : "else if")} ({isa.Guard}) {call(isa)}");
            first = false;
        }
    }

    private static void EmitGather(SourceWriter w, LayerPlan L, int nr)
    {
        LayerSpec s = L.Spec;
        int panels = (L.GemmN + nr - 1) / nr;
        bool padded = s.Padding > 0;
        Summary(w,
            $"Gathers column panel <paramref name=\"p\"/> of one group ({nr} output pixels, {panels} panels in all) into",
            $"panel[k][j] = src[ic][oy*{s.Stride}-{s.Padding}+ky][ox*{s.Stride}-{s.Padding}+kx] for k = (ic*KH + ky)*KW + kx and p*{nr} + j = oy*OutW + ox{(padded ? ", zero outside the image" : "")}.",
            "Columns past the last pixel repeat it (their results are never stored). The kx window is unrolled.");
        using (w.Block($"private static void Gather{nr}(ref float src, ref float panel, int p)"))
        {
            w.Line($"const int NR = {nr};");
            w.Line("Span<int> iy0 = stackalloc int[NR], ix0 = stackalloc int[NR];");
            using (w.Block("for (int j = 0; j < NR; j++)"))
            {
                w.Line("int n = p * NR + j;");
                w.Line("if (n >= N) n = N - 1;");
                w.Line("int oy = n / OutW;");
                w.Line("iy0[j] = oy * Stride - Pad;");
                w.Line("ix0[j] = (n - oy * OutW) * Stride - Pad;");
            }
            using (w.Block("for (int ic = 0; ic < CinG; ic++)"))
            {
                w.Line("ref float plane = ref Unsafe.Add(ref src, ic * (InH * InW));");
                using (w.Block("for (int ky = 0; ky < KH; ky++)"))
                {
                    w.Line("ref float d = ref Unsafe.Add(ref panel, (ic * KH + ky) * KW * NR);");
                    using (w.Block("for (int j = 0; j < NR; j++)"))
                    {
                        w.Line("int iy = iy0[j] + ky;");
                        if (padded)
                        {
                            using (w.Block("if ((uint)iy >= (uint)InH)"))
                            {
                                for (int kx = 0; kx < s.KernelW; kx++) w.Line($"Unsafe.Add(ref d, {kx * nr} + j) = 0f;");
                                w.Line("continue;");
                            }
                        }
                        w.Line("int ix = ix0[j];");
                        w.Line("ref float row = ref Unsafe.Add(ref plane, iy * InW + ix);");
                        if (padded)
                        {
                            using (w.Block("if (ix >= 0 && ix + KW <= InW)"))
                                for (int kx = 0; kx < s.KernelW; kx++) w.Line($"Unsafe.Add(ref d, {kx * nr} + j) = Unsafe.Add(ref row, {kx});");
                            using (w.Block("else"))
                                for (int kx = 0; kx < s.KernelW; kx++) w.Line($"Unsafe.Add(ref d, {kx * nr} + j) = (uint)(ix + {kx}) < (uint)InW ? Unsafe.Add(ref row, {kx}) : 0f;");
                        }
                        else
                        {
                            for (int kx = 0; kx < s.KernelW; kx++) w.Line($"Unsafe.Add(ref d, {kx * nr} + j) = Unsafe.Add(ref row, {kx});");
                        }
                    }
                }
            }
        }
    }

    private static void EmitConvGemm(SourceWriter w, LayerPlan L, IsaPath isa)
    {
        int nr = isa.PanelColumns;
        int mr = isa.PanelRows;
        int panels = (L.GemmN + nr - 1) / nr;
        int mPanels = (L.CoutG + mr - 1) / mr;
        int full = L.GemmN / nr;
        int tail = L.GemmN % nr;
        bool rowGuard = L.CoutG % mr != 0;
        string V = isa.Vector;
        Summary(w,
            $"The convolution on the {X(isa.Description)} path: output[m][n] = bias[m] + sum over k of w[m][k] * col[k][n]{(L.FuseRelu ? ", then ReLU" : "")}.",
            $"Register tile {mr} rows x {nr} columns ({(isa.IsScalar ? "16 scalar" : I(mr * 2) + " vector")} accumulators); per group {mPanels} row panels x {panels} column panels{(tail != 0 ? $", the last {tail} wide" : "")}; K = {L.GemmK}.",
            "Each (group, column panel) of this worker's share is gathered once, then every row panel of weights runs over it.");
        using (w.Block($"private static void Conv{isa.Suffix}(ref float src, ref float col, ref float w, ref float bias, ref float output, int part, int parts)"))
        {
            w.Line($"const int MR = {mr}, MPanels = {mPanels}, NPanels = {panels};");
            if (tail != 0) w.Line($"Span<float> tail = stackalloc float[{nr}];");
            Share(w, "t0", "t1", "Groups * NPanels");
            using (w.Block("for (int t = t0; t < t1; t++)"))
            {
                w.Line("int g = t / NPanels, p = t - g * NPanels;");
                w.Line($"Gather{nr}(ref Unsafe.Add(ref src, g * (CinG * InH * InW)), ref col, p);");
                w.Line("ref float og = ref Unsafe.Add(ref output, g * (CoutG * N));");
                w.Line("ref float bg = ref Unsafe.Add(ref bias, g * CoutG);");
                w.Line($"int n0 = p * {nr};");
                using (w.Block("for (int mp = 0; mp < MPanels; mp++)"))
                {
                    w.Line("ref float a = ref Unsafe.Add(ref w, (g * MPanels + mp) * (MR * K));");
                    w.Line("int m0 = mp * MR;");
                    if (isa.IsScalar)
                    {
                        for (int r = 0; r < mr; r++)
                            w.Line($"float c{r}0 = 0f, c{r}1 = 0f, c{r}2 = 0f, c{r}3 = 0f;");
                        using (w.Block("for (int k = 0; k < K; k++)"))
                        {
                            w.Line("ref float bk = ref Unsafe.Add(ref col, k * 4);");
                            w.Line("float b0 = bk, b1 = Unsafe.Add(ref bk, 1), b2 = Unsafe.Add(ref bk, 2), b3 = Unsafe.Add(ref bk, 3);");
                            w.Line("ref float ak = ref Unsafe.Add(ref a, k * MR);");
                            for (int r = 0; r < mr; r++)
                            {
                                w.Line($"float a{r} = Unsafe.Add(ref ak, {r});");
                                w.Line($"c{r}0 += a{r} * b0; c{r}1 += a{r} * b1; c{r}2 += a{r} * b2; c{r}3 += a{r} * b3;");
                            }
                        }
                    }
                    else
                    {
                        for (int r = 0; r < mr; r++)
                            w.Line($"{V}<float> c{r}0 = {V}<float>.Zero, c{r}1 = {V}<float>.Zero;");
                        using (w.Block("for (int k = 0; k < K; k++)"))
                        {
                            w.Line($"{V}<float> b0 = {V}.LoadUnsafe(ref col, (nuint)(k * {nr}));");
                            w.Line($"{V}<float> b1 = {V}.LoadUnsafe(ref col, (nuint)(k * {nr} + {isa.Lanes}));");
                            w.Line("ref float ak = ref Unsafe.Add(ref a, k * MR);");
                            for (int r = 0; r < mr; r++)
                            {
                                w.Line($"{V}<float> a{r} = {V}.Create(Unsafe.Add(ref ak, {r}));");
                                w.Line($"c{r}0 = {V}.MultiplyAddEstimate(a{r}, b0, c{r}0); c{r}1 = {V}.MultiplyAddEstimate(a{r}, b1, c{r}1);");
                            }
                        }
                    }
                    for (int r = 0; r < mr; r++)
                    {
                        if (rowGuard) { w.Line($"if (m0 + {r} < CoutG)"); w.Line("{"); w.Indent(); }
                        else { w.Line("{"); w.Indent(); }
                        w.Line($"ref float o = ref Unsafe.Add(ref og, (m0 + {r}) * N + n0);");
                        w.Line($"float bias{r} = Unsafe.Add(ref bg, m0 + {r});");
                        if (isa.IsScalar)
                        {
                            for (int j = 0; j < 4; j++)
                                w.Line($"float v{j} = c{r}{j} + bias{r};" + (L.FuseRelu ? $" if (v{j} < 0f) v{j} = 0f;" : ""));
                            if (tail != 0)
                            {
                                using (w.Block($"if (p < {full})"))
                                    w.Line("o = v0; Unsafe.Add(ref o, 1) = v1; Unsafe.Add(ref o, 2) = v2; Unsafe.Add(ref o, 3) = v3;");
                                using (w.Block("else"))
                                {
                                    w.Line("tail[0] = v0; tail[1] = v1; tail[2] = v2; tail[3] = v3;");
                                    w.Line($"tail.Slice(0, {tail}).CopyTo(MemoryMarshal.CreateSpan(ref o, {tail}));");
                                }
                            }
                            else
                            {
                                w.Line("o = v0; Unsafe.Add(ref o, 1) = v1; Unsafe.Add(ref o, 2) = v2; Unsafe.Add(ref o, 3) = v3;");
                            }
                        }
                        else
                        {
                            w.Line($"{V}<float> bv{r} = {V}.Create(bias{r});");
                            w.Line($"{V}<float> v0 = c{r}0 + bv{r}, v1 = c{r}1 + bv{r};");
                            if (L.FuseRelu) w.Line($"v0 = {V}.Max(v0, {V}<float>.Zero); v1 = {V}.Max(v1, {V}<float>.Zero);");
                            if (tail != 0)
                            {
                                using (w.Block($"if (p < {full})"))
                                    w.Line($"v0.StoreUnsafe(ref o); v1.StoreUnsafe(ref o, {isa.Lanes});");
                                using (w.Block("else"))
                                {
                                    w.Line($"v0.StoreUnsafe(ref MemoryMarshal.GetReference(tail)); v1.StoreUnsafe(ref MemoryMarshal.GetReference(tail), {isa.Lanes});");
                                    w.Line($"tail.Slice(0, {tail}).CopyTo(MemoryMarshal.CreateSpan(ref o, {tail}));");
                                }
                            }
                            else
                            {
                                w.Line($"v0.StoreUnsafe(ref o); v1.StoreUnsafe(ref o, {isa.Lanes});");
                            }
                        }
                        w.Dedent();
                        w.Line("}");
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ dense

    private static void EmitDense(SourceWriter w, ModelPlan model, LayerPlan L)
    {
        LayerSpec s = L.Spec;
        int inF = L.GemmK, outF = L.OutC;
        Summary(w,
            $"Layer {X(s.Name)} (spec line {s.Position.Line + 1}): <c>{X(s.Text)}</c>.",
            $"Dense {I(inF)} → {I(outF)}; {I(L.MultiplyAdds)} multiply-adds per image; weights [{I(outF)}, {I(inF)}] row-major as PyTorch stores them.",
            "Why: at small batches the layer is bound by streaming its weights once per call, so four output rows share each",
            "input load and every image of the batch reuses the four rows from cache. Bias and ReLU are fused.",
            "ISA ladder: Vector512 → Vector256 → Vector128 dot products, portable scalar.",
            "Threads: the output rows are split into <c>parts</c> (blocks of four); the steps after the product run on the same rows.");
        using (w.Block($"public static class {L.ClassName}"))
        {
            w.Line($"public const int In = {I(inF)}, Out = {I(outF)};");
            w.Line();
            foreach (bool bf16 in new[] { false, true })
            {
                if (bf16) w.Line();
                Summary(w, bf16
                    ? "Runs the line for a batch with bfloat16 weights (float32 accumulation), this worker's rows."
                    : "Runs the line for a batch (input [batch, In], output [batch, Out]), this worker's rows.");
                string list = ParamList(L).Replace("float[] weights", bf16 ? "ushort[] weights" : "global::System.ReadOnlyMemory<float> weights");
                using (w.Block($"public static void Forward{(bf16 ? "Bf16" : "")}(ref float input, ref float output, int batch, {list}, int part, int parts)"))
                {
                    w.Line(bf16 ? "ref ushort w = ref MemoryMarshal.GetArrayDataReference(weights);" : "ref float w = ref MemoryMarshal.GetReference(weights.Span); // the loaded array, or a mapped file's pages");
                    w.Line("ref float b = ref MemoryMarshal.GetArrayDataReference(bias);");
                    Share(w, "blockLo", "blockHi", I(outF / 4));
                    w.Line($"int o0 = blockLo * 4, o1 = part == parts - 1 ? Out : blockHi * 4;");
                    w.Line("// " + StepComment(L, L.Steps[0], 0));
                    string k = bf16 ? "DenseBf16" : "Dense";
                    Ladder(w, isa => $"{k}{isa.Suffix}(ref input, ref output, batch, ref w, ref b, o0, o1);");
                    EmitSteps(w, L, 1);
                }
            }
            foreach (IsaPath isa in IsaPath.Ladder) { w.Line(); EmitDenseKernel(w, L, isa); }
            foreach (IsaPath isa in IsaPath.Ladder) { w.Line(); EmitDenseBf16Kernel(w, L, isa); }
            EmitStepKernels(w, L);
        }
    }

    private static void EmitDenseKernel(SourceWriter w, LayerPlan L, IsaPath isa)
    {
        int inF = L.GemmK;
        string V = isa.Vector;
        int vecEnd = isa.IsScalar ? 0 : inF / isa.Lanes * isa.Lanes;
        Summary(w, $"Dense product of rows [o0, o1) on the {X(isa.Description)} path{(L.FuseRelu ? ", bias and ReLU fused" : ", bias fused")}: blocks of four rows by four images (16 accumulators), then single images, then single rows.");
        using (w.Block($"private static void Dense{isa.Suffix}(ref float x, ref float y, int batch, ref float w, ref float bias, int o0, int o1)"))
        {
            string relu(string v) => L.FuseRelu ? $" if ({v} < 0f) {v} = 0f;" : "";
            w.Line("int o = o0;");
            using (w.Block("for (; o + 4 <= o1; o += 4)"))
            {
                w.Line("ref float w0 = ref Unsafe.Add(ref w, o * In);");
                w.Line("ref float w1 = ref Unsafe.Add(ref w0, In);");
                w.Line("ref float w2 = ref Unsafe.Add(ref w1, In);");
                w.Line("ref float w3 = ref Unsafe.Add(ref w2, In);");
                w.Line("int n = 0;");
                if (!isa.IsScalar)
                {
                    // Four rows x four images: 16 accumulators, 8 loads per 16 FMAs (weights reused across images).
                    using (w.Block("for (; n + 4 <= batch; n += 4)"))
                    {
                        for (int c = 0; c < 4; c++) w.Line($"ref float x{c} = ref Unsafe.Add(ref x, (n + {c}) * In);");
                        for (int r = 0; r < 4; r++)
                            w.Line($"{V}<float> a{r}0 = {V}<float>.Zero, a{r}1 = {V}<float>.Zero, a{r}2 = {V}<float>.Zero, a{r}3 = {V}<float>.Zero;");
                        using (w.Block($"for (int i = 0; i < {vecEnd}; i += {isa.Lanes})"))
                        {
                            for (int c = 0; c < 4; c++) w.Line($"{V}<float> xv{c} = {V}.LoadUnsafe(ref x{c}, (nuint)i);");
                            for (int r = 0; r < 4; r++)
                            {
                                w.Line($"{V}<float> wv{r} = {V}.LoadUnsafe(ref w{r}, (nuint)i);");
                                w.Line($"a{r}0 = {V}.MultiplyAddEstimate(wv{r}, xv0, a{r}0); a{r}1 = {V}.MultiplyAddEstimate(wv{r}, xv1, a{r}1); a{r}2 = {V}.MultiplyAddEstimate(wv{r}, xv2, a{r}2); a{r}3 = {V}.MultiplyAddEstimate(wv{r}, xv3, a{r}3);");
                            }
                        }
                        for (int c = 0; c < 4; c++)
                        {
                            for (int r = 0; r < 4; r++)
                            {
                                w.Line($"float q{r}{c} = {V}.Sum(a{r}{c});");
                            }
                        }
                        if (vecEnd < inF)
                        {
                            using (w.Block($"for (int i = {vecEnd}; i < In; i++)"))
                            {
                                for (int c = 0; c < 4; c++)
                                    w.Line($"q0{c} += Unsafe.Add(ref w0, i) * Unsafe.Add(ref x{c}, i); q1{c} += Unsafe.Add(ref w1, i) * Unsafe.Add(ref x{c}, i); q2{c} += Unsafe.Add(ref w2, i) * Unsafe.Add(ref x{c}, i); q3{c} += Unsafe.Add(ref w3, i) * Unsafe.Add(ref x{c}, i);");
                            }
                        }
                        for (int c = 0; c < 4; c++)
                        {
                            w.Line($"ref float y{c} = ref Unsafe.Add(ref y, (n + {c}) * Out + o);");
                            for (int r = 0; r < 4; r++)
                                w.Line($"q{r}{c} += Unsafe.Add(ref bias, o + {r});{relu($"q{r}{c}")} Unsafe.Add(ref y{c}, {r}) = q{r}{c};");
                        }
                    }
                }
                using (w.Block("for (; n < batch; n++)"))
                {
                    w.Line("ref float xn = ref Unsafe.Add(ref x, n * In);");
                    if (!isa.IsScalar)
                    {
                        w.Line($"{V}<float> s0 = {V}<float>.Zero, s1 = {V}<float>.Zero, s2 = {V}<float>.Zero, s3 = {V}<float>.Zero;");
                        using (w.Block($"for (int i = 0; i < {vecEnd}; i += {isa.Lanes})"))
                        {
                            w.Line($"{V}<float> xv = {V}.LoadUnsafe(ref xn, (nuint)i);");
                            for (int r = 0; r < 4; r++)
                                w.Line($"s{r} = {V}.MultiplyAddEstimate({V}.LoadUnsafe(ref w{r}, (nuint)i), xv, s{r});");
                        }
                        w.Line($"float r0 = {V}.Sum(s0), r1 = {V}.Sum(s1), r2 = {V}.Sum(s2), r3 = {V}.Sum(s3);");
                    }
                    else
                    {
                        w.Line("float r0 = 0f, r1 = 0f, r2 = 0f, r3 = 0f;");
                    }
                    if (vecEnd < inF)
                    {
                        using (w.Block($"for (int i = {vecEnd}; i < In; i++)"))
                        {
                            w.Line("float xi = Unsafe.Add(ref xn, i);");
                            w.Line("r0 += Unsafe.Add(ref w0, i) * xi; r1 += Unsafe.Add(ref w1, i) * xi; r2 += Unsafe.Add(ref w2, i) * xi; r3 += Unsafe.Add(ref w3, i) * xi;");
                        }
                    }
                    w.Line("ref float yn = ref Unsafe.Add(ref y, n * Out + o);");
                    for (int r = 0; r < 4; r++)
                        w.Line($"r{r} += Unsafe.Add(ref bias, o + {r});{relu("r" + r)} Unsafe.Add(ref yn, {r}) = r{r};");
                }
            }
            using (w.Block("for (; o < o1; o++)"))
            {
                w.Line("ref float w0 = ref Unsafe.Add(ref w, o * In);");
                using (w.Block("for (int n = 0; n < batch; n++)"))
                {
                    w.Line("ref float xn = ref Unsafe.Add(ref x, n * In);");
                    if (!isa.IsScalar)
                    {
                        w.Line($"{V}<float> s0 = {V}<float>.Zero;");
                        using (w.Block($"for (int i = 0; i < {vecEnd}; i += {isa.Lanes})"))
                            w.Line($"s0 = {V}.MultiplyAddEstimate({V}.LoadUnsafe(ref w0, (nuint)i), {V}.LoadUnsafe(ref xn, (nuint)i), s0);");
                        w.Line($"float r0 = {V}.Sum(s0);");
                    }
                    else
                    {
                        w.Line("float r0 = 0f;");
                    }
                    if (vecEnd < inF)
                    {
                        using (w.Block($"for (int i = {vecEnd}; i < In; i++)"))
                            w.Line("r0 += Unsafe.Add(ref w0, i) * Unsafe.Add(ref xn, i);");
                    }
                    w.Line($"r0 += Unsafe.Add(ref bias, o);{relu("r0")}");
                    w.Line("Unsafe.Add(ref y, n * Out + o) = r0;");
                }
            }
        }
    }

    private static void EmitDenseBf16Kernel(SourceWriter w, LayerPlan L, IsaPath isa)
    {
        int inF = L.GemmK;
        string V = isa.Vector;
        int step = isa.IsScalar ? 1 : 2 * isa.Lanes; // one vector of ushort widens to two of float
        int vecEnd = isa.IsScalar ? 0 : inF / step * step;
        Summary(w,
            $"Dense product of rows [o0, o1) with bfloat16 weights on the {X(isa.Description)} path: each weight widens to float32",
            "by a 16-bit shift (exact), products accumulate in float32; blocks of four rows, then single rows.");
        using (w.Block($"private static void DenseBf16{isa.Suffix}(ref float x, ref float y, int batch, ref ushort w, ref float bias, int o0, int o1)"))
        {
            string relu(string v) => L.FuseRelu ? $" if ({v} < 0f) {v} = 0f;" : "";
            for (int rows = 4; rows >= 1; rows -= 3)
            {
                using (w.Block(rows == 4 ? "for (int o = o0; o + 4 <= o1; o += 4)" : "for (int o = o0 + (o1 - o0) / 4 * 4; o < o1; o++)"))
                {
                    for (int r = 0; r < rows; r++)
                        w.Line($"ref ushort w{r} = ref Unsafe.Add(ref w, (o + {r}) * In);");
                    using (w.Block("for (int n = 0; n < batch; n++)"))
                    {
                        w.Line("ref float xn = ref Unsafe.Add(ref x, n * In);");
                        if (!isa.IsScalar)
                        {
                            for (int r = 0; r < rows; r++) w.Line($"{V}<float> s{r} = {V}<float>.Zero;");
                            using (w.Block($"for (int i = 0; i < {vecEnd}; i += {step})"))
                            {
                                w.Line($"{V}<float> x0 = {V}.LoadUnsafe(ref xn, (nuint)i), x1 = {V}.LoadUnsafe(ref xn, (nuint)(i + {isa.Lanes}));");
                                for (int r = 0; r < rows; r++)
                                {
                                    w.Line($"({V}<uint> lo{r}, {V}<uint> hi{r}) = {V}.Widen({V}.LoadUnsafe(ref w{r}, (nuint)i));");
                                    w.Line($"s{r} = {V}.MultiplyAddEstimate({V}.ShiftLeft(lo{r}, 16).AsSingle(), x0, s{r});");
                                    w.Line($"s{r} = {V}.MultiplyAddEstimate({V}.ShiftLeft(hi{r}, 16).AsSingle(), x1, s{r});");
                                }
                            }
                            for (int r = 0; r < rows; r++) w.Line($"float r{r} = {V}.Sum(s{r});");
                        }
                        else
                        {
                            for (int r = 0; r < rows; r++) w.Line($"float r{r} = 0f;");
                        }
                        if (vecEnd < inF)
                        {
                            using (w.Block($"for (int i = {vecEnd}; i < In; i++)"))
                            {
                                w.Line("float xi = Unsafe.Add(ref xn, i);");
                                for (int r = 0; r < rows; r++)
                                    w.Line($"r{r} += BitConverter.Int32BitsToSingle(Unsafe.Add(ref w{r}, i) << 16) * xi;");
                            }
                        }
                        for (int r = 0; r < rows; r++)
                            w.Line($"r{r} += Unsafe.Add(ref bias, o + {r});{relu("r" + r)} Unsafe.Add(ref y, n * Out + o + {r}) = r{r};");
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ element-wise and pooling steps

    private static void EmitRelu(SourceWriter w, StepPlan s, int i, bool conv)
    {
        int hw = s.OutH * s.OutW;
        Summary(w, $"Step {i}: ReLU in place over {Shape(s.OutC, s.OutH, s.OutW)} per image, this worker's {(conv ? "channels" : "rows")} (NaN stays NaN, as in PyTorch).");
        if (conv)
        {
            using (w.Block($"private static void Relu{i}(ref float x, int part, int parts)"))
            {
                Share(w, "c0", "c1", I(s.OutC));
                using (w.Block($"for (int j = c0 * {hw}; j < c1 * {hw}; j++)"))
                    w.Line("if (Unsafe.Add(ref x, j) < 0f) Unsafe.Add(ref x, j) = 0f;");
            }
            return;
        }
        using (w.Block($"private static void Relu{i}(ref float y, int batch, int o0, int o1)"))
        using (w.Block("for (int n = 0; n < batch; n++)"))
        using (w.Block("for (int o = o0; o < o1; o++)"))
            w.Line($"if (Unsafe.Add(ref y, n * {s.OutC} + o) < 0f) Unsafe.Add(ref y, n * {s.OutC} + o) = 0f;");
    }

    private static void EmitAffine(SourceWriter w, StepPlan s, int i, bool conv)
    {
        int hw = s.OutH * s.OutW;
        Summary(w, $"Step {i}: batch norm (inference) as x * scale[c] + shift[c] in place over {Shape(s.OutC, s.OutH, s.OutW)} per image, this worker's {(conv ? "channels" : "rows")}.");
        if (conv)
        {
            using (w.Block($"private static void Affine{i}(ref float x, float[] scale, float[] shift, int part, int parts)"))
            {
                Share(w, "c0", "c1", I(s.OutC));
                using (w.Block("for (int c = c0; c < c1; c++)"))
                {
                    w.Line("float sc = scale[c], sh = shift[c];");
                    w.Line($"ref float p = ref Unsafe.Add(ref x, c * {hw});");
                    using (w.Block($"for (int j = 0; j < {hw}; j++)"))
                        w.Line("Unsafe.Add(ref p, j) = Unsafe.Add(ref p, j) * sc + sh;");
                }
            }
            return;
        }
        using (w.Block($"private static void Affine{i}(ref float y, float[] scale, float[] shift, int batch, int o0, int o1)"))
        using (w.Block("for (int n = 0; n < batch; n++)"))
        using (w.Block("for (int o = o0; o < o1; o++)"))
            w.Line($"Unsafe.Add(ref y, n * {s.OutC} + o) = Unsafe.Add(ref y, n * {s.OutC} + o) * scale[o] + shift[o];");
    }

    private static void EmitLrn(SourceWriter w, LayerPlan layer, int i)
    {
        StepPlan s = layer.Steps[i];
        OpSpec op = s.Op!;
        int c = s.InC, hw = s.InH * s.InW;
        int before = op.Size / 2, after = (op.Size - 1) / 2;
        float alphaOverSize = op.Alpha / op.Size;
        string pow = op.Beta == 0.75f ? "1 / (sqrt(t) * sqrt(sqrt(t)))" : op.Beta == 0.5f ? "1 / sqrt(t)" : op.Beta == 1f ? "1 / t" : $"MathF.Pow(t, -{F(op.Beta)})";
        Summary(w,
            $"Step {i}, one channel: local response normalization <c>{X(op.Text)}</c> of channel <paramref name=\"c\"/> of {Shape(c, s.InH, s.InW)}, as PyTorch/ONNX/Caffe:",
            $"out[c] = in[c] / (k + alpha/size * sum of in[c']^2 for c' in [c-{before}, c+{after}])^beta, alpha/size = {X(F(alphaOverSize))}; t^-beta as {X(pow)}.",
            "Vectorized along the plane's pixels, scalar for the last ones; the channel's output plane goes to <paramref name=\"o\"/>.");
        w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
        using (w.Block($"private static void LrnPlane{i}(ref float src, int c, ref float o)"))
        {
            w.Line($"const int C = {c}, HW = {hw};");
            w.Line($"int lo = c - {before} < 0 ? 0 : c - {before}, hi = c + {after} >= C ? C - 1 : c + {after};");
            w.Line("ref float x = ref Unsafe.Add(ref src, c * HW);");
            w.Line("int i = 0;");
            bool first = true;
            foreach (IsaPath isa in IsaPath.Ladder)
            {
                if (isa.IsScalar || isa.Lanes > hw) continue;
                string V = isa.Vector;
                using (w.Block($"{(first ? "if" : "else if")} ({isa.Guard})"))
                {
                    using (w.Block($"for (; i + {isa.Lanes} <= HW; i += {isa.Lanes})"))
                    {
                        w.Line($"{V}<float> sum = {V}<float>.Zero;");
                        using (w.Block("for (int j = lo; j <= hi; j++)"))
                        {
                            w.Line($"{V}<float> v = {V}.LoadUnsafe(ref src, (nuint)(j * HW + i));");
                            w.Line($"sum = {V}.MultiplyAddEstimate(v, v, sum);");
                        }
                        w.Line($"{V}<float> t = {V}.Create({F(op.K)}) + {V}.Create({F(alphaOverSize)}) * sum;");
                        string vpow = op.Beta == 0.75f ? $"{V}<float>.One / ({V}.Sqrt(t) * {V}.Sqrt({V}.Sqrt(t)))"
                            : op.Beta == 0.5f ? $"{V}<float>.One / {V}.Sqrt(t)"
                            : op.Beta == 1f ? $"{V}<float>.One / t" : "";
                        if (vpow.Length > 0)
                        {
                            w.Line($"({V}.LoadUnsafe(ref x, (nuint)i) * ({vpow})).StoreUnsafe(ref o, (nuint)i);");
                        }
                        else
                        {
                            using (w.Block($"for (int l = 0; l < {isa.Lanes}; l++)"))
                                w.Line($"Unsafe.Add(ref o, i + l) = Unsafe.Add(ref x, i + l) * MathF.Pow(t.GetElement(l), -{F(op.Beta)});");
                        }
                    }
                }
                first = false;
            }
            using (w.Block("for (; i < HW; i++)"))
            {
                w.Line("float sum = 0f;");
                using (w.Block("for (int j = lo; j <= hi; j++)"))
                {
                    w.Line("float v = Unsafe.Add(ref src, j * HW + i);");
                    w.Line("sum += v * v;");
                }
                w.Line($"float t = {F(op.K)} + {F(alphaOverSize)} * sum;");
                string spow = op.Beta == 0.75f ? "1f / (MathF.Sqrt(t) * MathF.Sqrt(MathF.Sqrt(t)))"
                    : op.Beta == 0.5f ? "1f / MathF.Sqrt(t)" : op.Beta == 1f ? "1f / t" : $"MathF.Pow(t, -{F(op.Beta)})";
                w.Line($"Unsafe.Add(ref o, i) = Unsafe.Add(ref x, i) * ({spow});");
            }
        }
        w.Line();
        if (LrnPoolFused(layer, i))
        {
            StepPlan p = layer.Steps[i + 1];
            Summary(w,
                $"Steps {i} and {i + 1} fused, this worker's channels: each channel's LRN plane (<see cref=\"LrnPlane{i}\"/>) goes to a",
                $"{I(hw)}-float buffer on the stack and is max-pooled from there (<see cref=\"PoolPlane{i + 1}\"/>) while it is in L1: the",
                $"{Shape(c, s.InH, s.InW)} normalized activations are never written out, and one barrier fewer.");
            using (w.Block($"private static void LrnMaxPool{i}(ref float src, ref float dst, int part, int parts)"))
            {
                w.Line($"const int C = {c}, OHW = {p.OutH * p.OutW};");
                w.Line($"Span<float> planeBuffer = stackalloc float[{hw}], rowMax = stackalloc float[{s.InW}];");
                w.Line("ref float plane = ref MemoryMarshal.GetReference(planeBuffer);");
                w.Line("ref float r = ref MemoryMarshal.GetReference(rowMax);");
                Share(w, "c0", "c1", "C");
                using (w.Block("for (int c = c0; c < c1; c++)"))
                {
                    w.Line($"LrnPlane{i}(ref src, c, ref plane);");
                    w.Line($"PoolPlane{i + 1}(ref plane, ref Unsafe.Add(ref dst, c * OHW), ref r);");
                }
            }
            return;
        }
        Summary(w, $"Step {i}: <see cref=\"LrnPlane{i}\"/> over this worker's channels.");
        using (w.Block($"private static void Lrn{i}(ref float src, ref float dst, int part, int parts)"))
        {
            w.Line($"const int C = {c}, HW = {hw};");
            Share(w, "c0", "c1", "C");
            w.Line($"for (int c = c0; c < c1; c++) LrnPlane{i}(ref src, c, ref Unsafe.Add(ref dst, c * HW));");
        }
    }

    private static void EmitPool(SourceWriter w, StepPlan s, int i, bool max, bool standalone = true)
    {
        OpSpec op = s.Op!;
        if (max && op.Padding == 0)
        {
            EmitSeparableMaxPool(w, s, i, standalone);
            return;
        }
        string kind = max ? "MaxPool" : "AvgPool";
        Summary(w,
            $"Step {i}: <c>{X(op.Text)}</c> over {Shape(s.InC, s.InH, s.InW)} → {Shape(s.OutC, s.OutH, s.OutW)}: window {op.Kernel}x{op.Kernel}, stride {op.Stride}, padding {op.Padding}{(op.CeilMode ? ", ceil mode" : "")}"
            + (max ? " (padding never wins)." : op.CountIncludePad ? " (the divisor counts padding, as PyTorch's count_include_pad=True)." : " (the divisor counts only pixels inside the image)."),
            "Scalar on every ISA: it reads each input pixel about (k/s)^2 times and costs little beside the convolutions.");
        using (w.Block($"private static void {kind}{i}(ref float src, ref float dst, int part, int parts)"))
        {
            w.Line($"const int C = {s.InC}, H = {s.InH}, W = {s.InW}, OH = {s.OutH}, OW = {s.OutW}, KS = {op.Kernel}, S = {op.Stride}, P = {op.Padding};");
            Share(w, "c0", "c1", "C");
            using (w.Block("for (int c = c0; c < c1; c++)"))
            {
                w.Line("ref float plane = ref Unsafe.Add(ref src, c * H * W);");
                using (w.Block("for (int oy = 0; oy < OH; oy++)"))
                {
                    w.Line("int y0 = oy * S - P, y1 = y0 + KS;");
                    if (!max) w.Line("int py1 = y1 > H + P ? H + P : y1;");
                    w.Line("if (y0 < 0) y0 = 0;");
                    w.Line("if (y1 > H) y1 = H;");
                    using (w.Block("for (int ox = 0; ox < OW; ox++)"))
                    {
                        w.Line("int x0 = ox * S - P, x1 = x0 + KS;");
                        if (!max) w.Line("int div = (py1 - (oy * S - P)) * ((x1 > W + P ? W + P : x1) - x0);");
                        w.Line("if (x0 < 0) x0 = 0;");
                        w.Line("if (x1 > W) x1 = W;");
                        w.Line(max ? "float m = float.NegativeInfinity;" : "float m = 0f;");
                        using (w.Block("for (int y = y0; y < y1; y++)"))
                        using (w.Block("for (int x = x0; x < x1; x++)"))
                        {
                            w.Line("float v = Unsafe.Add(ref plane, y * W + x);");
                            w.Line(max ? "if (v > m || float.IsNaN(v)) m = v;" : "m += v;");
                        }
                        if (!max && !op.CountIncludePad) w.Line("div = (y1 - y0) * (x1 - x0);");
                        w.Line(max ? "Unsafe.Add(ref dst, (c * OH + oy) * OW + ox) = m;" : "Unsafe.Add(ref dst, (c * OH + oy) * OW + ox) = m / div;");
                    }
                }
            }
        }
    }

    /// <summary>Max-pooling without padding (the only max-pool whose window never leaves the image): the separable form below.</summary>
    internal static bool SeparableMaxPool(StepPlan s) => s.Kind == StepKind.MaxPool && s.Op!.Padding == 0;

    /// <summary>An LRN step whose next step is a separable max-pool: both run as one pass per channel (<c>LrnMaxPool</c>).</summary>
    internal static bool LrnPoolFused(LayerPlan layer, int i) =>
        layer.Steps[i].Kind == StepKind.Lrn && i + 1 < layer.Steps.Count && SeparableMaxPool(layer.Steps[i + 1]);

    /// <summary>A Winograd layer whose convolution is followed directly by a separable max-pool: the product pools each
    /// output channel as soon as its plane is complete (<see cref="WinogradEmitter"/>).</summary>
    internal static bool WinogradPoolFused(LayerPlan layer) =>
        layer.Winograd && layer.Steps.Count > 1 && SeparableMaxPool(layer.Steps[1]);

    /// <summary>Max-pooling without padding, as two passes per output row: the window's rows reduced with vector max
    /// (widest ISA, the last vector overlapping), then the columns in scalar. NaN propagates, as in PyTorch. One plane
    /// at a time (<c>PoolPlane</c>), so that the convolution's and the LRN's epilogues can pool a channel while it is in cache.</summary>
    private static void EmitSeparableMaxPool(SourceWriter w, StepPlan s, int i, bool standalone)
    {
        OpSpec op = s.Op!;
        Summary(w,
            $"Step {i}, one channel: <c>{X(op.Text)}</c> of a {I(s.InH)}x{I(s.InW)} plane into a {I(s.OutH)}x{I(s.OutW)} one: window {op.Kernel}x{op.Kernel}, stride {op.Stride}{(op.CeilMode ? ", ceil mode (the last window is cut at the edge)" : "")}.",
            "Separable: per output row, the window's input rows are reduced to one row <paramref name=\"r\"/> (W floats) with vector max",
            "(ISA ladder, the last vector overlapping the one before), then each output takes the max of its columns. NaN",
            "propagates, as in PyTorch.");
        w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
        using (w.Block($"private static void PoolPlane{i}(ref float plane, ref float o, ref float r)"))
        {
            w.Line($"const int H = {s.InH}, W = {s.InW}, OH = {s.OutH}, OW = {s.OutW}, KS = {op.Kernel}, S = {op.Stride};");
            using (w.Block("for (int oy = 0; oy < OH; oy++)"))
            {
                w.Line("int y0 = oy * S, y1 = y0 + KS > H ? H : y0 + KS;");
                w.Line("MemoryMarshal.CreateReadOnlySpan(ref Unsafe.Add(ref plane, y0 * W), W).CopyTo(MemoryMarshal.CreateSpan(ref r, W));");
                using (w.Block("for (int y = y0 + 1; y < y1; y++)"))
                {
                    w.Line("ref float row = ref Unsafe.Add(ref plane, y * W);");
                    bool first = true;
                    foreach (IsaPath isa in IsaPath.Ladder)
                    {
                        if (isa.IsScalar || isa.Lanes > s.InW) continue;
                        string V = isa.Vector;
                        using (w.Block($"{(first ? "if" : "else if")} ({isa.Guard})"))
                        {
                            using (w.Block($"for (int x = 0; x < W; x += {isa.Lanes})"))
                            {
                                w.Line($"nuint at = (nuint)(x + {isa.Lanes} <= W ? x : W - {isa.Lanes});");
                                w.Line($"{V}.Max({V}.LoadUnsafe(ref r, at), {V}.LoadUnsafe(ref row, at)).StoreUnsafe(ref r, at);");
                            }
                        }
                        first = false;
                    }
                    using (w.Block(first ? "" : "else"))
                    {
                        using (w.Block("for (int x = 0; x < W; x++)"))
                            w.Line("Unsafe.Add(ref r, x) = MathF.Max(Unsafe.Add(ref r, x), Unsafe.Add(ref row, x));");
                    }
                }
                w.Line("ref float orow = ref Unsafe.Add(ref o, oy * OW);");
                using (w.Block("for (int ox = 0; ox < OW; ox++)"))
                {
                    w.Line("int x0 = ox * S, x1 = x0 + KS > W ? W : x0 + KS;");
                    w.Line("float m = Unsafe.Add(ref r, x0);");
                    w.Line("for (int x = x0 + 1; x < x1; x++) m = MathF.Max(m, Unsafe.Add(ref r, x));");
                    w.Line("Unsafe.Add(ref orow, ox) = m;");
                }
            }
        }
        if (!standalone) return;
        w.Line();
        Summary(w,
            $"Step {i}: <c>{X(op.Text)}</c> over {Shape(s.InC, s.InH, s.InW)} → {Shape(s.OutC, s.OutH, s.OutW)}, this worker's channels, one plane at a",
            $"time (<see cref=\"PoolPlane{i}\"/>).");
        using (w.Block($"private static void MaxPool{i}(ref float src, ref float dst, int part, int parts)"))
        {
            w.Line($"const int C = {s.InC}, HW = {s.InH * s.InW}, OHW = {s.OutH * s.OutW};");
            w.Line($"Span<float> rowMax = stackalloc float[{s.InW}];");
            w.Line("ref float r = ref MemoryMarshal.GetReference(rowMax);");
            Share(w, "c0", "c1", "C");
            w.Line($"for (int c = c0; c < c1; c++) PoolPlane{i}(ref Unsafe.Add(ref src, c * HW), ref Unsafe.Add(ref dst, c * OHW), ref r);");
        }
    }

    private static void EmitAdaptive(SourceWriter w, StepPlan s, int i)
    {
        Summary(w,
            $"Step {i}: adaptive average pool {Shape(s.InC, s.InH, s.InW)} → {Shape(s.OutC, s.OutH, s.OutW)}, PyTorch's windows:",
            "rows floor(oy*H/OH) to ceil((oy+1)*H/OH), columns likewise. Scalar on every ISA.");
        using (w.Block($"private static void AdaptiveAvgPool{i}(ref float src, ref float dst, int part, int parts)"))
        {
            w.Line($"const int C = {s.InC}, H = {s.InH}, W = {s.InW}, OH = {s.OutH}, OW = {s.OutW};");
            Share(w, "c0", "c1", "C");
            using (w.Block("for (int c = c0; c < c1; c++)"))
            using (w.Block("for (int oy = 0; oy < OH; oy++)"))
            {
                w.Line("int y0 = oy * H / OH, y1 = ((oy + 1) * H + OH - 1) / OH;");
                using (w.Block("for (int ox = 0; ox < OW; ox++)"))
                {
                    w.Line("int x0 = ox * W / OW, x1 = ((ox + 1) * W + OW - 1) / OW;");
                    w.Line("float m = 0f;");
                    using (w.Block("for (int y = y0; y < y1; y++)"))
                    using (w.Block("for (int x = x0; x < x1; x++)"))
                        w.Line("m += Unsafe.Add(ref src, (c * H + y) * W + x);");
                    w.Line("Unsafe.Add(ref dst, (c * OH + oy) * OW + ox) = m / ((y1 - y0) * (x1 - x0));");
                }
            }
        }
    }
}
