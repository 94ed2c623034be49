using System;
using System.IO;
using System.Linq;
using AlexNet.Aot.Models;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>
/// Memory-mapped safetensors (issue 6): large float32 tensors are read in place, give the same logits as copied ones,
/// survive the file being replaced by rename, and the forward pass over them allocates nothing.
/// </summary>
public sealed class MappedWeightsTests : IDisposable
{
    private readonly ITestOutputHelper _out;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "alexnet-mapped-" + Guid.NewGuid().ToString("N"));

    public MappedWeightsTests(ITestOutputHelper output)
    {
        _out = output;
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void Large_float32_tensors_are_mapped_and_give_the_same_logits_as_copies(string model)
    {
        string path = Fixtures.Path(model, model + ".safetensors");
        SafeTensorsFile mapped = SafeTensorsFile.Load(path, memoryMap: true);
        SafeTensorsFile copied = SafeTensorsFile.Load(path, memoryMap: false);
        int count = 0;
        foreach (string key in mapped.Keys)
        {
            Assert.True(mapped.TryGet(key, out LoadedTensor m));
            Assert.True(copied.TryGet(key, out LoadedTensor c));
            Assert.False(c.IsMapped);
            bool large = m.DType == "F32" && m.Values.Length * 4L >= SafeTensorsFile.MapThresholdBytes;
            Assert.Equal(large, m.IsMapped);
            if (m.IsMapped) count++;
            Assert.True(m.Values.Span.SequenceEqual(c.Values.Span), key);
            Assert.Equal(c.Data, m.Data);
        }
        _out.WriteLine($"{model}: {count} of {mapped.Keys.Count} tensors mapped");
        Assert.True(count > 0, "the fixture has tensors above the threshold");

        ModelEntry entry = ModelCatalog.Find(model)!;
        float[] input = FixtureInputs.Hash(2 * entry.Info.InputLength);
        Assert.Equal(Logits(entry, copied, input), Logits(entry, mapped, input));
    }

    [Fact]
    public void A_mapped_file_replaced_by_rename_keeps_its_values_in_a_live_session()
    {
        string path = Path.Combine(_dir, "w.safetensors");
        File.Copy(Fixtures.Path("tv-mini", "tv-mini.safetensors"), path);
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        float[] input = FixtureInputs.Hash(2 * entry.Info.InputLength);
        float[] before;
        using (Network net = entry.Create(SafeTensorsFile.Load(path, memoryMap: true), 2))
        {
            before = Run(net, input);
            // Every writer of this project replaces files by rename; the mapping keeps the old inode.
            string other = Path.Combine(_dir, "other.safetensors");
            File.Copy(Fixtures.Path("tv-mini", "tv-mini.f16.safetensors"), other);
            File.Move(other, path, overwrite: true);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.Equal(before, Run(net, input));
        }
    }

    [Fact]
    public void Forward_over_mapped_weights_allocates_nothing()
    {
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"), memoryMap: true);
        Assert.Contains(weights.Keys, k => weights.TryGet(k, out LoadedTensor t) && t.IsMapped);
        using Network net = entry.Create(weights, 1, 1);
        float[] input = FixtureInputs.Hash(entry.Info.InputLength);
        var output = new float[entry.Info.Classes];
        for (int i = 0; i < 40; i++) net.Forward(input, output, 1);
        System.Threading.Thread.Sleep(300);
        long least = long.MaxValue;
        for (int round = 0; round < 3 && least > 0; round++)
        {
            long start = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5; i++) net.Forward(input, output, 1);
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - start);
        }
        Assert.Equal(0, least);
    }

    [Fact]
    public void A_checkpoint_is_checked_against_its_checksum_when_mapped_too()
    {
        // A training checkpoint written by the trainer, then one byte of a large (mapped) tensor flipped.
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        string path = Path.Combine(_dir, "ckpt.safetensors");
        using (var trainer = new AlexNet.Aot.Training.Trainer(entry.Info, SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors")),
                   new AlexNet.Aot.Training.TrainerOptions { MaxBatch = 1, Threads = 1 }))
        {
            AlexNet.Aot.Training.TrainingCheckpoint.Save(path, trainer, new AlexNet.Aot.Training.TrainingState { Epoch = 1, LearningRate = 0.1, Seed = 1 });
        }
        SafeTensorsFile good = SafeTensorsFile.Load(path, memoryMap: true);
        Assert.Contains(good.Keys, k => good.TryGet(k, out LoadedTensor t) && t.IsMapped);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[^8] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<WeightsException>(() => SafeTensorsFile.Load(path, memoryMap: true));
        _out.WriteLine(e.Message);
        Assert.StartsWith(path, e.Message);
    }

    private static float[] Logits(ModelEntry entry, IWeightSource weights, float[] input)
    {
        using Network net = entry.Create(weights, 2);
        return Run(net, input);
    }

    private static float[] Run(Network net, float[] input)
    {
        var logits = new float[2 * net.Classes];
        net.Forward(input, logits, 2, logits: true);
        return logits;
    }
}
