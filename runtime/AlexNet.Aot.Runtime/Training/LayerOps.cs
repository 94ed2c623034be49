using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AlexNet.Aot.Training;

/// <summary>
/// Convolution (grouped too), forward and backward, as column gathers plus the blocked GEMM.
/// Forward: Y_g = W_g [Cout/g, K] x col_g [K, n·P]; backward: dW_g += dY_g x col_gᵀ, db += row sums of dY_g,
/// dcol = W_gᵀ x dY_g scattered back (col2im) into dX. K = Cin/g·kh·kw, P = OH·OW; small images are stacked
/// n at a time along the columns so that every GEMM has at least ~256 columns. Work is split by image; each
/// worker accumulates its own dW and db, summed in <see cref="Reduce"/>.
/// </summary>
internal sealed class ConvOp : TrainOp
{
    private readonly int _groups, _kh, _kw, _stride, _pad, _cinG, _coutG, _k, _p, _chunk;
    private readonly TrainableTensor _weight;
    private readonly TrainableTensor? _bias;
    private readonly float[][] _dw; // per worker: dW then db
    private readonly float[][] _packedW, _packedWt; // per worker: each group's W, and Wᵀ, packed once per step for every chunk's product
    private readonly long _packedLength, _packedLengthT;
    private readonly int _weightCount, _biasCount;
    private readonly int _oyCount;
    private readonly int[] _oyLo, _oyHi, _oxLo, _oxHi; // per tap: the output rows / columns that read inside the image

    /// <summary>Creates the operation; <paramref name="kernels"/>, when given (its window checked by <see cref="Fits"/>),
    /// are the layer's generated gather, scatter and products, which then replace the reference im2col and the runtime
    /// GEMM.</summary>
    public ConvOp(string name, Shape3 input, Shape3 output, OperationInfo op, TrainableTensor weight, TrainableTensor? bias, int workers,
        ConvKernels? kernels = null)
        : base(name, input, output)
    {
        Kernels = kernels;
        _groups = op.Groups;
        _kh = op.KernelH;
        _kw = op.KernelW;
        _stride = op.Stride;
        _pad = op.Padding;
        _cinG = input.C / _groups;
        _coutG = output.C / _groups;
        _k = _cinG * _kh * _kw;
        _p = output.Plane;
        _chunk = Math.Max(1, Math.Min(16, (256 + _p - 1) / _p));
        _oyCount = output.H;
        _oyLo = new int[_kh];
        _oyHi = new int[_kh];
        _oxLo = new int[_kw];
        _oxHi = new int[_kw];
        for (int ky = 0; ky < _kh; ky++) ValidRange(ky, input.H, output.H, _stride, _pad, out _oyLo[ky], out _oyHi[ky]);
        for (int kx = 0; kx < _kw; kx++) ValidRange(kx, input.W, output.W, _stride, _pad, out _oxLo[kx], out _oxHi[kx]);
        _weight = weight;
        _bias = bias;
        _weightCount = weight.Value.Length;
        _biasCount = bias?.Value.Length ?? 0;
        _dw = new float[workers][];
        for (int w = 0; w < workers; w++) _dw[w] = new float[_weightCount + _biasCount];
        // Per worker, each group's W and Wᵀ packed once per step: in the generated products' panels, or the GEMM's.
        _packedLength = kernels?.PackedFloats ?? Gemm.PackedLength(_coutG, _k);
        _packedLengthT = kernels?.PackedTransposedFloats ?? Gemm.PackedLength(_k, _coutG);
        _packedW = NewPerWorker(workers, (int)(_groups * _packedLength));
        _packedWt = NewPerWorker(workers, (int)(_groups * _packedLengthT));
    }

    public override bool HasParameters => true;

    /// <summary>The generated bias gradient (per-channel plane sums), or null for the reference's.</summary>
    public ConvBiasKernels? BiasKernels { get; init; }

    /// <summary>The generated column gather, scatter and products (with this layer's shapes compiled in), or null for the
    /// reference's <see cref="Im2Col"/>, <see cref="Col2Im"/> and the runtime GEMM.</summary>
    public ConvKernels? Kernels { get; }

    public override bool Generated => BiasKernels is not null || Kernels is not null;

    /// <summary>Whether <paramref name="k"/> is compiled for this operation's window (its shapes the trainer checks).</summary>
    public static bool Fits(ConvKernels k, OperationInfo op) =>
        k.Groups == op.Groups && k.KernelH == op.KernelH && k.KernelW == op.KernelW && k.Stride == op.Stride && k.Padding == op.Padding;

    /// <summary>Floats of Col before the scratch: the column matrix of up to <c>chunk</c> images side by side.</summary>
    internal long ColumnFloats => (long)_k * _chunk * _p;

