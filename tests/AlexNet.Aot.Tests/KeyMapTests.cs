using System;
using System.Collections.Generic;
using System.IO;
using AlexNet.Aot.Models;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>Checkpoints named otherwise bind through a mapping file; a mismatch lists what was expected and found.</summary>
public sealed class KeyMapTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("alexnet-keymap-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>tv-mini's weights saved under Caffe-like names (conv1.weight, fc6.bias, ...).</summary>
    private string RenamedCheckpoint(out Dictionary<string, string> renames)
    {
        renames = new Dictionary<string, string>
        {
            ["features.0"] = "conv1", ["features.3"] = "conv2", ["features.6"] = "conv3", ["features.8"] = "conv4",
            ["features.10"] = "conv5", ["classifier.1"] = "fc6", ["classifier.4"] = "fc7", ["classifier.6"] = "fc8",
        };
        SafeTensorsFile source = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"));
        var tensors = new List<(string, int[], float[])>();
        foreach (string key in source.Keys)
        {
            source.TryGet(key, out LoadedTensor t);
            string prefix = key.Substring(0, key.LastIndexOf('.'));
            tensors.Add((renames[prefix] + key.Substring(prefix.Length), t.Shape, t.Data));
        }
        string path = Path.Combine(_dir, "renamed.safetensors");
        SafeTensorsFile.Write(path, tensors);
        return path;
    }

    [Fact]
    public void AMappingFileBindsACheckpointNamedOtherwise()
    {
        string weights = RenamedCheckpoint(out var renames);
        var lines = new List<string> { "# tv-mini's torchvision names = the names in this checkpoint" };
        foreach (var kv in renames) lines.Add($"{kv.Key} = {kv.Value}");
        string map = Path.Combine(_dir, "tv-mini.map");
        File.WriteAllLines(map, lines);

        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        IWeightSource raw = WeightsFile.Load(weights);
        var unmapped = Assert.Throws<WeightsException>(() => entry.Create(raw, 1));
        Assert.Contains("missing features.0.weight: expected shape [16, 3, 11, 11]", unmapped.Message);
        Assert.Contains("found but not used: ", unmapped.Message);
        Assert.Contains("conv1.weight [16, 3, 11, 11]", unmapped.Message);

        using Network net = entry.Create(KeyMap.Load(map).Apply(raw, entry.Info), 4);
        float[] input = FixtureInputs.Hash(4 * entry.Info.InputLength);
        var logits = new float[40];
        net.Forward(input, logits, 4, logits: true);
        SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.oracle.safetensors")).TryGet("logits_eval", out LoadedTensor expected);
        for (int i = 0; i < 40; i++) Assert.True(Math.Abs(logits[i] - expected.Data[i]) <= 1e-4, $"logit {i}");
    }

    [Fact]
    public void TheLongestRuleWinsAndWholeSegmentsOnly()
    {
        KeyMap map = KeyMap.Parse(new[] { "features = f", "features.1 = bn1  # a longer prefix", "" }, "m");
        Assert.Equal("bn1.weight", map.FileKey("features.1.weight"));
        Assert.Equal("f.10.weight", map.FileKey("features.10.weight"));
        Assert.Equal("classifier.1.bias", map.FileKey("classifier.1.bias"));
        Assert.Equal("featuresX.weight", map.FileKey("featuresX.weight"));
    }

    [Theory]
    [InlineData("features.0", "m.map:2: expected 'MODEL_PREFIX = FILE_PREFIX'")]
    [InlineData("= conv1", "m.map:2: expected")]
    [InlineData("a b = c", "m.map:2: expected")]
    [InlineData("features.0 = conv1", "m.map:2: 'features.0' is mapped twice")]
    public void MalformedMapsNameTheFileAndLine(string second, string message)
    {
        var e = Assert.Throws<WeightsException>(() => KeyMap.Parse(new[] { "features.0 = x", second }, "m.map"));
        Assert.StartsWith(message, e.Message);
    }
}
