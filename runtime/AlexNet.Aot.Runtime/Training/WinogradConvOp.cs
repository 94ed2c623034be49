using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AlexNet.Aot.Training;

/// <summary>
/// Stride-1 3x3 and 5x5 convolution (grouped too), forward and backward, by Winograd's minimal filtering on 6x6 tiles:
/// F(4x4, 3x3) or F(2x2, 5x5) with the points 0, ±1, ±2 and ∞, the transforms of the generated inference kernels.
/// </summary>
/// <remarks>
/// <para>
/// The input is cut into overlapping 6x6 tiles d at stride m (the m x m output tile); each becomes V = Bᵀ d B, the
/// weights U = G g Gᵀ, and the convolution is 36 independent matrix products over the channels, one per tile element
/// ξ, followed by Y = Aᵀ M A per output tile:
/// </para>
/// <list type="bullet">
/// <item>forward: M[ξ] [Cout/g, T] = U[ξ] [Cout/g, Cin/g] x V[ξ] [Cin/g, T], T the tiles of a chunk of images;</item>
/// <item>backward, the exact gradient of that computation (so, of the convolution): dM = A dY Aᵀ per tile, then
/// dU[ξ] += dM[ξ] x V[ξ]ᵀ (the weight gradient, dW = Gᵀ dU G after the workers' sums) and dV[ξ] = U[ξ]ᵀ x dM[ξ]
/// (the input gradient, dX = B dV Bᵀ added over the overlapping tiles).</item>
/// </list>
/// <para>
/// All three products run on the generated kernels of the layer (<see cref="ConvKernels.WinogradForward"/> and its
/// twins, the runtime GEMM's results bit for bit) or, without them, on the blocked training <see cref="Gemm"/>, over
/// every tile of a chunk of images at once
/// (not rounded up to 16 tiles per image as at inference); <see cref="Suits"/> says which layers it pays for. The tile transforms are vectorized across tiles, per ISA through <see cref="IVec{TSelf}"/>:
/// tiles are gathered from a copy of the zero-padded plane split by column phase (padded column x·m + q at row
/// [q][x]), so that one tile element over a row of tiles is a contiguous run. U and its packing are recomputed from
/// the current weights in every forward and backward (a small product with Φ, below); the weight gradient leaves the
/// 6x6 domain in <see cref="Reduce"/> as one more product. Work is split by image like <see cref="ConvOp"/>: each
/// worker accumulates its own dU and bias gradient.
/// </para>
/// <para>
/// Multiply-adds per tile and channel pair: 36 against k²·m² directly (144 for 3x3, 100 for 5x5), less the tiles that
/// overhang the output. Sums run in a different order from the direct product: results agree to float rounding.
/// </para>
/// </remarks>
internal sealed class WinogradConvOp : TrainOp
{
    private const int Points = 36;
    /// <summary>Tiles per chunk of images the products aim for (columns of the 36 GEMMs).</summary>
    private const int TargetTiles = 256;

    private readonly int _groups, _k, _kk, _pad, _m, _cinG, _coutG, _pairs;
    private readonly int _tilesH, _tilesW, _tilesPerImage, _chunk, _ldT, _hp, _lq;
    private readonly long _packedLength, _urawOff, _vOff, _mOff, _bufOff, _planeOff, _total;
    private readonly TrainableTensor _weight;
    private readonly TrainableTensor? _bias;
    private readonly float[][] _acc; // per worker: dU [groups][36][Cout/g · Cin/g], then db [Cout]
    private readonly float[] _phi;   // [36, k²]: Φ[(a, b)][(i, j)] = G[a, i] · G[b, j], so U = Φ g and dW = Φᵀ dU
    private readonly int _uCount;

    public WinogradConvOp(string name, Shape3 input, Shape3 output, OperationInfo op, TrainableTensor weight, TrainableTensor? bias, int workers)
        : base(name, input, output)
    {
        if (!Suits(input, output, op, costRule: false)) throw new ArgumentException($"{name}: not a stride-1 3x3 or 5x5 convolution that Winograd suits.", nameof(op));
        _groups = op.Groups;
        _k = op.KernelH;
        _kk = _k * _k;
        _pad = op.Padding;
        _m = _k == 3 ? 4 : 2;
        _cinG = input.C / _groups;
        _coutG = output.C / _groups;
        _pairs = _coutG * _cinG;
        _tilesH = (output.H + _m - 1) / _m;
        _tilesW = (output.W + _m - 1) / _m;
        _tilesPerImage = _tilesH * _tilesW;
        _chunk = Math.Max(1, (TargetTiles + _tilesPerImage - 1) / _tilesPerImage);
        _ldT = (_chunk * _tilesPerImage + 15) / 16 * 16;
        _hp = _tilesH * _m + 6 - _m;
        _lq = _tilesW + 5 / _m;
        _weight = weight;
        _bias = bias;
        _uCount = _groups * Points * _pairs;
        _acc = new float[workers][];
        for (int w = 0; w < workers; w++) _acc[w] = new float[_uCount + output.C];
        _phi = Phi(_k);

        _packedLength = Math.Max(Gemm.PackedLength(_coutG, _cinG), Gemm.PackedLength(_cinG, _coutG));
        _urawOff = _groups * Points * _packedLength;
        _vOff = _urawOff + (long)Points * _pairs;
        _mOff = _vOff + (long)Points * _cinG * _ldT;
        _bufOff = _mOff + (long)Points * _coutG * _ldT;
        _planeOff = _bufOff + 2L * Points * _ldT;
        _total = _planeOff + (long)_hp * _m * _lq;
    }