    /// <summary>Images gathered side by side into one column matrix.</summary>
    internal int Chunk => _chunk;

    // Col holds the column matrix, then (stride 1 with padding) one image's zero-padded group input or input gradient.
    public override long ColFloats => (long)_k * _chunk * _p + PaddedFloats;

    private long PaddedFloats => _stride == 1 ? (_pad > 0 ? (long)_cinG * (In.H + 2 * _pad) * (In.W + 2 * _pad) : 0)
        : (long)_cinG * (In.H + 2 * _pad) * _stride * PhaseLength;

    /// <summary>Stride s &gt; 1: floats in one phase of a padded input row (columns r, r+s, r+2s, ...).</summary>
    private int PhaseLength => (In.W + 2 * _pad + _stride - 1) / _stride;
    public override long TileFloats => Kernels is { } k ? k.ProductScratchFloats(_chunk) : _chunk > 1 ? (long)_coutG * _chunk * _p : 0;

    /// <summary>The forward on the generated product: per stack of images and group, one call that gathers its column
    /// panels straight from the input (no column matrix) and whose epilogue adds the bias and writes each image's planes.</summary>
    private void ForwardGenerated(in StepContext ctx, ConvKernels k, int b0, int b1)
    {
        float[] scratch = ctx.Scratch.Tile;
        int inSize = In.Size, outSize = Out.Size, packed = (int)_packedLength;
        float[] pw = _packedW[ctx.Worker];
        for (int g = 0; g < _groups; g++)
            k.PackWeights(_weight.Value.AsSpan(g * _coutG * _k, _coutG * _k), pw.AsSpan(g * packed, packed));
        for (int i0 = b0; i0 < b1; i0 += _chunk)
        {
            int count = Math.Min(_chunk, b1 - i0);
            for (int g = 0; g < _groups; g++)
                k.Forward(pw.AsSpan(g * packed, packed), X.AsSpan(i0 * inSize + g * _cinG * In.Plane, (count - 1) * inSize + _cinG * In.Plane), inSize, count,
                    _bias is null ? default : _bias.Value.AsSpan(g * _coutG, _coutG),
                    Y.AsSpan(i0 * outSize + g * _coutG * _p, (count - 1) * outSize + _coutG * _p), outSize, scratch);
        }
    }

    /// <summary>The backward on the generated products: dWᵀ accumulated from the column matrix and dY where it lies, the
    /// column gradient from dY where it lies, scattered back.</summary>
    private void BackwardGenerated(in StepContext ctx, ConvKernels k, int b0, int b1, float[] dy, float[] dx, float[] acc, bool grads)
    {
        float[] col = ctx.Scratch.Col, scratch = ctx.Scratch.Tile;
        int inSize = In.Size, outSize = Out.Size, packedT = (int)_packedLengthT;
        float[]? pt = null;
        if (ctx.NeedDx)
        {
            pt = _packedWt[ctx.Worker];
            for (int g = 0; g < _groups; g++)
                k.PackWeightsTransposed(_weight.Value.AsSpan(g * _coutG * _k, _coutG * _k), pt.AsSpan(g * packedT, packedT));
        }
        for (int i0 = b0; i0 < b1; i0 += _chunk)
        {
            int count = Math.Min(_chunk, b1 - i0), ncols = count * _p;
            for (int g = 0; g < _groups; g++)
            {
                ReadOnlySpan<float> dyg = dy.AsSpan(i0 * outSize + g * _coutG * _p, (count - 1) * outSize + _coutG * _p);
                if (grads)
                {
                    for (int j = 0; j < count; j++)
                        Gather((i0 + j) * inSize + g * _cinG * In.Plane, col, ncols, j * _p);
                    k.WeightGradient(col.AsSpan(0, _k * ncols), dyg, outSize, count, acc.AsSpan(g * _coutG * _k, _coutG * _k), scratch);
                    if (_bias is not null)
                        for (int o = 0; o < _coutG; o++)
                            acc[_weightCount + g * _coutG + o] += (float)k.PlaneSums(dy.AsSpan(i0 * outSize + (g * _coutG + o) * _p, (count - 1) * outSize + _p), count, outSize);
                }
                if (pt is not null)
                {
                    k.InputGradient(pt.AsSpan(g * packedT, packedT), dyg, outSize, count, col.AsSpan(0, _k * ncols), scratch);
                    for (int j = 0; j < count; j++)
                        Scatter(col, ncols, j * _p, dx, (i0 + j) * inSize + g * _cinG * In.Plane);
                }
            }
        }
    }

