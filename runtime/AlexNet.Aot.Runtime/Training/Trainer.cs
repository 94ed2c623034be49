using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Numerics;
using System.Threading;

namespace AlexNet.Aot.Training;

/// <summary>How a <see cref="Trainer"/> is set up.</summary>
public sealed class TrainerOptions
{
    /// <summary>The largest batch a step accepts (buffers are planned for it once).</summary>
    public int MaxBatch { get; init; } = 128;

    /// <summary>Threads (the caller's included); 0: one per processor.</summary>
    public int Threads { get; init; }

    /// <summary>Seed of the dropout masks and of the initialization.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Initialization of the parameters that the weights source does not supply (or all, without one):
    /// <c>he</c> (He-normal, fan-in, gain √2; zero biases), <c>paper</c> (the 2012 paper: N(0, 0.01) weights, biases 1 in
    /// conv2, conv4, conv5 and the dense layers, 0 elsewhere) or <c>xavier</c> (Glorot-normal).</summary>
    public string Init { get; init; } = "he";

    /// <summary>When false, dropout is the identity in training too (PyTorch's reference fixtures set p = 0).</summary>
    public bool Dropout { get; init; } = true;

    /// <summary>Layer names whose parameters start from <see cref="Init"/> even when the weights source has them
    /// (transfer learning: a new last layer); a source tensor of another shape for these is ignored.</summary>
    public IReadOnlyCollection<string> Reinitialize { get; init; } = Array.Empty<string>();

    /// <summary>Layer names whose parameters are not updated (e.g. every convolution, for fine-tuning the classifier).</summary>
    public IReadOnlyCollection<string> Freeze { get; init; } = Array.Empty<string>();

    /// <summary>How the convolutions train: <see cref="ConvolutionAlgorithm.Auto"/> runs the stride-1 3x3 and 5x5 layers
    /// with enough channels by Winograd (forward, weight and input gradients; see <c>WinogradConvOp.Suits</c>) and the
    /// rest as column gathers and GEMM; <see cref="ConvolutionAlgorithm.Direct"/> runs every convolution the direct way.</summary>
    public ConvolutionAlgorithm Convolutions { get; init; } = ConvolutionAlgorithm.Auto;

    /// <summary>Tests: with <see cref="ConvolutionAlgorithm.Auto"/>, every convolution whose shape allows Winograd
    /// (stride 1, square 3x3 or 5x5) trains by it, whether or not it pays.</summary>
    internal bool WinogradWherePossible { get; init; }

    /// <summary>Tests and profiles: run the trainer's own reference operations (NormPoolOps, LayerOps) even where the
    /// model carries generated training kernels (<see cref="ModelInfo.Training"/>).</summary>
    internal bool ReferenceOps { get; init; }

    /// <summary>Tests: run chains of image-by-image operations (ReLU, LRN, max-pool) a block of images at a time (the
    /// default), or each over the whole batch.</summary>
    internal bool ImageBlockChains { get; init; } = true;
}

/// <summary>
/// Trains a compiled model: forward in training mode (dropout masks, batch statistics), softmax cross-entropy,
/// backward through every operation and SGD with momentum and weight decay as PyTorch's <c>torch.optim.SGD</c>.
/// Activations, gradients and scratch are planned once for <see cref="TrainerOptions.MaxBatch"/> images; a step
/// allocates nothing. Work is split across a persistent thread team (by image for convolutions, pools and LRN, by
/// channel for batch norm, by feature for dense layers). One step at a time per trainer.
/// </summary>
public sealed partial class Trainer : IDisposable, IParallelBody
{
    private readonly List<TrainableTensor> _tensors = new();
    private readonly HashSet<string> _frozenLayers;
    private readonly Dictionary<string, TrainableTensor> _byKey = new(StringComparer.Ordinal);
    private readonly TrainOp[] _ops;
    private readonly float[] _input;
    private readonly float[] _g0, _g1;
    private readonly int[] _labels;
    private readonly WorkerScratch[] _scratch;
    private readonly ThreadTeam? _team;
    private readonly int _lowestTrainable;
    private readonly int _classes;
    /// <summary>The generated softmax cross-entropy, or null for <see cref="Score"/>'s own loop.</summary>
    private readonly SoftmaxCrossEntropyKernels? _loss;
    private int _busy;
    private bool _disposed;

    // The current step (read by the workers inside Work).
    private int _batch;
    private bool _training, _backward, _update;
    private float[] _logitsOut = Array.Empty<float>();
    private long[] _profileTicks = Array.Empty<long>();
    private long _profileSteps;
    private bool _profileStep;

