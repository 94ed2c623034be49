using System;
using System.Collections.Generic;
using AlexNet.Aot.Tests.Reference;
using AlexNet.Aot.Training;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests.Training;

/// <summary>
/// The backward pass on shapes the PyTorch fixtures do not have (tests/AlexNet.Aot.Tests/specs: grouped and
/// depthwise convolutions, strides 2 and 3, non-square kernels, ceil-mode and padded pools, average pools with and
/// without count_include_pad, adaptive pools, LRN with even windows and general beta, batch norm after a pool and
/// after dense layers, bias-free layers): every gradient is checked against central finite differences of the loss,
/// and the trainer's forward against the generated forward.
/// </summary>
public sealed class TrainerGradientTests
{
    private readonly ITestOutputHelper _out;

    public TrainerGradientTests(ITestOutputHelper output) => _out = output;

    public static IEnumerable<object[]> OddSpecs()
    {
        foreach (ModelEntry e in AlexNet.Aot.Tests.Specs.ModelCatalog.All) yield return new object[] { e.Name, false };
        // The odd Winograd shapes once more with every layer that allows it trained by Winograd (the cost rule
        // would leave these narrow layers direct).
        yield return new object[] { "winograd-edges", true };
    }

    public static IEnumerable<object[]> AllSmallModels()
    {
        foreach (ModelEntry e in AlexNet.Aot.Tests.Specs.ModelCatalog.All) yield return new object[] { "specs", e.Name };
        foreach (ModelEntry e in AlexNet.Aot.Models.ModelCatalog.All)
            if (!ReferenceCheck.IsFullSize(e.Info)) yield return new object[] { "models", e.Name };
    }

    private static ModelEntry Find(string catalog, string name) =>
        (catalog == "models" ? AlexNet.Aot.Models.ModelCatalog.Find(name) : AlexNet.Aot.Tests.Specs.ModelCatalog.Find(name))
        ?? throw new InvalidOperationException(name + " is not compiled in");