    private static float[][] NewPerWorker(int workers, int length)
    {
        var a = new float[workers][];
        for (int w = 0; w < workers; w++) a[w] = new float[length];
        return a;
    }

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (Kernels is { } gk)
        {
            if (b1 > b0) ForwardGenerated(ctx, gk, b0, b1);
            return;
        }
        float[] col = ctx.Scratch.Col, tile = ctx.Scratch.Tile;
        int inSize = In.Size, outSize = Out.Size;
        float[] packed = _packedW[ctx.Worker];
        if (b1 > b0)
            for (int g = 0; g < _groups; g++)
                Gemm.PackWhole(_coutG, _k, ref _weight.Value[g * _coutG * _k], _k, 1, ref packed[g * _packedLength]);
        for (int i0 = b0; i0 < b1; i0 += _chunk)
        {
            int count = Math.Min(_chunk, b1 - i0), ncols = count * _p;
            for (int g = 0; g < _groups; g++)
            {
                for (int j = 0; j < count; j++)
                    Gather((i0 + j) * inSize + g * _cinG * In.Plane, col, ncols, j * _p);
                ref float w = ref packed[g * _packedLength];
                if (count == 1)
                {
                    ctx.Scratch.Gemm.MultiplyPacked(_coutG, _p, _k, ref w, ref col[0], ncols, 1, ref Y[i0 * outSize + g * _coutG * _p], _p, false);
                }
                else
                {
                    // The stacked product lands in the tile; each image's rows are copied out with the bias added
                    // (the same sum as adding it afterwards, one pass fewer).
                    ctx.Scratch.Gemm.MultiplyPacked(_coutG, ncols, _k, ref w, ref col[0], ncols, 1, ref tile[0], ncols, false);
                    for (int j = 0; j < count; j++)
                        for (int o = 0; o < _coutG; o++)
                        {
                            ref float src = ref tile[o * ncols + j * _p];
                            ref float dst = ref Y[(i0 + j) * outSize + (g * _coutG + o) * _p];
                            if (_bias is null) Small.Copy(ref src, ref dst, _p);
                            else Small.CopyAdd(ref src, ref dst, _p, _bias.Value[g * _coutG + o]);
                        }
                }
            }
            if (_bias is not null && count == 1)
                for (int j = 0; j < count; j++)
                    for (int o = 0; o < Out.C; o++)
                        Vec.AddScalar(Y.AsSpan((i0 + j) * outSize + o * _p, _p), _bias.Value[o]);
        }
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        float[] col = ctx.Scratch.Col, tile = ctx.Scratch.Tile;
        float[] acc = _dw[ctx.Worker];
        bool grads = !Frozen;
        if (grads) acc.AsSpan().Clear();
        int inSize = In.Size, outSize = Out.Size;
        if (ctx.NeedDx && b1 > b0) dx.AsSpan(b0 * inSize, (b1 - b0) * inSize).Clear();
        if (Kernels is { } gk)
        {
            if (b1 > b0) BackwardGenerated(ctx, gk, b0, b1, dy, dx, acc, grads);
            return;
        }
        float[] packedT = _packedWt[ctx.Worker];
        if (ctx.NeedDx && b1 > b0)
            for (int g = 0; g < _groups; g++)
                Gemm.PackWhole(_k, _coutG, ref _weight.Value[g * _coutG * _k], 1, _k, ref packedT[g * _packedLengthT]);
        for (int i0 = b0; i0 < b1; i0 += _chunk)
        {
            int count = Math.Min(_chunk, b1 - i0), ncols = count * _p;
            for (int g = 0; g < _groups; g++)
            {
                // dY_g as a [coutG, ncols] matrix: in place for one image, gathered for a stack.
                float[] dyg;
                int dyOff, ld;
                if (count == 1)
                {
                    dyg = dy;
                    dyOff = i0 * outSize + g * _coutG * _p;
                    ld = _p;
                }
                else
                {
                    for (int j = 0; j < count; j++)
                        for (int o = 0; o < _coutG; o++)
                            Small.Copy(ref dy[(i0 + j) * outSize + (g * _coutG + o) * _p], ref tile[o * ncols + j * _p], _p);
                    dyg = tile;
                    dyOff = 0;
                    ld = ncols;
                }
                if (grads)
                {
                    for (int j = 0; j < count; j++)
                        Gather((i0 + j) * inSize + g * _cinG * In.Plane, col, ncols, j * _p);
                    // dW_gᵀ [K, coutG] += col [K, ncols] x dY_gᵀ: the column matrix is read along its rows (the cheap way
                    // to pack it); Reduce transposes while summing the workers' buffers.
                    ctx.Scratch.Gemm.Multiply(_k, _coutG, ncols, ref col[0], ncols, 1, ref dyg[dyOff], 1, ld, ref acc[g * _coutG * _k], _coutG, true);
                    if (_bias is not null && BiasKernels is { } bk)
                        for (int o = 0; o < _coutG; o++)
                            acc[_weightCount + g * _coutG + o] += (float)bk.PlaneSums(dy.AsSpan(i0 * outSize + (g * _coutG + o) * _p, (count - 1) * outSize + _p), count, outSize);
                    else if (_bias is not null)
                        for (int o = 0; o < _coutG; o++)
                            acc[_weightCount + g * _coutG + o] += (float)Vec.Sum(dyg.AsSpan(dyOff + o * ld, ncols));
                }
                if (ctx.NeedDx)
                {
                    ctx.Scratch.Gemm.MultiplyPacked(_k, ncols, _coutG, ref packedT[g * _packedLengthT], ref dyg[dyOff], ld, 1, ref col[0], ncols, false);
                    for (int j = 0; j < count; j++)
                        Scatter(col, ncols, j * _p, dx, (i0 + j) * inSize + g * _cinG * In.Plane);
                }
            }
        }
    }

    public override void Reduce(in StepContext ctx)
    {
        if (Frozen) return;
        // Rows of dW (output channels) split across workers; each worker's buffer holds dW_gᵀ per group.
        int rows = Out.C;
        Split(rows, ctx.Worker, ctx.Workers, out int r0, out int r1);
        int workers = Math.Min(_dw.Length, ctx.Workers);
        for (int row = r0; row < r1; row++)
        {
            int g = row / _coutG, o = row % _coutG;
            int src = g * _coutG * _k + o;
            Span<float> dst = _weight.Gradient.AsSpan(row * _k, _k);
            for (int r = 0; r < _k; r++)
            {
                float v = 0;
                for (int w = 0; w < workers; w++) v += _dw[w][src + r * _coutG];
                dst[r] = v;
            }
            if (_bias is not null)
            {
                float b = 0;
                for (int w = 0; w < workers; w++) b += _dw[w][_weightCount + row];
                _bias.Gradient[row] = b;
            }
        }
    }

    /// <summary>The column gather of the image group at X[<paramref name="x"/>]: the generated kernel's, or the reference's.</summary>
    private void Gather(int x, float[] col, int ld, int offset)
    {
        if (Kernels is { } k)
        {
            int start = _k * _chunk * _p;
            k.Gather(X.AsSpan(x, _cinG * In.Plane), col.AsSpan(offset, start - offset), ld, col.AsSpan(start, (int)PaddedFloats));
        }
        else Im2Col(ref X[x], col, ld, offset);
    }

    /// <summary>The column scatter-add onto the image group's dx at <paramref name="dx"/>[<paramref name="at"/>] (zero before):
    /// the generated kernel's, or the reference's.</summary>
    private void Scatter(float[] col, int ld, int offset, float[] dx, int at)
    {
        if (Kernels is { } k)
        {
            int start = _k * _chunk * _p;
            k.Scatter(col.AsSpan(offset, start - offset), ld, dx.AsSpan(at, _cinG * In.Plane), col.AsSpan(start, (int)PaddedFloats));
        }
        else Col2Im(col, ld, offset, ref dx[at]);
    }

    /// <summary>Gathers one image's group input [cinG, H, W] (at <paramref name="x"/>) into rows (ci, ky, kx) of col,
    /// columns offset.. offset+P; taps that fall in the padding are zero.</summary>
    internal void Im2Col(ref float x, float[] col, int ld, int offset)
    {
        if (_stride == 1)
        {
            Im2ColUnitStride(ref x, col, ld, offset);
            return;
        }
        if (_kw >= _stride)
        {
            Im2ColStrided(ref x, col, ld, offset);
            return;
        }
        int h = In.H, w = In.W, ow = Out.W, s = _stride, pad = _pad, plane = In.Plane, p = _p;
        ref float dst0 = ref col[offset];
        int row = 0;
        for (int ci = 0; ci < _cinG; ci++)
        {
            ref float xc = ref Unsafe.Add(ref x, ci * plane);
            for (int ky = 0; ky < _kh; ky++)
            {
                // Output rows [oyLo, oyHi) read input rows inside the image; the others are all padding.
                int oyLo = _oyLo[ky], oyHi = _oyHi[ky];
                for (int kx = 0; kx < _kw; kx++, row++)
                {
                    ref float dst = ref Unsafe.Add(ref dst0, (nint)row * ld);
                    int oxLo = _oxLo[kx], oxHi = _oxHi[kx], n = oxHi - oxLo;
                    if (n <= 0)
                    {
                        MemoryMarshalEx.Clear(ref dst, p);
                        continue;
                    }
                    MemoryMarshalEx.Clear(ref dst, oyLo * ow);
                    MemoryMarshalEx.Clear(ref Unsafe.Add(ref dst, oyHi * ow), (_oyCount - oyHi) * ow);
                    for (int oy = oyLo; oy < oyHi; oy++)
                    {
                        ref float d = ref Unsafe.Add(ref dst, oy * ow);
                        for (int ox = 0; ox < oxLo; ox++) Unsafe.Add(ref d, ox) = 0f;
                        for (int ox = oxHi; ox < ow; ox++) Unsafe.Add(ref d, ox) = 0f;
                        ref float src = ref Unsafe.Add(ref xc, (oy * s - pad + ky) * w + oxLo * s - pad + kx);
                        if (s == 1) Small.Copy(ref src, ref Unsafe.Add(ref d, oxLo), n);
                        else
                            for (int ox = 0; ox < n; ox++) Unsafe.Add(ref d, oxLo + ox) = Unsafe.Add(ref src, ox * s);
                    }
                }
            }
        }
    }

    /// <summary>Adds rows (ci, ky, kx) of dcol back onto one image's group input gradient [cinG, H, W] (at <paramref name="dx"/>).</summary>
    internal void Col2Im(float[] col, int ld, int offset, ref float dx)
    {
        if (_stride == 1)
        {
            Col2ImUnitStride(col, ld, offset, ref dx);
            return;
        }
        int w = In.W, ow = Out.W, s = _stride, pad = _pad, plane = In.Plane;
        ref float src0 = ref col[offset];
        int row = 0;
        for (int ci = 0; ci < _cinG; ci++)
        {
            ref float dc = ref Unsafe.Add(ref dx, ci * plane);
            for (int ky = 0; ky < _kh; ky++)
            {
                int oyLo = _oyLo[ky], oyHi = _oyHi[ky];
                for (int kx = 0; kx < _kw; kx++, row++)
                {
                    int oxLo = _oxLo[kx], n = _oxHi[kx] - oxLo;
                    if (n <= 0) continue;
                    ref float src = ref Unsafe.Add(ref src0, (nint)row * ld);
                    for (int oy = oyLo; oy < oyHi; oy++)
                    {
                        ref float sr = ref Unsafe.Add(ref src, oy * ow + oxLo);
                        ref float d = ref Unsafe.Add(ref dc, (oy * s - pad + ky) * w + oxLo * s - pad + kx);
                        if (s == 1) Small.Add(ref sr, ref d, n);
                        else
                            for (int ox = 0; ox < n; ox++) Unsafe.Add(ref d, ox * s) += Unsafe.Add(ref sr, ox);
                    }
                }
            }
        }
    }

    /// <summary>Stride 1: every row (ci, ky, kx) of col is OH runs of OW floats read from the zero-padded input (copied
    /// once into the tail of col; the input itself without padding), so no run needs bounds.</summary>
    private void Im2ColUnitStride(ref float x, float[] col, int ld, int offset)
    {
        int h = In.H, w = In.W, oh = Out.H, ow = Out.W, pad = _pad, plane = In.Plane;
        int wp = w + 2 * pad, pplane = (h + 2 * pad) * wp;
        ref float xp = ref x;
        if (pad > 0)
        {
            int start = _k * _chunk * _p;
            xp = ref col[start];
            MemoryMarshalEx.Clear(ref xp, _cinG * pplane);
            for (int ci = 0; ci < _cinG; ci++)
                for (int iy = 0; iy < h; iy++)
                    Small.Copy(ref Unsafe.Add(ref x, ci * plane + iy * w), ref Unsafe.Add(ref xp, ci * pplane + (iy + pad) * wp + pad), w);
        }
        ref float dst0 = ref col[offset];
        int row = 0;
        for (int ci = 0; ci < _cinG; ci++)
            for (int ky = 0; ky < _kh; ky++)
                for (int kx = 0; kx < _kw; kx++, row++)
                {
                    ref float src = ref Unsafe.Add(ref xp, ci * pplane + ky * wp + kx);
                    ref float dst = ref Unsafe.Add(ref dst0, (nint)row * ld);
                    for (int oy = 0; oy < oh; oy++)
                        Small.Copy(ref Unsafe.Add(ref src, oy * wp), ref Unsafe.Add(ref dst, oy * ow), ow);
                }
    }

    /// <summary>Stride s &gt; 1: the zero-padded input is first split by column phase (row iy, phase r holds padded
    /// columns r, r+s, ...), so that the taps of one output row, columns ox*s + kx, are the contiguous run
    /// phase kx mod s from kx / s: every row of col is OH contiguous copies.</summary>
    private void Im2ColStrided(ref float x, float[] col, int ld, int offset)
    {
        int h = In.H, w = In.W, oh = Out.H, ow = Out.W, pad = _pad, s = _stride, plane = In.Plane;
        int len = PhaseLength, rowLen = s * len, hp = h + 2 * pad, pplane = hp * rowLen;
        ref float ph = ref col[_k * _chunk * _p];
        MemoryMarshalEx.Clear(ref ph, _cinG * pplane);
        for (int ci = 0; ci < _cinG; ci++)
            for (int iy = 0; iy < h; iy++)
            {
                ref float src = ref Unsafe.Add(ref x, ci * plane + iy * w);
                ref float dst = ref Unsafe.Add(ref ph, ci * pplane + (iy + pad) * rowLen);
                for (int ix = 0; ix < w; ix++)
                {
                    int xp = ix + pad;
                    Unsafe.Add(ref dst, xp % s * len + xp / s) = Unsafe.Add(ref src, ix);
                }
            }
        ref float dst0 = ref col[offset];
        int row = 0;
        for (int ci = 0; ci < _cinG; ci++)
            for (int ky = 0; ky < _kh; ky++)
                for (int kx = 0; kx < _kw; kx++, row++)
                {
                    ref float src = ref Unsafe.Add(ref ph, ci * pplane + ky * rowLen + kx % s * len + kx / s);
                    ref float dst = ref Unsafe.Add(ref dst0, (nint)row * ld);
                    for (int oy = 0; oy < oh; oy++)
                        Small.Copy(ref Unsafe.Add(ref src, oy * s * rowLen), ref Unsafe.Add(ref dst, oy * ow), ow);
                }
    }

    /// <summary>Stride 1: adds every row of dcol onto the zero-padded input gradient (in the tail of col, in the same
    /// order as the general path, so each sum is the same), then copies its inside to <paramref name="dx"/> (which is
    /// zero before: each image and group is scattered once). Without padding, straight onto dx.</summary>
    private void Col2ImUnitStride(float[] col, int ld, int offset, ref float dx)
    {
        int h = In.H, w = In.W, oh = Out.H, ow = Out.W, pad = _pad, plane = In.Plane;
        int wp = w + 2 * pad, pplane = (h + 2 * pad) * wp;
        ref float dp = ref dx;
        if (pad > 0)
        {
            dp = ref col[_k * _chunk * _p];
            MemoryMarshalEx.Clear(ref dp, _cinG * pplane);
        }
        ref float src0 = ref col[offset];
        int row = 0;
        for (int ci = 0; ci < _cinG; ci++)
            for (int ky = 0; ky < _kh; ky++)
                for (int kx = 0; kx < _kw; kx++, row++)
                {
                    ref float src = ref Unsafe.Add(ref src0, (nint)row * ld);
                    ref float d = ref Unsafe.Add(ref dp, ci * pplane + ky * wp + kx);
                    for (int oy = 0; oy < oh; oy++)
                        Small.Add(ref Unsafe.Add(ref src, oy * ow), ref Unsafe.Add(ref d, oy * wp), ow);
                }
        if (pad > 0)
            for (int ci = 0; ci < _cinG; ci++)
                for (int iy = 0; iy < h; iy++)
                    Small.Copy(ref Unsafe.Add(ref dp, ci * pplane + (iy + pad) * wp + pad), ref Unsafe.Add(ref dx, ci * plane + iy * w), w);
    }

    /// <summary>The output positions [lo, hi) along one axis (of <paramref name="outSize"/>) whose input position
    /// o*stride - pad + tap lies inside [0, inSize).</summary>
    private static void ValidRange(int tap, int inSize, int outSize, int stride, int pad, out int lo, out int hi)
    {
        int first = pad - tap, last = inSize - 1 + pad - tap;
        lo = first <= 0 ? 0 : Math.Min(outSize, (first + stride - 1) / stride);
        hi = last < 0 ? 0 : Math.Min(outSize, last / stride + 1);
        if (hi < lo) hi = lo;
    }
}

