using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using AlexNet.Aot.Models;
using AlexNet.Aot.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>ONNX export (an OnnxSharp ModelProto written by Google.Protobuf) run in ONNX Runtime, against our forward pass and PyTorch's logits;
/// and the safetensors export of a model's parameters.</summary>
public sealed class OnnxExportTests : IDisposable
{
    private readonly ITestOutputHelper _out;
    private readonly string _dir;

    public OnnxExportTests(ITestOutputHelper output)
    {
        _out = output;
        _dir = Path.Combine(Path.GetTempPath(), "alexnet-onnx-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void OnnxExport_FixtureRunsInOnnxRuntimeAndMatchesOursAndPyTorch(string model)
    {
        ModelEntry entry = ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in");
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(oracle.TryGet("logits_eval", out LoadedTensor pytorch));

        string path = Path.Combine(_dir, model + ".onnx");
        OnnxExporter.Export(entry.Info, weights, path);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));

        const int batch = 4;
        float[] input = FixtureInputs.Hash(batch * entry.Info.InputLength);
        using Network net = entry.Create(weights, batch);
        var ours = new float[batch * net.Classes];
        net.Forward(input, ours, batch, logits: true);

        using var session = new InferenceSession(path);
        NodeMetadata inMeta = session.InputMetadata["input"];
        Assert.Equal(new[] { -1 }.Concat(entry.Info.InputShape), inMeta.Dimensions);
        Assert.Equal("N", inMeta.SymbolicDimensions[0]);
        Assert.Equal(new[] { -1, entry.Info.Classes }, session.OutputMetadata["logits"].Dimensions);
        Assert.Equal("AlexNet.Aot", session.ModelMetadata.ProducerName);

        float[] ort = Run(session, input, batch, entry.Info);
        Assert.Equal(ours.Length, ort.Length);

        double vsOurs = MaxAbs(ort, ours), vsTorch = MaxAbs(ort, pytorch.Data);
        _out.WriteLine($"{model}: max |ORT - ours| = {vsOurs:g3}, max |ORT - PyTorch| = {vsTorch:g3}");
        Assert.True(vsOurs <= 1e-5, $"{model}: max |ORT - ours| = {vsOurs:g3} > 1e-5");
        Assert.True(vsTorch <= 1e-4, $"{model}: max |ORT - PyTorch| = {vsTorch:g3} > 1e-4");
    }

    [Fact]
    public void OnnxExport_FixedBatchHasBatchDimensionOne()
    {
        ModelEntry entry = ModelCatalog.Find("paper-mini")!;
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path("paper-mini", "paper-mini.safetensors"));
        string path = Path.Combine(_dir, "fixed.onnx");
        OnnxExporter.Export(entry.Info, weights, path, dynamicBatch: false);

