using System;
using System.Buffers.Binary;
using System.IO;
using System.Runtime.InteropServices;

namespace AlexNet.Aot;

/// <summary>Writes files so that readers never see half of one: a temporary file in the same folder, flushed, then renamed over the target.</summary>
internal static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> through <paramref name="write"/>; on any failure the temporary file is removed
    /// and I/O errors become a <see cref="WeightsException"/> starting with the path.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        string temp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException)
        {
            TryDelete(temp);
            throw new WeightsException($"{path}: cannot write the file: {e.Message}", e);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Removes the temporary files that <see cref="Write"/> leaves beside <paramref name="path"/> when its process is killed
    /// mid-write (<c>.NAME.GUID.tmp</c>: never read as the file itself); returns how many were removed. Call it only where
    /// no other process writes <paramref name="path"/> at the same time.
    /// </summary>
    public static int RemoveStaleTemporaries(string path)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        string prefix = "." + Path.GetFileName(full) + ".";
        if (!Directory.Exists(dir)) return 0;
        int removed = 0;
        foreach (string file in Directory.EnumerateFiles(dir, prefix + "*.tmp"))
        {
            string name = Path.GetFileName(file);
            if (!IsTemporaryName(name, prefix)) continue;
            try
            {
                File.Delete(file);
                removed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // best effort, as in Write
            }
        }
        return removed;
    }

    /// <summary>Whether <paramref name="name"/> is <c>PREFIX</c> + 32 lower-case hex digits + <c>.tmp</c>.</summary>
    private static bool IsTemporaryName(string name, string prefix)
    {
        if (name.Length != prefix.Length + 32 + 4 || !name.StartsWith(prefix, StringComparison.Ordinal) || !name.EndsWith(".tmp", StringComparison.Ordinal))
            return false;
        foreach (char c in name.AsSpan(prefix.Length, 32))
            if (!char.IsAsciiHexDigitLower(c)) return false; // 0-9, a-f
        return true;
    }

    /// <summary>Writes float32 values little-endian (straight from memory on little-endian machines).</summary>
    public static void WriteFloats(Stream s, float[] data)
    {
        if (BitConverter.IsLittleEndian)
        {
            s.Write(MemoryMarshal.AsBytes(data.AsSpan()));
            return;
        }
        var scratch = new byte[4096];
        for (int i = 0; i < data.Length; i += scratch.Length / 4)
        {
            int n = Math.Min(scratch.Length / 4, data.Length - i);
            for (int j = 0; j < n; j++)
                BinaryPrimitives.WriteSingleLittleEndian(scratch.AsSpan(j * 4), data[i + j]);
            s.Write(scratch, 0, n * 4);
        }
    }

    private static void TryDelete(string file)
    {
        try
        {
            if (File.Exists(file)) File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // best effort: the temporary file's name starts with a dot and ends in .tmp
        }
    }
}
