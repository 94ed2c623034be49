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

/// <summary>Settings of a session: its largest batch, its threads and the dense layers' weight precision.</summary>
public sealed record NetworkOptions
{
    /// <summary>The largest batch <see cref="Network.Forward"/> will get (1 to 65536).</summary>
    public int MaxBatch { get; init; } = 1;

    /// <summary>Threads to compute on, the caller's included; 0 for one per processor.</summary>
    public int Threads { get; init; }

    /// <summary>How the dense layers store their weights.</summary>
    public WeightPrecision DenseWeights { get; init; } = WeightPrecision.Float32;

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
