using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using AlexNet.Aot.Models;
using AlexNet.Aot.Onnx;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>ONNX import (Google.Protobuf via OnnxSharp): the PyTorch fixtures' ONNX files bound to our models by graph
/// position, checked against the spec, giving PyTorch's logits; round trips through our exporter; hostile files.</summary>
public sealed class OnnxImportTests : IDisposable
{
    private readonly ITestOutputHelper _out;
    private readonly string _dir;

    public OnnxImportTests(ITestOutputHelper output)
    {
        _out = output;
        _dir = Path.Combine(Path.GetTempPath(), "alexnet-onnx-import-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static ModelInfo Info(string model) => ModelCatalog.Find(model)!.Info;

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void OnnxImport_FixtureLogitsMatchPyTorch(string model)
    {
        ModelEntry entry = ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in");
        IWeightSource weights = OnnxModelFile.Load(Fixtures.Path(model, model + ".onnx"), entry.Info);
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(oracle.TryGet("logits_eval", out LoadedTensor expected));

        // Every non-optional parameter of the model is there, under the model's keys.
        foreach (ParameterInfo p in entry.Info.AllParameters.Where(p => !p.Optional))
        {
            Assert.True(weights.TryGet(p.Key, out LoadedTensor t), $"{model}: {p.Key} missing");
            Assert.Equal(p.Shape, t.Shape);
        }
        Assert.Equal(model == "bn-mini", ((OnnxModelFile)weights).BatchNormFolded);

        const int batch = 4;
        float[] input = FixtureInputs.Hash(batch * entry.Info.InputLength);
        using Network net = entry.Create(weights, batch);
        var logits = new float[batch * net.Classes];
        net.Forward(input, logits, batch, logits: true);
        double worst = 0;
        for (int i = 0; i < logits.Length; i++) worst = Math.Max(worst, Math.Abs(logits[i] - expected.Data[i]));
        _out.WriteLine($"{model}.onnx: largest |ours - PyTorch| = {worst:g3}");
        Assert.True(worst <= 1e-4, $"{model}.onnx: largest |ours - PyTorch| = {worst:g3}");
    }

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    public void OnnxImport_TensorsEqualTheSafetensorsFile(string model)
    {
        ModelInfo info = Info(model);
        IWeightSource onnx = OnnxModelFile.Load(Fixtures.Path(model, model + ".onnx"), info);
        SafeTensorsFile st = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        int n = 0;
        foreach (ParameterInfo p in info.AllParameters.Where(p => !p.Optional))
        {
            Assert.True(st.TryGet(p.Key, out LoadedTensor want));
            Assert.True(onnx.TryGet(p.Key, out LoadedTensor got), p.Key);
            Assert.Equal(want.Shape, got.Shape);
            Assert.Equal(want.Data, got.Data);
            n++;
        }
        Assert.Equal(n, onnx.Keys.Count);
    }

    [Fact]
    public void OnnxImport_WithoutAModelYieldsTheInitializersUnderTheirOwnNames()
    {
        IWeightSource tv = OnnxModelFile.Load(Fixtures.Path("tv-mini", "tv-mini.onnx"));
        SafeTensorsFile st = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"));
        Assert.Equal(st.Keys.OrderBy(k => k, StringComparer.Ordinal), tv.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (string k in st.Keys)
        {
            Assert.True(tv.TryGet(k, out LoadedTensor t));
            Assert.True(st.TryGet(k, out LoadedTensor s));
            Assert.Equal("F32", t.DType);
            Assert.Equal(s.Data, t.Data);
        }
        Assert.Equal(new[] { "input" }, ((OnnxModelFile)tv).GraphInputs);

        // bn-mini's folded convolutions keep the exporter's names.
        IWeightSource bn = OnnxModelFile.Load(Fixtures.Path("bn-mini", "bn-mini.onnx"));
        Assert.Contains(bn.Keys, k => k.StartsWith("onnx::Conv_", StringComparison.Ordinal));
        Assert.Contains("classifier.6.bias", bn.Keys);
    }

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void OnnxImport_RoundTripThroughOurExporterGivesTheSameTensors(string model)
    {
        ModelInfo info = Info(model);
        SafeTensorsFile st = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        string path = Path.Combine(_dir, model + ".onnx");
        OnnxExporter.Export(info, st, path);

        var back = (OnnxModelFile)OnnxModelFile.Load(path, info);
        Assert.False(back.BatchNormFolded);
        IWeightSource plain = OnnxModelFile.Load(path);
        foreach (ParameterInfo p in info.AllParameters.Where(p => !p.Optional))
        {
            Assert.True(st.TryGet(p.Key, out LoadedTensor want));
            Assert.True(back.TryGet(p.Key, out LoadedTensor got), p.Key);
            Assert.Equal(want.Shape, got.Shape);
            Assert.Equal(want.Data, got.Data);
            Assert.True(plain.TryGet(p.Key, out LoadedTensor named), p.Key);
            Assert.Equal(want.Data, named.Data);
        }
    }

    [Fact]
    public void OnnxImport_AGraphThatDoesNotMatchTheSpecNamesTheNodeAndWhatDiffers()
    {
        string tv = Fixtures.Path("tv-mini", "tv-mini.onnx");
        var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(tv, Info("paper-mini")));
        _out.WriteLine(e.Message);
        Assert.Contains(tv, e.Message);
        Assert.Contains("/features/features.0/Conv (Conv)", e.Message);
        Assert.Contains("pads [2, 2, 2, 2]", e.Message);
        Assert.Contains("conv1 has padding 0", e.Message);

        string paper = Fixtures.Path("paper-mini", "paper-mini.onnx");
        e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(paper, Info("tv-mini")));
        _out.WriteLine(e.Message);
        Assert.Contains("pads [0, 0, 0, 0]", e.Message);
        Assert.Contains("conv1 has padding 2", e.Message);
    }

    [Fact]
    public void OnnxImport_AMissingComputeNodeListsExpectedAndFound()
    {
        // The first MaxPool's op_type (NodeProto field 4) becomes Dropout: the graph lacks conv1's max pool.
        byte[] bytes = File.ReadAllBytes(Fixtures.Path("tv-mini", "tv-mini.onnx"));
        int at = IndexOf(bytes, Encoding.ASCII.GetBytes("\"\aMaxPool"));
        Assert.True(at >= 0);
        Encoding.ASCII.GetBytes("Dropout").CopyTo(bytes, at + 2);
        string path = Write("missing-pool.onnx", bytes);
        var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(path, Info("tv-mini")));
        _out.WriteLine(e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("/features/features.3/Conv (Conv) is where the spec's conv1 has MaxPool", e.Message);
        Assert.Contains("expected 12 compute operations [conv1:Conv, conv1:MaxPool,", e.Message);
        Assert.Contains("found 11 compute nodes [Conv /features/features.0/Conv, Conv /features/features.3/Conv,", e.Message);

        // paper-mini's graph (no BatchNormalization: taken as folded) against bn-mini fails at the first differing attribute.
        e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(Fixtures.Path("paper-mini", "paper-mini.onnx"), Info("bn-mini")));
        Assert.Contains("node /features/features.0/Conv (Conv)", e.Message);
    }

