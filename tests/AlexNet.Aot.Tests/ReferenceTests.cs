using System;
using System.Collections.Generic;
using AlexNet.Aot.Tests.Reference;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>
/// The generated forward pass of every compiled model (the shipped ones of model-spec/ and the odd-shape specs of
/// specs/) against <see cref="ScalarReference"/>, a plain double-precision implementation of PyTorch's definitions;
/// and the reference itself against PyTorch's logits on the fixtures.
/// </summary>
public sealed class ReferenceTests
{
    private readonly ITestOutputHelper _out;

    public ReferenceTests(ITestOutputHelper output) => _out = output;

    /// <summary>"models": AlexNet.Aot.Models.ModelCatalog (model-spec/); "specs": AlexNet.Aot.Tests.Specs.ModelCatalog (specs/).</summary>
    internal static ModelEntry Find(string catalog, string name) =>
        (catalog == "models" ? AlexNet.Aot.Models.ModelCatalog.Find(name) : AlexNet.Aot.Tests.Specs.ModelCatalog.Find(name))
        ?? throw new InvalidOperationException($"{name} is not in the {catalog} catalog");

    public static IEnumerable<object[]> AllModels()
    {
        foreach (ModelEntry e in AlexNet.Aot.Models.ModelCatalog.All) yield return new object[] { "models", e.Name };
        foreach (ModelEntry e in AlexNet.Aot.Tests.Specs.ModelCatalog.All) yield return new object[] { "specs", e.Name };
    }

    public static IEnumerable<object[]> OddSpecs()
    {
        foreach (ModelEntry e in AlexNet.Aot.Tests.Specs.ModelCatalog.All) yield return new object[] { e.Name };
    }

    [Fact]
    public void Both_catalogs_are_compiled_side_by_side()
    {
        Assert.NotSame(AlexNet.Aot.Models.ModelCatalog.All, AlexNet.Aot.Tests.Specs.ModelCatalog.All);
        Assert.NotNull(AlexNet.Aot.Models.ModelCatalog.Find("tv-mini"));
        Assert.Null(AlexNet.Aot.Tests.Specs.ModelCatalog.Find("tv-mini"));
        Assert.NotNull(AlexNet.Aot.Tests.Specs.ModelCatalog.Find("odd-groups"));
        Assert.Null(AlexNet.Aot.Models.ModelCatalog.Find("odd-groups"));
        Assert.True(AlexNet.Aot.Tests.Specs.ModelCatalog.All.Count >= 8);
    }

    /// <summary>Seeded random weights and inputs. Small models: batch 2, max |diff| ≤ 1e-4 (1 + max |logit|), and the
    /// probabilities too. Full-size AlexNets: batch 1, 1e-3 (1 + max |logit|).</summary>
    [Theory]
    [MemberData(nameof(AllModels))]
    public void Generated_logits_match_the_scalar_reference(string catalog, string name)
    {
        ModelEntry entry = Find(catalog, name);
        bool full = ReferenceCheck.IsFullSize(entry.Info);
        int batch = full ? 1 : 2;
        ReferenceCheck.Result r = ReferenceCheck.Compare(entry, batch, batch, seed: 2024, relativeTolerance: full ? 1e-3 : 1e-4);
        _out.WriteLine(r.ToString());
        Assert.True(r.Ok, r.ToString());
        Assert.True(r.Scale > 1e-3, $"{name}: the logits are all about zero ({r.Scale:g3}), so the comparison shows nothing");

        if (!full && entry.Info.HasSoftmax)
        {
            var weights = new RandomWeights(entry.Info, 2024);
            float[] input = RandomWeights.Uniform(batch * entry.Info.InputLength, 99);
            var probs = new float[batch * entry.Info.Classes];
            using (Network net = entry.Create(weights, batch))
                net.Forward(input, probs, batch);
            float[] expected = ScalarReference.Forward(entry.Info, weights, input, batch, logits: false);
            ReferenceCheck.Result p = ReferenceCheck.Measure(name + " probabilities", batch, probs, expected, 1e-5);
            _out.WriteLine(p.ToString());
            Assert.True(p.Ok, p.ToString());
        }
    }

    /// <summary>The reference needs checking too: with the fixtures' weights and input rule it gives PyTorch's logits_eval.</summary>
    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void Reference_matches_PyTorch_on_the_fixtures(string model)
    {
        ModelEntry entry = Find("models", model);
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(oracle.TryGet("logits_eval", out LoadedTensor expected));
        float[] input = FixtureInputs.Hash(4 * entry.Info.InputLength);
        float[] logits = ScalarReference.Forward(entry.Info, weights, input, 4);
        ReferenceCheck.Result r = ReferenceCheck.Measure(model, 4, logits, expected.Data, 1e-5);
        _out.WriteLine(r.ToString());
        Assert.True(r.MaxDiff <= 1e-5, r.ToString());
    }

