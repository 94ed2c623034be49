using AlexNet.Aot.Generator.Emit;
using System;
using System.Collections.Generic;
using System.Linq;
using AlexNet.Aot.Generator.Model;
using AlexNet.Aot.Generator.Parsing;
using AlexNet.Aot.Generator.Planning;
using Xunit;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>The plan stage on its own: shapes, multiply-adds, parameters and the arena, against numbers from PyTorch.</summary>
public sealed class PlannerTests
{
    private static ModelPlan PlanOf(string specName)
    {
        ShippedSpec s = GeneratorHarness.Spec(specName);
        ModelPlan plan = Planner.Plan(SpecParser.Parse(s.FullPath, s.Text));
        Assert.Empty(plan.Diagnostics);
        return plan;
    }

    private static LayerPlan Layer(ModelPlan p, string name) => p.Layers.Single(l => l.Spec.Name == name);

    private static int[] Final(LayerPlan l) => new[] { l.FinalC, l.FinalH, l.FinalW };

    [Fact]
    public void TorchvisionShapesMatchTorchvision()
    {
        ModelPlan p = PlanOf("alexnet-torchvision");
        Assert.Equal(new[] { 3, 224, 224 }, new[] { p.Spec.InputC, p.Spec.InputH, p.Spec.InputW });
        LayerPlan conv1 = Layer(p, "conv1");
        Assert.Equal(new[] { 64, 55, 55 }, new[] { conv1.OutC, conv1.OutH, conv1.OutW });
        Assert.Equal(new[] { 64, 27, 27 }, Final(conv1));
        Assert.Equal(new[] { 192, 13, 13 }, Final(Layer(p, "conv2")));
        Assert.Equal(new[] { 384, 13, 13 }, Final(Layer(p, "conv3")));
        Assert.Equal(new[] { 256, 13, 13 }, Final(Layer(p, "conv4")));
        Assert.Equal(new[] { 256, 6, 6 }, Final(Layer(p, "conv5")));
        LayerPlan fc6 = Layer(p, "fc6");
        Assert.Equal(9216, fc6.GemmK);
        Assert.Equal(9216, fc6.Steps[0].InC);
        Assert.Equal(4096, fc6.OutC);
        Assert.Equal(1000, p.Classes);
        Assert.True(p.HasSoftmax);
    }

    [Fact]
    public void TorchvisionMultiplyAddsPerLayer()
    {
        ModelPlan p = PlanOf("alexnet-torchvision");
        var expected = new Dictionary<string, long>
        {
            ["conv1"] = 64L * 55 * 55 * 3 * 11 * 11,   // 70,276,800
            ["conv2"] = 192L * 27 * 27 * 64 * 5 * 5,   // 223,948,800
            ["conv3"] = 384L * 13 * 13 * 192 * 3 * 3,  // 112,140,288
            ["conv4"] = 256L * 13 * 13 * 384 * 3 * 3,  // 149,520,384
            ["conv5"] = 256L * 13 * 13 * 256 * 3 * 3,  // 99,680,256
            ["fc6"] = 9216L * 4096,
            ["fc7"] = 4096L * 4096,
            ["fc8"] = 4096L * 1000,
        };
        Assert.Equal(70_276_800L, Layer(p, "conv1").MultiplyAdds);
        foreach (var kv in expected) Assert.Equal(kv.Value, Layer(p, kv.Key).MultiplyAdds);
        long total = p.Layers.Sum(l => l.MultiplyAdds);
        Assert.Equal(714_188_480L, total); // torchvision reports AlexNet at 0.71 GFLOPS (multiply-adds)
    }

