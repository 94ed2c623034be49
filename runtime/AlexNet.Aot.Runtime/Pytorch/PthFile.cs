using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace AlexNet.Aot.Pytorch;

/// <summary>
/// A PyTorch state dict saved with <c>torch.save</c>: the zip format of PyTorch 1.6 and later
/// (<c>ARCHIVE/data.pkl</c> plus one <c>ARCHIVE/data/KEY</c> entry per storage) or the legacy format
/// (<c>_use_new_zipfile_serialization=False</c>: magic number, protocol version and system-info pickles, the
/// main pickle, the list of storage keys, then each storage as an int64 element count and its bytes).
/// The pickles are read by a small, strict pickle machine that accepts only the globals a state dict needs
/// (<c>collections.OrderedDict</c>, <c>torch._utils._rebuild_tensor_v2</c> and the parameter rebuilds, the
/// <c>torch.*Storage</c> types); any other global is refused before anything is built, and nothing from the
/// file is ever executed. Tensors may have storage offsets and arbitrary strides; floating-point tensors
/// (F32, F16, BF16, F64) are converted to float32, integer and bool tensors keep their shape and dtype with
/// empty <see cref="LoadedTensor.Data"/>, as <see cref="SafeTensorsFile"/> does.
/// Every problem with the file is a <see cref="WeightsException"/> whose message starts with the file's path.
/// </summary>
/// <remarks>
/// Why not Razorvine.Pickle 1.5 (the issue's preference "if it is AOT-clean"): it is not. Published with NativeAOT it
/// gives trim warning IL2104 ("Assembly 'Razorvine.Pickle' produced trim warnings"), which this repository treats as
/// an error. It also cannot refuse a global by name before building anything: its constructor registry is one
/// process-wide static table, and an unknown global such as <c>os.system</c> becomes a <c>ClassDict</c> that fails
/// later, and only when called with arguments. It has no limits for hostile input either: a <c>BINBYTES</c> of
/// 2 GiB in a 10-byte file throws an <see cref="ArgumentOutOfRangeException"/>, and 200,000 nested lists are built
/// in 23 MB. All of this was measured on 2026-11-26 in a scratch NativeAOT project. The machine below is about 500
/// lines and is fuzzed (see SECURITY.md).
/// </remarks>
public sealed class PthFile : IWeightSource
{
    private readonly Dictionary<string, LoadedTensor> _tensors;
    private readonly string[] _keys;

    private PthFile(string origin, string format, string[] keys, Dictionary<string, LoadedTensor> tensors)
    {
        Origin = origin;
        Format = format;
        _keys = keys;
        _tensors = tensors;
    }

    /// <inheritdoc/>
    public string Origin { get; }

    /// <summary>"zip" for the PyTorch 1.6+ format, "legacy" for the pre-1.6 one.</summary>
    public string Format { get; }

    /// <summary>Every tensor key, in the state dict's order.</summary>
    public IReadOnlyList<string> Keys => _keys;

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

    /// <summary>Reads and checks the PyTorch checkpoint at <paramref name="path"/> (zip or legacy format, told apart by content).</summary>
    /// <exception cref="WeightsException">The file is missing, unreadable, malformed or not a plain state dict; the message starts with <paramref name="path"/>.</exception>
    public static PthFile Load(string path) => Load(path, PthLimits.Default);

