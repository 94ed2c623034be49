using System;
using System.Collections.Generic;
using System.Linq;
using AlexNet.Aot.Tests.Reference;
using AlexNet.Aot.Training;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests.Training;

/// <summary>
/// The generated column gather and scatter of every convolution (<see cref="ConvKernels"/>) against the runtime ConvOp's
/// Im2Col and Col2Im, bit for bit, at the first and a later image of a stacked column matrix; and the trainer's wiring:
/// every direct convolution of a generated model runs them, <see cref="TrainerOptions.ReferenceOps"/> none.
/// </summary>
public sealed class GeneratedConvGatherTests
{
    private readonly ITestOutputHelper _out;

    public GeneratedConvGatherTests(ITestOutputHelper output) => _out = output;

    public static IEnumerable<object[]> Models()
    {
        foreach (string name in new[] { "alexnet-fmnist", "alexnet-fmnist-bn", "alexnet-torchvision", "alexnet-2012", "alexnet-bvlc", "alexnet-bn", "tv-mini", "paper-mini", "bn-mini" })
            yield return new object[] { "models", name };
        foreach (string name in new[] { "odd-pools", "odd-bn", "odd-lrn", "odd-adaptive", "odd-channels", "odd-groups", "lrn-strong", "bvlc-mini", "winograd-edges" })
            yield return new object[] { "specs", name };
    }

    private static ModelInfo Find(string catalog, string name) =>
        ((catalog == "specs" ? AlexNet.Aot.Tests.Specs.ModelCatalog.Find(name) : AlexNet.Aot.Models.ModelCatalog.Find(name))
         ?? throw new InvalidOperationException(name + " is not compiled in")).Info;

    [Theory]
    [MemberData(nameof(Models))]
    public void GatherAndScatterMatchIm2ColAndCol2ImBitForBit(string catalog, string name)
    {
        ModelInfo model = Find(catalog, name);
        var shape = new Shape3(model.InputShape[0], model.InputShape[1], model.InputShape[2]);
        int convs = 0;
        for (int li = 0; li < model.Layers.Length; li++)
        {
            for (int oi = 0; oi < model.Layers[li].Ops.Length; oi++)
            {
                OperationInfo op = model.Layers[li].Ops[oi];
                Shape3 outShape = op.OutputShape.Length == 3 ? new Shape3(op.OutputShape[0], op.OutputShape[1], op.OutputShape[2]) : new Shape3(op.OutputShape[0], 1, 1);
                if (op.Kind == OperationKind.Conv)
                {
                    var k = Assert.IsAssignableFrom<ConvKernels>(model.Training!.Find(li, oi));
                    Assert.True(ConvOp.Fits(k, op));
                    Assert.Equal(new[] { shape.C, shape.H, shape.W }, k.InputShape);
                    Compare($"{name}.{model.Layers[li].Name}", op, k, shape, outShape, (ulong)li + 1);
                    convs++;
                }
                shape = outShape;
            }
        }
        _out.WriteLine($"{convs} convolutions compared");
        Assert.True(convs > 0);
    }

    private static void Compare(string what, OperationInfo op, ConvKernels k, Shape3 shape, Shape3 outShape, ulong seed)
    {
        var weight = new TrainableTensor("w", new[] { outShape.C, shape.C / op.Groups, op.KernelH, op.KernelW }, true);
        var conv = new ConvOp("r", shape, outShape, op, weight, null, 1);
        int cinG = shape.C / op.Groups, p = outShape.Plane, rows = cinG * op.KernelH * op.KernelW;
        long colFloats = conv.ColFloats, start = conv.ColumnFloats;
        int chunk = conv.Chunk;
        Assert.True(colFloats - start >= k.ScratchFloats, $"{what}: scratch {k.ScratchFloats} > {colFloats - start}");
        // Values with exact zeros and negative zeros among them: a scatter's sums must round and sign as the reference's.
        float[] x = RandomWeights.Uniform(shape.Size, seed, -2, 2).Select((v, i) => i % 7 == 0 ? 0f : i % 11 == 0 ? -0f : v).ToArray();
        foreach ((int ld, int offset) in new[] { (p, 0), (chunk * p, (chunk - 1) * p) })
        {
            for (int g = 0; g < op.Groups; g++)
            {
                int at = g * cinG * shape.Plane;
                string mode = $"{what} group {g}, ld {ld}, offset {offset}";
                // Gather: the rows written (and the floats between them left alone) bit for bit.
                float[] colR = new float[colFloats], colG = new float[colFloats];
                colR.AsSpan().Fill(float.NaN);
                colG.AsSpan().Fill(float.NaN);
                conv.Im2Col(ref x[at], colR, ld, offset);
                k.Gather(x.AsSpan(at, cinG * shape.Plane), colG.AsSpan(offset, (int)start - offset), ld, colG.AsSpan((int)start));
                AssertBits(mode + " gather", colR.AsSpan(0, (int)start), colG.AsSpan(0, (int)start));
                // Scatter: a column gradient with zeros, negative zeros and values of every size onto a zero dx.
                float[] dcol = RandomWeights.Uniform((int)colFloats, seed + 3, -3, 3)
                    .Select((v, i) => i % 5 == 0 ? -0f : i % 13 == 0 ? v * 1e6f : i % 17 == 0 ? v * 1e-6f : v).ToArray();
                float[] dcolG = (float[])dcol.Clone();
                float[] dxR = new float[shape.Size], dxG = new float[shape.Size];
                conv.Col2Im(dcol, ld, offset, ref dxR[at]);
                k.Scatter(dcolG.AsSpan(offset, (int)start - offset), ld, dxG.AsSpan(at, cinG * shape.Plane), dcolG.AsSpan((int)start));
                AssertBits(mode + " scatter", dxR, dxG);
            }
        }
    }