    [Fact]
    public void TorchvisionParameterKeysAndShapesAreTheStateDict()
    {
        ModelPlan p = PlanOf("alexnet-torchvision");
        var actual = p.Layers.SelectMany(l => l.Parameters).Select(x => (x.Key, Shape: string.Join(",", x.Shape))).ToList();
        var expected = new List<(string, string)>
        {
            ("features.0.weight", "64,3,11,11"), ("features.0.bias", "64"),
            ("features.3.weight", "192,64,5,5"), ("features.3.bias", "192"),
            ("features.6.weight", "384,192,3,3"), ("features.6.bias", "384"),
            ("features.8.weight", "256,384,3,3"), ("features.8.bias", "256"),
            ("features.10.weight", "256,256,3,3"), ("features.10.bias", "256"),
            ("classifier.1.weight", "4096,9216"), ("classifier.1.bias", "4096"),
            ("classifier.4.weight", "4096,4096"), ("classifier.4.bias", "4096"),
            ("classifier.6.weight", "1000,4096"), ("classifier.6.bias", "1000"),
        };
        Assert.Equal(expected, actual);
        Assert.Equal(61_100_840L, p.Layers.SelectMany(l => l.Parameters).Sum(x => x.Shape.Aggregate(1L, (a, b) => a * b)));
    }