    internal static PthFile Load(string path, PthLimits limits)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(limits);
        if (Directory.Exists(path))
            throw new WeightsException($"{path}: is a directory, not a PyTorch checkpoint");
        if (!File.Exists(path))
            throw new WeightsException($"{path}: file not found");
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            long length = fs.Length;
            if (length == 0)
                throw Fail(path, "file is empty (0 bytes); not a PyTorch checkpoint");
            Span<byte> head = stackalloc byte[4];
            int n = ReadAtMost(fs, head);
            fs.Position = 0;
            if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && (head[2] is 3 or 5) && (head[3] is 4 or 6))
                return LoadZip(fs, path, limits);
            if (n >= 1 && head[0] == 0x80)
            {
                if (length > Array.MaxLength)
                    throw Fail(path, $"legacy-format file of {length} bytes is too large to read");
                var bytes = new byte[length];
                fs.ReadExactly(bytes);
                return LoadLegacy(bytes, path, limits);
            }
            throw Fail(path, $"not a PyTorch checkpoint: starts with {Hex(head[..n])}, neither a zip archive (PK\\x03\\x04) nor a pickle (0x80)");
        }
        catch (WeightsException)
        {
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException)
        {
            throw new WeightsException($"{path}: cannot read the file: {e.Message}", e);
        }
    }

    // ------------------------------------------------------------------ zip format

    private static PthFile LoadZip(FileStream fs, string path, PthLimits limits)
    {
        long fileLength = fs.Length;
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or NotSupportedException or OverflowException)
        {
            throw new WeightsException($"{path}: not a readable zip archive (truncated or corrupt?): {e.Message}", e);
        }
        using (zip)
        {
            IReadOnlyCollection<ZipArchiveEntry> entries;
            try
            {
                entries = zip.Entries;
            }
            catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or NotSupportedException or OverflowException)
            {
                throw new WeightsException($"{path}: the zip archive's directory is unreadable (truncated or corrupt?): {e.Message}", e);
            }
            if (entries.Count > limits.MaxZipEntries)
                throw Fail(path, $"zip archive has {entries.Count} entries, more than the limit of {limits.MaxZipEntries}");

            long cap = limits.TotalCap(fileLength);
            long declared = 0;
            var byName = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
            ZipArchiveEntry? pkl = null;
            foreach (ZipArchiveEntry e in entries)
            {
                if (e.Length < 0 || e.Length > cap)
                    throw Fail(path, $"zip entry {e.FullName} declares {e.Length} uncompressed bytes, past the limit of {cap} (a zip bomb, or a corrupt file)");
                declared += e.Length;
                if (declared > cap)
                    throw Fail(path, $"zip entries declare {declared}+ uncompressed bytes in all, past the limit of {cap} bytes for a {fileLength}-byte file (a zip bomb, or a corrupt file)");
                if (!byName.TryAdd(e.FullName, e))
                    throw Fail(path, $"zip archive has two entries named {e.FullName}");
                string name = e.FullName;
                int slash = name.IndexOf('/');
                bool isPkl = name == "data.pkl" || (slash > 0 && name.IndexOf('/', slash + 1) < 0 && name.AsSpan(slash + 1).SequenceEqual("data.pkl"));
                if (isPkl)
                {
                    if (pkl is not null)
                        throw Fail(path, $"zip archive has two pickles, {pkl.FullName} and {name}");
                    pkl = e;
                }
            }
            if (pkl is null)
                throw Fail(path, "zip archive has no data.pkl entry; not a PyTorch checkpoint");
            string prefix = pkl.FullName.Substring(0, pkl.FullName.Length - "data.pkl".Length);

            var budget = new ReadBudget(cap);
            bool bigEndian = false;
            if (byName.TryGetValue(prefix + "byteorder", out ZipArchiveEntry? bo))
            {
                string order = Encoding.ASCII.GetString(ReadEntry(path, bo, 16, budget)).Trim();
                bigEndian = order switch
                {
                    "little" => false,
                    "big" => true,
                    _ => throw Fail(path, $"{bo.FullName} says \"{Printable(order)}\", not \"little\" or \"big\""),
                };
            }
            if (pkl.Length > limits.MaxPickleBytes)
                throw Fail(path, $"{pkl.FullName} is {pkl.Length} bytes, past the limit of {limits.MaxPickleBytes} bytes for a state dict's pickle");
            byte[] pickle = ReadEntry(path, pkl, limits.MaxPickleBytes, budget);

            var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);
            var vm = new Unpickler(pickle, 0, path, pkl.FullName, limits, pid => ZipPersistentLoad(path, pid, storages));
            object? root = vm.Load();
            if (vm.Position != pickle.Length)
                throw Fail(path, $"{pkl.FullName}: {pickle.Length - vm.Position} bytes after the pickle's STOP");

            foreach (StorageRef s in storages.Values)
            {
                string entryName = prefix + "data/" + s.Key;
                if (!byName.TryGetValue(entryName, out ZipArchiveEntry? se))
                    throw Fail(path, $"storage {s.Key} ({s.DType}, {s.Numel} elements) has no entry {entryName} in the zip archive");
                long want = s.Numel * s.ElementSize;
                if (se.Length != want)
                    throw Fail(path, $"storage {s.Key}: {entryName} holds {se.Length} bytes, but the pickle declares {s.Numel} elements of {s.DType} ({want} bytes)");
                if (want > Array.MaxLength)
                    throw Fail(path, $"storage {s.Key}: {want} bytes are too many for one array");
                s.Bytes = ReadEntry(path, se, want, budget);
                if (s.Bytes.Length != want)
                    throw Fail(path, $"storage {s.Key}: {entryName} decompresses to {s.Bytes.Length} bytes, but the pickle declares {want} bytes");
            }
            return Build(path, "zip", root, bigEndian, pkl.FullName);
        }
    }

    private static object ZipPersistentLoad(string path, PyTuple pid, Dictionary<string, StorageRef> storages)
    {
        // ('storage', storage_type, key, location, numel)
        object?[] t = pid.Items;
        if (t.Length != 5 || t[0] is not string kind || kind != "storage")
            throw Fail(path, $"persistent id {Describe(pid)} is not ('storage', type, key, location, numel)");
        return ResolveStorage(path, t[1], t[2], t[3], t[4], storages);
    }

    private static StorageRef ResolveStorage(string path, object? type, object? key, object? location, object? numel, Dictionary<string, StorageRef> storages)
    {
        if (type is not PyGlobal g || g.Role != GlobalRole.Storage)
            throw Fail(path, $"storage type {Describe(type)} is not a torch storage type");
        if (key is not string k || k.Length == 0 || k.Length > 64)
            throw Fail(path, $"storage key {Describe(key)} is not a short string");
        if (location is not string)
            throw Fail(path, $"storage {k}: location {Describe(location)} is not a string");
        if (numel is not long n || n < 0)
            throw Fail(path, $"storage {k}: element count {Describe(numel)} is not a non-negative integer");
        if (n > long.MaxValue / 8)
            throw Fail(path, $"storage {k}: element count {n} is absurd");
        if (storages.TryGetValue(k, out StorageRef? existing))
        {
            if (existing.DType != g.DType || existing.Numel != n)
                throw Fail(path, $"storage {k} is declared twice, as {existing.Numel} x {existing.DType} and as {n} x {g.DType}");
            return existing;
        }
        var s = new StorageRef(k, g.DType!, g.ElementSize, n);
        storages.Add(k, s);
        return s;
    }

    private static byte[] ReadEntry(string path, ZipArchiveEntry entry, long limit, ReadBudget budget)
    {
        long declared = entry.Length;
        if (declared > limit)
            throw Fail(path, $"zip entry {entry.FullName} declares {declared} bytes, past the limit of {limit}");
        // The buffer grows with the data actually inflated, so a size that lies costs no memory up front.
        var buffer = new byte[Math.Min(declared, 1 << 24)];
        try
        {
            using Stream s = entry.Open();
            int got = 0;
            while (got < declared)
            {
                if (got == buffer.Length)
                    Array.Resize(ref buffer, (int)Math.Min(declared, 2L * buffer.Length));
                int r = s.Read(buffer, got, buffer.Length - got);
                if (r == 0) break;
                got += r;
            }
            if (got < declared)
                throw Fail(path, $"zip entry {entry.FullName} declares {declared} bytes but holds only {got} (truncated or corrupt)");
            // The entry must end where it says it ends: a bomb that declares a small size and inflates to more is refused.
            Span<byte> one = stackalloc byte[1];
            if (s.Read(one) != 0)
                throw Fail(path, $"zip entry {entry.FullName} decompresses to more than the {declared} bytes it declares (a zip bomb, or a corrupt file)");
            budget.Spend(path, got);
            // The reader stops at the declared size; the checksum shows whether that is all the entry holds.
            uint crc = Crc32(buffer);
            if (crc != entry.Crc32)
                throw Fail(path, $"zip entry {entry.FullName} fails its CRC-32 check (0x{crc:x8}, the archive says 0x{entry.Crc32:x8}): corrupt, or larger than the {declared} bytes it declares");
        }
        catch (WeightsException)
        {
            throw;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException or ArgumentException or OverflowException)
        {
            throw new WeightsException($"{path}: zip entry {entry.FullName} cannot be read (truncated or corrupt?): {e.Message}", e);
        }
        return buffer;
    }

    private static readonly uint[] s_crcTable = MakeCrcTable();

    private static uint[] MakeCrcTable()
    {
        var table = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        for (int t = 1; t < 8; t++)
            for (int i = 0; i < 256; i++)
                table[t * 256 + i] = (table[(t - 1) * 256 + i] >> 8) ^ table[table[(t - 1) * 256 + i] & 0xff];
        return table;
    }

    /// <summary>The zip format's CRC-32 (IEEE 802.3, reflected), slicing by 8.</summary>
    internal static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint[] t = s_crcTable;
        uint c = 0xFFFFFFFFu;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            uint lo = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(i)) ^ c;
            uint hi = BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(i + 4));
            c = t[7 * 256 + (lo & 0xff)] ^ t[6 * 256 + ((lo >> 8) & 0xff)] ^ t[5 * 256 + ((lo >> 16) & 0xff)] ^ t[4 * 256 + (lo >> 24)]
              ^ t[3 * 256 + (hi & 0xff)] ^ t[2 * 256 + ((hi >> 8) & 0xff)] ^ t[256 + ((hi >> 16) & 0xff)] ^ t[hi >> 24];
        }
        for (; i < data.Length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >> 8);
        return ~c;
    }

    private sealed class ReadBudget(long cap)
    {
        private long _spent;

        public void Spend(string path, long n)
        {
            _spent += n;
            if (_spent > cap)
                throw Fail(path, $"zip entries decompress to more than {cap} bytes in all (a zip bomb, or a corrupt file)");
        }
    }

    // ------------------------------------------------------------------ legacy format

    /// <summary>The legacy format's magic number, 0x1950a86a20f9469cfc6c.</summary>
    internal static readonly BigInteger LegacyMagic = BigInteger.Parse("1950a86a20f9469cfc6c", NumberStyles.HexNumber);

    private const long LegacyProtocolVersion = 1001;

    private static PthFile LoadLegacy(byte[] bytes, string path, PthLimits limits)
    {
        int pos = 0;
        object? magic = new Unpickler(bytes, pos, path, "the magic-number pickle", limits, null).LoadAt(out pos);
        if (magic is not BigInteger m || m != LegacyMagic)
            throw Fail(path, $"the first pickle is {Describe(magic)}, not PyTorch's magic number 0x1950a86a20f9469cfc6c; not a PyTorch checkpoint");
        object? version = new Unpickler(bytes, pos, path, "the protocol-version pickle", limits, null).LoadAt(out pos);
        if (version is not long v || v != LegacyProtocolVersion)
            throw Fail(path, $"protocol version {Describe(version)} is not {LegacyProtocolVersion}, the only legacy version supported");
        object? sysInfo = new Unpickler(bytes, pos, path, "the sys_info pickle", limits, null).LoadAt(out pos);
        bool bigEndian = false;
        if (sysInfo is not PyDict info)
            throw Fail(path, $"sys_info is {Describe(sysInfo)}, not a dict");
        if (info.TryGet("little_endian", out object? le))
        {
            if (le is not bool little)
                throw Fail(path, $"sys_info little_endian is {Describe(le)}, not a bool");
            bigEndian = !little;
        }

        var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);
        int mainStart = pos;
        object? root = new Unpickler(bytes, pos, path, $"the main pickle (at byte {mainStart})", limits, pid => LegacyPersistentLoad(path, pid, storages)).LoadAt(out pos);
        int keysStart = pos;
        object? keyList = new Unpickler(bytes, pos, path, $"the storage-key pickle (at byte {keysStart})", limits, null).LoadAt(out pos);
        if (keyList is not List<object?> keys)
            throw Fail(path, $"the storage-key pickle holds {Describe(keyList)}, not a list of keys");

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (object? ko in keys)
        {
            if (ko is not string key)
                throw Fail(path, $"storage key {Describe(ko)} in the key list is not a string");
            if (!seen.Add(key))
                throw Fail(path, $"storage {key} is listed twice");
            if (!storages.TryGetValue(key, out StorageRef? s))
                throw Fail(path, $"storage {key} is listed but no tensor uses it");
            if (s.ViewOf is not null)
                throw Fail(path, $"storage {key} is listed but is a view of storage {s.ViewOf.Key}");
            if (bytes.Length - pos < 8)
                throw Fail(path, $"storage {key}: the file ends at byte {bytes.Length}, before its 8-byte element count at byte {pos} (truncated?)");
            long count = bigEndian ? BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(pos)) : BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(pos));
            pos += 8;
            if (count != s.Numel)
                throw Fail(path, $"storage {key}: the file holds {count} elements, but the pickle declares {s.Numel} of {s.DType}");
            long want = count * s.ElementSize;
            if (want > bytes.Length - pos)
                throw Fail(path, $"storage {key}: {count} elements of {s.DType} need {want} bytes at byte {pos}, but only {bytes.Length - pos} remain (truncated?)");
            s.Bytes = bytes.AsSpan(pos, (int)want).ToArray();
            pos += (int)want;
        }
        foreach (StorageRef s in storages.Values)
        {
            if (s.ViewOf is null && !seen.Contains(s.Key))
                throw Fail(path, $"storage {s.Key} is used by a tensor but missing from the file's storage list");
        }
        foreach (StorageRef s in storages.Values)
        {
            if (s.ViewOf is { } parent)
            {
                long begin = s.ViewOffset * s.ElementSize, len = s.Numel * s.ElementSize;
                if (parent.Bytes is null || begin + len > parent.Bytes.Length)
                    throw Fail(path, $"storage view {s.Key} [{s.ViewOffset}, {s.ViewOffset + s.Numel}) runs past the end of storage {parent.Key} ({parent.Numel} elements)");
                s.Bytes = parent.Bytes.AsSpan((int)begin, (int)len).ToArray();
            }
        }
        if (pos != bytes.Length)
            throw Fail(path, $"{bytes.Length - pos} bytes after the last storage (at byte {pos}) belong to nothing");
        return Build(path, "legacy", root, bigEndian, "the main pickle");
    }

    private static object LegacyPersistentLoad(string path, PyTuple pid, Dictionary<string, StorageRef> storages)
    {
        // ('storage', storage_type, root_key, location, numel, view_metadata)
        object?[] t = pid.Items;
        if (t.Length == 0 || t[0] is not string kind)
            throw Fail(path, $"persistent id {Describe(pid)} is not ('storage', type, key, location, numel, view)");
        if (kind == "module")
            throw Fail(path, "the checkpoint pickles a whole module (with its source code); only state dicts are read");
        if (kind != "storage" || t.Length != 6)
            throw Fail(path, $"persistent id {Describe(pid)} is not ('storage', type, key, location, numel, view)");
        StorageRef root = ResolveStorage(path, t[1], t[2], t[3], t[4], storages);
        if (t[5] is null)
            return root;
        if (t[5] is not PyTuple view || view.Items.Length != 3 || view.Items[0] is not string viewKey || view.Items[1] is not long offset || view.Items[2] is not long size || offset < 0 || size < 0)
            throw Fail(path, $"storage {root.Key}: view metadata {Describe(t[5])} is not (key, offset, size)");
        if (offset > root.Numel || size > root.Numel - offset)
            throw Fail(path, $"storage view {viewKey} [{offset}, {offset + size}) runs past the end of storage {root.Key} ({root.Numel} elements)");
        if (storages.TryGetValue(viewKey, out StorageRef? existing))
        {
            if (existing.ViewOf != root || existing.ViewOffset != offset || existing.Numel != size)
                throw Fail(path, $"storage view {viewKey} is declared twice, differently");
            return existing;
        }
        var v = new StorageRef(viewKey, root.DType, root.ElementSize, size) { ViewOf = root, ViewOffset = offset };
        storages.Add(viewKey, v);
        return v;
    }

    // ------------------------------------------------------------------ tensors

    private static PthFile Build(string path, string format, object? root, bool bigEndian, string where)
    {
        if (root is not PyDict dict)
            throw Fail(path, $"{where} holds {Describe(root)}, not a state dict (a dict of tensors)");
        var keys = new List<string>(dict.Count);
        var tensors = new Dictionary<string, LoadedTensor>(dict.Count, StringComparer.Ordinal);
        foreach (KeyValuePair<object, object?> kv in dict.Items)
        {
            if (kv.Key is not string key)
                throw Fail(path, $"state dict key {Describe(kv.Key)} is not a string");
            if (kv.Value is not TensorRef t)
                throw Fail(path, $"state dict entry \"{key}\" is {Describe(kv.Value)}, not a tensor; only plain state dicts are read");
            tensors.Add(key, Materialize(path, key, t, bigEndian));
            keys.Add(key);
        }
        return new PthFile(path, format, keys.ToArray(), tensors);
    }

    private static LoadedTensor Materialize(string path, string key, TensorRef t, bool bigEndian)
    {
        StorageRef s = t.Storage;
        int rank = t.Sizes.Length;
        string shapeText = "[" + string.Join(", ", t.Sizes) + "]";
        long count = 1;
        long extent = t.Offset; // index of the last element + 1, when count > 0
        bool empty = false;
        for (int d = 0; d < rank; d++)
        {
            if (t.Sizes[d] == 0) empty = true;
        }
        if (!empty)
        {
            for (int d = 0; d < rank; d++)
            {
                long size = t.Sizes[d], stride = t.Strides[d];
                if (count > long.MaxValue / size)
                    throw Fail(path, $"tensor \"{key}\": the element count of shape {shapeText} overflows");
                count *= size;
                if (stride != 0 && size - 1 > (long.MaxValue / 2 - extent) / stride)
                    throw Fail(path, $"tensor \"{key}\": the extent of shape {shapeText} with strides [{string.Join(", ", t.Strides)}] overflows");
                extent += (size - 1) * stride;
            }
            extent += 1;
            if (extent > s.Numel)
                throw Fail(path, $"tensor \"{key}\": shape {shapeText}, strides [{string.Join(", ", t.Strides)}] and offset {t.Offset} reach element {extent - 1}, past the end of storage {s.Key} ({s.Numel} elements of {s.DType})");
        }
        else
        {
            count = 0;
            if (t.Offset > s.Numel)
                throw Fail(path, $"tensor \"{key}\": storage offset {t.Offset} is past the end of storage {s.Key} ({s.Numel} elements)");
        }
        var shape = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            if (t.Sizes[d] > int.MaxValue)
                throw Fail(path, $"tensor \"{key}\": dimension {d} of shape {shapeText} is too large");
            shape[d] = (int)t.Sizes[d];
        }
        if (!IsFloat(s.DType))
            return new LoadedTensor(key, shape, s.DType, Array.Empty<float>());
        if (count > Array.MaxLength)
            throw Fail(path, $"tensor \"{key}\": {count} elements are too many for one array");

        byte[] src = s.Bytes ?? throw Fail(path, $"tensor \"{key}\": storage {s.Key} has no data");
        var dst = new float[count];
        if (count == 0)
            return new LoadedTensor(key, shape, s.DType, dst);

        bool contiguous = true;
        long expect = 1;
        for (int d = rank - 1; d >= 0; d--)
        {
            if (t.Sizes[d] != 1 && t.Strides[d] != expect) contiguous = false;
            expect *= t.Sizes[d];
        }
        if (contiguous)
        {
            Convert(s.DType, src, t.Offset, dst, 0, (int)count, bigEndian);
            return new LoadedTensor(key, shape, s.DType, dst);
        }

        // Gather: walk the indices in row-major order, the innermost dimension a strided run.
        var index = new long[rank];
        long inner = rank == 0 ? 1 : t.Sizes[rank - 1];
        long innerStride = rank == 0 ? 1 : t.Strides[rank - 1];
        int written = 0;
        while (written < count)
        {
            long start = t.Offset;
            for (int d = 0; d < rank - 1; d++) start += index[d] * t.Strides[d];
            for (long i = 0; i < inner; i++)
                dst[written++] = ReadOne(s.DType, src, start + i * innerStride, bigEndian);
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++index[d] < t.Sizes[d]) break;
                index[d] = 0;
            }
        }
        return new LoadedTensor(key, shape, s.DType, dst);
    }

    private static void Convert(string dtype, byte[] src, long offset, float[] dst, int at, int n, bool bigEndian)
    {
        if (dtype == "F32" && BitConverter.IsLittleEndian && !bigEndian)
        {
            MemoryMarshal.Cast<byte, float>(src.AsSpan((int)(offset * 4), n * 4)).CopyTo(dst.AsSpan(at, n));
            return;
        }
        for (int i = 0; i < n; i++) dst[at + i] = ReadOne(dtype, src, offset + i, bigEndian);
    }

    private static float ReadOne(string dtype, byte[] src, long element, bool bigEndian)
    {
        switch (dtype)
        {
            case "F32":
            {
                ReadOnlySpan<byte> b = src.AsSpan((int)(element * 4), 4);
                return bigEndian ? BinaryPrimitives.ReadSingleBigEndian(b) : BinaryPrimitives.ReadSingleLittleEndian(b);
            }
            case "F16":
            {
                ReadOnlySpan<byte> b = src.AsSpan((int)(element * 2), 2);
                return (float)(bigEndian ? BinaryPrimitives.ReadHalfBigEndian(b) : BinaryPrimitives.ReadHalfLittleEndian(b));
            }
            case "BF16":
            {
                ReadOnlySpan<byte> b = src.AsSpan((int)(element * 2), 2);
                ushort bits = bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(b) : BinaryPrimitives.ReadUInt16LittleEndian(b);
                return BitConverter.Int32BitsToSingle(bits << 16);
            }
            case "F64":
            {
                ReadOnlySpan<byte> b = src.AsSpan((int)(element * 8), 8);
                return (float)(bigEndian ? BinaryPrimitives.ReadDoubleBigEndian(b) : BinaryPrimitives.ReadDoubleLittleEndian(b));
            }
            default:
                throw new InvalidOperationException("not a floating-point dtype: " + dtype);
        }
    }

    private static bool IsFloat(string dtype) => dtype is "F32" or "F16" or "BF16" or "F64";

    // ------------------------------------------------------------------ helpers

    private static int ReadAtMost(Stream s, Span<byte> buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int r = s.Read(buffer[got..]);
            if (r == 0) break;
            got += r;
        }
        return got;
    }

    internal static string Hex(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length * 3);
        foreach (byte b in bytes)
        {
            if (sb.Length > 0) sb.Append(' ');
            sb.Append(b.ToString("x2", CultureInfo.InvariantCulture));
        }
        return sb.Length == 0 ? "(nothing)" : sb.ToString();
    }

    private static string Printable(string s)
    {
        var sb = new StringBuilder();
        foreach (char c in s)
        {
            if (sb.Length >= 40) { sb.Append("..."); break; }
            sb.Append(c >= ' ' && c < 0x7f ? c : '?');
        }
        return sb.ToString();
    }

    /// <summary>A short description of a pickled value, for error messages (never recursing far).</summary>
    internal static string Describe(object? value, int depth = 0)
    {
        switch (value)
        {
            case null: return "None";
            case bool b: return b ? "True" : "False";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case BigInteger bi: return bi.ToString(CultureInfo.InvariantCulture);
            case double d: return d.ToString("R", CultureInfo.InvariantCulture);
            case string s: return "'" + Printable(s) + "'";
            case byte[] bytes: return $"bytes of length {bytes.Length}";
            case PyGlobal g: return g.Module + "." + g.Name;
            case StorageRef st: return $"storage {st.Key}";
            case TensorRef: return "a tensor";
            case PyDict dict: return $"a dict of {dict.Count} items";
            case List<object?> list: return $"a list of {list.Count} items";
            case PyTuple t:
                if (depth > 1 || t.Items.Length > 8) return $"a tuple of {t.Items.Length} items";
                var parts = new List<string>();
                foreach (object? o in t.Items) parts.Add(Describe(o, depth + 1));
                return "(" + string.Join(", ", parts) + (t.Items.Length == 1 ? ",)" : ")");
            default: return "an object";
        }
    }

    internal static WeightsException Fail(string origin, string message) => new(origin + ": " + message);
}

