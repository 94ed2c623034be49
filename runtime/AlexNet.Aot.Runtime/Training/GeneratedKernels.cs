using System;

namespace AlexNet.Aot.Training;

/// <summary>
/// The training kernels the generator emits for a model: one <see cref="OperationKernels"/> per operation of every layer
/// line that has one: a dense layer's products and bias gradient (<see cref="DenseKernels"/>), a direct convolution's
/// column gather, scatter, products and bias gradient (<see cref="ConvKernels"/>), and every operation after them. Generated code hands an instance to <see cref="ModelInfo.Training"/>; the <see cref="Trainer"/> runs these
/// kernels instead of its own reference operations whenever their shapes are the operation's. Created once per model, so
/// a training step calls them through virtual calls and allocates nothing.
/// </summary>
public abstract class ModelTrainingKernels
{
    /// <summary>The kernels of operation <paramref name="operation"/> of layer <paramref name="layer"/> (indices into
    /// <see cref="ModelInfo.Layers"/> and <see cref="LayerInfo.Ops"/>; operation 0 is the convolution or dense product),
    /// or null when the generator emitted none for it.</summary>
    public abstract OperationKernels? Find(int layer, int operation);

    /// <summary>The generated softmax cross-entropy for the model's class count, or null.</summary>
    public virtual SoftmaxCrossEntropyKernels? Loss => null;
}

/// <summary>Softmax cross-entropy over a batch of logits, with the class count compiled in: what the trainer's own
/// scoring computes, in the same order and in double, so the loss, the counts and the gradient are the same bit for bit.</summary>
public abstract class SoftmaxCrossEntropyKernels
{
    /// <summary>The classes (logits per image) compiled in.</summary>
    public abstract int Classes { get; }

    /// <summary>Returns Σ over the images of -log softmax(z)[label] (in double); <paramref name="correct"/> counts the
    /// images whose label scores highest (ties to the lower class), <paramref name="top5"/> those whose label is among
    /// the five highest; <paramref name="gradient"/>, unless empty, gets dL/dz = (softmax(z) - onehot) / batch.</summary>
    public abstract double Score(ReadOnlySpan<float> logits, ReadOnlySpan<int> labels, int batch, Span<float> gradient, out int correct, out int top5);
}

/// <summary>
/// The generated training kernels of one operation, for one input and output shape fixed at build time. The trainer
/// splits the work across its threads and hands each kernel its share (whole images, channels or elements, as the
/// kind's documentation says); the kernel does the arithmetic with every shape, window and constant compiled in.
/// </summary>
public abstract class OperationKernels
{
    /// <summary>Creates the kernels of an operation with the given per-image shapes (C, H, W, or features).</summary>
    protected OperationKernels(int[] inputShape, int[] outputShape)
    {
        InputShape = inputShape;
        OutputShape = outputShape;
    }

    /// <summary>The per-image input shape the kernels are compiled for: C, H, W (a dense layer's features: F, 1, 1).</summary>
    public int[] InputShape { get; }

    /// <summary>The per-image output shape the kernels are compiled for.</summary>
    public int[] OutputShape { get; }
}

/// <summary>ReLU: y = max(x, 0) and dx = dy where y &gt; 0, on any run of elements (the trainer splits by element).</summary>
public abstract class ReluKernels : OperationKernels
{
    /// <inheritdoc />
    protected ReluKernels(int[] shape) : base(shape, shape) { }

    /// <summary>y = max(x, 0).</summary>
    public abstract void Forward(ReadOnlySpan<float> x, Span<float> y);

    /// <summary>dx = y &gt; 0 ? dy : 0.</summary>
    public abstract void Backward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx);
}

/// <summary>Local response normalization across channels, on whole images (the trainer splits by image).</summary>
public abstract class LrnKernels : OperationKernels
{
    /// <inheritdoc />
    protected LrnKernels(int[] shape) : base(shape, shape) { }

    /// <summary>y = x · s^-beta; keeps s^-beta in <paramref name="pow"/> and s^-beta / s in <paramref name="ratio"/> for the
    /// backward. <paramref name="scratch"/> holds one image.</summary>
    public abstract void Forward(ReadOnlySpan<float> x, Span<float> y, Span<float> pow, Span<float> ratio, Span<float> scratch);

    /// <summary>dx from dy and what the forward kept. <paramref name="scratch"/> holds one image.</summary>
    public abstract void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> pow, ReadOnlySpan<float> ratio, ReadOnlySpan<float> dy, Span<float> dx, Span<float> scratch);
}

/// <summary>Max pooling on whole images (the trainer splits by image).</summary>
public abstract class MaxPoolKernels : OperationKernels
{
    /// <inheritdoc />
    protected MaxPoolKernels(int[] inputShape, int[] outputShape) : base(inputShape, outputShape) { }

