using System;
using System.Threading;
using System.Threading.Tasks;
using AlexNet.Aot.Models;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>Sessions on many threads sharing one set of weights; one session used from two threads at once.</summary>
public class ConcurrencyTests
{
    [Fact]
    public void Eight_threads_with_their_own_sessions_sharing_one_weights_source_match_one_thread()
    {
        ModelEntry entry = ModelCatalog.Find("paper-mini")!;
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path("paper-mini", "paper-mini.safetensors"));
        float[] input = FixtureInputs.Hash(2 * entry.Info.InputLength);
        var expected = new float[2 * entry.Info.Classes];
        using (Network single = entry.Create(weights, 2, 1)) single.Forward(input, expected, 2, logits: true);

        var results = new float[8][];
        using var start = new Barrier(8);
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, t =>
        {
            using Network net = entry.Create(weights, 2, 1 + t % 2); // one and two threads per session
            var output = new float[expected.Length];
            start.SignalAndWait();
            for (int i = 0; i < 5; i++) net.Forward(input, output, 2, logits: true);
            results[t] = output;
        });
        foreach (float[] r in results) Assert.Equal(expected, r);
    }

    [Fact]
    public void A_session_used_from_two_threads_at_once_is_refused_clearly()
    {
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        using Network net = entry.Create(new GeneratedWeights(entry.Info), 1, 1);
        float[] input = FixtureInputs.Hash(entry.Info.InputLength);
        int refused = 0, ran = 0;
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            var output = new float[net.Classes];
            for (int i = 0; i < 40; i++)
            {
                try
                {
                    net.Forward(input, output, 1);
                    Interlocked.Increment(ref ran);
                }
                catch (InvalidOperationException e)
                {
                    Assert.Contains("already running a batch on another thread", e.Message);
                    Interlocked.Increment(ref refused);
                }
            }
        });
        Assert.Equal(160, ran + refused);
        Assert.True(ran > 0);
        // The refusals are timing-dependent on 2 cores; that none corrupted the session is what must hold:
        var after = new float[net.Classes];
        var again = new float[net.Classes];
        net.Forward(input, after, 1);
        net.Forward(input, again, 1);
        Assert.Equal(after, again);
    }

    [Fact]
    public void Api_edges_are_clear_exceptions()
    {
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        Network net = entry.Create(new GeneratedWeights(entry.Info), 2, 1);
        float[] input = new float[entry.Info.InputLength];
        var output = new float[2 * net.Classes];
        Assert.Throws<ArgumentOutOfRangeException>(() => net.Forward(input, output, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => net.Forward(input, output, 3));
        Assert.Throws<ArgumentException>(() => net.Forward(input.AsSpan(1), output, 1));
        Assert.Throws<ArgumentException>(() => net.Forward(input, output.AsSpan(0, net.Classes - 1), 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => entry.Create(new GeneratedWeights(entry.Info), 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => entry.Create(new GeneratedWeights(entry.Info), 1, -1));
        // NaN and infinite inputs are refused, saying where they are; with CheckInputs off they are computed through.
        int hw = entry.Info.InputShape[1] * entry.Info.InputShape[2];
        input[hw + 5] = float.NaN;
        var nan = Assert.Throws<ArgumentException>(() => net.Forward(input, output, 1));
        Assert.Contains($"input holds NaN at float {hw + 5} (image 0, channel 1, row 0, column 5)", nan.Message);
        input[hw + 5] = 0;
        input[^1] = float.NegativeInfinity;
        var inf = Assert.Throws<ArgumentException>(() => net.Forward(input, output, 1));
        Assert.Contains("input holds -Infinity at float", inf.Message);
        using (Network unchecked_ = entry.Create(new GeneratedWeights(entry.Info), new NetworkOptions { MaxBatch = 1, Threads = 1, CheckInputs = false }))
        {
            input[^1] = float.NaN;
            unchecked_.Forward(input, output.AsSpan(0, unchecked_.Classes), 1, logits: true);
            Assert.Contains(output.AsSpan(0, net.Classes).ToArray(), float.IsNaN);
        }
        input[^1] = 0;
        net.Forward(input, output, 1); // finite again: runs
        net.Dispose();
        Assert.Throws<ObjectDisposedException>(() => net.Forward(input, output, 1));
    }
}
