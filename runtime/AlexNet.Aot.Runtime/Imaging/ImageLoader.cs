using System;
using System.IO;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace AlexNet.Aot.Imaging;

/// <summary>An encoded image format recognized by its first bytes.</summary>
public enum ImageFormat
{
    /// <summary>Neither JPEG nor PNG.</summary>
    None,
    /// <summary>JPEG: the file starts with FF D8 FF.</summary>
    Jpeg,
    /// <summary>PNG: the file starts with 89 50 4E 47 0D 0A 1A 0A.</summary>
    Png,
}

/// <summary>
/// Decodes JPEG and PNG files to float planes in [0, 1], with SkiaSharp (Skia's libjpeg-turbo and libpng decoders).
/// The format is decided by the file's content (its magic bytes), never by its extension; file size and pixel
/// count are checked before any pixel is decoded, and every failure is an <see cref="ImageException"/> naming the file.
/// <para>
/// What the planes hold, as torchvision's default loader (PIL <c>Image.open(f).convert("RGB")</c>) gives them:
/// 8-bit R, G, B divided by 255; an alpha channel is dropped (not composited); grayscale images are replicated
/// to three channels; no colour-space conversion is applied (an embedded ICC profile is ignored) and the EXIF
/// orientation is not applied. For one-channel models, <see cref="Load(string, int)"/> with one channel gives
/// luminance as PIL's <c>convert("L")</c>: <c>L = (19595 R + 38470 G + 7471 B + 32768) &gt;&gt; 16</c> (ITU-R 601-2), over 255.
/// JPEG decoders differ in their IDCT and chroma upsampling, so values may differ from PIL's by a few levels.
/// </para>
/// </summary>
public static class ImageLoader
{
    /// <summary>The largest file accepted, in bytes (200 MiB).</summary>
    public const long MaxFileBytes = 200L * 1024 * 1024;

    /// <summary>The largest image accepted, in pixels (100 megapixels).</summary>
    public const long MaxPixels = 100_000_000;

