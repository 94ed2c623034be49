using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using AlexNet.Aot.Onnx;
using SkiaSharp;

namespace AlexNet.Aot.Tests.Fuzz;

/// <summary>
/// Small valid files of every format the readers take, made in memory (a few hundred bytes to a few kilobytes each, so
/// that mutations land in structure rather than in tensor data), and the structure-aware views of them.
/// </summary>
internal static class FuzzSeeds
{
    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static float[] Values(int n, int salt) => Enumerable.Range(0, n).Select(i => (i * 7 + salt) % 13 / 4f - 1.5f).ToArray();

    private static byte[] FloatBytes(float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), v[i]);
        return b;
    }

    private static byte[] ViaTempFile(Action<string> write)
    {
        string path = Path.Combine(Path.GetTempPath(), "alexnet-fuzz-seed-" + Guid.NewGuid().ToString("N"));
        try
        {
            write(path);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    // ------------------------------------------------------------------ safetensors

    /// <summary>A safetensors file from its JSON header and data.</summary>
    public static byte[] SafeTensors(string json, byte[] data)
    {
        byte[] h = Utf8(json);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    /// <summary>The JSON header alone; wrapped back with its new length and the seed's data.</summary>
    public static readonly FuzzView SafeTensorsHeader = new("header",
        b => b.AsSpan(8, (int)BinaryPrimitives.ReadUInt64LittleEndian(b)).ToArray(),
        (seed, header) =>
        {
            int old = (int)BinaryPrimitives.ReadUInt64LittleEndian(seed);
            byte[] data = seed.AsSpan(8 + old).ToArray();
            var r = new byte[8 + header.Length + data.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(r, (ulong)header.Length);
            header.CopyTo(r, 8);
            data.CopyTo(r, 8 + header.Length);
            return r;
        });

    public static IReadOnlyList<FuzzSeed> SafeTensorsSeeds()
    {
        var seeds = new List<FuzzSeed>();
        // Written by our writer: F32 tensors of rank 2, 1, 0 (a scalar) and an empty one.
        byte[] written = ViaTempFile(p => SafeTensorsFile.Write(p, new (string, int[], float[])[]
        {
            ("features.0.weight", new[] { 2, 3 }, Values(6, 1)),
            ("features.0.bias", new[] { 3 }, Values(3, 2)),
            ("scale", Array.Empty<int>(), new[] { 0.5f }),
            ("empty", new[] { 0, 4 }, Array.Empty<float>()),
        }, new Dictionary<string, string> { ["format"] = "pt" }));
        seeds.Add(new FuzzSeed("written-f32", written, FuzzView.Raw, SafeTensorsHeader));

        // A tensor at the mapping threshold (64 KiB), so that Load maps the file and reads it in place.
        byte[] large = ViaTempFile(p => SafeTensorsFile.Write(p, new (string, int[], float[])[]
        {
            ("classifier.1.weight", new[] { 128, 128 }, Values(128 * 128, 3)),
            ("classifier.1.bias", new[] { 128 }, Values(128, 4)),
        }, new Dictionary<string, string> { ["format"] = "pt" }));
        seeds.Add(new FuzzSeed("mapped-f32", large, FuzzView.Raw, SafeTensorsHeader));

        // Every dtype, by hand, in an order other than the data's.
        string json = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"caf\u00e9\"}," +
            "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}," +
            "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[4,12]}," +
            "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[20,28]}," +
            "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[12,20]}," +
            "\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[28,31]}," +
            "\"u\":{\"dtype\":\"U8\",\"shape\":[1,1],\"data_offsets\":[31,32]}}";
        var data = new byte[32];
        BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(0), (Half)1.5f);
        BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(2), (Half)(-2f));
        for (int i = 0; i < 4; i++) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(4 + 2 * i), (ushort)(0x3f80 + i));
        BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(12), 3.25);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(20), 7);
        data[28] = 1; data[30] = 1; data[31] = 200;
        seeds.Add(new FuzzSeed("dtypes", SafeTensors(json, data), FuzzView.Raw, SafeTensorsHeader));

        // A training checkpoint: its metadata carries a SHA-256 checksum of the tensors, verified on load.
        var tensors = new (string Key, int[] Shape, float[] Data)[] { ("w", new[] { 2, 2 }, Values(4, 3)), ("b", new[] { 2 }, Values(2, 4)) };
        using (IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            foreach (var t in tensors) AlexNet.Aot.Training.CheckpointChecksum.Append(hash, t.Key, t.Shape, t.Data);
            var meta = new Dictionary<string, string> { ["format"] = AlexNet.Aot.Training.CheckpointChecksum.Format, ["checksum"] = AlexNet.Aot.Training.CheckpointChecksum.Hex(hash), ["epoch"] = "3" };
            byte[] checkpoint = ViaTempFile(p => SafeTensorsFile.Write(p, tensors, meta));
            seeds.Add(new FuzzSeed("checkpoint", checkpoint, FuzzView.Raw, SafeTensorsHeader));
        }
        return seeds;
    }

    public static readonly byte[][] SafeTensorsDictionary = new[]
    {
        "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"F32\"", "\"F16\"", "\"BF16\"", "\"F64\"", "\"I64\"", "\"I32\"", "\"I16\"",
        "\"I8\"", "\"U8\"", "\"BOOL\"", "\"F8_E4M3\"", "\"__metadata__\"", "\"format\"", "\"checksum\"", "\"alexnet-aot-checkpoint/1\"",
        "[", "]", "{", "}", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "-1", "0", "1", "-0", "1e309", "1.5", "0x10",
        "18446744073709551615", "18446744073709551616", "9223372036854775807", "9223372036854775808", "2147483647", "2147483648",
        "4294967296", "100000000", "null", "true", "false", "[]", "{}", "[0,0]", "[0,4]", "[2147483647,2147483647]", "/*x*/", " ", "\n",
    }.Select(Utf8).ToArray();

    // ------------------------------------------------------------------ PyTorch pickles

    /// <summary>A tensor for <see cref="TorchPickle"/>: key, storage (type, key, element count), offset, sizes, strides.</summary>
    public sealed record PickledTensor(string Key, string StorageType, string StorageKey, long Numel, long Offset, long[] Sizes, long[] Strides,
        bool Parameter = false, (string Key, long Offset, long Size)? View = null);

    /// <summary>A pickle written as <c>torch.save</c> writes a state dict (protocol 2, every object memoized, globals and
    /// repeated strings fetched back from the memo, the state dict's <c>_metadata</c> set by BUILD).</summary>
    public sealed class TorchPickle
    {
        private readonly List<byte> _b = new() { 0x80, 2 };
        private readonly Dictionary<string, int> _memo = new(StringComparer.Ordinal);
        private int _next;

        private void Put()
        {
            if (_next < 256) { _b.Add((byte)'q'); _b.Add((byte)_next); }
            else { _b.Add((byte)'r'); Span<byte> t = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(t, _next); _b.AddRange(t.ToArray()); }
            _next++;
        }

        private bool Get(string memoKey)
        {
            if (!_memo.TryGetValue(memoKey, out int i)) return false;
            if (i < 256) { _b.Add((byte)'h'); _b.Add((byte)i); }
            else { _b.Add((byte)'j'); Span<byte> t = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(t, i); _b.AddRange(t.ToArray()); }
            return true;
        }

        private void Remember(string memoKey) { _memo[memoKey] = _next; Put(); }

        public void Global(string module, string name)
        {
            if (Get("g:" + module + "." + name)) return;
            _b.Add((byte)'c');
            _b.AddRange(Ascii(module + "\n" + name + "\n"));
            Remember("g:" + module + "." + name);
        }

        public void Str(string s, bool shared = false)
        {
            if (shared && Get("s:" + s)) return;
            byte[] u = Utf8(s);
            _b.Add((byte)'X');
            Span<byte> t = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(t, u.Length);
            _b.AddRange(t.ToArray());
            _b.AddRange(u);
            if (shared) Remember("s:" + s); else Put();
        }

        public void Int(long v)
        {
            if (v >= 0 && v < 256) { _b.Add((byte)'K'); _b.Add((byte)v); }
            else if (v >= 0 && v < 65536) { _b.Add((byte)'M'); _b.Add((byte)v); _b.Add((byte)(v >> 8)); }
            else if (v >= int.MinValue && v <= int.MaxValue) { _b.Add((byte)'J'); Span<byte> t = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(t, (int)v); _b.AddRange(t.ToArray()); }
            else { _b.Add(0x8a); _b.Add(8); Span<byte> t = stackalloc byte[8]; BinaryPrimitives.WriteInt64LittleEndian(t, v); _b.AddRange(t.ToArray()); }
        }

        public void Tuple(long[] items)
        {
            if (items.Length == 0) { _b.Add((byte)')'); return; }
            if (items.Length > 3) _b.Add((byte)'(');
            foreach (long i in items) Int(i);
            _b.Add(items.Length switch { 1 => (byte)0x85, 2 => (byte)0x86, 3 => (byte)0x87, _ => (byte)'t' });
            Put();
        }

        public void Op(params byte[] ops) => _b.AddRange(ops);

        /// <summary>Ends a <c>_rebuild_*</c> call as torch.save writes it: requires_grad False and empty backward hooks
        /// (an <c>OrderedDict()</c>), then the argument tuple closed and reduced.</summary>
        public void CloseRebuild()
        {
            Op(0x89);
            Global("collections", "OrderedDict");
            Op((byte)')', (byte)'R');
            Put();
            Op((byte)'t');
            Put();
            Op((byte)'R');
            Put();
        }

        public byte[] Bytes => _b.ToArray();

        /// <summary>A state dict of <paramref name="tensors"/>; <paramref name="legacy"/>: persistent ids of six fields (with the view).</summary>
        public static byte[] StateDict(IEnumerable<PickledTensor> tensors, bool legacy)
        {
            var p = new TorchPickle();
            p.Global("collections", "OrderedDict");
            p.Op((byte)')', (byte)'R');
            p.Put();
            p.Op((byte)'(');
            var modules = new List<string>();
            foreach (PickledTensor t in tensors)
            {
                p.Str(t.Key);
                if (t.Parameter) p.Global("torch._utils", "_rebuild_parameter");
                if (t.Parameter) p.Op((byte)'(');
                p.Global("torch._utils", "_rebuild_tensor_v2");
                p.Op((byte)'(', (byte)'(');
                p.Str("storage", shared: true);
                p.Global("torch", t.StorageType);
                p.Str(t.StorageKey);
                p.Str("cpu", shared: true);
                p.Int(t.Numel);
                if (legacy)
                {
                    if (t.View is { } v)
                    {
                        p.Op((byte)'(');
                        p.Str(v.Key);
                        p.Int(v.Offset);
                        p.Int(v.Size);
                        p.Op((byte)'t');
                        p.Put();
                    }
                    else
                    {
                        p.Op((byte)'N');
                    }
                }
                p.Op((byte)'t');
                p.Put();
                p.Op((byte)'Q');
                p.Int(t.Offset);
                p.Tuple(t.Sizes);
                p.Tuple(t.Strides);
                p.CloseRebuild();
                if (t.Parameter)
                {
                    p.CloseRebuild();
                }
                string module = t.Key.Contains('.') ? t.Key.Substring(0, t.Key.LastIndexOf('.')) : "";
                if (!modules.Contains(module)) modules.Add(module);
            }
            p.Op((byte)'u');
            // The state dict's _metadata: {'': {'version': 1}, 'features': {'version': 1}, ...}, set by BUILD.
            p.Op((byte)'}');
            p.Put();
            p.Str("_metadata");
            p.Global("collections", "OrderedDict");
            p.Op((byte)')', (byte)'R');
            p.Put();
            p.Op((byte)'(');
            p.Str("");
            p.Op((byte)'}');
            p.Put();
            p.Str("version", shared: true);
            p.Int(1);
            p.Op((byte)'s');
            foreach (string m in modules.Where(m => m.Length > 0))
            {
                p.Str(m);
                p.Op((byte)'}');
                p.Put();
                p.Str("version", shared: true);
                p.Int(1);
                p.Op((byte)'s');
            }
            p.Op((byte)'u', (byte)'s', (byte)'b', (byte)'.');
            return p.Bytes;
        }
    }

    private static readonly PickledTensor[] SmallStateDict =
    {
        new("features.0.weight", "FloatStorage", "0", 12, 0, new long[] { 2, 1, 2, 3 }, new long[] { 6, 6, 3, 1 }),
        new("features.0.bias", "FloatStorage", "1", 2, 0, new long[] { 2 }, new long[] { 1 }, Parameter: true),
        new("classifier.1.weight", "FloatStorage", "2", 6, 0, new long[] { 3, 2 }, new long[] { 1, 3 }), // transposed
        new("classifier.1.bias", "FloatStorage", "0", 12, 9, new long[] { 3 }, new long[] { 1 }), // shares storage 0, offset 9
        new("bn.num_batches_tracked", "LongStorage", "3", 1, 0, Array.Empty<long>(), Array.Empty<long>()),
    };

    private static readonly PickledTensor[] DtypeStateDict =
    {
        new("h", "HalfStorage", "0", 4, 0, new long[] { 2, 2 }, new long[] { 2, 1 }),
        new("b", "BFloat16Storage", "1", 3, 1, new long[] { 2 }, new long[] { 1 }),
        new("d", "DoubleStorage", "2", 2, 0, new long[] { 2, 1 }, new long[] { 1, 1 }),
        new("e", "FloatStorage", "3", 0, 0, new long[] { 0, 5 }, new long[] { 5, 1 }),
        new("i", "IntStorage", "4", 2, 0, new long[] { 2 }, new long[] { 1 }),
        new("m", "BoolStorage", "5", 1, 0, new long[] { 1 }, new long[] { 1 }),
    };

    private static readonly Dictionary<string, int> ElementSizes = new()
    {
        ["FloatStorage"] = 4, ["HalfStorage"] = 2, ["BFloat16Storage"] = 2, ["DoubleStorage"] = 8, ["LongStorage"] = 8,
        ["IntStorage"] = 4, ["ShortStorage"] = 2, ["CharStorage"] = 1, ["ByteStorage"] = 1, ["BoolStorage"] = 1,
    };

    private static List<(string Key, byte[] Data)> Storages(IEnumerable<PickledTensor> tensors)
    {
        var list = new List<(string, byte[])>();
        var seen = new HashSet<string>();
        int salt = 0;
        foreach (PickledTensor t in tensors)
        {
            if (!seen.Add(t.StorageKey)) continue;
            var data = new byte[t.Numel * ElementSizes[t.StorageType]];
            for (int i = 0; i < data.Length; i++) data[i] = (byte)(0x3c + (i * 5 + salt++) % 7); // small, finite values in every dtype
            list.Add((t.StorageKey, data));
        }
        return list;
    }

    /// <summary>A zip checkpoint laid out as torch.save writes one (entries stored, under one folder).</summary>
    public static byte[] PthZip(string folder, byte[] pickle, IEnumerable<(string Key, byte[] Data)> storages, string byteorder = "little")
    {
        var entries = new List<(string, byte[])>
        {
            (folder + "/data.pkl", pickle),
            (folder + "/.format_version", Ascii("1")),
            (folder + "/.storage_alignment", Ascii("64")),
            (folder + "/byteorder", Ascii(byteorder)),
        };
        foreach (var (key, data) in storages) entries.Add((folder + "/data/" + key, data));
        entries.Add((folder + "/version", Ascii("3\n")));
        entries.Add((folder + "/.data/serialization_id", Ascii("1234567890123456789012345678901234567890")));
        return Zip(entries);
    }

    private static byte[] Zip(IEnumerable<(string Name, byte[] Data)> entries)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, data) in entries)
            {
                using Stream w = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                w.Write(data);
            }
        }
        return ms.ToArray();
    }

    private static List<(string Name, byte[] Data)> Unzip(byte[] zipBytes)
    {
        using var zip = new ZipArchive(new MemoryStream(zipBytes), ZipArchiveMode.Read);
        var list = new List<(string, byte[])>();
        foreach (ZipArchiveEntry e in zip.Entries)
        {
            using Stream r = e.Open();
            var ms = new MemoryStream();
            r.CopyTo(ms);
            list.Add((e.FullName, ms.ToArray()));
        }
        return list;
    }

    /// <summary>A view of one zip entry (by name suffix): mutated, then zipped again with a valid CRC and sizes.</summary>
    public static FuzzView ZipEntry(string suffix) => new("entry " + suffix,
        b => Unzip(b).First(e => e.Name.EndsWith(suffix, StringComparison.Ordinal)).Data,
        (seed, content) => Zip(Unzip(seed).Select(e => e.Name.EndsWith(suffix, StringComparison.Ordinal) ? (e.Name, content) : e)));

    public static IReadOnlyList<FuzzSeed> PthZipSeeds()
    {
        FuzzView pickle = ZipEntry("/data.pkl");
        FuzzView[] views = { FuzzView.Raw, pickle, pickle, pickle, ZipEntry("/byteorder") };
        return new[]
        {
            new FuzzSeed("zip-small", PthZip("small", TorchPickle.StateDict(SmallStateDict, legacy: false), Storages(SmallStateDict)), views),
            new FuzzSeed("zip-dtypes", PthZip("archive", TorchPickle.StateDict(DtypeStateDict, legacy: false), Storages(DtypeStateDict)), views),
            new FuzzSeed("zip-bigendian", PthZip("be", TorchPickle.StateDict(SmallStateDict.Take(2), legacy: false), Storages(SmallStateDict.Take(2)), "big"), views),
        };
    }

    /// <summary>A legacy checkpoint: magic number, protocol version and sys_info pickles, the state dict, the storage
    /// keys, then each storage as an int64 element count and its bytes.</summary>
    public static byte[] PthLegacy(IReadOnlyList<PickledTensor> tensors)
    {
        var b = new List<byte>();
        byte[] magic = { 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };
        b.AddRange(new byte[] { 0x80, 2, 0x8a, 10 });
        b.AddRange(magic);
        b.Add((byte)'.');
        b.AddRange(new byte[] { 0x80, 2, (byte)'M', 0xe9, 0x03, (byte)'.' });
        var info = new TorchPickle();
        info.Op((byte)'}');
        info.Op((byte)'(');
        info.Str("protocol_version");
        info.Int(1001);
        info.Str("little_endian");
        info.Op(0x88);
        info.Str("type_sizes");
        info.Op((byte)'}', (byte)'(');
        info.Str("short"); info.Int(2);
        info.Str("int"); info.Int(4);
        info.Str("long"); info.Int(4);
        info.Op((byte)'u', (byte)'u', (byte)'.');
        b.AddRange(info.Bytes);
        b.AddRange(TorchPickle.StateDict(tensors, legacy: true));
        List<(string Key, byte[] Data)> storages = Storages(tensors.Where(t => t.View is null));
        var keys = new TorchPickle();
        keys.Op((byte)']', (byte)'(');
        foreach (var (key, _) in storages) keys.Str(key);
        keys.Op((byte)'e', (byte)'.');
        b.AddRange(keys.Bytes);
        foreach (var (key, data) in storages)
        {
            PickledTensor t = tensors.First(x => x.StorageKey == key);
            var count = new byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(count, data.Length / ElementSizes[t.StorageType]);
            b.AddRange(count);
            b.AddRange(data);
        }
        return b.ToArray();
    }

    public static IReadOnlyList<FuzzSeed> PthLegacySeeds()
    {
        var withView = new List<PickledTensor>(SmallStateDict.Take(3))
        {
            // A view of storage 0 under its own key, as pre-1.6 torch wrote shared storages.
            new("classifier.1.bias", "FloatStorage", "0", 12, 0, new long[] { 3 }, new long[] { 1 }, View: ("900", 4, 3)),
        };
        return new[]
        {
            new FuzzSeed("legacy-small", PthLegacy(withView)),
            new FuzzSeed("legacy-dtypes", PthLegacy(DtypeStateDict)),
        };
    }

    public static readonly byte[][] PickleDictionary = new[]
    {
        "\x80\x02", "\x80\x05", "\x95\x08\0\0\0\0\0\0\0", ".", "(", ")", "]", "}", "t", "l", "d", "u", "s", "e", "a", "b", "R", "Q", "N",
        "\x85", "\x86", "\x87", "\x88", "\x89", "\x81", "\x92", "\x93", "\x94", "0", "1", "2", "h\0", "j\0\0\0\0", "q\0", "r\xff\xff\xff\x7f",
        "K\xff", "M\xff\xff", "J\xff\xff\xff\x7f", "J\0\0\0\x80", "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f", "\x8a\x00", "\x8b\xff\x03\0\0",
        "G\x7f\xf0\0\0\0\0\0\0", "X\xff\xff\xff\xff", "X\0\0\0\0", "\x8c\x07storage", "\x8c\x03cpu", "U\x01x", "T\xff\xff\xff\x7f", "C\x01x", "B\0\0\0\0",
        "ccollections\nOrderedDict\n", "ctorch._utils\n_rebuild_tensor_v2\n", "ctorch._utils\n_rebuild_tensor\n",
        "ctorch._utils\n_rebuild_parameter\n", "ctorch._utils\n_rebuild_parameter_with_state\n", "ctorch\nFloatStorage\n",
        "ctorch\nHalfStorage\n", "ctorch\nLongStorage\n", "ctorch\nBoolStorage\n", "cos\nsystem\n", "cbuiltins\neval\n", "c__builtin__\nset\n",
        "\x8c\x06module", "\xff\xff\xff\xff\xff\xff\xff\x7f", "\0\0\0\0\0\0\0\x80",
    }.Select(s => s.Select(c => (byte)c).ToArray()).ToArray();

    // ------------------------------------------------------------------ ONNX

    private sealed class Tensors(Dictionary<string, LoadedTensor> t) : IWeightSource
    {
        public string Origin => "fuzz seed";

        public IReadOnlyList<string> Keys => t.Keys.ToList();

        public bool TryGet(string key, out LoadedTensor tensor) => t.TryGetValue(key, out tensor!);
    }

    /// <summary>Our exporter's ONNX file for <paramref name="model"/>, with made-up weights.</summary>
    public static byte[] Exported(ModelInfo model)
    {
        var d = new Dictionary<string, LoadedTensor>(StringComparer.Ordinal);
        int salt = 0;
        foreach (ParameterInfo p in model.AllParameters)
        {
            float[] v = Values((int)p.Count, salt++);
            if (p.Key.EndsWith("running_var", StringComparison.Ordinal)) v = v.Select(x => Math.Abs(x) + 0.5f).ToArray();
            d[p.Key] = new LoadedTensor(p.Key, p.Shape, "F32", v);
        }
        return ViaTempFile(path => OnnxExporter.Export(model, new Tensors(d), path));
    }

    private static void Varint(List<byte> into, ulong v)
    {
        while (v >= 0x80) { into.Add((byte)(v | 0x80)); v >>= 7; }
        into.Add((byte)v);
    }

    private static void Field(List<byte> into, int field, byte[] payload)
    {
        Varint(into, (ulong)(field << 3 | 2));
        Varint(into, (ulong)payload.Length);
        into.AddRange(payload);
    }

    private static byte[] OnnxTensor(string name, long[] dims, int dataType, Action<List<byte>> data)
    {
        var b = new List<byte>();
        foreach (long d in dims) { Varint(b, 1 << 3); Varint(b, unchecked((ulong)d)); }
        Varint(b, 2 << 3);
        Varint(b, (ulong)dataType);
        data(b);
        Field(b, 8, Utf8(name));
        return b.ToArray();
    }

    /// <summary>A model whose graph holds only initializers, of every data type and encoding the reader takes.</summary>
    private static byte[] OnnxInitializers()
    {
        var g = new List<byte>();
        Field(g, 5, OnnxTensor("raw_f32", new long[] { 2, 2 }, 1, b => Field(b, 9, FloatBytes(Values(4, 1)))));
        Field(g, 5, OnnxTensor("packed_f32", new long[] { 3 }, 1, b => Field(b, 4, FloatBytes(Values(3, 2)))));
        Field(g, 5, OnnxTensor("unpacked_f32", new long[] { 2 }, 1, b =>
        {
            foreach (float f in Values(2, 3)) { Varint(b, 4 << 3 | 5); b.AddRange(BitConverter.GetBytes(f)); }
        }));
        Field(g, 5, OnnxTensor("raw_f16", new long[] { 2 }, 10, b => Field(b, 9, new byte[] { 0x00, 0x3c, 0x00, 0xc0 })));
        Field(g, 5, OnnxTensor("int32_bf16", new long[] { 2 }, 16, b => { var p = new List<byte>(); Varint(p, 0x3f80); Varint(p, 0x4000); Field(b, 5, p.ToArray()); }));
        Field(g, 5, OnnxTensor("double", new long[] { 1 }, 11, b => Field(b, 10, BitConverter.GetBytes(2.5))));
        Field(g, 5, OnnxTensor("int64", new long[] { 2 }, 7, b => { var p = new List<byte>(); Varint(p, 1); Varint(p, 300); Field(b, 7, p.ToArray()); }));
        Field(g, 5, OnnxTensor("scalar", Array.Empty<long>(), 1, b => Field(b, 9, FloatBytes(new[] { 1f }))));
        Field(g, 11, Concat(new List<byte>(), l => Field(l, 1, Utf8("input"))));
        var m = new List<byte>();
        Varint(m, 1 << 3);
        Varint(m, 8);
        Field(m, 2, Utf8("fuzz"));
        Field(m, 3, Utf8("1.0"));
        Field(m, 7, g.ToArray());
        // opset_import: { domain "", version 17 }
        Field(m, 8, Concat(new List<byte>(), l => { Field(l, 1, Array.Empty<byte>()); Varint(l, 2 << 3); Varint(l, 17); }));
        return m.ToArray();
    }

    private static byte[] Concat(List<byte> b, Action<List<byte>> fill)
    {
        fill(b);
        return b.ToArray();
    }

    /// <summary>
    /// A copy of an ONNX file with every initializer replaced by a one-element float tensor of the same name, so that a
    /// real exporter's graph (nodes, attributes, constants, value infos) is kept at a few kilobytes.
    /// </summary>
    public static byte[] ShrinkInitializers(byte[] model)
    {
        var m = new List<byte>();
        foreach (var (field, wire, value, raw) in ProtoFields(model))
        {
            if (field == 7 && wire == 2)
            {
                var g = new List<byte>();
                foreach (var (gf, gw, gv, graw) in ProtoFields(value))
                {
                    if (gf == 5 && gw == 2)
                    {
                        string name = "";
                        foreach (var (tf, tw, tv, _) in ProtoFields(gv)) if (tf == 8 && tw == 2) name = Encoding.UTF8.GetString(tv);
                        Field(g, 5, OnnxTensor(name, new long[] { 1 }, 1, b => Field(b, 9, FloatBytes(new[] { 0.25f }))));
                    }
                    else g.AddRange(graw);
                }
                Field(m, 7, g.ToArray());
            }
            else m.AddRange(raw);
        }
        return m.ToArray();
    }

    /// <summary>The top-level fields of a protobuf message: number, wire type, payload (length-delimited) and raw bytes.</summary>
    private static List<(int Field, int Wire, byte[] Value, byte[] Raw)> ProtoFields(byte[] b)
    {
        var list = new List<(int, int, byte[], byte[])>();
        int pos = 0;
        ulong Read()
        {
            ulong v = 0;
            for (int s = 0; ; s += 7)
            {
                byte c = b[pos++];
                v |= (ulong)(c & 0x7f) << s;
                if (c < 0x80) return v;
            }
        }
        while (pos < b.Length)
        {
            int start = pos;
            ulong key = Read();
            int wire = (int)(key & 7);
            byte[] value = Array.Empty<byte>();
            switch (wire)
            {
                case 0: Read(); break;
                case 1: pos += 8; break;
                case 5: pos += 4; break;
                case 2:
                {
                    int n = (int)Read();
                    value = b.AsSpan(pos, n).ToArray();
                    pos += n;
                    break;
                }
                default: throw new InvalidDataException("wire type " + wire);
            }
            list.Add(((int)(key >> 3), wire, value, b.AsSpan(start, pos - start).ToArray()));
        }
        return list;
    }

    public static IReadOnlyList<FuzzSeed> OnnxSeeds(IReadOnlyList<ModelInfo> models, byte[]? torchExport)
    {
        var seeds = models.Select(m => new FuzzSeed("exported-" + m.Name, Exported(m))).ToList();
        seeds.Add(new FuzzSeed("initializers", OnnxInitializers()));
        if (torchExport is not null) seeds.Add(new FuzzSeed("torch-export-shrunk", ShrinkInitializers(torchExport)));
        return seeds;
    }

    public static readonly byte[][] OnnxDictionary = BuildOnnxDictionary();

    private static byte[][] BuildOnnxDictionary()
    {
        var list = new List<byte[]>();
        // Tags of the fields the reader reads, with each wire type; a few lengths.
        foreach (int field in new[] { 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 13, 14, 20 })
            foreach (int wire in new[] { 0, 1, 2, 3, 5 })
            {
                var b = new List<byte>();
                Varint(b, (ulong)(field << 3 | wire));
                list.Add(b.ToArray());
            }
        foreach (string s in new[] { "Conv", "Gemm", "MatMul", "Add", "Mul", "Div", "Pow", "LRN", "MaxPool", "AveragePool", "GlobalAveragePool",
            "BatchNormalization", "Relu", "Flatten", "Constant", "Identity", "kernel_shape", "strides", "pads", "group", "transB", "alpha", "beta",
            "epsilon", "auto_pad", "SAME_UPPER", "dilations", "ceil_mode", "count_include_pad", "value", "size", "bias", "training_mode", "com.microsoft" })
        {
            list.Add(Utf8(s));
        }
        list.Add(new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 });
        list.Add(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x08 });
        list.Add(new byte[] { 0x0a, 0x00 });
        list.Add(new byte[] { 0x3a, 0x7f });
        return list.ToArray();
    }

    // ------------------------------------------------------------------ IDX

    public static byte[] Idx(uint magic, int[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        for (int d = 0; d < dims.Length; d++) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4 + 4 * d), (uint)dims[d]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    public static byte[] Gzip(byte[] raw)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(raw);
        return ms.ToArray();
    }

    private static byte[] Gunzip(byte[] gz)
    {
        using var s = new GZipStream(new MemoryStream(gz), CompressionMode.Decompress);
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>The decompressed data of a gzip file, compressed again after mutation.</summary>
    public static readonly FuzzView Gunzipped = new("gunzipped", Gunzip, (_, m) => Gzip(m));

    public static IReadOnlyList<FuzzSeed> IdxSeeds()
    {
        byte[] images = Idx(0x803, new[] { 3, 4, 5 }, Enumerable.Range(0, 60).Select(i => (byte)(i * 37)).ToArray());
        byte[] labels = Idx(0x801, new[] { 7 }, new byte[] { 0, 1, 2, 9, 4, 5, 3 });
        return new[]
        {
            new FuzzSeed("images", images),
            new FuzzSeed("labels", labels),
            new FuzzSeed("images-gz", Gzip(images), FuzzView.Raw, Gunzipped, Gunzipped),
            new FuzzSeed("labels-gz", Gzip(labels), FuzzView.Raw, Gunzipped, Gunzipped),
        };
    }

    public static readonly byte[][] IdxDictionary =
    {
        new byte[] { 0, 0, 8, 3 }, new byte[] { 0, 0, 8, 1 }, new byte[] { 0, 0, 9, 3 }, new byte[] { 0, 0, 8, 0xff }, new byte[] { 0x1f, 0x8b },
        new byte[] { 0x1f, 0x8b, 8, 0 }, new byte[] { 0, 0x98, 0x96, 0x80 }, new byte[] { 0, 0x98, 0x96, 0x81 }, new byte[] { 0, 0, 0x10, 0 },
        new byte[] { 0, 0, 0x10, 1 }, new byte[] { 0x7f, 0xff, 0xff, 0xff }, new byte[] { 0xff, 0xff, 0xff, 0xff },
    };

    // ------------------------------------------------------------------ images

    public static byte[] Encode(int width, int height, SKColorType type, SKEncodedImageFormat format, int quality = 90)
    {
        var alpha = type == SKColorType.Gray8 ? SKAlphaType.Opaque : SKAlphaType.Unpremul;
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, type, alpha));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 40 + y), (byte)(200 - y * 30), (byte)(x * y * 7), (byte)(255 - x * 9)));
        using SKData data = bitmap.Encode(format, quality);
        return data.ToArray();
    }

    /// <summary>PNG chunks: (type, data).</summary>
    private static List<(string Type, byte[] Data)> PngChunks(byte[] png)
    {
        var list = new List<(string, byte[])>();
        int pos = 8;
        while (pos + 12 <= png.Length)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            if (len < 0 || pos + 12 + len > png.Length) break;
            list.Add((Encoding.ASCII.GetString(png, pos + 4, 4), png.AsSpan(pos + 8, len).ToArray()));
            pos += 12 + len;
        }
        return list;
    }

    private static byte[] Png(IEnumerable<(string Type, byte[] Data)> chunks)
    {
        var ms = new MemoryStream();
        ms.Write(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A });
        Span<byte> u32 = stackalloc byte[4];
        foreach (var (type, data) in chunks)
        {
            BinaryPrimitives.WriteUInt32BigEndian(u32, (uint)data.Length);
            ms.Write(u32);
            byte[] typeAndData = Ascii(type).Concat(data).ToArray();
            ms.Write(typeAndData);
            BinaryPrimitives.WriteUInt32BigEndian(u32, Pytorch.PthFile.Crc32(typeAndData));
            ms.Write(u32);
        }
        return ms.ToArray();
    }

    /// <summary>
    /// Every chunk's CRC recomputed after mutation, so libpng gets past its checksums: the chunk walk follows the
    /// (possibly mutated) lengths, and whatever follows the last whole chunk is kept as it is.
    /// </summary>
    public static readonly FuzzView PngCrcFixed = new("crc-fixed", b => b, (_, m) =>
    {
        byte[] r = (byte[])m.Clone();
        int pos = 8;
        while (pos + 12 <= r.Length)
        {
            long len = BinaryPrimitives.ReadUInt32BigEndian(r.AsSpan(pos));
            if (pos + 12 + len > r.Length) break;
            uint crc = Pytorch.PthFile.Crc32(r.AsSpan(pos + 4, 4 + (int)len));
            BinaryPrimitives.WriteUInt32BigEndian(r.AsSpan(pos + 8 + (int)len), crc);
            pos += 12 + (int)len;
        }
        return r;
    });

    /// <summary>The inflated image data (all IDAT chunks): mutated, deflated again into one IDAT with a valid CRC.</summary>
    public static readonly FuzzView PngInflated = new("inflated-idat",
        b =>
        {
            byte[] z = PngChunks(b).Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray();
            using var s = new ZLibStream(new MemoryStream(z), CompressionMode.Decompress);
            var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        },
        (seed, raw) =>
        {
            var ms = new MemoryStream();
            using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true)) z.Write(raw);
            var chunks = new List<(string, byte[])>();
            bool idat = false;
            foreach (var c in PngChunks(seed))
            {
                if (c.Type != "IDAT") chunks.Add(c);
                else if (!idat) { chunks.Add(("IDAT", ms.ToArray())); idat = true; }
            }
            return Png(chunks);
        });

    /// <summary>The PNG's chunks with the metadata chunks the decoder parses added (gAMA, sRGB, tRNS, iCCP-less text).</summary>
    private static byte[] PngWithChunks(byte[] png)
    {
        var chunks = PngChunks(png);
        var extra = new List<(string, byte[])>
        {
            ("gAMA", new byte[] { 0, 0, 0xb1, 0x8f }),
            ("sRGB", new byte[] { 0 }),
            ("pHYs", new byte[] { 0, 0, 0x0b, 0x13, 0, 0, 0x0b, 0x13, 1 }),
            ("tEXt", Ascii("Comment\0fuzz seed")),
        };
        chunks.InsertRange(1, extra);
        return Png(chunks);
    }

    /// <summary>A 24-bit bottom-up BMP (Skia decodes BMP but does not encode it): file header, BITMAPINFOHEADER, padded rows.</summary>
    public static byte[] Bmp(int width, int height)
    {
        int row = (width * 3 + 3) / 4 * 4;
        var b = new byte[14 + 40 + row * height];
        b[0] = (byte)'B';
        b[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(2), b.Length);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(10), 14 + 40);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(28), 24);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(34), row * height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width * 3; x++) b[54 + y * row + x] = (byte)(x * 30 + y * 70);
        return b;
    }

    public static IReadOnlyList<FuzzSeed> ImageSeeds()
    {
        FuzzView[] png = { FuzzView.Raw, PngCrcFixed, PngCrcFixed, PngInflated, PngInflated };
        return new[]
        {
            new FuzzSeed("png-rgba", Encode(7, 5, SKColorType.Rgba8888, SKEncodedImageFormat.Png), png),
            new FuzzSeed("png-gray", Encode(6, 4, SKColorType.Gray8, SKEncodedImageFormat.Png), png),
            new FuzzSeed("png-chunks", PngWithChunks(Encode(5, 3, SKColorType.Rgb888x, SKEncodedImageFormat.Png)), png),
            new FuzzSeed("jpeg", Encode(9, 7, SKColorType.Rgba8888, SKEncodedImageFormat.Jpeg)),
            new FuzzSeed("jpeg-16x16-q40", Encode(16, 16, SKColorType.Rgba8888, SKEncodedImageFormat.Jpeg, 40)),
            new FuzzSeed("jpeg-gray", Encode(8, 8, SKColorType.Gray8, SKEncodedImageFormat.Jpeg)),
            new FuzzSeed("webp", Encode(6, 5, SKColorType.Rgba8888, SKEncodedImageFormat.Webp, 80)),
            new FuzzSeed("bmp", Bmp(3, 2)),
        };
    }

    public static readonly byte[][] ImageDictionary = new[]
    {
        "IHDR", "IDAT", "IEND", "PLTE", "tRNS", "gAMA", "iCCP", "sBIT", "sRGB", "cHRM", "bKGD", "acTL", "fcTL", "fdAT", "eXIf", "zTXt",
        "\x89PNG\r\n\x1a\n", "\0\0\0\0", "\x7f\xff\xff\xff", "\0\0\x27\x10",
        "\xff\xd8\xff", "\xff\xd9", "\xff\xc0", "\xff\xc1", "\xff\xc2", "\xff\xc4", "\xff\xda", "\xff\xdb", "\xff\xdd\0\x04\0\x01", "\xff\xe0", "\xff\xe1",
        "\xff\xfe", "\xff\xd0", "\xff\xff", "\0\x11\x08", "\x03\x01\x22\0", "\x01\x01\x11\0",
        "RIFF", "WEBP", "VP8 ", "VP8L", "VP8X", "ALPH", "BM",
    }.Select(s => s.Select(c => (byte)c).ToArray()).ToArray();

    // ------------------------------------------------------------------ key-mapping files

    public static IReadOnlyList<FuzzSeed> KeyMapSeeds() => new[]
    {
        new FuzzSeed("keymap", Utf8("# torchvision names\nfeatures.0 = conv1      # the first convolution\nfeatures.3 = conv2\n\nclassifier.6 = fc8\n")),
        new FuzzSeed("keymap-crlf", Utf8("\uFEFFa = b\r\nc.d = e.f\r\n# end\r\n")),
    };

    public static readonly byte[][] KeyMapDictionary = new[]
    {
        "=", "#", "\n", "\r\n", " ", "\t", ".", "features.0", "conv1", "\u00a0", "\u2028", "\uFEFF", "\0", "==", "a = b\n",
    }.Select(Utf8).ToArray();
}