    [Theory]
    [MemberData(nameof(AllSmallModels))]
    public void TheTrainersEvaluationForwardEqualsTheGeneratedForward(string catalog, string name)
    {
        ModelEntry entry = Find(catalog, name);
        ModelInfo model = entry.Info;
        var weights = new RandomWeights(model, 11);
        const int batch = 3;
        float[] input = RandomWeights.Uniform(batch * model.InputLength, 5);
        var ours = new float[batch * model.Classes];
        var generated = new float[batch * model.Classes];
        using (var trainer = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = 2 }))
            trainer.Evaluate(input, batch, ours);
        using (Network net = entry.Create(weights, batch, 1))
            net.Forward(input, generated, batch, logits: true);
        for (int i = 0; i < ours.Length; i++)
            Assert.True(Math.Abs(ours[i] - generated[i]) <= 1e-4 * Math.Max(1, Math.Abs(generated[i])), $"{name} logit {i}: trainer {ours[i]}, generated {generated[i]}");
    }

    [Theory]
    [MemberData(nameof(OddSpecs))]
    public void EveryGradientMatchesFiniteDifferences(string name, bool winograd)
    {
        ModelInfo model = Find("specs", name).Info;
        var weights = new RandomWeights(model, 3);
        const int batch = 3;
        float[] input = RandomWeights.Uniform(batch * model.InputLength, 9);
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) labels[i] = (i * 7 + 3) % model.Classes;

        // Dropout off (finite differences need a deterministic loss); batch norm in training mode throughout.
        using var trainer = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = 2, Dropout = false, WinogradWherePossible = winograd });
        Assert.Equal(winograd, trainer.WinogradLayers.Count > 0);
        trainer.ComputeGradients(input, labels, batch);
        var analytic = new Dictionary<string, float[]>();
        foreach (TrainableTensor t in trainer.Tensors)
            if (t.Trainable) analytic[t.Key] = (float[])t.Gradient.Clone();

        int checkedCount = 0, failed = 0;
        double worst = 0;
        var rng = new Random(17);
        foreach (TrainableTensor t in trainer.Tensors)
        {
            if (!t.Trainable) continue;
            float[] g = analytic[t.Key];
            int samples = Math.Min(t.Value.Length, 6);
            for (int s = 0; s < samples; s++)
            {
                int i = s == 0 ? ArgMaxAbs(g) : rng.Next(t.Value.Length);
                float saved = t.Value[i];
                // Central differences at three step sizes: a larger step can cross a ReLU or max-pool kink, or feel the
                // curvature of batch norm over a batch of three; the coordinate passes when any of them agrees.
                double fd = 0, err = double.MaxValue, tol = 0;
                foreach (float rel in new[] { 1e-3f, 3e-4f, 1e-4f })
                {
                    float eps = rel * Math.Max(1f, Math.Abs(saved));
                    t.Value[i] = saved + eps;
                    double up = trainer.ComputeGradients(input, labels, batch);
                    t.Value[i] = saved - eps;
                    double down = trainer.ComputeGradients(input, labels, batch);
                    t.Value[i] = saved;
                    double d = (up - down) / (2.0 * eps);
                    double e = Math.Abs(d - g[i]);
                    // float32 losses of ~2 carry ~2e-7 of rounding: the difference quotient inherits 2e-7 / eps of it.
                    double tl = 4e-7 / eps + 2e-3 + 0.03 * Math.Max(Math.Abs(d), Math.Abs(g[i]));
                    if (e / tl < err / Math.Max(tol, 1e-30) || err == double.MaxValue)
                    {
                        fd = d;
                        err = e;
                        tol = tl;
                    }
                }
                checkedCount++;
                if (err > tol)
                {
                    failed++;
                    _out.WriteLine($"{t.Key}[{i}]: analytic {g[i]:E4}, finite difference {fd:E4}");
                }
                worst = Math.Max(worst, err / (1e-3 + Math.Abs(fd)));
            }
        }
        _out.WriteLine($"{name}: {checkedCount} coordinates, {failed} outside tolerance, worst relative {worst:E2}");
        // A step of eps can cross a ReLU or max-pool kink: allow a few of those, never many.
        Assert.True(failed <= Math.Max(1, checkedCount / 20), $"{name}: {failed} of {checkedCount} gradient coordinates disagree with finite differences");
    }

    [Fact]
    public void StepsAreDeterministicAndTheThreadCountOnlyReordersSums()
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find("alexnet-fmnist")!.Info;
        const int batch = 16;
        float[] input = RandomWeights.Uniform(batch * model.InputLength, 21);
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) labels[i] = i % 10;
        float[] Run(int threads)
        {
            using var t = new Trainer(model, null, new TrainerOptions { MaxBatch = batch, Threads = threads, Seed = 5 });
            t.LearningRate = 0.02f;
            for (int s = 0; s < 3; s++) t.Step(input, labels, batch);
            return Flatten(t);
        }
        float[] a = Run(2), b = Run(2), c = Run(1);
        Assert.Equal(a, b);
        double maxDiff = 0;
        for (int i = 0; i < a.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - c[i]));
        _out.WriteLine($"1 vs 2 threads after 3 steps: max |diff| {maxDiff:E2}");
        Assert.True(maxDiff < 1e-4, $"1 and 2 threads differ by {maxDiff}");
    }

    [Fact]
    public void BadArgumentsAreClearErrors()
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find("tv-mini")!.Info;
        using var t = new Trainer(model, null, new TrainerOptions { MaxBatch = 2, Threads = 1 });
        var x = new float[2 * model.InputLength];
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Step(x, new[] { 0, 10 }, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Step(x, new[] { 0, -1 }, 2));
        Assert.Throws<ArgumentException>(() => t.Step(x, new[] { 0 }, 2));
        Assert.Throws<ArgumentException>(() => t.Step(x.AsSpan(1), new[] { 0, 1 }, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Step(new float[3 * model.InputLength], new[] { 0, 1, 2 }, 3));
        Assert.Throws<ArgumentException>(() => new Trainer(model, null, new TrainerOptions { Freeze = new[] { "conv9" } }));
        Assert.Throws<ArgumentException>(() => new Trainer(model, null, new TrainerOptions { Init = "zeros" }));
        var ex = Assert.Throws<WeightsException>(() => new Trainer(AlexNet.Aot.Models.ModelCatalog.Find("paper-mini")!.Info, SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"))));
        Assert.Contains("features.4.weight", ex.Message);
        t.Dispose();
        Assert.Throws<ObjectDisposedException>(() => t.Step(x, new[] { 0, 1 }, 2));
    }

    private static float[] Flatten(Trainer t)
    {
        var all = new List<float>();
        foreach (TrainableTensor x in t.Tensors) all.AddRange(x.Value);
        return all.ToArray();
    }

    private static int ArgMaxAbs(float[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (Math.Abs(v[i]) > Math.Abs(v[best])) best = i;
        return best;
    }
}

/// <summary>Steady-state training steps and evaluations allocate nothing, on the calling thread or on the team's
/// worker threads (counted by the team itself; the process-wide counter also sees the test host's own threads).</summary>
public sealed class TrainingAllocationTests
{
    private readonly ITestOutputHelper _out;

    public TrainingAllocationTests(ITestOutputHelper output) => _out = output;

    [Theory]
    [InlineData(false, "alexnet-fmnist")]
    [InlineData(true, "alexnet-fmnist")] // every convolution that allows it by Winograd (the cost rule leaves alexnet-fmnist's direct)
    [InlineData(false, "alexnet-fmnist-bn")] // the generated batch-norm kernels too
    public void ATrainingStepAllocatesNothing(bool winograd, string name)
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find(name)!.Info;
        const int batch = 32;
        float[] input = RandomWeights.Uniform(batch * model.InputLength, 23);
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) labels[i] = i % 10;
        var logits = new float[batch * model.Classes];
        using var t = new Trainer(model, null, new TrainerOptions { MaxBatch = batch, Threads = 2, WinogradWherePossible = winograd });
        Assert.Equal(winograd, t.WinogradLayers.Count > 0);
        Assert.NotEmpty(t.GeneratedOperations); // the generated training kernels run (and allocate nothing either)
        for (int i = 0; i < 40; i++) t.Step(input, labels, batch); // past tiered compilation
        long best = long.MaxValue;
        for (int round = 0; round < 3 && best > 0; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            long workers = t.WorkerAllocatedBytes;
            for (int i = 0; i < 10; i++)
            {
                t.Step(input, labels, batch);
                t.Evaluate(input, batch, logits, labels);
            }
            long mine = GC.GetAllocatedBytesForCurrentThread() - before;
            long team = t.WorkerAllocatedBytes - workers;
            best = Math.Min(best, mine + team);
            _out.WriteLine($"round {round}: {mine} bytes on the caller, {team} bytes on the team's worker");
        }
        Assert.Equal(0, best);
    }
}