    [Theory]
    [InlineData("alexnet-fmnist")]
    [InlineData("alexnet-torchvision")]
    [InlineData("alexnet-2012")]
    public void EveryDirectConvolutionRunsTheGeneratedGatherUnlessReferenceOps(string name)
    {
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find(name)!.Info;
        using var generated = new Trainer(model, null, new TrainerOptions { MaxBatch = 1, Threads = 1 });
        using var reference = new Trainer(model, null, new TrainerOptions { MaxBatch = 1, Threads = 1, ReferenceOps = true });
        var direct = generated.Operations.OfType<ConvOp>().ToList();
        _out.WriteLine("direct: " + string.Join(", ", direct.Select(c => c.Name)));
        Assert.All(direct, c => Assert.NotNull(c.Kernels));
        Assert.All(direct, c => Assert.Contains(c.Name, generated.GeneratedOperations));
        Assert.All(reference.Operations.OfType<ConvOp>(), c => Assert.Null(c.Kernels));
        using var allDirect = new Trainer(model, null, new TrainerOptions { MaxBatch = 1, Threads = 1, Convolutions = ConvolutionAlgorithm.Direct });
        Assert.Equal(model.Layers.Count(l => l.Kind == "conv"), allDirect.Operations.OfType<ConvOp>().Count(c => c.Kernels is not null));
    }

    [Theory]
    [InlineData("models", "alexnet-fmnist")]
    [InlineData("models", "tv-mini")]
    [InlineData("models", "paper-mini")]
    [InlineData("specs", "odd-groups")]
    [InlineData("specs", "odd-channels")]
    [InlineData("specs", "bvlc-mini")]
    public void EveryConvolutionDirectTrainsBitForBitAsWithTheReferenceOps(string catalog, string name)
    {
        ModelInfo model = Find(catalog, name);
        const int batch = 5;
        IWeightSource weights = new RandomWeights(model, 11);
        float[] input = RandomWeights.Uniform(batch * model.InputLength, 13);
        int[] labels = Enumerable.Range(0, batch).Select(i => (i * 7 + 3) % model.Classes).ToArray();
        using var generated = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = 2, Convolutions = ConvolutionAlgorithm.Direct });
        using var reference = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = 2, Convolutions = ConvolutionAlgorithm.Direct, ReferenceOps = true });
        Assert.All(generated.Operations.OfType<ConvOp>(), c => Assert.NotNull(c.Kernels));
        float lg = generated.ComputeGradients(input, labels, batch), lr = reference.ComputeGradients(input, labels, batch);
        Assert.Equal(BitConverter.SingleToInt32Bits(lr), BitConverter.SingleToInt32Bits(lg));
        for (int i = 0; i < generated.Operations.Count; i++)
        {
            TrainOp g = generated.Operations[i], r = reference.Operations[i];
            if (!g.IsIdentity) AssertBits(g.Name + " y", r.Y.AsSpan(0, batch * r.Out.Size), g.Y.AsSpan(0, batch * g.Out.Size));
        }
        for (int i = 0; i < generated.Tensors.Count; i++)
        {
            TrainableTensor g = generated.Tensors[i], r = reference.Tensors[i];
            // Conv bias gradients are summed in another grouping by the generated bias kernels (see GeneratedTrainingTests).
            if (model.Layers.Any(l => l.Kind == "conv" && l.Ops[0].Bias && r.Key == l.Ops[0].CheckpointPrefix + ".bias")) continue;
            AssertBits("grad " + r.Key, r.Gradient, g.Gradient);
        }
    }

    private static void AssertBits(string what, ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}[{i}]: reference {expected[i]:R}, generated {actual[i]:R}");
    }
}
