using System;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace AlexNet.Aot.Training;

/// <summary>
/// Local response normalization across channels (PyTorch's LocalResponseNorm): s_c = k + alpha/size · Σ x_j² over
/// j in [c - size/2, c + (size-1)/2] cut at the edges, y_c = x_c · s_c^-beta. Backward:
/// dx_i = dy_i · s_i^-beta - (2·alpha·beta/size) · x_i · Σ_{j: i in window(j)} dy_j · y_j / s_j.
/// The forward keeps s^-beta and s^(-beta-1), so the backward needs no root or division; both passes run over whole channel planes (vector-friendly), split by image.
/// </summary>
internal sealed class LrnOp : TrainOp
{
    private readonly int _size;
    private readonly float _alpha, _beta, _k;
    private float[] _pow = Array.Empty<float>();   // s^-beta
    private float[] _ratio = Array.Empty<float>(); // s^-beta / s

    public LrnOp(string name, Shape3 shape, OperationInfo op) : base(name, shape, shape)
    {
        _size = op.Size;
        _alpha = op.Alpha;
        _beta = op.Beta;
        _k = op.K;
    }

    public override long LrnFloats => In.Size;

    public override void Allocate(int maxBatch)
    {
        _pow = new float[(long)maxBatch * In.Size];
        _ratio = new float[(long)maxBatch * In.Size];
    }

    private float PowNeg(float s) => _beta == 0.75f ? 1f / MathF.Sqrt(s * MathF.Sqrt(s)) : _beta == 0.5f ? 1f / MathF.Sqrt(s) : _beta == 1f ? 1f / s : MathF.Pow(s, -_beta);

