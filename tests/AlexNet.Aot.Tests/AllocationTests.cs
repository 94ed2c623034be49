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

        // Warm up to the steady state: JIT every path and both output kinds, past tiered compilation's call counts
        // (30 calls) and on-stack replacement, then give the background tier-1 compiles time to be installed.
        for (int i = 0; i < 20; i++)
        {
            net.Forward(input, output, batch, logits: true);
            net.Forward(input, output, batch, logits: false);
        }
        System.Threading.Thread.Sleep(300);

        // Five calls, logits and probabilities alternating. A one-off runtime event (a late tier-up) may still land
        // in one round, so up to three rounds are measured: steady-state allocation would show in all of them.
        var rounds = new System.Collections.Generic.List<long>();
        for (int round = 0; round < 3; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread(), workers = net.WorkerAllocatedBytes;
            for (int i = 0; i < 5; i++)
                net.Forward(input, output, batch, logits: i % 2 == 0);
            rounds.Add(GC.GetAllocatedBytesForCurrentThread() - before + net.WorkerAllocatedBytes - workers);
            if (rounds[^1] == 0) break;
        }
        Assert.True(rounds[^1] == 0, $"{model} batch {batch}, threads {net.Threads}: 5 Forward calls allocated {string.Join(", then ", rounds)} bytes on the calling thread and the team's workers");
        Assert.All(output, v => Assert.True(float.IsFinite(v)));
    }
}
