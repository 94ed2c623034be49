using System;
using AlexNet.Aot.Models;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>The generated forward pass against the logits PyTorch wrote (logits_eval, eval mode).</summary>
public class FixtureLogitsTests
{
    [Theory]
    [InlineData("tv-mini", "tv-mini.safetensors")]
    [InlineData("tv-mini", "tv-mini.f16.safetensors")]
    [InlineData("tv-mini", "tv-mini.bf16.safetensors")]
    [InlineData("paper-mini", "paper-mini.safetensors")]
    [InlineData("bn-mini", "bn-mini.safetensors")]
    public void LogitsMatchPyTorch(string model, string weightsFile)
    {
        ModelEntry entry = ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in");
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path(model, weightsFile));
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(oracle.TryGet("logits_eval", out LoadedTensor expected));

        const int batch = 4;
        float[] input = FixtureInputs.Hash(batch * entry.Info.InputLength);
        using Network net = entry.Create(weights, batch);
        var logits = new float[batch * net.Classes];
        net.Forward(input, logits, batch, logits: true);

        // Low-precision weight files hold rounded weights; PyTorch's logits are for the F32 ones.
        double tolerance = weightsFile.Contains(".bf16.") ? 0.05 : weightsFile.Contains(".f16.") ? 5e-3 : 1e-4;
        double worst = 0;
        for (int i = 0; i < logits.Length; i++) worst = Math.Max(worst, Math.Abs(logits[i] - expected.Data[i]));
        Assert.True(worst <= tolerance, $"{model} ({weightsFile}): largest |ours - PyTorch| = {worst:g3}, tolerance {tolerance:g3}");
    }

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void ProbabilitiesMatchPyTorch(string model)
    {
        ModelEntry entry = ModelCatalog.Find(model)!;
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(oracle.TryGet("probs_eval", out LoadedTensor expected));
        using Network net = entry.Create(SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors")), 4);
        float[] input = FixtureInputs.Hash(4 * entry.Info.InputLength);
        var probs = new float[4 * net.Classes];
        net.Forward(input, probs, 4);
        for (int i = 0; i < probs.Length; i++) Assert.True(Math.Abs(probs[i] - expected.Data[i]) <= 1e-4, $"{model} probs[{i}]: {probs[i]} vs {expected.Data[i]}");
    }

    [Fact]
    public void BatchesOfOneGiveTheSameLogitsAsOneBatch()
    {
        ModelEntry entry = ModelCatalog.Find("paper-mini")!;
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path("paper-mini", "paper-mini.safetensors"));
        float[] input = FixtureInputs.Hash(4 * entry.Info.InputLength);
        using Network four = entry.Create(weights, 4);
        using Network one = entry.Create(weights, 1);
        var a = new float[40];
        four.Forward(input, a, 4, logits: true);
        for (int b = 0; b < 4; b++)
        {
            var single = new float[10];
            one.Forward(input.AsSpan(b * entry.Info.InputLength, entry.Info.InputLength), single, 1, logits: true);
            for (int j = 0; j < 10; j++) Assert.Equal(a[b * 10 + j], single[j]);
        }
    }
}
