using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using AlexNet.Aot.Imaging;
using AlexNet.Aot.Onnx;
using AlexNet.Aot.Tests.Reference;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>
/// The ONNX model zoo's BVLC AlexNet (Caffe -> Caffe2 -> ONNX): graphs of its shape written here (<see cref="ZooGraph"/>:
/// the zoo's names, attributes and Caffe2's explicit end padding for Caffe's ceil-mode pooling) bind to the spec, give
/// the logits of the same weights from safetensors and of ONNX Runtime running the graph, and a graph with one wrong
/// attribute is refused naming the node; alexnet-bvlc classifies a photo with Caffe's preprocessing, chosen by its spec.
/// </summary>
public sealed class BvlcZooTests : IDisposable
{
    private readonly ITestOutputHelper _out;
    private readonly string _dir = Directory.CreateTempSubdirectory("alexnet-bvlc-").FullName;

    public BvlcZooTests(ITestOutputHelper output) => _out = output;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static ModelInfo Mini => (Specs.ModelCatalog.Find("bvlc-mini") ?? throw new InvalidOperationException("bvlc-mini is not compiled in")).Info;

    private static string Photo => Path.Combine(AppContext.BaseDirectory, "assets", "chelsea.png");

    /// <summary>Caffe-scale inputs (0-255 minus the mean: about ±128), where LRN's denominator is far from 1.</summary>
    private static float[] Input(ModelInfo model, int batch, ulong seed) => RandomWeights.Uniform(batch * model.InputLength, seed, -128, 128);

    public static IEnumerable<object[]> Variants() => new[]
    {
        new object[] { "caffe2-pads" },
        new object[] { "one-end-pad" },
        new object[] { "ceil-mode" },
        new object[] { "fc7-transB-0" },
    };

