using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AlexNet.Aot.Training;

/// <summary>One image's activation shape: channels, height, width (a dense layer's output is C x 1 x 1).</summary>
internal readonly record struct Shape3(int C, int H, int W)
{
    public int Size => C * H * W;
    public int Plane => H * W;
}

/// <summary>Per-thread scratch of a training session: a GEMM with its packing buffers, and column/tile buffers.</summary>
internal sealed class WorkerScratch
{
    public readonly Gemm Gemm = new();
    public float[] Col = Array.Empty<float>();
    public float[] Tile = Array.Empty<float>();
    public float[] Lrn = Array.Empty<float>();
    /// <summary>Two buffers of one image block for the gradients inside a chain of image-by-image ops (see <see cref="TrainOp.ByImage"/>).</summary>
    public float[] ChainA = Array.Empty<float>(), ChainB = Array.Empty<float>();
}

/// <summary>
/// One operation of the training graph: a forward that keeps what its backward needs, and a backward that turns
/// dL/dy into dL/dx and (for layers with parameters) dL/dparameters. Both run on every worker of the team; each
/// op partitions its own work (by image, channel, feature or element) and the trainer puts a barrier between ops.
/// </summary>
internal abstract class TrainOp
{
    protected TrainOp(string name, Shape3 input, Shape3 output)
    {
        Name = name;
        In = input;
        Out = output;
    }

    /// <summary>The layer name and operation, for errors and profiles (e.g. <c>conv1.maxpool</c>).</summary>
    public string Name { get; }
    public Shape3 In { get; }
    public Shape3 Out { get; }

    /// <summary>The input activations, batch-major ([batch, In]).</summary>
    public float[] X = Array.Empty<float>();
    /// <summary>The output activations ([batch, Out]).</summary>
    public float[] Y = Array.Empty<float>();

    /// <summary>True when the op passes its input through unchanged (flatten, softmax before the loss): it shares its input's buffer and is skipped.</summary>
    public virtual bool IsIdentity => false;

    /// <summary>True when the op runs kernels the generator emitted (a product: its bias gradient).</summary>
    public virtual bool Generated => false;

    /// <summary>True when the op has trainable parameters.</summary>
    public virtual bool HasParameters => false;

    /// <summary>True when no parameter of this op is updated (transfer learning with frozen layers).</summary>
    public bool Frozen { get; set; }

    /// <summary>Floats of per-worker column scratch this op needs.</summary>
    public virtual long ColFloats => 0;
    public virtual long TileFloats => 0;
    public virtual long LrnFloats => 0;

    /// <summary>Allocates the per-image state the op keeps between its forward and backward (masks, arg-maxima, LRN powers).</summary>
    public virtual void Allocate(int maxBatch) { }

    public abstract void Forward(in StepContext ctx);

    /// <summary>dy: dL/dY ([batch, Out]); dx: dL/dX to write ([batch, In]) when <see cref="StepContext.NeedDx"/>.</summary>
    public abstract void Backward(in StepContext ctx, float[] dy, float[] dx);

    /// <summary>After the backward barrier: sums the per-worker parameter gradients (conv) into the gradient tensors.</summary>
    public virtual void Reduce(in StepContext ctx) { }

    /// <summary>True when the op computes each image from that image alone and keeps nothing per worker (no batch
    /// statistics, no per-worker sums): the trainer then runs a chain of such ops (ReLU, LRN, max-pool after a
    /// convolution) a block of images at a time, so that what one op writes is still in cache when the next reads it,
    /// with no barrier inside the chain (<see cref="ForwardImages"/>, <see cref="BackwardImages"/>).</summary>
    public virtual bool ByImage => false;

    /// <summary>The forward of images [b0, b1) only (<see cref="ByImage"/> ops).</summary>
    public virtual void ForwardImages(in StepContext ctx, int b0, int b1) => throw new NotSupportedException(Name + " does not run by image.");

    /// <summary>The backward of images [b0, b1) only (<see cref="ByImage"/> ops): <paramref name="dy"/> holds those images'
    /// dL/dY and <paramref name="dx"/> receives their dL/dX, both from their first element.</summary>
    public virtual void BackwardImages(in StepContext ctx, ReadOnlySpan<float> dy, Span<float> dx, int b0, int b1) => throw new NotSupportedException(Name + " does not run by image.");

    /// <summary>A worker's share [start, end) of <paramref name="total"/> items (images, channels or elements).</summary>
    internal static void Split(int total, int worker, int workers, out int start, out int end)
    {
        long s = (long)total * worker / workers, e = (long)total * (worker + 1) / workers;
        start = (int)s;
        end = (int)e;
    }

    /// <summary>Splits <paramref name="total"/> in blocks of <paramref name="align"/> (vector-friendly column ranges).</summary>
    protected static void SplitAligned(int total, int align, int worker, int workers, out int start, out int end)
    {
        int blocks = (total + align - 1) / align;
        Split(blocks, worker, workers, out int b0, out int b1);
        start = Math.Min(total, b0 * align);
        end = Math.Min(total, b1 * align);
    }
}

/// <summary>What every op sees in one step.</summary>
internal readonly struct StepContext
{
    public StepContext(int worker, int workers, int batch, bool training, bool needDx, WorkerScratch scratch, ulong seed, long step)
    {
        Worker = worker;
        Workers = workers;
        Batch = batch;
        Training = training;
        NeedDx = needDx;
        Scratch = scratch;
        Seed = seed;
        Step = step;
    }

    public int Worker { get; }
    public int Workers { get; }
    public int Batch { get; }
    public bool Training { get; }
    public bool NeedDx { get; }
    public WorkerScratch Scratch { get; }
    public ulong Seed { get; }
    public long Step { get; }

    public StepContext WithNeedDx(bool needDx) => new(Worker, Workers, Batch, Training, needDx, Scratch, Seed, Step);
}

