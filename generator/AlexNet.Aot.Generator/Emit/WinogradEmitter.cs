using AlexNet.Aot.Generator.Model;
using AlexNet.Aot.Generator.Planning;
using static AlexNet.Aot.Generator.Emit.Format;

namespace AlexNet.Aot.Generator.Emit;

/// <summary>
/// Emits the Winograd convolution of a stride-1 layer on 6x6 input tiles (Lavin and Gray, "Fast Algorithms for
/// Convolutional Neural Networks", 2016), F(4x4, 3x3) for 3x3 kernels and F(2x2, 5x5) for 5x5 ones, both on the points
/// 0, ±1, ±2 and ∞ (so both share Bᵀ): per image, the input is cut into overlapping 6x6 tiles (stride m, the output
/// tile), each transformed to V = Bᵀ d B; the 36 elements of a tile become 36 independent products M[ξ] = U[ξ] V[ξ]
/// over the input channels (U = G g Gᵀ, the weights transformed at load); each m x m output tile is Aᵀ M A. 36
/// multiply-adds per tile and channel pair replace the direct form's 144 (3x3) or 100 (5x5).
/// </summary>
internal static class WinogradEmitter
{
    /// <summary>The layer's Winograd constants, weight packing and ISA ladder for its row-panel height.</summary>
    public static void EmitMembers(SourceWriter w, LayerPlan L)
    {
        int m = L.WinogradTile;
        w.Line($"/// <summary>Winograd {L.WinogradName}: the output tile's side, {I(m)}x{I(m)} output tiles per column and per row, tiles in all, tile columns");
        w.Line($"/// (padded to {I(Planner.WinogradColumnAlign)}), and where the transformed input [Groups][36][TileColumns / 16][CinG][16] starts in the image's region.</summary>");
        w.Line($"public const int Tile = {I(m)}, TilesH = {I(L.TilesH)}, TilesW = {I(L.TilesW)}, Tiles = {I(L.TilesH * L.TilesW)}, TileColumns = {I(L.TileColumns)}, TransformOffset = {I(L.TransformOffset)};");
        w.Line("/// <summary>Tile columns one product works on at once (their transformed input, 36 x CinG x TileBlock floats, stays in L2), and the blocks.</summary>");
        w.Line($"public const int TileBlock = {I(L.TileBlock)}, TileBlocks = {I(L.TileBlocks)};");
        w.Line();
        w.Line("/// <summary>Output channels per Winograd row panel on the path in use.</summary>");
        w.Line("public static int WinogradRows => " + LayerEmitter.RowsLadder(isa => isa.WinogradRows) + ";");
        w.Line();
        w.Line($"/// <summary>Transforms [OutC, CinG, {I(L.Spec.KernelH)}, {I(L.Spec.KernelW)}] weights to U = G g Gᵀ (6x6) and packs them for the path in use (for <c>Forward(..., winograd: true)</c>); once, at load.</summary>");
        w.Line("public static float[] PackWinogradWeights(global::System.ReadOnlySpan<float> weights) => global::AlexNet.Aot.WeightPacking.PackWinograd(weights, Groups, CoutG, CinG, KH, WinogradRows);");
        w.Line();
    }

    /// <summary>The two phases inside the layer's Forward: input transform (split over channels), then products and output transform (split over row panels).
    /// <paramref name="pooled"/>: where the fused max-pool writes (<see cref="LayerEmitter.WinogradPoolFused"/>), or null.</summary>
    public static void EmitCall(SourceWriter w, string input, string output, string? pooled)
    {
        w.Line("ref float v = ref Unsafe.Add(ref arena, TransformOffset);");
        LayerEmitter.Ladder(w, isa => $"WinogradInput{isa.Suffix}(ref {input}, ref v, ref panel, part, parts);");
        w.Line("if (parts > 1) team!.Barrier(); // every channel's transformed tiles are in place");
        string pool = pooled is null ? "" : $", ref {pooled}";
        LayerEmitter.Ladder(w, isa => $"WinogradConv{isa.Suffix}(ref v, ref panel, ref w, ref b, ref {output}{pool}, part, parts);");
    }