    private static ReadOnlySpan<byte> PngMagic => new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A };

    /// <summary>The format whose magic bytes start <paramref name="header"/> (at least 8 bytes for PNG, 3 for JPEG).</summary>
    public static ImageFormat Sniff(ReadOnlySpan<byte> header)
    {
        if (header.Length >= 8 && header.Slice(0, 8).SequenceEqual(PngMagic)) return ImageFormat.Png;
        if (header.Length >= 3 && header[0] == 0xFF && header[1] == 0xD8 && header[2] == 0xFF) return ImageFormat.Jpeg;
        return ImageFormat.None;
    }

    /// <summary>The format of the file at <paramref name="path"/> by its first bytes; <see cref="ImageFormat.None"/>
    /// when it is neither JPEG nor PNG (or shorter than a magic number).</summary>
    /// <exception cref="ImageException">The file is missing or cannot be read.</exception>
    public static ImageFormat SniffFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            Span<byte> header = stackalloc byte[8];
            int n = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
            return Sniff(header.Slice(0, n));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new ImageException(path, $"cannot read the file: {e.Message}", e);
        }
    }

    /// <summary>Decodes the JPEG or PNG file at <paramref name="path"/> to <paramref name="channels"/> planes in [0, 1]:
    /// 3 for R, G, B; 1 for luminance.</summary>
    /// <exception cref="ImageException">The file is missing, unreadable, not a JPEG or PNG by content, larger than
    /// <see cref="MaxFileBytes"/> or <see cref="MaxPixels"/>, corrupt or truncated; the message starts with <paramref name="path"/>.</exception>
    public static PlanarImage Load(string path, int channels = 3) => Load(path, channels, otherFormats: false);

    /// <summary>As <see cref="Load(string, int)"/>; with <paramref name="otherFormats"/>, BMP and WebP files (by content)
    /// are decoded too (training image folders: <see cref="Training.TrainingDataset.ImageFolder"/>).</summary>
    internal static PlanarImage Load(string path, int channels, bool otherFormats)
    {
        ArgumentNullException.ThrowIfNull(path);
        CheckChannels(channels);
        if (Directory.Exists(path))
            throw new ImageException(path, "is a directory, not an image file");
        if (!File.Exists(path))
            throw new ImageException(path, "file not found");
        byte[] bytes;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            long length = stream.Length;
            if (length > MaxFileBytes)
                throw new ImageException(path, $"the file is {length} bytes, more than the {MaxFileBytes} bytes accepted for an image");
            bytes = new byte[length];
            stream.ReadExactly(bytes);
        }
        catch (Exception e) when (e is IOException and not ImageException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new ImageException(path, $"cannot read the file: {e.Message}", e);
        }
        return Decode(bytes, path, channels, otherFormats);
    }

    /// <summary>Decodes a JPEG or PNG held in memory; <paramref name="origin"/> names it in error messages.</summary>
    /// <exception cref="ImageException">As <see cref="Load(string, int)"/>.</exception>
    public static PlanarImage Decode(ReadOnlySpan<byte> bytes, string origin, int channels = 3) => Decode(bytes, origin, channels, otherFormats: false);

    private static PlanarImage Decode(ReadOnlySpan<byte> bytes, string origin, int channels, bool otherFormats)
    {
        origin ??= "<memory>";
        CheckChannels(channels);
        if (bytes.Length == 0)
            throw new ImageException(origin, "the file is empty, not a JPEG or PNG image");
        if (bytes.Length > MaxFileBytes)
            throw new ImageException(origin, $"the file is {bytes.Length} bytes, more than the {MaxFileBytes} bytes accepted for an image");
        string? name = Sniff(bytes) switch
        {
            ImageFormat.Jpeg => "JPEG",
            ImageFormat.Png => "PNG",
            _ => otherFormats ? SniffOther(bytes) : null,
        };
        if (name is null)
            throw new ImageException(origin, $"not a {(otherFormats ? "JPEG, PNG, BMP or WebP" : "JPEG or PNG")} image " +
                $"(by content: it starts with {Hex(bytes.Slice(0, Math.Min(8, bytes.Length)))})");

        byte[] rgba;
        int width, height;
        try
        {
            (rgba, width, height) = DecodeRgba(bytes, origin, name);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or TypeInitializationException)
        {
            // SkiaSharp's native library is missing or unusable: say so rather than fail obscurely.
            Exception inner = e is TypeInitializationException { InnerException: { } i } ? i : e;
            throw new ImageException(origin, $"cannot decode images: SkiaSharp's native library (libSkiaSharp) could not be loaded; " +
                $"it must be beside the program or on the library path ({inner.GetType().Name})", e);
        }
        return ToPlanes(rgba, width, height, channels);
    }

    /// <summary>Skia: decodes to 8-bit RGBA, unpremultiplied, without colour conversion.</summary>
    private static (byte[] Rgba, int Width, int Height) DecodeRgba(ReadOnlySpan<byte> bytes, string origin, string name)
    {
        using SKData data = SKData.CreateCopy(bytes);
        using SKCodec? codec = SKCodec.Create(data);
        if (codec is null)
            throw new ImageException(origin, $"corrupt or truncated {name}: its header cannot be decoded");
        SKImageInfo encoded = codec.Info;
        int width = encoded.Width, height = encoded.Height;
        if (width <= 0 || height <= 0)
            throw new ImageException(origin, $"corrupt {name}: it claims {width}x{height} pixels");
        long pixels = (long)width * height;
        if (pixels > MaxPixels)
            throw new ImageException(origin, $"{name} of {width}x{height} pixels ({pixels} in all) is larger than the {MaxPixels} pixels accepted");

        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        byte[] rgba = GC.AllocateUninitializedArray<byte>(checked((int)(pixels * 4)));
        SKCodecResult result;
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            result = codec.GetPixels(info, handle.AddrOfPinnedObject());
        }
        finally
        {
            handle.Free();
        }
        switch (result)
        {
            case SKCodecResult.Success:
                return (rgba, width, height);
            case SKCodecResult.IncompleteInput:
                throw new ImageException(origin, $"truncated {name}: the file ends before the {width}x{height} image does");
            case SKCodecResult.ErrorInInput:
                throw new ImageException(origin, $"corrupt {name}: the {width}x{height} image data has errors");
            default:
                throw new ImageException(origin, $"cannot decode the {width}x{height} {name} ({result})");
        }
    }

    private static PlanarImage ToPlanes(byte[] rgba, int width, int height, int channels)
    {
        int n = width * height;
        var image = new PlanarImage(channels, height, width);
        float[] d = image.Data;
        if (channels == 3)
        {
            for (int i = 0; i < n; i++)
            {
                d[i] = rgba[4 * i] / 255f;
                d[n + i] = rgba[4 * i + 1] / 255f;
                d[2 * n + i] = rgba[4 * i + 2] / 255f;
            }
        }
        else
        {
            for (int i = 0; i < n; i++)
            {
                int l = (19595 * rgba[4 * i] + 38470 * rgba[4 * i + 1] + 7471 * rgba[4 * i + 2] + 0x8000) >> 16;
                d[i] = l / 255f;
            }
        }
        return image;
    }

    /// <summary>"BMP" for a file starting with "BM" (and long enough for its 14-byte file header and a DIB header size), "WebP" for RIFF....WEBP; else null.</summary>
    private static string? SniffOther(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= 18 && bytes[0] == (byte)'B' && bytes[1] == (byte)'M') return "BMP";
        if (bytes.Length >= 12 && bytes.Slice(0, 4).SequenceEqual("RIFF"u8) && bytes.Slice(8, 4).SequenceEqual("WEBP"u8)) return "WebP";
        return null;
    }

    private static void CheckChannels(int channels)
    {
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "images decode to 1 (luminance) or 3 (RGB) channels");
    }

    private static string Hex(ReadOnlySpan<byte> bytes)
    {
        var parts = new string[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) parts[i] = bytes[i].ToString("X2", System.Globalization.CultureInfo.InvariantCulture);
        return string.Join(" ", parts);
    }
}