    /// <summary>y = the window maxima; <paramref name="argmax"/> = each maximum's index in its input plane.</summary>
    public abstract void Forward(ReadOnlySpan<float> x, Span<float> y, Span<int> argmax);

    /// <summary>dx = 0, then dy added at each output's arg-max.</summary>
    public abstract void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx);
}

/// <summary>Average pooling or adaptive average pooling on whole images (the trainer splits by image).</summary>
public abstract class AvgPoolKernels : OperationKernels
{
    /// <inheritdoc />
    protected AvgPoolKernels(int[] inputShape, int[] outputShape) : base(inputShape, outputShape) { }

    /// <summary>y = the window means.</summary>
    public abstract void Forward(ReadOnlySpan<float> x, Span<float> y);

    /// <summary>dx = each output's dy spread evenly over its window.</summary>
    public abstract void Backward(ReadOnlySpan<float> dy, Span<float> dx);
}

/// <summary>A batch-norm operation's tensors, as the generated kernels read and write them.</summary>
public sealed class BatchNormTensors
{
    /// <summary>Gathers the tensors (arrays shared, not copied).</summary>
    public BatchNormTensors(float[] gamma, float[] beta, float[] runningMean, float[] runningVar, float[] gammaGradient, float[] betaGradient)
    {
        Gamma = gamma;
        Beta = beta;
        RunningMean = runningMean;
        RunningVar = runningVar;
        GammaGradient = gammaGradient;
        BetaGradient = betaGradient;
        BatchMean = new float[gamma.Length];
        InvStd = new float[gamma.Length];
    }

    /// <summary>The scale (weight).</summary>
    public float[] Gamma { get; }
    /// <summary>The shift (bias).</summary>
    public float[] Beta { get; }
    /// <summary>The running mean (updated by a training forward).</summary>
    public float[] RunningMean { get; }
    /// <summary>The running variance (unbiased; updated by a training forward).</summary>
    public float[] RunningVar { get; }
    /// <summary>dL/dgamma (empty when frozen).</summary>
    public float[] GammaGradient { get; }
    /// <summary>dL/dbeta (empty when frozen).</summary>
    public float[] BetaGradient { get; }
    /// <summary>The mean the last forward normalized with, per channel.</summary>
    public float[] BatchMean { get; }
    /// <summary>1/sqrt(variance + eps) of the last forward, per channel.</summary>
    public float[] InvStd { get; }
}

/// <summary>Batch normalization over the whole batch, by channel (the trainer splits the channels).</summary>
public abstract class BatchNormKernels : OperationKernels
{
    /// <inheritdoc />
    protected BatchNormKernels(int[] shape) : base(shape, shape) { }

    /// <summary>Channels [c0, c1) of <paramref name="batch"/> images: training, the batch statistics (and the running
    /// statistics updated); evaluation, the running statistics.</summary>
    public abstract void Forward(float[] x, float[] y, int batch, int c0, int c1, bool training, BatchNormTensors t);

    /// <summary>Channels [c0, c1): dgamma and dbeta unless <paramref name="frozen"/>, and dx when <paramref name="needDx"/>.</summary>
    public abstract void Backward(float[] x, float[] dy, float[] dx, int batch, int c0, int c1, bool trainingForward, bool needDx, bool frozen, BatchNormTensors t);
}

/// <summary>Inverted dropout on any run of elements (the trainer splits by element).</summary>
public abstract class DropoutKernels : OperationKernels
{
    /// <inheritdoc />
    protected DropoutKernels(int[] shape) : base(shape, shape) { }

    /// <summary>The drop probability compiled in.</summary>
    public abstract float P { get; }

    /// <summary>mask[i] = 1/(1-p) or 0 drawn from <paramref name="stream"/> at element <paramref name="start"/> + i, and
    /// y = x · mask.</summary>
    public abstract void Forward(ReadOnlySpan<float> x, Span<float> y, Span<float> mask, long start, ulong stream);

    /// <summary>dx = dy · mask.</summary>
    public abstract void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> mask, Span<float> dx);
}

/// <summary>A convolution's bias gradient: the sum of one output channel's planes.</summary>
public abstract class ConvBiasKernels : OperationKernels
{
    /// <inheritdoc />
    protected ConvBiasKernels(int[] inputShape, int[] outputShape) : base(inputShape, outputShape) { }

    /// <summary>The sum, in double, of <paramref name="images"/> output planes that start <paramref name="imageStride"/>
    /// floats apart in <paramref name="dy"/>.</summary>
    public abstract double PlaneSums(ReadOnlySpan<float> dy, int images, int imageStride);
}

/// <summary>A dense layer's bias gradient: dy summed over the batch.</summary>
public abstract class DenseBiasKernels : OperationKernels
{
    /// <inheritdoc />
    protected DenseBiasKernels(int[] inputShape, int[] outputShape) : base(inputShape, outputShape) { }