    /// <summary>Builds a trainer for <paramref name="model"/>, with parameters from <paramref name="weights"/> where given
    /// (checked like a session's: every missing or mis-shaped tensor is reported) and initialized otherwise.</summary>
    /// <exception cref="WeightsException">the weights do not fit the model.</exception>
    public Trainer(ModelInfo model, IWeightSource? weights, TrainerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Options = options ?? new TrainerOptions();
        if (Options.MaxBatch < 1 || Options.MaxBatch > Network.MaxSupportedBatch)
            throw new ArgumentOutOfRangeException(nameof(options), Options.MaxBatch, $"MaxBatch must be between 1 and {Network.MaxSupportedBatch}.");
        if (Options.Threads < 0 || Options.Threads > 256)
            throw new ArgumentOutOfRangeException(nameof(options), Options.Threads, "Threads must be between 0 (one per processor) and 256.");
        Model = model;
        _classes = model.Classes;
        _loss = !Options.ReferenceOps && model.Training?.Loss is { } lk && lk.Classes == _classes ? lk : null;
        MaxBatch = Options.MaxBatch;
        Threads = Options.Threads == 0 ? ThreadTeam.DefaultSize : Options.Threads;
        var known = new HashSet<string>(StringComparer.Ordinal);
        foreach (LayerInfo l in model.Layers) known.Add(l.Name);
        foreach (string name in Options.Reinitialize)
            if (!known.Contains(name)) throw new ArgumentException($"Reinitialize names layer '{name}', which model {model.Name} does not have (layers: {string.Join(", ", known)}).", nameof(options));
        foreach (string name in Options.Freeze)
            if (!known.Contains(name)) throw new ArgumentException($"Freeze names layer '{name}', which model {model.Name} does not have (layers: {string.Join(", ", known)}).", nameof(options));

        _frozenLayers = new HashSet<string>(Options.Freeze, StringComparer.Ordinal);
        CreateTensors(weights);
        var ops = new List<TrainOp>();
        BuildOps(ops);
        _ops = ops.ToArray();
        var winograd = new List<string>();
        foreach (TrainOp op in _ops)
            if (op is WinogradConvOp) winograd.Add(op.Name[..op.Name.IndexOf('.')]);
        WinogradLayers = winograd;
        var generated = new List<string>();
        foreach (TrainOp op in _ops)
            if (op.Generated) generated.Add(op.Name);
        if (_loss is not null) generated.Add("loss");
        GeneratedOperations = generated;
        _profileTicks = new long[2 * _ops.Length + 3];

        _lowestTrainable = _ops.Length;
        for (int i = 0; i < _ops.Length; i++)
            if (_ops[i].HasParameters && !_ops[i].Frozen) { _lowestTrainable = i; break; }

        // Buffers: the input, one activation buffer per non-identity op, two gradient buffers of the largest activation.
        long maxAct = model.InputLength;
        _input = new float[(long)MaxBatch * model.InputLength];
        float[] current = _input;
        long col = 0, tile = 0, lrn = 0;
        foreach (TrainOp op in _ops)
        {
            op.X = current;
            if (op.IsIdentity) op.Y = current;
            else
            {
                op.Y = new float[(long)MaxBatch * op.Out.Size];
                current = op.Y;
            }
            maxAct = Math.Max(maxAct, Math.Max(op.In.Size, op.Out.Size));
            col = Math.Max(col, op.ColFloats);
            tile = Math.Max(tile, op.TileFloats);
            lrn = Math.Max(lrn, op.LrnFloats);
            op.Allocate(MaxBatch);
        }
        _g0 = new float[MaxBatch * maxAct];
        _g1 = new float[MaxBatch * maxAct];
        _labels = new int[MaxBatch];
        long chainFloats = PlanChains();
        _scratch = new WorkerScratch[Threads];
        for (int w = 0; w < Threads; w++)
            _scratch[w] = new WorkerScratch
            {
                Col = new float[col], Tile = new float[tile], Lrn = new float[lrn],
                ChainA = new float[chainFloats], ChainB = new float[chainFloats],
            };
        _team = Threads > 1 ? new ThreadTeam(Threads) : null;
    }

    /// <summary>The layers whose convolution trains by Winograd (forward, weight and input gradients), in order; empty
    /// with <see cref="ConvolutionAlgorithm.Direct"/> or when no layer suits it.</summary>
    public IReadOnlyList<string> WinogradLayers { get; }

    /// <summary>The operations (as <see cref="GetProfile"/> names them) that run kernels the generator emitted for this model
    /// (<see cref="ModelInfo.Training"/>), in order, and "loss" when the softmax cross-entropy is generated; a convolution or dense layer is listed when its products or its bias
    /// gradient are generated (<see cref="GeneratedParts"/> says which). Empty for a model description without them.</summary>
    public IReadOnlyList<string> GeneratedOperations { get; }