    /// <summary>
    /// Whether a convolution trains by Winograd. The shape must allow it (stride 1, a square 3x3 or 5x5 kernel); then,
    /// unless <paramref name="costRule"/> is off (tests), it must also pay: at least 48 input and output channels per
    /// group, at least 16 tiles per image, and 36 multiply-adds per tile under 0.6 of the direct product's k² per output
    /// pixel (which the tiles overhanging the output edge eat into). With fewer channels or tiles, the tile gathers and
    /// transforms cost more than the products save. Measured: Fashion-MNIST's 6x6 layers (64 to 96 channels, 4 tiles per
    /// image) ran 1.2 to 1.5x slower than the direct product; its conv2 (13x13, 5x5, 32 to 64 channels) was even on
    /// this machine and 1.1 to 1.2x slower on 2 pinned cores of a Xeon; torchvision's conv2 to conv5 (27x27 and 13x13,
    /// 64 to 384 channels) 1.3 to 1.6x faster.
    /// </summary>
    public static bool Suits(Shape3 input, Shape3 output, OperationInfo op, bool costRule = true)
    {
        if (op.Stride != 1 || op.KernelH != op.KernelW || (op.KernelH != 3 && op.KernelH != 5)) return false;
        if (op.Groups < 1 || input.C % op.Groups != 0 || output.C % op.Groups != 0) return false;
        if (!costRule) return true;
        if (input.C / op.Groups < 48 || output.C / op.Groups < 48) return false;
        int m = op.KernelH == 3 ? 4 : 2;
        long tiles = (long)((output.H + m - 1) / m) * ((output.W + m - 1) / m);
        return tiles >= 16 && Points * tiles < 0.6 * op.KernelH * op.KernelH * output.Plane;
    }

    public override bool HasParameters => true;

    /// <summary>The generated bias gradient (per-channel plane sums), or null for the reference's.</summary>
    public ConvBiasKernels? BiasKernels { get; init; }

    /// <summary>The generated Winograd products (this layer's channels compiled in), or null for the runtime's GEMM.</summary>
    public ConvKernels? Products { get; init; }

    public override bool Generated => BiasKernels is not null || Products is not null;
    public override long ColFloats => _total;
    public override long TileFloats => Products is { } p ? p.WinogradScratchFloats(_ldT) : 0;

    /// <summary>Group <paramref name="g"/>'s U (or Uᵀ) packed per tile element, <c>_packedLength</c> floats apart.</summary>
    private Span<float> PackedU(float[] col, int g) => col.AsSpan((int)(g * Points * _packedLength), (int)(Points * _packedLength));

    /// <summary>V (or dV): one [Cin/g, tiles] matrix per tile element, rows <c>_ldT</c> apart.</summary>
    private Span<float> V(float[] col) => col.AsSpan((int)_vOff, Points * _cinG * _ldT);

    /// <summary>M (or dM): one [Cout/g, tiles] matrix per tile element, rows <c>_ldT</c> apart.</summary>
    private Span<float> M(float[] col) => col.AsSpan((int)_mOff, Points * _coutG * _ldT);

    /// <summary>Φ[(a, b)][(i, j)] = G[a, i] · G[b, j] in double, as floats; G's rows belong to the points 0, 1, -1, 2, -2
    /// (row p is (1, p, p², ...) / Π(p - q) over the other points q) and ∞ (the highest coefficient), as in
    /// <see cref="WeightPacking.PackWinograd"/>.</summary>
    private static float[] Phi(int k)
    {
        Span<double> g = stackalloc double[6 * k];
        WeightPacking.WinogradG(k, g);
        var phi = new float[Points * k * k];
        for (int a = 0; a < 6; a++)
            for (int b = 0; b < 6; b++)
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        phi[(a * 6 + b) * k * k + i * k + j] = (float)(g[a * k + i] * g[b * k + j]);
        return phi;
    }

