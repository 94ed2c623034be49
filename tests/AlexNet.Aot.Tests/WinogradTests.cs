using System;
using System.Collections.Generic;
using System.Linq;
using AlexNet.Aot.Tests.Reference;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>
/// The Winograd F(4x4, 3x3) convolutions: which layers the generator gives them to, and that they agree with the direct
/// product (the scalar reference and PyTorch's fixtures check them too, through <see cref="ReferenceTests"/>,
/// <see cref="FixtureLogitsTests"/> and the ISA matrix, since a session uses them by default).
/// </summary>
public sealed class WinogradTests
{
    private readonly ITestOutputHelper _out;

    public WinogradTests(ITestOutputHelper output) => _out = output;

    [Theory]
    [InlineData("models", "alexnet-torchvision", "conv2,conv3,conv4,conv5")]
    [InlineData("models", "alexnet-2012", "conv2,conv3,conv4,conv5")]
    [InlineData("models", "alexnet-bvlc", "conv2,conv3,conv4,conv5")]
    [InlineData("models", "tv-mini", "conv2,conv3,conv4,conv5")]
    [InlineData("models", "alexnet-fmnist", "conv2")] // conv1 has 1 input channel; conv3-5 are 6x6: 4 tiles, too few to fill a vector
    [InlineData("specs", "winograd-edges", "conv1,conv2,conv3,conv4")] // conv5 is stride 2
    public void The_generator_picks_Winograd_for_3x3_and_5x5_stride_1_layers_with_enough_tiles_and_channels(string catalog, string model, string expected)
    {
        ModelInfo info = ReferenceTests.Find(catalog, model).Info;
        string chosen = string.Join(",", info.Layers.Where(l => l.Winograd).Select(l => l.Name));
        Assert.Equal(expected, chosen);
    }

    public static IEnumerable<object[]> ModelsWithWinograd()
    {
        foreach (ModelEntry e in AlexNet.Aot.Models.ModelCatalog.All)
            if (e.Info.Layers.Any(l => l.Winograd)) yield return new object[] { "models", e.Name };
        foreach (ModelEntry e in AlexNet.Aot.Tests.Specs.ModelCatalog.All)
            if (e.Info.Layers.Any(l => l.Winograd)) yield return new object[] { "specs", e.Name };
    }

    /// <summary>
    /// Winograd (the default) against <see cref="ConvolutionAlgorithm.Direct"/> on the same weights and images: batch 1 on
    /// two threads (every step split across the team) and batch 3 (whole images per thread). They round differently, so
    /// they agree to about 1e-6 of the logits' scale, not bit for bit.
    /// </summary>
    [Theory]
    [MemberData(nameof(ModelsWithWinograd))]
    public void Winograd_and_direct_convolutions_agree(string catalog, string model)
    {
        ModelEntry entry = ReferenceTests.Find(catalog, model);
        ModelInfo info = entry.Info;
        IWeightSource weights = ReferenceCheck.IsFullSize(info) ? new GeneratedWeights(info) : new RandomWeights(info, 404);
        foreach (int batch in new[] { 1, 3 })
        {
            float[] input = RandomWeights.Uniform(batch * info.InputLength, 405);
            var winograd = new float[batch * info.Classes];
            var direct = new float[batch * info.Classes];
            using (Network net = entry.Create(weights, new NetworkOptions { MaxBatch = batch, Threads = 2 }))
                net.Forward(input, winograd, batch, logits: true);
            using (Network net = entry.Create(weights, new NetworkOptions { MaxBatch = batch, Threads = 2, Convolutions = ConvolutionAlgorithm.Direct }))
                net.Forward(input, direct, batch, logits: true);
            ReferenceCheck.Result r = ReferenceCheck.Measure($"{model} batch {batch} winograd vs direct", batch, winograd, direct, 2e-5);
            _out.WriteLine(r.ToString());
            Assert.True(r.Ok, r.ToString());
            Assert.True(r.Scale > 1e-3, $"{model}: the logits are all about zero ({r.Scale:g3}), so the comparison shows nothing");
        }
    }

    /// <summary>The transformed weights: U = G g Gᵀ per channel pair, packed in row panels, rows past the last channel zero.</summary>
    [Fact]
    public void PackWinograd_transforms_and_packs_each_kernel()
    {
        const int groups = 2, m = 3, cin = 2, mr = 4;
        var w = new float[groups * m * cin * 9];
        var rng = new Random(7);
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1);
        float[] packed = WeightPacking.PackWinograd(w, groups, m, cin, 3, mr);
        Assert.Equal(groups * 1 * 36 * cin * mr, packed.Length);
        double[,] G = { { 0.25, 0, 0 }, { -1.0 / 6, -1.0 / 6, -1.0 / 6 }, { -1.0 / 6, 1.0 / 6, -1.0 / 6 }, { 1.0 / 24, 1.0 / 12, 1.0 / 6 }, { 1.0 / 24, -1.0 / 12, 1.0 / 6 }, { 0, 0, 1 } };
        for (int g = 0; g < groups; g++)
            for (int r = 0; r < mr; r++)
                for (int c = 0; c < cin; c++)
                    for (int a = 0; a < 6; a++)
                        for (int b = 0; b < 6; b++)
                        {
                            double u = 0;
                            if (r < m)
                                for (int i = 0; i < 3; i++)
                                    for (int j = 0; j < 3; j++)
                                        u += G[a, i] * w[((g * m + r) * cin + c) * 9 + i * 3 + j] * G[b, j];
                            float got = packed[((g * 36 + a * 6 + b) * cin + c) * mr + r];
                            Assert.True(Math.Abs(got - u) <= 1e-6, $"g{g} r{r} c{c} ξ{a * 6 + b}: {got} vs {u}");
                        }
    }
}