/// <summary>Copies and adds of short rows (a few to a few dozen floats: one output row of a convolution).</summary>
internal static class Small
{
    /// <summary>dst[0..n) = src[0..n); the two ranges must not overlap. Remainders by an overlapping last vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(ref float src, ref float dst, int n)
    {
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            int i = 0;
            for (; i + 8 <= n; i += 8) Vector256.LoadUnsafe(ref src, (nuint)i).StoreUnsafe(ref dst, (nuint)i);
            if (i < n) Vector256.LoadUnsafe(ref src, (nuint)(n - 8)).StoreUnsafe(ref dst, (nuint)(n - 8));
            return;
        }
        if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            int i = 0;
            for (; i + 4 <= n; i += 4) Vector128.LoadUnsafe(ref src, (nuint)i).StoreUnsafe(ref dst, (nuint)i);
            if (i < n) Vector128.LoadUnsafe(ref src, (nuint)(n - 4)).StoreUnsafe(ref dst, (nuint)(n - 4));
            return;
        }
        for (int i = 0; i < n; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref src, i);
    }

    /// <summary>dst[0..n) = src[0..n) + <paramref name="b"/>; the two ranges must not overlap.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void CopyAdd(ref float src, ref float dst, int n, float b)
    {
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> vb = Vector256.Create(b);
            int i = 0;
            for (; i + 8 <= n; i += 8) (Vector256.LoadUnsafe(ref src, (nuint)i) + vb).StoreUnsafe(ref dst, (nuint)i);
            if (i < n) (Vector256.LoadUnsafe(ref src, (nuint)(n - 8)) + vb).StoreUnsafe(ref dst, (nuint)(n - 8));
            return;
        }
        if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            Vector128<float> vb = Vector128.Create(b);
            int i = 0;
            for (; i + 4 <= n; i += 4) (Vector128.LoadUnsafe(ref src, (nuint)i) + vb).StoreUnsafe(ref dst, (nuint)i);
            if (i < n) (Vector128.LoadUnsafe(ref src, (nuint)(n - 4)) + vb).StoreUnsafe(ref dst, (nuint)(n - 4));
            return;
        }
        for (int i = 0; i < n; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref src, i) + b;
    }

    /// <summary>dst[0..n) += src[0..n) (each element once: no overlapping remainder).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Add(ref float src, ref float dst, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8)
                (Vector256.LoadUnsafe(ref dst, (nuint)i) + Vector256.LoadUnsafe(ref src, (nuint)i)).StoreUnsafe(ref dst, (nuint)i);
        if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= n; i += 4)
                (Vector128.LoadUnsafe(ref dst, (nuint)i) + Vector128.LoadUnsafe(ref src, (nuint)i)).StoreUnsafe(ref dst, (nuint)i);
        for (; i < n; i++) Unsafe.Add(ref dst, i) += Unsafe.Add(ref src, i);
    }
}