    /// <summary>s^-beta for a vector: beta 0.75, 0.5 and 1 by square roots and a division; other betas lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Vector<float> PowNeg(Vector<float> s)
    {
        if (_beta == 0.75f) return Vector<float>.One / Vector.SquareRoot(s * Vector.SquareRoot(s));
        if (_beta == 0.5f) return Vector<float>.One / Vector.SquareRoot(s);
        if (_beta == 1f) return Vector<float>.One / s;
        return PowNegLanes(s, _beta);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector<float> PowNegLanes(Vector<float> s, float beta)
    {
        Span<float> lanes = stackalloc float[Vector<float>.Count];
        for (int i = 0; i < lanes.Length; i++) lanes[i] = MathF.Pow(s[i], -beta);
        return new Vector<float>(lanes);
    }

    /// <summary>dst = sum of the planes src[lo..hi] (each <paramref name="plane"/> floats).</summary>
    private static void WindowSum(ReadOnlySpan<float> src, int lo, int hi, int plane, Span<float> dst)
    {
        int w = Vector<float>.Count, i = 0;
        for (; i + w <= plane; i += w)
        {
            Vector<float> acc = Vector<float>.Zero;
            for (int j = lo; j <= hi; j++) acc += new Vector<float>(src.Slice(j * plane + i, w));
            acc.CopyTo(dst.Slice(i, w));
        }
        for (; i < plane; i++)
        {
            float acc = 0;
            for (int j = lo; j <= hi; j++) acc += src[j * plane + i];
            dst[i] = acc;
        }
    }

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        int c = In.C, plane = In.Plane, size = In.Size, w = Vector<float>.Count;
        float a = _alpha / _size;
        int before = _size / 2, after = (_size - 1) / 2;
        Span<float> sq = ctx.Scratch.Lrn.AsSpan(0, size);
        var va = new Vector<float>(a);
        var vk = new Vector<float>(_k);
        for (int b = b0; b < b1; b++)
        {
            ReadOnlySpan<float> x = X.AsSpan(b * size, size);
            Span<float> s = _pow.AsSpan(b * size, size), r = _ratio.AsSpan(b * size, size), y = Y.AsSpan(b * size, size);
            int i = 0;
            for (; i + w <= size; i += w)
            {
                var v = new Vector<float>(x.Slice(i, w));
                (v * v).CopyTo(sq.Slice(i, w));
            }
            for (; i < size; i++) sq[i] = x[i] * x[i];
            for (int ch = 0; ch < c; ch++)
            {
                Span<float> sc = s.Slice(ch * plane, plane), rc = r.Slice(ch * plane, plane);
                WindowSum(sq, Math.Max(0, ch - before), Math.Min(c - 1, ch + after), plane, sc);
                ReadOnlySpan<float> xc = x.Slice(ch * plane, plane);
                Span<float> yc = y.Slice(ch * plane, plane);
                int p = 0;
                for (; p + w <= plane; p += w)
                {
                    Vector<float> v = vk + va * new Vector<float>(sc.Slice(p, w));
                    Vector<float> pw = PowNeg(v);
                    pw.CopyTo(sc.Slice(p, w));
                    (pw / v).CopyTo(rc.Slice(p, w));
                    (new Vector<float>(xc.Slice(p, w)) * pw).CopyTo(yc.Slice(p, w));
                }
                for (; p < plane; p++)
                {
                    float v = _k + a * sc[p];
                    float pw = PowNeg(v);
                    sc[p] = pw;
                    rc[p] = pw / v;
                    yc[p] = xc[p] * pw;
                }
            }
        }
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        int c = In.C, plane = In.Plane, size = In.Size, w = Vector<float>.Count;
        float coef = 2f * _alpha * _beta / _size;
        var vcoef = new Vector<float>(coef);
        int before = _size / 2, after = (_size - 1) / 2;
        Span<float> t = ctx.Scratch.Lrn.AsSpan(0, size);
        for (int b = b0; b < b1; b++)
        {
            ReadOnlySpan<float> x = X.AsSpan(b * size, size), s = _pow.AsSpan(b * size, size), r = _ratio.AsSpan(b * size, size), g = dy.AsSpan(b * size, size);
            Span<float> d = dx.AsSpan(b * size, size);
            int i = 0;
            // t_j = dy_j * x_j * s_j^(-beta-1) (= dy_j * y_j / s_j).
            for (; i + w <= size; i += w)
                (new Vector<float>(g.Slice(i, w)) * new Vector<float>(x.Slice(i, w)) * new Vector<float>(r.Slice(i, w))).CopyTo(t.Slice(i, w));
            for (; i < size; i++) t[i] = g[i] * x[i] * r[i];
            for (int ch = 0; ch < c; ch++)
            {
                // Channel ch is in window(j) for j in [ch - after, ch + before].
                Span<float> dc = d.Slice(ch * plane, plane);
                WindowSum(t, Math.Max(0, ch - after), Math.Min(c - 1, ch + before), plane, dc);
                ReadOnlySpan<float> xc = x.Slice(ch * plane, plane), sc = s.Slice(ch * plane, plane), gc = g.Slice(ch * plane, plane);
                int p = 0;
                for (; p + w <= plane; p += w)
                {
                    Vector<float> v = new Vector<float>(gc.Slice(p, w)) * new Vector<float>(sc.Slice(p, w))
                        - vcoef * new Vector<float>(xc.Slice(p, w)) * new Vector<float>(dc.Slice(p, w));
                    v.CopyTo(dc.Slice(p, w));
                }
                for (; p < plane; p++)
                    dc[p] = gc[p] * sc[p] - coef * xc[p] * dc[p];
            }
        }
    }
}

/// <summary>
/// Max pooling (square window, stride, zero padding that never wins, ceil mode as PyTorch): the forward records
/// each output's arg-max, the backward adds dy to that input. Split by image.
/// </summary>
internal sealed class MaxPoolOp : TrainOp
{
    private readonly int _k, _s, _p;
    private int[] _argmax = Array.Empty<int>();

    public MaxPoolOp(string name, Shape3 input, Shape3 output, OperationInfo op) : base(name, input, output)
    {
        _k = op.KernelH;
        _s = op.Stride;
        _p = op.Padding;
    }

