using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Threading;
using CsCheck;

namespace AlexNet.Aot.Tests.Fuzz;

// The fuzzing engine shared by the reader fuzz tests (AlexNet.Aot.Tests) and the spec fuzz test (the generator's
// tests link this file). CsCheck generates each input as a seed file, a view of it and a list of mutations, or as
// random bytes; it runs them on several threads and, on a failure, shrinks to the simplest failing input and prints a
// seed that reproduces the run. Each input is written to a file (one per thread) and handed to the reader, which must
// load it or throw its documented exception with a message that starts with the file's path, within a time limit.

/// <summary>A valid input to start from, and the views of it that mutations apply to.</summary>
internal sealed class FuzzSeed
{
    public FuzzSeed(string name, byte[] bytes, params FuzzView[] views)
    {
        Name = name;
        Bytes = bytes;
        Views = views.Length == 0 ? new[] { FuzzView.Raw } : views;
        Inner = Views.Select(v => v.Extract(bytes)).ToArray();
    }

    public string Name { get; }

    public byte[] Bytes { get; }

    public FuzzView[] Views { get; }

    /// <summary>What each view extracts from <see cref="Bytes"/>, computed once.</summary>
    public byte[][] Inner { get; }
}

/// <summary>
/// A structure-aware view of a seed: mutations apply to what <see cref="Extract"/> takes out (a zip entry, the
/// decompressed data, a JSON header), and <see cref="Wrap"/> puts the mutated bytes back into a well-formed container
/// (checksums, lengths, compression), so the mutations reach the parser behind the container's own checks.
/// </summary>
internal sealed class FuzzView
{
    public FuzzView(string name, Func<byte[], byte[]> extract, Func<byte[], byte[], byte[]> wrap)
    {
        Name = name;
        Extract = extract;
        Wrap = wrap;
    }

    /// <summary>The bytes as they are.</summary>
    public static readonly FuzzView Raw = new("raw", b => b, (_, m) => m);

    public string Name { get; }

    public Func<byte[], byte[]> Extract { get; }

    /// <summary>(the seed's bytes, the mutated inner bytes) → the file.</summary>
    public Func<byte[], byte[], byte[]> Wrap { get; }
}

/// <summary>One reader under test: its seeds, a dictionary of interesting tokens, and how to load a file with it.</summary>
internal sealed class FuzzTarget
{
    public required string Name { get; init; }

    /// <summary>The input file's extension (readers decide by content; this only makes saved failures easy to open).</summary>
    public required string Extension { get; init; }

    public required IReadOnlyList<FuzzSeed> Seeds { get; init; }

    /// <summary>Tokens of the format (magic numbers, keywords, opcodes) that mutations insert or overwrite with.</summary>
    public IReadOnlyList<byte[]> Dictionary { get; init; } = Array.Empty<byte[]>();

    /// <summary>How many ways <see cref="Load"/> reads a file (e.g. through the format's reader or by content detection).</summary>
    public int Variants { get; init; } = 1;

    /// <summary>The largest pure-random input, in bytes.</summary>
    public int MaxRandomBytes { get; init; } = 512;

    /// <summary>Loads the file at the path in the given variant; returns when it loaded (after checking what it holds),
    /// throws when it did not. Invariant violations on a loaded file throw <see cref="FuzzInvariantException"/>.</summary>
    public required Action<string, int> Load { get; init; }

    /// <summary>Whether an exception is the reader's documented, clear error for the file at the path.</summary>
    public required Func<Exception, string, bool> IsClearError { get; init; }
}

/// <summary>A loaded file holds something the reader's contract rules out.</summary>
internal sealed class FuzzInvariantException(string message) : Exception(message);

/// <summary>One mutation: its kind and three raw operands, interpreted modulo the input's length.</summary>
internal sealed record Mutation(int Kind, uint A, uint B, uint C)
{
    public override string ToString() => $"{FuzzMutator.KindNames[Kind]}({A},{B},{C})";
}

/// <summary>An input: a seed, view and mutations, or (Seed &lt; 0) random bytes after a prefix of a seed.</summary>
internal sealed record FuzzCase(int Seed, int View, int Variant, Mutation[] Mutations, int Prefix, byte[]? Random);

/// <summary>What one run found, per reader.</summary>
internal sealed record FuzzSummary(string Reader, long Inputs, long Loaded, long Errors, long Failures, double Seconds, string Seed);

