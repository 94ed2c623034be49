using System;
using System.Collections.Generic;

namespace AlexNet.Aot;

/// <summary>A parameter tensor as the weights loader expects it: its checkpoint key and shape.</summary>
/// <param name="Key">The key in the checkpoint (for example <c>features.0.weight</c>).</param>
/// <param name="Shape">The expected shape, outermost dimension first (PyTorch order).</param>
/// <param name="Optional">True when a checkpoint may omit it (batch norm's <c>num_batches_tracked</c>).</param>
public sealed record ParameterInfo(string Key, int[] Shape, bool Optional = false)
{
    /// <summary>The number of elements.</summary>
    public long Count
    {
        get
        {
            long n = 1;
            foreach (int d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>The shape as PyTorch prints it, e.g. <c>[64, 3, 11, 11]</c>.</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>What an <see cref="OperationInfo"/> computes.</summary>
public enum OperationKind
{
    /// <summary>Convolution (PyTorch Conv2d, ONNX Conv).</summary>
    Conv,
    /// <summary>Fully connected (PyTorch Linear, ONNX Gemm with transB=1), after an implicit flatten.</summary>
    Dense,
    /// <summary>max(x, 0).</summary>
    Relu,
    /// <summary>Local response normalization across channels (PyTorch LocalResponseNorm, ONNX LRN).</summary>
    Lrn,
    /// <summary>Max pooling.</summary>
    MaxPool,
    /// <summary>Average pooling.</summary>
    AvgPool,
    /// <summary>Adaptive average pooling to a fixed output size.</summary>
    AdaptiveAvgPool,
    /// <summary>Batch normalization (inference: running statistics).</summary>
    BatchNorm,
    /// <summary>Dropout (the identity at inference).</summary>
    Dropout,
    /// <summary>Flatten (a no-op on NCHW data).</summary>
    Flatten,
    /// <summary>Softmax over the classes.</summary>
    Softmax,
}

/// <summary>One operation of a layer line with every argument resolved (defaults applied), and its output shape.</summary>
public sealed record OperationInfo(OperationKind Kind, int[] OutputShape)
{
    /// <summary>Output channels or features (conv, dense).</summary>
    public int Out { get; init; }
    /// <summary>Kernel height (conv, pools).</summary>
    public int KernelH { get; init; }
    /// <summary>Kernel width (conv, pools).</summary>
    public int KernelW { get; init; }
    /// <summary>Stride (conv, pools).</summary>
    public int Stride { get; init; }
    /// <summary>Zero padding on every side (conv, pools).</summary>
    public int Padding { get; init; }
    /// <summary>Convolution groups.</summary>
    public int Groups { get; init; } = 1;
    /// <summary>Whether the conv or dense layer has a bias.</summary>
    public bool Bias { get; init; } = true;
    /// <summary>Pooling ceil mode.</summary>
    public bool CeilMode { get; init; }
    /// <summary>Average pooling divides by the window including padding.</summary>
    public bool CountIncludePad { get; init; } = true;
    /// <summary>LRN size.</summary>
    public int Size { get; init; }
    /// <summary>LRN alpha (divided by size in the formula, as PyTorch and ONNX).</summary>
    public float Alpha { get; init; }
    /// <summary>LRN beta.</summary>
    public float Beta { get; init; }
    /// <summary>LRN k (ONNX bias).</summary>
    public float K { get; init; }
    /// <summary>Batch norm epsilon.</summary>
    public float Eps { get; init; }
    /// <summary>Batch norm momentum (training).</summary>
    public float Momentum { get; init; }
    /// <summary>Dropout probability.</summary>
    public float P { get; init; }
    /// <summary>The checkpoint prefix of the operation's parameters (conv, dense, batch norm).</summary>
    public string CheckpointPrefix { get; init; } = "";
}

/// <summary>One spec line: a convolution or dense layer with the operations that follow it.</summary>
/// <param name="Name">The layer's name in the spec (e.g. <c>conv1</c>).</param>
/// <param name="Kind"><c>conv</c> or <c>dense</c>.</param>
/// <param name="Operations">The operations in order, as the spec states them (e.g. <c>conv 64 k11 s4 p2</c>, <c>relu</c>, <c>maxpool(3, s2)</c>).</param>
/// <param name="OutputShape">The per-image output shape after every operation of the line (C, H, W or features).</param>
/// <param name="Parameters">The checkpoint tensors this layer binds.</param>
/// <param name="MultiplyAdds">Multiply-adds per image of the convolution or dense product.</param>
/// <param name="SpecLine">The 1-based line of the spec this layer comes from.</param>
public sealed record LayerInfo(
    string Name,
    string Kind,
    string[] Operations,
    int[] OutputShape,
    ParameterInfo[] Parameters,
    long MultiplyAdds,
    int SpecLine)
{
    /// <summary>The line's operations with their arguments resolved, in order (the conv or dense first).</summary>
    public OperationInfo[] Ops { get; init; } = Array.Empty<OperationInfo>();

    /// <summary>
    /// Whether the generator emitted a Winograd F(4x4, 3x3) product for this convolution, which a session uses unless
    /// <see cref="NetworkOptions.Convolutions"/> is <see cref="ConvolutionAlgorithm.Direct"/>.
    /// </summary>
    public bool Winograd { get; init; }

    /// <summary>The number of trainable parameters (running statistics excluded).</summary>
    public long ParameterCount
    {
        get
        {
            long n = 0;
            foreach (ParameterInfo p in Parameters)
            {
                if (!p.Key.EndsWith("running_mean", StringComparison.Ordinal) &&
                    !p.Key.EndsWith("running_var", StringComparison.Ordinal) &&
                    !p.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal))
                {
                    n += p.Count;
                }
            }
            return n;
        }
    }
}

/// <summary>Everything the generator decided about a model, as data: for <c>alexnet info</c>, loaders and tests.</summary>
public sealed record ModelInfo(
    string Name,
    string SpecFile,
    int[] InputShape,
    int Classes,
    bool HasSoftmax,
    LayerInfo[] Layers,
    long ArenaFloatsPerWorker,
    long ArenaFloatsPerImage)
{
    /// <summary>Per-channel mean the spec's <c>normalize</c> subtracts from pixels scaled to [0, 1] (empty: none).</summary>
    public float[] Mean { get; init; } = Array.Empty<float>();

    /// <summary>Per-channel standard deviation the spec's <c>normalize</c> divides by (empty: none).</summary>
    public float[] Std { get; init; } = Array.Empty<float>();

    /// <summary>Class names from the spec's <c>labels</c> line (empty: none).</summary>
    public string[] Labels { get; init; } = Array.Empty<string>();

    /// <summary>How the spec's <c>preprocess</c> line says photos become input: <c>torchvision</c>, <c>caffe</c> or
    /// <c>none</c> (see <see cref="Imaging.PreprocessMode"/>); empty when the spec has no such line (then
    /// <see cref="Imaging.Preprocess.DefaultFor"/> goes by <c>normalize</c>).</summary>
    public string Preprocess { get; init; } = "";

    /// <summary>The spec's training recipe as <c>key=value</c> strings, in spec order.</summary>
    public string[] Recipe { get; init; } = Array.Empty<string>();

    /// <summary>The training kernels the generator emitted for this model (null for a description built by hand): the
    /// <see cref="Training.Trainer"/> runs them in place of its reference operations wherever their shapes fit.</summary>
    public global::AlexNet.Aot.Training.ModelTrainingKernels? Training { get; init; }

    /// <summary>Floats in one input image (C*H*W).</summary>
    public int InputLength => InputShape[0] * InputShape[1] * InputShape[2];

    /// <summary>Every parameter the model binds, in spec order.</summary>
    public IEnumerable<ParameterInfo> AllParameters
    {
        get
        {
            foreach (LayerInfo l in Layers)
                foreach (ParameterInfo p in l.Parameters)
                    yield return p;
        }
    }

    /// <summary>
    /// This model with its last layer replaced by a dense layer of <paramref name="classes"/> outputs (transfer
    /// learning: a new head for another data set). Only the <see cref="Training.Trainer"/> runs such a model (the
    /// generated code is compiled for <see cref="Classes"/> outputs); its checkpoint keys stay the same.
    /// </summary>
    /// <exception cref="ArgumentException">the last layer is not a dense layer followed only by relu, dropout or softmax.</exception>
    public ModelInfo WithClasses(int classes, string[]? labels = null)
    {
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "classes must be at least 1");
        LayerInfo last = Layers[^1];
        if (last.Kind != "dense" || last.Ops.Length == 0)
            throw new ArgumentException($"model {Name}: its last layer {last.Name} is not a dense layer, so it cannot be given {classes} outputs");
        var ops = new OperationInfo[last.Ops.Length];
        for (int i = 0; i < ops.Length; i++)
        {
            OperationInfo op = last.Ops[i];
            if (i > 0 && op.Kind is not (OperationKind.Relu or OperationKind.Dropout or OperationKind.Softmax or OperationKind.Flatten))
                throw new ArgumentException($"model {Name}: its last layer {last.Name} has {op.Kind} after the dense product, so it cannot be given {classes} outputs");
            ops[i] = i == 0 ? op with { Out = classes, OutputShape = new[] { classes } } : op with { OutputShape = new[] { classes } };
        }
        int fanIn = last.Parameters[0].Shape[1];
        var parameters = new ParameterInfo[last.Parameters.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            ParameterInfo p = last.Parameters[i];
            int[] shape = (int[])p.Shape.Clone();
            shape[0] = classes;
            parameters[i] = p with { Shape = shape };
        }
        var layers = (LayerInfo[])Layers.Clone();
        layers[^1] = last with { OutputShape = new[] { classes }, Parameters = parameters, MultiplyAdds = (long)fanIn * classes, Ops = ops };
        return this with { Classes = classes, Layers = layers, Labels = labels ?? (classes == Classes ? Labels : Array.Empty<string>()) };
    }

    /// <summary>Arena bytes for a session with the given maximum batch and thread count.</summary>
    public long ArenaBytes(int maxBatch, int threads = 1) => 4 * (ArenaFloatsPerWorker * threads + ArenaFloatsPerImage * (long)maxBatch);
}

/// <summary>A model compiled into an assembly: its description and a factory for sessions.</summary>
public sealed class ModelEntry
{
    private readonly Func<IWeightSource, NetworkOptions, Network> _create;

    /// <summary>Creates an entry (called by generated code).</summary>
    public ModelEntry(ModelInfo info, Func<IWeightSource, NetworkOptions, Network> create)
    {
        Info = info;
        _create = create;
    }

    /// <summary>The model's description.</summary>
    public ModelInfo Info { get; }

    /// <summary>The spec's model name.</summary>
    public string Name => Info.Name;

    /// <summary>Binds and packs the weights and plans the arena for up to <paramref name="maxBatch"/> images,
    /// on <paramref name="threads"/> threads (0: one per processor).</summary>
    public Network Create(IWeightSource weights, int maxBatch = 1, int threads = 0) =>
        _create(weights, new NetworkOptions { MaxBatch = maxBatch, Threads = threads });

    /// <summary>Binds and packs the weights for a session with the given options.</summary>
    public Network Create(IWeightSource weights, NetworkOptions options) => _create(weights, options ?? new NetworkOptions());
}
