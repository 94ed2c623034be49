using System;
using AlexNet.Aot.Tests.Reference;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>
/// After construction and a warm-up, <see cref="Network.Forward"/> allocates nothing on the calling thread, at batch 1
/// and batch N. With one thread that is every allocation of the forward pass; with the default team it covers the
/// calling thread's share and the hand-off to the team.
/// </summary>
public sealed class AllocationTests
{
    [Theory]
    [InlineData("tv-mini", 1, 1)]
    [InlineData("tv-mini", 4, 1)]
    [InlineData("tv-mini", 4, 0)]
    [InlineData("paper-mini", 1, 1)]
    [InlineData("paper-mini", 4, 1)]
    [InlineData("paper-mini", 4, 0)]
    [InlineData("bn-mini", 1, 1)]
    [InlineData("bn-mini", 4, 1)]
    [InlineData("bn-mini", 4, 0)]
    [InlineData("alexnet-fmnist", 1, 1)]
    [InlineData("alexnet-fmnist", 8, 1)]
    [InlineData("alexnet-fmnist", 8, 0)]
    public void Forward_allocates_nothing(string model, int batch, int threads)
    {
        ModelEntry entry = AlexNet.Aot.Models.ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in");
        IWeightSource weights = model == "alexnet-fmnist"
            ? new RandomWeights(entry.Info, 1)
            : SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        using Network net = entry.Create(weights, batch, threads);
        float[] input = RandomWeights.Uniform(batch * entry.Info.InputLength, 2);
        float[] output = new float[batch * entry.Info.Classes];

        // Warm up: JIT every path, both output kinds.
        for (int i = 0; i < 2; i++)
        {
            net.Forward(input, output, batch, logits: true);
            net.Forward(input, output, batch, logits: false);
        }

        // Five calls, logits and probabilities alternating.
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5; i++)
            net.Forward(input, output, batch, logits: i % 2 == 0);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"{model} batch {batch}, threads {net.Threads}: 5 Forward calls allocated {allocated} bytes on the calling thread");
        Assert.All(output, v => Assert.True(float.IsFinite(v)));
    }
}