    /// <summary>Every Winograd kernel of the layer: the tile gather and scatter, and per ISA the transforms and the product.</summary>
    public static void EmitKernels(SourceWriter w, LayerPlan L)
    {
        w.Line();
        EmitGather(w, L);
        w.Line();
        EmitScatter(w, L);
        foreach (IsaPath isa in IsaPath.Ladder)
        {
            w.Line();
            EmitInput(w, L, isa);
            w.Line();
            EmitInputTransform(w, L, isa);
            w.Line();
            EmitProduct(w, L, isa);
            w.Line();
            EmitOutputTransform(w, L, isa);
        }
    }

    private static void EmitGather(SourceWriter w, LayerPlan L)
    {
        int pad = L.Spec.Padding;
        w.Line("/// <summary>");
        int m = L.WinogradTile;
        w.Line($"/// Gathers one input channel's {I(L.TilesH * L.TilesW)} overlapping 6x6 tiles: d[6i + j][t] = plane[{I(m)}ty - {I(pad)} + i][{I(m)}tx - {I(pad)} + j] for tile t = ty * TilesW + tx,");
        w.Line("/// zero outside the image. Interior tiles copy their 36 values unrolled.");
        w.Line("/// </summary>");
        using (w.Block("private static void WinogradGather(ref float plane, ref float d)"))
        {
            using (w.Block("for (int t = 0; t < Tiles; t++)"))
            {
                w.Line("int ty = t / TilesW, tx = t - ty * TilesW;");
                w.Line("int y0 = ty * Tile - Pad, x0 = tx * Tile - Pad;");
                w.Line("ref float dt = ref Unsafe.Add(ref d, t);");
                using (w.Block("if (y0 >= 0 && y0 + 6 <= InH && x0 >= 0 && x0 + 6 <= InW)"))
                {
                    w.Line("ref float src = ref Unsafe.Add(ref plane, y0 * InW + x0);");
                    for (int i = 0; i < 6; i++)
                    {
                        var parts = new System.Text.StringBuilder();
                        for (int j = 0; j < 6; j++)
                            parts.Append($"Unsafe.Add(ref dt, {I((i * 6 + j) * L.TileColumns)}) = Unsafe.Add(ref src, {I(i * L.InW + j)}); ");
                        w.Line(parts.ToString().TrimEnd());
                    }
                    w.Line("continue;");
                }
                using (w.Block("for (int i = 0; i < 6; i++)"))
                {
                    w.Line("int y = y0 + i;");
                    using (w.Block("for (int j = 0; j < 6; j++)"))
                    {
                        w.Line("int x = x0 + j;");
                        w.Line("Unsafe.Add(ref dt, (i * 6 + j) * TileColumns) = (uint)y < (uint)InH && (uint)x < (uint)InW ? Unsafe.Add(ref plane, y * InW + x) : 0f;");
                    }
                }
            }
        }
    }

    private static void EmitScatter(SourceWriter w, LayerPlan L)
    {
        w.Line("/// <summary>");
        int m = L.WinogradTile;
        w.Line($"/// Writes one output channel's {I(m)}x{I(m)} tiles of block <paramref name=\"block\"/>, y[{I(m)}i + k][t - block·TileBlock], to its plane at row {I(m)}ty + i");
        w.Line($"/// and column {I(m)}tx + k, leaving out what falls past the {I(L.OutH)}x{I(L.OutW)} output. Interior tiles store their {I(m * m)} values unrolled.");
        w.Line("/// </summary>");
        using (w.Block("private static void WinogradScatter(ref float y, ref float plane, int block)"))
        {
            w.Line("int first = block * TileBlock, end = first + TileBlock < Tiles ? first + TileBlock : Tiles;");
            using (w.Block("for (int t = first; t < end; t++)"))
            {
                w.Line("int ty = t / TilesW, tx = t - ty * TilesW;");
                w.Line("int oy = ty * Tile, ox = tx * Tile;");
                w.Line("ref float yt = ref Unsafe.Add(ref y, t - first);");
                using (w.Block("if (oy + Tile <= OutH && ox + Tile <= OutW)"))
                {
                    w.Line("ref float dst = ref Unsafe.Add(ref plane, oy * OutW + ox);");
                    for (int i = 0; i < m; i++)
                    {
                        var parts = new System.Text.StringBuilder();
                        for (int k = 0; k < m; k++)
                            parts.Append($"Unsafe.Add(ref dst, {I(i * L.OutW + k)}) = Unsafe.Add(ref yt, {I((i * m + k) * L.TileBlock)}); ");
                        w.Line(parts.ToString().TrimEnd());
                    }
                    w.Line("continue;");
                }
                using (w.Block("for (int i = 0; i < Tile && oy + i < OutH; i++)"))
                    using (w.Block("for (int k = 0; k < Tile && ox + k < OutW; k++)"))
                        w.Line("Unsafe.Add(ref plane, (oy + i) * OutW + ox + k) = Unsafe.Add(ref yt, (i * Tile + k) * TileBlock);");
            }
        }
    }