/// <summary>
/// Fully connected layer over the whole batch: Y [B, Out] = X [B, In] x Wᵀ (+ b). Forward splits the output
/// features across workers; backward computes dW [Out, In] = dYᵀ x X by rows of W and dX = dY x W by columns of X,
/// so workers write disjoint parts and nothing needs reducing.
/// </summary>
internal sealed class DenseOp : TrainOp
{
    private readonly TrainableTensor _weight;
    private readonly TrainableTensor? _bias;

    public DenseOp(string name, Shape3 input, Shape3 output, TrainableTensor weight, TrainableTensor? bias, int maxBatch) : base(name, input, output)
    {
        _maxBatch = maxBatch;
        _weight = weight;
        _bias = bias;
    }

    /// <summary>The generated bias gradient (dy summed over the batch), or null for the reference's.</summary>
    public DenseBiasKernels? BiasKernels { get; init; }

    /// <summary>The generated products (this layer's features compiled in), or null for the runtime's GEMM.</summary>
    public DenseKernels? Products { get; init; }

    public override bool Generated => BiasKernels is not null || Products is not null;

    public override bool HasParameters => true;

    public override long TileFloats => Products is { } p ? p.ScratchFloats(_maxBatch) : 0;

    private readonly int _maxBatch;

    public override void Forward(in StepContext ctx)
    {
        int fin = In.Size, fout = Out.Size;
        SplitAligned(fout, 24, ctx.Worker, ctx.Workers, out int o0, out int o1);
        if (o1 <= o0) return;
        if (Products is { } pk)
        {
            pk.Forward(_weight.Value, X.AsSpan(0, ctx.Batch * fin), ctx.Batch, _bias is null ? default : _bias.Value, Y.AsSpan(0, ctx.Batch * fout), o0, o1, ctx.Scratch.Tile);
            return;
        }
        ctx.Scratch.Gemm.MultiplyStreamA(o1 - o0, ctx.Batch, fin, ref _weight.Value[(long)o0 * fin], fin, ref X[0], 1, fin, ref Y[o0], 1, fout, false);
        if (_bias is not null)
            for (int b = 0; b < ctx.Batch; b++)
                Small.Add(ref _bias.Value[o0], ref Y[b * fout + o0], o1 - o0);
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        int fin = In.Size, fout = Out.Size, batch = ctx.Batch;
        if (!Frozen)
        {
            SplitAligned(fout, 8, ctx.Worker, ctx.Workers, out int o0, out int o1);
            if (o1 > o0)
            {
                if (Products is { } pk) pk.WeightGradient(dy.AsSpan(0, batch * fout), X.AsSpan(0, batch * fin), batch, _weight.Gradient, o0, o1, ctx.Scratch.Tile);
                else ctx.Scratch.Gemm.MultiplyStreamC(o1 - o0, fin, batch, ref dy[o0], 1, fout, ref X[0], fin, ref _weight.Gradient[(long)o0 * fin], fin);
                if (_bias is not null && BiasKernels is { } bk)
                    bk.Gradient(dy.AsSpan(0, batch * fout), batch, o0, o1, _bias.Gradient);
                else if (_bias is not null)
                {
                    for (int o = o0; o < o1; o++)
                    {
                        double s = 0;
                        for (int b = 0; b < batch; b++) s += dy[b * fout + o];
                        _bias.Gradient[o] = (float)s;
                    }
                }
            }
        }
        if (ctx.NeedDx)
        {
            SplitAligned(fin, 32, ctx.Worker, ctx.Workers, out int i0, out int i1);
            if (i1 > i0 && Products is { } pk) pk.InputGradient(dy.AsSpan(0, batch * fout), _weight.Value, batch, dx.AsSpan(0, batch * fin), i0, i1, ctx.Scratch.Tile);
            else if (i1 > i0)
                ctx.Scratch.Gemm.Multiply(batch, i1 - i0, fout, ref dy[0], fout, 1, ref _weight.Value[i0], fin, 1, ref dx[i0], fin, false);
        }
    }
}

