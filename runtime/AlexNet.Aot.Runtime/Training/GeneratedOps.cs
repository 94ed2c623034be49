using System;

namespace AlexNet.Aot.Training;

// The training graph's operations that run generated kernels (ModelInfo.Training). Each splits the work across the
// team exactly as its reference operation does (NormPoolOps.cs, LayerOps.cs) and keeps the same buffers, so the
// results are the reference's: bit for bit for ReLU, the pools and dropout, and for LRN and batch norm too where the
// kernels sum in the reference's order (they do; see each kernel's comment).

/// <summary>ReLU by <see cref="ReluKernels"/>; split by element over the batch.</summary>
internal sealed class GeneratedReluOp : TrainOp
{
    public override bool Generated => true;

    private readonly ReluKernels _k;

    public GeneratedReluOp(string name, Shape3 shape, ReluKernels kernels) : base(name, shape, shape) => _k = kernels;

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch * In.Size, ctx.Worker, ctx.Workers, out int s, out int e);
        _k.Forward(X.AsSpan(s, e - s), Y.AsSpan(s, e - s));
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch * In.Size, ctx.Worker, ctx.Workers, out int s, out int e);
        _k.Backward(Y.AsSpan(s, e - s), dy.AsSpan(s, e - s), dx.AsSpan(s, e - s));
    }

    public override bool ByImage => true;

    public override void ForwardImages(in StepContext ctx, int b0, int b1)
    {
        int s = b0 * In.Size, n = (b1 - b0) * In.Size;
        _k.Forward(X.AsSpan(s, n), Y.AsSpan(s, n));
    }

    public override void BackwardImages(in StepContext ctx, ReadOnlySpan<float> dy, Span<float> dx, int b0, int b1)
    {
        int s = b0 * In.Size, n = (b1 - b0) * In.Size;
        _k.Backward(Y.AsSpan(s, n), dy[..n], dx[..n]);
    }
}

/// <summary>LRN by <see cref="LrnKernels"/>; split by image.</summary>
internal sealed class GeneratedLrnOp : TrainOp
{
    public override bool Generated => true;

    private readonly LrnKernels _k;
    private float[] _pow = Array.Empty<float>(), _ratio = Array.Empty<float>();

    public GeneratedLrnOp(string name, Shape3 shape, LrnKernels kernels) : base(name, shape, shape) => _k = kernels;

    public override long LrnFloats => In.Size;

    public override void Allocate(int maxBatch)
    {
        _pow = new float[(long)maxBatch * In.Size];
        _ratio = new float[(long)maxBatch * In.Size];
    }

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (b1 <= b0) return;
        int s = b0 * In.Size, n = (b1 - b0) * In.Size;
        _k.Forward(X.AsSpan(s, n), Y.AsSpan(s, n), _pow.AsSpan(s, n), _ratio.AsSpan(s, n), ctx.Scratch.Lrn.AsSpan(0, In.Size));
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (b1 <= b0) return;
        int s = b0 * In.Size, n = (b1 - b0) * In.Size;
        _k.Backward(X.AsSpan(s, n), _pow.AsSpan(s, n), _ratio.AsSpan(s, n), dy.AsSpan(s, n), dx.AsSpan(s, n), ctx.Scratch.Lrn.AsSpan(0, In.Size));
    }

    public override bool ByImage => true;

    public override void ForwardImages(in StepContext ctx, int b0, int b1)
    {
        int s = b0 * In.Size, n = (b1 - b0) * In.Size;
        _k.Forward(X.AsSpan(s, n), Y.AsSpan(s, n), _pow.AsSpan(s, n), _ratio.AsSpan(s, n), ctx.Scratch.Lrn.AsSpan(0, In.Size));
    }

    public override void BackwardImages(in StepContext ctx, ReadOnlySpan<float> dy, Span<float> dx, int b0, int b1)
    {
        int s = b0 * In.Size, n = (b1 - b0) * In.Size;
        _k.Backward(X.AsSpan(s, n), _pow.AsSpan(s, n), _ratio.AsSpan(s, n), dy[..n], dx[..n], ctx.Scratch.Lrn.AsSpan(0, In.Size));
    }
}

/// <summary>Max pooling by <see cref="MaxPoolKernels"/>; split by image.</summary>
internal sealed class GeneratedMaxPoolOp : TrainOp
{
    public override bool Generated => true;

    private readonly MaxPoolKernels _k;
    private int[] _argmax = Array.Empty<int>();

    public GeneratedMaxPoolOp(string name, Shape3 input, Shape3 output, MaxPoolKernels kernels) : base(name, input, output) => _k = kernels;