    private static string Type(IsaPath isa) => isa.IsScalar ? "float" : isa.Vector + "<float>";

    private static string Load(IsaPath isa, string reference, string offset) =>
        isa.IsScalar ? $"Unsafe.Add(ref {reference}, {offset})" : $"{isa.Vector}.LoadUnsafe(ref {reference}, (nuint)({offset}))";

    private static string Store(IsaPath isa, string value, string reference, string offset) =>
        isa.IsScalar ? $"Unsafe.Add(ref {reference}, {offset}) = {value};" : $"{value}.StoreUnsafe(ref {reference}, (nuint)({offset}));";

    private static void EmitInput(SourceWriter w, LayerPlan L, IsaPath isa)
    {
        w.Line("/// <summary>");
        w.Line($"/// Input transform on the {X(isa.Description)} path, this worker's share of the {I(L.InC)} input channels: each channel's tiles are");
        w.Line("/// gathered into <paramref name=\"d\"/> (this worker's scratch, [36][TileColumns]) and transformed, lane by lane of tiles, into");
        w.Line("/// v[g][ξ][t / 16][c][t % 16] (groups of 16 tile columns, so that a product reads each group's channels in sequence), which");
        w.Line("/// the whole team then reads.");
        w.Line("/// </summary>");
        using (w.Block($"private static void WinogradInput{isa.Suffix}(ref float src, ref float v, ref float d, int part, int parts)"))
        {
            if (L.TilesH * L.TilesW < L.TileColumns)
            {
                w.Line("// Tile columns past the last tile stay zero (the gather never writes them).");
                w.Line("for (int e = 0; e < 36; e++) MemoryMarshal.CreateSpan(ref Unsafe.Add(ref d, e * TileColumns + Tiles), TileColumns - Tiles).Clear();");
            }
            w.Line("int c0 = (int)((long)InC * part / parts), c1 = (int)((long)InC * (part + 1) / parts);");
            using (w.Block("for (int c = c0; c < c1; c++)"))
            {
                w.Line("WinogradGather(ref Unsafe.Add(ref src, c * (InH * InW)), ref d);");
                w.Line("int g = c / CinG;");
                w.Line("ref float vc = ref Unsafe.Add(ref v, g * 36 * CinG * TileColumns + (c - g * CinG) * 16);");
                string step = isa.IsScalar ? "1" : I(isa.Lanes);
                w.Line($"for (int l = 0; l < TileColumns; l += {step}) InputTransform{isa.Suffix}(ref Unsafe.Add(ref d, l), ref Unsafe.Add(ref vc, (l >> 4) * (CinG * 16) + (l & 15)));");
            }
        }
    }