/// <summary>Limits that keep a hostile checkpoint from exhausting memory or time.</summary>
internal sealed record PthLimits
{
    public static readonly PthLimits Default = new();

    /// <summary>The most entries a zip archive may have.</summary>
    public int MaxZipEntries { get; init; } = 100_000;

    /// <summary>The most uncompressed bytes of all entries together, whatever the file's size.</summary>
    public long MaxTotalBytes { get; init; } = 4L << 30;

    /// <summary>The most uncompressed bytes per byte of the file (storages are normally stored uncompressed).</summary>
    public long MaxRatio { get; init; } = 64;

    /// <summary>The largest pickle read, in bytes.</summary>
    public int MaxPickleBytes { get; init; } = 256 << 20;

    /// <summary>The most values on the pickle machine's stack, and in its memo.</summary>
    public int MaxStack { get; init; } = 1 << 22;

    /// <summary>The most marks open at once (nesting depth).</summary>
    public int MaxMarks { get; init; } = 1000;

    /// <summary>The most dimensions a tensor may have.</summary>
    public int MaxRank { get; init; } = 64;

    public long TotalCap(long fileLength) => Math.Min(MaxTotalBytes, fileLength > long.MaxValue / MaxRatio ? long.MaxValue : fileLength * MaxRatio);
}