    /// <summary>What of a pass of <paramref name="operation"/> (as <see cref="GetProfile"/> names it) runs generated code:
    /// null for nothing, "" for the whole pass, or the parts of a convolution or dense product: "product" (a direct
    /// convolution's or dense layer's forward, or a backward computing only the weight gradient: the lowest trained layer),
    /// "products" (weight and input gradients), with ", gather" and ", scatter" for a direct convolution's column gather and
    /// scatter in its backward (a Winograd convolution's tile transforms run in the runtime), and ", bias gradient".</summary>
    public string? GeneratedParts(string operation, bool backward)
    {
        if (operation == "loss") return _loss is null ? null : "";
        for (int i = 0; i < _ops.Length; i++)
        {
            TrainOp op = _ops[i];
            if (op.Name != operation) continue;
            if (!op.Generated) return null;
            bool products = op is ConvOp { Kernels: not null } or DenseOp { Products: not null } or WinogradConvOp { Products: not null };
            bool bias = op switch { ConvOp c => c.BiasKernels is not null, WinogradConvOp w => w.BiasKernels is not null, DenseOp d => d.BiasKernels is not null, _ => false };
            if (!products && !bias && op is not (ConvOp or WinogradConvOp or DenseOp)) return "";
            if (!backward) return products ? "product" : null;
            // The lowest trained operation computes no input gradient: one product, nothing to scatter.
            bool dx = i > _lowestTrainable;
            string? p = !products ? null : (dx ? "products" : "product") + (op is ConvOp ? dx ? ", gather, scatter" : ", gather" : "");
            return p is not null && bias ? p + ", bias gradient" : p ?? (bias ? "bias gradient" : null);
        }
        return null;
    }

    /// <summary>The training graph, one op per operation of the model (tests compare them op by op).</summary>
    internal IReadOnlyList<TrainOp> Operations => _ops;

    /// <summary>The instruction set the training kernels run on in this process: <c>avx512</c>, <c>avx2</c>, <c>vector128</c> (NEON or SSE) or <c>scalar</c>.</summary>
    public static string KernelPath => Gemm.Path;

    /// <summary>The model being trained.</summary>
    public ModelInfo Model { get; }

    /// <summary>The options the trainer was made with.</summary>
    public TrainerOptions Options { get; }

    /// <summary>The largest batch a step accepts.</summary>
    public int MaxBatch { get; }

    /// <summary>Threads a step runs on.</summary>
    public int Threads { get; }

    /// <summary>SGD learning rate (the schedule sets it before each step or epoch).</summary>
    public float LearningRate { get; set; } = 0.01f;

    /// <summary>SGD momentum (PyTorch's: buf = momentum·buf + d; the first step sets buf = d).</summary>
    public float Momentum { get; set; } = 0.9f;

    /// <summary>L2 weight decay, added to every trainable parameter's gradient (biases and batch-norm affine included, as PyTorch's default parameter group).</summary>
    public float WeightDecay { get; set; } = 5e-4f;

    /// <summary>Optimizer steps taken (0 before the first; the first step initializes the momentum buffers).</summary>
    public long OptimizerSteps { get; set; }

    /// <summary>Training steps run (keys the dropout masks; restored with a checkpoint so that a resumed run draws the same masks).</summary>
    public long StepCount { get; set; }

    /// <summary>Mean cross-entropy of the last step's batch.</summary>
    public float LastLoss { get; private set; }

    /// <summary>Images of the last batch whose top class was the label.</summary>
    public int LastCorrect { get; private set; }

    /// <summary>Images of the last batch whose label was among the top five classes.</summary>
    public int LastTop5Correct { get; private set; }

    /// <summary>Every parameter and running statistic, in the model's order.</summary>
    public IReadOnlyList<TrainableTensor> Tensors => _tensors;

    /// <summary>The tensor with checkpoint key <paramref name="key"/>.</summary>
    public TrainableTensor this[string key] => _byKey.TryGetValue(key, out TrainableTensor? t) ? t : throw new KeyNotFoundException($"model {Model.Name} has no tensor '{key}'.");

    /// <summary>Forward and backward on a batch, then one SGD step; returns the mean loss (NaN or infinite when training diverged: the parameters are then already updated with it, so keep a checkpoint).</summary>
    public float Step(ReadOnlySpan<float> input, ReadOnlySpan<int> labels, int batch)
    {
        Run(input, labels, batch, training: true, backward: true, update: true, logits: default);
        return LastLoss;
    }

    /// <summary>Forward and backward on a batch without updating: fills every <see cref="TrainableTensor.Gradient"/> (of the mean loss) and returns the loss.</summary>
    public float ComputeGradients(ReadOnlySpan<float> input, ReadOnlySpan<int> labels, int batch)
    {
        Run(input, labels, batch, training: true, backward: true, update: false, logits: default);
        return LastLoss;
    }