    private static void EmitInputTransform(SourceWriter w, LayerPlan L, IsaPath isa)
    {
        string T = Type(isa);
        string lanes = isa.IsScalar ? "one tile" : I(isa.Lanes) + " tiles";
        w.Line("/// <summary>");
        w.Line($"/// V = Bᵀ d B for {lanes} at once (the lanes), in two passes of the same six-point formula: the columns of d in place,");
        w.Line("/// then its rows into v (element ξ = 6i + k at v + ξ·CinG·TileColumns). Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;");
        w.Line("/// 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].");
        w.Line("/// </summary>");
        w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
        using (w.Block($"private static void InputTransform{isa.Suffix}(ref float d, ref float v)"))
        {
            w.Line("const int DS = TileColumns, VS = CinG * TileColumns;");
            using (w.Block("for (int j = 0; j < 6; j++)"))
            {
                w.Line("ref float col = ref Unsafe.Add(ref d, j * DS);");
                for (int a = 0; a < 6; a++) w.Line($"{T} x{a} = {Load(isa, "col", I(a * 6) + " * DS")};");
                EmitBt(w, T);
                for (int a = 0; a < 6; a++) w.Line(Store(isa, "r" + a, "col", I(a * 6) + " * DS"));
            }
            using (w.Block("for (int i = 0; i < 6; i++)"))
            {
                w.Line("ref float row = ref Unsafe.Add(ref d, i * 6 * DS);");
                w.Line("ref float dst = ref Unsafe.Add(ref v, i * 6 * VS);");
                for (int a = 0; a < 6; a++) w.Line($"{T} x{a} = {Load(isa, "row", I(a) + " * DS")};");
                EmitBt(w, T);
                for (int a = 0; a < 6; a++) w.Line(Store(isa, "r" + a, "dst", I(a) + " * VS"));
            }
        }
    }

    private static void EmitBt(SourceWriter w, string T)
    {
        w.Line($"{T} r0 = x0 * 4f - x2 * 5f + x4;");
        w.Line($"{T} r1 = x3 + x4 - (x1 + x2) * 4f;");
        w.Line($"{T} r2 = x4 - x3 + (x1 - x2) * 4f;");
        w.Line($"{T} r3 = x4 - x2 + (x3 - x1) * 2f;");
        w.Line($"{T} r4 = x4 - x2 - (x3 - x1) * 2f;");
        w.Line($"{T} r5 = x1 * 4f - x3 * 5f + x5;");
    }

    private static void EmitAt(SourceWriter w, string T, int m)
    {
        w.Line($"{T} s12 = x1 + x2, d12 = x1 - x2, s34 = x3 + x4, d34 = x3 - x4;");
        w.Line($"{T} r0 = x0 + s12 + s34;");
        if (m == 2)
        {
            w.Line($"{T} r1 = d12 + d34 * 2f + x5;");
            return;
        }
        w.Line($"{T} r1 = d12 + d34 * 2f;");
        w.Line($"{T} r2 = s12 + s34 * 4f;");
        w.Line($"{T} r3 = d12 + d34 * 8f + x5;");
    }

    private static string AtText(int m) => m == 2
        ? "Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 1]"
        : "Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]";