internal enum GlobalRole { OrderedDict, RebuildTensor, RebuildTensorV2, RebuildParameter, RebuildParameterWithState, Storage }

internal sealed record PyGlobal(string Module, string Name, GlobalRole Role, string? DType = null, int ElementSize = 0);

internal sealed class PyTuple(object?[] items)
{
    public object?[] Items { get; } = items;
}

/// <summary>A pickled dict or OrderedDict: insertion-ordered, keyed by strings, integers, floats, bools, None or (by identity) anything else.</summary>
internal sealed class PyDict
{
    private static readonly object s_none = new();
    private readonly Dictionary<object, int> _index = new(KeyComparer.Instance);
    private readonly List<KeyValuePair<object, object?>> _items = new();

    public int Count => _items.Count;

    public IEnumerable<KeyValuePair<object, object?>> Items
    {
        get
        {
            foreach (var kv in _items) yield return new KeyValuePair<object, object?>(kv.Key == s_none ? null! : kv.Key, kv.Value);
        }
    }

    public void Set(object? key, object? value)
    {
        object k = key ?? s_none;
        if (_index.TryGetValue(k, out int i))
            _items[i] = new KeyValuePair<object, object?>(k, value); // Python keeps the first position
        else
        {
            _index.Add(k, _items.Count);
            _items.Add(new KeyValuePair<object, object?>(k, value));
        }
    }