    /// <summary>gradient[o] = Σ_b dy[b, o] (in double, b in order) for features [o0, o1).</summary>
    public abstract void Gradient(ReadOnlySpan<float> dy, int batch, int o0, int o1, Span<float> gradient);
}

/// <summary>
/// A dense layer's training kernels, with its input and output features compiled in: the three products and the bias
/// gradient. The trainer hands each worker a slice of the features (forward, weight gradient) or of the inputs (input
/// gradient); every product is the runtime GEMM's result bit for bit.
/// </summary>
public abstract class DenseKernels : DenseBiasKernels
{
    /// <inheritdoc />
    protected DenseKernels(int[] inputShape, int[] outputShape) : base(inputShape, outputShape) { }

    /// <summary>The floats of <c>scratch</c> each product needs for a batch of <paramref name="batch"/> images.</summary>
    public abstract int ScratchFloats(int batch);

    /// <summary>Y[b, o] = Σ_i W[o, i] · X[b, i] (+ bias[o]) for features [<paramref name="o0"/>, <paramref name="o1"/>);
    /// <paramref name="bias"/> is the layer's or empty.</summary>
    public abstract void Forward(ReadOnlySpan<float> weights, ReadOnlySpan<float> x, int batch, ReadOnlySpan<float> bias, Span<float> y, int o0, int o1, Span<float> scratch);

    /// <summary>dW[o, i] = Σ_b dY[b, o] · X[b, i] for features [<paramref name="o0"/>, <paramref name="o1"/>) (overwritten).</summary>
    public abstract void WeightGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int batch, Span<float> weightGradient, int o0, int o1, Span<float> scratch);

    /// <summary>dX[b, i] = Σ_o dY[b, o] · W[o, i] for inputs [<paramref name="i0"/>, <paramref name="i1"/>) (overwritten).</summary>
    public abstract void InputGradient(ReadOnlySpan<float> dy, ReadOnlySpan<float> weights, int batch, Span<float> dx, int i0, int i1, Span<float> scratch);
}

/// <summary>
/// A direct convolution's training kernels, with every shape compiled in: the column gather (im2col) that feeds the
/// products in the forward and the weight gradient, the three products themselves (forward, input gradient, weight
/// gradient: register-tiled micro-kernels per ISA rung), and the scatter-add (col2im) of the column gradient back into
/// dx; plus the bias gradient (<see cref="ConvBiasKernels.PlaneSums"/>, emitted for every
/// convolution, used where it has a bias). The column matrix has K = Cin/groups · KH · KW rows, (ci, ky, kx) in that
/// order, and one column per output pixel (oy, ox) of each image stacked side by side: row r of an image's block starts
/// at col[r · ld] and holds its OH · OW pixels. Both kernels work on one image's group (the trainer loops images and
/// groups) and are pure data movement, or adds in the runtime's order: their results equal the reference's bit for bit.
/// </summary>
public abstract class ConvKernels : ConvBiasKernels
{
    /// <summary>Creates the kernels of a convolution with the given per-image shapes and window.</summary>
    protected ConvKernels(int[] inputShape, int[] outputShape, int groups, int kernelH, int kernelW, int stride, int padding)
        : base(inputShape, outputShape)
    {
        Groups = groups;
        KernelH = kernelH;
        KernelW = kernelW;
        Stride = stride;
        Padding = padding;
    }

    /// <summary>The groups the kernels are compiled for.</summary>
    public int Groups { get; }
    /// <summary>The kernel height compiled in.</summary>
    public int KernelH { get; }
    /// <summary>The kernel width compiled in.</summary>
    public int KernelW { get; }
    /// <summary>The stride compiled in.</summary>
    public int Stride { get; }
    /// <summary>The zero padding compiled in.</summary>
    public int Padding { get; }

    /// <summary>The floats of <c>scratch</c> that <see cref="Gather"/> and <see cref="Scatter"/> need (one group's padded
    /// or phase-split input; 0 for stride 1 without padding).</summary>
    public abstract int ScratchFloats { get; }

    /// <summary>im2col: rows (ci, ky, kx) of <paramref name="col"/>, <paramref name="ld"/> floats apart, get
    /// x[ci][oy·stride - pad + ky][ox·stride - pad + kx] at column oy · OW + ox, zero where that falls in the padding.
    /// <paramref name="x"/> is one image's group input [Cin/groups, H, W]; <paramref name="col"/> starts at the image's
    /// column offset.</summary>
    public abstract void Gather(ReadOnlySpan<float> x, Span<float> col, int ld, Span<float> scratch);

    /// <summary>col2im: adds every element of the column gradient back onto the input position it was gathered from,
    /// taps in row order (ci, ky, kx), then output pixels in order: the reference's sums. <paramref name="dx"/> is one
    /// image's group input gradient, zero on entry.</summary>
    public abstract void Scatter(ReadOnlySpan<float> col, int ld, Span<float> dx, Span<float> scratch);