/// <summary>A parameter of the model in PyTorch's layout, with its gradient and SGD momentum buffer.</summary>
public sealed class TrainableTensor
{
    internal TrainableTensor(string key, int[] shape, bool trainable)
    {
        Key = key;
        Shape = shape;
        long n = 1;
        foreach (int d in shape) n *= d;
        Value = new float[n];
        Trainable = trainable;
        Gradient = trainable ? new float[n] : Array.Empty<float>();
        Momentum = trainable ? new float[n] : Array.Empty<float>();
    }

    /// <summary>The checkpoint key (e.g. <c>features.0.weight</c>).</summary>
    public string Key { get; }

    /// <summary>The shape, outermost first.</summary>
    public int[] Shape { get; }

    /// <summary>The values (the optimizer updates them in place).</summary>
    public float[] Value { get; }

    /// <summary>dL/dValue of the last step (empty for running statistics).</summary>
    public float[] Gradient { get; }

    /// <summary>The SGD momentum buffer (empty for running statistics).</summary>
    public float[] Momentum { get; }

    /// <summary>False for batch-norm running statistics: updated by the forward pass, not by the optimizer.</summary>
    public bool Trainable { get; }

    /// <summary>True when the optimizer leaves it unchanged (frozen layers).</summary>
    public bool Frozen { get; internal set; }
}

internal static class Vec
{
    /// <summary>dst[i] = max(src[i], 0).</summary>
    public static void Relu(ReadOnlySpan<float> src, Span<float> dst)
    {
        int i = 0;
        if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= src.Length; i += 16)
                System.Runtime.Intrinsics.Vector512.Max(System.Runtime.Intrinsics.Vector512.LoadUnsafe(ref Unsafe.AsRef(in src[i])), System.Runtime.Intrinsics.Vector512<float>.Zero).StoreUnsafe(ref dst[i]);
        }
        else if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= src.Length; i += 8)
                System.Runtime.Intrinsics.Vector256.Max(System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref Unsafe.AsRef(in src[i])), System.Runtime.Intrinsics.Vector256<float>.Zero).StoreUnsafe(ref dst[i]);
        }
        else if (System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated)
        {
            for (; i + 4 <= src.Length; i += 4)
                System.Runtime.Intrinsics.Vector128.Max(System.Runtime.Intrinsics.Vector128.LoadUnsafe(ref Unsafe.AsRef(in src[i])), System.Runtime.Intrinsics.Vector128<float>.Zero).StoreUnsafe(ref dst[i]);
        }
        for (; i < src.Length; i++) dst[i] = src[i] > 0 ? src[i] : 0f;
    }

    /// <summary>dx[i] = y[i] &gt; 0 ? dy[i] : 0.</summary>
    public static void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        int i = 0;
        if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= y.Length; i += 16)
            {
                var m = System.Runtime.Intrinsics.Vector512.GreaterThan(System.Runtime.Intrinsics.Vector512.LoadUnsafe(ref Unsafe.AsRef(in y[i])), System.Runtime.Intrinsics.Vector512<float>.Zero);
                (m & System.Runtime.Intrinsics.Vector512.LoadUnsafe(ref Unsafe.AsRef(in dy[i]))).StoreUnsafe(ref dx[i]);
            }
        }
        else if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= y.Length; i += 8)
            {
                var m = System.Runtime.Intrinsics.Vector256.GreaterThan(System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref Unsafe.AsRef(in y[i])), System.Runtime.Intrinsics.Vector256<float>.Zero);
                (m & System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref Unsafe.AsRef(in dy[i]))).StoreUnsafe(ref dx[i]);
            }
        }
        else if (System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated)
        {
            for (; i + 4 <= y.Length; i += 4)
            {
                var m = System.Runtime.Intrinsics.Vector128.GreaterThan(System.Runtime.Intrinsics.Vector128.LoadUnsafe(ref Unsafe.AsRef(in y[i])), System.Runtime.Intrinsics.Vector128<float>.Zero);
                (m & System.Runtime.Intrinsics.Vector128.LoadUnsafe(ref Unsafe.AsRef(in dy[i]))).StoreUnsafe(ref dx[i]);
            }
        }
        for (; i < y.Length; i++) dx[i] = y[i] > 0 ? dy[i] : 0f;
    }

    /// <summary>x[i] += v.</summary>
    public static void AddScalar(Span<float> x, float v)
    {
        int i = 0;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            var vv = System.Runtime.Intrinsics.Vector256.Create(v);
            for (; i + 8 <= x.Length; i += 8)
                (System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref x[i]) + vv).StoreUnsafe(ref x[i]);
        }
        else if (System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated)
        {
            var vv = System.Runtime.Intrinsics.Vector128.Create(v);
            for (; i + 4 <= x.Length; i += 4)
                (System.Runtime.Intrinsics.Vector128.LoadUnsafe(ref x[i]) + vv).StoreUnsafe(ref x[i]);
        }
        for (; i < x.Length; i++) x[i] += v;
    }

    /// <summary>The sum of x, accumulated in double.</summary>
    public static double Sum(ReadOnlySpan<float> x)
    {
        double s = 0;
        int i = 0;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= x.Length; i += 8)
                s += System.Runtime.Intrinsics.Vector256.Sum(System.Runtime.Intrinsics.Vector256.WidenLower(System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref Unsafe.AsRef(in x[i])))
                    + System.Runtime.Intrinsics.Vector256.WidenUpper(System.Runtime.Intrinsics.Vector256.LoadUnsafe(ref Unsafe.AsRef(in x[i]))));
        }
        for (; i < x.Length; i++) s += x[i];
        return s;
    }
}