    private static void EmitProduct(SourceWriter w, LayerPlan L, IsaPath isa)
    {
        int mr = isa.WinogradRows, nr = isa.WinogradColumns;
        int mPanels = (L.CoutG + mr - 1) / mr;
        int blocks = L.TileBlocks;
        string T = Type(isa);
        int cols = isa.IsScalar ? nr : isa.WinogradVectors;
        w.Line("/// <summary>");
        w.Line($"/// The 36 products M[ξ] = U[ξ] V[ξ] on the {X(isa.Description)} path, then the output transform, for this worker's share of the");
        w.Line($"/// {I(L.Groups * mPanels)} (group, row panel) pairs ({I(L.Groups)} x {I(mPanels)}), block by block of tile columns ({I(blocks)}; a block of V stays in the");
        w.Line($"/// worker's L2 while its row panels of weights stream by): register tiles of {I(mr)} output channels x {I(nr)} tiles");
        w.Line($"/// ({(isa.IsScalar ? I(mr * nr) + " scalar" : I(mr * cols) + " vector")} accumulators) run over the {I(L.CinG)} input channels, {I(mr)} weight broadcasts and");
        w.Line($"/// {I(mr * cols)} {(isa.IsScalar ? "multiply-adds" : "vector FMAs")} per channel. M goes to this worker's scratch [36][{I(mr)}][TileBlock]; each channel's tiles");
        w.Line($"/// are then transformed (Aᵀ M A, bias{(L.FuseRelu ? ", ReLU" : "")}) and scattered into the output plane.");
        bool pool = LayerEmitter.WinogradPoolFused(L);
        if (pool)
        {
            StepPlan p = L.Steps[1];
            w.Line($"/// Fused max-pool (step 1, <c>{X(p.Text)}</c>): in the last block, each channel's finished {I(L.OutH)}x{I(L.OutW)} plane, still in L1, is pooled");
            w.Line($"/// into <paramref name=\"pooled\"/> ({Shape(p.OutC, p.OutH, p.OutW)}) by <see cref=\"PoolPlane1\"/>; no barrier and no second pass over the output.");
        }
        w.Line("/// </summary>");
        using (w.Block($"private static void WinogradConv{isa.Suffix}(ref float v, ref float m, ref float w, ref float bias, ref float output{(pool ? ", ref float pooled" : "")}, int part, int parts)"))
        {
            if (pool)
            {
                w.Line($"Span<float> rowMax = stackalloc float[{I(L.OutW)}];");
                w.Line("ref float rm = ref MemoryMarshal.GetReference(rowMax);");
            }
            w.Line($"const int MR = {I(mr)}, MPanels = {I(mPanels)}, VS = CinG * TileColumns;");
            w.Line($"ref float y = ref Unsafe.Add(ref m, {I(36 * Planner.WinogradMaxRows)} * TileColumns); // the output tiles [Tile * Tile][TileBlock]");
            w.Line("int t0 = (int)((long)(Groups * MPanels) * part / parts), t1 = (int)((long)(Groups * MPanels) * (part + 1) / parts);");
            w.Line("for (int block = 0; block < TileBlocks; block++)");
            using (w.Block("for (int t = t0; t < t1; t++)"))
            {
                w.Line("int g = t / MPanels, mp = t - g * MPanels, m0 = mp * MR;");
                w.Line("int nb = block * TileBlock, width = TileColumns - nb < TileBlock ? TileColumns - nb : TileBlock;");
                w.Line("ref float vg = ref Unsafe.Add(ref v, g * 36 * VS);");
                w.Line("ref float panel = ref Unsafe.Add(ref w, (g * MPanels + mp) * (36 * CinG * MR));");
                using (w.Block("for (int e = 0; e < 36; e++)"))
                {
                    w.Line("ref float ve = ref Unsafe.Add(ref vg, e * VS);");
                    w.Line("ref float ae = ref Unsafe.Add(ref panel, e * (CinG * MR));");
                    w.Line("ref float me = ref Unsafe.Add(ref m, e * (MR * TileBlock));");
                    using (w.Block($"for (int n0 = 0; n0 < width; n0 += {I(nr)})"))
                    {
                        for (int r = 0; r < mr; r++)
                        {
                            var sb = new System.Text.StringBuilder($"{T} ");
                            for (int j = 0; j < cols; j++) sb.Append(j > 0 ? ", " : "").Append($"c{r}_{j} = {(isa.IsScalar ? "0f" : T + ".Zero")}");
                            w.Line(sb + ";");
                        }
                        w.Line("int n = nb + n0;");
                        w.Line("ref float vn = ref Unsafe.Add(ref ve, (n >> 4) * (CinG * 16) + (n & 15));");
                        using (w.Block("for (int c = 0; c < CinG; c++)"))
                        {
                            for (int j = 0; j < cols; j++)
                                w.Line($"{T} b{j} = {Load(isa, "vn", "c * 16" + (j > 0 ? " + " + I(isa.IsScalar ? j : j * isa.Lanes) : ""))};");
                            w.Line("ref float ac = ref Unsafe.Add(ref ae, c * MR);");
                            for (int r = 0; r < mr; r++)
                            {
                                var sb = new System.Text.StringBuilder();
                                if (isa.IsScalar)
                                {
                                    sb.Append($"float a{r} = Unsafe.Add(ref ac, {I(r)});");
                                    for (int j = 0; j < cols; j++) sb.Append($" c{r}_{j} += a{r} * b{j};");
                                }
                                else
                                {
                                    sb.Append($"{T} a{r} = {isa.Vector}.Create(Unsafe.Add(ref ac, {I(r)}));");
                                    for (int j = 0; j < cols; j++) sb.Append($" c{r}_{j} = {isa.Vector}.MultiplyAddEstimate(a{r}, b{j}, c{r}_{j});");
                                }
                                w.Line(sb.ToString());
                            }
                        }
                        for (int r = 0; r < mr; r++)
                        {
                            var sb = new System.Text.StringBuilder();
                            for (int j = 0; j < cols; j++)
                            {
                                string off = I(r) + " * TileBlock + n0" + (j > 0 ? " + " + I(isa.IsScalar ? j : j * isa.Lanes) : "");
                                sb.Append(j > 0 ? " " : "").Append(Store(isa, $"c{r}_{j}", "me", off));
                            }
                            w.Line(sb.ToString());
                        }
                    }
                }
                w.Line("int rows = CoutG - m0 < MR ? CoutG - m0 : MR;");
                using (w.Block("for (int r = 0; r < rows; r++)"))
                {
                    w.Line("float bk = Unsafe.Add(ref bias, g * CoutG + m0 + r);");
                    w.Line("ref float mrow = ref Unsafe.Add(ref m, r * TileBlock);");
                    string step = isa.IsScalar ? "1" : I(isa.Lanes);
                    w.Line($"for (int l = 0; l < width; l += {step}) OutputTransform{isa.Suffix}(ref Unsafe.Add(ref mrow, l), ref Unsafe.Add(ref y, l), bk);");
                    w.Line("WinogradScatter(ref y, ref Unsafe.Add(ref output, (g * CoutG + m0 + r) * N), block);");
                    if (pool)
                    {
                        StepPlan p = L.Steps[1];
                        w.Line($"if (block == TileBlocks - 1) PoolPlane1(ref Unsafe.Add(ref output, (g * CoutG + m0 + r) * N), ref Unsafe.Add(ref pooled, (g * CoutG + m0 + r) * {I(p.OutH * p.OutW)}), ref rm);");
                    }
                }
            }
        }
    }

