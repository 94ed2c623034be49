using System;
using AlexNet.Aot.Models;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>bfloat16 dense weights against float32 and PyTorch, and the generated-weights rule against the fixtures.</summary>
public class PrecisionAndWeightsTests
{
    private readonly ITestOutputHelper _out;

    public PrecisionAndWeightsTests(ITestOutputHelper output) => _out = output;

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void Bf16DenseWeightsStayCloseToPyTorch(string model)
    {
        ModelEntry entry = ModelCatalog.Find(model)!;
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(oracle.TryGet("logits_eval", out LoadedTensor expected));
        float[] input = FixtureInputs.Hash(4 * entry.Info.InputLength);

        var fp32 = new float[40];
        var bf16 = new float[40];
        using (Network a = entry.Create(weights, new NetworkOptions { MaxBatch = 4 })) a.Forward(input, fp32, 4, logits: true);
        using (Network b = entry.Create(weights, new NetworkOptions { MaxBatch = 4, DenseWeights = WeightPrecision.BFloat16 })) b.Forward(input, bf16, 4, logits: true);

        double worstVsFp32 = 0, worstVsTorch = 0, scale = 0;
        int sameTop1 = 0;
        for (int i = 0; i < 40; i++)
        {
            worstVsFp32 = Math.Max(worstVsFp32, Math.Abs(bf16[i] - fp32[i]));
            worstVsTorch = Math.Max(worstVsTorch, Math.Abs(bf16[i] - expected.Data[i]));
            scale = Math.Max(scale, Math.Abs(expected.Data[i]));
        }
        for (int n = 0; n < 4; n++)
            if (ArgMax(bf16.AsSpan(n * 10, 10)) == ArgMax(expected.Data.AsSpan(n * 10, 10))) sameTop1++;
        _out.WriteLine($"{model}: bf16 dense weights: max |logit diff| vs fp32 {worstVsFp32:g3}, vs PyTorch {worstVsTorch:g3} (logit scale {scale:g3}); top-1 agrees on {sameTop1}/4");
        Assert.True(worstVsFp32 > 0, "bf16 weights should change the logits a little: the bf16 path did not run");
        Assert.True(worstVsTorch <= 0.01 * scale + 1e-3, $"bf16 logits differ from PyTorch's by {worstVsTorch:g3} (scale {scale:g3})");
        Assert.Equal(4, sameTop1);
    }

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void GeneratedWeightsFollowTheFixtureRule(string model)
    {
        ModelEntry entry = ModelCatalog.Find(model)!;
        var generated = new GeneratedWeights(entry.Info);
        SafeTensorsFile file = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        foreach (ParameterInfo p in entry.Info.AllParameters)
        {
            if (p.Optional) continue;
            Assert.True(generated.TryGet(p.Key, out LoadedTensor g));
            Assert.True(file.TryGet(p.Key, out LoadedTensor f));
            Assert.Equal(f.Data, g.Data);
        }
    }

    private static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }
}