        using var session = new InferenceSession(path);
        Assert.Equal(new[] { 1 }.Concat(entry.Info.InputShape), session.InputMetadata["input"].Dimensions);
        float[] input = FixtureInputs.Hash(entry.Info.InputLength);
        float[] ort = Run(session, input, 1, entry.Info);
        using Network net = entry.Create(weights, 1);
        var ours = new float[net.Classes];
        net.Forward(input, ours, 1, logits: true);
        Assert.True(MaxAbs(ort, ours) <= 1e-5, $"max |ORT - ours| = {MaxAbs(ort, ours):g3}");
    }

    [Fact]
    public void OnnxExport_FmnistWithRandomWeightsMatchesOnnxRuntime()
    {
        ModelEntry entry = ModelCatalog.Find("alexnet-fmnist") ?? throw new InvalidOperationException("alexnet-fmnist is not compiled in");
        Assert.Equal(new[] { 1, 28, 28 }, entry.Info.InputShape);
        var weights = RandomWeights(entry.Info, seed: 12345);
        string path = Path.Combine(_dir, "fmnist.onnx");
        OnnxExporter.Export(entry.Info, weights, path);

        const int batch = 3;
        float[] input = FixtureInputs.Hash(batch * entry.Info.InputLength, seed: 4242);
        using Network net = entry.Create(weights, batch);
        var ours = new float[batch * net.Classes];
        net.Forward(input, ours, batch, logits: true);

        using var session = new InferenceSession(path);
        float[] ort = Run(session, input, batch, entry.Info);
        double scale = Math.Max(ours.Max(v => Math.Abs((double)v)), 1e-6);
        double diff = MaxAbs(ort, ours);
        _out.WriteLine($"alexnet-fmnist: logit scale {scale:g3}, max |ORT - ours| = {diff:g3} ({diff / scale:g3} relative)");
        Assert.True(diff <= 1e-5 * scale, $"max |ORT - ours| = {diff:g3} > 1e-5 x logit scale {scale:g3}");
    }

    [Fact]
    public void OnnxExport_MissingTensorThrowsWeightsExceptionNamingTheKey()
    {
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        SafeTensorsFile full = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"));
        var tensors = new Dictionary<string, LoadedTensor>(StringComparer.Ordinal);
        foreach (string key in full.Keys)
            if (key != "features.3.weight" && full.TryGet(key, out LoadedTensor t)) tensors[key] = t;
        // And one mis-shaped tensor: every problem is listed.
        LoadedTensor bias = tensors["classifier.6.bias"];
        tensors["classifier.6.bias"] = new LoadedTensor(bias.Key, new[] { 5, 2 }, bias.DType, bias.Data);

        string path = Path.Combine(_dir, "missing.onnx");
        var e = Assert.Throws<WeightsException>(() => OnnxExporter.Export(entry.Info, new DictionaryWeights("test dictionary", tensors), path));
        _out.WriteLine(e.Message);
        Assert.Contains("features.3.weight", e.Message);
        Assert.Contains("missing", e.Message);
        Assert.Contains("classifier.6.bias", e.Message);
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void OnnxExport_ReplacesAnExistingFile()
    {
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"));
        string path = Path.Combine(_dir, "again.onnx");
        File.WriteAllText(path, "not a model");
        OnnxExporter.Export(entry.Info, weights, path);
        using var session = new InferenceSession(path);
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Theory]
    [InlineData("bn-mini")]
    [InlineData("paper-mini")]
    public void OnnxExport_SafeTensorsRoundTrip(string model)
    {
        ModelEntry entry = ModelCatalog.Find(model)!;
        SafeTensorsFile weights = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        string path = Path.Combine(_dir, model + ".safetensors");
        WeightsExport.ToSafeTensors(entry.Info, weights, path);
        Assert.Single(Directory.GetFiles(_dir));

        SafeTensorsFile back = SafeTensorsFile.Load(path);
        string[] expectedKeys = entry.Info.AllParameters.Where(p => !p.Optional).Select(p => p.Key).ToArray();
        Assert.Equal(expectedKeys, back.Keys);
        Assert.Equal(model, back.Metadata["model"]);
        foreach (ParameterInfo p in entry.Info.AllParameters.Where(p => !p.Optional))
        {
            Assert.True(back.TryGet(p.Key, out LoadedTensor t));
            Assert.True(weights.TryGet(p.Key, out LoadedTensor src));
            Assert.Equal("F32", t.DType);
            Assert.Equal(p.Shape, t.Shape);
            Assert.Equal(src.Data, t.Data);
        }

        // The rewritten file drives the network to the same logits, bit for bit.
        float[] input = FixtureInputs.Hash(2 * entry.Info.InputLength);
        using Network a = entry.Create(weights, 2);
        using Network b = entry.Create(back, 2);
        var la = new float[2 * a.Classes];
        var lb = new float[2 * b.Classes];
        a.Forward(input, la, 2, logits: true);
        b.Forward(input, lb, 2, logits: true);
        Assert.Equal(la, lb);
    }

    [Fact]
    public void OnnxExport_SafeTensorsExportReportsMissingTensors()
    {
        ModelEntry entry = ModelCatalog.Find("bn-mini")!;
        SafeTensorsFile full = SafeTensorsFile.Load(Fixtures.Path("bn-mini", "bn-mini.safetensors"));
        var tensors = new Dictionary<string, LoadedTensor>(StringComparer.Ordinal);
        foreach (string key in full.Keys)
            if (key != "features.5.running_var" && full.TryGet(key, out LoadedTensor t)) tensors[key] = t;
        string path = Path.Combine(_dir, "partial.safetensors");
        var e = Assert.Throws<WeightsException>(() => WeightsExport.ToSafeTensors(entry.Info, new DictionaryWeights("test dictionary", tensors), path));
        Assert.Contains("features.5.running_var", e.Message);
        Assert.False(File.Exists(path));
    }

    private static float[] Run(InferenceSession session, float[] input, int batch, ModelInfo info)
    {
        var tensor = new DenseTensor<float>(input, new[] { batch, info.InputShape[0], info.InputShape[1], info.InputShape[2] });
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("input", tensor) });
        DisposableNamedOnnxValue logits = results.Single(r => r.Name == "logits");
        Tensor<float> t = logits.AsTensor<float>();
        Assert.Equal(new[] { batch, info.Classes }, t.Dimensions.ToArray());
        return t.ToArray();
    }

    private static double MaxAbs(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs((double)a[i] - b[i]));
        return worst;
    }

    /// <summary>Seeded weights for every parameter: uniform with He-like scale (fan-in from the shape), small biases,
    /// positive variances for batch norm.</summary>
    private static DictionaryWeights RandomWeights(ModelInfo model, int seed)
    {
        var rng = new Random(seed);
        var tensors = new Dictionary<string, LoadedTensor>(StringComparer.Ordinal);
        foreach (ParameterInfo p in model.AllParameters)
        {
            if (p.Optional) continue;
            var data = new float[p.Count];
            int fanIn = 1;
            for (int i = 1; i < p.Shape.Length; i++) fanIn *= p.Shape[i];
            double scale = p.Shape.Length > 1 ? Math.Sqrt(6.0 / fanIn) : 0.1;
            bool variance = p.Key.EndsWith("running_var", StringComparison.Ordinal);
            for (int i = 0; i < data.Length; i++)
                data[i] = variance ? (float)(0.5 + rng.NextDouble()) : (float)((rng.NextDouble() * 2 - 1) * scale);
            tensors[p.Key] = new LoadedTensor(p.Key, (int[])p.Shape.Clone(), "F32", data);
        }
        return new DictionaryWeights($"random weights (seed {seed})", tensors);
    }

    private sealed class DictionaryWeights : IWeightSource
    {
        private readonly Dictionary<string, LoadedTensor> _tensors;

        public DictionaryWeights(string origin, Dictionary<string, LoadedTensor> tensors)
        {
            Origin = origin;
            _tensors = tensors;
            Keys = tensors.Keys.ToArray();
        }

        public string Origin { get; }

        public IReadOnlyList<string> Keys { get; }

        public bool TryGet(string key, out LoadedTensor tensor) => _tensors.TryGetValue(key, out tensor!);
    }
}