    private static void EmitOutputTransform(SourceWriter w, LayerPlan L, IsaPath isa)
    {
        string T = Type(isa);
        string lanes = isa.IsScalar ? "one tile" : I(isa.Lanes) + " tiles";
        w.Line("/// <summary>");
        int m = L.WinogradTile;
        w.Line($"/// Y = Aᵀ M A + bias{(L.FuseRelu ? ", then ReLU," : "")} for {lanes} of one output channel (M's element ξ at m + ξ·{I(isa.WinogradRows)}·TileBlock): the columns");
        w.Line($"/// of M in place (rows 0 to {I(m - 1)}), then those rows into y[{I(m)}i + k]. {AtText(m)}.");
        w.Line("/// </summary>");
        w.Line("[MethodImpl(MethodImplOptions.AggressiveInlining)]");
        using (w.Block($"private static void OutputTransform{isa.Suffix}(ref float m, ref float y, float bias)"))
        {
            w.Line($"const int MS = {I(isa.WinogradRows)} * TileBlock, YS = TileBlock;");
            using (w.Block("for (int j = 0; j < 6; j++)"))
            {
                w.Line("ref float col = ref Unsafe.Add(ref m, j * MS);");
                for (int a = 0; a < 6; a++) w.Line($"{T} x{a} = {Load(isa, "col", I(a * 6) + " * MS")};");
                EmitAt(w, T, m);
                for (int a = 0; a < m; a++) w.Line(Store(isa, "r" + a, "col", I(a * 6) + " * MS"));
            }
            w.Line($"{T} bv = {(isa.IsScalar ? "bias" : isa.Vector + ".Create(bias)")};");
            using (w.Block("for (int i = 0; i < Tile; i++)"))
            {
                w.Line("ref float row = ref Unsafe.Add(ref m, i * 6 * MS);");
                w.Line("ref float dst = ref Unsafe.Add(ref y, i * Tile * YS);");
                for (int a = 0; a < 6; a++) w.Line($"{T} x{a} = {Load(isa, "row", I(a) + " * MS")};");
                EmitAt(w, T, m);
                for (int a = 0; a < m; a++)
                {
                    string val = $"r{a} + bv";
                    if (L.FuseRelu) val = isa.IsScalar ? $"MathF.Max({val}, 0f)" : $"{isa.Vector}.Max({val}, {T}.Zero)";
                    w.Line(Store(isa, $"({val})", "dst", I(a) + " * YS"));
                }
            }
        }
    }
}