/// <summary>Structure-aware byte mutations.</summary>
internal static class FuzzMutator
{
    public static readonly string[] KindNames =
    {
        "flip", "byte", "insert", "delete", "truncate", "int", "token", "overtoken", "copy", "splice", "varint", "repeat",
    };

    /// <summary>The largest input a mutation may produce.</summary>
    public const int MaxLength = 1 << 20;

    private static readonly byte[] InterestingBytes = { 0, 1, 2, 0x7f, 0x80, 0xff, 0xfe, 0x20, (byte)'0', (byte)'9', (byte)'-', (byte)'\n', (byte)'"', (byte)'{', (byte)'[' };

    private static readonly ulong[] Boundaries =
    {
        0, 1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095, 4096, 65535, 65536,
        0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1_0000_0000, 100_000_000, 100_000_001, 10_000_000, 10_000_001,
        0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, ulong.MaxValue, ulong.MaxValue - 1, (ulong)Array.MaxLength, (ulong)Array.MaxLength + 1,
        1UL << 53, 1UL << 62,
    };

    public static byte[] Apply(byte[] data, Mutation m, IReadOnlyList<byte[]> dictionary, IReadOnlyList<FuzzSeed> seeds)
    {
        int n = data.Length;
        int pos = n == 0 ? 0 : (int)(m.A % (uint)(n + 1));
        int at = n == 0 ? 0 : (int)(m.A % (uint)n); // an existing byte
        switch (m.Kind)
        {
            case 0 when n > 0: // flip a bit
            {
                byte[] r = (byte[])data.Clone();
                r[at] ^= (byte)(1 << (int)(m.B % 8));
                return r;
            }
            case 1 when n > 0: // set a byte to an interesting or random value
            {
                byte[] r = (byte[])data.Clone();
                r[at] = m.C % 2 == 0 ? InterestingBytes[m.B % InterestingBytes.Length] : (byte)m.B;
                return r;
            }
            case 2: // insert 1..16 bytes
            {
                int count = 1 + (int)(m.B % 16);
                var ins = new byte[count];
                uint x = m.C;
                for (int i = 0; i < count; i++) { x = x * 1664525 + 1013904223; ins[i] = (byte)(x >> 24); }
                return Insert(data, pos, ins);
            }
            case 3 when n > 0: // delete a range: short, or up to the whole rest
            {
                int len = m.C % 4 == 0 ? (int)(m.B % (uint)(n - at)) + 1 : Math.Min(n - at, 1 + (int)(m.B % 16));
                return Remove(data, at, len);
            }
            case 4: // truncate
                return data.AsSpan(0, pos).ToArray();
            case 5 when n > 0: // overwrite an integer (1, 2, 4 or 8 bytes, either endianness) with a boundary value or the old one +/- a little
            {
                int width = 1 << (int)(m.B % 4);
                bool big = (m.B >> 2) % 2 == 1;
                byte[] r = (byte[])data.Clone();
                int p = Math.Min(at, Math.Max(0, n - width));
                int w = Math.Min(width, n - p);
                ulong old = ReadUInt(r.AsSpan(p, w), big);
                ulong v = (m.C % 4) switch
                {
                    0 => old + 1 + (m.C >> 2) % 16,
                    1 => old - 1 - (m.C >> 2) % 16,
                    _ => Boundaries[(m.C >> 2) % (uint)Boundaries.Length],
                };
                WriteUInt(r.AsSpan(p, w), v, big);
                return r;
            }
            case 6 when dictionary.Count > 0: // insert a token
                return Insert(data, pos, dictionary[(int)(m.B % (uint)dictionary.Count)]);
            case 7 when dictionary.Count > 0 && n > 0: // overwrite with a token
            {
                byte[] token = dictionary[(int)(m.B % (uint)dictionary.Count)];
                byte[] r = (byte[])data.Clone();
                token.AsSpan(0, Math.Min(token.Length, n - at)).CopyTo(r.AsSpan(at));
                return r;
            }
            case 8 when n > 0: // copy a range of the input elsewhere in it (insert or overwrite)
            {
                int from = (int)(m.B % (uint)n);
                int len = Math.Min(n - from, 1 + (int)(m.C % 64));
                byte[] chunk = data.AsSpan(from, len).ToArray();
                if (m.C % 128 >= 64) return Insert(data, pos, chunk);
                byte[] r = (byte[])data.Clone();
                chunk.AsSpan(0, Math.Min(len, n - at)).CopyTo(r.AsSpan(at));
                return r;
            }
            case 9 when seeds.Count > 0: // splice in part of another seed
            {
                byte[] other = seeds[(int)(m.B % (uint)seeds.Count)].Bytes;
                if (other.Length == 0) return data;
                int from = (int)(m.C % (uint)other.Length);
                int len = Math.Min(other.Length - from, 1 + (int)((m.C >> 8) % 256));
                return Insert(data, pos, other.AsSpan(from, len).ToArray());
            }
            case 10 when n > 0: // replace the varint at a position with a boundary value (protobuf lengths and tags)
            {
                int end = at;
                while (end < n && end - at < 10 && (data[end] & 0x80) != 0) end++;
                end = Math.Min(n, end + 1);
                ulong v = m.C % 3 == 0 ? m.B : Boundaries[m.B % (uint)Boundaries.Length];
                var enc = new List<byte>();
                do { byte b = (byte)(v & 0x7f); v >>= 7; enc.Add(v != 0 ? (byte)(b | 0x80) : b); } while (v != 0);
                var r = new byte[n - (end - at) + enc.Count];
                data.AsSpan(0, at).CopyTo(r);
                enc.CopyTo(r, at);
                data.AsSpan(end).CopyTo(r.AsSpan(at + enc.Count));
                return r;
            }
            case 11 when n > 0: // repeat a range many times (deep nesting, long lists)
            {
                int len = Math.Min(n - at, 1 + (int)(m.B % 16));
                int times = 2 + (int)(m.C % 2000);
                byte[] chunk = data.AsSpan(at, len).ToArray();
                var ins = new byte[Math.Min(MaxLength, len * times)];
                for (int i = 0; i < ins.Length; i++) ins[i] = chunk[i % len];
                return Insert(data, at, ins);
            }
            default:
                return data;
        }
    }

