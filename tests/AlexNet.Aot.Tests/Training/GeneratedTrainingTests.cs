using System;
using System.Collections.Generic;
using System.Linq;
using AlexNet.Aot.Tests.Reference;
using AlexNet.Aot.Training;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests.Training;

/// <summary>
/// The generator's training kernels (<see cref="ModelInfo.Training"/>) against the trainer's reference operations
/// (<see cref="TrainerOptions.ReferenceOps"/>): op by op on random data with many ties, and through whole models (loss,
/// every activation, every gradient, every parameter after SGD steps, dropout on). Everything is compared bit for bit
/// except the convolution bias gradients, which the generated kernels sum in double in another grouping (to 1e-6).
/// </summary>
public sealed class GeneratedTrainingTests
{
    private readonly ITestOutputHelper _out;

    public GeneratedTrainingTests(ITestOutputHelper output) => _out = output;

    public static IEnumerable<object[]> Models()
    {
        foreach (string name in new[] { "alexnet-fmnist", "alexnet-fmnist-bn", "tv-mini", "paper-mini", "bn-mini" })
            yield return new object[] { "models", name };
        foreach (string name in new[] { "odd-pools", "odd-bn", "odd-lrn", "odd-adaptive", "odd-channels", "odd-groups", "lrn-strong", "dense-only" })
            yield return new object[] { "specs", name };
    }

    private static ModelInfo Find(string catalog, string name) =>
        ((catalog == "specs" ? AlexNet.Aot.Tests.Specs.ModelCatalog.Find(name) : AlexNet.Aot.Models.ModelCatalog.Find(name))
         ?? throw new InvalidOperationException(name + " is not compiled in")).Info;

    [Theory]
    [MemberData(nameof(Models))]
    public void EveryGeneratedKernelMatchesItsReferenceOpBitForBit(string catalog, string name)
    {
        ModelInfo model = Find(catalog, name);
        Assert.NotNull(model.Training);
        var shape = new Shape3(model.InputShape[0], model.InputShape[1], model.InputShape[2]);
        int checkedOps = 0;
        for (int li = 0; li < model.Layers.Length; li++)
        {
            for (int oi = 0; oi < model.Layers[li].Ops.Length; oi++)
            {
                OperationInfo op = model.Layers[li].Ops[oi];
                Shape3 outShape = op.OutputShape.Length == 3 ? new Shape3(op.OutputShape[0], op.OutputShape[1], op.OutputShape[2]) : new Shape3(op.OutputShape[0], 1, 1);
                OperationKernels? k = model.Training!.Find(li, oi);
                string what = $"{name}.{model.Layers[li].Name}.{op.Kind}";
                if (op.Kind is OperationKind.Relu or OperationKind.Lrn or OperationKind.MaxPool or OperationKind.AvgPool or OperationKind.Dropout or OperationKind.BatchNorm
                    || (op.Kind == OperationKind.AdaptiveAvgPool && outShape != shape))
                {
                    Assert.True(k is not null, what + ": no generated kernel");
                    Assert.Equal(new[] { shape.C, shape.H, shape.W }, k!.InputShape);
                    foreach (int workers in new[] { 1, 2 })
                        foreach (int batch in new[] { 1, 3 })
                            CompareOp(what, op, k, shape, outShape, batch, workers, seed: (ulong)(li * 10 + oi + 1));
                    checkedOps++;
                }
                shape = outShape;
            }
        }
        _out.WriteLine($"{checkedOps} operations compared");
        Assert.True(checkedOps > 0);
    }

    private static (TrainOp Reference, TrainOp Generated, TrainableTensor[] RefTensors, TrainableTensor[] GenTensors) Pair(OperationInfo op, OperationKernels k, Shape3 shape, Shape3 outShape, ulong seed)
    {
        var none = Array.Empty<TrainableTensor>();
        switch (op.Kind)
        {
            case OperationKind.Relu: return (new ReluOp("r", shape), new GeneratedReluOp("g", shape, (ReluKernels)k), none, none);
            case OperationKind.Lrn: return (new LrnOp("r", shape, op), new GeneratedLrnOp("g", shape, (LrnKernels)k), none, none);
            case OperationKind.MaxPool: return (new MaxPoolOp("r", shape, outShape, op), new GeneratedMaxPoolOp("g", shape, outShape, (MaxPoolKernels)k), none, none);
            case OperationKind.AvgPool:
            case OperationKind.AdaptiveAvgPool:
                return (new AvgPoolOp("r", shape, outShape, op, op.Kind == OperationKind.AdaptiveAvgPool), new GeneratedAvgPoolOp("g", shape, outShape, (AvgPoolKernels)k), none, none);
            case OperationKind.Dropout: return (new DropoutOp("r", shape, op.P, 1), new GeneratedDropoutOp("g", shape, (DropoutKernels)k, 1), none, none);
            case OperationKind.BatchNorm:
            {
                TrainableTensor[] Make()
                {
                    var t = new[]
                    {
                        new TrainableTensor("w", new[] { shape.C }, true), new TrainableTensor("b", new[] { shape.C }, true),
                        new TrainableTensor("m", new[] { shape.C }, false), new TrainableTensor("v", new[] { shape.C }, false),
                        new TrainableTensor("n", new[] { 1 }, false),
                    };
                    RandomWeights.Uniform(shape.C, seed + 100, 0.5, 1.5).CopyTo(t[0].Value, 0);
                    RandomWeights.Uniform(shape.C, seed + 101).CopyTo(t[1].Value, 0);
                    RandomWeights.Uniform(shape.C, seed + 102).CopyTo(t[2].Value, 0);
                    RandomWeights.Uniform(shape.C, seed + 103, 0.5, 2).CopyTo(t[3].Value, 0);
                    return t;
                }
                TrainableTensor[] r = Make(), g = Make();
                return (new BatchNormOp("r", shape, op, r[0], r[1], r[2], r[3], r[4]), new GeneratedBatchNormOp("g", shape, (BatchNormKernels)k, g[0], g[1], g[2], g[3], g[4]), r, g);
            }
            default: throw new InvalidOperationException(op.Kind.ToString());
        }
    }