    public override void Allocate(int maxBatch) => _argmax = new int[(long)maxBatch * Out.Size];

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        int h = In.H, w = In.W, oh = Out.H, ow = Out.W;
        ref float x0 = ref X[0];
        ref float y0 = ref Y[0];
        ref int a0 = ref _argmax[0];
        bool separable = _p == 0 && w <= 2048;
        Span<float> colMax = separable ? stackalloc float[w] : default;
        Span<int> colArg = separable ? stackalloc int[w] : default;
        Span<float> winMax = separable ? stackalloc float[w] : default;
        Span<int> winArg = separable ? stackalloc int[w] : default;
        int full = separable ? Math.Max(0, w - _k + 1) : 0; // window starts whose whole window lies inside the row
        for (int b = b0; b < b1; b++)
        {
            for (int c = 0; c < In.C; c++)
            {
                ref float x = ref Unsafe.Add(ref x0, b * In.Size + c * In.Plane);
                int outBase = b * Out.Size + c * Out.Plane;
                for (int oy = 0; oy < oh; oy++)
                {
                    int ys = Math.Max(oy * _s - _p, 0), ye = Math.Min(oy * _s - _p + _k, h);
                    if (separable)
                    {
                        // The window's rows reduced with vector compares (keeping the first maximum's index), then its columns.
                        ColumnMax(ref x, ys, ye, w, colMax, colArg);
                        WindowMax(colMax, colArg, full, _k, winMax, winArg);
                        for (int ox = 0; ox < ow; ox++)
                        {
                            int xs = ox * _s, xe = Math.Min(xs + _k, w);
                            if (xs < full)
                            {
                                Unsafe.Add(ref y0, outBase + oy * ow + ox) = winMax[xs];
                                Unsafe.Add(ref a0, outBase + oy * ow + ox) = winArg[xs];
                                continue;
                            }
                            float best = colMax[xs];
                            int arg = colArg[xs];
                            for (int xx = xs + 1; xx < xe; xx++)
                            {
                                float v = colMax[xx];
                                bool gt = v > best;
                                arg = gt ? colArg[xx] : arg;
                                best = gt ? v : best;
                            }
                            Unsafe.Add(ref y0, outBase + oy * ow + ox) = best;
                            Unsafe.Add(ref a0, outBase + oy * ow + ox) = arg;
                        }
                        continue;
                    }
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int xs = Math.Max(ox * _s - _p, 0), xe = Math.Min(ox * _s - _p + _k, w);
                        int arg = ys * w + xs;
                        float best = Unsafe.Add(ref x, arg);
                        for (int yy = ys; yy < ye; yy++)
                        {
                            int row = yy * w;
                            for (int xx = xs; xx < xe; xx++)
                            {
                                float v = Unsafe.Add(ref x, row + xx);
                                // Strictly greater keeps the first maximum; NaN propagates as in PyTorch.
                                if (v > best || (float.IsNaN(v) && !float.IsNaN(best)))
                                {
                                    best = v;
                                    arg = row + xx;
                                }
                            }
                        }
                        Unsafe.Add(ref y0, outBase + oy * ow + ox) = best;
                        Unsafe.Add(ref a0, outBase + oy * ow + ox) = arg;
                    }
                }
            }
        }
    }

    /// <summary>For every window start x in [0, <paramref name="full"/>), the maximum of columns x .. x+k-1 and its index:
    /// the same sequence of strict compares as the scalar loop (first maximum kept), k shifted vectors at a time.</summary>
    private static void WindowMax(Span<float> colMax, Span<int> colArg, int full, int k, Span<float> winMax, Span<int> winArg)
    {
        int vw = Vector<float>.Count, i = 0;
        if (Vector.IsHardwareAccelerated && full >= vw)
        {
            ref float cm = ref colMax[0];
            ref int ca = ref colArg[0];
            while (true)
            {
                var best = Vector.LoadUnsafe(ref Unsafe.Add(ref cm, i));
                var arg = Vector.LoadUnsafe(ref Unsafe.Add(ref ca, i));
                for (int t = 1; t < k; t++)
                {
                    var v = Vector.LoadUnsafe(ref Unsafe.Add(ref cm, i + t));
                    Vector<int> gt = Vector.GreaterThan(v, best);
                    best = Vector.ConditionalSelect(gt, v, best);
                    arg = Vector.ConditionalSelect(gt, Vector.LoadUnsafe(ref Unsafe.Add(ref ca, i + t)), arg);
                }
                best.StoreUnsafe(ref winMax[i]);
                arg.StoreUnsafe(ref winArg[i]);
                if (i + vw == full) return;
                i = Math.Min(i + vw, full - vw); // the last vector overlaps the one before
            }
        }
        for (; i < full; i++)
        {
            float best = colMax[i];
            int arg = colArg[i];
            for (int t = 1; t < k; t++)
            {
                float v = colMax[i + t];
                bool gt = v > best;
                arg = gt ? colArg[i + t] : arg;
                best = gt ? v : best;
            }
            winMax[i] = best;
            winArg[i] = arg;
        }
    }

    /// <summary>For every column, the maximum over rows [ys, ye) and the plane index of its first occurrence.</summary>
    private static void ColumnMax(ref float x, int ys, int ye, int w, Span<float> colMax, Span<int> colArg)
    {
        int vw = Vector<float>.Count, i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<int> iota = Vector<int>.Indices;
            for (; i + vw <= w; i = i + vw < w && i + 2 * vw > w ? w - vw : i + vw)
            {
                var best = Vector.LoadUnsafe(ref Unsafe.Add(ref x, ys * w + i));
                Vector<int> arg = iota + new Vector<int>(ys * w + i);
                for (int r = ys + 1; r < ye; r++)
                {
                    var v = Vector.LoadUnsafe(ref Unsafe.Add(ref x, r * w + i));
                    Vector<int> gt = Vector.GreaterThan(v, best);
                    best = Vector.ConditionalSelect(gt, v, best);
                    arg = Vector.ConditionalSelect(gt, iota + new Vector<int>(r * w + i), arg);
                }
                best.CopyTo(colMax.Slice(i));
                arg.CopyTo(colArg.Slice(i));
            }
        }
        for (; i < w; i++)
        {
            float best = Unsafe.Add(ref x, ys * w + i);
            int arg = ys * w + i;
            for (int r = ys + 1; r < ye; r++)
            {
                float v = Unsafe.Add(ref x, r * w + i);
                if (v > best)
                {
                    best = v;
                    arg = r * w + i;
                }
            }
            colMax[i] = best;
            colArg[i] = arg;
        }
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        for (int b = b0; b < b1; b++)
        {
            dx.AsSpan(b * In.Size, In.Size).Clear();
            for (int c = 0; c < In.C; c++)
            {
                int inBase = b * In.Size + c * In.Plane, outBase = b * Out.Size + c * Out.Plane;
                for (int i = 0; i < Out.Plane; i++) dx[inBase + _argmax[outBase + i]] += dy[outBase + i];
            }
        }
    }
}

