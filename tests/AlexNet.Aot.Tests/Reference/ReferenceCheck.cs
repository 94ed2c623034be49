using System;

namespace AlexNet.Aot.Tests.Reference;

/// <summary>The generated forward pass of one model against <see cref="ScalarReference"/>: shared by the xunit tests and the ISA-matrix child process.</summary>
public static class ReferenceCheck
{
    /// <summary>The outcome of a comparison: the largest |generated - reference|, the logits' scale max |reference|, and the tolerance applied.</summary>
    public sealed record Result(string Model, int Batch, double MaxDiff, double Scale, double Tolerance)
    {
        public bool Ok => MaxDiff <= Tolerance; // false for NaN too

        public override string ToString() =>
            $"{Model} batch {Batch}: max |generated - reference| = {MaxDiff:g3}, max |logit| = {Scale:g3}, tolerance {Tolerance:g3}";
    }

    /// <summary>Multiply-adds per image above which a model counts as full-size (batch 1, looser tolerance).</summary>
    public const long FullSizeMultiplyAdds = 100_000_000;

    /// <summary>True for the full-size AlexNet layouts (hundreds of millions of multiply-adds per image).</summary>
    public static bool IsFullSize(ModelInfo info)
    {
        long macs = 0;
        foreach (LayerInfo l in info.Layers) macs += l.MultiplyAdds;
        return macs > FullSizeMultiplyAdds;
    }

    /// <summary>
    /// Runs <paramref name="entry"/> with seeded random weights on <paramref name="batch"/> seeded random images
    /// (uniform in ±<paramref name="inputScale"/>) in a session of <paramref name="maxBatch"/>, and compares its logits
    /// with the scalar reference: passes when max |diff| ≤ <paramref name="relativeTolerance"/> * (1 + max |reference logit|).
    /// </summary>
    public static Result Compare(ModelEntry entry, int batch, int maxBatch, ulong seed, double relativeTolerance, double inputScale = 1.0)
    {
        ModelInfo info = entry.Info;
        var weights = new RandomWeights(info, seed);
        float[] input = RandomWeights.Uniform(batch * info.InputLength, seed * 7919 + 17, -inputScale, inputScale);
        float[] ours = new float[batch * info.Classes];
        using (Network net = entry.Create(weights, maxBatch))
            net.Forward(input, ours, batch, logits: true);
        float[] reference = ScalarReference.Forward(info, weights, input, batch, logits: true);
        return Measure(info.Name, batch, ours, reference, relativeTolerance);
    }

    /// <summary>Compares two logit arrays with a tolerance relative to the reference's scale.</summary>
    public static Result Measure(string model, int batch, ReadOnlySpan<float> ours, ReadOnlySpan<float> reference, double relativeTolerance)
    {
        if (ours.Length != reference.Length) throw new ArgumentException($"{model}: {ours.Length} outputs vs {reference.Length}");
        double worst = 0, scale = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = Math.Abs((double)ours[i] - reference[i]);
            if (double.IsNaN(d)) worst = double.NaN;
            else if (!double.IsNaN(worst)) worst = Math.Max(worst, d);
            scale = Math.Max(scale, Math.Abs((double)reference[i]));
        }
        return new Result(model, batch, worst, scale, relativeTolerance * (1 + scale));
    }
}