    /// <summary>
    /// LRN where alpha matters: inputs scaled to ±100 make the convolution outputs about 10 to a few hundred, so that
    /// alpha/size * (sum of squares) is more than 10 % of k at a quarter or more of the positions of every LRN (the
    /// paper's alpha 1e-4 over 5 channels needs activations of about 50 for that). The generated code must
    /// still match the reference, and its logits must be far from what the same network gives without LRN.
    /// </summary>
    [Theory]
    [InlineData("lrn-strong")]
    [InlineData("odd-lrn")]
    public void Lrn_with_large_activations(string name)
    {
        const double inputScale = 100;
        ModelEntry entry = Find("specs", name);
        ModelInfo info = entry.Info;
        var weights = new RandomWeights(info, 77);
        const int batch = 2;
        float[] input = RandomWeights.Uniform(batch * info.InputLength, 78, -inputScale, inputScale);

        // The reference, tracing what each LRN sees.
        var lrnStats = new List<string>();
        var fractions = new List<double>();
        var largest = new List<double>();
        int lrnCount = 0;
        float[] expected = ScalarReference.Forward(info, weights, input, batch, trace: (layer, op, x, y) =>
        {
            if (op.Name != "lrn") return;
            lrnCount++;
            int size = op.IntAt(0, "size", null);
            double alpha = op.DoubleAt(1, "alpha", 1e-4), k = op.DoubleAt(3, "k", 1);
            int hw = x.H * x.W, strong = 0;
            double largestInput = 0, largestTerm = 0;
            for (int c = 0; c < x.C; c++)
            {
                for (int i = 0; i < hw; i++)
                {
                    double sum = 0;
                    for (int j = Math.Max(0, c - size / 2); j <= Math.Min(x.C - 1, c + (size - 1) / 2); j++)
                        sum += x.Data[j * hw + i] * x.Data[j * hw + i];
                    double term = alpha / size * sum;
                    if (term > 0.1 * k) strong++;
                    largestTerm = Math.Max(largestTerm, term);
                    largestInput = Math.Max(largestInput, Math.Abs(x.Data[c * hw + i]));
                }
            }
            double fraction = strong / (double)(x.C * hw);
            lrnStats.Add($"{layer} {op.Text}: largest input {largestInput:g3}, largest alpha/size*sum {largestTerm:g3} (k = {k}), {fraction:P0} of positions above 0.1 k");
            fractions.Add(fraction);
            largest.Add(largestInput);
        });
        foreach (string s in lrnStats) _out.WriteLine(s);
        for (int i = 0; i < lrnStats.Count; i++)
        {
            Assert.True(largest[i] >= 10, "the LRN's input is too small: " + lrnStats[i]);
            Assert.True(fractions[i] >= 0.25, "alpha/size*sum is too small: " + lrnStats[i]);
        }
        Assert.True(lrnCount >= 2 * batch, $"{name}: expected every image to pass at least two LRNs, saw {lrnCount}");

        var ours = new float[batch * info.Classes];
        using (Network net = entry.Create(weights, batch))
            net.Forward(input, ours, batch, logits: true);
        ReferenceCheck.Result r = ReferenceCheck.Measure(name, batch, ours, expected, 1e-4);
        _out.WriteLine("with LRN: " + r);
        Assert.True(r.Ok, r.ToString());

        // The same network with every LRN left out gives clearly different logits, so an LRN that did nothing would fail above.
        float[] withoutLrn = ScalarReference.Forward(info, weights, input, batch, skip: op => op.Name == "lrn");
        ReferenceCheck.Result off = ReferenceCheck.Measure(name + " without LRN", batch, ours, withoutLrn, 1e-4);
        _out.WriteLine("generated vs reference without LRN: " + off);
        Assert.True(off.MaxDiff > 0.1 * (1 + r.Scale), $"leaving LRN out changes the logits by only {off.MaxDiff:g3} (scale {r.Scale:g3})");
    }

    /// <summary>Batch 3 in a session of MaxBatch 5 gives each image's logits as a batch of one does, and both match the reference.</summary>
    [Theory]
    [MemberData(nameof(OddSpecs))]
    [InlineData("alexnet-fmnist")]
    public void Batch_of_three_in_a_session_of_five_equals_per_image_runs(string name)
    {
        ModelEntry entry = AlexNet.Aot.Tests.Specs.ModelCatalog.Find(name) ?? Find("models", name);
        ModelInfo info = entry.Info;
        var weights = new RandomWeights(info, 31);
        const int batch = 3;
        float[] input = RandomWeights.Uniform(batch * info.InputLength, 32);
        var together = new float[batch * info.Classes];
        var alone = new float[batch * info.Classes];
        using (Network five = entry.Create(weights, 5))
            five.Forward(input, together, batch, logits: true);
        using (Network one = entry.Create(weights, 1))
        {
            for (int b = 0; b < batch; b++)
                one.Forward(input.AsSpan(b * info.InputLength, info.InputLength), alone.AsSpan(b * info.Classes, info.Classes), 1, logits: true);
        }
        ReferenceCheck.Result same = ReferenceCheck.Measure(name + " batch 3 vs 1+1+1", batch, together, alone, 1e-5);
        _out.WriteLine(same.ToString());
        Assert.True(same.Ok, same.ToString());
        ReferenceCheck.Result r = ReferenceCheck.Measure(name, batch, together, ScalarReference.Forward(info, weights, input, batch), 1e-4);
        _out.WriteLine(r.ToString());
        Assert.True(r.Ok, r.ToString());
    }
}
