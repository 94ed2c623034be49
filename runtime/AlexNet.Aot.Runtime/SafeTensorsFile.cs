using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Unicode;

namespace AlexNet.Aot;

/// <summary>
/// A safetensors file, read and checked in full: an 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON (key to dtype, shape and data offsets, plus an optional <c>__metadata__</c> object of strings),
/// then the tensors' bytes, which must cover the data buffer exactly, without overlaps or holes.
/// Floating-point tensors (F32, F16, BF16, F64) are converted to float32; integer and bool tensors keep
/// their shape and dtype with empty <see cref="LoadedTensor.Data"/>.
/// Every problem with the file is a <see cref="WeightsException"/> whose message starts with the file's path.
/// A training checkpoint (metadata <c>format</c> = <c>alexnet-aot-checkpoint/1</c> with a <c>checksum</c>,
/// <see cref="Training.TrainingCheckpoint"/>) is verified against its SHA-256 checksum as it is read.
/// </summary>
public sealed class SafeTensorsFile : IWeightSource
{
    /// <summary>The largest header accepted, in bytes (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly Dictionary<string, LoadedTensor> _tensors;
    private readonly string[] _keys;

    private SafeTensorsFile(string origin, string[] keys, Dictionary<string, LoadedTensor> tensors, Dictionary<string, string> metadata)
    {
        Origin = origin;
        _keys = keys;
        _tensors = tensors;
        Metadata = metadata;
    }

    /// <inheritdoc/>
    public string Origin { get; }

    /// <summary>Every tensor key, in the order of the JSON header (<c>__metadata__</c> excluded).</summary>
    public IReadOnlyList<string> Keys => _keys;

    /// <summary>The header's <c>__metadata__</c> object (string to string); empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <inheritdoc/>
    public bool TryGet(string key, out LoadedTensor tensor)
    {
        if (key is not null && _tensors.TryGetValue(key, out LoadedTensor? t))
        {
            tensor = t;
            return true;
        }
        tensor = null!;
        return false;
    }

    /// <summary>
    /// Float32 tensors at least this large (in bytes) are read in place from a memory-mapped file by
    /// <see cref="Load(string, bool)"/>; smaller ones (biases, statistics) are copied into arrays.
    /// </summary>
    public const int MapThresholdBytes = 64 * 1024;

    /// <summary>
    /// Reads and checks the safetensors file at <paramref name="path"/>; large float32 tensors are memory-mapped
    /// (used in place, no copy) unless the environment variable <c>ALEXNET_MMAP</c> is <c>0</c>.
    /// </summary>
    /// <exception cref="WeightsException">The file is missing, unreadable or malformed; the message starts with <paramref name="path"/>.</exception>
    public static SafeTensorsFile Load(string path) => Load(path, MappedFile.Enabled);