/// <summary>
/// Average pooling, PyTorch's AvgPool2d (window cut at n + padding; count_include_pad divides by that window,
/// otherwise by the pixels inside the image), and AdaptiveAvgPool2d (rows floor(i·H/OH) .. ceil((i+1)·H/OH)).
/// The backward spreads dy evenly over the window. Split by image.
/// </summary>
internal sealed class AvgPoolOp : TrainOp
{
    private readonly bool _adaptive, _includePad;
    private readonly int _k, _s, _p;

    public AvgPoolOp(string name, Shape3 input, Shape3 output, OperationInfo op, bool adaptive) : base(name, input, output)
    {
        _adaptive = adaptive;
        _k = op.KernelH;
        _s = op.Stride;
        _p = op.Padding;
        _includePad = op.CountIncludePad;
    }

    private void Window(int o, int n, int outN, out int start, out int end, out int padded)
    {
        if (_adaptive)
        {
            start = (int)((long)o * n / outN);
            end = (int)(((long)(o + 1) * n + outN - 1) / outN);
            padded = end - start;
            return;
        }
        int s = o * _s - _p;
        int e = Math.Min(s + _k, n + _p);
        padded = e - s;
        start = Math.Max(s, 0);
        end = Math.Min(e, n);
    }

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        for (int b = b0; b < b1; b++)
            for (int c = 0; c < In.C; c++)
            {
                ReadOnlySpan<float> x = X.AsSpan(b * In.Size + c * In.Plane, In.Plane);
                int outBase = b * Out.Size + c * Out.Plane;
                for (int oy = 0; oy < Out.H; oy++)
                {
                    Window(oy, In.H, Out.H, out int ys, out int ye, out int ph);
                    for (int ox = 0; ox < Out.W; ox++)
                    {
                        Window(ox, In.W, Out.W, out int xs, out int xe, out int pw);
                        double sum = 0;
                        for (int yy = ys; yy < ye; yy++)
                            for (int xx = xs; xx < xe; xx++) sum += x[yy * In.W + xx];
                        int div = _adaptive || _includePad ? ph * pw : (ye - ys) * (xe - xs);
                        Y[outBase + oy * Out.W + ox] = (float)(sum / div);
                    }
                }
            }
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        for (int b = b0; b < b1; b++)
        {
            dx.AsSpan(b * In.Size, In.Size).Clear();
            for (int c = 0; c < In.C; c++)
            {
                Span<float> d = dx.AsSpan(b * In.Size + c * In.Plane, In.Plane);
                int outBase = b * Out.Size + c * Out.Plane;
                for (int oy = 0; oy < Out.H; oy++)
                {
                    Window(oy, In.H, Out.H, out int ys, out int ye, out int ph);
                    for (int ox = 0; ox < Out.W; ox++)
                    {
                        Window(ox, In.W, Out.W, out int xs, out int xe, out int pw);
                        int div = _adaptive || _includePad ? ph * pw : (ye - ys) * (xe - xs);
                        float g = dy[outBase + oy * Out.W + ox] / div;
                        for (int yy = ys; yy < ye; yy++)
                            for (int xx = xs; xx < xe; xx++) d[yy * In.W + xx] += g;
                    }
                }
            }
        }
    }
}

