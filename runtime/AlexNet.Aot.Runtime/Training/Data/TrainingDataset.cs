using System;
using System.Collections.Generic;
using System.IO;
using AlexNet.Aot.Imaging;

namespace AlexNet.Aot.Training;

/// <summary>
/// A labelled image set held in memory as bytes: every image is <see cref="Channels"/> x <see cref="Height"/> x
/// <see cref="Width"/> pixels (0 to 255), planar (channel-major, <c>[C, H, W]</c> as a model's input), with one label in
/// [0, <see cref="Classes"/>). Images become model input through <see cref="Augmentation.Apply"/> (scaling, crops,
/// flips, normalization); <see cref="BatchSampler"/> fills batches.
/// <para>
/// Sources: Fashion-MNIST's IDX files (<see cref="FashionMnist"/>), a folder of class folders of photos
/// (<see cref="ImageFolder"/>), or arrays (<see cref="FromArrays"/>). The whole set is one byte array, so it holds at
/// most <see cref="Array.MaxLength"/> bytes (about 2 GiB: 2.7 million 28x28 images, 14 000 RGB 224x224 ones).
/// Instances are immutable and safe to read from any number of threads.
/// </para>
/// </summary>
public sealed class TrainingDataset
{
    /// <summary>Where the Debian package <c>dataset-fashion-mnist</c> installs Fashion-MNIST's four gzip-compressed IDX files.</summary>
    public const string DefaultFashionMnistFolder = "/usr/share/datasets/fashion-mnist";

    /// <summary>The image file extensions <see cref="ImageFolder"/> reads (compared case-insensitively).</summary>
    public static IReadOnlyList<string> ImageExtensions { get; } = new[] { ".jpg", ".jpeg", ".png", ".bmp", ".webp" };

    private static readonly string[] FashionMnistClasses =
    {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    };

    private readonly byte[] _pixels;
    private readonly int[] _labels;
    private readonly string[] _classNames;

    private TrainingDataset(byte[] pixels, int[] labels, int channels, int height, int width, string[] classNames, string origin)
    {
        _pixels = pixels;
        _labels = labels;
        _classNames = classNames;
        Channels = channels;
        Height = height;
        Width = width;
        Origin = origin;
    }

    /// <summary>Fashion-MNIST's class names, in label order (0: T-shirt/top ... 9: Ankle boot).</summary>
    public static IReadOnlyList<string> FashionMnistClassNames => FashionMnistClasses;

    /// <summary>The number of images.</summary>
    public int Count => _labels.Length;

    /// <summary>Channels per image: 1 (grayscale) or 3 (R, G, B), or what <see cref="FromArrays"/> was given.</summary>
    public int Channels { get; }

    /// <summary>Rows per image.</summary>
    public int Height { get; }

    /// <summary>Columns per image.</summary>
    public int Width { get; }

    /// <summary>Bytes per image: <c>Channels * Height * Width</c>.</summary>
    public int ImageLength => Channels * Height * Width;

    /// <summary>The number of classes; labels lie in [0, Classes).</summary>
    public int Classes => _classNames.Length;

    /// <summary>The class names in label order (a copy).</summary>
    public string[] ClassNames => (string[])_classNames.Clone();

    /// <summary>Where the images come from (a folder, files, or the description given to <see cref="FromArrays"/>), for messages.</summary>
    public string Origin { get; }