    private static byte[] Insert(byte[] data, int pos, byte[] ins)
    {
        if (data.Length + ins.Length > MaxLength) return data;
        var r = new byte[data.Length + ins.Length];
        data.AsSpan(0, pos).CopyTo(r);
        ins.CopyTo(r, pos);
        data.AsSpan(pos).CopyTo(r.AsSpan(pos + ins.Length));
        return r;
    }

    private static byte[] Remove(byte[] data, int at, int len)
    {
        var r = new byte[data.Length - len];
        data.AsSpan(0, at).CopyTo(r);
        data.AsSpan(at + len).CopyTo(r.AsSpan(at));
        return r;
    }

    private static ulong ReadUInt(ReadOnlySpan<byte> b, bool big)
    {
        ulong v = 0;
        for (int i = 0; i < b.Length; i++) v |= (ulong)b[big ? b.Length - 1 - i : i] << (8 * i);
        return v;
    }

    private static void WriteUInt(Span<byte> b, ulong v, bool big)
    {
        for (int i = 0; i < b.Length; i++) b[big ? b.Length - 1 - i : i] = (byte)(v >> (8 * i));
    }
}

/// <summary>Runs a <see cref="FuzzTarget"/> under CsCheck and checks each input against the reader's contract.</summary>
internal static class Fuzzer
{
    /// <summary>
    /// The number of inputs for a reader: <c>ALEXNET_FUZZ_ITERATIONS_READER</c> (the name in capitals, '-' as '_', e.g.
    /// <c>ALEXNET_FUZZ_ITERATIONS_PTH_ZIP</c>), else <c>ALEXNET_FUZZ_ITERATIONS</c>, else <paramref name="fallback"/>; 0 skips the reader.
    /// </summary>
    public static int Iterations(string reader, int fallback)
    {
        foreach (string name in new[] { "ALEXNET_FUZZ_ITERATIONS_" + reader.ToUpperInvariant().Replace('-', '_'), "ALEXNET_FUZZ_ITERATIONS" })
        {
            string? s = Environment.GetEnvironmentVariable(name);
            if (int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 0) return n;
        }
        return fallback;
    }

