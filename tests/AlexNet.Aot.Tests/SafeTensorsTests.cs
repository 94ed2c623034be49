using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Xunit;

namespace AlexNet.Aot.Tests;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "alexnet-safetensors-" + Guid.NewGuid().ToString("N"));

    public SafeTensorsTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string TvMini(string name = "tv-mini.safetensors") => Fixtures.Path("tv-mini", name);

    // ---- the PyTorch fixtures ----

    [Fact]
    public void TvMini_loads_every_key_in_file_order_with_its_shape()
    {
        string path = TvMini();
        SafeTensorsFile f = SafeTensorsFile.Load(path);

        Assert.Equal(path, f.Origin);
        Assert.Empty(f.Metadata);
        Assert.Equal(new[]
        {
            "classifier.1.bias", "classifier.1.weight", "classifier.4.bias", "classifier.4.weight",
            "classifier.6.bias", "classifier.6.weight", "features.0.bias", "features.0.weight",
            "features.10.bias", "features.10.weight", "features.3.bias", "features.3.weight",
            "features.6.bias", "features.6.weight", "features.8.bias", "features.8.weight",
        }, f.Keys);

        var expected = new Dictionary<string, int[]>
        {
            ["features.0.weight"] = new[] { 16, 3, 11, 11 },
            ["features.0.bias"] = new[] { 16 },
            ["features.3.weight"] = new[] { 40, 16, 5, 5 },
            ["features.6.weight"] = new[] { 72, 40, 3, 3 },
            ["features.8.weight"] = new[] { 48, 72, 3, 3 },
            ["features.10.weight"] = new[] { 32, 48, 3, 3 },
            ["classifier.1.weight"] = new[] { 64, 1152 },
            ["classifier.4.weight"] = new[] { 64, 64 },
            ["classifier.6.weight"] = new[] { 10, 64 },
            ["classifier.6.bias"] = new[] { 10 },
        };
        foreach (var (key, shape) in expected)
        {
            Assert.True(f.TryGet(key, out LoadedTensor t), key);
            Assert.Equal(key, t.Key);
            Assert.Equal("F32", t.DType);
            Assert.Equal(shape, t.Shape);
            Assert.Equal(shape.Aggregate(1, (a, b) => a * b), t.Data.Length);
        }

        // Values as Python's struct module reads them from the file.
        Assert.True(f.TryGet("features.0.weight", out LoadedTensor w));
        Assert.Equal(new[] { 0.08764869719743729f, -0.010566122829914093f, -0.10878094285726547f, 0.050133973360061646f }, w.Data.Take(4));
        Assert.True(f.TryGet("classifier.6.bias", out LoadedTensor b));
        Assert.Equal(-0.004602496512234211f, b.Data[0]);
        Assert.Equal(-0.04837190732359886f, b.Data[9]);

        Assert.False(f.TryGet("features.1.weight", out _));
    }

    [Theory]
    [InlineData("tv-mini.f16.safetensors", "F16", 1e-3)]
    [InlineData("tv-mini.bf16.safetensors", "BF16", 1e-2)]
    public void Half_precision_files_agree_with_f32(string file, string dtype, double relative)
    {
        SafeTensorsFile f32 = SafeTensorsFile.Load(TvMini());
        SafeTensorsFile half = SafeTensorsFile.Load(TvMini(file));

        Assert.Equal(f32.Keys, half.Keys);
        foreach (string key in f32.Keys)
        {
            Assert.True(f32.TryGet(key, out LoadedTensor a));
            Assert.True(half.TryGet(key, out LoadedTensor h));
            Assert.Equal(dtype, h.DType);
            Assert.Equal(a.Shape, h.Shape);
            Assert.Equal(a.Data.Length, h.Data.Length);
            for (int i = 0; i < a.Data.Length; i++)
            {
                // 1e-7 absolute covers float16 subnormals (step 6e-8) near zero.
                double tol = relative * Math.Abs(a.Data[i]) + 1e-7;
                if (Math.Abs(a.Data[i] - h.Data[i]) > tol)
                    Assert.Fail($"{key}[{i}]: {dtype} {h.Data[i]} vs F32 {a.Data[i]}");
            }
        }
    }

    [Fact]
    public void BnMini_keeps_num_batches_tracked_as_an_int64_scalar()
    {
        SafeTensorsFile f = SafeTensorsFile.Load(Fixtures.Path("bn-mini", "bn-mini.safetensors"));
        foreach (string bn in new[] { "features.1", "features.5", "features.9", "features.12", "features.15" })
        {
            Assert.True(f.TryGet(bn + ".num_batches_tracked", out LoadedTensor n));
            Assert.Equal("I64", n.DType);
            Assert.Empty(n.Shape);
            Assert.Empty(n.Data);
            Assert.True(f.TryGet(bn + ".running_var", out LoadedTensor v));
            Assert.Equal("F32", v.DType);
            Assert.Single(v.Shape);
            Assert.Equal(v.Shape[0], v.Data.Length);
            Assert.All(v.Data, x => Assert.True(x > 0));
        }
        Assert.Equal(41, f.Keys.Count);
    }

    [Theory]
    [InlineData("tv-mini")]
    [InlineData("paper-mini")]
    [InlineData("bn-mini")]
    public void Oracle_files_load(string model)
    {
        SafeTensorsFile f = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(f.TryGet("logits_eval", out LoadedTensor logits));
        Assert.Equal(new[] { 4, 10 }, logits.Shape);
        Assert.Equal(40, logits.Data.Length);
        Assert.True(f.TryGet("probs_eval", out LoadedTensor probs));
        for (int n = 0; n < 4; n++)
            Assert.Equal(1.0, probs.Data.Skip(n * 10).Take(10).Sum(), 4);
        Assert.True(f.TryGet("labels", out LoadedTensor labels));
        Assert.Equal("I64", labels.DType);
        Assert.Equal(new[] { 4 }, labels.Shape);
        Assert.Empty(labels.Data);
        Assert.Contains(f.Keys, k => k.StartsWith("grad.", StringComparison.Ordinal));
        Assert.Contains(f.Keys, k => k.StartsWith("after2.", StringComparison.Ordinal));
        if (model == "tv-mini")
            Assert.Equal(new[] { 0.031823184341192245f, -0.11360691487789154f, 0.09525240957736969f }, logits.Data.Take(3));
    }

    [Fact]
    public void Parse_from_memory_matches_Load()
    {
        string path = TvMini();
        SafeTensorsFile a = SafeTensorsFile.Load(path);
        SafeTensorsFile b = SafeTensorsFile.Parse(File.ReadAllBytes(path), "in memory");
        Assert.Equal("in memory", b.Origin);
        Assert.Equal(a.Keys, b.Keys);
        foreach (string k in a.Keys)
        {
            a.TryGet(k, out LoadedTensor x);
            b.TryGet(k, out LoadedTensor y);
            Assert.Equal(x.Shape, y.Shape);
            Assert.Equal(x.Data, y.Data);
        }
    }

    // ---- writing ----

    [Fact]
    public void Write_then_Load_round_trips_tensors_order_and_metadata()
    {
        string path = Path.Combine(_dir, "round.safetensors");
        var rng = new Random(7);
        var tensors = new List<(string Key, int[] Shape, float[] Data)>
        {
            ("z.last", new[] { 2, 3 }, Enumerable.Range(0, 6).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray()),
            ("scalar", Array.Empty<int>(), new[] { 42.5f }),
            ("empty", new[] { 0, 5 }, Array.Empty<float>()),
            ("a.first", new[] { 3 }, new[] { float.MaxValue, float.Epsilon, -0.0f }),
            ("unicodé <key>", new[] { 1, 1, 1 }, new[] { float.NaN }),
        };
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" };

        File.WriteAllText(path, "old contents, to be replaced");
        SafeTensorsFile.Write(path, tensors, meta);

        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        Assert.Equal(8 + (long)n + 4 * (6 + 1 + 0 + 3 + 1), bytes.Length);

        SafeTensorsFile f = SafeTensorsFile.Load(path);
        Assert.Equal(tensors.Select(t => t.Key), f.Keys);
        Assert.Equal(meta.OrderBy(kv => kv.Key), f.Metadata.OrderBy(kv => kv.Key));
        foreach (var (key, shape, data) in tensors)
        {
            Assert.True(f.TryGet(key, out LoadedTensor t));
            Assert.Equal("F32", t.DType);
            Assert.Equal(shape, t.Shape);
            Assert.Equal(data, t.Data);
        }
        Assert.Equal(new[] { "round.safetensors" }, Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Write_of_a_loaded_fixture_reproduces_it()
    {
        SafeTensorsFile src = SafeTensorsFile.Load(TvMini("tv-mini.f16.safetensors"));
        string path = Path.Combine(_dir, "copy.safetensors");
        SafeTensorsFile.Write(path, src.Keys.Select(k => { src.TryGet(k, out LoadedTensor t); return (k, t.Shape, t.Data); }));
        SafeTensorsFile copy = SafeTensorsFile.Load(path);
        Assert.Equal(src.Keys, copy.Keys);
        foreach (string k in src.Keys)
        {
            src.TryGet(k, out LoadedTensor a);
            copy.TryGet(k, out LoadedTensor b);
            Assert.Equal(a.Shape, b.Shape);
            Assert.Equal(a.Data, b.Data);
        }
    }

    [Fact]
    public void Write_rejects_inconsistent_tensors()
    {
        string path = Path.Combine(_dir, "bad.safetensors");
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Write(path, new[] { ("a", new[] { 2, 2 }, new float[3]) }));
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Write(path, new[] { ("a", new[] { -1 }, new float[0]) }));
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Write(path, new[] { ("a", new[] { 1 }, new float[1]), ("a", new[] { 1 }, new float[1]) }));
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Write(path, new[] { ("__metadata__", new[] { 1 }, new float[1]) }));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void Write_into_a_missing_folder_is_a_WeightsException_naming_the_path()
    {
        string path = Path.Combine(_dir, "no", "such", "folder", "x.safetensors");
        var e = Assert.Throws<WeightsException>(() => SafeTensorsFile.Write(path, new[] { ("a", new[] { 1 }, new float[1]) }));
        Assert.StartsWith(path + ": ", e.Message);
    }

    // ---- bad files ----

    [Fact]
    public void Missing_file_says_file_not_found()
    {
        string path = Path.Combine(_dir, "nothing-here.safetensors");
        var e = Assert.Throws<WeightsException>(() => SafeTensorsFile.Load(path));
        Assert.Equal(path + ": file not found", e.Message);
    }

    [Fact]
    public void A_directory_is_not_a_file()
    {
        var e = Assert.Throws<WeightsException>(() => SafeTensorsFile.Load(_dir));
        Assert.StartsWith(_dir + ": ", e.Message);
        Assert.Contains("directory", e.Message);
    }

    public enum Cut { Empty, Four, Seven, Eight, MidHeader, EndOfHeader, MidData, LastByteMissing }

    [Theory]
    [InlineData(Cut.Empty, "0 bytes long, shorter than the 8-byte header length")]
    [InlineData(Cut.Four, "4 bytes long, shorter than the 8-byte header length")]
    [InlineData(Cut.Seven, "7 bytes long, shorter than the 8-byte header length")]
    [InlineData(Cut.Eight, "header length 1320 runs past the end of the file: only 0 bytes follow")]
    [InlineData(Cut.MidHeader, "header length 1320 runs past the end of the file: only 660 bytes follow")]
    [InlineData(Cut.EndOfHeader, "past the end of the data (0 bytes after the header; truncated?)")]
    [InlineData(Cut.MidData, "is past the end of the data (342932 bytes after the header; truncated?)")]
    [InlineData(Cut.LastByteMissing, "\"features.8.weight\": data_offsets end 685864 is past the end of the data (685863 bytes")]
    public void Truncated_file_names_the_file_and_the_problem(Cut cut, string expected)
    {
        byte[] full = File.ReadAllBytes(TvMini());
        int header = (int)BinaryPrimitives.ReadUInt64LittleEndian(full);
        int dataSize = full.Length - 8 - header;
        int length = cut switch
        {
            Cut.Empty => 0,
            Cut.Four => 4,
            Cut.Seven => 7,
            Cut.Eight => 8,
            Cut.MidHeader => 8 + header / 2,
            Cut.EndOfHeader => 8 + header,
            Cut.MidData => 8 + header + dataSize / 2,
            Cut.LastByteMissing => full.Length - 1,
            _ => throw new ArgumentOutOfRangeException(nameof(cut)),
        };
        string path = Path.Combine(_dir, $"cut-{cut}.safetensors");
        File.WriteAllBytes(path, full.AsSpan(0, length).ToArray());

        var e = Assert.Throws<WeightsException>(() => SafeTensorsFile.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Every_prefix_and_every_header_byte_change_is_a_WeightsException_or_a_valid_file()
    {
        string good = Path.Combine(_dir, "small.safetensors");
        SafeTensorsFile.Write(good, new[]
        {
            ("w", new[] { 2, 2 }, new[] { 1f, 2f, 3f, 4f }),
            ("b", new[] { 2 }, new[] { 5f, 6f }),
        }, new Dictionary<string, string> { ["k"] = "v" });
        byte[] bytes = File.ReadAllBytes(good);

        for (int n = 0; n < bytes.Length; n++)
        {
            var e = Assert.Throws<WeightsException>(() => SafeTensorsFile.Parse(bytes.AsSpan(0, n), "prefix"));
            Assert.StartsWith("prefix: ", e.Message);
        }

        int header = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        byte[] values = { 0x00, 0x01, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':', (byte)'-', (byte)'9', (byte)'e', 0x7F, 0x80, 0xC3, 0xFF };
        int accepted = 0;
        for (int i = 0; i < header; i++)
        {
            foreach (byte v in values)
            {
                byte[] copy = (byte[])bytes.Clone();
                if (copy[i] == v) continue;
                copy[i] = v;
                try
                {
                    SafeTensorsFile.Parse(copy, "mutated");
                    accepted++;
                }
                catch (WeightsException e)
                {
                    Assert.StartsWith("mutated: ", e.Message);
                }
            }
        }
        Assert.True(accepted > 0); // e.g. changes inside the metadata string or a key
    }

    private static byte[] Make(string json, int dataBytes, ulong? headerLength = null)
    {
        byte[] h = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        return bytes;
    }

    private static string T(string key, string dtype, string shape, long begin, long end) =>
        $"\"{key}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    public static TheoryData<string, byte[], string> BadFiles()
    {
        string ok = T("a", "F32", "[2]", 0, 8);
        return new TheoryData<string, byte[], string>
        {
            { "length-past-end", Make("{" + ok + "}", 8, headerLength: 1000), "header length 1000 runs past the end of the file" },
            { "length-huge", Make("{}", 0, headerLength: ulong.MaxValue), "header length 18446744073709551615 is absurd" },
            { "length-just-over-limit", Make("{}", 0, headerLength: 100_000_001), "header length 100000001 is absurd" },
            { "json-cut", Make("{\"a\":{\"dtype\":", 0), "header is not valid JSON" },
            { "json-empty", Make("", 0), "header is not valid JSON" },
            { "json-garbage", Make("hello", 0), "header is not valid JSON" },
            { "json-trailing", Make("{} {}", 0), "header is not valid JSON" },
            // Found by fuzzing: an escape of an unpaired surrogate is valid JSON but no string (it threw InvalidOperationException).
            { "json-lone-surrogate-key", Make("{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "not valid text (an unpaired" },
            { "json-lone-surrogate-metadata", Make("{\"__metadata__\":{\"a\":\"x\\udc00\"}," + ok + "}", 8), "not valid text (an unpaired" },
            { "json-comma", Make("{" + ok + ",}", 8), "header is not valid JSON" },
            { "json-array", Make("[1, 2]", 0), "header is a JSON array, not an object" },
            { "json-string", Make("\"x\"", 0), "header is a JSON string, not an object" },
            { "utf8-invalid", Make("{\"\u00ff\":1}", 0).Select(b => b == 0xC3 ? (byte)0xFF : b).ToArray(), "header is not valid UTF-8" },
            { "entry-not-object", Make("{\"a\":[1,2]}", 0), "tensor \"a\": entry is a JSON array" },
            { "dtype-unknown", Make("{" + T("a", "F128", "[2]", 0, 8) + "}", 8), "tensor \"a\": unknown dtype \"F128\"" },
            { "dtype-lowercase", Make("{" + T("a", "f32", "[2]", 0, 8) + "}", 8), "unknown dtype \"f32\"" },
            { "dtype-missing", Make("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "tensor \"a\": missing \"dtype\"" },
            { "dtype-number", Make("{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "\"dtype\" is a JSON number, not a string" },
            { "shape-missing", Make("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8), "tensor \"a\": missing \"shape\"" },
            { "shape-not-array", Make("{" + T("a", "F32", "2", 0, 8) + "}", 8), "\"shape\" is a JSON number, not an array" },
            { "shape-negative", Make("{" + T("a", "F32", "[-2]", 0, 8) + "}", 8), "tensor \"a\": shape dimension 0 is negative (-2)" },
            { "shape-fraction", Make("{" + T("a", "F32", "[2, 1.5]", 0, 8) + "}", 8), "tensor \"a\": shape dimension 1 is 1.5, not an integer" },
            { "shape-string", Make("{" + T("a", "F32", "[\"2\"]", 0, 8) + "}", 8), "shape dimension 0 is \"2\", not an integer" },
            { "shape-too-big", Make("{" + T("a", "F32", "[4294967296]", 0, 8) + "}", 8), "shape dimension 0 is too large" },
            { "shape-overflow", Make("{" + T("a", "F32", "[2147483647,2147483647,2147483647]", 0, 8) + "}", 8), "element count of shape [2147483647, 2147483647, 2147483647] overflows" },
            { "shape-bytes-overflow", Make("{" + T("a", "F64", "[2147483647,2147483647,2]", 0, 8) + "}", 8), "byte size of shape [2147483647, 2147483647, 2] with dtype F64 overflows" },
            { "size-mismatch", Make("{" + T("a", "F32", "[3]", 0, 8) + "}", 8), "tensor \"a\": data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 needs 12" },
            { "size-mismatch-f16", Make("{" + T("a", "F16", "[2,2]", 0, 4) + "}", 4), "shape [2, 2] of F16 needs 8" },
            { "offsets-missing", Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8), "tensor \"a\": missing \"data_offsets\"" },
            { "offsets-three", Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8), "\"data_offsets\" is [0,4,8], not an array of two integers" },
            { "offsets-negative", Make("{" + T("a", "F32", "[2]", -8, 0) + "}", 8), "data_offsets begin is negative (-8)" },
            { "offsets-reversed", Make("{" + T("a", "F32", "[2]", 8, 0) + "}", 8), "data_offsets begin 8 is after end 0" },
            { "offsets-out-of-range", Make("{" + T("a", "F32", "[2]", 8, 16) + "}", 8), "tensor \"a\": data_offsets end 16 is past the end of the data (8 bytes" },
            { "offsets-huge", Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999]}}", 8), "data_offsets end is 99999999999999999999, an integer too large for 64 bits" },
            { "overlap", Make("{" + T("a", "F32", "[2]", 0, 8) + "," + T("b", "F32", "[2]", 4, 12) + "}", 12), "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap" },
            { "overlap-same", Make("{" + T("a", "F32", "[2]", 0, 8) + "," + T("b", "F32", "[2]", 0, 8) + "}", 8), "overlap" },
            { "hole-between", Make("{" + T("a", "F32", "[1]", 0, 4) + "," + T("b", "F32", "[1]", 8, 12) + "}", 12), "hole of 4 bytes in the data between \"a\" (ends at 4) and \"b\" (begins at 8)" },
            { "hole-at-start", Make("{" + T("a", "F32", "[1]", 4, 8) + "}", 8), "hole of 4 bytes in the data between the start of the data and \"a\"" },
            { "trailing-bytes", Make("{" + ok + "}", 12), "4 bytes of data after the last tensor \"a\" (ends at 8) belong to no tensor" },
            { "no-tensors-but-data", Make("{}", 4), "4 bytes of data after the header (the file has no tensors) belong to no tensor" },
            { "duplicate-key", Make("{" + ok + "," + ok + "}", 8), "duplicate key \"a\" in the header" },
            { "duplicate-field", Make("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "tensor \"a\": duplicate field \"dtype\"" },
            { "metadata-not-object", Make("{\"__metadata__\":[],"+ ok + "}", 8), "\"__metadata__\" is a JSON array, not an object of strings" },
            { "metadata-number", Make("{\"__metadata__\":{\"epoch\":3}," + ok + "}", 8), "\"__metadata__\" entry \"epoch\" is a JSON number, not a string" },
            { "metadata-twice", Make("{\"__metadata__\":{},\"__metadata__\":{}}", 0), "duplicate key \"__metadata__\"" },
        };
    }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Bad_file_names_the_file_and_the_problem(string name, byte[] bytes, string expected)
    {
        string path = Path.Combine(_dir, name + ".safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<WeightsException>(() => SafeTensorsFile.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Good_edge_cases_load()
    {
        // Empty file set, padding spaces after the JSON, zero-size tensors sharing an offset, and every dtype.
        SafeTensorsFile empty = SafeTensorsFile.Parse(Make("{}      ", 0), "empty");
        Assert.Empty(empty.Keys);

        string json = "{" + string.Join(",",
            T("f64", "F64", "[1]", 0, 8),
            T("i64", "I64", "[]", 8, 16),
            T("z", "F32", "[0]", 16, 16),
            T("z2", "F16", "[3,0]", 16, 16),
            T("i32", "I32", "[1]", 16, 20),
            T("i16", "I16", "[1]", 20, 22),
            T("bf16", "BF16", "[1]", 22, 24),
            T("f16", "F16", "[1]", 24, 26),
            T("i8", "I8", "[1]", 26, 27),
            T("u8", "U8", "[1]", 27, 28),
            T("bool", "BOOL", "[1]", 28, 29),
            T("pad", "U8", "[3]", 29, 32)) + ",\"__metadata__\":{\"format\":\"pt\"}}  ";
        byte[] bytes = Make(json, 32);
        int d = bytes.Length - 32;
        BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(d), -2.5);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(d + 22), 0x3FC0); // bf16 1.5
        BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(d + 24), (Half)0.25f);

        SafeTensorsFile f = SafeTensorsFile.Parse(bytes, "edges");
        Assert.Equal(new[] { "f64", "i64", "z", "z2", "i32", "i16", "bf16", "f16", "i8", "u8", "bool", "pad" }, f.Keys);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.True(f.TryGet("f64", out LoadedTensor t)); Assert.Equal(new[] { -2.5f }, t.Data);
        Assert.True(f.TryGet("bf16", out t)); Assert.Equal(new[] { 1.5f }, t.Data);
        Assert.True(f.TryGet("f16", out t)); Assert.Equal(new[] { 0.25f }, t.Data);
        Assert.True(f.TryGet("z2", out t)); Assert.Equal(new[] { 3, 0 }, t.Shape); Assert.Empty(t.Data);
        foreach (string k in new[] { "i64", "i32", "i16", "i8", "u8", "bool" })
        {
            Assert.True(f.TryGet(k, out t));
            Assert.Empty(t.Data);
        }
    }
}