    /// <summary>Image <paramref name="index"/>'s pixels, <c>[C, H, W]</c>.</summary>
    public ReadOnlySpan<byte> Image(int index)
    {
        if ((uint)index >= (uint)_labels.Length)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Origin} holds {Count} images");
        int n = ImageLength;
        return new ReadOnlySpan<byte>(_pixels, index * n, n);
    }

    /// <summary>Image <paramref name="index"/>'s label, in [0, <see cref="Classes"/>).</summary>
    public int Label(int index)
    {
        if ((uint)index >= (uint)_labels.Length)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Origin} holds {Count} images");
        return _labels[index];
    }

    /// <summary>How many images each class has (indexed by label).</summary>
    public int[] LabelHistogram()
    {
        var counts = new int[Classes];
        foreach (int l in _labels) counts[l]++;
        return counts;
    }

    /// <summary>The data set of the given pixels and labels (copied), for tests and callers with their own loaders.</summary>
    /// <param name="pixels"><c>labels.Length</c> images of <c>channels * height * width</c> bytes, planar.</param>
    /// <param name="labels">One label per image, each in [0, <c>classNames.Length</c>).</param>
    /// <param name="channels">Channels per image.</param>
    /// <param name="height">Rows per image.</param>
    /// <param name="width">Columns per image.</param>
    /// <param name="classNames">The class names, in label order (at least one).</param>
    /// <param name="origin">What the data is, for messages.</param>
    /// <exception cref="ArgumentException">The sizes do not agree, a dimension is not positive, or a label is out of range.</exception>
    public static TrainingDataset FromArrays(byte[] pixels, int[] labels, int channels, int height, int width, string[] classNames, string origin)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(classNames);
        ArgumentNullException.ThrowIfNull(origin);
        if (channels <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"{origin}: images of {channels}x{height}x{width} are empty");
        if (classNames.Length == 0)
            throw new ArgumentException($"{origin}: at least one class name is needed", nameof(classNames));
        long imageLength = (long)channels * height * width;
        if (imageLength * labels.Length != pixels.Length)
            throw new ArgumentException(
                $"{origin}: {pixels.Length} bytes are not {labels.Length} images of {channels}x{height}x{width} ({imageLength * labels.Length} bytes)", nameof(pixels));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classNames.Length)
                throw new ArgumentException($"{origin}: label {labels[i]} of image {i} is not in [0, {classNames.Length})", nameof(labels));
        foreach (string? name in classNames)
            if (name is null)
                throw new ArgumentException($"{origin}: a class name is null", nameof(classNames));
        return new TrainingDataset((byte[])pixels.Clone(), (int[])labels.Clone(), channels, height, width, (string[])classNames.Clone(), origin);
    }

    /// <summary>
    /// Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 28x28 grayscale images of 10 kinds of clothing, 60 000 for
    /// training and 10 000 for testing, read from <c>train-images-idx3-ubyte.gz</c> and <c>train-labels-idx1-ubyte.gz</c>
    /// (or <c>t10k-...</c> for the test set) in <paramref name="folder"/>; the names without <c>.gz</c> are accepted too.
    /// </summary>
    /// <param name="folder">The folder of the IDX files (<see cref="DefaultFashionMnistFolder"/> for the Debian package).</param>
    /// <param name="train">True for the training set, false for the test set.</param>
    /// <exception cref="DatasetException">The folder or a file is missing, a file is malformed (<see cref="IdxFile"/>),
    /// the counts of images and labels differ, or a label is not in [0, 10).</exception>
    public static TrainingDataset FashionMnist(string folder, bool train)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder))
            throw new DatasetException(folder, File.Exists(folder) ? "is a file, not a folder of Fashion-MNIST files" :
                "folder not found (Fashion-MNIST: the Debian package dataset-fashion-mnist installs it in " + DefaultFashionMnistFolder + ")");
        string prefix = train ? "train" : "t10k";
        string imagesPath = FindIdx(folder, prefix + "-images-idx3-ubyte");
        string labelsPath = FindIdx(folder, prefix + "-labels-idx1-ubyte");
        IdxImages images = IdxFile.ReadImages(imagesPath);
        byte[] labelBytes = IdxFile.ReadLabels(labelsPath);
        if (labelBytes.Length != images.Count)
            throw new DatasetException(labelsPath, $"holds {labelBytes.Length} labels but {imagesPath} holds {images.Count} images");
        var labels = new int[labelBytes.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            if (labelBytes[i] >= FashionMnistClasses.Length)
                throw new DatasetException(labelsPath, $"label {labelBytes[i]} at index {i} is not a Fashion-MNIST class (0 to {FashionMnistClasses.Length - 1})");
            labels[i] = labelBytes[i];
        }
        string origin = $"Fashion-MNIST {(train ? "training" : "test")} set ({imagesPath})";
        return new TrainingDataset(images.Pixels, labels, 1, images.Rows, images.Columns, (string[])FashionMnistClasses.Clone(), origin);
    }

    private static string FindIdx(string folder, string name)
    {
        string gz = Path.Combine(folder, name + ".gz");
        if (File.Exists(gz)) return gz;
        string raw = Path.Combine(folder, name);
        if (File.Exists(raw)) return raw;
        throw new DatasetException(folder, $"neither {name}.gz nor {name} is in the folder");
    }

    /// <summary>
    /// A folder of class folders of images, as torchvision's <c>ImageFolder</c>: each sub-folder of <paramref name="root"/>
    /// is a class, named by the folder (classes sorted ordinally; folders whose names start with '.' are skipped), holding
    /// images at any depth (files ending in one of <see cref="ImageExtensions"/>, in ordinal order of their paths).
    /// Each image is decoded by <see cref="ImageLoader"/> (JPEG, PNG, BMP and WebP, by content), resized so its shorter
    /// side is <paramref name="size"/> (<see cref="Preprocess.ResizeShorterSide"/>: Pillow's antialiased bilinear) and
    /// centre-cropped to <paramref name="size"/> x <paramref name="size"/>, and stored as R, G, B planes
    /// (<paramref name="channels"/> 3) or luminance (1: PIL's <c>convert("L")</c>), rounded to bytes.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channels"/> is not 1 or 3, or <paramref name="size"/> is not in [1, 4096].</exception>
    /// <exception cref="DatasetException">The folder is missing, has no class folders, a class folder has no images, an
    /// image cannot be decoded (the message names it), or the images do not fit in memory.</exception>
    public static TrainingDataset ImageFolder(string root, int channels, int size)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "images are stored as 1 (luminance) or 3 (RGB) channels");
        if (size is <= 0 or > IdxFile.MaxSide)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"the image size must be in [1, {IdxFile.MaxSide}]");
        if (!Directory.Exists(root))
            throw new DatasetException(root, File.Exists(root) ? "is a file, not a folder of class folders" : "folder not found");

        var classes = new List<string>();
        var files = new List<(string Path, int Label)>();
        try
        {
            foreach (string dir in Directory.GetDirectories(root))
                if (!Path.GetFileName(dir).StartsWith('.'))
                    classes.Add(Path.GetFileName(dir));
            classes.Sort(StringComparer.Ordinal);
            if (classes.Count == 0)
                throw new DatasetException(root, "has no class folders (one sub-folder of images per class is expected)");
            for (int label = 0; label < classes.Count; label++)
            {
                string classDir = Path.Combine(root, classes[label]);
                var images = new List<string>();
                foreach (string file in Directory.EnumerateFiles(classDir, "*", SearchOption.AllDirectories))
                    if (IsImageFile(file))
                        images.Add(file);
                if (images.Count == 0)
                    throw new DatasetException(classDir, $"class folder '{classes[label]}' holds no images ({string.Join(", ", ImageExtensions)})");
                images.Sort(StringComparer.Ordinal);
                foreach (string file in images) files.Add((file, label));
            }
        }
        catch (Exception e) when (e is IOException and not DatasetException or UnauthorizedAccessException)
        {
            throw new DatasetException(root, $"cannot list the folder: {e.Message.ReplaceLineEndings(" ")}", e);
        }

        long imageLength = (long)channels * size * size;
        long total = imageLength * files.Count;
        if (total > Array.MaxLength)
            throw new DatasetException(root, $"{files.Count} images of {channels}x{size}x{size} are {total} bytes, more than one array can hold");
        byte[] pixels = GC.AllocateUninitializedArray<byte>((int)total);
        var labels = new int[files.Count];
        var crop = new float[imageLength];
        for (int i = 0; i < files.Count; i++)
        {
            (string file, int label) = files[i];
            PlanarImage image;
            try
            {
                image = ImageLoader.Load(file, channels, otherFormats: true);
                image = Preprocess.ResizeShorterSide(image, size);
            }
            catch (ImageException e)
            {
                throw new DatasetException(file, e.Message.StartsWith(file + ": ", StringComparison.Ordinal) ? e.Message.Substring(file.Length + 2) : e.Message, e);
            }
            catch (ArgumentException e)
            {
                throw new DatasetException(file, $"cannot be resized to {size} pixels on its shorter side: {e.Message}", e);
            }
            (int top, int left) = Preprocess.CenterCropOffset(image, size, size);
            Preprocess.Crop(image, top, left, size, size, flip: false, crop);
            Span<byte> dst = pixels.AsSpan((int)(i * imageLength), (int)imageLength);
            for (int k = 0; k < crop.Length; k++)
                dst[k] = (byte)Math.Clamp((int)MathF.Round(crop[k] * 255f), 0, 255);
            labels[i] = label;
        }
        return new TrainingDataset(pixels, labels, channels, size, size, classes.ToArray(), root);
    }

    private static bool IsImageFile(string path)
    {
        string ext = Path.GetExtension(path);
        foreach (string known in ImageExtensions)
            if (string.Equals(ext, known, StringComparison.OrdinalIgnoreCase))
                return true;
        return false;
    }

    /// <summary>The <paramref name="count"/> images from <paramref name="start"/> on, as a new data set (copied).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not within the data set.</exception>
    public TrainingDataset Subset(int start, int count)
    {
        if (start < 0 || count < 0 || start > Count - count)
            throw new ArgumentOutOfRangeException(nameof(start), $"images [{start}, {(long)start + count}) are not within the {Count} of {Origin}");
        int n = ImageLength;
        byte[] pixels = _pixels.AsSpan(start * n, count * n).ToArray();
        int[] labels = _labels.AsSpan(start, count).ToArray();
        return new TrainingDataset(pixels, labels, Channels, Height, Width, _classNames, $"{Origin} [{start}, {start + count})");
    }

    /// <summary>The images at <paramref name="indices"/>, in that order, as a new data set (copied).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An index is not within the data set.</exception>
    public TrainingDataset Select(ReadOnlySpan<int> indices, string origin)
    {
        ArgumentNullException.ThrowIfNull(origin);
        int n = ImageLength;
        byte[] pixels = GC.AllocateUninitializedArray<byte>(checked(indices.Length * n));
        var labels = new int[indices.Length];
        for (int k = 0; k < indices.Length; k++)
        {
            int i = indices[k];
            Image(i).CopyTo(pixels.AsSpan(k * n, n));
            labels[k] = _labels[i];
        }
        return new TrainingDataset(pixels, labels, Channels, Height, Width, _classNames, origin);
    }

    /// <summary>
    /// Splits off a validation set: <paramref name="validationCount"/> images chosen at random (a permutation by
    /// <see cref="CounterRng"/> keyed by <paramref name="seed"/> and <see cref="RngPurpose.Split"/>, so the same seed
    /// always gives the same split) go to <paramref name="validation"/>; the rest is returned. Both keep the original
    /// order of their images.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="validationCount"/> is negative or not less than <see cref="Count"/>.</exception>
    public TrainingDataset Split(int validationCount, ulong seed, out TrainingDataset validation)
    {
        if (validationCount < 0 || validationCount >= Count)
            throw new ArgumentOutOfRangeException(nameof(validationCount), validationCount, $"a validation set must leave some of the {Count} images of {Origin} for training");
        var order = new int[Count];
        BatchSampler.Permutation(order, seed, 0, RngPurpose.Split);
        var chosen = new bool[Count];
        for (int k = 0; k < validationCount; k++) chosen[order[k]] = true;
        var val = new int[validationCount];
        var rest = new int[Count - validationCount];
        int v = 0, r = 0;
        for (int i = 0; i < Count; i++)
        {
            if (chosen[i]) val[v++] = i;
            else rest[r++] = i;
        }
        validation = Select(val, $"{Origin} (validation: {validationCount} images, seed {seed})");
        return Select(rest, $"{Origin} (training: {rest.Length} images, seed {seed})");
    }
}