/// <summary>
/// Batch normalization. Training: normalizes with the batch's mean and biased variance, and updates the running
/// statistics as PyTorch does (running = (1 - momentum)·running + momentum·batch, the variance unbiased: n/(n-1));
/// evaluation: the running statistics. Backward (training mode):
/// dx = gamma·invstd/N · (N·dy - Σdy - x̂·Σ(dy·x̂)), dgamma = Σ dy·x̂, dbeta = Σ dy. Split by channel over the batch.
/// </summary>
internal sealed class BatchNormOp : TrainOp
{
    private readonly float _eps, _momentum;
    private readonly TrainableTensor _gamma, _beta, _mean, _var;
    private readonly TrainableTensor? _tracked;
    private readonly float[] _batchMean, _invStd;
    private bool _trainingForward;

    public BatchNormOp(string name, Shape3 shape, OperationInfo op, TrainableTensor gamma, TrainableTensor beta, TrainableTensor mean, TrainableTensor variance, TrainableTensor? tracked)
        : base(name, shape, shape)
    {
        _eps = op.Eps;
        _momentum = op.Momentum;
        _gamma = gamma;
        _beta = beta;
        _mean = mean;
        _var = variance;
        _tracked = tracked;
        _batchMean = new float[shape.C];
        _invStd = new float[shape.C];
    }

    public override bool HasParameters => true;

    public override void Forward(in StepContext ctx)
    {
        Split(In.C, ctx.Worker, ctx.Workers, out int c0, out int c1);
        int plane = In.Plane, size = In.Size, batch = ctx.Batch;
        _trainingForward = ctx.Training;
        for (int c = c0; c < c1; c++)
        {
            float mean, invStd;
            if (ctx.Training)
            {
                // Two passes (the mean, then squared deviations from it): no cancellation when |mean| >> std.
                double sum = 0, sq = 0;
                for (int b = 0; b < batch; b++) sum += SumAndDot(X.AsSpan(b * size + c * plane, plane), default, 0).Sum;
                long n = (long)batch * plane;
                double m = sum / n;
                for (int b = 0; b < batch; b++) sq += SumAndDot(X.AsSpan(b * size + c * plane, plane), X.AsSpan(b * size + c * plane, plane), (float)m, squares: true).Dot;
                double v = sq / n;
                mean = (float)m;
                invStd = (float)(1.0 / Math.Sqrt(v + _eps));
                double unbiased = n > 1 ? v * n / (n - 1) : v;
                _mean.Value[c] = (float)((1 - _momentum) * _mean.Value[c] + _momentum * m);
                _var.Value[c] = (float)((1 - _momentum) * _var.Value[c] + _momentum * unbiased);
            }
            else
            {
                mean = _mean.Value[c];
                invStd = (float)(1.0 / Math.Sqrt(_var.Value[c] + (double)_eps));
            }
            _batchMean[c] = mean;
            _invStd[c] = invStd;
            float scale = _gamma.Value[c] * invStd, shift = _beta.Value[c] - mean * scale;
            for (int b = 0; b < batch; b++)
                Affine(X.AsSpan(b * size + c * plane, plane), Y.AsSpan(b * size + c * plane, plane), scale, 0, shift, default);
        }
        if (ctx.Training && ctx.Worker == 0 && _tracked is not null) _tracked.Value[0] += 1;
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        Split(In.C, ctx.Worker, ctx.Workers, out int c0, out int c1);
        int plane = In.Plane, size = In.Size, batch = ctx.Batch;
        long n = (long)batch * plane;
        for (int c = c0; c < c1; c++)
        {
            float mean = _batchMean[c], inv = _invStd[c];
            double sdy = 0, sdyx = 0;
            for (int b = 0; b < batch; b++)
            {
                (double s1, double s2) = SumAndDot(dy.AsSpan(b * size + c * plane, plane), X.AsSpan(b * size + c * plane, plane), mean);
                sdy += s1;
                sdyx += s2;
            }
            sdyx *= inv; // Σ dy·x̂ = invstd·Σ dy·(x − mean)
            if (!Frozen)
            {
                _gamma.Gradient[c] = (float)sdyx;
                _beta.Gradient[c] = (float)sdy;
            }
            if (!ctx.NeedDx) continue;
            float gamma = _gamma.Value[c];
            float k1 = gamma * inv;
            // Training: dx = k1·(dy − Σdy/n − x̂·Σ(dy·x̂)/n) = k1·dy − k1·inv·m2·x + k1·(inv·m2·mean − m1); evaluation: k1·dy.
            float m1 = _trainingForward ? (float)(sdy / n) : 0f, m2 = _trainingForward ? (float)(sdyx / n) : 0f;
            float xs = -k1 * inv * m2, cs = k1 * (inv * m2 * mean - m1);
            for (int b = 0; b < batch; b++)
                Affine(dy.AsSpan(b * size + c * plane, plane), dx.AsSpan(b * size + c * plane, plane), k1, xs, cs, X.AsSpan(b * size + c * plane, plane));
        }
    }

