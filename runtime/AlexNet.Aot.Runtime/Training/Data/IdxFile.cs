using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;

namespace AlexNet.Aot.Training;

/// <summary>The images of an IDX file: <see cref="Count"/> grayscale images of <see cref="Rows"/> x <see cref="Columns"/>
/// unsigned bytes, stored image after image, row-major (<c>Pixels[(i * Rows + y) * Columns + x]</c>).</summary>
public sealed class IdxImages
{
    /// <summary>Wraps pixels read from <paramref name="path"/>; <paramref name="pixels"/> holds <c>count * rows * columns</c> bytes.</summary>
    public IdxImages(string path, int count, int rows, int columns, byte[] pixels)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(pixels);
        if (count <= 0 || rows <= 0 || columns <= 0)
            throw new ArgumentException($"{count} images of {rows}x{columns} is empty");
        if ((long)count * rows * columns != pixels.Length)
            throw new ArgumentException($"{pixels.Length} bytes do not make {count} images of {rows}x{columns}", nameof(pixels));
        Path = path;
        Count = count;
        Rows = rows;
        Columns = columns;
        Pixels = pixels;
    }

    /// <summary>The file the images come from.</summary>
    public string Path { get; }

    /// <summary>The number of images.</summary>
    public int Count { get; }

    /// <summary>Rows per image (the height).</summary>
    public int Rows { get; }

    /// <summary>Columns per image (the width).</summary>
    public int Columns { get; }

    /// <summary>Every image's pixels, 0 to 255, image after image.</summary>
    public byte[] Pixels { get; }

    /// <summary>One image's <c>Rows * Columns</c> pixels.</summary>
    public ReadOnlySpan<byte> Image(int index)
    {
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Path} holds {Count} images");
        int n = Rows * Columns;
        return Pixels.AsSpan(index * n, n);
    }
}

/// <summary>
/// Reads IDX files, the format of MNIST and Fashion-MNIST: a big-endian magic number <c>00 00 08 NDIM</c> (type 08:
/// unsigned bytes), NDIM big-endian 32-bit dimensions, then the data. Images are <c>0x00000803</c> (count, rows,
/// columns), labels <c>0x00000801</c> (count). Files may be gzip-compressed (recognized by their first bytes
/// <c>1F 8B</c>, whatever their name) or raw.
/// <para>
/// Everything is checked, and every problem is a <see cref="DatasetException"/> naming the file: the magic number,
/// the dimensions (at most <see cref="MaxItems"/> items of at most <see cref="MaxSide"/> x <see cref="MaxSide"/>), a
/// file that ends before the data its header claims or goes on after it, corrupt gzip data. Decompression is bounded:
/// no more than the header's size plus one byte is ever decompressed (a gzip bomb stops there), and a header claiming
/// more data than the compressed file could hold at deflate's largest ratio is refused before anything is allocated.
/// </para>
/// </summary>
public static class IdxFile
{
    /// <summary>The magic number of an IDX images file: unsigned bytes, 3 dimensions.</summary>
    public const uint ImagesMagic = 0x00000803;

    /// <summary>The magic number of an IDX labels file: unsigned bytes, 1 dimension.</summary>
    public const uint LabelsMagic = 0x00000801;

    /// <summary>The most images or labels a file may claim (10 million).</summary>
    public const int MaxItems = 10_000_000;

    /// <summary>The largest image side a file may claim, in pixels.</summary>
    public const int MaxSide = 4096;

    /// <summary>Deflate's largest compression ratio is about 1032:1; a claim past it cannot be backed by the file.</summary>
    private const long MaxDeflateRatio = 1032;

    /// <summary>Reads the images of the IDX file at <paramref name="path"/> (gzip-compressed or raw).</summary>
    /// <exception cref="DatasetException">The file is missing, unreadable, not an IDX images file, implausible,
    /// truncated, longer than its header says, or corrupt; the message starts with <paramref name="path"/>.</exception>
    public static IdxImages ReadImages(string path)
    {
        byte[] data = Read(path, ImagesMagic, out int[] dims);
        return new IdxImages(path, dims[0], dims[1], dims[2], data);
    }

    /// <summary>Reads the labels of the IDX file at <paramref name="path"/> (gzip-compressed or raw): one byte per item.</summary>
    /// <exception cref="DatasetException">As <see cref="ReadImages"/>.</exception>
    public static byte[] ReadLabels(string path) => Read(path, LabelsMagic, out _);