/// <summary>Transfer learning in the trainer: frozen layers keep their values, reinitialized layers start afresh.</summary>
public sealed class TrainerTransferTests
{
    [Fact]
    public void FrozenLayersAreNotUpdatedAndReinitializedLayersStartFresh()
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find("tv-mini")!.Info;
        var pretrained = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"));
        using var t = new Trainer(model, pretrained, new TrainerOptions
        {
            MaxBatch = 2, Threads = 2, Seed = 3,
            Freeze = new[] { "conv1", "conv2", "conv3", "conv4", "conv5" },
            Reinitialize = new[] { "fc8" },
        });
        pretrained.TryGet("classifier.6.weight", out LoadedTensor head);
        Assert.NotEqual(head.Data, t["classifier.6.weight"].Value);
        Assert.All(t["classifier.6.bias"].Value, v => Assert.Equal(0f, v));
        float[] conv = (float[])t["features.0.weight"].Value.Clone(), fc6 = (float[])t["classifier.1.weight"].Value.Clone();
        float[] x = AlexNet.Aot.Tests.Reference.RandomWeights.Uniform(2 * model.InputLength, 4);
        for (int i = 0; i < 2; i++) t.Step(x, new[] { 1, 7 }, 2);
        Assert.Equal(conv, t["features.0.weight"].Value);
        Assert.True(t["features.0.weight"].Frozen);
        Assert.NotEqual(fc6, t["classifier.1.weight"].Value);
    }

    [Fact]
    public void WithClassesGivesTheLastDenseLayerANewWidthAndTheTrainerTrainsIt()
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find("alexnet-fmnist")!.Info;
        ModelInfo five = model.WithClasses(5, new[] { "a", "b", "c", "d", "e" });
        Assert.Equal(5, five.Classes);
        Assert.Equal(new[] { 5, 256 }, five.Layers[^1].Parameters[0].Shape);
        Assert.Equal(new[] { 5 }, five.Layers[^1].Parameters[1].Shape);
        Assert.Equal(10, model.Classes); // the original is unchanged
        Assert.Equal(new[] { 10, 256 }, model.Layers[^1].Parameters[0].Shape);
        using var t = new Trainer(five, null, new TrainerOptions { MaxBatch = 4, Threads = 2 });
        float[] x = AlexNet.Aot.Tests.Reference.RandomWeights.Uniform(4 * five.InputLength, 8);
        float first = t.Step(x, new[] { 0, 1, 2, 4 }, 4);
        for (int i = 0; i < 20; i++) t.Step(x, new[] { 0, 1, 2, 4 }, 4);
        Assert.True(t.LastLoss < first, $"loss {first} -> {t.LastLoss}");
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Step(x, new[] { 0, 1, 2, 5 }, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.WithClasses(0));
    }
}
