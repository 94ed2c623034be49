using System;
using System.Diagnostics;
using System.Threading;

namespace AlexNet.Aot;

/// <summary>
/// A session of one compiled model: packed weights, an activation arena planned by the generator and a persistent
/// thread team. After construction, <see cref="Forward"/> allocates nothing. A session runs one batch at a time;
/// use one session per thread.
/// </summary>
public abstract unsafe class Network : IDisposable, IParallelBody
{
    /// <summary>The largest batch any session accepts.</summary>
    public const int MaxSupportedBatch = 65536;

    private int _busy;
    private bool _disposed;
    private float* _input;
    private float* _output;
    private int _batch;
    private readonly long[] _layerTicks;
    private long _forwardCalls;

    /// <summary>Creates the session's arena and thread team (called by generated code).</summary>
    /// <param name="info">The model.</param>
    /// <param name="options">Largest batch, threads (0: one per processor), dense weight precision.</param>
    protected Network(ModelInfo info, NetworkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        int maxBatch = options.MaxBatch, threads = options.Threads;
        Options = options;
        if (maxBatch < 1 || maxBatch > MaxSupportedBatch)
            throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, $"maxBatch must be between 1 and {MaxSupportedBatch}.");
        if (threads < 0 || threads > 256)
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "threads must be between 0 (one per processor) and 256.");
        Info = info;
        MaxBatch = maxBatch;
        Threads = threads == 0 ? ThreadTeam.DefaultSize : threads;
        long floats = info.ArenaFloatsPerWorker * Threads + info.ArenaFloatsPerImage * (long)maxBatch;
        if (floats > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, $"an arena for {maxBatch} images of {info.Name} would need {floats * 4} bytes, more than one array holds.");
        Arena = GC.AllocateUninitializedArray<float>((int)floats, pinned: true);
        Team = Threads > 1 ? new ThreadTeam(Threads) : null;
        _layerTicks = new long[info.Layers.Length];
    }

    /// <summary>What the generator decided about this model.</summary>
    public ModelInfo Info { get; }

    /// <summary>The options this session was made with.</summary>
    public NetworkOptions Options { get; }

    /// <summary>Whether the layers the generator chose for Winograd use it (<see cref="NetworkOptions.Convolutions"/>).</summary>
    protected bool Winograd => Options.Convolutions != ConvolutionAlgorithm.Direct;

    /// <summary>The largest batch this session accepts.</summary>
    public int MaxBatch { get; }

    /// <summary>Threads this session computes on, the caller's included.</summary>
    public int Threads { get; }

    /// <summary>Floats per input image (C*H*W).</summary>
    public int InputLength => Info.InputLength;

    /// <summary>Outputs per image.</summary>
    public int Classes => Info.Classes;

    /// <summary>When true, <see cref="Forward"/> adds each layer line's time to <see cref="GetLayerTimes"/>.</summary>
    public bool Profiling { get; set; }

    /// <summary>The activation arena: <see cref="ModelInfo.ArenaFloatsPerWorker"/> floats of per-image conv buffers per thread,
    /// then <see cref="ModelInfo.ArenaFloatsPerImage"/> floats per batch image for the dense layers.</summary>
    protected float[] Arena { get; }

    /// <summary>The team, or null when the session runs on the calling thread alone.</summary>
    protected ThreadTeam? Team { get; }

    /// <summary>The current batch's first input float (valid inside <see cref="Work"/>).</summary>
    protected ref float InputRef => ref *_input;

    /// <summary>The current batch's first output float (valid inside <see cref="Work"/>).</summary>
    protected ref float OutputRef => ref *_output;

    /// <summary>The current batch size (valid inside <see cref="Work"/>).</summary>
    protected int Batch => _batch;

    /// <summary>Per-layer tick counters (Stopwatch ticks), written by worker 0 while <see cref="Profiling"/> is on.</summary>
    protected long[] LayerTicks => _layerTicks;

    /// <summary>
    /// Runs a batch: <paramref name="input"/> is float32 NCHW ([batch, C, H, W]), <paramref name="output"/>
    /// receives [batch, classes]: probabilities when the spec ends in softmax, else (or with
    /// <paramref name="logits"/>) the last layer's raw outputs.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">batch is not in 1..MaxBatch.</exception>
    /// <exception cref="ArgumentException">a span has the wrong length, or the input holds NaN or an infinity (unless <see cref="NetworkOptions.CheckInputs"/> is off).</exception>
    /// <exception cref="ObjectDisposedException">the session was disposed.</exception>
    /// <exception cref="InvalidOperationException">another thread is using this session.</exception>
    public void Forward(ReadOnlySpan<float> input, Span<float> output, int batch, bool logits = false)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)(batch - 1) >= (uint)MaxBatch) ThrowBatch(batch);
        if (input.Length != batch * InputLength) ThrowLength(nameof(input), batch * InputLength, input.Length);
        if (output.Length < batch * Classes) ThrowLength(nameof(output), batch * Classes, output.Length);
        if (Options.CheckInputs && Kernels.FirstNonFinite(input) is int bad and >= 0)
            throw new ArgumentException(Kernels.NonFiniteMessage(nameof(input), input, bad, Info.InputShape, " (NetworkOptions.CheckInputs = false lets them through)"), nameof(input));
        if (Interlocked.Exchange(ref _busy, 1) != 0) ThrowBusy();
        try
        {
            Span<float> result = output.Slice(0, batch * Classes);
            fixed (float* px = input)
            fixed (float* py = result)
            {
                _input = px;
                _output = py;
                _batch = batch;
                try
                {
                    if (Team is null) Work(0, 1);
                    else Team.Run(this);
                }
                finally
                {
                    _input = null;
                    _output = null;
                }
            }
            if (Profiling) _forwardCalls++;
            if (!logits && Info.HasSoftmax)
                Kernels.SoftmaxRows(result, batch, Classes);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Generated: this worker's share of the forward pass to the last layer's raw outputs.</summary>
    protected abstract void Work(int worker, int workers);

    void IParallelBody.Work(int worker, int workers) => Work(worker, workers);

    /// <summary>Bytes the team's background threads have allocated inside <see cref="Forward"/> (zero-allocation tests).</summary>
    internal long WorkerAllocatedBytes => Team?.WorkerAllocatedBytes ?? 0;

    /// <summary>Milliseconds per <see cref="Forward"/> call spent in each layer line since the last <see cref="ResetLayerTimes"/>.</summary>
    public void GetLayerTimes(Span<double> msPerCall)
    {
        for (int i = 0; i < _layerTicks.Length && i < msPerCall.Length; i++)
            msPerCall[i] = _forwardCalls == 0 ? 0 : _layerTicks[i] * 1000.0 / Stopwatch.Frequency / _forwardCalls;
    }

    /// <summary>Clears the per-layer times.</summary>
    public void ResetLayerTimes()
    {
        Array.Clear(_layerTicks);
        _forwardCalls = 0;
    }

    /// <summary>Stops the thread team.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Team?.Dispose();
        GC.SuppressFinalize(this);
    }

    private void ThrowBatch(int batch) =>
        throw new ArgumentOutOfRangeException(nameof(batch), batch, $"batch must be between 1 and this session's MaxBatch ({MaxBatch}).");

    private static void ThrowLength(string name, int expected, int actual) =>
        throw new ArgumentException($"{name} has {actual} floats; expected {expected}.", name);

    private static void ThrowBusy() =>
        throw new InvalidOperationException("This session is already running a batch on another thread; use one session per thread.");
}
