using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using AlexNet.Aot.Training;
using SkiaSharp;
using Xunit;

namespace AlexNet.Aot.Tests.Training;

/// <summary>
/// The training data pipeline: IDX files (synthetic ones written here, gzip and raw, and every malformed case), the
/// installed Fashion-MNIST, image folders of PNGs made by SkiaSharp, the counter-based generator, shuffling and
/// validation splits, the augmentations (determinism, flips, padded crops, evaluation normalization, resized crops, PCA
/// colour noise, zero allocation), and the metrics CSV and plot.
/// </summary>
public sealed class DataTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "alexnet-data-" + Guid.NewGuid().ToString("N"));

    public DataTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private string Temp(string name) => Path.Combine(_dir, name);

    private static void Near(double expected, double actual, double tolerance = 2e-6) =>
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"expected {expected}, got {actual} (tolerance {tolerance})");

    // ---- IDX files ----

    // IDX bytes and gzip: the fuzz seeds' writers.
    private static byte[] IdxBytes(uint magic, int[] dims, byte[] data) => AlexNet.Aot.Tests.Fuzz.FuzzSeeds.Idx(magic, dims, data);

    private static byte[] Gzip(byte[] raw) => AlexNet.Aot.Tests.Fuzz.FuzzSeeds.Gzip(raw);

    private string WriteFile(string name, byte[] bytes)
    {
        string path = Temp(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Pattern(int n, int salt) => Enumerable.Range(0, n).Select(i => (byte)((i * 7 + salt) % 251)).ToArray();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Idx_images_and_labels_round_trip(bool gzip)
    {
        byte[] pixels = Pattern(5 * 3 * 4, 1);
        byte[] labels = { 0, 3, 9, 1, 2 };
        byte[] imagesFile = IdxBytes(IdxFile.ImagesMagic, new[] { 5, 3, 4 }, pixels);
        byte[] labelsFile = IdxBytes(IdxFile.LabelsMagic, new[] { 5 }, labels);
        string imagesPath = WriteFile("images.idx", gzip ? Gzip(imagesFile) : imagesFile);
        string labelsPath = WriteFile("labels.idx", gzip ? Gzip(labelsFile) : labelsFile);

        IdxImages images = IdxFile.ReadImages(imagesPath);
        Assert.Equal((5, 3, 4), (images.Count, images.Rows, images.Columns));
        Assert.Equal(pixels, images.Pixels);
        Assert.Equal(pixels.AsSpan(12, 12).ToArray(), images.Image(1).ToArray());
        Assert.Equal(labels, IdxFile.ReadLabels(labelsPath));
    }

    /// <summary>The <see cref="DatasetException"/> reading <paramref name="bytes"/> as images (or labels) gives; its message starts with the file.</summary>
    private DatasetException BadIdx(string name, byte[] bytes, bool labels = false)
    {
        string path = WriteFile(name, bytes);
        DatasetException e = Assert.Throws<DatasetException>(() =>
        {
            if (labels) IdxFile.ReadLabels(path);
            else IdxFile.ReadImages(path);
        });
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(path, e.FilePath);
        return e;
    }

    [Fact]
    public void Idx_malformed_files_are_errors_naming_the_file()
    {
        byte[] good = IdxBytes(IdxFile.ImagesMagic, new[] { 4, 5, 6 }, Pattern(120, 3));
        byte[] goodLabels = IdxBytes(IdxFile.LabelsMagic, new[] { 4 }, new byte[] { 1, 2, 3, 4 });
        foreach (bool gz in new[] { false, true })
        {
            Func<byte[], byte[]> pack = gz ? Gzip : b => b;
            string ext = gz ? ".gz" : "";

            Assert.Contains("bad magic number 0x00000804", BadIdx("magic" + ext, pack(IdxBytes(0x804, new[] { 4, 5, 6, 1 }, Pattern(120, 0)))).Message);
            Assert.Contains("IDX labels", BadIdx("labels-as-images" + ext, pack(goodLabels)).Message);
            Assert.Contains("IDX images", BadIdx("images-as-labels" + ext, pack(good), labels: true).Message);
            Assert.Contains("not an IDX file", BadIdx("text" + ext, pack("hello, world, this is text"u8.ToArray())).Message);
            Assert.Contains("truncated", BadIdx("empty" + ext, pack(Array.Empty<byte>())).Message);
            Assert.Contains("magic number", BadIdx("short-magic" + ext, pack(good.AsSpan(0, 3).ToArray())).Message);
            Assert.Contains("16-byte header", BadIdx("short-header" + ext, pack(good.AsSpan(0, 10).ToArray())).Message);
            Assert.Contains("truncated", BadIdx("short-data" + ext, pack(good.AsSpan(0, good.Length - 1).ToArray())).Message);
            Assert.Contains("trailing data", BadIdx("trailing" + ext, pack(good.Concat(new byte[] { 0 }).ToArray())).Message);
            Assert.Contains("truncated", BadIdx("short-labels" + ext, pack(goodLabels.AsSpan(0, goodLabels.Length - 2).ToArray()), labels: true).Message);
            Assert.Contains("0 images", BadIdx("zero" + ext, pack(IdxBytes(IdxFile.ImagesMagic, new[] { 0, 5, 6 }, Array.Empty<byte>()))).Message);
            Assert.Contains("more than the 4096", BadIdx("wide" + ext, pack(IdxBytes(IdxFile.ImagesMagic, new[] { 1, 5, 100_000 }, Pattern(64, 0)))).Message);
            Assert.Contains("more than the 10000000", BadIdx("many" + ext, pack(IdxBytes(IdxFile.ImagesMagic, new[] { 2_000_000_000, 28, 28 }, Pattern(64, 0)))).Message);
            Assert.Contains("more than the 10000000", BadIdx("many-labels" + ext, pack(IdxBytes(IdxFile.LabelsMagic, new[] { int.MaxValue }, Pattern(64, 0))), labels: true).Message);
            // 10 million 4096x4096 images: within each limit, but no array (and no file) holds them.
            Assert.Contains("more than one array", BadIdx("huge" + ext, pack(IdxBytes(IdxFile.ImagesMagic, new[] { 10_000_000, 4096, 4096 }, Pattern(64, 0)))).Message);
        }
        // A gzip file claiming far more than deflate could expand it to is refused before allocating; one claiming
        // less than that is read and found short.
        Assert.Contains("compressed bytes can hold", BadIdx("bomb-claim.gz", Gzip(IdxBytes(IdxFile.ImagesMagic, new[] { 1_000_000, 40, 40 }, Pattern(100, 0)))).Message);
        Assert.Contains("truncated", BadIdx("short.gz", Gzip(IdxBytes(IdxFile.ImagesMagic, new[] { 100, 28, 28 }, Pattern(100, 0)))).Message);
    }

    [Fact]
    public void Idx_corrupt_gzip_is_an_error_naming_the_file()
    {
        byte[] raw = IdxBytes(IdxFile.ImagesMagic, new[] { 50, 28, 28 }, Pattern(50 * 28 * 28, 5));
        byte[] gz = Gzip(raw);

        // Garbage after a valid gzip header: the deflate stream is invalid.
        var garbage = new byte[2000];
        new Random(3).NextBytes(garbage);
        gz.AsSpan(0, 10).CopyTo(garbage);
        BadIdx("garbage.gz", garbage);

        // A wrong CRC in the trailer: the data decompresses, the check fails.
        byte[] badCrc = (byte[])gz.Clone();
        badCrc[^8] ^= 0xFF;
        Assert.Contains("corrupt gzip", BadIdx("crc.gz", badCrc).Message);

        // Flipped bits in the middle of the compressed data.
        byte[] flipped = (byte[])gz.Clone();
        for (int i = 20; i < 40; i++) flipped[i] ^= 0x5A;
        BadIdx("flipped.gz", flipped);

        // Cut short.
        BadIdx("cut.gz", gz.AsSpan(0, gz.Length / 2).ToArray());
    }

    [Fact]
    public void Idx_gzip_bomb_is_not_decompressed_past_the_header()
    {
        // 1 image of 4x4 claimed, 200 MB of zeros after it: the reader stops one byte past the claim.
        byte[] header = IdxBytes(IdxFile.ImagesMagic, new[] { 1, 4, 4 }, new byte[16]);
        string path = Temp("bomb.gz");
        using (var fs = File.Create(path))
        using (var gz = new GZipStream(fs, CompressionLevel.Optimal))
        {
            gz.Write(header);
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 200; i++) gz.Write(zeros);
        }
        Assert.True(new FileInfo(path).Length < 1_000_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        DatasetException e = Assert.Throws<DatasetException>(() => IdxFile.ReadImages(path));
        Assert.Contains("trailing data", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4_000_000, "the reader allocated as if it decompressed the bomb");
        Assert.True(watch.ElapsedMilliseconds < 2000, $"{watch.ElapsedMilliseconds} ms: the reader decompressed the bomb");
    }

    [Fact]
    public void Idx_missing_file_and_directory_are_errors()
    {
        string missing = Temp("missing.gz");
        Assert.Equal(missing + ": file not found", Assert.Throws<DatasetException>(() => IdxFile.ReadImages(missing)).Message);
        Assert.StartsWith(_dir + ": is a directory", Assert.Throws<DatasetException>(() => IdxFile.ReadLabels(_dir)).Message);
    }

    // ---- Fashion-MNIST ----

    private string FakeFashionMnist(string name, int images, byte[] labels, bool gzip = true, string prefix = "t10k")
    {
        string folder = Temp(name);
        Directory.CreateDirectory(folder);
        byte[] img = IdxBytes(IdxFile.ImagesMagic, new[] { images, 28, 28 }, Pattern(images * 784, 9));
        byte[] lab = IdxBytes(IdxFile.LabelsMagic, new[] { labels.Length }, labels);
        string ext = gzip ? ".gz" : "";
        File.WriteAllBytes(Path.Combine(folder, prefix + "-images-idx3-ubyte" + ext), gzip ? Gzip(img) : img);
        File.WriteAllBytes(Path.Combine(folder, prefix + "-labels-idx1-ubyte" + ext), gzip ? Gzip(lab) : lab);
        return folder;
    }

    [Fact]
    public void FashionMnist_reads_gz_and_raw_files_and_checks_counts_and_labels()
    {
        string raw = FakeFashionMnist("raw", 3, new byte[] { 9, 0, 4 }, gzip: false, prefix: "train");
        TrainingDataset d = TrainingDataset.FashionMnist(raw, train: true);
        Assert.Equal((3, 1, 28, 28, 10), (d.Count, d.Channels, d.Height, d.Width, d.Classes));
        Assert.Equal(new[] { 9, 0, 4 }, new[] { d.Label(0), d.Label(1), d.Label(2) });
        Assert.Equal(Pattern(3 * 784, 9).AsSpan(784, 784).ToArray(), d.Image(1).ToArray());
        Assert.Equal("Ankle boot", d.ClassNames[9]);
        Assert.Equal(TrainingDataset.FashionMnistClassNames, d.ClassNames);

        string mismatch = FakeFashionMnist("mismatch", 3, new byte[] { 1, 2 });
        DatasetException e = Assert.Throws<DatasetException>(() => TrainingDataset.FashionMnist(mismatch, train: false));
        Assert.Contains("t10k-labels-idx1-ubyte.gz", e.Message);
        Assert.Contains("2 labels", e.Message);
        Assert.Contains("3 images", e.Message);

        string outOfRange = FakeFashionMnist("range", 3, new byte[] { 1, 2, 10 });
        e = Assert.Throws<DatasetException>(() => TrainingDataset.FashionMnist(outOfRange, train: false));
        Assert.StartsWith(Path.Combine(outOfRange, "t10k-labels-idx1-ubyte.gz") + ": label 10 at index 2", e.Message);

        e = Assert.Throws<DatasetException>(() => TrainingDataset.FashionMnist(raw, train: false));
        Assert.StartsWith(raw + ": neither t10k-images-idx3-ubyte.gz nor t10k-images-idx3-ubyte", e.Message);
        string none = Temp("no-such-folder");
        Assert.StartsWith(none + ": folder not found", Assert.Throws<DatasetException>(() => TrainingDataset.FashionMnist(none, true)).Message);
    }

    [Fact]
    public void FashionMnist_installed_test_set_has_10000_images_1000_per_class()
    {
        string folder = TrainingDataset.DefaultFashionMnistFolder;
        if (!File.Exists(Path.Combine(folder, "t10k-images-idx3-ubyte.gz")))
        {
            // Not installed (the Debian package dataset-fashion-mnist; scripts/setup.sh installs it): nothing to check.
            Console.WriteLine($"skipped: Fashion-MNIST is not installed in {folder} (apt-get install dataset-fashion-mnist)");
            return;
        }
        TrainingDataset test = TrainingDataset.FashionMnist(folder, train: false);
        Assert.Equal((10000, 1, 28, 28, 10), (test.Count, test.Channels, test.Height, test.Width, test.Classes));
        Assert.All(test.LabelHistogram(), n => Assert.Equal(1000, n));
        Assert.Equal(9, test.Label(0)); // the first test image is an ankle boot
        double mean = 0;
        for (int i = 0; i < test.Count; i++)
            foreach (byte b in test.Image(i)) mean += b;
        mean /= test.Count * 784.0 * 255;
        Assert.InRange(mean, 0.27, 0.30); // the data set's mean intensity, 0.286 (the alexnet-fmnist spec's normalize)
        Assert.Contains(folder, test.Origin);

        TrainingDataset train = TrainingDataset.FashionMnist(folder, train: true);
        Assert.Equal(60000, train.Count);
        Assert.All(train.LabelHistogram(), n => Assert.Equal(6000, n));
    }

    // ---- data sets in memory ----

    private static TrainingDataset Tiny(int count, int channels = 1, int h = 4, int w = 4, int classes = 3) =>
        TrainingDataset.FromArrays(Pattern(count * channels * h * w, 11), Enumerable.Range(0, count).Select(i => i % classes).ToArray(),
            channels, h, w, Enumerable.Range(0, classes).Select(i => "c" + i).ToArray(), "tiny");

    [Fact]
    public void FromArrays_checks_its_arguments_and_subsets_copy()
    {
        Assert.Throws<ArgumentException>(() => TrainingDataset.FromArrays(new byte[15], new[] { 0 }, 1, 4, 4, new[] { "a" }, "x"));
        Assert.Throws<ArgumentException>(() => TrainingDataset.FromArrays(new byte[16], new[] { 1 }, 1, 4, 4, new[] { "a" }, "x"));
        Assert.Throws<ArgumentException>(() => TrainingDataset.FromArrays(new byte[16], new[] { 0 }, 1, 4, 4, Array.Empty<string>(), "x"));
        Assert.Throws<ArgumentException>(() => TrainingDataset.FromArrays(Array.Empty<byte>(), Array.Empty<int>(), 0, 4, 4, new[] { "a" }, "x"));

        TrainingDataset d = Tiny(10);
        TrainingDataset sub = d.Subset(3, 4);
        Assert.Equal(4, sub.Count);
        Assert.Equal(d.Image(3).ToArray(), sub.Image(0).ToArray());
        Assert.Equal(d.Label(6), sub.Label(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Subset(8, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Image(10));
    }

    [Fact]
    public void Split_is_seeded_disjoint_and_complete()
    {
        TrainingDataset d = TrainingDataset.FromArrays(Enumerable.Range(0, 100).Select(i => (byte)i).ToArray(), Enumerable.Range(0, 100).Select(i => i % 2).ToArray(),
            1, 1, 1, new[] { "even", "odd" }, "numbers");
        TrainingDataset train = d.Split(20, 42, out TrainingDataset validation);
        Assert.Equal((80, 20), (train.Count, validation.Count));
        int[] Values(TrainingDataset s) => Enumerable.Range(0, s.Count).Select(i => (int)s.Image(i)[0]).ToArray();
        int[] t = Values(train), v = Values(validation);
        Assert.Equal(Enumerable.Range(0, 100), t.Concat(v).OrderBy(x => x));
        Assert.Equal(t.OrderBy(x => x), t); // original order kept
        Assert.Equal(v.OrderBy(x => x), v);
        Assert.All(Enumerable.Range(0, train.Count), i => Assert.Equal(train.Image(i)[0] % 2, train.Label(i)));

        d.Split(20, 42, out TrainingDataset again);
        Assert.Equal(v, Values(again));
        d.Split(20, 43, out TrainingDataset other);
        Assert.NotEqual(v, Values(other));
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Split(100, 1, out _));
    }

    // ---- the generator and the shuffle ----

    [Fact]
    public void CounterRng_is_a_pure_function_with_sound_statistics()
    {
        Assert.Equal(CounterRng.Hash(1, 2, 3, 4), CounterRng.Hash(1, 2, 3, 4));
        var seen = new HashSet<ulong>();
        for (ulong a = 0; a < 4; a++)
            for (ulong b = 0; b < 4; b++)
                for (ulong c = 0; c < 4; c++)
                    for (ulong s = 0; s < 4; s++)
                        Assert.True(seen.Add(CounterRng.Hash(s, a, b, c)));

        const int n = 20000;
        double sum = 0, sum2 = 0, usum = 0;
        int[] buckets = new int[10];
        for (int i = 0; i < n; i++)
        {
            float u = CounterRng.Uniform(7, 1, (ulong)i, 0);
            Assert.InRange(u, 0f, 0.99999994f);
            usum += u;
            buckets[CounterRng.UniformInt(10, 7, 2, (ulong)i)]++;
            double z = CounterRng.Normal(7, 3, (ulong)i);
            sum += z;
            sum2 += z * z;
        }
        Assert.InRange(usum / n, 0.49, 0.51);
        Assert.All(buckets, k => Assert.InRange(k, 1800, 2200));
        Assert.InRange(sum / n, -0.03, 0.03);
        Assert.InRange(Math.Sqrt(sum2 / n), 0.97, 1.03);
    }

    [Fact]
    public void Shuffle_is_a_deterministic_permutation_per_epoch()
    {
        var a = new int[1000];
        var b = new int[1000];
        BatchSampler.Shuffle(a, 5, 0);
        BatchSampler.Shuffle(b, 5, 0);
        Assert.Equal(a, b);
        Assert.Equal(Enumerable.Range(0, 1000), a.OrderBy(x => x));
        Assert.True(a.Where((v, i) => v == i).Count() < 10, "the shuffle leaves too many items in place");

        BatchSampler.Shuffle(b, 5, 1);
        Assert.NotEqual(a, b);
        Assert.Equal(Enumerable.Range(0, 1000), b.OrderBy(x => x));
        BatchSampler.Shuffle(b, 6, 0);
        Assert.NotEqual(a, b);

        // Every position is uniform: item 0 lands in each tenth about equally often over epochs.
        var tenths = new int[10];
        var small = new int[10];
        for (int epoch = 0; epoch < 5000; epoch++)
        {
            BatchSampler.Shuffle(small, 9, epoch);
            tenths[Array.IndexOf(small, 0)]++;
        }
        Assert.All(tenths, k => Assert.InRange(k, 400, 600));

        BatchSampler.Shuffle(Span<int>.Empty, 1, 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => BatchSampler.Shuffle(a, 1, -1));
    }

    // ---- augmentation ----

    private static float[] Run(Augmentation aug, byte[] image, int c, int h, int w, int dstH, int dstW, int epoch, int sample, bool train, ulong seed = 1)
    {
        var output = new float[c * dstH * dstW];
        aug.Apply(image, c, h, w, output, dstH, dstW, seed, epoch, sample, train);
        return output;
    }

    [Fact]
    public void Augmentation_parses_recipes_and_refuses_unknown_names()
    {
        Assert.Equal(AugmentKind.PadCrop | AugmentKind.HorizontalFlip, Augmentation.ParseKinds("pad-crop,hflip"));
        Assert.Equal(AugmentKind.RandomResizedCrop | AugmentKind.HorizontalFlip | AugmentKind.PcaColor, Augmentation.ParseKinds("random-resized-crop,hflip,pca-color"));
        Assert.Equal(AugmentKind.None, Augmentation.ParseKinds(""));
        ArgumentException e = Assert.Throws<ArgumentException>(() => Augmentation.ParseKinds("pad-crop,vflip"));
        Assert.Contains("'vflip'", e.Message);
        foreach (string known in Augmentation.KnownNames) Assert.Contains(known, e.Message);
        Assert.Throws<ArgumentException>(() => Augmentation.ParseKinds("hflip,hflip"));
        Assert.Throws<ArgumentException>(() => new Augmentation(AugmentKind.PadCrop | AugmentKind.RandomResizedCrop));
        Assert.Throws<ArgumentException>(() => new Augmentation(AugmentKind.None, 2, new[] { 0.5f }, new[] { 0f }));
        Assert.Throws<ArgumentException>(() => new Augmentation(AugmentKind.None, 2, new[] { 0.5f }, Array.Empty<float>()));

        Augmentation r = Augmentation.FromRecipe(new[] { "lr=0.1", "augment=pad-crop,hflip", "pad=4" }, null, null);
        Assert.Equal((AugmentKind.PadCrop | AugmentKind.HorizontalFlip, 4, false), (r.Kinds, r.Pad, r.Normalizes));
        Assert.Throws<ArgumentException>(() => Augmentation.FromRecipe(new[] { "pad=-1" }, null, null));

        ModelInfo fmnist = (AlexNet.Aot.Models.ModelCatalog.Find("alexnet-fmnist") ?? throw new InvalidOperationException("alexnet-fmnist is not compiled in")).Info;
        Augmentation m = Augmentation.FromModel(fmnist);
        Assert.Equal(AugmentKind.PadCrop | AugmentKind.HorizontalFlip, m.Kinds);
        Assert.Equal(Augmentation.DefaultPad, m.Pad);
        Assert.Equal(new[] { 0.2860f }, m.Mean.ToArray());
        Assert.Equal(new[] { 0.3530f }, m.Std.ToArray());
        Assert.Equal("pad-crop,hflip pad=2 mean=0.286 std=0.353", m.ToString());
        Augmentation paper = Augmentation.FromModel(AlexNet.Aot.Models.ModelCatalog.Find("alexnet-2012")!.Info);
        Assert.Equal(AugmentKind.RandomCrop | AugmentKind.HorizontalFlip | AugmentKind.PcaColor, paper.Kinds);
    }

    [Fact]
    public void Augmentation_evaluation_is_plain_normalization()
    {
        byte[] image = Pattern(3 * 5 * 5, 17);
        float[] mean = { 0.485f, 0.456f, 0.406f }, std = { 0.229f, 0.224f, 0.225f };
        var aug = new Augmentation(AugmentKind.PadCrop | AugmentKind.HorizontalFlip | AugmentKind.PcaColor, 2, mean, std);
        float[] output = Run(aug, image, 3, 5, 5, 5, 5, epoch: 3, sample: 8, train: false);
        for (int i = 0; i < output.Length; i++)
            Near((image[i] / 255f - mean[i / 25]) / std[i / 25], output[i]);

        // Without normalization: x / 255. A larger image is centre-cropped (torchvision's offsets).
        var plain = new Augmentation(AugmentKind.None);
        byte[] big = Pattern(1 * 7 * 8, 2);
        float[] crop = Run(plain, big, 1, 7, 8, 5, 5, 0, 0, train: false);
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 5; x++)
                Near(big[(y + 1) * 8 + x + 2] / 255f, crop[y * 5 + x]); // round(1.5) = 2, round(1.0) = 1

        // A smaller image is resized (bilinear): a flat image stays flat, a 2x2 checker becomes smooth.
        float[] flat = Run(plain, new byte[] { 100, 100, 100, 100 }, 1, 2, 2, 4, 4, 0, 0, train: false);
        Assert.All(flat, v => Near(100 / 255f, v));
        float[] up = Run(plain, new byte[] { 0, 255, 255, 0 }, 1, 2, 2, 4, 4, 0, 0, train: false);
        Near(0f, up[0]);          // corners keep the corner pixels (clamped source coordinates)
        Near(0.25f, up[1]);       // (0.5 + 0.5 * 2 / 4 - 0.5) = 0.25 of the way to 255
        Near(1f, up[3]);
    }

    [Fact]
    public void Augmentation_is_deterministic_per_seed_epoch_and_sample()
    {
        byte[] image = Pattern(3 * 32 * 32, 4);
        var aug = new Augmentation(AugmentKind.RandomResizedCrop | AugmentKind.HorizontalFlip | AugmentKind.PcaColor, 2,
            new[] { 0.5f, 0.5f, 0.5f }, new[] { 0.25f, 0.25f, 0.25f });
        float[] a = Run(aug, image, 3, 32, 32, 24, 24, epoch: 2, sample: 7, train: true);
        Assert.Equal(a, Run(aug, image, 3, 32, 32, 24, 24, epoch: 2, sample: 7, train: true));
        Assert.NotEqual(a, Run(aug, image, 3, 32, 32, 24, 24, epoch: 3, sample: 7, train: true));
        Assert.NotEqual(a, Run(aug, image, 3, 32, 32, 24, 24, epoch: 2, sample: 8, train: true));
        Assert.NotEqual(a, Run(aug, image, 3, 32, 32, 24, 24, epoch: 2, sample: 7, train: true, seed: 2));
        Assert.All(a, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Augmentation_hflip_mirrors_half_of_the_time()
    {
        byte[] image = { 10, 20, 30, 40, 50, 60 }; // 1x2x3
        float[] same = image.Select(b => b / 255f).ToArray();
        float[] mirrored = new byte[] { 30, 20, 10, 60, 50, 40 }.Select(b => b / 255f).ToArray();
        var aug = new Augmentation(AugmentKind.HorizontalFlip);
        int flips = 0;
        for (int sample = 0; sample < 400; sample++)
        {
            float[] output = Run(aug, image, 1, 2, 3, 2, 3, 0, sample, train: true);
            static bool Same(float[] a, float[] b) => a.Zip(b).All(p => Math.Abs(p.First - p.Second) < 1e-6f);
            if (Same(mirrored, output)) flips++;
            else Assert.True(Same(same, output), $"sample {sample}: neither the image nor its mirror");
        }
        Assert.InRange(flips, 160, 240);
    }

    [Fact]
    public void Augmentation_pad_crop_shifts_content_and_pads_with_zero_pixels()
    {
        const int n = 4, pad = 2;
        byte[] image = Enumerable.Range(1, n * n).Select(i => (byte)(i * 10)).ToArray();
        var mean = new[] { 0.2f };
        var std = new[] { 0.5f };
        var aug = new Augmentation(AugmentKind.PadCrop, pad, mean, std);
        float Normalized(int y, int x) => ((y is >= 0 and < n && x is >= 0 and < n ? image[y * n + x] : 0) / 255f - 0.2f) / 0.5f;

        var offsets = new HashSet<(int, int)>();
        for (int sample = 0; sample < 600; sample++)
        {
            float[] output = Run(aug, image, 1, n, n, n, n, 1, sample, train: true);
            (int, int)? match = null;
            for (int dy = -pad; dy <= pad; dy++)
                for (int dx = -pad; dx <= pad; dx++)
                {
                    bool all = true;
                    for (int y = 0; y < n && all; y++)
                        for (int x = 0; x < n && all; x++)
                            all = Math.Abs(output[y * n + x] - Normalized(y + dy, x + dx)) < 1e-5f;
                    if (all) match = (dy, dx);
                }
            Assert.True(match.HasValue, $"sample {sample}: the output is not a shifted window of the zero-padded image");
            offsets.Add(match.Value);
        }
        Assert.Equal(25, offsets.Count); // every offset of the padded image occurs

        // An 8x8 crop of a 4x4 image padded by 2 is the whole padded image; padded by 1 it is too large.
        float[] whole = Run(new Augmentation(AugmentKind.PadCrop, 2), image, 1, 4, 4, 8, 8, 0, 0, train: true);
        Assert.Equal(0f, whole[0]);
        Near(image[0] / 255f, whole[2 * 8 + 2]);
        Assert.Throws<ArgumentException>(() => Run(new Augmentation(AugmentKind.PadCrop, 1), image, 1, 4, 4, 8, 8, 0, 0, train: true));
    }

    [Fact]
    public void Augmentation_random_crop_and_resized_crop_stay_within_the_image()
    {
        byte[] image = Pattern(1 * 9 * 9, 1);
        var crop = new Augmentation(AugmentKind.RandomCrop);
        for (int sample = 0; sample < 50; sample++)
        {
            float[] output = Run(crop, image, 1, 9, 9, 7, 7, 0, sample, train: true);
            int top = -1, left = -1;
            for (int dy = 0; dy <= 2; dy++)
                for (int dx = 0; dx <= 2; dx++)
                    if (Enumerable.Range(0, 49).All(k => Math.Abs(output[k] - image[(k / 7 + dy) * 9 + k % 7 + dx] / 255f) < 1e-6f))
                        (top, left) = (dy, dx);
            Assert.True(top >= 0, $"sample {sample}: not a 7x7 window of the image");
        }

        for (int sample = 0; sample < 2000; sample++)
        {
            (int t, int l, int h, int w) = Augmentation.ResizedCropWindow(60, 80, 3, 0, (ulong)sample);
            Assert.True(t >= 0 && l >= 0 && h > 0 && w > 0 && t + h <= 60 && l + w <= 80, $"window ({t}, {l}, {h}, {w})");
            double area = (double)h * w / (60 * 80), ratio = (double)w / h;
            Assert.InRange(area, 0.07, 1.0);
            Assert.InRange(ratio, 0.7, 1.45);
        }
        // A very wide image: no draw fits often, and the fallback is the centre crop clamped to ratio 4/3.
        (int ft, int fl, int fh, int fw) = Augmentation.ResizedCropWindow(4, 400, 3, 0, 0);
        Assert.True(fh <= 4 && fw <= 400 && fl + fw <= 400 && ft + fh <= 4);

        byte[] gray = Enumerable.Repeat((byte)77, 3 * 20 * 30).ToArray();
        var rrc = new Augmentation(AugmentKind.RandomResizedCrop);
        for (int sample = 0; sample < 20; sample++)
            Assert.All(Run(rrc, gray, 3, 20, 30, 16, 16, 0, sample, train: true), v => Near(77 / 255f, v, 1e-5));
    }

    [Fact]
    public void Augmentation_pca_color_adds_one_offset_per_channel_of_the_paper_size()
    {
        byte[] image = Pattern(3 * 4 * 4, 21);
        var aug = new Augmentation(AugmentKind.PcaColor);
        var offsets = new List<double>();
        for (int sample = 0; sample < 3000; sample++)
        {
            float[] output = Run(aug, image, 3, 4, 4, 4, 4, 0, sample, train: true);
            for (int c = 0; c < 3; c++)
            {
                float d = output[c * 16] - image[c * 16] / 255f;
                for (int i = 1; i < 16; i++)
                    Near(d, output[c * 16 + i] - image[c * 16 + i] / 255f);
                if (c == 0) offsets.Add(d);
            }
        }
        // R's offset is sum_j v[R][j] * alpha_j * lambda_j, alpha_j ~ N(0, 0.1): its std is 0.1 * |v[R] * lambda|.
        double expected = 0.1 * Math.Sqrt(Math.Pow(-0.5675 * 0.2175, 2) + Math.Pow(0.7192 * 0.0188, 2) + Math.Pow(0.4009 * 0.0045, 2));
        double mean = offsets.Average(), sd = Math.Sqrt(offsets.Select(o => (o - mean) * (o - mean)).Average());
        Assert.InRange(sd, expected * 0.9, expected * 1.1);
        Assert.InRange(mean, -expected * 0.1, expected * 0.1);

        ArgumentException e = Assert.Throws<ArgumentException>(() => Run(aug, new byte[16], 1, 4, 4, 4, 4, 0, 0, train: true));
        Assert.Contains("pca-color needs RGB", e.Message);
        Run(aug, new byte[16], 1, 4, 4, 4, 4, 0, 0, train: false); // evaluation: no colour noise, any channels
    }

    [Fact]
    public void FillBatch_fills_nchw_inputs_and_labels_keyed_by_the_image_index()
    {
        TrainingDataset d = Tiny(12, channels: 1, h: 6, w: 6);
        var aug = new Augmentation(AugmentKind.PadCrop | AugmentKind.HorizontalFlip, 2, new[] { 0.3f }, new[] { 0.4f });
        int[] indices = { 5, 0, 11 };
        var input = new float[3 * 36];
        var labels = new int[3];
        BatchSampler.FillBatch(d, indices, aug, input, labels, 6, 6, 9, 2, train: true);
        Assert.Equal(new[] { d.Label(5), d.Label(0), d.Label(11) }, labels);
        for (int k = 0; k < 3; k++)
        {
            var single = new float[36];
            aug.Apply(d.Image(indices[k]), 1, 6, 6, single, 6, 6, 9, 2, indices[k], train: true);
            Assert.Equal(single, input.AsSpan(k * 36, 36).ToArray());
        }
        Assert.Throws<ArgumentException>(() => BatchSampler.FillBatch(d, indices, aug, new float[100], labels, 6, 6, 9, 2, true));
        Assert.Throws<ArgumentException>(() => BatchSampler.FillBatch(d, indices, aug, input, new int[2], 6, 6, 9, 2, true));
    }

    [Fact]
    public void Apply_and_FillBatch_allocate_nothing_after_warm_up()
    {
        byte[] rgb = Pattern(3 * 40 * 40, 8);
        var heavy = new Augmentation(AugmentKind.RandomResizedCrop | AugmentKind.HorizontalFlip | AugmentKind.PcaColor, 2,
            new[] { 0.485f, 0.456f, 0.406f }, new[] { 0.229f, 0.224f, 0.225f });
        var output = new float[3 * 32 * 32];
        TrainingDataset d = Tiny(64, channels: 1, h: 28, w: 28, classes: 10);
        var aug = new Augmentation(AugmentKind.PadCrop | AugmentKind.HorizontalFlip, 2, new[] { 0.286f }, new[] { 0.353f });
        var order = new int[64];
        var input = new float[16 * 28 * 28];
        var labels = new int[16];

        void Work(int epoch)
        {
            heavy.Apply(rgb, 3, 40, 40, output, 32, 32, 1, epoch, 3, train: true);
            heavy.Apply(rgb, 3, 40, 40, output, 32, 32, 1, epoch, 3, train: false);
            BatchSampler.Shuffle(order, 1, epoch);
            BatchSampler.FillBatch(d, order.AsSpan(0, 16), aug, input, labels, 28, 28, 1, epoch, train: true);
            BatchSampler.FillBatch(d, order.AsSpan(16, 16), aug, input, labels, 28, 28, 1, epoch, train: false);
        }

        for (int i = 0; i < 40; i++) Work(i);
        System.Threading.Thread.Sleep(200);
        var rounds = new List<long>();
        for (int round = 0; round < 3; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 5; i++) Work(100 + i);
            rounds.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            if (rounds[^1] == 0) break;
        }
        Assert.True(rounds[^1] == 0, $"5 rounds of Apply/Shuffle/FillBatch allocated {string.Join(", then ", rounds)} bytes");
    }

    // ---- image folders ----

    private static byte[] Encode(int width, int height, Func<int, int, SKColor> color, SKEncodedImageFormat format)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        using SKData data = bitmap.Encode(format, 100);
        return data.ToArray();
    }

    [Fact]
    public void ImageFolder_reads_sorted_classes_resized_and_centre_cropped()
    {
        string root = Temp("folder");
        Directory.CreateDirectory(Path.Combine(root, "zebra"));
        Directory.CreateDirectory(Path.Combine(root, "apple", "nested"));
        Directory.CreateDirectory(Path.Combine(root, ".hidden"));
        static SKColor Color(int x, int y) => new((byte)(x * 40), (byte)(y * 50), 200);
        File.WriteAllBytes(Path.Combine(root, "zebra", "b.png"), Encode(6, 4, Color, SKEncodedImageFormat.Png));
        File.WriteAllBytes(Path.Combine(root, "zebra", "a.PNG"), Encode(4, 4, (_, _) => new SKColor(10, 20, 30), SKEncodedImageFormat.Png));
        File.WriteAllBytes(Path.Combine(root, "zebra", "notes.txt"), "not an image"u8.ToArray());
        File.WriteAllBytes(Path.Combine(root, "apple", "nested", "c.webp"), Encode(8, 8, (_, _) => new SKColor(90, 90, 90), SKEncodedImageFormat.Webp));
        File.WriteAllBytes(Path.Combine(root, ".hidden", "x.png"), Encode(4, 4, Color, SKEncodedImageFormat.Png));

        TrainingDataset rgb = TrainingDataset.ImageFolder(root, 3, 4);
        Assert.Equal(new[] { "apple", "zebra" }, rgb.ClassNames);
        Assert.Equal((3, 3, 4, 4), (rgb.Count, rgb.Channels, rgb.Height, rgb.Width));
        Assert.Equal(new[] { 0, 1, 1 }, new[] { rgb.Label(0), rgb.Label(1), rgb.Label(2) });
        Assert.Equal(root, rgb.Origin);
        // apple/nested/c.webp: 8x8 grey resized to 4x4 (lossless WebP at quality 100 keeps 90 exactly or nearly).
        Assert.All(rgb.Image(0).ToArray(), b => Assert.InRange(b, 88, 92));
        // zebra/a.PNG: flat.
        Assert.Equal(Enumerable.Repeat((byte)10, 16).Concat(Enumerable.Repeat((byte)20, 16)).Concat(Enumerable.Repeat((byte)30, 16)), rgb.Image(1).ToArray());
        // zebra/b.png: 6x4 is already 4 on its shorter side; the centre 4x4 starts at column 1.
        ReadOnlySpan<byte> b = rgb.Image(2);
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
            {
                SKColor c = Color(x + 1, y);
                Assert.Equal((c.Red, c.Green, c.Blue), (b[y * 4 + x], b[16 + y * 4 + x], b[32 + y * 4 + x]));
            }

        TrainingDataset gray = TrainingDataset.ImageFolder(root, 1, 2);
        Assert.Equal((1, 2, 2), (gray.Channels, gray.Height, gray.Width));
        int l = (10 * 19595 + 20 * 38470 + 30 * 7471 + 0x8000) >> 16; // PIL's convert("L")
        Assert.All(gray.Image(1).ToArray(), v => Assert.Equal(l, v));
    }

    [Fact]
    public void ImageFolder_errors_name_the_folder_or_file()
    {
        string missing = Temp("nothing-here");
        Assert.Equal(missing + ": folder not found", Assert.Throws<DatasetException>(() => TrainingDataset.ImageFolder(missing, 3, 8)).Message);

        string empty = Temp("empty-root");
        Directory.CreateDirectory(empty);
        Assert.StartsWith(empty + ": has no class folders", Assert.Throws<DatasetException>(() => TrainingDataset.ImageFolder(empty, 3, 8)).Message);

        string noImages = Temp("no-images");
        Directory.CreateDirectory(Path.Combine(noImages, "cats"));
        File.WriteAllText(Path.Combine(noImages, "cats", "readme.txt"), "no pictures");
        DatasetException e = Assert.Throws<DatasetException>(() => TrainingDataset.ImageFolder(noImages, 3, 8));
        Assert.StartsWith(Path.Combine(noImages, "cats") + ": class folder 'cats' holds no images", e.Message);

        string corrupt = Temp("corrupt");
        Directory.CreateDirectory(Path.Combine(corrupt, "a"));
        File.WriteAllBytes(Path.Combine(corrupt, "a", "good.png"), Encode(4, 4, (_, _) => SKColors.Red, SKEncodedImageFormat.Png));
        string bad = Path.Combine(corrupt, "a", "bad.jpg");
        File.WriteAllText(bad, "this is not a jpeg");
        e = Assert.Throws<DatasetException>(() => TrainingDataset.ImageFolder(corrupt, 3, 8));
        Assert.StartsWith(bad + ": not a JPEG, PNG, BMP or WebP image", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        byte[] png = Encode(16, 16, (x, y) => new SKColor((byte)x, (byte)y, 0), SKEncodedImageFormat.Png);
        File.WriteAllBytes(bad, png.AsSpan(0, 60).ToArray()); // a truncated PNG named .jpg
        e = Assert.Throws<DatasetException>(() => TrainingDataset.ImageFolder(corrupt, 3, 8));
        Assert.StartsWith(bad + ": ", e.Message);

        Assert.Throws<ArgumentOutOfRangeException>(() => TrainingDataset.ImageFolder(corrupt, 2, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainingDataset.ImageFolder(corrupt, 3, 0));
    }

    // ---- metrics ----

    private static List<EpochMetrics> SampleMetrics(int epochs, bool withValidation = true) =>
        Enumerable.Range(1, epochs).Select(e => new EpochMetrics(e, 0.02 * Math.Pow(0.1, e / 8), 1.6 / e + 0.2, 0.5 + 0.04 * e,
            withValidation ? 1.4 / e + 0.25 : double.NaN, withValidation ? 0.55 + 0.035 * e : double.NaN, 12.5 + e / 3.0, 4800.0 + e)).ToList();

    [Fact]
    public void MetricsCsv_round_trips_exactly()
    {
        string path = Temp("metrics.csv");
        List<EpochMetrics> rows = SampleMetrics(12);
        rows.Add(new EpochMetrics(13, 1e-5, 0.1 / 3, 1, double.NaN, double.NaN, 0, double.PositiveInfinity));
        MetricsCsv.Write(path, rows);
        string[] lines = File.ReadAllLines(path);
        Assert.Equal(MetricsCsv.Header, lines[0]);
        Assert.Equal(14, lines.Length);
        Assert.StartsWith("13,1E-05,0.03333333333333333,1,NaN,NaN,0,", lines[13]);
        Assert.Equal(rows, MetricsCsv.Read(path));
        Assert.Empty(Directory.GetFiles(_dir, ".*.tmp"));

        MetricsCsv.Write(path, Array.Empty<EpochMetrics>());
        Assert.Empty(MetricsCsv.Read(path));
    }

    [Fact]
    public void MetricsCsv_malformed_files_are_errors_naming_the_file_and_line()
    {
        string Bad(string name, string text)
        {
            string path = WriteFile(name, System.Text.Encoding.UTF8.GetBytes(text));
            DatasetException e = Assert.Throws<DatasetException>(() => MetricsCsv.Read(path));
            Assert.StartsWith(path + ": ", e.Message);
            return e.Message;
        }
        string header = MetricsCsv.Header + "\n";
        Assert.Contains("line 1", Bad("empty.csv", ""));
        Assert.Contains("line 1", Bad("header.csv", "epoch,loss\n1,2\n"));
        Assert.Contains("line 3: 7 fields", Bad("fields.csv", header + "1,0.1,2,0.5,2,0.5,10,100\n2,0.1,2,0.5,2,0.5,10\n"));
        Assert.Contains("line 2: train_loss 'abc'", Bad("number.csv", header + "1,0.1,abc,0.5,2,0.5,10,100\n"));
        Assert.Contains("line 2: epoch '1.5'", Bad("epoch.csv", header + "1.5,0.1,2,0.5,2,0.5,10,100\n"));
        Assert.Contains("line 2: 9 fields", Bad("comma.csv", header + "1,\"0,1\",2,0.5,2,0.5,10,100\n"));
        string missing = Temp("missing.csv");
        Assert.Equal(missing + ": file not found", Assert.Throws<DatasetException>(() => MetricsCsv.Read(missing)).Message);
    }

    [Fact]
    public void MetricsPlot_writes_a_900x400_png()
    {
        foreach ((string name, List<EpochMetrics> rows) in new[]
        {
            ("plot.png", SampleMetrics(12)),
            ("no-validation.png", SampleMetrics(5, withValidation: false)),
            ("one-epoch.png", SampleMetrics(1)),
            ("empty.png", new List<EpochMetrics>()),
            ("long.png", SampleMetrics(200)),
        })
        {
            string path = Temp(name);
            MetricsPlot.WritePng(path, rows);
            byte[] bytes = File.ReadAllBytes(path);
            Assert.Equal(AlexNet.Aot.Imaging.ImageFormat.Png, AlexNet.Aot.Imaging.ImageLoader.Sniff(bytes));
            using SKBitmap bitmap = SKBitmap.Decode(bytes);
            Assert.NotNull(bitmap);
            Assert.Equal((MetricsPlot.Width, MetricsPlot.Height), (bitmap.Width, bitmap.Height));
            if (rows.Count > 1)
            {
                // Both curve colours are drawn in each panel.
                bool Has(SKColor c, int x0, int x1)
                {
                    for (int y = 0; y < bitmap.Height; y += 1)
                        for (int x = x0; x < x1; x++)
                        {
                            SKColor p = bitmap.GetPixel(x, y);
                            if (Math.Abs(p.Red - c.Red) < 8 && Math.Abs(p.Green - c.Green) < 8 && Math.Abs(p.Blue - c.Blue) < 8) return true;
                        }
                    return false;
                }
                Assert.True(Has(new SKColor(31, 119, 180), 80, 430), name + ": no training curve in the loss panel");
                Assert.True(Has(new SKColor(31, 119, 180), 530, 880), name + ": no training curve in the accuracy panel");
            }
        }
        Assert.Empty(Directory.GetFiles(_dir, ".*.tmp"));
    }
}