/// <summary>ReLU: y = max(x, 0); dx = dy where y &gt; 0. Split by element over the batch.</summary>
internal sealed class ReluOp : TrainOp
{
    public ReluOp(string name, Shape3 shape) : base(name, shape, shape) { }

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch * In.Size, ctx.Worker, ctx.Workers, out int s, out int e);
        Vec.Relu(X.AsSpan(s, e - s), Y.AsSpan(s, e - s));
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch * In.Size, ctx.Worker, ctx.Workers, out int s, out int e);
        Vec.ReluBackward(Y.AsSpan(s, e - s), dy.AsSpan(s, e - s), dx.AsSpan(s, e - s));
    }
}

/// <summary>
/// Inverted dropout: in training, y = x·m with m = 1/(1-p) or 0, drawn from a counter-based generator keyed by
/// (seed, step, op, element), so masks are reproducible and a resumed run draws the same ones; dx = dy·m.
/// In evaluation, or when dropout is switched off, the identity.
/// </summary>
internal sealed class DropoutOp : TrainOp
{
    private readonly float _p;
    private readonly int _index;
    private float[] _mask = Array.Empty<float>();
    private bool _active;

    public DropoutOp(string name, Shape3 shape, float p, int index) : base(name, shape, shape)
    {
        _p = p;
        _index = index;
    }