    private static void CompareOp(string what, OperationInfo op, OperationKernels k, Shape3 shape, Shape3 outShape, int batch, int workers, ulong seed)
    {
        (TrainOp r, TrainOp g, TrainableTensor[] rt, TrainableTensor[] gt) = Pair(op, k, shape, outShape, seed);
        Assert.True(g.Generated);
        Assert.False(r.Generated);
        // Values on a coarse grid (multiples of 1/4 in [-2, 2]): max pooling sees ties in every window, ReLU sees zeros.
        float[] x = RandomWeights.Uniform(batch * shape.Size, seed, -2, 2).Select(v => MathF.Round(v * 4) / 4).ToArray();
        float[] dy = RandomWeights.Uniform(batch * outShape.Size, seed + 7);
        foreach (bool training in new[] { true, false })
        {
            var outputs = new List<(float[] Y, float[] Dx)>();
            foreach (TrainOp o in new[] { r, g })
            {
                o.X = (float[])x.Clone();
                o.Y = new float[batch * outShape.Size];
                o.Allocate(batch);
                var dx = new float[batch * shape.Size];
                dx.AsSpan().Fill(float.NaN); // every element must be written
                for (int w = 0; w < workers; w++)
                {
                    var scratch = new WorkerScratch { Lrn = new float[shape.Size] };
                    o.Forward(new StepContext(w, workers, batch, training, needDx: true, scratch, seed: 5, step: 3));
                }
                for (int w = 0; w < workers; w++)
                {
                    var scratch = new WorkerScratch { Lrn = new float[shape.Size] };
                    o.Backward(new StepContext(w, workers, batch, training, needDx: true, scratch, seed: 5, step: 3), (float[])dy.Clone(), dx);
                }
                outputs.Add((o.Y, dx));
            }
            string mode = $"{what} (batch {batch}, {workers} worker(s), {(training ? "training" : "evaluation")})";
            AssertBits(mode + " y", outputs[0].Y, outputs[1].Y);
            AssertBits(mode + " dx", outputs[0].Dx, outputs[1].Dx);
            for (int i = 0; i < rt.Length; i++)
            {
                AssertBits($"{mode} {rt[i].Key}", rt[i].Value, gt[i].Value);
                AssertBits($"{mode} grad {rt[i].Key}", rt[i].Gradient, gt[i].Gradient);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void AWholeModelTrainsBitForBitAsWithTheReferenceOps(string catalog, string name)
    {
        ModelInfo model = Find(catalog, name);
        const int batch = 5;
        IWeightSource weights = new RandomWeights(model, 11);
        float[] input = RandomWeights.Uniform(batch * model.InputLength, 13);
        int[] labels = Enumerable.Range(0, batch).Select(i => (i * 7 + 3) % model.Classes).ToArray();
        using var generated = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = 2 });
        using var reference = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = 2, ReferenceOps = true });
        Assert.NotEmpty(generated.GeneratedOperations);
        Assert.Empty(reference.GeneratedOperations);
        _out.WriteLine("generated: " + string.Join(", ", generated.GeneratedOperations));
        for (int step = 0; step < 2; step++)
        {
            float lg = generated.ComputeGradients(input, labels, batch), lr = reference.ComputeGradients(input, labels, batch);
            // Step 0 from the same parameters: bit for bit. Step 1 starts from parameters whose conv biases may differ in the last bit.
            if (step == 0) Assert.Equal(BitConverter.SingleToInt32Bits(lr), BitConverter.SingleToInt32Bits(lg));
            else Assert.True(Math.Abs(lg - lr) <= 1e-6 * Math.Max(1, Math.Abs(lr)), $"step {step} loss {lg} vs {lr}");
            for (int i = 0; i < generated.Operations.Count; i++)
            {
                TrainOp g = generated.Operations[i], r = reference.Operations[i];
                Assert.Equal(r.Name, g.Name);
                if (!g.IsIdentity) AssertClose($"step {step} {g.Name} y", r.Y.AsSpan(0, batch * r.Out.Size).ToArray(), g.Y.AsSpan(0, batch * g.Out.Size).ToArray(), step > 0);
            }
            for (int i = 0; i < generated.Tensors.Count; i++)
            {
                TrainableTensor g = generated.Tensors[i], r = reference.Tensors[i];
                bool bias = r.Key.EndsWith(".bias", StringComparison.Ordinal) && IsConvBias(model, r.Key);
                AssertClose($"step {step} grad {r.Key}", r.Gradient, g.Gradient, bias || step > 0);
            }
            generated.ApplyGradients();
            reference.ApplyGradients();
            for (int i = 0; i < generated.Tensors.Count; i++)
            {
                TrainableTensor g = generated.Tensors[i], r = reference.Tensors[i];
                AssertClose($"step {step} {r.Key}", r.Value, g.Value, IsConvBias(model, r.Key) || step > 0);
            }
        }
    }

    /// <summary>ReLU, LRN and max-pool after a convolution run as a chain, a block of images at a time (a block of one
    /// image for alexnet-fmnist's conv1, several for the minis), with the gradients between them in per-worker buffers:
    /// the same numbers, bit for bit, as each op over the whole batch, with blocks that do not divide a worker's images.</summary>
    [Theory]
    [InlineData("alexnet-fmnist", 1)]
    [InlineData("alexnet-fmnist", 2)]
    [InlineData("paper-mini", 2)]
    [InlineData("alexnet-fmnist-bn", 2)]
    public void ImageBlockChainsChangeNothing(string name, int threads)
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find(name)!.Info;
        const int batch = 7;
        IWeightSource weights = new RandomWeights(model, 5);
        float[] input = RandomWeights.Uniform(batch * model.InputLength, 9);
        int[] labels = Enumerable.Range(0, batch).Select(i => (i * 3 + 1) % model.Classes).ToArray();
        using var chains = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = threads }) { Profiling = true };
        using var plain = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = threads, ImageBlockChains = false }) { Profiling = true };
        for (int step = 0; step < 2; step++)
        {
            Assert.Equal(BitConverter.SingleToInt32Bits(plain.Step(input, labels, batch)), BitConverter.SingleToInt32Bits(chains.Step(input, labels, batch)));
            for (int i = 0; i < chains.Tensors.Count; i++)
            {
                AssertBits($"step {step} grad {plain.Tensors[i].Key}", plain.Tensors[i].Gradient, chains.Tensors[i].Gradient);
                AssertBits($"step {step} {plain.Tensors[i].Key}", plain.Tensors[i].Value, chains.Tensors[i].Value);
            }
        }
        // The profile shows a chain as one row; without chains every op has its own.
        var rows = chains.GetProfile();
        Assert.Contains(rows, r => r.Operation.StartsWith("conv1.relu+", StringComparison.Ordinal) || r.Operation == "conv1.relu");
        Assert.Contains(rows, r => r.Operation.Contains("+maxpool", StringComparison.Ordinal) && r.Pass == "backward");
        Assert.DoesNotContain(plain.GetProfile(), r => r.Operation.Contains('+', StringComparison.Ordinal));
    }

    private static bool IsConvBias(ModelInfo model, string key)
    {
        foreach (LayerInfo l in model.Layers)
            if (l.Kind == "conv" && l.Ops[0].Bias && key == l.Ops[0].CheckpointPrefix + ".bias") return true;
        return false;
    }

    [Fact]
    public void ANewHeadFallsBackToTheReferenceOpsForItsLastLayerOnly()
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find("alexnet-fmnist")!.Info.WithClasses(4);
        using var t = new Trainer(model, null, new TrainerOptions { MaxBatch = 2, Threads = 1 });
        Assert.Contains("fc7.relu", t.GeneratedOperations);
        Assert.DoesNotContain("fc8.dense", t.GeneratedOperations);
        float loss = t.Step(RandomWeights.Uniform(2 * model.InputLength, 3), new[] { 1, 3 }, 2);
        Assert.True(float.IsFinite(loss));
    }

    [Fact]
    public void AHandBuiltModelInfoRunsTheReferenceOps()
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find("tv-mini")!.Info with { Training = null };
        using var t = new Trainer(model, null, new TrainerOptions { MaxBatch = 2, Threads = 1 });
        Assert.Empty(t.GeneratedOperations);
    }

    private static void AssertBits(string what, float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}[{i}]: reference {expected[i]:R}, generated {actual[i]:R}");
    }

    /// <summary>Bit for bit, or with <paramref name="rounding"/> within 1e-6 of the tensor's scale (a conv bias gradient's rounding and what it moves).</summary>
    private void AssertClose(string what, float[] expected, float[] actual, bool rounding)
    {
        if (!rounding)
        {
            AssertBits(what, expected, actual);
            return;
        }
        double l2 = OracleCheck.RelativeL2(actual, expected);
        if (l2 > 0) _out.WriteLine($"{what}: relative L2 {l2:E2}");
        Assert.True(l2 <= 1e-6, $"{what}: relative L2 {l2:E3}");
    }
}