    public override void Allocate(int maxBatch) => _argmax = new int[(long)maxBatch * Out.Size];

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (b1 <= b0) return;
        _k.Forward(X.AsSpan(b0 * In.Size, (b1 - b0) * In.Size), Y.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size), _argmax.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size));
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (b1 <= b0) return;
        _k.Backward(dy.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size), _argmax.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size), dx.AsSpan(b0 * In.Size, (b1 - b0) * In.Size));
    }

    public override bool ByImage => true;

    public override void ForwardImages(in StepContext ctx, int b0, int b1) =>
        _k.Forward(X.AsSpan(b0 * In.Size, (b1 - b0) * In.Size), Y.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size), _argmax.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size));

    public override void BackwardImages(in StepContext ctx, ReadOnlySpan<float> dy, Span<float> dx, int b0, int b1) =>
        _k.Backward(dy[..((b1 - b0) * Out.Size)], _argmax.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size), dx[..((b1 - b0) * In.Size)]);
}

/// <summary>Average or adaptive average pooling by <see cref="AvgPoolKernels"/>; split by image.</summary>
internal sealed class GeneratedAvgPoolOp : TrainOp
{
    public override bool Generated => true;

    private readonly AvgPoolKernels _k;

    public GeneratedAvgPoolOp(string name, Shape3 input, Shape3 output, AvgPoolKernels kernels) : base(name, input, output) => _k = kernels;

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (b1 <= b0) return;
        _k.Forward(X.AsSpan(b0 * In.Size, (b1 - b0) * In.Size), Y.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size));
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        if (!ctx.NeedDx) return;
        Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        if (b1 <= b0) return;
        _k.Backward(dy.AsSpan(b0 * Out.Size, (b1 - b0) * Out.Size), dx.AsSpan(b0 * In.Size, (b1 - b0) * In.Size));
    }
}

/// <summary>Batch normalization by <see cref="BatchNormKernels"/>; split by channel over the batch.</summary>
internal sealed class GeneratedBatchNormOp : TrainOp
{
    public override bool Generated => true;

    private readonly BatchNormKernels _k;
    private readonly BatchNormTensors _t;
    private readonly TrainableTensor? _tracked;
    private bool _trainingForward;

    public GeneratedBatchNormOp(string name, Shape3 shape, BatchNormKernels kernels, TrainableTensor gamma, TrainableTensor beta, TrainableTensor mean,
        TrainableTensor variance, TrainableTensor? tracked) : base(name, shape, shape)
    {
        _k = kernels;
        _t = new BatchNormTensors(gamma.Value, beta.Value, mean.Value, variance.Value, gamma.Gradient, beta.Gradient);
        _tracked = tracked;
    }

    public override bool HasParameters => true;

    public override void Forward(in StepContext ctx)
    {
        Split(In.C, ctx.Worker, ctx.Workers, out int c0, out int c1);
        _trainingForward = ctx.Training;
        _k.Forward(X, Y, ctx.Batch, c0, c1, ctx.Training, _t);
        if (ctx.Training && ctx.Worker == 0 && _tracked is not null) _tracked.Value[0] += 1;
    }

    public override void Backward(in StepContext ctx, float[] dy, float[] dx)
    {
        Split(In.C, ctx.Worker, ctx.Workers, out int c0, out int c1);
        _k.Backward(X, dy, dx, ctx.Batch, c0, c1, _trainingForward, ctx.NeedDx, Frozen, _t);
    }
}

/// <summary>Dropout by <see cref="DropoutKernels"/> with the reference's counter-based masks; split by element.</summary>
internal sealed class GeneratedDropoutOp : TrainOp
{
    public override bool Generated => true;

    private readonly DropoutKernels _k;
    private readonly int _index;
    private float[] _mask = Array.Empty<float>();
    private bool _active;

    public GeneratedDropoutOp(string name, Shape3 shape, DropoutKernels kernels, int index) : base(name, shape, shape)
    {
        _k = kernels;
        _index = index;
    }

    public bool Enabled { get; set; } = true;

    public override void Allocate(int maxBatch) => _mask = new float[(long)maxBatch * In.Size];

    public override void Forward(in StepContext ctx)
    {
        Split(ctx.Batch * In.Size, ctx.Worker, ctx.Workers, out int s, out int e);
        _active = ctx.Training && Enabled && _k.P > 0;
        if (!_active)
        {
            X.AsSpan(s, e - s).CopyTo(Y.AsSpan(s, e - s));
            return;
        }
        ulong stream = CounterRng.Hash(ctx.Seed, 0xD20F0000UL + (ulong)_index, (ulong)ctx.Step);
        _k.Forward(X.AsSpan(s, e - s), Y.AsSpan(s, e - s), _mask.AsSpan(s, e - s), s, stream);
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
        _k.Backward(dy.AsSpan(s, e - s), _mask.AsSpan(s, e - s), dx.AsSpan(s, e - s));
    }
}