    /// <summary>U = Φ g for every group (a [36, pairs] product per group), packed whole per tile element: as the A
    /// operand of the forward product (Cout/g x Cin/g) or, <paramref name="transposed"/>, of the input gradient's.</summary>
    private void PackWeights(Gemm gemm, float[] col, bool transposed)
    {
        float[] w = _weight.Value;
        for (int g = 0; g < _groups; g++)
        {
            // U_g[ξ][pair] = Σ_t Φ[ξ][t] w[pair][t]: A = Φ [36, k²], B = w_gᵀ [k², pairs].
            gemm.Multiply(Points, _pairs, _kk, ref _phi[0], _kk, 1, ref w[g * _pairs * _kk], 1, _kk, ref col[_urawOff], _pairs, false);
            for (int xi = 0; xi < Points; xi++)
            {
                ref float u = ref col[_urawOff + (long)xi * _pairs];
                ref float dst = ref col[(g * Points + xi) * _packedLength];
                if (transposed) Gemm.PackWhole(_cinG, _coutG, ref u, 1, _cinG, ref dst);
                else Gemm.PackWhole(_coutG, _cinG, ref u, _cinG, 1, ref dst);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (b1 <= b0) return;
        float[] col = ctx.Scratch.Col;
        Gemm gemm = ctx.Scratch.Gemm;
        PackWeights(gemm, col, transposed: false);
        int inSize = In.Size, outSize = Out.Size;
        for (int i0 = b0; i0 < b1; i0 += _chunk)
        {
            int count = Math.Min(_chunk, b1 - i0), tiles = count * _tilesPerImage;
            for (int g = 0; g < _groups; g++)
            {
                for (int c = 0; c < _cinG; c++)
                    InputTiles(col, ref X[(long)i0 * inSize + (long)(g * _cinG + c) * In.Plane], count, tiles, _vOff + (long)c * _ldT);
                if (Products is { } pk)
                    pk.WinogradForward(PackedU(col, g), (int)_packedLength, V(col), _ldT, tiles, M(col), ctx.Scratch.Tile);
                else
                    for (int xi = 0; xi < Points; xi++)
                        gemm.MultiplyPacked(_coutG, tiles, _cinG, ref col[(g * Points + xi) * _packedLength],
                            ref col[_vOff + (long)xi * _cinG * _ldT], _ldT, 1, ref col[_mOff + (long)xi * _coutG * _ldT], _ldT, false);
                for (int o = 0; o < _coutG; o++)
                {
                    int channel = g * _coutG + o;
                    OutputTiles(col, _mOff + (long)o * _ldT, tiles, _bias is null ? 0f : _bias.Value[channel]);
                    ScatterOutput(col, ref Y[(long)i0 * outSize + (long)channel * Out.Plane], count);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        float[] acc = _acc[ctx.Worker];
        bool grads = !Frozen;
        if (grads) acc.AsSpan().Clear();
        if (b1 <= b0) return;
        float[] col = ctx.Scratch.Col;
        Gemm gemm = ctx.Scratch.Gemm;
        if (ctx.NeedDx) PackWeights(gemm, col, transposed: true);
        int inSize = In.Size, outSize = Out.Size, outPlane = Out.Plane;
        for (int i0 = b0; i0 < b1; i0 += _chunk)
        {
            int count = Math.Min(_chunk, b1 - i0), tiles = count * _tilesPerImage;
            for (int g = 0; g < _groups; g++)
            {
                // dM = A dY Aᵀ per output tile, channel by channel; the bias gradient from the same planes.
                for (int o = 0; o < _coutG; o++)
                {
                    int channel = g * _coutG + o;
                    ref float dyc = ref dy[(long)i0 * outSize + (long)channel * outPlane];
                    GatherOutputGradient(col, ref dyc, count);
                    GradientTiles(col, _mOff + (long)o * _ldT, tiles);
                    if (grads && _bias is not null && BiasKernels is { } bk)
                        acc[_uCount + channel] += (float)bk.PlaneSums(System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(ref dyc, (count - 1) * outSize + outPlane), count, outSize);
                    else if (grads && _bias is not null)
                    {
                        double s = 0;
                        for (int j = 0; j < count; j++)
                            s += Vec.Sum(System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(ref Unsafe.Add(ref dyc, (nint)j * outSize), outPlane));
                        acc[_uCount + channel] += (float)s;
                    }
                }
                if (grads)
                {
                    for (int c = 0; c < _cinG; c++)
                        InputTiles(col, ref X[(long)i0 * inSize + (long)(g * _cinG + c) * In.Plane], count, tiles, _vOff + (long)c * _ldT);
                    // dU[ξ] [Cout/g, Cin/g] += dM[ξ] [Cout/g, T] x V[ξ]ᵀ [T, Cin/g]
                    if (Products is { } pk)
                        pk.WinogradWeightGradient(M(col), V(col), _ldT, tiles, acc.AsSpan(g * Points * _pairs, Points * _pairs), ctx.Scratch.Tile);
                    else
                        for (int xi = 0; xi < Points; xi++)
                            gemm.Multiply(_coutG, _cinG, tiles, ref col[_mOff + (long)xi * _coutG * _ldT], _ldT, 1,
                                ref col[_vOff + (long)xi * _cinG * _ldT], 1, _ldT, ref acc[(long)(g * Points + xi) * _pairs], _cinG, true);
                }
                if (ctx.NeedDx)
                {
                    // dV[ξ] [Cin/g, T] = U[ξ]ᵀ x dM[ξ] (over V, no longer needed), then dX = B dV Bᵀ added over the tiles.
                    if (Products is { } pk)
                        pk.WinogradInputGradient(PackedU(col, g), (int)_packedLength, M(col), _ldT, tiles, V(col), ctx.Scratch.Tile);
                    else
                        for (int xi = 0; xi < Points; xi++)
                            gemm.MultiplyPacked(_cinG, tiles, _coutG, ref col[(g * Points + xi) * _packedLength],
                                ref col[_mOff + (long)xi * _coutG * _ldT], _ldT, 1, ref col[_vOff + (long)xi * _cinG * _ldT], _ldT, false);
                    for (int c = 0; c < _cinG; c++)
                    {
                        InputGradientTiles(col, _vOff + (long)c * _ldT, tiles);
                        ScatterInputGradient(col, ref dx[(long)i0 * inSize + (long)(g * _cinG + c) * In.Plane], count);
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Reduce(in StepContext ctx)
    {
        if (Frozen) return;
        int workers = Math.Min(_acc.Length, ctx.Workers);
        float[] grad = _weight.Gradient;
        // dW_g [pairs, k²] = Σ_workers dU_gᵀ [pairs, 36] x Φ [36, k²]: rows (channel pairs) split across workers.
        for (int g = 0; g < _groups; g++)
        {
            Split(_pairs, ctx.Worker, ctx.Workers, out int r0, out int r1);
            if (r1 <= r0) continue;
            for (int w = 0; w < workers; w++)
                ctx.Scratch.Gemm.Multiply(r1 - r0, _kk, Points, ref _acc[w][(long)g * Points * _pairs + r0], 1, _pairs,
                    ref _phi[0], _kk, 1, ref grad[((long)g * _pairs + r0) * _kk], _kk, accumulate: w > 0);
        }
        if (_bias is not null)
        {
            Split(Out.C, ctx.Worker, ctx.Workers, out int c0, out int c1);
            for (int c = c0; c < c1; c++)
            {
                float b = 0;
                for (int w = 0; w < workers; w++) b += _acc[w][_uCount + c];
                _bias.Gradient[c] = b;
            }
        }
    }

    // ---- gathers and scatters (scalar moves and contiguous runs; one pass over the planes) ----

    /// <summary>V = Bᵀ d B for one input channel of <paramref name="count"/> images (planes <see cref="TrainOp.In"/>.Size
    /// apart from <paramref name="x"/>): element ξ of tile t lands at col[dst + ξ·(Cin/g)·ldT + t].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void InputTiles(float[] col, ref float x, int count, int tiles, long dst)
    {
        int h = In.H, w = In.W, m = _m, lq = _lq, tw = _tilesW, pad = _pad, inSize = In.Size;
        ref float plane = ref col[_planeOff];
        ref float buf = ref col[_bufOff];
        for (int j = 0; j < count; j++)
        {
            // The padded plane split by column phase: padded (py, px) at plane[(py·m + px mod m)·lq + px / m].
            MemoryMarshalEx.Clear(ref plane, _hp * m * lq);
            ref float xj = ref Unsafe.Add(ref x, (nint)j * inSize);
            for (int iy = 0; iy < h; iy++)
            {
                ref float src = ref Unsafe.Add(ref xj, iy * w);
                ref float row = ref Unsafe.Add(ref plane, (iy + pad) * m * lq);
                for (int q = 0; q < m; q++)
                {
                    // Phase q holds padded columns x·m + q, input columns x·m + q - pad for x in [lo, hi).
                    PhaseRange(q, pad, w, m, out int lo, out int hi);
                    ref float ph = ref Unsafe.Add(ref row, q * lq);
                    ref float s = ref Unsafe.Add(ref src, lo * m + q - pad);
                    for (int px = lo; px < hi; px++) Unsafe.Add(ref ph, px) = Unsafe.Add(ref s, (px - lo) * m);
                }
            }
            // Tile (ty, tx) element (i, e) is padded (ty·m + i, tx·m + e): over tx, a run at phase e mod m from e / m.
            for (int ty = 0; ty < _tilesH; ty++)
            {
                int t0 = j * _tilesPerImage + ty * tw;
                for (int i = 0; i < 6; i++)
                {
                    ref float prow = ref Unsafe.Add(ref plane, (ty * m + i) * m * lq);
                    for (int e = 0; e < 6; e++)
                        Small.Copy(ref Unsafe.Add(ref prow, (e % m) * lq + e / m), ref Unsafe.Add(ref buf, (nint)(i * 6 + e) * _ldT + t0), tw);
                }
            }
        }
        long pointStride = (long)_cinG * _ldT;
        if (Vector512.IsHardwareAccelerated) InputTransform<V512>(ref buf, _ldT, tiles, ref col[dst], (nint)pointStride);
        else if (Vector256.IsHardwareAccelerated) InputTransform<V256>(ref buf, _ldT, tiles, ref col[dst], (nint)pointStride);
        else if (Vector128.IsHardwareAccelerated) InputTransform<V128>(ref buf, _ldT, tiles, ref col[dst], (nint)pointStride);
        else InputTransform<V1>(ref buf, _ldT, tiles, ref col[dst], (nint)pointStride);
    }

    /// <summary>Y = Aᵀ M A + bias for one output channel (M's element ξ at col[src + ξ·(Cout/g)·ldT + t]) into the
    /// buffer's rows r·m + c (the m x m outputs of every tile).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void OutputTiles(float[] col, long src, int tiles, float bias)
    {
        nint pointStride = (nint)((long)_coutG * _ldT);
        ref float buf = ref col[_bufOff];
        ref float tmp = ref col[_bufOff + (long)Points * _ldT];
        if (Vector512.IsHardwareAccelerated) OutputTransform<V512>(ref col[src], pointStride, ref tmp, ref buf, _ldT, tiles, _m, bias);
        else if (Vector256.IsHardwareAccelerated) OutputTransform<V256>(ref col[src], pointStride, ref tmp, ref buf, _ldT, tiles, _m, bias);
        else if (Vector128.IsHardwareAccelerated) OutputTransform<V128>(ref col[src], pointStride, ref tmp, ref buf, _ldT, tiles, _m, bias);
        else OutputTransform<V1>(ref col[src], pointStride, ref tmp, ref buf, _ldT, tiles, _m, bias);
    }

    /// <summary>Writes the buffer's m x m tile outputs into one output channel of <paramref name="count"/> images, cropping
    /// the tiles that overhang the output's right and bottom edges.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ScatterOutput(float[] col, ref float y, int count)
    {
        int oh = Out.H, ow = Out.W, m = _m, tw = _tilesW, outSize = Out.Size;
        ref float buf = ref col[_bufOff];
        for (int j = 0; j < count; j++)
        {
            ref float yj = ref Unsafe.Add(ref y, (nint)j * outSize);
            int tj = j * _tilesPerImage;
            for (int ty = 0, oy = 0; ty < _tilesH; ty++)
                for (int r = 0; r < m && oy < oh; r++, oy++)
                {
                    ref float yrow = ref Unsafe.Add(ref yj, oy * ow);
                    for (int c = 0; c < m; c++)
                    {
                        // Output columns tx·m + c of row oy are element (r, c) of the tiles tx of tile row ty.
                        ref float b = ref Unsafe.Add(ref buf, (nint)(r * m + c) * _ldT + tj + ty * tw);
                        ref float yc = ref Unsafe.Add(ref yrow, c);
                        int n = (ow - c + m - 1) / m;
                        for (int tx = 0; tx < n; tx++) Unsafe.Add(ref yc, tx * m) = Unsafe.Add(ref b, tx);
                    }
                }
        }
    }

    /// <summary>The inverse of <see cref="ScatterOutput"/> for dY: each image's output-gradient plane into the buffer's
    /// rows r·m + c, zero where a tile overhangs the output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void GatherOutputGradient(float[] col, ref float dy, int count)
    {
        int oh = Out.H, ow = Out.W, m = _m, tw = _tilesW, outSize = Out.Size;
        ref float buf = ref col[_bufOff];
        bool ragged = oh % m != 0 || ow % m != 0;
        for (int j = 0; j < count; j++)
        {
            ref float dyj = ref Unsafe.Add(ref dy, (nint)j * outSize);
            int tj = j * _tilesPerImage;
            if (ragged)
                for (int r = 0; r < m * m; r++) MemoryMarshalEx.Clear(ref Unsafe.Add(ref buf, (nint)r * _ldT + tj), _tilesPerImage);
            for (int ty = 0, oy = 0; ty < _tilesH; ty++)
                for (int r = 0; r < m && oy < oh; r++, oy++)
                {
                    ref float drow = ref Unsafe.Add(ref dyj, oy * ow);
                    for (int c = 0; c < m; c++)
                    {
                        ref float b = ref Unsafe.Add(ref buf, (nint)(r * m + c) * _ldT + tj + ty * tw);
                        ref float dc = ref Unsafe.Add(ref drow, c);
                        int n = (ow - c + m - 1) / m;
                        for (int tx = 0; tx < n; tx++) Unsafe.Add(ref b, tx) = Unsafe.Add(ref dc, tx * m);
                    }
                }
        }
    }

    /// <summary>dM = A dY Aᵀ for one output channel (dY tiles in the buffer's rows r·m + c) to col[dst + ξ·(Cout/g)·ldT + t].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void GradientTiles(float[] col, long dst, int tiles)
    {
        nint pointStride = (nint)((long)_coutG * _ldT);
        ref float buf = ref col[_bufOff];
        ref float tmp = ref col[_bufOff + (long)Points * _ldT];
        if (Vector512.IsHardwareAccelerated) GradientTransform<V512>(ref buf, ref tmp, _ldT, tiles, _m, ref col[dst], pointStride);
        else if (Vector256.IsHardwareAccelerated) GradientTransform<V256>(ref buf, ref tmp, _ldT, tiles, _m, ref col[dst], pointStride);
        else if (Vector128.IsHardwareAccelerated) GradientTransform<V128>(ref buf, ref tmp, _ldT, tiles, _m, ref col[dst], pointStride);
        else GradientTransform<V1>(ref buf, ref tmp, _ldT, tiles, _m, ref col[dst], pointStride);
    }

    /// <summary>dd = B dV Bᵀ for one input channel (dV's element ξ at col[src + ξ·(Cin/g)·ldT + t]) into the buffer's rows ξ.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void InputGradientTiles(float[] col, long src, int tiles)
    {
        nint pointStride = (nint)((long)_cinG * _ldT);
        ref float buf = ref col[_bufOff];
        if (Vector512.IsHardwareAccelerated) InputGradientTransform<V512>(ref col[src], pointStride, ref buf, _ldT, tiles);
        else if (Vector256.IsHardwareAccelerated) InputGradientTransform<V256>(ref col[src], pointStride, ref buf, _ldT, tiles);
        else if (Vector128.IsHardwareAccelerated) InputGradientTransform<V128>(ref col[src], pointStride, ref buf, _ldT, tiles);
        else InputGradientTransform<V1>(ref col[src], pointStride, ref buf, _ldT, tiles);
    }

    /// <summary>Adds the buffer's 6x6 tile gradients over the overlapping tiles of each image (on the phase-split padded
    /// plane, in runs as <see cref="InputTiles"/> reads them), then writes the plane's inside into dX.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ScatterInputGradient(float[] col, ref float dx, int count)
    {
        int h = In.H, w = In.W, m = _m, lq = _lq, tw = _tilesW, pad = _pad, inSize = In.Size;
        ref float plane = ref col[_planeOff];
        ref float buf = ref col[_bufOff];
        for (int j = 0; j < count; j++)
        {
            MemoryMarshalEx.Clear(ref plane, _hp * m * lq);
            for (int ty = 0; ty < _tilesH; ty++)
            {
                int t0 = j * _tilesPerImage + ty * tw;
                for (int i = 0; i < 6; i++)
                {
                    ref float prow = ref Unsafe.Add(ref plane, (ty * m + i) * m * lq);
                    for (int e = 0; e < 6; e++)
                        Small.Add(ref Unsafe.Add(ref buf, (nint)(i * 6 + e) * _ldT + t0), ref Unsafe.Add(ref prow, (e % m) * lq + e / m), tw);
                }
            }
            ref float dxj = ref Unsafe.Add(ref dx, (nint)j * inSize);
            for (int iy = 0; iy < h; iy++)
            {
                ref float dst = ref Unsafe.Add(ref dxj, iy * w);
                ref float row = ref Unsafe.Add(ref plane, (iy + pad) * m * lq);
                for (int q = 0; q < m; q++)
                {
                    PhaseRange(q, pad, w, m, out int lo, out int hi);
                    ref float ph = ref Unsafe.Add(ref row, q * lq);
                    ref float d = ref Unsafe.Add(ref dst, lo * m + q - pad);
                    for (int x = lo; x < hi; x++) Unsafe.Add(ref d, (x - lo) * m) = Unsafe.Add(ref ph, x);
                }
            }
        }
    }

    /// <summary>The phase-q columns x (padded column x·m + q) that hold input columns 0..w-1: x in [lo, hi).</summary>
    private static void PhaseRange(int q, int pad, int w, int m, out int lo, out int hi)
    {
        // x·m + q - pad >= 0 and <= w - 1.
        lo = pad - q <= 0 ? 0 : (pad - q + m - 1) / m;
        hi = w - 1 + pad - q < 0 ? 0 : (w - 1 + pad - q) / m + 1;
        if (hi < lo) hi = lo;
    }

    // ---- the transforms, vectorized across tiles (one copy per vector width) ----

    /// <summary>Bᵀ x over six values (one row or column of a 6x6 tile): Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0;
    /// 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Bt<V>(V x0, V x1, V x2, V x3, V x4, V x5, out V r0, out V r1, out V r2, out V r3, out V r4, out V r5)
        where V : struct, IVec<V>
    {
        r0 = V.Add(V.Sub(V.Scale(x0, 4f), V.Scale(x2, 5f)), x4);
        V a = V.Add(x3, x4), b = V.Add(x1, x2);
        r1 = V.Sub(a, V.Scale(b, 4f));
        V c = V.Sub(x4, x3), d = V.Sub(x1, x2);
        r2 = V.Add(c, V.Scale(d, 4f));
        V e = V.Sub(x4, x2), f = V.Sub(x3, x1);
        r3 = V.Add(e, V.Scale(f, 2f));
        r4 = V.Sub(e, V.Scale(f, 2f));
        r5 = V.Add(V.Sub(V.Scale(x1, 4f), V.Scale(x3, 5f)), x5);
    }

    /// <summary>B x (the transpose of <see cref="Bt{V}"/>): y0 = 4x0, y1 = -4x1 + 4x2 - 2x3 + 2x4 + 4x5,
    /// y2 = -5x0 - 4x1 - 4x2 - x3 - x4, y3 = x1 - x2 + 2x3 - 2x4 - 5x5, y4 = x0 + x1 + x2 + x3 + x4, y5 = x5.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void B<V>(V x0, V x1, V x2, V x3, V x4, V x5, out V y0, out V y1, out V y2, out V y3, out V y4, out V y5)
        where V : struct, IVec<V>
    {
        V d12 = V.Sub(x2, x1), d34 = V.Sub(x4, x3), s12 = V.Add(x1, x2), s34 = V.Add(x3, x4);
        y0 = V.Scale(x0, 4f);
        y1 = V.Add(V.Scale(V.Add(d12, x5), 4f), V.Scale(d34, 2f));
        y2 = V.Sub(V.Sub(V.Scale(x0, -5f), V.Scale(s12, 4f)), s34);
        y3 = V.Sub(V.Sub(V.Scale(d34, -2f), d12), V.Scale(x5, 5f));
        y4 = V.Add(V.Add(x0, s12), s34);
        y5 = x5;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputTransform<V>(ref float buf, int ld, int tiles, ref float dst, nint pointStride) where V : struct, IVec<V>
    {
        for (int t = 0; t < tiles; t += V.Count)
        {
            ref float bt = ref Unsafe.Add(ref buf, t);
            // Columns of d in place: (Bᵀ d)[r][e].
            for (int e = 0; e < 6; e++)
            {
                Bt(V.Load(ref Unsafe.Add(ref bt, (nint)e * ld)), V.Load(ref Unsafe.Add(ref bt, (nint)(6 + e) * ld)),
                    V.Load(ref Unsafe.Add(ref bt, (nint)(12 + e) * ld)), V.Load(ref Unsafe.Add(ref bt, (nint)(18 + e) * ld)),
                    V.Load(ref Unsafe.Add(ref bt, (nint)(24 + e) * ld)), V.Load(ref Unsafe.Add(ref bt, (nint)(30 + e) * ld)),
                    out V r0, out V r1, out V r2, out V r3, out V r4, out V r5);
                V.Store(r0, ref Unsafe.Add(ref bt, (nint)e * ld));
                V.Store(r1, ref Unsafe.Add(ref bt, (nint)(6 + e) * ld));
                V.Store(r2, ref Unsafe.Add(ref bt, (nint)(12 + e) * ld));
                V.Store(r3, ref Unsafe.Add(ref bt, (nint)(18 + e) * ld));
                V.Store(r4, ref Unsafe.Add(ref bt, (nint)(24 + e) * ld));
                V.Store(r5, ref Unsafe.Add(ref bt, (nint)(30 + e) * ld));
            }
            // Then its rows: V[r][c] = (Bᵀ d B)[r][c], element 6r + c.
            ref float dt = ref Unsafe.Add(ref dst, t);
            for (int r = 0; r < 6; r++)
            {
                ref float row = ref Unsafe.Add(ref bt, (nint)(6 * r) * ld);
                Bt(V.Load(ref row), V.Load(ref Unsafe.Add(ref row, ld)), V.Load(ref Unsafe.Add(ref row, 2 * ld)),
                    V.Load(ref Unsafe.Add(ref row, 3 * ld)), V.Load(ref Unsafe.Add(ref row, 4 * ld)), V.Load(ref Unsafe.Add(ref row, 5 * ld)),
                    out V r0, out V r1, out V r2, out V r3, out V r4, out V r5);
                ref float o = ref Unsafe.Add(ref dt, 6 * r * pointStride);
                V.Store(r0, ref o);
                V.Store(r1, ref Unsafe.Add(ref o, pointStride));
                V.Store(r2, ref Unsafe.Add(ref o, 2 * pointStride));
                V.Store(r3, ref Unsafe.Add(ref o, 3 * pointStride));
                V.Store(r4, ref Unsafe.Add(ref o, 4 * pointStride));
                V.Store(r5, ref Unsafe.Add(ref o, 5 * pointStride));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputGradientTransform<V>(ref float src, nint pointStride, ref float buf, int ld, int tiles) where V : struct, IVec<V>
    {
        for (int t = 0; t < tiles; t += V.Count)
        {
            ref float st = ref Unsafe.Add(ref src, t);
            ref float bt = ref Unsafe.Add(ref buf, t);
            // Columns: (B dV)[i][b] into the buffer's rows 6i + b.
            for (int b = 0; b < 6; b++)
            {
                ref float s = ref Unsafe.Add(ref st, b * pointStride);
                B(V.Load(ref s), V.Load(ref Unsafe.Add(ref s, 6 * pointStride)), V.Load(ref Unsafe.Add(ref s, 12 * pointStride)),
                    V.Load(ref Unsafe.Add(ref s, 18 * pointStride)), V.Load(ref Unsafe.Add(ref s, 24 * pointStride)), V.Load(ref Unsafe.Add(ref s, 30 * pointStride)),
                    out V y0, out V y1, out V y2, out V y3, out V y4, out V y5);
                V.Store(y0, ref Unsafe.Add(ref bt, (nint)b * ld));
                V.Store(y1, ref Unsafe.Add(ref bt, (nint)(6 + b) * ld));
                V.Store(y2, ref Unsafe.Add(ref bt, (nint)(12 + b) * ld));
                V.Store(y3, ref Unsafe.Add(ref bt, (nint)(18 + b) * ld));
                V.Store(y4, ref Unsafe.Add(ref bt, (nint)(24 + b) * ld));
                V.Store(y5, ref Unsafe.Add(ref bt, (nint)(30 + b) * ld));
            }
            // Rows in place: dd[i][j] = (B dV Bᵀ)[i][j].
            for (int i = 0; i < 6; i++)
            {
                ref float row = ref Unsafe.Add(ref bt, (nint)(6 * i) * ld);
                B(V.Load(ref row), V.Load(ref Unsafe.Add(ref row, ld)), V.Load(ref Unsafe.Add(ref row, 2 * ld)),
                    V.Load(ref Unsafe.Add(ref row, 3 * ld)), V.Load(ref Unsafe.Add(ref row, 4 * ld)), V.Load(ref Unsafe.Add(ref row, 5 * ld)),
                    out V y0, out V y1, out V y2, out V y3, out V y4, out V y5);
                V.Store(y0, ref row);
                V.Store(y1, ref Unsafe.Add(ref row, ld));
                V.Store(y2, ref Unsafe.Add(ref row, 2 * ld));
                V.Store(y3, ref Unsafe.Add(ref row, 3 * ld));
                V.Store(y4, ref Unsafe.Add(ref row, 4 * ld));
                V.Store(y5, ref Unsafe.Add(ref row, 5 * ld));
            }
        }
    }

    /// <summary>Aᵀ x over six values into m: F(4x4, 3x3) Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1],
    /// F(2x2, 5x5) Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 1]; written to out + r·stride.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void At<V>(int m, V x0, V x1, V x2, V x3, V x4, V x5, V add, ref float o, nint stride) where V : struct, IVec<V>
    {
        V s12 = V.Add(x1, x2), d12 = V.Sub(x1, x2), s34 = V.Add(x3, x4), d34 = V.Sub(x3, x4);
        V.Store(V.Add(V.Add(V.Add(x0, s12), s34), add), ref o);
        if (m == 2)
        {
            V.Store(V.Add(V.Add(V.Add(d12, V.Scale(d34, 2f)), x5), add), ref Unsafe.Add(ref o, stride));
            return;
        }
        V.Store(V.Add(V.Add(d12, V.Scale(d34, 2f)), add), ref Unsafe.Add(ref o, stride));
        V.Store(V.Add(V.Add(s12, V.Scale(s34, 4f)), add), ref Unsafe.Add(ref o, 2 * stride));
        V.Store(V.Add(V.Add(V.Add(d12, V.Scale(d34, 8f)), x5), add), ref Unsafe.Add(ref o, 3 * stride));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void OutputTransform<V>(ref float src, nint pointStride, ref float tmp, ref float buf, int ld, int tiles, int m, float bias)
        where V : struct, IVec<V>
    {
        V zero = V.Zero, vb = V.Broadcast(bias);
        for (int t = 0; t < tiles; t += V.Count)
        {
            ref float st = ref Unsafe.Add(ref src, t);
            ref float tt = ref Unsafe.Add(ref tmp, t);
            // Columns: (Aᵀ M)[i][b] into tmp's rows 6i + b.
            for (int b = 0; b < 6; b++)
            {
                ref float s = ref Unsafe.Add(ref st, b * pointStride);
                At(m, V.Load(ref s), V.Load(ref Unsafe.Add(ref s, 6 * pointStride)), V.Load(ref Unsafe.Add(ref s, 12 * pointStride)),
                    V.Load(ref Unsafe.Add(ref s, 18 * pointStride)), V.Load(ref Unsafe.Add(ref s, 24 * pointStride)), V.Load(ref Unsafe.Add(ref s, 30 * pointStride)),
                    zero, ref Unsafe.Add(ref tt, (nint)b * ld), 6 * ld);
            }
            // Rows, plus the bias: Y[i][c] into the buffer's rows m·i + c.
            ref float bt = ref Unsafe.Add(ref buf, t);
            for (int i = 0; i < m; i++)
            {
                ref float row = ref Unsafe.Add(ref tt, (nint)(6 * i) * ld);
                At(m, V.Load(ref row), V.Load(ref Unsafe.Add(ref row, ld)), V.Load(ref Unsafe.Add(ref row, 2 * ld)),
                    V.Load(ref Unsafe.Add(ref row, 3 * ld)), V.Load(ref Unsafe.Add(ref row, 4 * ld)), V.Load(ref Unsafe.Add(ref row, 5 * ld)),
                    vb, ref Unsafe.Add(ref bt, (nint)(m * i) * ld), ld);
            }
        }
    }

    /// <summary>A x over m values into six (the transpose of <see cref="At{V}"/>), written to o + a·stride.
    /// m = 4: x0, x0+x1+x2+x3, x0-x1+x2-x3, x0+2x1+4x2+8x3, x0-2x1+4x2-8x3, x3; m = 2: x0, x0+x1, x0-x1, x0+2x1, x0-2x1, x1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void A<V>(int m, ref float x, nint xs, ref float o, nint stride) where V : struct, IVec<V>
    {
        V x0 = V.Load(ref x), x1 = V.Load(ref Unsafe.Add(ref x, xs));
        if (m == 2)
        {
            V.Store(x0, ref o);
            V.Store(V.Add(x0, x1), ref Unsafe.Add(ref o, stride));
            V.Store(V.Sub(x0, x1), ref Unsafe.Add(ref o, 2 * stride));
            V.Store(V.Add(x0, V.Scale(x1, 2f)), ref Unsafe.Add(ref o, 3 * stride));
            V.Store(V.Sub(x0, V.Scale(x1, 2f)), ref Unsafe.Add(ref o, 4 * stride));
            V.Store(x1, ref Unsafe.Add(ref o, 5 * stride));
            return;
        }
        V x2 = V.Load(ref Unsafe.Add(ref x, 2 * xs)), x3 = V.Load(ref Unsafe.Add(ref x, 3 * xs));
        V e = V.Add(x0, x2), od = V.Add(x1, x3);
        V e4 = V.Add(x0, V.Scale(x2, 4f)), o8 = V.Add(V.Scale(x1, 2f), V.Scale(x3, 8f));
        V.Store(x0, ref o);
        V.Store(V.Add(e, od), ref Unsafe.Add(ref o, stride));
        V.Store(V.Sub(e, od), ref Unsafe.Add(ref o, 2 * stride));
        V.Store(V.Add(e4, o8), ref Unsafe.Add(ref o, 3 * stride));
        V.Store(V.Sub(e4, o8), ref Unsafe.Add(ref o, 4 * stride));
        V.Store(x3, ref Unsafe.Add(ref o, 5 * stride));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GradientTransform<V>(ref float buf, ref float tmp, int ld, int tiles, int m, ref float dst, nint pointStride)
        where V : struct, IVec<V>
    {
        for (int t = 0; t < tiles; t += V.Count)
        {
            ref float bt = ref Unsafe.Add(ref buf, t);
            ref float tt = ref Unsafe.Add(ref tmp, t);
            // Columns: (A dY)[a][c] into tmp's rows m·a + c (dY element (r, c) at the buffer's row m·r + c).
            for (int c = 0; c < m; c++)
                A<V>(m, ref Unsafe.Add(ref bt, (nint)c * ld), (nint)m * ld, ref Unsafe.Add(ref tt, (nint)c * ld), (nint)m * ld);
            // Rows: dM[a][b] = (A dY Aᵀ)[a][b], element 6a + b.
            ref float dt = ref Unsafe.Add(ref dst, t);
            for (int a = 0; a < 6; a++)
                A<V>(m, ref Unsafe.Add(ref tt, (nint)(m * a) * ld), ld, ref Unsafe.Add(ref dt, 6 * a * pointStride), pointStride);
        }
    }
}