    public bool Enabled { get; set; } = true;

    public override void Allocate(int maxBatch) => _mask = new float[(long)maxBatch * In.Size];

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch * In.Size, ctx.Worker, ctx.Workers, out int s, out int e);
        _active = ctx.Training && Enabled && _p > 0;
        if (!_active)
        {
            X.AsSpan(s, e - s).CopyTo(Y.AsSpan(s, e - s));
            return;
        }
        float keep = 1f / (1f - _p);
        ulong stream = CounterRng.Hash(ctx.Seed, 0xD20F0000UL + (ulong)_index, (ulong)ctx.Step);
        for (int i = s; i < e; i++)
        {
            float m = CounterRng.Uniform(stream, (ulong)i) >= _p ? keep : 0f;
            _mask[i] = m;
            Y[i] = X[i] * m;
        }
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch * In.Size, ctx.Worker, ctx.Workers, out int s, out int e);
        if (!_active)
        {
            dy.AsSpan(s, e - s).CopyTo(dx.AsSpan(s, e - s));
            return;
        }
        for (int i = s; i < e; i++) dx[i] = dy[i] * _mask[i];
    }
}

/// <summary>An op that passes data through (flatten; softmax, which the loss applies; a same-size adaptive pool).</summary>
internal sealed class IdentityOp : TrainOp
{
    public IdentityOp(string name, Shape3 input, Shape3 output) : base(name, input, output) { }
    public override bool IsIdentity => true;
    public override void Forward(in StepContext ctx) { }
    public override void Backward(in StepContext ctx, float[] dy, float[] dx) { }
}