    /// <summary>The time one input may take: <c>ALEXNET_FUZZ_TIMEOUT_MS</c>, else 2 s.</summary>
    public static TimeSpan Limit
    {
        get
        {
            string? s = Environment.GetEnvironmentVariable("ALEXNET_FUZZ_TIMEOUT_MS");
            return TimeSpan.FromMilliseconds(int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int ms) && ms > 0 ? ms : 2000);
        }
    }

    /// <summary>Threads per reader: <c>ALEXNET_FUZZ_THREADS</c>, else 1.</summary>
    public static int Threads
    {
        get
        {
            string? s = Environment.GetEnvironmentVariable("ALEXNET_FUZZ_THREADS");
            return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 1;
        }
    }

    /// <summary>Where failing inputs are saved: <c>ALEXNET_FUZZ_FAILURES</c>, else a folder under the temp folder.</summary>
    public static string FailureFolder =>
        Environment.GetEnvironmentVariable("ALEXNET_FUZZ_FAILURES") is { Length: > 0 } f ? f : Path.Combine(Path.GetTempPath(), "alexnet-fuzz-failures");

    /// <summary>The generator of inputs for a target: mostly mutated seeds, some random bytes.</summary>
    public static Gen<FuzzCase> Inputs(FuzzTarget t)
    {
        Gen<Mutation> mutation = Gen.Select(Gen.Int[0, FuzzMutator.KindNames.Length - 1], Gen.UInt, Gen.UInt, Gen.UInt, (k, a, b, c) => new Mutation(k, a, b, c));
        Gen<FuzzCase> mutated = Gen.Select(Gen.Int[0, t.Seeds.Count - 1], Gen.Int[0, 7], Gen.Int[0, t.Variants - 1], Gen.Frequency((6, mutation.Array[1, 1]), (3, mutation.Array[2, 3]), (1, mutation.Array[4, 8])),
            (s, v, variant, m) => new FuzzCase(s, v, variant, m, 0, null));
        Gen<FuzzCase> random = Gen.Select(Gen.Int[0, t.Seeds.Count - 1], Gen.Int[0, 16], Gen.Int[0, t.Variants - 1], Gen.Byte.Array[0, t.MaxRandomBytes],
            (s, prefix, variant, bytes) => new FuzzCase(-1 - s, 0, variant, Array.Empty<Mutation>(), prefix, bytes));
        return Gen.Frequency((15, mutated), (1, random));
    }

    /// <summary>The bytes of an input.</summary>
    public static byte[] Materialize(FuzzTarget t, FuzzCase c)
    {
        if (c.Random is not null)
        {
            byte[] seed = t.Seeds[(-1 - c.Seed) % t.Seeds.Count].Bytes;
            int prefix = Math.Min(c.Prefix, seed.Length);
            var r = new byte[prefix + c.Random.Length];
            seed.AsSpan(0, prefix).CopyTo(r);
            c.Random.CopyTo(r, prefix);
            return r;
        }
        FuzzSeed s = t.Seeds[c.Seed % t.Seeds.Count];
        int view = c.View % s.Views.Length;
        byte[] data = s.Inner[view];
        foreach (Mutation m in c.Mutations) data = FuzzMutator.Apply(data, m, t.Dictionary, t.Seeds);
        return s.Views[view].Wrap(s.Bytes, data);
    }

    public static string Describe(FuzzTarget t, FuzzCase c)
    {
        if (c.Random is not null)
            return $"{c.Random.Length} random bytes after {c.Prefix} bytes of seed {t.Seeds[(-1 - c.Seed) % t.Seeds.Count].Name}, variant {c.Variant}";
        FuzzSeed s = t.Seeds[c.Seed % t.Seeds.Count];
        return $"seed {s.Name}, view {s.Views[c.View % s.Views.Length].Name}, variant {c.Variant}, mutations [{string.Join(", ", c.Mutations.Select(m => m.ToString()))}]";
    }

    /// <summary>
    /// Checks one input against the contract: loaded, or the documented exception naming the file, within the limit.
    /// Returns true when it loaded, false for a clear error; throws <see cref="FuzzFailure"/> otherwise.
    /// </summary>
    public static bool Check(FuzzTarget t, string path, byte[] bytes, int variant, TimeSpan limit, out TimeSpan elapsed)
    {
        File.WriteAllBytes(path, bytes);
        var clock = Stopwatch.StartNew();
        Exception? error = null;
        using (Watchdog.Watch(t.Name, path, bytes, limit))
        {
            try
            {
                t.Load(path, variant);
            }
            catch (Exception e)
            {
                error = e;
            }
        }
        elapsed = clock.Elapsed;
        if (error is not null && !t.IsClearError(error, path))
            throw new FuzzFailure($"{t.Name}: {(error is FuzzInvariantException ? "a loaded file breaks an invariant" : "not the reader's documented error")}: {error}");
        if (elapsed > limit)
            throw new FuzzFailure($"{t.Name}: the input took {elapsed.TotalMilliseconds:F0} ms, over the {limit.TotalMilliseconds:F0} ms limit ({(error is null ? "it loaded" : error.Message)})");
        return error is null;
    }

    /// <summary>Whether a message names the file: it starts with the path and a colon.</summary>
    public static bool NamesFile(string message, string path) => message.StartsWith(path + ":", StringComparison.Ordinal);

    /// <summary>Runs <paramref name="iterations"/> inputs of <paramref name="t"/>; throws with a reproducible description on a failure.</summary>
    public static FuzzSummary Run(FuzzTarget t, int iterations, Action<string>? log = null)
    {
        // Every seed must load: a seed that does not is a harness bug, and its mutations would test little.
        string dir = Path.Combine(Path.GetTempPath(), "alexnet-fuzz-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        TimeSpan limit = Limit;
        long inputs = 0, loaded = 0, errors = 0, failures = 0;
        string? saved = null;
        int savedLength = 0;
        var clock = Stopwatch.StartNew();
        var files = new ThreadLocal<string>(() => Path.Combine(dir, $"input-{Environment.CurrentManagedThreadId}.{t.Extension}"), trackAllValues: false);
        string seed = Environment.GetEnvironmentVariable("ALEXNET_FUZZ_SEED") is { Length: > 0 } s ? s : "";
        try
        {
            foreach (FuzzSeed fs in t.Seeds)
            {
                bool any = false;
                for (int v = 0; v < t.Variants; v++) any |= Check(t, files.Value!, fs.Bytes, v, TimeSpan.FromSeconds(30), out _);
                if (!any) throw new InvalidOperationException($"{t.Name}: seed {fs.Name} loads in no variant");
            }

            var gen = Inputs(t);
            string lastSeed = "";
            try
            {
                gen.Sample(c =>
                {
                    Interlocked.Increment(ref inputs);
                    byte[] bytes = Materialize(t, c);
                    string path = files.Value!;
                    try
                    {
                        bool ok;
                        try
                        {
                            ok = Check(t, path, bytes, c.Variant, limit, out _);
                        }
                        catch (FuzzFailure f) when (f.Message.Contains("over the", StringComparison.Ordinal))
                        {
                            // A slow input is tried once more, so a busy machine does not fail the run.
                            ok = Check(t, path, bytes, c.Variant, limit, out _);
                        }
                        Interlocked.Increment(ref ok ? ref loaded : ref errors);
                    }
                    catch (FuzzFailure f)
                    {
                        Interlocked.Increment(ref failures);
                        string file = Save(t, bytes);
                        lock (files)
                        {
                            if (saved is null || bytes.Length < savedLength) (saved, savedLength) = (file, bytes.Length);
                        }
                        throw new FuzzFailure($"{f.Message}\ninput saved to {file} ({bytes.Length} bytes)");
                    }
                }, seed: seed.Length > 0 ? seed : null, iter: iterations, threads: Threads, print: c => Describe(t, c));
            }
            catch (CsCheckException e)
            {
                lastSeed = e.Message;
                var summary = new FuzzSummary(t.Name, inputs, loaded, errors, Math.Max(1, failures), clock.Elapsed.TotalSeconds, seed);
                Report(summary, log);
                throw new FuzzFailure($"{t.Name}: fuzzing failed after {inputs} inputs; the smallest failing input is saved to {saved}.\n" +
                    $"Copy it to tests/AlexNet.Aot.Tests/fuzz-regressions/{t.Name}/ once fixed. CsCheck: {lastSeed}\n{e.InnerException?.Message}");
            }
            var ok = new FuzzSummary(t.Name, inputs, loaded, errors, failures, clock.Elapsed.TotalSeconds, seed);
            Report(ok, log);
            return ok;
        }
        finally
        {
            files.Dispose();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Replays every saved regression input of a target: each must load or fail clearly, within the limit.</summary>
    public static int Replay(FuzzTarget t, string folder)
    {
        if (!Directory.Exists(folder)) return 0;
        string dir = Path.Combine(Path.GetTempPath(), "alexnet-fuzz-replay-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        int n = 0;
        try
        {
            foreach (string f in Directory.GetFiles(folder).Where(f => !f.EndsWith(".md", StringComparison.OrdinalIgnoreCase)).OrderBy(f => f, StringComparer.Ordinal))
            {
                byte[] bytes = File.ReadAllBytes(f);
                for (int v = 0; v < t.Variants; v++)
                {
                    string path = Path.Combine(dir, "replay." + t.Extension);
                    try
                    {
                        Check(t, path, bytes, v, Limit, out _);
                    }
                    catch (FuzzFailure e)
                    {
                        throw new FuzzFailure($"regression {Path.GetFileName(f)}, variant {v}: {e.Message}");
                    }
                }
                n++;
            }
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        return n;
    }

    private static string Save(FuzzTarget t, byte[] bytes)
    {
        string folder = Path.Combine(FailureFolder, t.Name);
        Directory.CreateDirectory(folder);
        string hash = Convert.ToHexString(SHA256.HashData(bytes)).Substring(0, 16).ToLowerInvariant();
        string file = Path.Combine(folder, $"{hash}.{t.Extension}");
        File.WriteAllBytes(file, bytes);
        return file;
    }

    /// <summary>Writes the summary to the log and, with <c>ALEXNET_FUZZ_REPORT</c> set, appends it to that file as a tab-separated line.</summary>
    private static void Report(FuzzSummary s, Action<string>? log)
    {
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{s.Reader}\t{s.Inputs}\t{s.Loaded}\t{s.Errors}\t{s.Failures}\t{s.Seconds:F1}");
        log?.Invoke($"{s.Reader}: {s.Inputs} inputs, {s.Loaded} loaded, {s.Errors} clear errors, {s.Failures} failures, {s.Seconds:F1} s");
        string? report = Environment.GetEnvironmentVariable("ALEXNET_FUZZ_REPORT");
        if (!string.IsNullOrEmpty(report))
        {
            lock (ReportLock) File.AppendAllText(report, line + "\n");
        }
    }

    private static readonly object ReportLock = new();
}

/// <summary>An input broke a reader's contract.</summary>
internal sealed class FuzzFailure(string message) : Exception(message);

/// <summary>
/// Catches hangs: an input still running after ten times the limit (at least 30 s) can never return in time, and a
/// thread cannot be stopped, so the input is saved and the process ends with a message saying where it is.
/// </summary>
internal static class Watchdog
{
    private sealed class Entry(string reader, string path, byte[] bytes, long deadline)
    {
        public string Reader { get; } = reader;
        public string Path { get; } = path;
        public byte[] Bytes { get; } = bytes;
        public long Deadline { get; } = deadline;
    }

    private static readonly Dictionary<int, Entry> Running = new();
    private static readonly Timer Timer = new(Tick, null, 1000, 1000);

    public static IDisposable Watch(string reader, string path, byte[] bytes, TimeSpan limit)
    {
        GC.KeepAlive(Timer);
        long hang = Math.Max(30_000, (long)limit.TotalMilliseconds * 10);
        int id = Environment.CurrentManagedThreadId;
        lock (Running) Running[id] = new Entry(reader, path, bytes, Environment.TickCount64 + hang);
        return new Done(id);
    }

    private sealed class Done(int id) : IDisposable
    {
        public void Dispose()
        {
            lock (Running) Running.Remove(id);
        }
    }

    private static void Tick(object? state)
    {
        Entry? hung = null;
        lock (Running)
        {
            foreach (Entry e in Running.Values)
                if (Environment.TickCount64 > e.Deadline) { hung = e; break; }
        }
        if (hung is null) return;
        string folder = System.IO.Path.Combine(Fuzzer.FailureFolder, hung.Reader);
        Directory.CreateDirectory(folder);
        string file = System.IO.Path.Combine(folder, "hang-" + Convert.ToHexString(SHA256.HashData(hung.Bytes)).Substring(0, 16).ToLowerInvariant());
        File.WriteAllBytes(file, hung.Bytes);
        string message = $"fuzz: the {hung.Reader} reader hangs on an input (saved to {file}); stopping the process";
        Console.Error.WriteLine(message);
        Environment.FailFast(message);
    }
}