    private static ZooOptions Options(string variant) => variant switch
    {
        "caffe2-pads" => new ZooOptions { Pools = ZooPools.Caffe2, LogitsOutput = true },
        "one-end-pad" => new ZooOptions { Pools = ZooPools.OneEndPad, LogitsOutput = true },
        "ceil-mode" => new ZooOptions { Pools = ZooPools.CeilMode, LogitsOutput = true },
        "fc7-transB-0" => new ZooOptions { TransposedDense = new[] { "fc7" }, LogitsOutput = true },
        _ => throw new ArgumentException(variant),
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void A_zoo_style_graph_binds_and_matches_safetensors_and_OnnxRuntime(string variant)
    {
        ModelInfo info = Mini;
        ModelEntry entry = Specs.ModelCatalog.Find(info.Name)!;
        var weights = new RandomWeights(info, 7);
        string path = Path.Combine(_dir, variant + ".onnx");
        ZooGraph.Write(path, info, weights, Options(variant));

        // Bound by graph position under the spec's keys, whatever the file calls them, and found by content.
        var onnx = (OnnxModelFile)WeightsFile.Load(path, info);
        Assert.Equal(new[] { "data_0" }, onnx.GraphInputs);
        Assert.Equal("onnx-caffe2", onnx.Producer);
        foreach (ParameterInfo p in info.AllParameters)
        {
            Assert.True(weights.TryGet(p.Key, out LoadedTensor want));
            Assert.True(onnx.TryGet(p.Key, out LoadedTensor got), p.Key);
            Assert.Equal(want.Shape, got.Shape);
            Assert.Equal(want.Data, got.Data);
        }
        Assert.Contains("conv1_w_0", OnnxModelFile.Load(path).Keys);

        // The same weights through safetensors: the same logits, bit for bit.
        string st = Path.Combine(_dir, variant + ".safetensors");
        WeightsExport.ToSafeTensors(info, weights, st);
        const int batch = 2;
        float[] input = Input(info, batch, 11);
        float[] fromOnnx = Logits(entry, onnx, input, batch), fromSt = Logits(entry, SafeTensorsFile.Load(st), input, batch);
        Assert.Equal(fromSt, fromOnnx);

        // ONNX Runtime running the graph (batch 1, as the zoo's data_0): logits and probabilities.
        (float[] ortLogits, float[] ortProbs) = RunOrt(path, info, input, batch);
        double scale = Math.Max(1, fromOnnx.Max(v => Math.Abs((double)v)));
        double diff = MaxAbs(ortLogits, fromOnnx);
        _out.WriteLine($"{variant}: logit scale {scale:g3}, max |ORT - ours| = {diff:g3} ({diff / scale:g3} relative)");
        Assert.True(diff <= 1e-4 * scale, $"{variant}: max |ORT - ours| = {diff:g3} > 1e-4 x {scale:g3}");
        var probs = new float[batch * info.Classes];
        using (Network net = entry.Create(onnx, batch))
            net.Forward(input, probs, batch);
        Assert.True(MaxAbs(ortProbs, probs) <= 1e-5, $"{variant}: max |ORT - ours| probabilities = {MaxAbs(ortProbs, probs):g3}");
    }

    /// <summary>The comparison with ONNX Runtime checks LRN only if LRN changes the result: at Caffe's input scale the same
    /// graph without it (alpha 1e-20: ONNX Runtime refuses 0) gives logits far from these.</summary>
    [Fact]
    public void At_caffe_scale_the_lrn_changes_the_logits()
    {
        ModelInfo info = Mini;
        var weights = new RandomWeights(info, 7);
        string with = Path.Combine(_dir, "lrn.onnx"), without = Path.Combine(_dir, "no-lrn.onnx");
        ZooGraph.Write(with, info, weights, new ZooOptions { LogitsOutput = true });
        ZooGraph.Write(without, info, weights, new ZooOptions { LogitsOutput = true, Edit = n => { if (n.OpType == "LRN") n.Set("alpha", 1e-20f); } });
        float[] input = Input(info, 2, 11);
        float[] a = RunOrt(with, info, input, 2).Logits, b = RunOrt(without, info, input, 2).Logits;
        double scale = Math.Max(1, a.Max(v => Math.Abs((double)v)));
        _out.WriteLine($"max |logits with LRN - without| = {MaxAbs(a, b):g3}, logit scale {scale:g3}");
        Assert.True(MaxAbs(a, b) > 0.05 * scale, $"LRN changes the logits by only {MaxAbs(a, b):g3} (scale {scale:g3})");
    }

    public static IEnumerable<object[]> WrongAttributes() => new[]
    {
        new object[] { "conv2 group 1", "node conv2_1 (Conv) has group 1, the spec's conv2 has groups 2" },
        new object[] { "conv3 pads 0", "node conv3_1 (Conv) has pads [0, 0, 0, 0], the spec's conv3 has padding 1" },
        new object[] { "norm1 alpha 1e-3", "node norm1_1 (LRN) has alpha 0.001, the spec's conv1 has LRN alpha 0.0001" },
        new object[] { "norm2 size 3", "node norm2_1 (LRN) has size 3, the spec's conv2 has LRN size 5" },
        new object[] { "fc6 transB 0", "node fc6_1 (Gemm) has 16 outputs (weight [32, 16], transB=0), the spec's fc6 has 32" },
        new object[] { "fc8 alpha 2", "node fc8_1 (Gemm) has alpha 2; only 1 is supported" },
        new object[] { "pool1 no end pad", "node pool1_1 (MaxPool) has pads [0, 0, 0, 0] and ceil_mode 0, so it pools 14x14 to 6x6; the spec's conv1 has padding 0 and ceil mode, which pools it to 7x7" },
        new object[] { "pool1 ceil mode off", "node pool1_1 (MaxPool) has pads [0, 0, 0, 0] and ceil_mode 0, so it pools 14x14 to 6x6" },
        new object[] { "pool2 ceil mode and end pads", "node pool2_1 (MaxPool) has pads [0, 0, 2, 2] and ceil_mode 1, so it pools 7x7 to 4x4" },
        new object[] { "pool2 begin pad", "node pool2_1 (MaxPool) has pads [1, 1, 1, 1], the spec's conv2 has padding 0 and ceil mode (the begin pads must equal it)" },
    };

    [Theory]
    [MemberData(nameof(WrongAttributes))]
    public void A_zoo_style_graph_with_a_wrong_attribute_is_refused_naming_the_node(string change, string expected)
    {
        ModelInfo info = Mini;
        var weights = new RandomWeights(info, 7);
        Action<ZooNode> edit = change switch
        {
            "conv2 group 1" => n => { if (n.Outputs[0] == "conv2_1") n.Set("group", 1L); },
            "conv3 pads 0" => n => { if (n.Outputs[0] == "conv3_1") n.Set("pads", new long[] { 0, 0, 0, 0 }); },
            "norm1 alpha 1e-3" => n => { if (n.Outputs[0] == "norm1_1") n.Set("alpha", 1e-3f); },
            "norm2 size 3" => n => { if (n.Outputs[0] == "norm2_1") n.Set("size", 3L); },
            "fc6 transB 0" => n => { if (n.Outputs[0] == "fc6_1") n.Set("transB", 0L); },
            "fc8 alpha 2" => n => { if (n.Outputs[0] == "fc8_1") n.Set("alpha", 2f); },
            "pool1 no end pad" => n => { if (n.Outputs[0] == "pool1_1") n.Set("pads", new long[] { 0, 0, 0, 0 }); },
            "pool1 ceil mode off" => n => { if (n.Outputs[0] == "pool1_1") n.Set("ceil_mode", 0L); },
            "pool2 ceil mode and end pads" => n => { if (n.Outputs[0] == "pool2_1") n.Set("pads", new long[] { 0, 0, 2, 2 }); },
            "pool2 begin pad" => n => { if (n.Outputs[0] == "pool2_1") n.Set("pads", new long[] { 1, 1, 1, 1 }); },
            _ => throw new ArgumentException(change),
        };
        var options = new ZooOptions { Pools = change.Contains("ceil mode", StringComparison.Ordinal) ? ZooPools.CeilMode : ZooPools.Caffe2, Edit = edit };
        string path = Path.Combine(_dir, change.Replace(' ', '-') + ".onnx");
        ZooGraph.Write(path, info, weights, options);
        var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(path, info));
        _out.WriteLine(e.Message);
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void The_bvlc_specs_choose_caffe_preprocessing()
    {
        ModelInfo full = Models.ModelCatalog.Find("alexnet-bvlc")!.Info;
        Assert.Equal("caffe", full.Preprocess);
        Assert.Equal(PreprocessMode.Caffe, Preprocess.DefaultFor(full));
        Assert.Equal(PreprocessMode.Caffe, Preprocess.DefaultFor(Mini));
        Assert.Empty(full.Mean);
        Assert.Equal(new[] { 3, 224, 224 }, full.InputShape);
        Assert.Equal(1000, full.Classes);
        Assert.Equal(new[] { "conv1.weight", "conv1.bias" }, full.Layers[0].Parameters.Select(p => p.Key));
        // The other shipped models keep their default.
        Assert.Equal("", Models.ModelCatalog.Find("alexnet-2012")!.Info.Preprocess);
        Assert.Equal(PreprocessMode.Torchvision, Preprocess.DefaultFor(Models.ModelCatalog.Find("alexnet-2012")!.Info));
        Assert.Equal(PreprocessMode.None, Preprocess.DefaultFor(Models.ModelCatalog.Find("tv-mini")!.Info with { Mean = Array.Empty<float>() }));

        // alexnet info says so.
        CliResult r = Cli.Run("info", "--model", "alexnet-bvlc", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using (JsonDocument doc = JsonDocument.Parse(r.Stdout))
            Assert.Equal("caffe", doc.RootElement.GetProperty("models")[0].GetProperty("preprocess").GetString());
        r = Cli.Run("info", "--model", "alexnet-bvlc");
        Assert.Contains("photos preprocessed caffe (the spec's preprocess line)", r.Stdout);
    }

    /// <summary>
    /// Full size: a zoo-style alexnet-bvlc file (random weights, 244 MB) binds, gives ONNX Runtime's probabilities on
    /// the test photo prepared Caffe's way, and <c>alexnet classify</c> prints five ImageNet classes for it, with Caffe's
    /// preprocessing by default (the same output as with <c>--preprocess caffe</c>).
    /// </summary>
    [Fact]
    public void The_full_size_zoo_graph_classifies_a_photo_with_caffe_preprocessing()
    {
        ModelEntry entry = Models.ModelCatalog.Find("alexnet-bvlc")!;
        ModelInfo info = entry.Info;
        string path = Path.Combine(_dir, "bvlc-alexnet.onnx");
        ZooGraph.Write(path, info, new RandomWeights(info, 5), new ZooOptions { LogitsOutput = true });
        Assert.True(new FileInfo(path).Length > 240_000_000, "a full-size graph");

        float[] input = Preprocess.Prepare(ImageLoader.Load(Photo, 3), info, Preprocess.DefaultFor(info));
        var ours = new float[info.Classes];
        var logits = new float[info.Classes];
        using (Network net = entry.Create(WeightsFile.Load(path, info), 1))
        {
            net.Forward(input, ours, 1);
            net.Forward(input, logits, 1, logits: true);
        }
        (float[] ortLogits, float[] ort) = RunOrt(path, info, input, 1);
        double scale = Math.Max(1, logits.Max(v => Math.Abs((double)v)));
        double diff = MaxAbs(ortLogits, logits);
        _out.WriteLine($"alexnet-bvlc: logit scale {scale:g3}, max |ORT - ours| = {diff:g3} ({diff / scale:g3} relative), probabilities {MaxAbs(ort, ours):g3}; top class {Array.IndexOf(ours, ours.Max())}");
        Assert.True(diff <= 1e-4 * scale, $"max |ORT - ours| logits = {diff:g3} > 1e-4 x {scale:g3}");
        Assert.True(MaxAbs(ort, ours) <= 1e-5, $"max |ORT - ours| probabilities = {MaxAbs(ort, ours):g3}");

        CliResult r = Cli.Run("classify", "--model", "alexnet-bvlc", "--weights", path, "--json", Photo);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using JsonDocument doc = JsonDocument.Parse(r.Stdout);
        JsonElement top = doc.RootElement[0].GetProperty("top");
        Assert.Equal(5, top.GetArrayLength());
        foreach (JsonElement t in top.EnumerateArray())
            Assert.Equal(ImageNetLabels.Name(t.GetProperty("index").GetInt32()), t.GetProperty("label").GetString());
        int best = top[0].GetProperty("index").GetInt32();
        Assert.Equal(Array.IndexOf(ours, ours.Max()), best);
        Assert.True(Math.Abs(top[0].GetProperty("probability").GetDouble() - ours[best]) <= 1e-4);

        CliResult caffe = Cli.Run("classify", "--model", "alexnet-bvlc", "--weights", path, "--json", "--preprocess", "caffe", Photo);
        Assert.True(caffe.ExitCode == 0, caffe.Stderr);
        Assert.Equal(r.Stdout, caffe.Stdout);
    }

    // ---------------------------------------------------------------- helpers

    private static float[] Logits(ModelEntry entry, IWeightSource weights, float[] input, int batch)
    {
        var logits = new float[batch * entry.Info.Classes];
        using Network net = entry.Create(weights, batch);
        net.Forward(input, logits, batch, logits: true);
        return logits;
    }

    /// <summary>Runs the graph in ONNX Runtime one image at a time (data_0 is [1, C, H, W]): the logits (the last Gemm's
    /// output, when the graph exposes it) and prob_1.</summary>
    private static (float[] Logits, float[] Probs) RunOrt(string path, ModelInfo info, float[] input, int batch)
    {
        // The zoo lists its initializers as graph inputs too (IR version 4): ONNX Runtime warns about each one.
        using var options = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        using var session = new InferenceSession(path, options);
        int n = info.InputLength, classes = info.Classes;
        var logits = new float[batch * classes];
        var probs = new float[batch * classes];
        for (int b = 0; b < batch; b++)
        {
            var tensor = new DenseTensor<float>(input.AsSpan(b * n, n).ToArray(), new[] { 1, info.InputShape[0], info.InputShape[1], info.InputShape[2] });
            using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = session.Run(new[] { NamedOnnxValue.CreateFromTensor("data_0", tensor) });
            float[] p = results.Single(r => r.Name == "prob_1").AsTensor<float>().ToArray();
            p.CopyTo(probs, b * classes);
            DisposableNamedOnnxValue? l = results.FirstOrDefault(r => r.Name != "prob_1");
            if (l is not null) l.AsTensor<float>().ToArray().CopyTo(logits, b * classes);
        }
        return (logits, probs);
    }

    private static double MaxAbs(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs((double)a[i] - b[i]));
        return worst;
    }
}
