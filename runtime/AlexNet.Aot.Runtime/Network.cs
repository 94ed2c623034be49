using System;
using System.Threading;

namespace AlexNet.Aot;

/// <summary>
/// A session of one compiled model: packed weights and an activation arena planned by the generator.
/// After construction, <see cref="Forward"/> allocates nothing. A session runs one batch at a time;
/// use one session per thread (sessions are cheap beside the weights).
/// </summary>
public abstract class Network : IDisposable
{
    /// <summary>The largest batch any session accepts.</summary>
    public const int MaxSupportedBatch = 65536;

    private int _busy;
    private bool _disposed;

    /// <summary>Creates the session's arena (called by generated code).</summary>
    protected Network(ModelInfo info, int maxBatch)
    {
        if (maxBatch < 1 || maxBatch > MaxSupportedBatch)
            throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, $"maxBatch must be between 1 and {MaxSupportedBatch}.");
        Info = info;
        MaxBatch = maxBatch;
        long floats = info.ArenaFloatsPerWorker + info.ArenaFloatsPerImage * (long)maxBatch;
        if (floats > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, $"an arena for {maxBatch} images of {info.Name} would need {floats * 4} bytes, more than one array holds.");
        Arena = GC.AllocateUninitializedArray<float>((int)floats, pinned: true);
    }

    /// <summary>What the generator decided about this model.</summary>
    public ModelInfo Info { get; }

    /// <summary>The largest batch this session accepts.</summary>
    public int MaxBatch { get; }

    /// <summary>Floats per input image (C*H*W).</summary>
    public int InputLength => Info.InputLength;

    /// <summary>Outputs per image.</summary>
    public int Classes => Info.Classes;

    /// <summary>The activation arena: <see cref="ModelInfo.ArenaFloatsPerWorker"/> floats of per-image conv buffers,
    /// then <see cref="ModelInfo.ArenaFloatsPerImage"/> floats per batch image for the dense layers.</summary>
    protected float[] Arena { get; }

    /// <summary>
    /// Runs a batch: <paramref name="input"/> is float32 NCHW ([batch, C, H, W]), <paramref name="output"/>
    /// receives [batch, classes]: probabilities when the spec ends in softmax, else (or with
    /// <paramref name="logits"/>) the last layer's raw outputs.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">batch is not in 1..MaxBatch.</exception>
    /// <exception cref="ArgumentException">a span has the wrong length.</exception>
    /// <exception cref="ObjectDisposedException">the session was disposed.</exception>
    /// <exception cref="InvalidOperationException">another thread is using this session.</exception>
    public void Forward(ReadOnlySpan<float> input, Span<float> output, int batch, bool logits = false)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)(batch - 1) >= (uint)MaxBatch) ThrowBatch(batch);
        if (input.Length != batch * InputLength) ThrowLength(nameof(input), batch * InputLength, input.Length);
        if (output.Length < batch * Classes) ThrowLength(nameof(output), batch * Classes, output.Length);
        if (Interlocked.Exchange(ref _busy, 1) != 0) ThrowBusy();
        try
        {
            Span<float> result = output.Slice(0, batch * Classes);
            ForwardCore(input, result, batch);
            if (!logits && Info.HasSoftmax)
                Kernels.SoftmaxRows(result, batch, Classes);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Generated: the forward pass to the last layer's raw outputs.</summary>
    protected abstract void ForwardCore(ReadOnlySpan<float> input, Span<float> logits, int batch);

    /// <summary>Releases the arena.</summary>
    public void Dispose()
    {
        _disposed = true;
        GC.SuppressFinalize(this);
    }

    private void ThrowBatch(int batch) =>
        throw new ArgumentOutOfRangeException(nameof(batch), batch, $"batch must be between 1 and this session's MaxBatch ({MaxBatch}).");

    private static void ThrowLength(string name, int expected, int actual) =>
        throw new ArgumentException($"{name} has {actual} floats; expected {expected}.", name);

    private static void ThrowBusy() =>
        throw new InvalidOperationException("This session is already running a batch on another thread; use one session per thread.");
}