    private static string Describe(uint magic) => magic == ImagesMagic
        ? "0x00000803 (IDX images: unsigned bytes, 3 dimensions)"
        : "0x00000801 (IDX labels: unsigned bytes, 1 dimension)";

    private static byte[] Read(string path, uint magic, out int[] dims)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            throw new DatasetException(path, "is a directory, not an IDX file");
        if (!File.Exists(path))
            throw new DatasetException(path, "file not found");
        int rank = (int)(magic & 0xFF);
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
            long fileLength = file.Length;
            Span<byte> sniff = stackalloc byte[2];
            bool gzip = file.ReadAtLeast(sniff, 2, throwOnEndOfStream: false) == 2 && sniff[0] == 0x1F && sniff[1] == 0x8B;
            file.Position = 0;
            using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress, leaveOpen: true) : file;
            string where = gzip ? "the decompressed data" : "the file";

            // The magic number.
            Span<byte> header = stackalloc byte[4 + 4 * 3];
            int got = stream.ReadAtLeast(header.Slice(0, 4), 4, throwOnEndOfStream: false);
            if (got < 4)
                throw new DatasetException(path, $"truncated: {where} ends after {got} byte(s), inside the 4-byte IDX magic number");
            uint found = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (found != magic)
            {
                string hint = found == ImagesMagic || found == LabelsMagic ? $" (this is {Describe(found)})"
                    : (found & 0xFFFF0000) != 0 ? " (not an IDX file)"
                    : ((found >> 8) & 0xFF) != 0x08 ? $" (IDX element type 0x{(found >> 8) & 0xFF:X2} is not unsigned bytes, 0x08)"
                    : $" (IDX with {found & 0xFF} dimension(s))";
                throw new DatasetException(path, $"bad magic number 0x{found:X8}: expected {Describe(magic)}{hint}");
            }

            // The dimensions.
            Span<byte> dimBytes = header.Slice(4, 4 * rank);
            got = stream.ReadAtLeast(dimBytes, dimBytes.Length, throwOnEndOfStream: false);
            if (got < dimBytes.Length)
                throw new DatasetException(path, $"truncated: {where} ends after {4 + got} bytes, inside the {4 + dimBytes.Length}-byte header");
            dims = new int[rank];
            long total = 1;
            for (int d = 0; d < rank; d++)
            {
                uint v = BinaryPrimitives.ReadUInt32BigEndian(dimBytes.Slice(4 * d));
                string what = d == 0 ? (rank == 1 ? "labels" : "images") : d == 1 ? "rows" : "columns";
                uint limit = d == 0 ? (uint)MaxItems : (uint)MaxSide;
                if (v == 0)
                    throw new DatasetException(path, $"the header claims 0 {what}");
                if (v > limit)
                    throw new DatasetException(path, $"the header claims {v} {what}, more than the {limit} accepted");
                dims[d] = (int)v;
                total *= v;
            }
            string claim = rank == 1 ? $"{dims[0]} labels" : $"{dims[0]} images of {dims[1]}x{dims[2]}";
            if (total > Array.MaxLength)
                throw new DatasetException(path, $"the header claims {claim}, {total} bytes: more than one array can hold");
            int headerLength = 4 + 4 * rank;

            // The data: the exact length, never more than it plus one byte decompressed.
            if (!gzip)
            {
                long after = fileLength - headerLength;
                if (after < total)
                    throw new DatasetException(path, $"truncated: the header claims {claim} ({total} bytes) but the file holds {after} bytes after its header");
                if (after > total)
                    throw new DatasetException(path, $"trailing data: {after - total} byte(s) after the {total} bytes of {claim} the header claims");
            }
            else if (total + headerLength > fileLength * MaxDeflateRatio + 1024)
            {
                throw new DatasetException(path, $"truncated: the header claims {claim} ({total} bytes), more than {fileLength} compressed bytes can hold");
            }
            byte[] data = GC.AllocateUninitializedArray<byte>((int)total);
            got = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
            if (got < total)
                throw new DatasetException(path, $"truncated: the header claims {claim} ({total} bytes) but {where} ends after {got} of them");
            Span<byte> extra = stackalloc byte[1];
            if (gzip && stream.ReadAtLeast(extra, 1, throwOnEndOfStream: false) > 0)
                throw new DatasetException(path, $"trailing data: the decompressed data goes on after the {total} bytes of {claim} the header claims");
            return data;
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException(path, $"corrupt gzip data: {OneLine(e.Message)}", e);
        }
        catch (Exception e) when (e is IOException and not DatasetException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new DatasetException(path, $"cannot read the file: {OneLine(e.Message)}", e);
        }
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