    /// <summary>
    /// Reads and checks the safetensors file at <paramref name="path"/>. With <paramref name="memoryMap"/>, the file is
    /// mapped read-only and every little-endian float32 tensor of at least <see cref="MapThresholdBytes"/> bytes at a
    /// 4-byte-aligned offset is used in place (<see cref="LoadedTensor.IsMapped"/>): the weights cost page cache, shared
    /// with every other process mapping the file, instead of a private copy. The whole file is still checked as it is
    /// without mapping (header, offsets, and a checkpoint's checksum over every byte).
    /// A mapped file must not be truncated in place while tensors from it are in use (replacing it by rename is safe).
    /// </summary>
    /// <exception cref="WeightsException">The file is missing, unreadable or malformed; the message starts with <paramref name="path"/>.</exception>
    public static SafeTensorsFile Load(string path, bool memoryMap)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            throw new WeightsException($"{path}: is a directory, not a safetensors file");
        if (!File.Exists(path))
            throw new WeightsException($"{path}: file not found");
        // Streams the file: the header first, then each tensor straight into its float array (no copy of the whole
        // file), or, mapped, each large float32 tensor read where it lies.
        try
        {
            using Microsoft.Win32.SafeHandles.SafeFileHandle handle = File.OpenHandle(path);
            long length = RandomAccess.GetLength(handle);
            Span<byte> prefix = stackalloc byte[8];
            int got = ReadAt(handle, prefix, 0);
            ulong headerLength = CheckPrefix(path, prefix.Slice(0, got), length);
            var header = new byte[(int)headerLength];
            if (ReadAt(handle, header, 8) != header.Length)
                throw Fail(path, "the file changed while it was read");
            long dataSize = length - 8 - (long)headerLength;
            if (dataSize > int.MaxValue)
                throw Fail(path, $"{dataSize} bytes of tensor data: more than this reader supports (2 GiB)");
            (string[] keys, List<Entry> infos, Dictionary<string, string> metadata) = ParseHeader(path, header, (int)dataSize);
            long dataStart = 8 + (long)headerLength;
            MappedFile? map = null;
            if (memoryMap && BitConverter.IsLittleEndian && infos.Exists(e => Mappable(e, dataStart)))
            {
                try
                {
                    map = MappedFile.Map(handle, length);
                }
                catch (ArgumentException)
                {
                    // The mapping is sized to the length read above; a file that shrank since cannot be mapped that far.
                    throw Fail(path, "the file changed while it was read");
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
                {
                    map = null; // a file system that cannot map (some network or virtual ones): read the tensors instead
                }
            }
            var tensors = new Dictionary<string, LoadedTensor>(infos.Count, StringComparer.Ordinal);
            using System.Security.Cryptography.IncrementalHash? hash = Training.CheckpointChecksum.Begin(metadata);
            foreach (Entry e in infos)
            {
                if (map is not null && Mappable(e, dataStart))
                {
                    ReadOnlyMemory<float> mapped = map.Floats(dataStart + e.Begin, (int)e.Count);
                    if (hash is not null) Training.CheckpointChecksum.Append(hash, e.Key, e.Shape, map.Bytes(dataStart + e.Begin, (int)(e.End - e.Begin)));
                    tensors.Add(e.Key, new LoadedTensor(e.Key, e.Shape, e.DType, mapped, mapped: true));
                    continue;
                }
                float[] values;
                if (e.DType == "F32" && BitConverter.IsLittleEndian)
                {
                    values = new float[e.Count];
                    if (ReadAt(handle, MemoryMarshal.AsBytes(values.AsSpan()), dataStart + e.Begin) != e.End - e.Begin)
                        throw Fail(path, "the file changed while it was read");
                    if (hash is not null) Training.CheckpointChecksum.Append(hash, e.Key, e.Shape, MemoryMarshal.AsBytes(values.AsSpan()));
                }
                else if (IsFloat(e.DType) || hash is not null)
                {
                    var raw = new byte[e.End - e.Begin];
                    if (ReadAt(handle, raw, dataStart + e.Begin) != raw.Length)
                        throw Fail(path, "the file changed while it was read");
                    if (hash is not null) Training.CheckpointChecksum.Append(hash, e.Key, e.Shape, raw);
                    values = IsFloat(e.DType) ? Convert(e.DType, raw, e.Count) : Array.Empty<float>();
                }
                else
                {
                    values = Array.Empty<float>();
                }
                tensors.Add(e.Key, new LoadedTensor(e.Key, e.Shape, e.DType, values));
            }
            if (hash is not null) Training.CheckpointChecksum.Verify(hash, metadata, path);
            return new SafeTensorsFile(path, keys, tensors, metadata);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException)
        {
            throw new WeightsException($"{path}: cannot read the file: {e.Message}", e);
        }
    }

    /// <summary>Whether <paramref name="e"/> is read in place from a mapping: float32, large, 4-byte aligned in the file.</summary>
    private static bool Mappable(Entry e, long dataStart) =>
        e.DType == "F32" && e.End - e.Begin >= MapThresholdBytes && (dataStart + e.Begin) % sizeof(float) == 0;