    /// <summary>One SGD step from the current gradients (after <see cref="ComputeGradients"/>).</summary>
    public void ApplyGradients()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (int i = 0; i < _tensors.Count; i++) Update(_tensors[i], 0, 1);
        OptimizerSteps++;
    }

    /// <summary>The forward pass in evaluation mode (no dropout, batch norm on running statistics): writes [batch, classes]
    /// logits; with <paramref name="labels"/> also sets <see cref="LastLoss"/>, <see cref="LastCorrect"/> and <see cref="LastTop5Correct"/>.</summary>
    public void Evaluate(ReadOnlySpan<float> input, int batch, Span<float> logits, ReadOnlySpan<int> labels = default)
    {
        if (logits.Length < batch * _classes) throw new ArgumentException($"logits has {logits.Length} floats; expected {batch * _classes}.", nameof(logits));
        Run(input, labels, batch, training: false, backward: false, update: false, logits: logits);
    }

    private void Run(ReadOnlySpan<float> input, ReadOnlySpan<int> labels, int batch, bool training, bool backward, bool update, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)(batch - 1) >= (uint)MaxBatch)
            throw new ArgumentOutOfRangeException(nameof(batch), batch, $"batch must be between 1 and this trainer's MaxBatch ({MaxBatch}).");
        int len = Model.InputLength;
        if (input.Length != batch * len) throw new ArgumentException($"input has {input.Length} floats; expected {batch * len} ({batch} images of {len}).", nameof(input));
        if (Kernels.FirstNonFinite(input) is int bad and >= 0)
            throw new ArgumentException(Kernels.NonFiniteMessage(nameof(input), input, bad, Model.InputShape), nameof(input));
        bool hasLabels = !labels.IsEmpty;
        if (backward && labels.Length != batch) throw new ArgumentException($"labels has {labels.Length} entries; expected {batch}.", nameof(labels));
        if (hasLabels && labels.Length != batch) throw new ArgumentException($"labels has {labels.Length} entries; expected {batch}.", nameof(labels));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)_classes)
                throw new ArgumentOutOfRangeException(nameof(labels), labels[i], $"label {i} is {labels[i]}; model {Model.Name} has classes 0..{_classes - 1}.");
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("This trainer is already running a step on another thread; use one trainer per thread.");
        try
        {
            input.CopyTo(_input);
            labels.CopyTo(_labels);
            _batch = batch;
            _training = training;
            _backward = backward;
            _update = update;
            _profileStep = Profiling && backward; // read once: every worker must agree on the barriers
            if (_team is null) Work(0, 1);
            else _team.Run(this);
            float[] last = _ops.Length > 0 ? _ops[^1].Y : _input;
            if (!logits.IsEmpty) last.AsSpan(0, batch * _classes).CopyTo(logits);
            if (hasLabels && !backward) Score(last, batch, gradient: null);
            if (training)
            {
                StepCount++;
                if (update) OptimizerSteps++;
            }
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    void IParallelBody.Work(int worker, int workers) => Work(worker, workers);

    /// <summary>
    /// Finds the chains of consecutive operations that run image by image (<see cref="TrainOp.ByImage"/>: the generated
    /// ReLU, LRN and max-pool after a convolution) and sizes their image blocks: about 32K floats of the widest
    /// activation in the chain (128 KB), so that a block's activations stay in L2 from one operation to the next.
    /// Returns the floats each of a worker's two chain buffers needs (the gradients between the chain's operations).
    /// </summary>
    private long PlanChains()
    {
        _chainEnd = new int[_ops.Length];
        _chainStart = new int[_ops.Length];
        _chainImages = new int[_ops.Length];
        Array.Fill(_chainEnd, -1);
        Array.Fill(_chainStart, -1);
        long floats = 0;
        if (Options.ImageBlockChains)
            for (int i = 0; i < _ops.Length; i++)
            {
                if (!_ops[i].ByImage || _ops[i].IsIdentity) continue;
                int j = i;
                while (j + 1 < _ops.Length && _ops[j + 1].ByImage && !_ops[j + 1].IsIdentity) j++;
                if (j == i) continue;
                long widest = 0;
                for (int k = i; k <= j; k++) widest = Math.Max(widest, Math.Max(_ops[k].In.Size, _ops[k].Out.Size));
                int images = (int)Math.Clamp(32768 / widest, 1, MaxBatch);
                _chainEnd[i] = j;
                _chainStart[j] = i;
                _chainImages[i] = images;
                floats = Math.Max(floats, images * widest);
                i = j;
            }
        return floats;
    }

    private int[] _chainEnd = Array.Empty<int>(), _chainStart = Array.Empty<int>(), _chainImages = Array.Empty<int>();

    /// <summary>The forward of chain <paramref name="first"/>..<paramref name="last"/> over this worker's images, block by block.</summary>
    private void ChainForward(in StepContext ctx, int first, int last)
    {
        TrainOp.Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        int block = _chainImages[first];
        for (int c0 = b0; c0 < b1; c0 += block)
        {
            int c1 = Math.Min(b1, c0 + block);
            for (int k = first; k <= last; k++) _ops[k].ForwardImages(ctx, c0, c1);
        }
    }

    /// <summary>The backward of chain <paramref name="first"/>..<paramref name="last"/> over this worker's images, block by
    /// block: dL/dY of the last op from <paramref name="dy"/>, the gradients between the chain's ops in this worker's two
    /// chain buffers, dL/dX of the first op into <paramref name="dx"/> (a separate buffer, so a block never overwrites a
    /// gradient that a later block still reads).</summary>
    private void ChainBackward(in StepContext ctx, int first, int last, float[] dy, float[] dx)
    {
        TrainOp.Split(ctx.Batch, ctx.Worker, ctx.Workers, out int b0, out int b1);
        int block = _chainImages[first];
        float[] a = ctx.Scratch.ChainA, b = ctx.Scratch.ChainB;
        for (int c0 = b0; c0 < b1; c0 += block)
        {
            int c1 = Math.Min(b1, c0 + block), n = c1 - c0;
            ReadOnlySpan<float> g = dy.AsSpan(c0 * _ops[last].Out.Size, n * _ops[last].Out.Size);
            for (int k = last; k >= first; k--)
            {
                int size = n * _ops[k].In.Size;
                Span<float> into = k == first ? dx.AsSpan(c0 * _ops[k].In.Size, size) : ((last - k) % 2 == 0 ? a : b).AsSpan(0, size);
                _ops[k].BackwardImages(ctx, g, into, c0, c1);
                g = into;
            }
        }
    }

    private void Work(int worker, int workers)
    {
        var ctx = new StepContext(worker, workers, _batch, _training, needDx: true, _scratch[worker], Options.Seed, StepCount);
        // Profiling: worker 0 reads the clock after each barrier, so an op's time is its wall time on the team.
        bool profile = _profileStep && worker == 0;
        long t0 = profile ? Stopwatch.GetTimestamp() : 0;
        for (int i = 0; i < _ops.Length; i++)
        {
            if (_ops[i].IsIdentity) continue;
            int end = _chainEnd[i];
            if (end > i) ChainForward(ctx, i, end); // the chain's time goes to its first op
            else _ops[i].Forward(ctx);
            _team?.Barrier();
            if (profile) t0 = Tick(ref _profileTicks[i], t0);
            if (end > i) i = end;
        }
        if (!_backward) return;
        float[] dy = _g0, dx = _g1;
        if (worker == 0) Score(_ops[^1].Y, _batch, dy);
        _team?.Barrier();
        if (profile) t0 = Tick(ref _profileTicks[2 * _ops.Length], t0);
        for (int i = _ops.Length - 1; i >= _lowestTrainable; i--)
        {
            TrainOp op = _ops[i];
            if (op.IsIdentity) continue;
            int start = _chainStart[i];
            if (start >= 0 && start > _lowestTrainable)
            {
                // A chain (no parameters, so wholly above the lowest trainable op): its result lands in dx.
                ChainBackward(ctx, start, i, dy, dx);
                _team?.Barrier();
                if (profile) t0 = Tick(ref _profileTicks[_ops.Length + start], t0); // the chain's time goes to its first op
                (dy, dx) = (dx, dy);
                i = start;
                continue;
            }
            bool needDx = i > _lowestTrainable;
            op.Backward(ctx.WithNeedDx(needDx), dy, dx);
            _team?.Barrier();
            if (profile) t0 = Tick(ref _profileTicks[_ops.Length + i], t0);
            if (needDx) (dy, dx) = (dx, dy);
        }
        // Sum the per-worker parameter gradients (only convolutions keep them per worker; the other ops' Reduce is empty).
        foreach (TrainOp op in _ops) op.Reduce(ctx);
        _team?.Barrier();
        if (profile) t0 = Tick(ref _profileTicks[2 * _ops.Length + 1], t0);
        if (_update)
            for (int i = 0; i < _tensors.Count; i++) Update(_tensors[i], worker, workers);
        if (profile)
        {
            _team?.Barrier();
            Tick(ref _profileTicks[2 * _ops.Length + 2], t0);
            _profileSteps++;
        }
        else if (_profileStep) _team?.Barrier(); // the other workers meet worker 0's last barrier
    }

    private static long Tick(ref long slot, long t0)
    {
        long t = Stopwatch.GetTimestamp();
        slot += t - t0;
        return t;
    }

    // ------------------------------------------------------------------ profiling

    /// <summary>When true, each training step (<see cref="Step"/>, <see cref="ComputeGradients"/>) adds every operation's
    /// forward and backward wall time to <see cref="GetProfile"/>; off by default (it adds one barrier per step).</summary>
    public bool Profiling { get; set; }

    /// <summary>Milliseconds per profiled step spent in each operation's forward and backward, then in the loss, the
    /// gradient reduction and the optimizer; identity operations and operations below the lowest trainable one
    /// (no backward) are left out. Clears nothing (see <see cref="ResetProfile"/>).</summary>
    public IReadOnlyList<(string Operation, string Pass, double Milliseconds)> GetProfile()
    {
        var rows = new List<(string, string, double)>();
        double per(long ticks) => _profileSteps == 0 ? 0 : ticks * 1000.0 / Stopwatch.Frequency / _profileSteps;
        int n = _ops.Length;
        for (int i = 0; i < n; i++)
        {
            if (_ops[i].IsIdentity) continue;
            rows.Add((ChainName(i), "forward", per(_profileTicks[i])));
            if (_chainEnd[i] > i) i = _chainEnd[i];
        }
        rows.Add(("loss", "softmax cross-entropy", per(_profileTicks[2 * n])));
        for (int i = n - 1; i >= _lowestTrainable; i--)
        {
            if (_ops[i].IsIdentity) continue;
            if (_chainStart[i] >= 0 && _chainStart[i] > _lowestTrainable) i = _chainStart[i];
            rows.Add((ChainName(i), "backward", per(_profileTicks[n + i])));
        }
        rows.Add(("reduce", "per-worker gradients", per(_profileTicks[2 * n + 1])));
        rows.Add(("sgd", "update", per(_profileTicks[2 * n + 2])));
        return rows;
    }

    /// <summary>An op's profile name; a chain run image block by image block is one row, named by its ops
    /// (<c>conv1.relu+lrn+maxpool</c>).</summary>
    private string ChainName(int i)
    {
        if (_chainEnd[i] <= i) return _ops[i].Name;
        string first = _ops[i].Name;
        string layer = first[..(first.IndexOf('.') + 1)]; // "conv1." (empty when the name has no layer prefix)
        var name = new System.Text.StringBuilder(first);
        for (int k = i + 1; k <= _chainEnd[i]; k++)
        {
            string op = _ops[k].Name;
            name.Append('+').Append(layer.Length > 0 && op.StartsWith(layer, StringComparison.Ordinal) ? op[layer.Length..] : op);
        }
        return name.ToString();
    }

    /// <summary>Clears the times <see cref="GetProfile"/> reports.</summary>
    public void ResetProfile()
    {
        Array.Clear(_profileTicks);
        _profileSteps = 0;
    }

    /// <summary>Softmax cross-entropy of the logits against the labels: sets the loss and accuracy counts and, when
    /// <paramref name="gradient"/> is given, writes dL/dlogits = (softmax - onehot) / batch into it.</summary>
    private void Score(float[] logits, int batch, float[]? gradient)
    {
        if (_loss is { } k)
        {
            double sum = k.Score(logits.AsSpan(0, batch * _classes), _labels.AsSpan(0, batch), batch,
                gradient is null ? default : gradient.AsSpan(0, batch * _classes), out int right, out int five);
            LastLoss = (float)(sum / batch);
            LastCorrect = right;
            LastTop5Correct = five;
            return;
        }
        double loss = 0;
        int correct = 0, top5 = 0;
        for (int b = 0; b < batch; b++)
        {
            ReadOnlySpan<float> z = logits.AsSpan(b * _classes, _classes);
            int label = _labels[b];
            float max = float.NegativeInfinity;
            for (int c = 0; c < _classes; c++) if (z[c] > max) max = z[c];
            double sum = 0;
            for (int c = 0; c < _classes; c++) sum += Math.Exp(z[c] - max);
            double lse = max + Math.Log(sum);
            loss += lse - z[label];
            int above = 0;
            for (int c = 0; c < _classes; c++)
                if (z[c] > z[label] || (z[c] == z[label] && c < label)) above++;
            if (above == 0) correct++;
            if (above < 5) top5++;
            if (gradient is not null)
            {
                Span<float> g = gradient.AsSpan(b * _classes, _classes);
                for (int c = 0; c < _classes; c++)
                    g[c] = (float)((Math.Exp(z[c] - lse) - (c == label ? 1 : 0)) / batch);
            }
        }
        LastLoss = (float)(loss / batch);
        LastCorrect = correct;
        LastTop5Correct = top5;
    }

    /// <summary>torch.optim.SGD (dampening 0, no Nesterov): d = g + wd·w; buf = d on the first step, else momentum·buf + d; w -= lr·buf.</summary>
    private void Update(TrainableTensor t, int worker, int workers)
    {
        if (!t.Trainable || t.Frozen) return;
        int n = t.Value.Length;
        long s = (long)n * worker / workers, e = (long)n * (worker + 1) / workers;
        float lr = LearningRate, mu = Momentum, wd = WeightDecay;
        bool first = OptimizerSteps == 0;
        float[] w = t.Value, g = t.Gradient, m = t.Momentum;
        if (Vector.IsHardwareAccelerated && e - s >= Vector<float>.Count)
        {
            // The same operations lane by lane (multiply, then add: no fused multiply-add), so the result is the scalar loop's.
            int vw = Vector<float>.Count;
            var vlr = new Vector<float>(lr);
            var vmu = new Vector<float>(mu);
            var vwd = new Vector<float>(wd);
            ref float w0 = ref w[0], g0 = ref g[0], m0 = ref m[0];
            for (; s + vw <= e; s += vw)
            {
                nuint i = (nuint)s;
                Vector<float> wv = Vector.LoadUnsafe(ref w0, i);
                Vector<float> d = Vector.LoadUnsafe(ref g0, i) + vwd * wv;
                Vector<float> buf = first ? d : vmu * Vector.LoadUnsafe(ref m0, i) + d;
                buf.StoreUnsafe(ref m0, i);
                (wv - vlr * buf).StoreUnsafe(ref w0, i);
            }
        }
        for (long i = s; i < e; i++)
        {
            float d = g[i] + wd * w[i];
            float buf = first ? d : mu * m[i] + d;
            m[i] = buf;
            w[i] -= lr * buf;
        }
    }

    /// <summary>The current parameters and running statistics as a weights source (shared arrays, not copies):
    /// for a <see cref="Network"/> session, an export or a checkpoint.</summary>
    public IWeightSource AsWeightSource()
    {
        var list = new List<LoadedTensor>(_tensors.Count);
        foreach (TrainableTensor t in _tensors) list.Add(new LoadedTensor(t.Key, t.Shape, "F32", t.Value));
        return new TensorSet(list, $"{Model.Name} (trainer, step {StepCount})");
    }

    /// <summary>Bytes the team's background threads have allocated inside steps (zero-allocation tests).</summary>
    internal long WorkerAllocatedBytes => _team?.WorkerAllocatedBytes ?? 0;

    /// <summary>Stops the thread team.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _team?.Dispose();
    }

    // ------------------------------------------------------------------ construction

    private static bool IsRunningStat(string key) =>
        key.EndsWith(".running_mean", StringComparison.Ordinal) || key.EndsWith(".running_var", StringComparison.Ordinal) ||
        key.EndsWith(".num_batches_tracked", StringComparison.Ordinal);

    private void CreateTensors(IWeightSource? weights)
    {
        var reinit = new HashSet<string>(Options.Reinitialize, StringComparer.Ordinal);
        WeightBinder? binder = weights is null ? null : new WeightBinder(weights, Model);
        foreach (LayerInfo layer in Model.Layers)
        {
            foreach (ParameterInfo p in layer.Parameters)
            {
                var t = new TrainableTensor(p.Key, p.Shape, !IsRunningStat(p.Key)) { Frozen = _frozenLayers.Contains(layer.Name) };
                _tensors.Add(t);
                _byKey[p.Key] = t;
                Initialize(layer, p, t);
                if (binder is null || reinit.Contains(layer.Name)) continue;
                if (p.Optional)
                {
                    if (weights!.TryGet(p.Key, out LoadedTensor opt) && opt.Data.Length == 1) t.Value[0] = opt.Data[0];
                    binder.Take(p);
                    continue;
                }
                ReadOnlyMemory<float> data = binder.TakeValues(p); // read in place: no second copy of a mapped file
                if (data.Length == t.Value.Length) data.Span.CopyTo(t.Value);
            }
        }
        binder?.ThrowIfFailed();
    }

    private void Initialize(LayerInfo layer, ParameterInfo p, TrainableTensor t)
    {
        string key = p.Key;
        int layerIndex = Array.IndexOf(Model.Layers, layer);
        if (key.EndsWith(".running_var", StringComparison.Ordinal)) { t.Value.AsSpan().Fill(1f); return; }
        if (IsRunningStat(key)) return;
        bool isBn = false;
        foreach (OperationInfo op in layer.Ops)
            if (op.Kind == OperationKind.BatchNorm && key.StartsWith(op.CheckpointPrefix + ".", StringComparison.Ordinal)) isBn = true;
        if (isBn)
        {
            if (key.EndsWith(".weight", StringComparison.Ordinal)) t.Value.AsSpan().Fill(1f);
            return;
        }
        if (key.EndsWith(".bias", StringComparison.Ordinal))
        {
            // The paper: "We initialized the neuron biases in the second, fourth, and fifth convolutional layers, as well
            // as in the fully-connected hidden layers, with the constant 1."
            bool one = Options.Init == "paper" && (layer.Kind == "dense" || layerIndex is 1 or 3 or 4);
            if (one) t.Value.AsSpan().Fill(1f);
            return;
        }
        int fanIn = 1, fanOut = p.Shape[0];
        for (int i = 1; i < p.Shape.Length; i++) fanIn *= p.Shape[i];
        for (int i = 2; i < p.Shape.Length; i++) fanOut *= p.Shape[i];
        double std = Options.Init switch
        {
            "he" => Math.Sqrt(2.0 / fanIn),
            "paper" => 0.01,
            "xavier" => Math.Sqrt(2.0 / (fanIn + fanOut)),
            _ => throw new ArgumentException($"unknown init '{Options.Init}' (known: he, paper, xavier)."),
        };
        ulong stream = CounterRng.Hash(Options.Seed, 0x1417UL, (ulong)_tensors.Count);
        for (int i = 0; i < t.Value.Length; i++) t.Value[i] = (float)(std * CounterRng.Normal(stream, (ulong)i));
    }

    private void BuildOps(List<TrainOp> ops)
    {
        int[] inShape = Model.InputShape;
        var shape = new Shape3(inShape[0], inShape[1], inShape[2]);
        int dropouts = 0;
        for (int li = 0; li < Model.Layers.Length; li++)
        {
            LayerInfo layer = Model.Layers[li];
            bool frozen = _frozenLayers.Contains(layer.Name);
            for (int oi = 0; oi < layer.Ops.Length; oi++)
            {
                OperationInfo op = layer.Ops[oi];
                Shape3 outShape = op.OutputShape.Length == 3 ? new Shape3(op.OutputShape[0], op.OutputShape[1], op.OutputShape[2])
                    : new Shape3(op.OutputShape[0], 1, 1);
                string name = layer.Name + "." + op.Kind.ToString().ToLowerInvariant();
                string prefix = op.CheckpointPrefix;
                OperationKernels? k = Options.ReferenceOps ? null : Fitting(Model.Training?.Find(li, oi), shape, outShape);
                TrainOp created = op.Kind switch
                {
                    OperationKind.Conv => Options.Convolutions == ConvolutionAlgorithm.Auto && WinogradConvOp.Suits(shape, outShape, op, costRule: !Options.WinogradWherePossible)
                        ? new WinogradConvOp(name, shape, outShape, op, this[prefix + ".weight"], op.Bias ? this[prefix + ".bias"] : null, Threads)
                        {
                            BiasKernels = op.Bias ? k as ConvBiasKernels : null,
                            Products = k is ConvKernels { HasWinograd: true } wk && ConvOp.Fits(wk, op) ? wk : null,
                        }
                        : new ConvOp(name, shape, outShape, op, this[prefix + ".weight"], op.Bias ? this[prefix + ".bias"] : null, Threads,
                            k is ConvKernels direct && ConvOp.Fits(direct, op) ? direct : null)
                        {
                            BiasKernels = op.Bias ? k as ConvBiasKernels : null,
                        },
                    OperationKind.Dense => new DenseOp(name, shape, outShape, this[prefix + ".weight"], op.Bias ? this[prefix + ".bias"] : null, MaxBatch)
                    {
                        BiasKernels = op.Bias ? k as DenseBiasKernels : null,
                        Products = k as DenseKernels,
                    },
                    OperationKind.Relu => k is ReluKernels relu ? new GeneratedReluOp(name, shape, relu) : new ReluOp(name, shape),
                    OperationKind.Lrn => k is LrnKernels lrn ? new GeneratedLrnOp(name, shape, lrn) : new LrnOp(name, shape, op),
                    OperationKind.MaxPool => k is MaxPoolKernels max ? new GeneratedMaxPoolOp(name, shape, outShape, max) : new MaxPoolOp(name, shape, outShape, op),
                    OperationKind.AvgPool => k is AvgPoolKernels avg ? new GeneratedAvgPoolOp(name, shape, outShape, avg) : new AvgPoolOp(name, shape, outShape, op, adaptive: false),
                    OperationKind.AdaptiveAvgPool => outShape == shape ? new IdentityOp(name, shape, outShape)
                        : k is AvgPoolKernels adaptive ? new GeneratedAvgPoolOp(name, shape, outShape, adaptive) : new AvgPoolOp(name, shape, outShape, op, adaptive: true),
                    OperationKind.BatchNorm => k is BatchNormKernels bn
                        ? new GeneratedBatchNormOp(name, shape, bn, this[prefix + ".weight"], this[prefix + ".bias"], this[prefix + ".running_mean"],
                            this[prefix + ".running_var"], _byKey.TryGetValue(prefix + ".num_batches_tracked", out TrainableTensor? nbt1) ? nbt1 : null)
                        : new BatchNormOp(name, shape, op, this[prefix + ".weight"], this[prefix + ".bias"], this[prefix + ".running_mean"],
                            this[prefix + ".running_var"], _byKey.TryGetValue(prefix + ".num_batches_tracked", out TrainableTensor? nbt) ? nbt : null),
                    OperationKind.Dropout => k is DropoutKernels drop && drop.P == op.P
                        ? new GeneratedDropoutOp(name, shape, drop, dropouts++) { Enabled = Options.Dropout }
                        : new DropoutOp(name, shape, op.P, dropouts++) { Enabled = Options.Dropout },
                    OperationKind.Flatten => new IdentityOp(name, shape, new Shape3(shape.Size, 1, 1)),
                    OperationKind.Softmax => new IdentityOp(name, shape, shape),
                    _ => throw new NotSupportedException($"{Model.Name}.{layer.Name}: operation {op.Kind} has no training kernel."),
                };
                created.Frozen = frozen;
                ops.Add(created);
                shape = outShape;
            }
        }
    }

    /// <summary>The generated kernels when they were compiled for these shapes (a model with a new head, <see
    /// cref="ModelInfo.WithClasses"/>, keeps its description's kernels, which no longer fit its last layer).</summary>
    private static OperationKernels? Fitting(OperationKernels? k, Shape3 input, Shape3 output)
    {
        if (k is null) return null;
        static bool Same(int[] s, Shape3 t) => s.Length == 3 ? s[0] == t.C && s[1] == t.H && s[2] == t.W : s.Length == 1 && s[0] == t.Size && t.H == 1 && t.W == 1;
        return Same(k.InputShape, input) && Same(k.OutputShape, output) ? k : null;
    }
}

/// <summary>Named tensors held in memory: an <see cref="IWeightSource"/> over arrays (not copied).</summary>
public sealed class TensorSet : IWeightSource
{
    private readonly Dictionary<string, LoadedTensor> _tensors = new(StringComparer.Ordinal);
    private readonly List<string> _keys = new();

    /// <summary>Creates the set; keys must be unique.</summary>
    public TensorSet(IEnumerable<LoadedTensor> tensors, string origin)
    {
        Origin = origin;
        foreach (LoadedTensor t in tensors)
        {
            if (!_tensors.TryAdd(t.Key, t)) throw new ArgumentException($"duplicate tensor key '{t.Key}'.", nameof(tensors));
            _keys.Add(t.Key);
        }
    }

    /// <inheritdoc />
    public string Origin { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> Keys => _keys;

    /// <inheritdoc />
    public bool TryGet(string key, out LoadedTensor tensor) => _tensors.TryGetValue(key, out tensor!);
}