    public bool TryGet(string key, out object? value)
    {
        if (_index.TryGetValue(key, out int i))
        {
            value = _items[i].Value;
            return true;
        }
        value = null;
        return false;
    }

    private sealed class KeyComparer : IEqualityComparer<object>
    {
        public static readonly KeyComparer Instance = new();

        public new bool Equals(object? x, object? y) => x is string or long or BigInteger or double or bool ? x.Equals(y) : ReferenceEquals(x, y);

        public int GetHashCode(object o) => o is string or long or BigInteger or double or bool ? o.GetHashCode() : System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(o);
    }
}

internal sealed class StorageRef(string key, string dtype, int elementSize, long numel)
{
    public string Key { get; } = key;
    public string DType { get; } = dtype;
    public int ElementSize { get; } = elementSize;
    public long Numel { get; } = numel;
    public byte[]? Bytes { get; set; }
    public StorageRef? ViewOf { get; init; }
    public long ViewOffset { get; init; }
}

internal sealed record TensorRef(StorageRef Storage, long Offset, long[] Sizes, long[] Strides);

/// <summary>
/// A strict pickle machine for state dicts: protocol 2 to 5, the opcodes <c>torch.save</c> writes, and only
/// allowlisted globals, refused when named (GLOBAL, STACK_GLOBAL), before anything is built. Calls (REDUCE,
/// NEWOBJ) are interpreted for those globals only; nothing is executed. Every opcode consumes at least one
/// byte, and every container operation is linear, so the time and memory are linear in the pickle's size.
/// </summary>
internal sealed class Unpickler
{
    private static readonly object s_mark = new();