    /// <summary>dst = a·src + bx·x + c (x may be empty when bx is 0).</summary>
    private static void Affine(ReadOnlySpan<float> src, Span<float> dst, float a, float bx, float c, ReadOnlySpan<float> x)
    {
        int w = Vector<float>.Count, i = 0;
        var va = new Vector<float>(a);
        var vc = new Vector<float>(c);
        if (x.IsEmpty)
        {
            for (; i + w <= src.Length; i += w) (new Vector<float>(src.Slice(i, w)) * va + vc).CopyTo(dst.Slice(i, w));
            for (; i < src.Length; i++) dst[i] = src[i] * a + c;
            return;
        }
        var vb = new Vector<float>(bx);
        for (; i + w <= src.Length; i += w) (new Vector<float>(src.Slice(i, w)) * va + new Vector<float>(x.Slice(i, w)) * vb + vc).CopyTo(dst.Slice(i, w));
        for (; i < src.Length; i++) dst[i] = src[i] * a + x[i] * bx + c;
    }

    /// <summary>Σ g and Σ g·(x − mean) of one plane (x empty: only Σ g); with <paramref name="squares"/>, Σ (g − mean)²
    /// in the second result (g and x the same plane). Float lanes per plane, then double.</summary>
    private static (double Sum, double Dot) SumAndDot(ReadOnlySpan<float> g, ReadOnlySpan<float> x, float mean, bool squares = false)
    {
        int w = Vector<float>.Count, i = 0;
        Vector<float> s = Vector<float>.Zero, d = Vector<float>.Zero;
        var vm = new Vector<float>(mean);
        if (x.IsEmpty)
        {
            for (; i + w <= g.Length; i += w) s += new Vector<float>(g.Slice(i, w));
        }
        else if (squares)
        {
            for (; i + w <= g.Length; i += w)
            {
                Vector<float> e = new Vector<float>(g.Slice(i, w)) - vm;
                d += e * e;
            }
        }
        else
        {
            for (; i + w <= g.Length; i += w)
            {
                var gv = new Vector<float>(g.Slice(i, w));
                s += gv;
                d += gv * (new Vector<float>(x.Slice(i, w)) - vm);
            }
        }
        double sum = Vector.Sum(s), dot = Vector.Sum(d);
        for (; i < g.Length; i++)
        {
            if (x.IsEmpty) sum += g[i];
            else if (squares) dot += ((double)g[i] - mean) * (g[i] - mean);
            else
            {
                sum += g[i];
                dot += (double)g[i] * (x[i] - mean);
            }
        }
        return (sum, dot);
    }
}