    // ---- The three products, on one group of a stack of images: M = Cout/groups output channels, K the column
    // matrix's rows, N = images · OH · OW columns (col's row stride). Each is the runtime GEMM's result bit for bit.

    /// <summary>Floats of one group's weights packed by <see cref="PackWeights"/> on the rung in use.</summary>
    public abstract int PackedFloats { get; }

    /// <summary>Floats of one group's transposed weights packed by <see cref="PackWeightsTransposed"/> on the rung in use.</summary>
    public abstract int PackedTransposedFloats { get; }

    /// <summary>The floats of <c>scratch</c> the products need for a stack of <paramref name="images"/> images.</summary>
    public abstract int ProductScratchFloats(int images);

    /// <summary>Packs one group's weights [M, K] into the row panels <see cref="Forward"/> reads.</summary>
    public abstract void PackWeights(ReadOnlySpan<float> weights, Span<float> packed);

    /// <summary>Packs one group's weights [M, K], transposed, into the row panels <see cref="InputGradient"/> reads.</summary>
    public abstract void PackWeightsTransposed(ReadOnlySpan<float> weights, Span<float> packed);

    /// <summary>Y = W x im2col(x) (+ bias), the column panels gathered straight from the input (no column matrix):
    /// <paramref name="x"/> starts at the first image's group input, the images <paramref name="inputStride"/> floats
    /// apart; <paramref name="y"/> at its group output, the images <paramref name="outputStride"/> floats apart, each
    /// output channel a plane of OH · OW floats; <paramref name="bias"/> is the group's (M floats) or empty.</summary>
    public abstract void Forward(ReadOnlySpan<float> packed, ReadOnlySpan<float> x, int inputStride, int images, ReadOnlySpan<float> bias, Span<float> y, int outputStride, Span<float> scratch);

    /// <summary>dcol [K, N] = Wᵀ x dY: <paramref name="dy"/> starts at the first image's group output gradient, the images
    /// <paramref name="imageStride"/> floats apart.</summary>
    public abstract void InputGradient(ReadOnlySpan<float> packedTransposed, ReadOnlySpan<float> dy, int imageStride, int images, Span<float> col, Span<float> scratch);

    /// <summary>dWᵀ [K, M] += col x dYᵀ (the weight gradient, transposed, accumulated over the stacks of a step).</summary>
    public abstract void WeightGradient(ReadOnlySpan<float> col, ReadOnlySpan<float> dy, int imageStride, int images, Span<float> weightGradientT, Span<float> scratch);

    // ---- The Winograd training convolution's products (a stride-1 3x3 or 5x5 layer only: HasWinograd), for the 36
    // tile elements ξ at once. U is packed by the runtime's GEMM (whole panels of this rung's rows), one element
    // packedStride floats after the other; V, M, dV and dM hold one [channels, tiles] matrix per element, rows ld floats
    // apart, the elements channels · ld floats apart. Each is the runtime GEMM's result bit for bit.

    /// <summary>Whether the Winograd products below are compiled in.</summary>
    public virtual bool HasWinograd => false;

    /// <summary>The floats of <c>scratch</c> the Winograd products need for a row stride <paramref name="ld"/>.</summary>
    public virtual int WinogradScratchFloats(int ld) => throw new NotSupportedException("No Winograd products for this layer.");

    /// <summary>M[ξ] [M, tiles] = U[ξ] [M, Cin/g] x V[ξ] [Cin/g, tiles] for every ξ.</summary>
    public virtual void WinogradForward(ReadOnlySpan<float> packedU, int packedStride, ReadOnlySpan<float> v, int ld, int tiles, Span<float> m, Span<float> scratch)
        => throw new NotSupportedException("No Winograd products for this layer.");

    /// <summary>dV[ξ] [Cin/g, tiles] = U[ξ]ᵀ x dM[ξ] [M, tiles] for every ξ (<paramref name="packedUT"/>: U[ξ]ᵀ packed).</summary>
    public virtual void WinogradInputGradient(ReadOnlySpan<float> packedUT, int packedStride, ReadOnlySpan<float> dm, int ld, int tiles, Span<float> dv, Span<float> scratch)
        => throw new NotSupportedException("No Winograd products for this layer.");

    /// <summary>dU[ξ] [M, Cin/g] += dM[ξ] x V[ξ]ᵀ for every ξ (dU: 36 matrices one after the other).</summary>
    public virtual void WinogradWeightGradient(ReadOnlySpan<float> dm, ReadOnlySpan<float> v, int ld, int tiles, Span<float> du, Span<float> scratch)
        => throw new NotSupportedException("No Winograd products for this layer.");
}
