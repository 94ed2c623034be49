using System;

namespace AlexNet.Aot;

/// <summary>How the dense layers store their weights.</summary>
public enum WeightPrecision
{
    /// <summary>float32, as loaded.</summary>
    Float32,

    /// <summary>
    /// bfloat16 storage (round to nearest even) with float32 accumulation: half the bytes to stream per call,
    /// which is what bounds the dense layers at small batches. Convolutions stay float32.
    /// </summary>
    BFloat16,
}

/// <summary>How the convolutions are computed.</summary>
public enum ConvolutionAlgorithm
{
    /// <summary>
    /// What the generator chose per layer: Winograd F(4x4, 3x3) for the 3x3 stride-1 layers whose output tiles fill the
    /// vector lanes (AlexNet's conv3 to conv5 at 13x13), the direct product (im2col panels and a register-tiled GEMM)
    /// for the rest. Winograd rounds differently from the direct sum: the logits differ by a few 1e-6 of their scale.
    /// </summary>
    Auto,

    /// <summary>The direct product for every convolution (the reference the Winograd layers are tested against).</summary>
    Direct,
}

/// <summary>Settings of a session: its largest batch, its threads and the dense layers' weight precision.</summary>
public sealed record NetworkOptions
{
    /// <summary>The largest batch <see cref="Network.Forward"/> will get (1 to 65536).</summary>
    public int MaxBatch { get; init; } = 1;

    /// <summary>Threads to compute on, the caller's included; 0 for one per processor.</summary>
    public int Threads { get; init; }

    /// <summary>How the dense layers store their weights.</summary>
    public WeightPrecision DenseWeights { get; init; } = WeightPrecision.Float32;

    /// <summary>How the convolutions are computed (<see cref="ConvolutionAlgorithm.Auto"/>: Winograd where the generator chose it).</summary>
    public ConvolutionAlgorithm Convolutions { get; init; } = ConvolutionAlgorithm.Auto;

    /// <summary>
    /// Whether <see cref="Network.Forward"/> refuses an input holding NaN or an infinity with an
    /// <see cref="ArgumentException"/> saying where it is (on by default; one vectorized pass over the input, a few
    /// microseconds per image). Off, such values are computed through and show up in the outputs as IEEE arithmetic has it.
    /// </summary>
    public bool CheckInputs { get; init; } = true;

    /// <summary>Parses <c>fp32</c>/<c>float32</c> or <c>bf16</c>/<c>bfloat16</c>.</summary>
    public static bool TryParsePrecision(string text, out WeightPrecision precision)
    {
        switch (text.ToLowerInvariant())
        {
            case "fp32": case "f32": case "float32": precision = WeightPrecision.Float32; return true;
            case "bf16": case "bfloat16": precision = WeightPrecision.BFloat16; return true;
            default: precision = WeightPrecision.Float32; return false;
        }
    }
}