    [Fact]
    public void OnnxImport_TruncatedFilesAreClearErrors()
    {
        foreach (string model in new[] { "tv-mini", "bn-mini" })
        {
            byte[] bytes = File.ReadAllBytes(Fixtures.Path(model, model + ".onnx"));
            for (int k = 0; k < 16; k++)
            {
                int length = (int)((long)bytes.Length * k / 16);
                string path = Write($"{model}-cut-{k}.onnx", bytes.AsSpan(0, length).ToArray());
                var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(path, Info(model)));
                Assert.Contains(path, e.Message);
                e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(path));
                Assert.Contains(path, e.Message);
                if (k == 8) _out.WriteLine(e.Message);
            }
        }
    }

    [Fact]
    public void OnnxImport_CraftedFilesAreClearErrors()
    {
        // Malformed protobuf is reported with Google.Protobuf's own words, after "malformed ONNX file".
        var cases = new (string Name, byte[] Bytes, string Expect)[]
        {
            ("empty", Array.Empty<byte>(), "empty"),
            // graph (field 7, length-delimited) claiming 1000 bytes where 3 follow
            ("length-past-end", new byte[] { 0x3A, 0xE8, 0x07, 1, 2, 3 }, "malformed ONNX file"),
            // a graph whose node claims more bytes than the graph holds
            ("nested-length-past-end", new byte[] { 0x3A, 0x04, 0x0A, 0x10, 0x0A, 0x01 }, "ended unexpectedly"),
            // ir_version with an 11-byte varint
            ("huge-varint", new byte[] { 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, "malformed varint"),
            // a length of 2^64 - 1
            ("huge-length", new byte[] { 0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }, "negative size"),
            // a varint cut short
            ("cut-varint", new byte[] { 0x08, 0x80 }, "ended unexpectedly"),
            // an empty group (wire types 3 and 4) in place of ir_version: skipped as an unknown field, leaving no graph
            ("group", new byte[] { 0x0B, 0x0C }, "no graph"),
            // wire type 7 does not exist
            ("wire-type-7", new byte[] { 0x0F, 0x00 }, "malformed ONNX file"),
            // field number 0
            ("field-zero", new byte[] { 0x00, 0x01 }, "invalid tag (zero)"),
            // graphs nested in node attributes deeper than the parser's recursion limit
            ("deep-nesting", Nested(OnnxModelFile.MaxDepth), "levels of nesting"),
            // a model without a graph
            ("no-graph", new byte[] { 0x08, 0x08, 0x12, 0x01, 0x78 }, "no graph"),
            // an initializer whose raw data does not fit its dims: dims [4], FLOAT, raw 8 bytes
            ("raw-size", Model(Tensor(new long[] { 4 }, 1, raw: new byte[8])), "raw data"),
            // dims [2^20, 2^20]: more elements than an array holds
            ("huge-dims", Model(Tensor(new long[] { 1L << 20, 1L << 20 }, 1, raw: new byte[4])), "elements"),
            // negative dimension
            ("negative-dim", Model(Tensor(new long[] { -3 }, 1, raw: new byte[4])), "invalid dimension"),
            // an unsupported data type (STRING = 8)
            ("dtype", Model(Tensor(new long[] { 1 }, 8, raw: new byte[4])), "data type 8"),
            // packed float_data whose length is not a multiple of 4
            ("packed-floats", Model(Tensor(new long[] { 1 }, 1, packedFloats: new byte[] { 1, 2, 3 })), "ended unexpectedly"),
        };
        foreach ((string name, byte[] bytes, string expect) in cases)
        {
            string path = Write(name + ".onnx", bytes);
            var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(path));
            _out.WriteLine($"{name}: {e.Message}");
            Assert.Contains(path, e.Message);
            Assert.Contains(expect, e.Message);
            e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(path, Info("tv-mini")));
            Assert.Contains(path, e.Message);
        }
    }

    [Fact]
    public void OnnxImport_NestingUpToTheRecursionLimitIsRead()
    {
        // Nested(k): the model, then 3k + 1 messages one inside the other (k x graph, node, attribute, and the innermost
        // graph): up to MaxDepth is read, one level more is refused.
        int k = (OnnxModelFile.MaxDepth - 1) / 3;
        Assert.Equal(OnnxModelFile.MaxDepth, 3 * k + 1);
        IWeightSource ok = OnnxModelFile.Parse(Nested(k), "nested.onnx");
        Assert.Empty(ok.Keys);
        var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Parse(Nested(k + 1), "nested.onnx"));
        Assert.StartsWith("nested.onnx: malformed ONNX file: ", e.Message);
        Assert.Contains("levels of nesting", e.Message);
    }

    [Fact]
    public void OnnxImport_RandomAndMutatedBytesNeverGiveAnotherException()
    {
        var rng = new Random(1234);
        for (int i = 0; i < 200; i++)
        {
            var bytes = new byte[rng.Next(1, 4096)];
            rng.NextBytes(bytes);
            var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Parse(bytes, $"random-{i}.onnx"));
            Assert.Contains($"random-{i}.onnx", e.Message);
        }
        string randomFile = Write("random.onnx", Enumerable.Range(0, 1000).Select(i => (byte)(i * 151 + 7)).ToArray());
        Assert.Contains(randomFile, Assert.Throws<WeightsException>(() => OnnxModelFile.Load(randomFile)).Message);

        // Mutations of a real file: either it still loads, or it is a WeightsException.
        byte[] original = File.ReadAllBytes(Fixtures.Path("paper-mini", "paper-mini.onnx"));
        ModelInfo info = Info("paper-mini");
        int failures = 0;
        for (int i = 0; i < 300; i++)
        {
            byte[] bytes = (byte[])original.Clone();
            int flips = rng.Next(1, 4);
            for (int f = 0; f < flips; f++)
            {
                // Mostly in the structure (the first and last few KB), where the interesting bytes are.
                int at = rng.Next(2) == 0 ? rng.Next(Math.Min(4096, bytes.Length)) : bytes.Length - 1 - rng.Next(Math.Min(4096, bytes.Length));
                bytes[at] = (byte)rng.Next(256);
            }
            try
            {
                OnnxModelFile.Parse(bytes, "mutated.onnx", i % 2 == 0 ? info : null);
            }
            catch (WeightsException e)
            {
                Assert.Contains("mutated.onnx", e.Message);
                failures++;
            }
        }
        _out.WriteLine($"{failures} of 300 mutated files refused");
    }

    [Fact]
    public void OnnxImport_ReadsUnpackedAndPackedFloatDataAndHalfTypes()
    {
        // float_data packed (wire 2) and unpacked (wire 5), FLOAT16 and BFLOAT16 raw, INT64.
        byte[] unpacked = Tensor(new long[] { 2 }, 1, name: "a", unpackedFloats: new[] { 1.5f, -2f });
        byte[] packed = Tensor(new long[] { 2 }, 1, name: "b", packedFloats: BitConverter.GetBytes(3f).Concat(BitConverter.GetBytes(4.25f)).ToArray());
        byte[] f16 = Tensor(new long[] { 1 }, 10, name: "c", raw: BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((Half)0.5f)));
        byte[] bf16 = Tensor(new long[] { 1 }, 16, name: "d", raw: new byte[] { 0xC0, 0x3F }); // 1.5
        byte[] i64 = Tensor(new long[] { 2 }, 7, name: "e", raw: new byte[16]);
        IWeightSource w = OnnxModelFile.Parse(Model(unpacked, packed, f16, bf16, i64), "made.onnx");
        Assert.Equal(new[] { "a", "b", "c", "d", "e" }, w.Keys);
        Assert.True(w.TryGet("a", out LoadedTensor a));
        Assert.Equal(new[] { 1.5f, -2f }, a.Data);
        Assert.True(w.TryGet("b", out LoadedTensor b));
        Assert.Equal(new[] { 3f, 4.25f }, b.Data);
        Assert.True(w.TryGet("c", out LoadedTensor c));
        Assert.Equal("F16", c.DType);
        Assert.Equal(new[] { 0.5f }, c.Data);
        Assert.True(w.TryGet("d", out LoadedTensor d));
        Assert.Equal("BF16", d.DType);
        Assert.Equal(new[] { 1.5f }, d.Data);
        Assert.True(w.TryGet("e", out LoadedTensor e));
        Assert.Equal("I64", e.DType);
        Assert.Equal(new[] { 2 }, e.Shape);
    }

    [Fact]
    public void OnnxImport_FoldedBatchNormGetsIdentityParameters()
    {
        ModelInfo info = Info("bn-mini");
        IWeightSource w = OnnxModelFile.Load(Fixtures.Path("bn-mini", "bn-mini.onnx"), info);
        OperationInfo bn = info.Layers[0].Ops.First(o => o.Kind == OperationKind.BatchNorm);
        Assert.True(w.TryGet(bn.CheckpointPrefix + ".weight", out LoadedTensor gamma));
        Assert.All(gamma.Data, v => Assert.Equal(1f, v));
        Assert.True(w.TryGet(bn.CheckpointPrefix + ".bias", out LoadedTensor beta));
        Assert.All(beta.Data, v => Assert.Equal(0f, v));
        Assert.True(w.TryGet(bn.CheckpointPrefix + ".running_mean", out LoadedTensor mean));
        Assert.All(mean.Data, v => Assert.Equal(0f, v));
        Assert.True(w.TryGet(bn.CheckpointPrefix + ".running_var", out LoadedTensor variance));
        Assert.All(variance.Data, v => Assert.Equal((float)(1.0 - bn.Eps), v));
    }

    /// <summary>A BVLC/Caffe-style graph for tv-mini, made here: initializers named conv1_w_0 etc., packed ints,
    /// fc6 as MatMul + Add with W [in, out], fc7 as Gemm transB=0, fc8 as Gemm transB=1 with float_data,
    /// and no node for the identity adaptive pool.</summary>
    [Fact]
    public void OnnxImport_CaffeStyleNamesMatMulAndTransposesBindByPosition()
    {
        ModelEntry entry = ModelCatalog.Find("tv-mini")!;
        SafeTensorsFile st = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"));
        LoadedTensor T(string key) => st.TryGet(key, out LoadedTensor t) ? t : throw new InvalidOperationException(key);

        var g = new List<byte>();
        var inits = new List<byte[]>();
        string x = "data_0";
        string[] convs = { "features.0", "features.3", "features.6", "features.8", "features.10" };
        int[] kernel = { 11, 5, 3, 3, 3 }, stride = { 4, 1, 1, 1, 1 }, pad = { 2, 2, 1, 1, 1 };
        bool[] pool = { true, true, false, false, true };
        for (int i = 0; i < 5; i++)
        {
            string c = $"conv{i + 1}";
            LoadedTensor w = T(convs[i] + ".weight"), b = T(convs[i] + ".bias");
            inits.Add(FloatTensor(c + "_w_0", w.Shape, w.Data));
            inits.Add(FloatTensor(c + "_b_0", b.Shape, b.Data));
            Field(g, 1, Node("Conv", c, new[] { x, c + "_w_0", c + "_b_0" }, c + "_1",
                AttrInts("kernel_shape", kernel[i], kernel[i]), AttrInts("strides", stride[i], stride[i]),
                AttrInts("pads", pad[i], pad[i], pad[i], pad[i]), AttrInt("group", 1)));
            Field(g, 1, Node("Relu", c + "_relu", new[] { c + "_1" }, c + "_2"));
            x = c + "_2";
            if (pool[i])
            {
                Field(g, 1, Node("MaxPool", $"pool{i + 1}", new[] { x }, $"pool{i + 1}_1", AttrInts("kernel_shape", 3, 3), AttrInts("strides", 2, 2)));
                x = $"pool{i + 1}_1";
            }
        }
        Field(g, 1, Node("Flatten", "flatten", new[] { x }, "flat", AttrInt("axis", 1)));
        LoadedTensor w6 = T("classifier.1.weight"), w7 = T("classifier.4.weight"), w8 = T("classifier.6.weight");
        inits.Add(FloatTensor("fc6_w_0", new[] { w6.Shape[1], w6.Shape[0] }, Transpose(w6)));
        inits.Add(FloatTensor("fc6_b_0", T("classifier.1.bias").Shape, T("classifier.1.bias").Data));
        inits.Add(FloatTensor("fc7_w_0", new[] { w7.Shape[1], w7.Shape[0] }, Transpose(w7)));
        inits.Add(FloatTensor("fc7_b_0", T("classifier.4.bias").Shape, T("classifier.4.bias").Data));
        inits.Add(FloatTensor("fc8_w_0", w8.Shape, w8.Data));
        inits.Add(Tensor(new long[] { 10 }, 1, name: "fc8_b_0", unpackedFloats: T("classifier.6.bias").Data));
        Field(g, 1, Node("MatMul", "fc6", new[] { "flat", "fc6_w_0" }, "fc6_1"));
        Field(g, 1, Node("Add", "fc6_add", new[] { "fc6_1", "fc6_b_0" }, "fc6_2"));
        Field(g, 1, Node("Relu", "fc6_relu", new[] { "fc6_2" }, "fc6_3"));
        Field(g, 1, Node("Dropout", "fc6_drop", new[] { "fc6_3" }, "fc6_4"));
        Field(g, 1, Node("Gemm", "fc7", new[] { "fc6_4", "fc7_w_0", "fc7_b_0" }, "fc7_1", AttrInt("transB", 0)));
        Field(g, 1, Node("Relu", "fc7_relu", new[] { "fc7_1" }, "fc7_2"));
        Field(g, 1, Node("Gemm", "fc8", new[] { "fc7_2", "fc8_w_0", "fc8_b_0" }, "fc8_1", AttrInt("transB", 1), AttrFloat("alpha", 1f)));
        Field(g, 1, Node("Softmax", "prob", new[] { "fc8_1" }, "prob_1"));
        foreach (byte[] t in inits) Field(g, 5, t);
        var m = new List<byte>();
        Varint(m, 1 << 3);
        Varint(m, 3);
        Field(m, 7, g.ToArray());
        string path = Write("caffe-style.onnx", m.ToArray());

        IWeightSource weights = OnnxModelFile.Load(path, entry.Info);
        foreach (ParameterInfo p in entry.Info.AllParameters)
        {
            Assert.True(weights.TryGet(p.Key, out LoadedTensor got), p.Key);
            Assert.Equal(T(p.Key).Shape, got.Shape);
            Assert.Equal(T(p.Key).Data, got.Data);
        }
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.oracle.safetensors"));
        Assert.True(oracle.TryGet("logits_eval", out LoadedTensor expected));
        float[] input = FixtureInputs.Hash(4 * entry.Info.InputLength);
        using Network net = entry.Create(weights, 4);
        var logits = new float[4 * net.Classes];
        net.Forward(input, logits, 4, logits: true);
        for (int i = 0; i < logits.Length; i++) Assert.True(Math.Abs(logits[i] - expected.Data[i]) <= 1e-4, $"logits[{i}]");

        // The same graph with conv2's stride changed is refused, naming the node.
        byte[] bytes = File.ReadAllBytes(path);
        byte[] strides = Field(AttrInts("strides", 1, 1));
        int at = IndexOf(bytes, strides);
        Assert.True(at >= 0);
        byte[] bad = (byte[])bytes.Clone();
        byte[] two = Field(AttrInts("strides", 2, 2));
        two.CopyTo(bad, at);
        string badPath = Write("caffe-style-stride.onnx", bad);
        var e = Assert.Throws<WeightsException>(() => OnnxModelFile.Load(badPath, entry.Info));
        _out.WriteLine(e.Message);
        Assert.Contains("node conv2 (Conv) has strides [2, 2], the spec's conv2 has stride 1", e.Message);
    }

    // ---------------------------------------------------------------- helpers

    private static float[] Transpose(LoadedTensor w)
    {
        int rows = w.Shape[0], cols = w.Shape[1];
        var t = new float[w.Data.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                t[c * rows + r] = w.Data[r * cols + c];
        return t;
    }

    private static byte[] FloatTensor(string name, int[] shape, float[] data)
    {
        var raw = new byte[data.Length * 4];
        Buffer.BlockCopy(data, 0, raw, 0, raw.Length);
        return Tensor(shape.Select(d => (long)d).ToArray(), 1, name: name, raw: raw);
    }

    /// <summary>An AttributeProto as a NodeProto field 5 (tag and length included).</summary>
    private static byte[] Field(byte[] attribute)
    {
        var b = new List<byte>();
        Field(b, 5, attribute);
        return b.ToArray();
    }

    private static byte[] Node(string op, string name, string[] inputs, string output, params byte[][] attributes)
    {
        var b = new List<byte>();
        foreach (string i in inputs) Field(b, 1, Encoding.UTF8.GetBytes(i));
        Field(b, 2, Encoding.UTF8.GetBytes(output));
        Field(b, 3, Encoding.UTF8.GetBytes(name));
        Field(b, 4, Encoding.UTF8.GetBytes(op));
        foreach (byte[] a in attributes) Field(b, 5, a);
        return b.ToArray();
    }

    /// <summary>An ints attribute, packed (as proto3 writers do).</summary>
    private static byte[] AttrInts(string name, params long[] values)
    {
        var b = new List<byte>();
        Field(b, 1, Encoding.UTF8.GetBytes(name));
        var packed = new List<byte>();
        foreach (long v in values) Varint(packed, (ulong)v);
        Field(b, 8, packed.ToArray());
        Varint(b, 20 << 3);
        Varint(b, 7);
        return b.ToArray();
    }

    private static byte[] AttrInt(string name, long value)
    {
        var b = new List<byte>();
        Field(b, 1, Encoding.UTF8.GetBytes(name));
        Varint(b, 3 << 3);
        Varint(b, (ulong)value);
        Varint(b, 20 << 3);
        Varint(b, 2);
        return b.ToArray();
    }

    private static byte[] AttrFloat(string name, float value)
    {
        var b = new List<byte>();
        Field(b, 1, Encoding.UTF8.GetBytes(name));
        Varint(b, 2 << 3 | 5);
        b.AddRange(BitConverter.GetBytes(value));
        Varint(b, 20 << 3);
        Varint(b, 1);
        return b.ToArray();
    }

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }

    private static void Varint(List<byte> into, ulong v)
    {
        while (v >= 0x80)
        {
            into.Add((byte)(v | 0x80));
            v >>= 7;
        }
        into.Add((byte)v);
    }

    private static void Field(List<byte> into, int field, byte[] payload)
    {
        Varint(into, (ulong)(field << 3 | 2));
        Varint(into, (ulong)payload.Length);
        into.AddRange(payload);
    }

    /// <summary>A TensorProto's bytes.</summary>
    private static byte[] Tensor(long[] dims, int dataType, string name = "t", byte[]? raw = null, byte[]? packedFloats = null, float[]? unpackedFloats = null)
    {
        var b = new List<byte>();
        foreach (long d in dims)
        {
            Varint(b, 1 << 3);
            Varint(b, unchecked((ulong)d));
        }
        Varint(b, 2 << 3);
        Varint(b, (ulong)dataType);
        if (packedFloats is not null) Field(b, 4, packedFloats);
        if (unpackedFloats is not null)
            foreach (float f in unpackedFloats)
            {
                Varint(b, 4 << 3 | 5);
                b.AddRange(BitConverter.GetBytes(f));
            }
        Field(b, 8, Encoding.UTF8.GetBytes(name));
        if (raw is not null) Field(b, 9, raw);
        return b.ToArray();
    }

    /// <summary>A ModelProto whose graph's node has an attribute holding a graph (AttributeProto.g), whose node has one
    /// too, and so on <paramref name="graphs"/> times: three messages per level below the model.</summary>
    private static byte[] Nested(int graphs)
    {
        byte[] graph = Array.Empty<byte>();
        for (int i = 0; i < graphs; i++)
        {
            var attribute = new List<byte>();
            Field(attribute, 1, Encoding.UTF8.GetBytes("body"));
            Field(attribute, 6, graph);
            var node = new List<byte>();
            Field(node, 4, Encoding.UTF8.GetBytes("Loop"));
            Field(node, 5, attribute.ToArray());
            var g = new List<byte>();
            Field(g, 1, node.ToArray());
            graph = g.ToArray();
        }
        var m = new List<byte>();
        Field(m, 7, graph);
        return m.ToArray();
    }

    /// <summary>A ModelProto whose graph holds only the given initializers.</summary>
    private static byte[] Model(params byte[][] initializers)
    {
        var g = new List<byte>();
        foreach (byte[] t in initializers) Field(g, 5, t);
        var m = new List<byte>();
        Varint(m, 1 << 3);
        Varint(m, 8);
        Field(m, 7, g.ToArray());
        return m.ToArray();
    }
}