    private static int ReadAt(Microsoft.Win32.SafeHandles.SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer.Slice(total), offset + total);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    /// <summary>Checks the 8-byte header length against the file's length; returns it.</summary>
    private static ulong CheckPrefix(string origin, ReadOnlySpan<byte> prefix, long fileLength)
    {
        if (prefix.Length < 8)
            throw Fail(origin, $"file is {fileLength} bytes long, shorter than the 8-byte header length that starts a safetensors file (truncated or not a safetensors file)");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > MaxHeaderBytes)
            throw Fail(origin, $"header length {headerLength} is absurd (the limit is {MaxHeaderBytes} bytes); not a safetensors file, or a corrupt one");
        long available = fileLength - 8L;
        if ((long)headerLength > available)
            throw Fail(origin, $"header length {headerLength} runs past the end of the file: only {available} bytes follow the 8-byte length (truncated?)");
        return headerLength;
    }

    /// <summary>Parses and checks a safetensors file held in memory.</summary>
    /// <param name="bytes">The whole file.</param>
    /// <param name="origin">Where the bytes come from (a path), for <see cref="Origin"/> and error messages.</param>
    /// <exception cref="WeightsException">The bytes are not a valid safetensors file; the message starts with <paramref name="origin"/>.</exception>
    public static SafeTensorsFile Parse(ReadOnlySpan<byte> bytes, string origin)
    {
        origin ??= "<memory>";
        ulong headerLength = CheckPrefix(origin, bytes.Slice(0, Math.Min(8, bytes.Length)), bytes.Length);
        ReadOnlySpan<byte> header = bytes.Slice(8, (int)headerLength);
        ReadOnlySpan<byte> data = bytes.Slice(8 + (int)headerLength);
        (string[] keys, List<Entry> infos, Dictionary<string, string> metadata) = ParseHeader(origin, header, data.Length);
        var tensors = new Dictionary<string, LoadedTensor>(infos.Count, StringComparer.Ordinal);
        using System.Security.Cryptography.IncrementalHash? hash = Training.CheckpointChecksum.Begin(metadata);
        foreach (Entry e in infos)
        {
            ReadOnlySpan<byte> src = data.Slice((int)e.Begin, (int)(e.End - e.Begin));
            if (hash is not null) Training.CheckpointChecksum.Append(hash, e.Key, e.Shape, src);
            tensors.Add(e.Key, new LoadedTensor(e.Key, e.Shape, e.DType, Convert(e.DType, src, e.Count)));
        }
        if (hash is not null) Training.CheckpointChecksum.Verify(hash, metadata, origin);
        return new SafeTensorsFile(origin, keys, tensors, metadata);
    }

    /// <summary>Parses and checks the JSON header against a data section of <paramref name="dataSize"/> bytes: keys in file order, entries, metadata.</summary>
    private static (string[] Keys, List<Entry> Infos, Dictionary<string, string> Metadata) ParseHeader(string origin, ReadOnlySpan<byte> header, int dataSize)
    {
        if (!Utf8.IsValid(header))
            throw Fail(origin, "header is not valid UTF-8");

        var keys = new List<string>();
        var infos = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            var reader = new Utf8JsonReader(header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 });
            using JsonDocument doc = JsonDocument.ParseValue(ref reader);
            if (reader.Read()) // default options reject a second value with a JsonException; this is a fallback
            {
                throw Fail(origin, $"header has content after the JSON object at byte {reader.TokenStartIndex}");
            }
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Fail(origin, $"header is a JSON {Describe(root.ValueKind)}, not an object");

            var seen = new HashSet<string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (JsonProperty p in root.EnumerateObject())
            {
                string key = p.Name;
                if (key == MetadataKey)
                {
                    if (sawMetadata)
                        throw Fail(origin, $"duplicate key \"{MetadataKey}\" in the header");
                    sawMetadata = true;
                    ReadMetadata(origin, p.Value, metadata);
                    continue;
                }
                if (!seen.Add(key))
                    throw Fail(origin, $"duplicate key \"{key}\" in the header");
                infos.Add(ReadEntry(origin, key, p.Value, dataSize));
                keys.Add(key);
            }
        }
        catch (JsonException e)
        {
            throw new WeightsException($"{origin}: header is not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // A string escape the JSON reader accepts but cannot turn into a string: an unpaired surrogate (\ud800).
            throw new WeightsException($"{origin}: header has a key or string that is not valid text (an unpaired \\uD800-\\uDFFF escape): {e.Message}", e);
        }

        CheckLayout(origin, infos, dataSize);
        return (keys.ToArray(), infos, metadata);
    }

    /// <summary>
    /// Writes float32 tensors as a safetensors file, in the order given, the header padded with spaces to a
    /// multiple of 8 bytes. The file is written to a temporary file in the same folder, then moved over
    /// <paramref name="path"/>, so readers never see a half-written file.
    /// </summary>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <param name="tensors">Key, shape (outermost first) and row-major values of each tensor.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> strings.</param>
    /// <exception cref="ArgumentException">A key is empty, repeated or <c>__metadata__</c>, a dimension is negative, or a tensor's value count does not match its shape.</exception>
    /// <exception cref="WeightsException">The file cannot be written; the message starts with <paramref name="path"/>.</exception>
    public static void Write(string path, IEnumerable<(string Key, int[] Shape, float[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);

        var list = new List<(string Key, int[] Shape, float[] Data)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (string.IsNullOrEmpty(t.Key))
                throw new ArgumentException("a tensor key is null or empty", nameof(tensors));
            if (t.Key == MetadataKey)
                throw new ArgumentException($"\"{MetadataKey}\" is reserved and cannot be a tensor key", nameof(tensors));
            if (!seen.Add(t.Key))
                throw new ArgumentException($"duplicate tensor key \"{t.Key}\"", nameof(tensors));
            if (t.Shape is null || t.Data is null)
                throw new ArgumentException($"tensor \"{t.Key}\" has a null shape or data", nameof(tensors));
            long count = 1;
            foreach (int d in t.Shape)
            {
                if (d < 0)
                    throw new ArgumentException($"tensor \"{t.Key}\" has a negative dimension in shape [{string.Join(", ", t.Shape)}]", nameof(tensors));
                count *= d;
                if (count > Array.MaxLength)
                    throw new ArgumentException($"tensor \"{t.Key}\" shape [{string.Join(", ", t.Shape)}] is too large", nameof(tensors));
            }
            if (count != t.Data.Length)
                throw new ArgumentException($"tensor \"{t.Key}\" has {t.Data.Length} values but shape [{string.Join(", ", t.Shape)}] needs {count}", nameof(tensors));
            list.Add(t);
        }

        byte[] header = BuildHeader(list, metadata);

        AtomicFile.Write(path, fs =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
            fs.Write(len);
            fs.Write(header);
            foreach (var t in list) AtomicFile.WriteFloats(fs, t.Data);
        });
    }

    private static byte[] BuildHeader(List<(string Key, int[] Shape, float[] Data)> list, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false }))
        {
            w.WriteStartObject();
            if (metadata is not null && metadata.Count > 0)
            {
                w.WriteStartObject(MetadataKey);
                foreach (KeyValuePair<string, string> kv in metadata)
                {
                    if (kv.Key is null || kv.Value is null)
                        throw new ArgumentException("metadata keys and values cannot be null", nameof(metadata));
                    w.WriteString(kv.Key, kv.Value);
                }
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in list)
            {
                w.WriteStartObject(t.Key);
                w.WriteString("dtype", "F32");
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                offset += 4L * t.Data.Length;
                w.WriteNumberValue(offset);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int n = (int)ms.Length;
        int padding = (8 - n % 8) % 8;
        for (int i = 0; i < padding; i++) ms.WriteByte((byte)' ');
        return ms.ToArray();
    }

    private sealed record Entry(string Key, string DType, int[] Shape, long Count, long Begin, long End);

    private static void ReadMetadata(string origin, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Fail(origin, $"\"{MetadataKey}\" is a JSON {Describe(value.ValueKind)}, not an object of strings");
        foreach (JsonProperty m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw Fail(origin, $"\"{MetadataKey}\" entry \"{m.Name}\" is a JSON {Describe(m.Value.ValueKind)}, not a string");
            if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                throw Fail(origin, $"duplicate key \"{m.Name}\" in \"{MetadataKey}\"");
        }
    }

    private static Entry ReadEntry(string origin, string key, JsonElement value, int dataSize)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Fail(origin, $"tensor \"{key}\": entry is a JSON {Describe(value.ValueKind)}, not an object with dtype, shape and data_offsets");

        JsonElement? dtypeEl = null, shapeEl = null, offsetsEl = null;
        foreach (JsonProperty f in value.EnumerateObject())
        {
            switch (f.Name)
            {
                case "dtype":
                    if (dtypeEl.HasValue) throw Fail(origin, $"tensor \"{key}\": duplicate field \"dtype\"");
                    dtypeEl = f.Value;
                    break;
                case "shape":
                    if (shapeEl.HasValue) throw Fail(origin, $"tensor \"{key}\": duplicate field \"shape\"");
                    shapeEl = f.Value;
                    break;
                case "data_offsets":
                    if (offsetsEl.HasValue) throw Fail(origin, $"tensor \"{key}\": duplicate field \"data_offsets\"");
                    offsetsEl = f.Value;
                    break;
                default:
                    break; // unknown fields are ignored, as the reference implementation does
            }
        }

        // dtype
        if (!dtypeEl.HasValue)
            throw Fail(origin, $"tensor \"{key}\": missing \"dtype\"");
        if (dtypeEl.Value.ValueKind != JsonValueKind.String)
            throw Fail(origin, $"tensor \"{key}\": \"dtype\" is a JSON {Describe(dtypeEl.Value.ValueKind)}, not a string");
        string dtype = dtypeEl.Value.GetString()!;
        int elementSize = ElementSize(dtype);
        if (elementSize == 0)
            throw Fail(origin, $"tensor \"{key}\": unknown dtype \"{dtype}\" (expected one of F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");

        // shape
        if (!shapeEl.HasValue)
            throw Fail(origin, $"tensor \"{key}\": missing \"shape\"");
        if (shapeEl.Value.ValueKind != JsonValueKind.Array)
            throw Fail(origin, $"tensor \"{key}\": \"shape\" is a JSON {Describe(shapeEl.Value.ValueKind)}, not an array of non-negative integers");
        var shape = new int[shapeEl.Value.GetArrayLength()];
        int i = 0;
        bool hasZero = false;
        foreach (JsonElement d in shapeEl.Value.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v))
                throw Fail(origin, $"tensor \"{key}\": shape dimension {i} is {Raw(d)}, {NotAnInteger(d)}");
            if (v < 0)
                throw Fail(origin, $"tensor \"{key}\": shape dimension {i} is negative ({v})");
            if (v > int.MaxValue)
                throw Fail(origin, $"tensor \"{key}\": shape dimension {i} is too large ({v})");
            shape[i++] = (int)v;
            hasZero |= v == 0;
        }
        string shapeText = "[" + string.Join(", ", shape) + "]";
        long count = 1;
        if (hasZero)
        {
            count = 0;
        }
        else
        {
            foreach (int d in shape)
            {
                if (count > long.MaxValue / d)
                    throw Fail(origin, $"tensor \"{key}\": the element count of shape {shapeText} overflows");
                count *= d;
            }
        }
        if (count > long.MaxValue / elementSize)
            throw Fail(origin, $"tensor \"{key}\": the byte size of shape {shapeText} with dtype {dtype} overflows");
        long expectedBytes = count * elementSize;

        // data_offsets
        if (!offsetsEl.HasValue)
            throw Fail(origin, $"tensor \"{key}\": missing \"data_offsets\"");
        JsonElement off = offsetsEl.Value;
        if (off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Fail(origin, $"tensor \"{key}\": \"data_offsets\" is {Raw(off)}, not an array of two integers [begin, end]");
        long begin = ReadOffset(origin, key, off[0], "begin");
        long end = ReadOffset(origin, key, off[1], "end");
        if (begin > end)
            throw Fail(origin, $"tensor \"{key}\": data_offsets begin {begin} is after end {end}");
        if (end > dataSize)
            throw Fail(origin, $"tensor \"{key}\": data_offsets end {end} is past the end of the data ({dataSize} bytes after the header; truncated?)");
        if (end - begin != expectedBytes)
            throw Fail(origin, $"tensor \"{key}\": data_offsets [{begin}, {end}] hold {end - begin} bytes, but shape {shapeText} of {dtype} needs {expectedBytes}");
        if (IsFloat(dtype) && count > Array.MaxLength)
            throw Fail(origin, $"tensor \"{key}\": {count} elements are too many for one array");
        return new Entry(key, dtype, shape, count, begin, end);
    }

    private static long ReadOffset(string origin, string key, JsonElement e, string which)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long v))
            throw Fail(origin, $"tensor \"{key}\": data_offsets {which} is {Raw(e)}, {NotAnInteger(e)}");
        if (v < 0)
            throw Fail(origin, $"tensor \"{key}\": data_offsets {which} is negative ({v})");
        return v;
    }

    private static void CheckLayout(string origin, List<Entry> entries, int dataSize)
    {
        var sorted = entries.ToArray();
        Array.Sort(sorted, static (a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expected = 0;
        Entry? previous = null;
        foreach (Entry e in sorted)
        {
            if (e.Begin < expected)
                throw Fail(origin, $"tensors \"{previous!.Key}\" [{previous.Begin}, {previous.End}] and \"{e.Key}\" [{e.Begin}, {e.End}] overlap");
            if (e.Begin > expected)
            {
                string before = previous is null ? "the start of the data" : $"\"{previous.Key}\" (ends at {previous.End})";
                throw Fail(origin, $"hole of {e.Begin - expected} bytes in the data between {before} and \"{e.Key}\" (begins at {e.Begin}); safetensors data must be contiguous");
            }
            expected = e.End; // sorted by (begin, end), so end >= begin == expected
            previous = e;
        }
        if (expected != dataSize)
        {
            string after = previous is null ? "the header (the file has no tensors)" : $"the last tensor \"{previous.Key}\" (ends at {expected})";
            throw Fail(origin, $"{dataSize - expected} bytes of data after {after} belong to no tensor; safetensors data must be contiguous");
        }
    }

    private static float[] Convert(string dtype, ReadOnlySpan<byte> src, long count)
    {
        switch (dtype)
        {
            case "F32":
            {
                var dst = new float[count];
                if (BitConverter.IsLittleEndian)
                    MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                else
                    for (int i = 0; i < dst.Length; i++) dst[i] = BinaryPrimitives.ReadSingleLittleEndian(src.Slice(i * 4));
                return dst;
            }
            case "F16":
            {
                var dst = new float[count];
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src.Slice(i * 2));
                return dst;
            }
            case "BF16":
            {
                var dst = new float[count];
                for (int i = 0; i < dst.Length; i++)
                    dst[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src.Slice(i * 2)) << 16);
                return dst;
            }
            case "F64":
            {
                var dst = new float[count];
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src.Slice(i * 8));
                return dst;
            }
            default:
                return Array.Empty<float>();
        }
    }

    private static bool IsFloat(string dtype) => dtype is "F32" or "F16" or "BF16" or "F64";

    private static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" => 8,
        "F32" or "I32" => 4,
        "F16" or "BF16" or "I16" => 2,
        "I8" or "U8" or "BOOL" => 1,
        _ => 0,
    };

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "value",
    };

    private static string NotAnInteger(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Number)
        {
            string text = e.GetRawText();
            bool digits = text.Length > 0;
            for (int i = text[0] == '-' ? 1 : 0; i < text.Length; i++) digits &= char.IsAsciiDigit(text[i]);
            if (digits) return "an integer too large for 64 bits";
        }
        return "not an integer";
    }

    private static string Raw(JsonElement e)
    {
        string text = e.GetRawText();
        return text.Length <= 40 ? text : text.Substring(0, 37) + "...";
    }

    private static WeightsException Fail(string origin, string message) => new(origin + ": " + message);
}