    private readonly byte[] _data;
    private readonly string _origin;
    private readonly string _where;
    private readonly PthLimits _limits;
    private readonly Func<PyTuple, object>? _persistentLoad;
    private readonly List<object?> _stack = new();
    private readonly List<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();
    private int _pos;
    private int _opStart;

    public Unpickler(byte[] data, int start, string origin, string where, PthLimits limits, Func<PyTuple, object>? persistentLoad)
    {
        _data = data;
        _pos = start;
        _origin = origin;
        _where = where;
        _limits = limits;
        _persistentLoad = persistentLoad;
    }

    /// <summary>Where the machine stopped: just after STOP.</summary>
    public int Position => _pos;

    public object? LoadAt(out int end)
    {
        object? v = Load();
        end = _pos;
        return v;
    }

    public object? Load()
    {
        if (_pos >= _data.Length)
            throw Fail($"the file ends at byte {_data.Length}, where a pickle should start (truncated?)");
        while (true)
        {
            _opStart = _pos;
            byte op = Byte();
            switch (op)
            {
                case 0x80: // PROTO
                {
                    byte v = Byte();
                    if (v < 2 || v > 5)
                        throw Fail($"pickle protocol {v} is not supported (2 to 5 are)");
                    break;
                }
                case 0x95: // FRAME
                {
                    long n = Int64();
                    if (n < 0 || n > _data.Length - _pos)
                        throw Fail($"frame of {n} bytes runs past the end of the data (truncated?)");
                    break;
                }
                case (byte)'.': // STOP
                {
                    if (_marks.Count != 0)
                        throw Fail("STOP with a MARK still open");
                    if (_stack.Count != 1)
                        throw Fail($"STOP with {_stack.Count} values on the stack, not 1");
                    object? result = _stack[0];
                    if (result == s_mark) throw Fail("STOP with a MARK on the stack");
                    return result;
                }
                case (byte)'(': // MARK
                    if (_marks.Count >= _limits.MaxMarks)
                        throw Fail($"more than {_limits.MaxMarks} nested MARKs");
                    _marks.Add(_stack.Count);
                    break;
                case (byte)'}': Push(new PyDict()); break; // EMPTY_DICT
                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case (byte)')': Push(new PyTuple(Array.Empty<object?>())); break; // EMPTY_TUPLE
                case (byte)'X': Push(Utf8(UInt32())); break; // BINUNICODE
                case 0x8c: Push(Utf8(Byte())); break; // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(Int64())); break; // BINUNICODE8
                case (byte)'U': Push(Latin1(Byte())); break; // SHORT_BINSTRING (Python 2)
                case (byte)'T': Push(Latin1(Int32NonNegative())); break; // BINSTRING (Python 2)
                case (byte)'C': Push(Bytes(Byte())); break; // SHORT_BINBYTES
                case (byte)'B': Push(Bytes(UInt32())); break; // BINBYTES
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case (byte)'K': Push((long)Byte()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case 0x8a: Push(Long(Byte())); break; // LONG1
                case 0x8b: // LONG4
                {
                    int n = Int32NonNegative();
                    if (n > 1024) throw Fail($"LONG4 of {n} bytes is absurd");
                    Push(Long(n));
                    break;
                }
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'N': Push(null); break; // NONE
                case (byte)'t': Push(new PyTuple(PopMark().ToArray())); break; // TUPLE
                case 0x85: { object? a = Pop(); Push(new PyTuple(new[] { a })); break; } // TUPLE1
                case 0x86: { object? b = Pop(), a = Pop(); Push(new PyTuple(new[] { a, b })); break; } // TUPLE2
                case 0x87: { object? c = Pop(), b = Pop(), a = Pop(); Push(new PyTuple(new[] { a, b, c })); break; } // TUPLE3
                case (byte)'l': Push(PopMark()); break; // LIST
                case (byte)'d': // DICT
                {
                    List<object?> items = PopMark();
                    if (items.Count % 2 != 0) throw Fail("DICT with an odd number of items");
                    var d = new PyDict();
                    for (int i = 0; i < items.Count; i += 2) d.Set(Key(items[i]), items[i + 1]);
                    Push(d);
                    break;
                }
                case (byte)'c': // GLOBAL
                {
                    string module = Line(), name = Line();
                    Push(Resolve(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    object? name = Pop(), module = Pop();
                    if (module is not string m || name is not string n)
                        throw Fail($"STACK_GLOBAL of {PthFile.Describe(module)} and {PthFile.Describe(name)}, not two strings");
                    Push(Resolve(m, n));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    object? args = Pop(), callable = Pop();
                    Push(Call(callable, args, "REDUCE"));
                    break;
                }
                case 0x81: // NEWOBJ
                {
                    object? args = Pop(), cls = Pop();
                    if (cls is not PyGlobal { Role: GlobalRole.OrderedDict })
                        throw Fail($"NEWOBJ of {PthFile.Describe(cls)}; only an OrderedDict can be created that way");
                    Push(Call(cls, args, "NEWOBJ"));
                    break;
                }
                case 0x92: // NEWOBJ_EX
                {
                    object? kwargs = Pop(), args = Pop(), cls = Pop();
                    if (cls is not PyGlobal { Role: GlobalRole.OrderedDict } || kwargs is not PyDict { Count: 0 })
                        throw Fail($"NEWOBJ_EX of {PthFile.Describe(cls)}; only an OrderedDict without keyword arguments can be created that way");
                    Push(Call(cls, args, "NEWOBJ_EX"));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    object? state = Pop();
                    object? target = Peek();
                    // An OrderedDict's attributes (a state dict's _metadata) are accepted and ignored.
                    if (target is not PyDict || state is not (PyDict or null))
                        throw Fail($"BUILD of {PthFile.Describe(target)} with {PthFile.Describe(state)}; only a dict's attributes can be set");
                    break;
                }
                case (byte)'s': // SETITEM
                {
                    object? value = Pop(), key = Pop();
                    if (Peek() is not PyDict d) throw Fail($"SETITEM on {PthFile.Describe(Peek())}, not a dict");
                    d.Set(Key(key), value);
                    break;
                }
                case (byte)'u': // SETITEMS
                {
                    List<object?> items = PopMark();
                    if (items.Count % 2 != 0) throw Fail("SETITEMS with an odd number of items");
                    if (Peek() is not PyDict d) throw Fail($"SETITEMS on {PthFile.Describe(Peek())}, not a dict");
                    for (int i = 0; i < items.Count; i += 2) d.Set(Key(items[i]), items[i + 1]);
                    break;
                }
                case (byte)'a': // APPEND
                {
                    object? value = Pop();
                    if (Peek() is not List<object?> l) throw Fail($"APPEND to {PthFile.Describe(Peek())}, not a list");
                    l.Add(value);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    List<object?> items = PopMark();
                    if (Peek() is not List<object?> l) throw Fail($"APPENDS to {PthFile.Describe(Peek())}, not a list");
                    l.AddRange(items);
                    break;
                }
                case (byte)'q': Put(Byte()); break; // BINPUT
                case (byte)'r': Put(UInt32()); break; // LONG_BINPUT
                case 0x94: Put(_memo.Count); break; // MEMOIZE
                case (byte)'h': Get(Byte()); break; // BINGET
                case (byte)'j': Get(UInt32()); break; // LONG_BINGET
                case (byte)'0': Pop(); break; // POP
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP
                case (byte)'Q': // BINPERSID
                {
                    object? pid = Pop();
                    if (_persistentLoad is null)
                        throw Fail("persistent id (BINPERSID) in a pickle that should hold none");
                    if (pid is not PyTuple t)
                        throw Fail($"persistent id {PthFile.Describe(pid)} is not a tuple");
                    Push(_persistentLoad(t));
                    break;
                }
                default:
                {
                    string shown = op >= 0x20 && op < 0x7f ? $" ('{(char)op}')" : "";
                    throw Fail($"unsupported pickle opcode 0x{op:x2}{shown}; not a state dict written by torch.save");
                }
            }
        }
    }

    private object Resolve(string module, string name)
    {
        PyGlobal? g = (module, name) switch
        {
            ("collections", "OrderedDict") => new PyGlobal(module, name, GlobalRole.OrderedDict),
            ("torch._utils", "_rebuild_tensor") => new PyGlobal(module, name, GlobalRole.RebuildTensor),
            ("torch._utils", "_rebuild_tensor_v2") => new PyGlobal(module, name, GlobalRole.RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => new PyGlobal(module, name, GlobalRole.RebuildParameter),
            ("torch._utils", "_rebuild_parameter_with_state") => new PyGlobal(module, name, GlobalRole.RebuildParameterWithState),
            ("torch", "FloatStorage") => Storage(module, name, "F32", 4),
            ("torch", "HalfStorage") => Storage(module, name, "F16", 2),
            ("torch", "BFloat16Storage") => Storage(module, name, "BF16", 2),
            ("torch", "DoubleStorage") => Storage(module, name, "F64", 8),
            ("torch", "LongStorage") => Storage(module, name, "I64", 8),
            ("torch", "IntStorage") => Storage(module, name, "I32", 4),
            ("torch", "ShortStorage") => Storage(module, name, "I16", 2),
            ("torch", "CharStorage") => Storage(module, name, "I8", 1),
            ("torch", "ByteStorage") => Storage(module, name, "U8", 1),
            ("torch", "BoolStorage") => Storage(module, name, "BOOL", 1),
            _ => null,
        };
        if (g is null)
        {
            string shown = (module.Length + name.Length > 200 ? "a very long name" : Printable(module) + "." + Printable(name));
            throw new WeightsException($"{_origin}: refuses pickle global {shown} (only a state dict's types are allowed)");
        }
        return g;

        static PyGlobal Storage(string m, string n, string dtype, int size) => new(m, n, GlobalRole.Storage, dtype, size);
    }

    private object Call(object? callable, object? args, string op)
    {
        if (callable is not PyGlobal g)
            throw Fail($"{op} of {PthFile.Describe(callable)}, which is not a callable the reader knows");
        if (args is not PyTuple tuple)
            throw Fail($"{op} of {g.Module}.{g.Name} with arguments {PthFile.Describe(args)}, not a tuple");
        object?[] a = tuple.Items;
        switch (g.Role)
        {
            case GlobalRole.OrderedDict:
                if (a.Length != 0)
                    throw Fail($"collections.OrderedDict called with {a.Length} arguments; only OrderedDict() is allowed");
                return new PyDict();
            case GlobalRole.RebuildTensor:
                if (a.Length != 4)
                    throw Fail($"torch._utils._rebuild_tensor called with {a.Length} arguments, not 4");
                return Tensor(a, g.Name);
            case GlobalRole.RebuildTensorV2:
                if (a.Length is not (6 or 7))
                    throw Fail($"torch._utils._rebuild_tensor_v2 called with {a.Length} arguments, not 6 or 7");
                if (a[4] is not bool)
                    throw Fail($"torch._utils._rebuild_tensor_v2: requires_grad is {PthFile.Describe(a[4])}, not a bool");
                if (a[5] is not PyDict { Count: 0 })
                    throw Fail($"torch._utils._rebuild_tensor_v2: backward hooks are {PthFile.Describe(a[5])}, not an empty OrderedDict");
                if (a.Length == 7 && a[6] is not (null or PyDict))
                    throw Fail($"torch._utils._rebuild_tensor_v2: metadata is {PthFile.Describe(a[6])}, not a dict");
                return Tensor(a, g.Name);
            case GlobalRole.RebuildParameter:
            case GlobalRole.RebuildParameterWithState:
                if (a.Length != (g.Role == GlobalRole.RebuildParameter ? 3 : 4))
                    throw Fail($"torch._utils.{g.Name} called with {a.Length} arguments");
                if (a[0] is not TensorRef t)
                    throw Fail($"torch._utils.{g.Name} of {PthFile.Describe(a[0])}, not a tensor");
                if (a[1] is not bool || a[2] is not PyDict { Count: 0 })
                    throw Fail($"torch._utils.{g.Name}: requires_grad {PthFile.Describe(a[1])} or hooks {PthFile.Describe(a[2])} are not a bool and an empty OrderedDict");
                return t;
            default:
                throw Fail($"{op} of {g.Module}.{g.Name}, which cannot be called here (a storage type is only a persistent id's field)");
        }
    }

    private TensorRef Tensor(object?[] a, string name)
    {
        if (a[0] is not StorageRef storage)
            throw Fail($"torch._utils.{name}: storage is {PthFile.Describe(a[0])}, not a storage");
        if (a[1] is not long offset || offset < 0)
            throw Fail($"torch._utils.{name}: storage offset {PthFile.Describe(a[1])} is not a non-negative integer");
        long[] sizes = Ints(a[2], name, "size");
        long[] strides = Ints(a[3], name, "stride");
        if (sizes.Length != strides.Length)
            throw Fail($"torch._utils.{name}: size has {sizes.Length} dimensions but stride has {strides.Length}");
        return new TensorRef(storage, offset, sizes, strides);
    }

    private long[] Ints(object? value, string name, string what)
    {
        if (value is not PyTuple t)
            throw Fail($"torch._utils.{name}: {what} is {PthFile.Describe(value)}, not a tuple of integers");
        if (t.Items.Length > _limits.MaxRank)
            throw Fail($"torch._utils.{name}: {what} has {t.Items.Length} dimensions, more than {_limits.MaxRank}");
        var r = new long[t.Items.Length];
        for (int i = 0; i < r.Length; i++)
        {
            if (t.Items[i] is not long v)
                throw Fail($"torch._utils.{name}: {what}[{i}] is {PthFile.Describe(t.Items[i])}, not an integer");
            if (v < 0)
                throw Fail($"torch._utils.{name}: {what}[{i}] is negative ({v})");
            if (v > int.MaxValue && what == "size")
                throw Fail($"torch._utils.{name}: {what}[{i}] is too large ({v})");
            r[i] = v;
        }
        return r;
    }

    private object Key(object? key)
    {
        if (key is List<object?> or PyDict)
            throw Fail($"unhashable dict key {PthFile.Describe(key)}");
        return key!;
    }

    private void Put(long index)
    {
        if (_stack.Count == 0) throw Fail("memo put with an empty stack");
        object? v = _stack[^1];
        if (v == s_mark) throw Fail("memo put of a MARK");
        if (_memo.Count >= _limits.MaxStack && !_memo.ContainsKey(index))
            throw Fail($"more than {_limits.MaxStack} memo entries");
        _memo[index] = v;
    }

    private void Get(long index)
    {
        if (!_memo.TryGetValue(index, out object? v))
            throw Fail($"memo get of entry {index}, which was never put");
        Push(v);
    }

    private void Push(object? v)
    {
        if (_stack.Count >= _limits.MaxStack)
            throw Fail($"more than {_limits.MaxStack} values on the stack");
        _stack.Add(v);
    }

    private object? Pop()
    {
        int floor = _marks.Count > 0 ? _marks[^1] : 0;
        if (_stack.Count <= floor)
            throw Fail(_stack.Count == 0 ? "pop from an empty stack" : "pop across a MARK");
        object? v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek()
    {
        int floor = _marks.Count > 0 ? _marks[^1] : 0;
        if (_stack.Count <= floor)
            throw Fail(_stack.Count == 0 ? "the stack is empty" : "the stack top is a MARK");
        return _stack[^1];
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Fail("no MARK to pop to");
        int m = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        List<object?> items = _stack.GetRange(m, _stack.Count - m);
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    private byte Byte() => Take(1)[0];

    private ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || n > _data.Length - _pos)
            throw Fail(_opStart < _data.Length
                ? $"the data ends at byte {_data.Length}, short of the {n} bytes opcode 0x{_data[_opStart]:x2} needs (truncated?)"
                : $"the data ends at byte {_data.Length} without the pickle's STOP (truncated?)");
        var span = new ReadOnlySpan<byte>(_data, _pos, (int)n);
        _pos += (int)n;
        return span;
    }

    private long UInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    private int Int32NonNegative()
    {
        int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        if (n < 0) throw Fail($"negative length {n}");
        return n;
    }

    private long Int64()
    {
        long n = BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        if (n < 0) throw Fail($"negative length {n}");
        return n;
    }

    private string Utf8(long n)
    {
        ReadOnlySpan<byte> b = Take(n);
        try
        {
            return new UTF8Encoding(false, true).GetString(b);
        }
        catch (DecoderFallbackException)
        {
            throw Fail("a string is not valid UTF-8");
        }
    }

    private string Latin1(long n) => Encoding.Latin1.GetString(Take(n));

    private byte[] Bytes(long n) => Take(n).ToArray();

    private object Long(int n)
    {
        ReadOnlySpan<byte> b = Take(n);
        if (n == 0) return 0L;
        if (n <= 8)
        {
            long v = 0;
            for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
            int shift = 64 - 8 * n;
            return shift == 0 ? v : (v << shift) >> shift; // sign-extend
        }
        return new BigInteger(b, isUnsigned: false, isBigEndian: false);
    }

    private string Line()
    {
        int limit = Math.Min(_data.Length, _pos + 256);
        for (int i = _pos; i < limit; i++)
        {
            if (_data[i] == (byte)'\n')
            {
                string s = Encoding.ASCII.GetString(_data, _pos, i - _pos);
                _pos = i + 1;
                return s;
            }
        }
        throw Fail(limit == _data.Length ? "GLOBAL's name runs past the end of the data (truncated?)" : "GLOBAL's name is longer than 256 bytes");
    }

    private static string Printable(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (char c in s) sb.Append(c >= ' ' && c < 0x7f ? c : '?');
        return sb.ToString();
    }

    private WeightsException Fail(string message) => new($"{_origin}: {_where}: {message} (at byte {_opStart})");
}
