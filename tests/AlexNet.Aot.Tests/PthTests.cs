using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using AlexNet.Aot.Models;
using AlexNet.Aot.Pytorch;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>PyTorch checkpoints (zip and legacy formats) and <see cref="WeightsFile"/>'s detection by content.</summary>
public sealed class PthTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "alexnet-pth-" + Guid.NewGuid().ToString("N"));

    public PthTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string Temp(string name, byte[] bytes)
    {
        string p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    // ------------------------------------------------------------------ the fixtures

    public static TheoryData<string, string> PthFixtures => new()
    {
        { "tv-mini", "tv-mini.pth" },
        { "tv-mini", "tv-mini.legacy.pth" },
        { "paper-mini", "paper-mini.pth" },
        { "bn-mini", "bn-mini.pth" },
    };

    [Theory]
    [MemberData(nameof(PthFixtures))]
    public void EveryTensorEqualsTheSafetensorsOne(string model, string file)
    {
        PthFile pth = PthFile.Load(Fixtures.Path(model, file));
        SafeTensorsFile st = SafeTensorsFile.Load(Fixtures.Path(model, model + ".safetensors"));
        Assert.Equal(file.Contains(".legacy.") ? "legacy" : "zip", pth.Format);

        // safetensors sorts its keys; the checkpoint keeps the state dict's (module) order.
        Assert.Equal(st.Keys.OrderBy(k => k, StringComparer.Ordinal), pth.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(pth.Keys.OrderBy(StateDictRank).ToArray(), pth.Keys.ToArray());
        Assert.StartsWith("features.0.", pth.Keys[0]);

        foreach (string key in st.Keys)
        {
            Assert.True(st.TryGet(key, out LoadedTensor want));
            Assert.True(pth.TryGet(key, out LoadedTensor got), key);
            Assert.Equal(key, got.Key);
            Assert.Equal(want.Shape, got.Shape);
            Assert.Equal(want.DType, got.DType);
            Assert.Equal(want.Data.Length, got.Data.Length);
            for (int i = 0; i < want.Data.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want.Data[i]) == BitConverter.SingleToInt32Bits(got.Data[i]), $"{key}[{i}]: {got.Data[i]} vs {want.Data[i]}");
        }
        Assert.False(pth.TryGet("no.such.key", out _));
    }

    /// <summary>torchvision's state-dict order: features then classifier, layers by index, then parameter kind.</summary>
    private static (int, int, int) StateDictRank(string key)
    {
        string[] p = key.Split('.');
        int section = p[0] == "features" ? 0 : 1;
        int layer = int.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture);
        int kind = Array.IndexOf(new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" }, p[2]);
        Assert.True(kind >= 0, key);
        return (section, layer, kind);
    }

    [Fact]
    public void ZipAndLegacyFormatsGiveTheSameKeysInTheSameOrder()
    {
        PthFile zip = PthFile.Load(Fixtures.Path("tv-mini", "tv-mini.pth"));
        PthFile legacy = PthFile.Load(Fixtures.Path("tv-mini", "tv-mini.legacy.pth"));
        Assert.Equal(zip.Keys, legacy.Keys);
    }

    [Theory]
    [MemberData(nameof(PthFixtures))]
    public void LogitsFromTheCheckpointMatchPyTorch(string model, string file)
    {
        ModelEntry entry = ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in");
        IWeightSource weights = WeightsFile.Load(Fixtures.Path(model, file));
        Assert.IsType<PthFile>(weights);
        SafeTensorsFile oracle = SafeTensorsFile.Load(Fixtures.Path(model, model + ".oracle.safetensors"));
        Assert.True(oracle.TryGet("logits_eval", out LoadedTensor expected));

        const int batch = 4;
        float[] input = FixtureInputs.Hash(batch * entry.Info.InputLength);
        using Network net = entry.Create(weights, batch);
        var logits = new float[batch * net.Classes];
        net.Forward(input, logits, batch, logits: true);
        double worst = 0;
        for (int i = 0; i < logits.Length; i++) worst = Math.Max(worst, Math.Abs(logits[i] - expected.Data[i]));
        Assert.True(worst <= 1e-4, $"{model} ({file}): largest |ours - PyTorch| = {worst:g3}");
    }

    // ------------------------------------------------------------------ hostile pickles

    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>PROTO 2, GLOBAL 'module\nname\n', SHORT_BINUNICODE 'echo pwned', TUPLE1, REDUCE, STOP.</summary>
    private static byte[] EvilGlobal(string module, string name) =>
        Concat(new byte[] { 0x80, 2, (byte)'c' }, Ascii(module + "\n" + name + "\n"), new byte[] { 0x8c, 10 }, Ascii("echo pwned"), new byte[] { 0x85, (byte)'R', (byte)'.' });

    /// <summary>PROTO 4, SHORT_BINUNICODE module, SHORT_BINUNICODE name, STACK_GLOBAL, SHORT_BINUNICODE 'echo pwned', TUPLE1, REDUCE, STOP.</summary>
    private static byte[] EvilStackGlobal(string module, string name) =>
        Concat(new byte[] { 0x80, 4, 0x8c, (byte)module.Length }, Ascii(module), new byte[] { 0x94, 0x8c, (byte)name.Length }, Ascii(name),
            new byte[] { 0x94, 0x93, 0x8c, 10 }, Ascii("echo pwned"), new byte[] { 0x85, (byte)'R', (byte)'.' });

    public static TheoryData<string, string, bool> EvilGlobals => new()
    {
        { "os", "system", false },
        { "builtins", "eval", false },
        { "posix", "system", false },
        { "subprocess", "Popen", false },
        { "os", "system", true },
        { "builtins", "eval", true },
        { "posix", "system", true },
    };

    [Theory]
    [MemberData(nameof(EvilGlobals))]
    public void APickleCallingAnUnlistedGlobalIsRefused(string module, string name, bool stackGlobal)
    {
        byte[] evil = stackGlobal ? EvilStackGlobal(module, name) : EvilGlobal(module, name);
        string expected = $"refuses pickle global {module}.{name} (only a state dict's types are allowed)";

        // As a bare pickle, through both entry points.
        string raw = Temp("evil.pkl", evil);
        AssertFails(raw, expected, () => PthFile.Load(raw));
        AssertFails(raw, expected, () => WeightsFile.Load(raw));

        // As the data.pkl of a zip checkpoint built from a real one.
        string zip = Temp("evil.pth", ReplaceEntry(File.ReadAllBytes(Fixtures.Path("tv-mini", "tv-mini.pth")), "data.pkl", evil));
        AssertFails(zip, expected, () => WeightsFile.Load(zip));

        // As the main pickle of a legacy checkpoint.
        string legacy = Temp("evil.legacy.pth", Concat(LegacyPreamble(), evil));
        AssertFails(legacy, expected, () => WeightsFile.Load(legacy));
    }

    [Fact]
    public void ACallToAnAllowedGlobalWithHostileArgumentsIsRefused()
    {
        // OrderedDict('echo pwned') and a storage type called as a function.
        byte[] a = Concat(new byte[] { 0x80, 2, (byte)'c' }, Ascii("collections\nOrderedDict\n"), new byte[] { 0x8c, 10 }, Ascii("echo pwned"), new byte[] { 0x85, (byte)'R', (byte)'.' });
        string pa = Temp("a.pkl", a);
        AssertFails(pa, "OrderedDict called with 1 arguments", () => PthFile.Load(pa));
        byte[] b = Concat(new byte[] { 0x80, 2, (byte)'c' }, Ascii("torch\nFloatStorage\n"), new byte[] { 0x8c, 10 }, Ascii("echo pwned"), new byte[] { 0x85, (byte)'R', (byte)'.' });
        string pb = Temp("b.pkl", b);
        AssertFails(pb, "cannot be called", () => PthFile.Load(pb));
    }

    private static byte[] LegacyPreamble()
    {
        byte[] magic = { 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };
        return Concat(new byte[] { 0x80, 2, 0x8a, 10 }, magic, new byte[] { (byte)'.' },
            new byte[] { 0x80, 2, (byte)'M', 0xe9, 0x03, (byte)'.' },
            new byte[] { 0x80, 2, (byte)'}', (byte)'.' });
    }

    private static void AssertFails(string path, string fragment, Action load)
    {
        WeightsException e = Assert.Throws<WeightsException>(load);
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(fragment, e.Message);
    }

    /// <summary>A copy of a zip checkpoint with the entry ending in <paramref name="suffix"/> replaced.</summary>
    private static byte[] ReplaceEntry(byte[] zipBytes, string suffix, byte[] content)
    {
        using var src = new ZipArchive(new MemoryStream(zipBytes), ZipArchiveMode.Read);
        var ms = new MemoryStream();
        using (var dst = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (ZipArchiveEntry e in src.Entries)
            {
                ZipArchiveEntry n = dst.CreateEntry(e.FullName, CompressionLevel.NoCompression);
                using Stream w = n.Open();
                if (e.FullName.EndsWith("/" + suffix, StringComparison.Ordinal))
                    w.Write(content);
                else
                    using (Stream r = e.Open()) r.CopyTo(w);
            }
        }
        return ms.ToArray();
    }

    // ------------------------------------------------------------------ truncation

    [Theory]
    [InlineData("tv-mini", "tv-mini.pth")]
    [InlineData("tv-mini", "tv-mini.legacy.pth")]
    [InlineData("bn-mini", "bn-mini.pth")]
    public void TruncatedCheckpointsFailCleanly(string model, string file)
    {
        byte[] whole = File.ReadAllBytes(Fixtures.Path(model, file));
        for (int k = 0; k < 16; k++)
        {
            int length = (int)((long)whole.Length * k / 16);
            string p = Temp($"cut{k}-{file}", whole.AsSpan(0, length).ToArray());
            WeightsException e = Assert.Throws<WeightsException>(() => PthFile.Load(p));
            Assert.StartsWith(p + ": ", e.Message);
            WeightsException e2 = Assert.Throws<WeightsException>(() => WeightsFile.Load(p));
            Assert.StartsWith(p + ": ", e2.Message);
        }
    }

    [Fact]
    public void LegacyTruncatedAtEverySectionBoundaryFailsCleanly()
    {
        byte[] whole = File.ReadAllBytes(Fixtures.Path("tv-mini", "tv-mini.legacy.pth"));
        // Cut just before and after the end of each storage's count and bytes, walking the real layout.
        var cuts = new List<int> { 1, 14, 15, 21, 137, 138, 2297, 2298, 2561, 2562 };
        PthFile ok = PthFile.Load(Fixtures.Path("tv-mini", "tv-mini.legacy.pth"));
        int pos = 2562;
        while (pos + 8 <= whole.Length)
        {
            long count = BinaryPrimitives.ReadInt64LittleEndian(whole.AsSpan(pos));
            cuts.Add(pos + 4);
            cuts.Add(pos + 8);
            pos += 8 + (int)count * 4;
            cuts.Add(pos - 1);
        }
        Assert.Equal(whole.Length, pos);
        foreach (int cut in cuts.Where(c => c < whole.Length).Distinct())
        {
            string p = Temp($"legacy-cut{cut}.pth", whole.AsSpan(0, cut).ToArray());
            WeightsException e = Assert.Throws<WeightsException>(() => PthFile.Load(p));
            Assert.StartsWith(p + ": ", e.Message);
        }
        Assert.Equal(16, ok.Keys.Count);

        string extra = Temp("legacy-extra.pth", Concat(whole, new byte[] { 1, 2, 3 }));
        AssertFails(extra, "3 bytes after the last storage", () => PthFile.Load(extra));
    }

    [Fact]
    public void ACorruptStorageFailsItsChecksum()
    {
        byte[] bytes = File.ReadAllBytes(Fixtures.Path("tv-mini", "tv-mini.pth"));
        bytes[10_000] ^= 0x40; // inside tv-mini/data/0, stored uncompressed
        string p = Temp("flipped.pth", bytes);
        AssertFails(p, "zip entry tv-mini/data/0 fails its CRC-32 check", () => WeightsFile.Load(p));
    }

    // ------------------------------------------------------------------ zip bombs

    private static byte[] ZipOf(params (string Name, byte[] Data, CompressionLevel Level)[] entries)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, data, level) in entries)
            {
                using Stream w = zip.CreateEntry(name, level).Open();
                w.Write(data);
            }
        }
        return ms.ToArray();
    }

    [Fact]
    public void AZipBombIsRefused()
    {
        byte[] zeros = new byte[50 << 20];
        byte[] pickle = StateDict(new TensorSpec("w", "FloatStorage", "0", 4, 0, new long[] { 4 }, new long[] { 1 }));
        byte[] bomb = ZipOf(("archive/data.pkl", pickle, CompressionLevel.NoCompression), ("archive/data/0", zeros, CompressionLevel.Optimal));
        Assert.True(bomb.Length < 1 << 20, $"the bomb is {bomb.Length} bytes");

        // The default limits: at most 64 times the file's size.
        string p = Temp("bomb.pth", bomb);
        AssertFails(p, "zip bomb", () => PthFile.Load(p));
        AssertFails(p, "zip bomb", () => WeightsFile.Load(p));

        // A low absolute cap, with the ratio out of the way.
        var limits = PthLimits.Default with { MaxTotalBytes = 1 << 20, MaxRatio = 1 << 20 };
        AssertFails(p, "zip bomb", () => PthFile.Load(p, limits));

        // An entry that lies about its size: declares 16 bytes, inflates to 50 MB.
        byte[] liar = (byte[])bomb.Clone();
        PatchSizes(liar, "archive/data/0", 16);
        string q = Temp("liar.pth", liar);
        // Only the declared 16 bytes are ever inflated, and their checksum gives the lie away.
        AssertFails(q, "fails its CRC-32 check", () => PthFile.Load(q, PthLimits.Default with { MaxRatio = 1 << 20 }));
        Assert.Equal(0xCBF43926u, PthFile.Crc32(Ascii("123456789")));
        Assert.Equal(0x414FA339u, PthFile.Crc32(Ascii("The quick brown fox jumps over the lazy dog")));

        // An entry that declares more than it holds.
        byte[] shortOne = ZipOf(("archive/data.pkl", StateDict(new TensorSpec("w", "FloatStorage", "0", 8, 0, new long[] { 8 }, new long[] { 1 })), CompressionLevel.NoCompression),
            ("archive/data/0", Floats(1, 2, 3, 4), CompressionLevel.NoCompression));
        PatchSizes(shortOne, "archive/data/0", 32);
        string s = Temp("short.pth", shortOne);
        AssertFails(s, "declares 32 bytes but holds only 16", () => PthFile.Load(s));

        // Too many entries.
        var many = Enumerable.Range(0, 50).Select(i => ($"archive/x{i}", new byte[1], CompressionLevel.NoCompression)).Append(("archive/data.pkl", pickle, CompressionLevel.NoCompression)).ToArray();
        string r = Temp("many.pth", ZipOf(many));
        AssertFails(r, "entries, more than the limit of 10", () => PthFile.Load(r, PthLimits.Default with { MaxZipEntries = 10 }));
    }

    /// <summary>Rewrites an entry's uncompressed size in its local header and in the central directory.</summary>
    private static void PatchSizes(byte[] zip, string name, uint size)
    {
        byte[] n = Encoding.ASCII.GetBytes(name);
        int patched = 0;
        for (int i = 0; i + 46 < zip.Length; i++)
        {
            uint sig = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i));
            if (sig == 0x04034b50 && zip.AsSpan(i + 30, n.Length).SequenceEqual(n) && BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(i + 26)) == n.Length)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 22), size);
                patched++;
            }
            else if (sig == 0x02014b50 && zip.AsSpan(i + 46, Math.Min(n.Length, zip.Length - i - 46)).SequenceEqual(n) && BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(i + 28)) == n.Length)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 24), size);
                patched++;
            }
        }
        Assert.Equal(2, patched);
    }

    // ------------------------------------------------------------------ crafted checkpoints

    private sealed record TensorSpec(string Key, string StorageType, string StorageKey, long Numel, long Offset, long[] Sizes, long[] Strides);

    private static void Int(List<byte> b, long v)
    {
        if (v >= int.MinValue && v <= int.MaxValue)
        {
            b.Add((byte)'J');
            var tmp = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(tmp, (int)v);
            b.AddRange(tmp);
        }
        else
        {
            b.Add(0x8a);
            b.Add(8);
            var tmp = new byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(tmp, v);
            b.AddRange(tmp);
        }
    }

    private static void Str(List<byte> b, string s)
    {
        byte[] u = Encoding.UTF8.GetBytes(s);
        b.Add((byte)'X');
        var tmp = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(tmp, u.Length);
        b.AddRange(tmp);
        b.AddRange(u);
    }

    private static void Global(List<byte> b, string module, string name)
    {
        b.Add((byte)'c');
        b.AddRange(Ascii(module + "\n" + name + "\n"));
    }

    /// <summary>A protocol-2 pickle of an OrderedDict of _rebuild_tensor_v2 tensors, as torch.save writes it.</summary>
    private static byte[] StateDict(params TensorSpec[] tensors)
    {
        var b = new List<byte> { 0x80, 2 };
        Global(b, "collections", "OrderedDict");
        b.Add((byte)')');
        b.Add((byte)'R');
        b.Add((byte)'(');
        foreach (TensorSpec t in tensors)
        {
            Str(b, t.Key);
            Global(b, "torch._utils", "_rebuild_tensor_v2");
            b.Add((byte)'(');
            b.Add((byte)'(');
            Str(b, "storage");
            Global(b, "torch", t.StorageType);
            Str(b, t.StorageKey);
            Str(b, "cpu");
            Int(b, t.Numel);
            b.Add((byte)'t');
            b.Add((byte)'Q');
            Int(b, t.Offset);
            b.Add((byte)'(');
            foreach (long s in t.Sizes) Int(b, s);
            b.Add((byte)'t');
            b.Add((byte)'(');
            foreach (long s in t.Strides) Int(b, s);
            b.Add((byte)'t');
            b.Add(0x89);
            Global(b, "collections", "OrderedDict");
            b.Add((byte)')');
            b.Add((byte)'R');
            b.Add((byte)'t');
            b.Add((byte)'R');
        }
        b.Add((byte)'u');
        b.Add((byte)'.');
        return b.ToArray();
    }

    private string Checkpoint(string name, byte[] pickle, params (string Key, byte[] Data)[] storages) => Checkpoint(name, pickle, null, storages);

    private string Checkpoint(string name, byte[] pickle, string? byteorder, params (string Key, byte[] Data)[] storages)
    {
        var entries = new List<(string, byte[], CompressionLevel)> { ("archive/data.pkl", pickle, CompressionLevel.NoCompression) };
        if (byteorder is not null) entries.Add(("archive/byteorder", Ascii(byteorder), CompressionLevel.NoCompression));
        foreach (var (key, data) in storages) entries.Add(("archive/data/" + key, data, CompressionLevel.NoCompression));
        entries.Add(("archive/version", Ascii("3\n"), CompressionLevel.NoCompression));
        return Temp(name, ZipOf(entries.ToArray()));
    }

    private static byte[] Floats(params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        return b;
    }

    [Fact]
    public void OffsetsAndStridesAreHonoured()
    {
        float[] values = Enumerable.Range(0, 8).Select(i => (float)i).ToArray();
        byte[] pickle = StateDict(
            new TensorSpec("transposed", "FloatStorage", "0", 8, 1, new long[] { 3, 2 }, new long[] { 1, 3 }), // x[i, j] = s[1 + i + 3j]
            new TensorSpec("offset", "FloatStorage", "0", 8, 5, new long[] { 3 }, new long[] { 1 }),
            new TensorSpec("broadcast", "FloatStorage", "0", 8, 2, new long[] { 2, 2 }, new long[] { 0, 1 }),
            new TensorSpec("scalar", "FloatStorage", "0", 8, 7, Array.Empty<long>(), Array.Empty<long>()),
            new TensorSpec("empty", "FloatStorage", "0", 8, 0, new long[] { 0, 5 }, new long[] { 5, 1 }),
            new TensorSpec("count", "LongStorage", "1", 1, 0, Array.Empty<long>(), Array.Empty<long>()));
        string p = Checkpoint("strides.pth", pickle, ("0", Floats(values)), ("1", new byte[8]));
        PthFile f = PthFile.Load(p);
        Assert.Equal(new[] { "transposed", "offset", "broadcast", "scalar", "empty", "count" }, f.Keys);
        Assert.True(f.TryGet("transposed", out LoadedTensor t));
        Assert.Equal(new[] { 3, 2 }, t.Shape);
        Assert.Equal(new float[] { 1, 4, 2, 5, 3, 6 }, t.Data);
        Assert.True(f.TryGet("offset", out t));
        Assert.Equal(new float[] { 5, 6, 7 }, t.Data);
        Assert.True(f.TryGet("broadcast", out t));
        Assert.Equal(new float[] { 2, 3, 2, 3 }, t.Data);
        Assert.True(f.TryGet("scalar", out t));
        Assert.Empty(t.Shape);
        Assert.Equal(new float[] { 7 }, t.Data);
        Assert.True(f.TryGet("empty", out t));
        Assert.Equal(new[] { 0, 5 }, t.Shape);
        Assert.Empty(t.Data);
        Assert.True(f.TryGet("count", out t));
        Assert.Equal("I64", t.DType);
        Assert.Empty(t.Data);
    }

    [Fact]
    public void HalfBFloat16DoubleAndBigEndianStoragesAreConverted()
    {
        var half = new byte[4];
        BinaryPrimitives.WriteHalfLittleEndian(half, (Half)1.5f);
        BinaryPrimitives.WriteHalfLittleEndian(half.AsSpan(2), (Half)(-2f));
        var bf = new byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(bf, (ushort)(BitConverter.SingleToInt32Bits(3.25f) >> 16));
        BinaryPrimitives.WriteUInt16LittleEndian(bf.AsSpan(2), (ushort)(BitConverter.SingleToInt32Bits(-0.5f) >> 16));
        var dbl = new byte[16];
        BinaryPrimitives.WriteDoubleLittleEndian(dbl, 0.25);
        BinaryPrimitives.WriteDoubleLittleEndian(dbl.AsSpan(8), 1e10);
        byte[] pickle = StateDict(
            new TensorSpec("h", "HalfStorage", "0", 2, 0, new long[] { 2 }, new long[] { 1 }),
            new TensorSpec("b", "BFloat16Storage", "1", 2, 0, new long[] { 2 }, new long[] { 1 }),
            new TensorSpec("d", "DoubleStorage", "2", 2, 0, new long[] { 2 }, new long[] { 1 }));
        PthFile f = PthFile.Load(Checkpoint("dtypes.pth", pickle, ("0", half), ("1", bf), ("2", dbl)));
        Assert.True(f.TryGet("h", out LoadedTensor t));
        Assert.Equal("F16", t.DType);
        Assert.Equal(new[] { 1.5f, -2f }, t.Data);
        Assert.True(f.TryGet("b", out t));
        Assert.Equal("BF16", t.DType);
        Assert.Equal(new[] { 3.25f, -0.5f }, t.Data);
        Assert.True(f.TryGet("d", out t));
        Assert.Equal(new[] { 0.25f, 1e10f }, t.Data);

        var big = new byte[8];
        BinaryPrimitives.WriteSingleBigEndian(big, 1.25f);
        BinaryPrimitives.WriteSingleBigEndian(big.AsSpan(4), -7f);
        PthFile g = PthFile.Load(Checkpoint("big.pth", StateDict(new TensorSpec("x", "FloatStorage", "0", 2, 0, new long[] { 2 }, new long[] { 1 })), "big", ("0", big)));
        Assert.True(g.TryGet("x", out t));
        Assert.Equal(new[] { 1.25f, -7f }, t.Data);

        string odd = Checkpoint("odd-order.pth", StateDict(new TensorSpec("x", "FloatStorage", "0", 2, 0, new long[] { 2 }, new long[] { 1 })), "middle", ("0", big));
        AssertFails(odd, "not \"little\" or \"big\"", () => PthFile.Load(odd));
    }

    public static TheoryData<string, string> BadTensors => new()
    {
        { "short-storage", "past the end of storage 0" },
        { "short-storage-strided", "past the end of storage 0" },
        { "offset-past-end", "past the end of storage 0" },
        { "negative-size", "size[0] is negative (-3)" },
        { "huge-size", "size[1] is too large" },
        { "negative-stride", "stride[0] is negative" },
        { "negative-offset", "storage offset -1 is not a non-negative integer" },
        { "negative-numel", "element count -4 is not a non-negative integer" },
        { "rank-mismatch", "size has 2 dimensions but stride has 1" },
        { "complex-dtype", "refuses pickle global torch.ComplexFloatStorage" },
        { "storage-bytes-mismatch", "holds 16 bytes, but the pickle declares 4 elements of F64 (32 bytes)" },
        { "missing-storage", "has no entry archive/data/7" },
        { "overflowing-extent", "overflows" },
    };

    [Theory]
    [MemberData(nameof(BadTensors))]
    public void BadTensorsAreRefused(string which, string fragment)
    {
        byte[] four = Floats(1, 2, 3, 4);
        (TensorSpec spec, byte[] data) = which switch
        {
            "short-storage" => (new TensorSpec("w", "FloatStorage", "0", 4, 0, new long[] { 5 }, new long[] { 1 }), four),
            "short-storage-strided" => (new TensorSpec("w", "FloatStorage", "0", 4, 0, new long[] { 2, 2 }, new long[] { 3, 1 }), four),
            "offset-past-end" => (new TensorSpec("w", "FloatStorage", "0", 4, 3, new long[] { 2 }, new long[] { 1 }), four),
            "negative-size" => (new TensorSpec("w", "FloatStorage", "0", 4, 0, new long[] { -3 }, new long[] { 1 }), four),
            "huge-size" => (new TensorSpec("w", "FloatStorage", "0", 4, 0, new long[] { 1, 1L << 40 }, new long[] { 1, 1 }), four),
            "negative-stride" => (new TensorSpec("w", "FloatStorage", "0", 4, 3, new long[] { 2 }, new long[] { -1 }), four),
            "negative-offset" => (new TensorSpec("w", "FloatStorage", "0", 4, -1, new long[] { 2 }, new long[] { 1 }), four),
            "negative-numel" => (new TensorSpec("w", "FloatStorage", "0", -4, 0, new long[] { 2 }, new long[] { 1 }), four),
            "rank-mismatch" => (new TensorSpec("w", "FloatStorage", "0", 4, 0, new long[] { 2, 2 }, new long[] { 1 }), four),
            "complex-dtype" => (new TensorSpec("w", "ComplexFloatStorage", "0", 2, 0, new long[] { 2 }, new long[] { 1 }), four),
            // 4 floats (16 bytes) declared as 4 doubles.
            "storage-bytes-mismatch" => (new TensorSpec("w", "DoubleStorage", "0", 4, 0, new long[] { 4 }, new long[] { 1 }), four),
            "missing-storage" => (new TensorSpec("w", "FloatStorage", "7", 4, 0, new long[] { 4 }, new long[] { 1 }), four),
            "overflowing-extent" => (new TensorSpec("w", "FloatStorage", "0", 4, 0, new long[] { 1 << 30, 1 << 30, 1 << 30 }, new long[] { 1L << 61, 1L << 61, 1 }), four),
            _ => throw new ArgumentException(which),
        };
        string p = Checkpoint(which + ".pth", StateDict(spec), ("0", data));
        AssertFails(p, fragment, () => PthFile.Load(p));
        AssertFails(p, fragment, () => WeightsFile.Load(p));
    }

    [Fact]
    public void NotAStateDictIsRefused()
    {
        // A list at the top, a dict with a non-tensor value, a persistent id that is not a storage, an unknown opcode.
        string list = Checkpoint("list.pth", new byte[] { 0x80, 2, (byte)']', (byte)'.' });
        AssertFails(list, "not a state dict", () => PthFile.Load(list));
        string val = Checkpoint("value.pth", Concat(new byte[] { 0x80, 2, (byte)'}', 0x8c, 1, (byte)'x', (byte)'K', 5, (byte)'s', (byte)'.' }));
        AssertFails(val, "state dict entry \"x\" is 5, not a tensor", () => PthFile.Load(val));
        string pid = Checkpoint("pid.pth", Concat(new byte[] { 0x80, 2, 0x8c, 3 }, Ascii("abc"), new byte[] { 0x85, (byte)'Q', (byte)'.' }));
        AssertFails(pid, "persistent id ('abc',)", () => PthFile.Load(pid));
        string op = Checkpoint("op.pth", new byte[] { 0x80, 2, (byte)'i', (byte)'.' });
        AssertFails(op, "unsupported pickle opcode 0x69", () => PthFile.Load(op));
        string nostop = Checkpoint("nostop.pth", new byte[] { 0x80, 2, (byte)'}' });
        AssertFails(nostop, "without the pickle's STOP", () => PthFile.Load(nostop));
        string nopkl = Temp("nopkl.pth", ZipOf(("archive/other", new byte[3], CompressionLevel.NoCompression)));
        AssertFails(nopkl, "no data.pkl", () => PthFile.Load(nopkl));
        string badMagic = Temp("badmagic.pth", new byte[] { 0x80, 2, (byte)'K', 7, (byte)'.' });
        AssertFails(badMagic, "not PyTorch's magic number", () => PthFile.Load(badMagic));
    }

    [Fact]
    public void DeepNestingAndMemoAbuseStayBounded()
    {
        // 100k MARKs: refused at the nesting limit, not a stack overflow.
        byte[] marks = Concat(new byte[] { 0x80, 2 }, Enumerable.Repeat((byte)'(', 100_000).ToArray(), new byte[] { (byte)'.' });
        string p = Checkpoint("marks.pth", marks);
        AssertFails(p, "nested MARKs", () => PthFile.Load(p));
        // A list appended to itself, then BINGET'd many times: linear, and refused as not a state dict.
        var b = new List<byte> { 0x80, 2, (byte)']', (byte)'q', 0 };
        for (int i = 0; i < 10_000; i++) { b.Add((byte)'h'); b.Add(0); b.Add((byte)'a'); }
        b.Add((byte)'.');
        string q = Checkpoint("selfref.pth", b.ToArray());
        AssertFails(q, "not a state dict", () => PthFile.Load(q));
        // Memo get of an entry never put.
        string r = Checkpoint("memo.pth", new byte[] { 0x80, 2, (byte)'h', 9, (byte)'.' });
        AssertFails(r, "memo get of entry 9", () => PthFile.Load(r));
    }

    // ------------------------------------------------------------------ WeightsFile dispatch

    [Fact]
    public void WeightsFileDetectsTheFormatByContent()
    {
        // Extensions are ignored: copies under misleading names.
        string st = Temp("weights.pth", File.ReadAllBytes(Fixtures.Path("tv-mini", "tv-mini.safetensors")));
        Assert.IsType<SafeTensorsFile>(WeightsFile.Load(st));
        string zip = Temp("weights.safetensors", File.ReadAllBytes(Fixtures.Path("tv-mini", "tv-mini.pth")));
        Assert.Equal("zip", Assert.IsType<PthFile>(WeightsFile.Load(zip)).Format);
        string legacy = Temp("weights.onnx", File.ReadAllBytes(Fixtures.Path("tv-mini", "tv-mini.legacy.pth")));
        Assert.Equal("legacy", Assert.IsType<PthFile>(WeightsFile.Load(legacy)).Format);
        Assert.Equal(WeightsFile.Load(st).Keys.Count, WeightsFile.Load(legacy).Keys.Count);
    }

    [Fact]
    public void WeightsFileSendsOnnxToTheOnnxReader()
    {
        string onnx = Fixtures.Path("bn-mini", "bn-mini.onnx");
        Assert.Equal(0x08, File.ReadAllBytes(onnx)[0]);
        // Without the model: the file's own initializer names. With it: the spec's keys, batch norm folded by the exporter included.
        Assert.NotEmpty(WeightsFile.Load(onnx).Keys);
        ModelInfo model = AlexNet.Aot.Models.ModelCatalog.Find("bn-mini")!.Info;
        IWeightSource bound = WeightsFile.Load(onnx, model);
        Assert.True(bound.TryGet("features.0.weight", out LoadedTensor w));
        Assert.Equal(new[] { 16, 3, 11, 11 }, w.Shape);
    }

    [Fact]
    public void WeightsFileRefusesWhatItDoesNotKnow()
    {
        string unknown = Temp("mystery.bin", new byte[] { 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02 });
        AssertFails(unknown, "unknown weights format (first bytes: de ad be ef 01 02)", () => WeightsFile.Load(unknown));
        string text = Temp("text.safetensors", Ascii("hello, world, this is not weights"));
        AssertFails(text, "first bytes: 68 65 6c 6c 6f", () => WeightsFile.Load(text));
        string empty = Temp("empty.pth", Array.Empty<byte>());
        AssertFails(empty, "file is empty", () => WeightsFile.Load(empty));
        AssertFails(empty, "file is empty", () => PthFile.Load(empty));
        AssertFails(_dir, "is a directory", () => WeightsFile.Load(_dir));
        AssertFails(_dir, "is a directory", () => PthFile.Load(_dir));
        string missing = Path.Combine(_dir, "missing.pth");
        AssertFails(missing, "file not found", () => WeightsFile.Load(missing));
        AssertFails(missing, "file not found", () => PthFile.Load(missing));
        // A safetensors file with a header length past the end still goes to (and is refused by) the safetensors reader.
        byte[] bad = new byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(bad, 2);
        bad[8] = (byte)'{';
        bad[9] = (byte)'}';
        string tiny = Temp("tiny.bin", bad);
        AssertFails(tiny, "", () => WeightsFile.Load(tiny));
    }
}