    [Fact]
    public void BatchNormParametersIncludeRunningStatisticsAndAnOptionalCounter()
    {
        ModelPlan p = PlanOf("alexnet-bn");
        LayerPlan conv1 = Layer(p, "conv1");
        Assert.NotNull(conv1.FoldedBatchNorm);
        Assert.Equal(new[] { "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias", "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked" },
            conv1.Parameters.Select(x => x.Key).ToArray());
        ParamPlan counter = conv1.Parameters.Single(x => x.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal));
        Assert.True(counter.Optional);
        Assert.Empty(counter.Shape);
        Assert.All(conv1.Parameters.Where(x => x.Key.StartsWith("features.1.", StringComparison.Ordinal) && !x.Optional), x => Assert.Equal(new[] { 64 }, x.Shape.ToArray()));
    }

    [Fact]
    public void Alexnet2012MatchesThePaper()
    {
        ModelPlan p = PlanOf("alexnet-2012");
        LayerPlan conv1 = Layer(p, "conv1"), conv2 = Layer(p, "conv2");
        Assert.Equal(new[] { 96, 55, 55 }, new[] { conv1.OutC, conv1.OutH, conv1.OutW });
        Assert.Equal(new[] { 96, 27, 27 }, Final(conv1));
        Assert.Equal(2, conv2.Groups);
        Assert.Equal(48, conv2.CinG);
        Assert.Equal(128, conv2.CoutG);
        Assert.Equal(48 * 5 * 5, conv2.GemmK);
        Assert.Equal(new[] { 256, 13, 13 }, Final(conv2));
        Assert.Equal(new[] { 256, 48, 5, 5 }, conv2.Parameters[0].Shape.ToArray());
        Assert.Equal(2, Layer(p, "conv4").Groups);
        Assert.Equal(2, Layer(p, "conv5").Groups);
        Assert.Equal(1, Layer(p, "conv3").Groups);
        Assert.Equal(new[] { 256, 6, 6 }, Final(Layer(p, "conv5")));
        Assert.Equal(9216, Layer(p, "fc6").GemmK);
        foreach (string name in new[] { "conv1", "conv2" })
        {
            StepPlan lrn = Layer(p, name).Steps.Single(s => s.Kind == StepKind.Lrn);
            Assert.Equal(5, lrn.Op!.Size);
            Assert.Equal(5e-4f, lrn.Op.Alpha);
            Assert.Equal(0.75f, lrn.Op.Beta);
            Assert.Equal(2f, lrn.Op.K);
        }
        Assert.DoesNotContain(Layer(p, "conv3").Steps, s => s.Kind == StepKind.Lrn);
        Assert.Equal(new[] { StepKind.Conv, StepKind.Lrn, StepKind.MaxPool }, conv1.Steps.Select(s => s.Kind).ToArray());
        Assert.True(conv1.FuseRelu);
        Assert.Equal(new[] { StepKind.Dense, StepKind.Dropout }, Layer(p, "fc6").Steps.Select(s => s.Kind).ToArray());
    }

    // ------------------------------------------------------------------ the arena

    private sealed record Buffer(string What, Region Region, long Offset, long Size, int Def, int LastUse);

    /// <summary>The column-panel scratch of a conv layer: one K x NR panel of the widest ISA, as the plan records it.</summary>
    private static long ScratchFloats(LayerPlan l)
    {
        long panel = (long)l.GemmK * Planner.MaxPanelColumns;
        // A Winograd layer's scratch also holds one row panel's 36 products and its output tiles.
        Assert.Equal(l.Winograd ? Math.Max(panel, (36L * Planner.WinogradMaxRows + 16) * l.TileColumns) : panel, l.ScratchFloats);
        return l.ScratchFloats;
    }

    /// <summary>
    /// Rebuilds every buffer of the plan with its lifetime in global step order: a step whose output is not its input
    /// defines a buffer, read until the next step that takes it as input; a conv step's scratch lives for that step.
    /// </summary>
    private static List<Buffer> Buffers(ModelPlan p)
    {
        var buffers = new List<Buffer>();
        int step = 0;
        (Region Region, int Offset, long Size, int Def, string What)? current = null;
        foreach (LayerPlan l in p.Layers)
        {
            for (int i = 0; i < l.Steps.Count; i++, step++)
            {
                StepPlan s = l.Steps[i];
                if (s.Kind == StepKind.Conv)
                    buffers.Add(new Buffer($"{l.Spec.Name} scratch", Region.Worker, l.ScratchOffset, ScratchFloats(l), step, step));
                if (s.Kind == StepKind.Conv && l.Winograd)
                    buffers.Add(new Buffer($"{l.Spec.Name} Winograd transform", Region.Worker, l.TransformOffset, 36L * l.InC * l.TileColumns, step, step));
                if (s.In == s.Out && s.In.Region != Region.Input) continue; // in place
                if (current is { } c)
                {
                    Assert.Equal(c.Region, s.In.Region);
                    Assert.Equal(c.Offset, s.In.Offset);
                    buffers.Add(new Buffer(c.What, c.Region, c.Offset, c.Size, c.Def, step));
                }
                else
                {
                    Assert.Equal(Region.Input, s.In.Region);
                }
                current = (s.Out.Region, s.Out.Offset, s.OutSize, step, $"{l.Spec.Name} step {i} ({s.Kind}) output");
            }
        }
        Assert.Equal(Region.Output, current!.Value.Region);
        return buffers;
    }

    public static IEnumerable<object[]> ConvSpecs() =>
        GeneratorHarness.Shipped.Select(s => new object[] { s.Name });

    [Theory]
    [MemberData(nameof(ConvSpecs))]
    public void BuffersThatAreLiveTogetherNeverOverlap(string specName)
    {
        ModelPlan p = PlanOf(specName);
        List<Buffer> buffers = Buffers(p);
        foreach (Region region in new[] { Region.Worker, Region.Dense })
        {
            long limit = region == Region.Worker ? p.WorkerFloats : p.DenseFloatsPerImage;
            var inRegion = buffers.Where(b => b.Region == region).ToList();
            foreach (Buffer b in inRegion)
            {
                Assert.True(b.Offset >= 0 && b.Offset + b.Size <= limit, $"{b.What}: [{b.Offset}, {b.Offset + b.Size}) is outside the {region} region of {limit} floats");
                if (region == Region.Worker) Assert.True(b.Offset % Planner.Align == 0, $"{b.What} at {b.Offset} is not {Planner.Align}-float aligned");
            }
            for (int i = 0; i < inRegion.Count; i++)
            for (int j = i + 1; j < inRegion.Count; j++)
            {
                Buffer a = inRegion[i], b = inRegion[j];
                bool live = a.Def <= b.LastUse && b.Def <= a.LastUse;
                bool overlap = a.Offset < b.Offset + b.Size && b.Offset < a.Offset + a.Size;
                Assert.False(live && overlap,
                    $"{a.What} [{a.Offset}, {a.Offset + a.Size}) steps {a.Def}..{a.LastUse} overlaps {b.What} [{b.Offset}, {b.Offset + b.Size}) steps {b.Def}..{b.LastUse}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(ConvSpecs))]
    public void ForEachConvStepInputOutputAndScratchAreDisjoint(string specName)
    {
        ModelPlan p = PlanOf(specName);
        foreach (LayerPlan l in p.Layers.Where(l => l.IsConv))
        {
            StepPlan c = l.Steps[0];
            var parts = new List<(string, Slot, long)> { ("scratch", new Slot(Region.Worker, l.ScratchOffset), ScratchFloats(l)), ("output", c.Out, c.OutSize) };
            if (l.Winograd) parts.Add(("Winograd transform", new Slot(Region.Worker, l.TransformOffset), 36L * l.InC * l.TileColumns));
            if (c.In.Region != Region.Input) parts.Add(("input", c.In, c.InSize));
            for (int i = 0; i < parts.Count; i++)
            for (int j = i + 1; j < parts.Count; j++)
            {
                var (na, sa, za) = parts[i];
                var (nb, sb, zb) = parts[j];
                if (sa.Region != sb.Region) continue;
                Assert.False(sa.Offset < sb.Offset + zb && sb.Offset < sa.Offset + za, $"{l.Spec.Name}: {na} [{sa.Offset}, +{za}) overlaps {nb} [{sb.Offset}, +{zb})");
            }
            foreach (StepPlan s in l.Steps.Skip(1).Where(s => s.In != s.Out && s.In.Region == s.Out.Region))
                Assert.False(s.In.Offset < s.Out.Offset + s.OutSize && s.Out.Offset < s.In.Offset + s.InSize, $"{l.Spec.Name}: {s.Text} reads and writes overlapping buffers");
        }
    }

    /// <summary>A fused step keeps reading what the step before it read while the pool writes: LrnMaxPool reads the LRN's
    /// input (neighbouring channels, other workers'), and a Winograd product that pools in its epilogue still reads the
    /// transformed input and its own scratch. The pool's output must share memory with none of them.</summary>
    [Theory]
    [MemberData(nameof(ConvSpecs))]
    public void FusedPoolsNeverWriteWhatTheFusedStepStillReads(string specName)
    {
        ModelPlan p = PlanOf(specName);
        int fused = 0;
        foreach (LayerPlan l in p.Layers.Where(l => l.IsConv))
        {
            var reads = new List<(string, Slot, long)>();
            StepPlan? pool = null;
            for (int i = 1; i < l.Steps.Count; i++)
                if (LayerEmitter.LrnPoolFused(l, i))
                {
                    pool = l.Steps[i + 1];
                    reads.Add(("LRN input", l.Steps[i].In, l.Steps[i].InSize));
                }
            if (LayerEmitter.WinogradPoolFused(l))
            {
                pool = l.Steps[1];
                reads.Add(("scratch", new Slot(Region.Worker, l.ScratchOffset), ScratchFloats(l)));
                reads.Add(("Winograd transform", new Slot(Region.Worker, l.TransformOffset), 36L * l.InC * l.TileColumns));
                reads.Add(("convolution output", l.Steps[0].Out, l.Steps[0].OutSize));
            }
            if (pool is null) continue;
            fused++;
            foreach (var (what, slot, size) in reads)
                if (slot.Region == pool.Out.Region)
                    Assert.False(slot.Offset < pool.Out.Offset + pool.OutSize && pool.Out.Offset < slot.Offset + size,
                        $"{l.Spec.Name}: the fused {pool.Text} writes [{pool.Out.Offset}, +{pool.OutSize}) over the {what} [{slot.Offset}, +{size})");
        }
        if (specName is "alexnet-2012" or "alexnet-torchvision" or "alexnet-fmnist") Assert.True(fused > 0, $"{specName}: no fused pool");
    }

    [Theory]
    [InlineData("alexnet-torchvision")]
    [InlineData("alexnet-2012")]
    [InlineData("alexnet-bn")]
    public void TheWorkerArenaReusesBuffers(string specName)
    {
        ModelPlan p = PlanOf(specName);
        long sum = Buffers(p).Where(b => b.Region == Region.Worker).Sum(b => b.Size);
        Assert.True(p.WorkerFloats < sum, $"worker arena {p.WorkerFloats} floats is not smaller than the {sum} floats of all its buffers");
        // It must at least hold the largest pair that is live at once: conv1's output beside its scratch.
        LayerPlan conv1 = p.Layers[0];
        Assert.True(p.WorkerFloats >= conv1.Steps[0].OutSize + ScratchFloats(conv1));
    }

    [Fact]
    public void TheLastConvWritesTheDenseInputAndTheLastDenseTheOutput()
    {
        ModelPlan p = PlanOf("alexnet-torchvision");
        LayerPlan conv5 = Layer(p, "conv5");
        Assert.Equal(Region.Dense, conv5.Steps[conv5.Steps.Count - 1].Out.Region);
        Assert.Equal(Region.Input, p.Layers[0].Steps[0].In.Region);
        Assert.Equal(Region.Output, Layer(p, "fc8").Steps[0].Out.Region);
        // fc6 reads the 9216 features while writing 4096; fc7 then reuses the features' floats.
        Assert.Equal(9216 + 4096, p.DenseFloatsPerImage);
    }

    // ------------------------------------------------------------------ pooling output sizes

    private static OpSpec Pool(int k, int s, int p, bool ceil) =>
        new(OpKind.MaxPool, "maxpool", new SpecPosition(0, 0, 0, 0), Kernel: k, Stride: s, Padding: p, CeilMode: ceil);

    /// <summary>PyTorch's pooling_output_shape (aten/src/ATen/native/Pool.h), dilation 1.</summary>
    private static int TorchPoolOut(int size, int k, int s, int p, bool ceil)
    {
        int num = size + 2 * p - (k - 1) - 1 + (ceil ? s - 1 : 0);
        int o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
        if (ceil && (o - 1) * s >= size + p) o--;
        return o;
    }

    [Theory]
    [InlineData(13, 3, 2, 0, true, 6)]
    [InlineData(13, 3, 2, 0, false, 6)]
    [InlineData(14, 3, 2, 0, true, 7)]
    [InlineData(14, 3, 2, 0, false, 6)]
    [InlineData(6, 3, 2, 1, true, 4)]
    [InlineData(6, 3, 2, 1, false, 3)]
    [InlineData(55, 3, 2, 0, false, 27)]
    [InlineData(27, 3, 2, 0, false, 13)]
    [InlineData(5, 2, 2, 1, true, 3)]   // the last window would start in the right padding: dropped
    [InlineData(5, 2, 2, 1, false, 3)]
    [InlineData(1, 1, 1, 0, true, 1)]
    [InlineData(3, 3, 3, 1, true, 2)]
    public void PoolOutMatchesPyTorch(int size, int k, int s, int p, bool ceil, int expected)
    {
        Assert.Equal(expected, TorchPoolOut(size, k, s, p, ceil));
        Assert.Equal(expected, Planner.PoolOut(size, Pool(k, s, p, ceil)));
    }

    [Fact]
    public void PoolOutMatchesPyTorchOverASweep()
    {
        for (int size = 1; size <= 40; size++)
        for (int k = 1; k <= 7; k++)
        for (int s = 1; s <= 4; s++)
        for (int p = 0; p <= k / 2; p++)
        {
            if (k > size + 2 * p) continue;
            foreach (bool ceil in new[] { false, true })
                Assert.True(TorchPoolOut(size, k, s, p, ceil) == Planner.PoolOut(size, Pool(k, s, p, ceil)), $"size {size} k{k} s{s} p{p} ceil={ceil}");
        }
    }
}
