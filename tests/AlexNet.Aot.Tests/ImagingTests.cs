using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using System.Text.Json;
using AlexNet.Aot.Imaging;
using AlexNet.Aot.Models;
using SkiaSharp;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>
/// Photos in: JPEG/PNG decoding by content (SkiaSharp), torchvision and Caffe preprocessing, ten crops, crafted bad
/// files, the built-in ImageNet labels, and <c>alexnet classify</c> / <c>alexnet convert</c> end to end. The images are
/// made here with SkiaSharp's encoders, so no binary test assets are needed.
/// </summary>
public sealed class ImagingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "alexnet-imaging-" + Guid.NewGuid().ToString("N"));

    public ImagingTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string Temp(string name) => Path.Combine(_dir, name);

    private static ModelInfo Model(string name) =>
        (ModelCatalog.Find(name) ?? throw new InvalidOperationException($"{name} is not compiled in")).Info;

    // ---- making images ----

    /// <summary>An image whose pixel (x, y) is <paramref name="color"/>(x, y), encoded as PNG or JPEG (quality 100).</summary>
    private static byte[] Encode(int width, int height, Func<int, int, SKColor> color, SKEncodedImageFormat format)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        using SKData data = bitmap.Encode(format, 100);
        return data.ToArray();
    }

    private string WriteImage(string name, int width, int height, Func<int, int, SKColor> color, SKEncodedImageFormat format)
    {
        string path = Temp(name);
        File.WriteAllBytes(path, Encode(width, height, color, format));
        return path;
    }

    /// <summary>A smooth, photo-like test picture: gradients and a disc.</summary>
    private static SKColor Picture(int x, int y, int width, int height)
    {
        double dx = x - width * 0.6, dy = y - height * 0.45;
        bool disc = dx * dx + dy * dy < (width * 0.2) * (width * 0.2);
        byte r = (byte)(disc ? 220 : 255 * x / Math.Max(1, width - 1));
        byte g = (byte)(disc ? 40 : 255 * y / Math.Max(1, height - 1));
        byte b = (byte)(disc ? 60 : 128);
        return new SKColor(r, g, b);
    }

    // ---- decoding ----

    [Fact]
    public void Imaging_png_decodes_to_exact_rgb_planes()
    {
        static SKColor Color(int x, int y) => new((byte)(x * 40 + y), (byte)(200 - y * 30), (byte)(x * y * 7), 255);
        string path = WriteImage("small.png", 5, 4, Color, SKEncodedImageFormat.Png);
        Assert.Equal(ImageFormat.Png, ImageLoader.SniffFile(path));

        PlanarImage image = ImageLoader.Load(path);
        Assert.Equal((3, 4, 5), (image.Channels, image.Height, image.Width));
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 5; x++)
            {
                SKColor c = Color(x, y);
                Assert.Equal(c.Red / 255f, image.Data[(0 * 4 + y) * 5 + x]);
                Assert.Equal(c.Green / 255f, image.Data[(1 * 4 + y) * 5 + x]);
                Assert.Equal(c.Blue / 255f, image.Data[(2 * 4 + y) * 5 + x]);
            }
    }

    [Fact]
    public void Imaging_png_decodes_to_pil_luminance_for_one_channel()
    {
        static SKColor Color(int x, int y) => new((byte)(x * 60), (byte)(y * 80), (byte)(255 - x * 50), 255);
        string path = WriteImage("gray.png", 4, 3, Color, SKEncodedImageFormat.Png);
        PlanarImage image = ImageLoader.Load(path, channels: 1);
        Assert.Equal((1, 3, 4), (image.Channels, image.Height, image.Width));
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
            {
                SKColor c = Color(x, y);
                int l = (c.Red * 19595 + c.Green * 38470 + c.Blue * 7471 + 0x8000) >> 16; // PIL convert("L")
                Assert.Equal(l / 255f, image.Data[y * 4 + x]);
            }
    }

    [Fact]
    public void Imaging_jpeg_decodes_close_to_its_colours()
    {
        string path = WriteImage("flat.jpg", 32, 24, (_, _) => new SKColor(200, 100, 50), SKEncodedImageFormat.Jpeg);
        Assert.Equal(ImageFormat.Jpeg, ImageLoader.SniffFile(path));
        PlanarImage image = ImageLoader.Load(path);
        Assert.Equal((3, 24, 32), (image.Channels, image.Height, image.Width));
        float[] expected = { 200 / 255f, 100 / 255f, 50 / 255f };
        for (int c = 0; c < 3; c++)
            foreach (float v in image.Plane(c).ToArray())
                Assert.InRange(v, expected[c] - 3 / 255f, expected[c] + 3 / 255f);
    }

    [Fact]
    public void Imaging_format_is_decided_by_content_not_by_name()
    {
        // A PNG named .jpg and a JPEG named .dat decode; a text file named .png does not.
        string png = Temp("really-a-png.jpg");
        File.WriteAllBytes(png, Encode(8, 8, (_, _) => SKColors.Teal, SKEncodedImageFormat.Png));
        Assert.Equal(ImageFormat.Png, ImageLoader.SniffFile(png));
        Assert.Equal(8, ImageLoader.Load(png).Width);

        string jpeg = Temp("photo.dat");
        File.WriteAllBytes(jpeg, Encode(8, 8, (_, _) => SKColors.Teal, SKEncodedImageFormat.Jpeg));
        Assert.Equal(ImageFormat.Jpeg, ImageLoader.SniffFile(jpeg));
        Assert.Equal(8, ImageLoader.Load(jpeg).Height);

        string text = Temp("not-an-image.png");
        File.WriteAllText(text, "hello, world");
        Assert.Equal(ImageFormat.None, ImageLoader.SniffFile(text));
        ImageException e = Assert.Throws<ImageException>(() => ImageLoader.Load(text));
        Assert.StartsWith(text + ": not a JPEG or PNG image", e.Message);
    }

    // ---- bad files ----

    [Fact]
    public void Imaging_random_bytes_after_a_jpeg_header_are_a_clear_error()
    {
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        bytes[0] = 0xFF; bytes[1] = 0xD8; bytes[2] = 0xFF; bytes[3] = 0xE0;
        AssertBadImage("random.jpg", bytes);
    }

    [Fact]
    public void Imaging_truncated_png_and_jpeg_are_clear_errors()
    {
        byte[] png = Encode(64, 48, (x, y) => Picture(x, y, 64, 48), SKEncodedImageFormat.Png);
        byte[] jpeg = Encode(64, 48, (x, y) => Picture(x, y, 64, 48), SKEncodedImageFormat.Jpeg);
        var failures = new System.Collections.Generic.List<string>();
        // A file that lacks only its trailer (IEND, or JPEG's EOI) after complete pixel data decodes, as with libpng/libjpeg and PIL.
        foreach (int cut in new[] { 4, 8, 20, 33, 40, png.Length / 2, png.Length * 3 / 4, png.Length - 30 })
            if (BadImageMessage($"cut{cut}.png", png.AsSpan(0, cut).ToArray()) is string f) failures.Add($"png cut at {cut} of {png.Length}: {f}");
        foreach (int cut in new[] { 3, 10, 100, jpeg.Length / 2, jpeg.Length * 9 / 10 })
            if (BadImageMessage($"cut{cut}.jpg", jpeg.AsSpan(0, cut).ToArray()) is string f) failures.Add($"jpeg cut at {cut} of {jpeg.Length}: {f}");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Imaging_png_claiming_100000_by_100000_pixels_is_refused_before_decoding()
    {
        byte[] png = HugePng(100_000, 100_000);
        string path = Temp("huge.png");
        File.WriteAllBytes(path, png);
        ImageException e = Assert.Throws<ImageException>(() => ImageLoader.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains("100000x100000", e.Message);
    }

    [Fact]
    public void Imaging_empty_missing_and_directory_inputs_are_clear_errors()
    {
        string empty = Temp("empty.png");
        File.WriteAllBytes(empty, Array.Empty<byte>());
        Assert.StartsWith(empty + ": ", Assert.Throws<ImageException>(() => ImageLoader.Load(empty)).Message);
        string missing = Temp("missing.png");
        Assert.Equal(missing + ": file not found", Assert.Throws<ImageException>(() => ImageLoader.Load(missing)).Message);
        Assert.StartsWith(_dir + ": is a directory", Assert.Throws<ImageException>(() => ImageLoader.Load(_dir)).Message);
    }

    /// <summary>Null when loading the bytes fails with a one-line <see cref="ImageException"/> naming the file; else what happened.</summary>
    private string? BadImageMessage(string name, byte[] bytes)
    {
        string path = Temp(name);
        File.WriteAllBytes(path, bytes);
        try
        {
            ImageLoader.Load(path);
            return "no exception";
        }
        catch (ImageException e)
        {
            return e.Message.StartsWith(path + ": ", StringComparison.Ordinal) && !e.Message.Contains('\n') ? null : "message: " + e.Message;
        }
    }

    private void AssertBadImage(string name, byte[] bytes)
    {
        string path = Temp(name);
        File.WriteAllBytes(path, bytes);
        ImageException e = Assert.Throws<ImageException>(() => ImageLoader.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    /// <summary>A valid-looking PNG header (IHDR with a correct CRC) for a huge RGB image, then a tiny IDAT and IEND.</summary>
    private static byte[] HugePng(int width, int height)
    {
        using var ms = new MemoryStream();
        ms.Write(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A });
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk(ms, "IHDR", ihdr);
        using (var z = new MemoryStream())
        {
            using (var zlib = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true))
                zlib.Write(new byte[1 + 3 * 16]); // one short row's worth
            Chunk(ms, "IDAT", z.ToArray());
        }
        Chunk(ms, "IEND", Array.Empty<byte>());
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        byte[] typeAndData = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc32(typeAndData));
        s.Write(len);
    }

    private static uint Crc32(byte[] bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    // ---- preprocessing ----

    private static PlanarImage Constant(int channels, int height, int width, params float[] values)
    {
        var image = new PlanarImage(channels, height, width);
        for (int c = 0; c < channels; c++) image.Plane(c).Fill(values[c]);
        return image;
    }

    [Fact]
    public void Imaging_torchvision_preprocessing_of_a_constant_image_is_the_normalized_constant()
    {
        ModelInfo model = Model("alexnet-torchvision");
        Assert.Equal(PreprocessMode.Torchvision, Preprocess.DefaultFor(model));
        float[] rgb = { 200 / 255f, 100 / 255f, 30 / 255f };
        float[] input = Preprocess.Prepare(Constant(3, 375, 500, rgb), model, PreprocessMode.Torchvision);
        Assert.Equal(3 * 224 * 224, input.Length);
        for (int c = 0; c < 3; c++)
        {
            float expected = (rgb[c] - model.Mean[c]) / model.Std[c];
            foreach (float v in input.AsSpan(c * 224 * 224, 224 * 224).ToArray())
                Assert.True(Math.Abs(v - expected) <= 1e-5f, $"channel {c}: {v} != {expected}");
        }
    }

    [Fact]
    public void Imaging_caffe_preprocessing_is_bgr_0_to_255_minus_the_mean()
    {
        ModelInfo model = Model("alexnet-2012");
        Assert.Equal(new[] { 3, 227, 227 }, model.InputShape);
        float[] rgb = { 200 / 255f, 100 / 255f, 30 / 255f };
        float[] input = Preprocess.Prepare(Constant(3, 300, 400, rgb), model, PreprocessMode.Caffe);
        Assert.Equal(3 * 227 * 227, input.Length);
        float[] expected = { 30 - 104f, 100 - 117f, 200 - 123f }; // B, G, R
        for (int c = 0; c < 3; c++)
            foreach (float v in input.AsSpan(c * 227 * 227, 227 * 227).ToArray())
                Assert.True(Math.Abs(v - expected[c]) <= 1e-3f, $"channel {c}: {v} != {expected[c]}");
    }

    [Fact]
    public void Imaging_fmnist_photo_is_resized_straight_to_28x28_grayscale()
    {
        ModelInfo model = Model("alexnet-fmnist");
        Assert.True(Preprocess.IsSmallInput(model));
        string path = WriteImage("shirt.png", 90, 60, (_, _) => new SKColor(128, 128, 128), SKEncodedImageFormat.Png);
        PlanarImage gray = ImageLoader.Load(path, model.InputShape[0]);
        float[] input = Preprocess.Prepare(gray, model, Preprocess.DefaultFor(model));
        Assert.Equal(28 * 28, input.Length);
        float expected = (128 / 255f - model.Mean[0]) / model.Std[0];
        Assert.All(input, v => Assert.True(Math.Abs(v - expected) <= 1e-5f, $"{v} != {expected}"));
        Assert.NotNull(Preprocess.Problem(model, PreprocessMode.Torchvision, tenCrop: true));
        Assert.NotNull(Preprocess.Problem(model, PreprocessMode.Caffe, tenCrop: false));
    }

    [Fact]
    public void Imaging_none_preprocessing_resizes_straight_to_the_input_in_0_to_1()
    {
        ModelInfo model = Model("alexnet-torchvision");
        float[] input = Preprocess.Prepare(Constant(3, 100, 300, 0.25f, 0.5f, 0.75f), model, PreprocessMode.None);
        Assert.Equal(3 * 224 * 224, input.Length);
        Assert.True(Math.Abs(input[0] - 0.25f) < 1e-6f && Math.Abs(input[224 * 224] - 0.5f) < 1e-6f && Math.Abs(input[^1] - 0.75f) < 1e-6f);
    }

    [Fact]
    public void Imaging_resize_follows_pillows_antialiased_bilinear_and_torchvisions_sizes()
    {
        // 4 -> 2 on one row: support 2, weights (0.75, 0.75, 0.25)/1.75 and (0.25, 0.75, 0.75)/1.75.
        var row = new PlanarImage(1, 1, 4, new float[] { 0, 1, 2, 3 });
        PlanarImage half = Preprocess.Resize(row, 1, 2);
        Assert.Equal(1.25 / 1.75, half.Data[0], 5);
        Assert.Equal((0.25 * 1 + 0.75 * 2 + 0.75 * 3) / 1.75, half.Data[1], 5);
        // Upscaling 2 -> 4 is plain linear interpolation with clamped edges.
        PlanarImage up = Preprocess.Resize(new PlanarImage(1, 1, 2, new float[] { 0, 1 }), 1, 4);
        Assert.Equal(new[] { 0f, 0.25f, 0.75f, 1f }, up.Data);

        // torchvision Resize(256): the shorter side to 256, the longer truncated; CenterCrop rounds half to even.
        PlanarImage landscape = Preprocess.ResizeShorterSide(Constant(1, 375, 500, 0.5f), 256);
        Assert.Equal((256, 341), (landscape.Height, landscape.Width));
        PlanarImage portrait = Preprocess.ResizeShorterSide(Constant(1, 500, 333, 0.5f), 256);
        Assert.Equal((384, 256), (portrait.Height, portrait.Width));
        Assert.Equal((16, 58), Preprocess.CenterCropOffset(landscape, 224, 224));
        Assert.Equal(256, Preprocess.ShorterSideTarget(224, 224));
        Assert.Equal(256, Preprocess.ShorterSideTarget(227, 227));
    }

    [Fact]
    public void Imaging_ten_crop_gives_corners_centre_and_their_mirror_images()
    {
        ModelInfo model = Model("alexnet-torchvision");
        // Already 256 on the shorter side, so no resampling: each value encodes its source position.
        int h = 256, w = 300;
        var image = new PlanarImage(3, h, w);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    image.Data[(c * h + y) * w + x] = (c * 1000 + y) * 1000 + x;
        var identity = new ModelInfoView(model);
        float[] crops = Preprocess.Prepare(image, identity.Info, PreprocessMode.Torchvision, tenCrop: true);
        int len = 3 * 224 * 224;
        Assert.Equal(10 * len, crops.Length);

        float At(int crop, int c, int y, int x) => crops[crop * len + (c * 224 + y) * 224 + x];
        float Src(int c, int y, int x) => (c * 1000 + y) * 1000 + x;
        int bottom = h - 224, right = w - 224, ct = 16, cl = 38;
        (int T, int L)[] offsets = { (0, 0), (0, right), (bottom, 0), (bottom, right), (ct, cl) };
        for (int i = 0; i < 5; i++)
        {
            (int t, int l) = offsets[i];
            foreach ((int c, int y, int x) in new[] { (0, 0, 0), (1, 5, 7), (2, 223, 223), (0, 100, 3) })
            {
                Assert.Equal(Src(c, t + y, l + x), At(i, c, y, x));
                // crop 5+i is crop i of the mirrored image: its pixel x is source column (w-1) - (l + x) of the mirror's window.
                Assert.Equal(Src(c, t + y, w - 1 - (l + x)), At(5 + i, c, y, x));
            }
        }
    }

    /// <summary>A model description with an identity normalization (mean 0, std 1), so crops keep raw values.</summary>
    private sealed class ModelInfoView
    {
        public ModelInfoView(ModelInfo model) => Info = model with { Mean = new float[] { 0, 0, 0 }, Std = new float[] { 1, 1, 1 } };

        public ModelInfo Info { get; }
    }

    [Fact]
    public void Imaging_extreme_aspect_ratios_and_tiny_images_are_handled()
    {
        ModelInfo model = Model("alexnet-torchvision");
        // 1x1 upscales to a constant; 3x1200 would become 256x102400 pixels and is refused, not allocated.
        float[] one = Preprocess.Prepare(Constant(3, 1, 1, 0.5f, 0.5f, 0.5f), model, PreprocessMode.Torchvision);
        Assert.Equal(3 * 224 * 224, one.Length);
        ArgumentException e = Assert.Throws<ArgumentException>(() => Preprocess.Prepare(Constant(3, 3, 90_000, 0, 0, 0), model, PreprocessMode.Torchvision));
        Assert.Contains("aspect ratio is too extreme", e.Message);
        // Warping (caffe) and plain resizing do not depend on the aspect ratio.
        Assert.Equal(3 * 224 * 224, Preprocess.Prepare(Constant(3, 3, 90_000, 0, 0, 0), model, PreprocessMode.None).Length);
    }

    // ---- labels ----

    [Fact]
    public void Imaging_imagenet_labels_are_built_in()
    {
        Assert.Equal(1000, ImageNetLabels.Names.Length);
        Assert.Equal("tench", ImageNetLabels.Name(0));
        Assert.Equal("great white shark", ImageNetLabels.Name(2));
        Assert.Equal("goldfinch", ImageNetLabels.Name(11));
        Assert.Equal("jack-o'-lantern", ImageNetLabels.Name(607));
        Assert.Equal("toilet tissue", ImageNetLabels.Name(999));
        Assert.All(ImageNetLabels.Names.ToArray(), n => Assert.False(string.IsNullOrWhiteSpace(n)));
    }

    // ---- the CLI ----

    private static string TvMiniWeights => Fixtures.Path("tv-mini", "tv-mini.safetensors");

    private string FmnistWeights()
    {
        string path = Temp("fmnist.safetensors");
        ModelInfo info = Model("alexnet-fmnist");
        WeightsExport.ToSafeTensors(info, new GeneratedWeights(info), path);
        return path;
    }

    [Fact]
    public void Imaging_cli_classifies_a_png_and_a_jpeg_with_tv_mini()
    {
        string png = WriteImage("photo.png", 320, 240, (x, y) => Picture(x, y, 320, 240), SKEncodedImageFormat.Png);
        string jpg = WriteImage("photo.jpg", 224, 224, (x, y) => Picture(x, y, 224, 224), SKEncodedImageFormat.Jpeg);
        CliResult r = Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, png, jpg);
        AssertOk(r);
        string[] lines = r.Stdout.TrimEnd().Split('\n');
        Assert.Equal(12, lines.Length);
        Assert.Equal(png, lines[0]);
        Assert.Equal(jpg, lines[6]);
        foreach (string line in lines.Where(l => l.StartsWith("  ", StringComparison.Ordinal)))
        {
            string[] parts = line.Trim().Split("  ");
            Assert.InRange(double.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), 0, 1);
            Assert.InRange(int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), 0, 9); // no labels: class numbers
        }
    }

    [Fact]
    public void Imaging_cli_json_ten_crop_and_the_same_photo_as_f32_agree()
    {
        string png = WriteImage("photo.png", 300, 260, (x, y) => Picture(x, y, 300, 260), SKEncodedImageFormat.Png);
        CliResult r = Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, "--json", "--top", "3", "--ten-crop", "--preprocess", "torchvision", png);
        AssertOk(r);
        using JsonDocument doc = JsonDocument.Parse(r.Stdout);
        JsonElement first = doc.RootElement[0];
        Assert.Equal(png, first.GetProperty("input").GetString());
        JsonElement top = first.GetProperty("top");
        Assert.Equal(3, top.GetArrayLength());
        double previous = 1;
        foreach (JsonElement t in top.EnumerateArray())
        {
            int index = t.GetProperty("index").GetInt32();
            Assert.InRange(index, 0, 9);
            Assert.Equal(index.ToString(System.Globalization.CultureInfo.InvariantCulture), t.GetProperty("label").GetString());
            double p = t.GetProperty("probability").GetDouble();
            Assert.InRange(p, 0, previous);
            previous = p;
        }

        // The photo preprocessed here, saved as .f32, gives the same answer as the photo itself.
        ModelInfo info = Model("tv-mini");
        float[] input = Preprocess.Prepare(ImageLoader.Load(png), info, PreprocessMode.Torchvision);
        string f32 = Temp("photo.f32");
        File.WriteAllBytes(f32, System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.AsSpan()).ToArray());
        CliResult a = Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, "--json", "--preprocess", "torchvision", png);
        CliResult b = Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, "--json", f32);
        AssertOk(a);
        AssertOk(b);
        using JsonDocument da = JsonDocument.Parse(a.Stdout), db = JsonDocument.Parse(b.Stdout);
        Assert.Equal(da.RootElement[0].GetProperty("top").GetRawText(), db.RootElement[0].GetProperty("top").GetRawText());
    }

    [Fact]
    public void Imaging_cli_many_ten_crop_photos_run_in_several_batches_with_the_same_results()
    {
        string a = WriteImage("a.png", 260, 300, (x, y) => Picture(x, y, 260, 300), SKEncodedImageFormat.Png);
        string b = WriteImage("b.jpg", 400, 256, (x, y) => Picture(y, x, 256, 400), SKEncodedImageFormat.Jpeg);
        string[] many = Enumerable.Range(0, 8).Select(i => i % 2 == 0 ? a : b).ToArray(); // 80 crops: more than one batch of 64
        CliResult all = Cli.Run(new[] { "classify", "--model", "tv-mini", "--weights", TvMiniWeights, "--json", "--ten-crop", "--preprocess", "caffe" }.Concat(many).ToArray());
        CliResult one = Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, "--json", "--ten-crop", "--preprocess", "caffe", a, b);
        AssertOk(all);
        AssertOk(one);
        using JsonDocument dAll = JsonDocument.Parse(all.Stdout), dOne = JsonDocument.Parse(one.Stdout);
        Assert.Equal(8, dAll.RootElement.GetArrayLength());
        for (int i = 0; i < 8; i++)
        {
            JsonElement expected = dOne.RootElement[i % 2].GetProperty("top"), actual = dAll.RootElement[i].GetProperty("top");
            for (int k = 0; k < 5; k++)
            {
                Assert.Equal(expected[k].GetProperty("index").GetInt32(), actual[k].GetProperty("index").GetInt32());
                Assert.Equal(expected[k].GetProperty("probability").GetDouble(), actual[k].GetProperty("probability").GetDouble(), 5);
            }
        }
    }

    [Fact]
    public void Imaging_cli_fmnist_prints_the_spec_labels_and_a_labels_file_overrides_them()
    {
        string weights = FmnistWeights();
        string png = WriteImage("boot.png", 56, 56, (x, y) => new SKColor((byte)(x * 4), (byte)(y * 4), 90), SKEncodedImageFormat.Png);
        CliResult r = Cli.Run("classify", "--model", "alexnet-fmnist", "--weights", weights, "--top", "10", png);
        AssertOk(r);
        string[] names = Model("alexnet-fmnist").Labels;
        string[] printed = r.Stdout.TrimEnd().Split('\n').Skip(1).Select(l => l.Trim().Split("  ", 2)[1]).ToArray();
        Assert.Equal(10, printed.Length);
        Assert.Equal(names.OrderBy(n => n, StringComparer.Ordinal), printed.OrderBy(n => n, StringComparer.Ordinal));

        string labels = Temp("labels.txt");
        File.WriteAllLines(labels, Enumerable.Range(0, 10).Select(i => $"class-{i}"));
        CliResult o = Cli.Run("classify", "--model", "alexnet-fmnist", "--weights", weights, "--labels", labels, png);
        AssertOk(o);
        Assert.Contains("  class-", o.Stdout);

        File.WriteAllLines(labels, new[] { "only", "three", "labels" });
        AssertFailure(Cli.Run("classify", "--model", "alexnet-fmnist", "--weights", weights, "--labels", labels, png), 1,
            "has 3 labels (one per line); the model has 10 classes");
    }

    [Fact]
    public void Imaging_cli_bad_photos_exit_1_with_one_line_naming_the_file()
    {
        var random = new byte[2000];
        new Random(3).NextBytes(random);
        random[0] = 0xFF; random[1] = 0xD8; random[2] = 0xFF;
        string bad = Temp("bad.jpg");
        File.WriteAllBytes(bad, random);
        AssertFailure(Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, bad), 1, bad + ": ");

        string huge = Temp("huge.png");
        File.WriteAllBytes(huge, HugePng(100_000, 100_000));
        AssertFailure(Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, huge), 1, huge + ": PNG of 100000x100000 pixels");

        string text = Temp("text.jpeg");
        File.WriteAllText(text, "not a photo at all");
        AssertFailure(Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, text), 1, text + ": not a JPEG or PNG image by its content");

        AssertFailure(Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, "--preprocess", "opencv", text), 2,
            "--preprocess 'opencv' is not torchvision, caffe or none");
        AssertFailure(Cli.Run("classify", "--model", "alexnet-fmnist", "--weights", TvMiniWeights, "--ten-crop", text), 2, "ten crops need");
    }

    [Fact]
    public void Imaging_cli_convert_writes_safetensors_and_onnx()
    {
        string st = Temp("copy.safetensors");
        CliResult r = Cli.Run("convert", TvMiniWeights, st);
        AssertOk(r);
        var original = SafeTensorsFile.Load(TvMiniWeights);
        var copy = SafeTensorsFile.Load(st);
        Assert.Equal(original.Keys, copy.Keys);
        foreach (string key in original.Keys)
        {
            Assert.True(original.TryGet(key, out LoadedTensor a));
            Assert.True(copy.TryGet(key, out LoadedTensor b));
            Assert.Equal(a.Data, b.Data);
        }

        string onnx = Temp("tv-mini.onnx");
        AssertOk(Cli.Run("convert", "--model", "tv-mini", TvMiniWeights, onnx));
        Assert.True(new FileInfo(onnx).Length > 1000);
        // An ONNX file's first byte is field 1 (ir_version), varint.
        Assert.Equal(0x08, File.ReadAllBytes(onnx)[0]);

        AssertFailure(Cli.Run("convert", TvMiniWeights, Temp("x.onnx")), 2, "writing ONNX needs --model");
        AssertFailure(Cli.Run("convert", TvMiniWeights, Temp("x.bin")), 2, "unknown extension '.bin'");
        string junk = Temp("junk.safetensors");
        File.WriteAllText(junk, "junk");
        AssertFailure(Cli.Run("convert", junk, Temp("y.safetensors")), 1, junk + ": ");
    }

    private static void AssertOk(CliResult r) =>
        Assert.True(r.ExitCode == 0, $"exit code {r.ExitCode}\nstdout:\n{r.Stdout}\nstderr:\n{r.Stderr}");

    private static void AssertFailure(CliResult r, int exitCode, string expected)
    {
        Assert.True(r.ExitCode == exitCode, $"exit code {r.ExitCode}, expected {exitCode}\nstdout:\n{r.Stdout}\nstderr:\n{r.Stderr}");
        Assert.Contains(expected, r.Stderr);
        Assert.StartsWith("alexnet: ", r.Stderr);
        Assert.DoesNotContain("Exception", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
