using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace AlexNet.Aot.Training;

/// <summary>The augmentations of a training recipe (<c>augment=</c>), as flags.</summary>
[Flags]
public enum AugmentKind
{
    /// <summary>No augmentation.</summary>
    None = 0,
    /// <summary><c>pad-crop</c>: zero-pad by <see cref="Augmentation.Pad"/> pixels, then a random crop of the output size
    /// (torchvision's <c>RandomCrop(size, padding=pad)</c>).</summary>
    PadCrop = 1,
    /// <summary><c>random-crop</c>: a random crop of the output size (torchvision's <c>RandomCrop(size)</c>: 224 or 227 of 256).</summary>
    RandomCrop = 2,
    /// <summary><c>random-resized-crop</c>: torchvision's <c>RandomResizedCrop(size)</c>, scale (0.08, 1), ratio (3/4, 4/3).</summary>
    RandomResizedCrop = 4,
    /// <summary><c>hflip</c>: a horizontal mirror with probability 0.5 (torchvision's <c>RandomHorizontalFlip()</c>).</summary>
    HorizontalFlip = 8,
    /// <summary><c>pca-color</c>: the AlexNet paper's PCA colour noise (fb.resnet.torch's <c>Lighting(0.1)</c>), RGB only.</summary>
    PcaColor = 16,
}

/// <summary>
/// Turns one stored image (bytes, <c>[C, H, W]</c>) into model input (floats, <c>[C, dstH, dstW]</c>): the geometric
/// augmentation (or, for evaluation, a centre crop), a horizontal flip, scaling to [0, 1] (x / 255), the PCA colour
/// noise, and the model's per-channel normalization <c>(x - mean) / std</c>, in that order, as torchvision's
/// <c>Compose([RandomCrop or RandomResizedCrop, RandomHorizontalFlip, ToTensor, Lighting, Normalize])</c>.
/// <para>
/// Every random choice comes from <see cref="CounterRng"/> keyed by (seed, epoch, sample index, purpose), so an image
/// gets the same augmentation in the same epoch whatever its batch, position or thread, and training resumes exactly.
/// <see cref="Apply"/> allocates nothing. Instances are immutable and may be shared by threads.
/// </para>
/// </summary>
public sealed class Augmentation
{
    /// <summary>The padding of <c>pad-crop</c> when the recipe gives no <c>pad</c>, in pixels.</summary>
    public const int DefaultPad = 2;

    /// <summary>The largest padding accepted, in pixels.</summary>
    public const int MaxPad = 1024;

    /// <summary>The most channels <see cref="Apply"/> handles.</summary>
    public const int MaxChannels = 64;

    /// <summary>The standard deviation of the PCA noise's coefficients (the paper's 0.1).</summary>
    public const float PcaAlphaStd = 0.1f;

    /// <summary><c>random-resized-crop</c>'s range of the crop's area, as a fraction of the image's (torchvision's default).</summary>
    public const double MinScale = 0.08, MaxScale = 1.0;

    /// <summary><c>random-resized-crop</c>'s range of the crop's aspect ratio, width over height (torchvision's default).</summary>
    public const double MinRatio = 3.0 / 4.0, MaxRatio = 4.0 / 3.0;

    /// <summary>How many windows <c>random-resized-crop</c> draws before it falls back to a centre crop (torchvision's 10).</summary>
    public const int ResizedCropTries = 10;

    /// <summary>The eigenvalues of ImageNet's RGB covariance (pixels in [0, 1]), as fb.resnet.torch's <c>Lighting</c>.</summary>
    public static ReadOnlySpan<float> PcaEigenvalues => Eigenvalues;

    /// <summary>The eigenvectors (columns) of ImageNet's RGB covariance, row-major <c>[channel R, G, B][component]</c>.</summary>
    public static ReadOnlySpan<float> PcaEigenvectors => Eigenvectors;

    private static readonly float[] Eigenvalues = { 0.2175f, 0.0188f, 0.0045f };

    private static readonly float[] Eigenvectors =
    {
        -0.5675f, 0.7192f, 0.4009f,
        -0.5808f, -0.0045f, -0.8140f,
        -0.5836f, -0.6948f, 0.4203f,
    };

    private static readonly (string Name, AugmentKind Kind)[] NameTable =
    {
        ("pad-crop", AugmentKind.PadCrop),
        ("random-crop", AugmentKind.RandomCrop),
        ("random-resized-crop", AugmentKind.RandomResizedCrop),
        ("hflip", AugmentKind.HorizontalFlip),
        ("pca-color", AugmentKind.PcaColor),
    };

    private const AugmentKind Geometric = AugmentKind.PadCrop | AugmentKind.RandomCrop | AugmentKind.RandomResizedCrop;

    private readonly float[] _mean;
    private readonly float[] _std;

    /// <summary>Creates the augmentation.</summary>
    /// <param name="kinds">The augmentations; at most one of <c>pad-crop</c>, <c>random-crop</c> and <c>random-resized-crop</c>.</param>
    /// <param name="pad">The padding of <c>pad-crop</c>, in pixels.</param>
    /// <param name="mean">Per-channel mean subtracted after scaling to [0, 1]; null or empty: no normalization.</param>
    /// <param name="std">Per-channel standard deviation divided by; as many as <paramref name="mean"/>.</param>
    /// <exception cref="ArgumentException">Two geometric augmentations, an unknown flag, a padding out of [0, <see cref="MaxPad"/>],
    /// mean and std of different lengths, or a std that is not positive and finite.</exception>
    public Augmentation(AugmentKind kinds, int pad = DefaultPad, float[]? mean = null, float[]? std = null)
    {
        if ((kinds & ~(Geometric | AugmentKind.HorizontalFlip | AugmentKind.PcaColor)) != 0)
            throw new ArgumentException($"unknown augmentation flags 0x{(int)kinds:X}", nameof(kinds));
        AugmentKind geometric = kinds & Geometric;
        if ((geometric & (geometric - 1)) != 0)
            throw new ArgumentException($"{Names(geometric)}: pad-crop, random-crop and random-resized-crop each choose the crop; use one of them", nameof(kinds));
        if (pad is < 0 or > MaxPad)
            throw new ArgumentOutOfRangeException(nameof(pad), pad, $"the padding must be in [0, {MaxPad}] pixels");
        mean ??= Array.Empty<float>();
        std ??= Array.Empty<float>();
        if (mean.Length != std.Length)
            throw new ArgumentException($"the normalization has {mean.Length} mean and {std.Length} std values; one of each per channel is needed", nameof(std));
        foreach (float m in mean)
            if (!float.IsFinite(m))
                throw new ArgumentException($"the normalization mean {m.ToString(CultureInfo.InvariantCulture)} is not finite", nameof(mean));
        foreach (float s in std)
            if (!(s > 0) || !float.IsFinite(s))
                throw new ArgumentException($"the normalization std {s.ToString(CultureInfo.InvariantCulture)} is not a positive finite number", nameof(std));
        Kinds = kinds;
        Pad = pad;
        _mean = (float[])mean.Clone();
        _std = (float[])std.Clone();
    }

    /// <summary>The recipe names of the augmentations: <c>pad-crop</c>, <c>random-crop</c>, <c>random-resized-crop</c>, <c>hflip</c>, <c>pca-color</c>.</summary>
    public static IReadOnlyList<string> KnownNames { get; } = Array.ConvertAll(NameTable, e => e.Name);

    /// <summary>The augmentations.</summary>
    public AugmentKind Kinds { get; }

    /// <summary>The padding of <c>pad-crop</c>, in pixels.</summary>
    public int Pad { get; }

    /// <summary>The per-channel normalization mean (empty: none).</summary>
    public ReadOnlySpan<float> Mean => _mean;

    /// <summary>The per-channel normalization standard deviation (empty: none).</summary>
    public ReadOnlySpan<float> Std => _std;

    /// <summary>True when values are normalized after scaling to [0, 1].</summary>
    public bool Normalizes => _mean.Length > 0;

    /// <summary>Parses a comma list of augmentation names (<see cref="KnownNames"/>; case-sensitive, as the spec); null or empty is none.</summary>
    /// <exception cref="ArgumentException">An unknown or empty name, or a name given twice; the message lists the known names.</exception>
    public static AugmentKind ParseKinds(string? list)
    {
        if (string.IsNullOrEmpty(list)) return AugmentKind.None;
        AugmentKind kinds = AugmentKind.None;
        foreach (string raw in list.Split(','))
        {
            string name = raw.Trim();
            AugmentKind kind = AugmentKind.None;
            foreach ((string n, AugmentKind k) in NameTable)
                if (n == name) kind = k;
            if (kind == AugmentKind.None)
                throw new ArgumentException($"augment: unknown augmentation '{name}' (known: {string.Join(", ", KnownNames)})", nameof(list));
            if ((kinds & kind) != 0)
                throw new ArgumentException($"augment: '{name}' is given twice", nameof(list));
            kinds |= kind;
        }
        return kinds;
    }

    /// <summary>
    /// The augmentation of a training recipe (<see cref="ModelInfo.Recipe"/>: <c>key=value</c> strings): its <c>augment</c>
    /// list (none when absent) and <c>pad</c> (<see cref="DefaultPad"/> when absent); other keys are ignored.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown augmentation, or a <c>pad</c> that is not a whole number in [0, <see cref="MaxPad"/>].</exception>
    public static Augmentation FromRecipe(IReadOnlyList<string> recipe, float[]? mean, float[]? std)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        AugmentKind kinds = AugmentKind.None;
        int pad = DefaultPad;
        foreach (string entry in recipe)
        {
            int eq = entry.IndexOf('=');
            if (eq < 0) continue;
            string key = entry.Substring(0, eq).Trim(), value = entry.Substring(eq + 1).Trim();
            if (key == "augment")
                kinds = ParseKinds(value);
            else if (key == "pad" && (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out pad) || pad > MaxPad))
                throw new ArgumentException($"pad={value} is not a whole number of pixels in [0, {MaxPad}]", nameof(recipe));
        }
        return new Augmentation(kinds, pad, mean, std);
    }

    /// <summary>The augmentation <paramref name="model"/>'s spec asks for: its recipe's <c>augment</c> and <c>pad</c>, and its
    /// <c>normalize</c> mean and std (<see cref="ModelInfo.Mean"/>, <see cref="ModelInfo.Std"/>).</summary>
    /// <exception cref="ArgumentException">As <see cref="FromRecipe"/>.</exception>
    public static Augmentation FromModel(ModelInfo model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return FromRecipe(model.Recipe, model.Mean, model.Std);
    }

    /// <summary>The recipe text: e.g. <c>pad-crop,hflip pad=2 mean=0.286 std=0.353</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder(Kinds == AugmentKind.None ? "none" : Names(Kinds));
        if ((Kinds & AugmentKind.PadCrop) != 0) sb.Append(" pad=").Append(Pad.ToString(CultureInfo.InvariantCulture));
        if (Normalizes)
        {
            sb.Append(" mean=").Append(string.Join(",", Array.ConvertAll(_mean, v => v.ToString(CultureInfo.InvariantCulture))));
            sb.Append(" std=").Append(string.Join(",", Array.ConvertAll(_std, v => v.ToString(CultureInfo.InvariantCulture))));
        }
        return sb.ToString();
    }

    private static string Names(AugmentKind kinds)
    {
        var names = new List<string>();
        foreach ((string n, AugmentKind k) in NameTable)
            if ((kinds & k) != 0) names.Add(n);
        return string.Join(",", names);
    }

    /// <summary>
    /// Makes one model input from one stored image, without allocating.
    /// <para>
    /// Evaluation (<paramref name="train"/> false), or training without a geometric augmentation: a centre crop of
    /// <paramref name="dstH"/> x <paramref name="dstW"/> (torchvision's <c>CenterCrop</c> offsets) when the image is at
    /// least that large, else a bilinear resize of the whole image to it; then (training) the flip and the colour noise;
    /// then <c>(x / 255 - mean) / std</c> per channel. Training: <c>pad-crop</c> reads pixels outside the image as 0
    /// (before normalization, as <c>RandomCrop(padding=)</c> pads the image), with offsets uniform over the padded image;
    /// <c>random-crop</c> needs an image at least the output size; <c>random-resized-crop</c> follows torchvision's
    /// <c>get_params</c> (log-uniform ratio, sides rounded half to even, ten tries, then the centre crop of the image
    /// clamped to the ratio range) and resizes the window by bilinear interpolation without antialiasing (PyTorch's
    /// <c>interpolate(mode="bilinear", align_corners=False)</c>). The PCA noise adds <c>eigvec · (alpha ∘ eigval)</c>
    /// with <c>alpha ~ N(0, 0.1)</c> to R, G, B in [0, 1].
    /// </para>
    /// </summary>
    /// <param name="source">The image, <c>[srcC, srcH, srcW]</c> bytes.</param>
    /// <param name="srcC">Channels of the image and of the output.</param>
    /// <param name="srcH">Rows of the image.</param>
    /// <param name="srcW">Columns of the image.</param>
    /// <param name="destination">The input, <c>[srcC, dstH, dstW]</c> floats.</param>
    /// <param name="dstH">Rows of the input.</param>
    /// <param name="dstW">Columns of the input.</param>
    /// <param name="seed">The training seed.</param>
    /// <param name="epoch">The epoch (0-based), a key of the random choices.</param>
    /// <param name="sampleIndex">The image's index in its data set, a key of the random choices.</param>
    /// <param name="train">True for training (augmentations on), false for evaluation.</param>
    /// <exception cref="ArgumentException">Sizes that do not agree, a normalization for another number of channels,
    /// <c>pca-color</c> on an image that is not RGB, or a crop larger than the (padded) image.</exception>
    public void Apply(ReadOnlySpan<byte> source, int srcC, int srcH, int srcW, Span<float> destination, int dstH, int dstW,
        ulong seed, int epoch, int sampleIndex, bool train)
    {
        if (srcC is <= 0 or > MaxChannels || srcH <= 0 || srcW <= 0)
            throw new ArgumentOutOfRangeException(nameof(srcC), $"an image of {srcC}x{srcH}x{srcW} is not accepted (1 to {MaxChannels} channels, positive sides)");
        if (dstH <= 0 || dstW <= 0)
            throw new ArgumentOutOfRangeException(nameof(dstH), $"an input of {dstH}x{dstW} is empty");
        if ((long)srcC * srcH * srcW != source.Length)
            throw new ArgumentException($"the source holds {source.Length} bytes, not a {srcC}x{srcH}x{srcW} image", nameof(source));
        if ((long)srcC * dstH * dstW != destination.Length)
            throw new ArgumentException($"the destination holds {destination.Length} floats, not a {srcC}x{dstH}x{dstW} input", nameof(destination));
        if (epoch < 0 || sampleIndex < 0)
            throw new ArgumentOutOfRangeException(nameof(epoch), $"epoch {epoch} and sample {sampleIndex} must not be negative");
        if (_mean.Length != 0 && _mean.Length != srcC)
            throw new ArgumentException($"the normalization has {_mean.Length} mean and std value(s); the images have {srcC} channel(s)", nameof(srcC));
        bool pca = train && (Kinds & AugmentKind.PcaColor) != 0;
        if (pca && srcC != 3)
            throw new ArgumentException($"pca-color needs RGB images; these have {srcC} channel(s)", nameof(srcC));

        ulong e = (ulong)epoch, s = (ulong)sampleIndex;

        // Per channel, the whole value pipeline is affine in the byte: ((x / 255 + noise) - mean) / std = x * scale + shift.
        Span<float> scale = stackalloc float[srcC];
        Span<float> shift = stackalloc float[srcC];
        Span<float> noise = stackalloc float[srcC];
        noise.Clear();
        if (pca)
        {
            ReadOnlySpan<float> eigval = PcaEigenvalues, eigvec = PcaEigenvectors;
            Span<float> weight = stackalloc float[3];
            for (int j = 0; j < 3; j++)
                weight[j] = CounterRng.Normal(seed, e, s, CounterRng.Key(RngPurpose.ColorNoise, (uint)j)) * PcaAlphaStd * eigval[j];
            for (int c = 0; c < 3; c++)
                noise[c] = eigvec[3 * c] * weight[0] + eigvec[3 * c + 1] * weight[1] + eigvec[3 * c + 2] * weight[2];
        }
        for (int c = 0; c < srcC; c++)
        {
            if (_mean.Length == 0)
            {
                scale[c] = 1f / 255f;
                shift[c] = noise[c];
            }
            else
            {
                scale[c] = 1f / (255f * _std[c]);
                shift[c] = (noise[c] - _mean[c]) / _std[c];
            }
        }

        bool flip = train && (Kinds & AugmentKind.HorizontalFlip) != 0 &&
            CounterRng.Uniform(seed, e, s, CounterRng.Key(RngPurpose.Flip)) < 0.5f;

        switch (train ? Kinds & Geometric : AugmentKind.None)
        {
            case AugmentKind.PadCrop:
            {
                int paddedH = srcH + 2 * Pad, paddedW = srcW + 2 * Pad;
                if (paddedH < dstH || paddedW < dstW)
                    throw new ArgumentException($"pad-crop: {srcH}x{srcW} images padded by {Pad} ({paddedH}x{paddedW}) are smaller than the {dstH}x{dstW} input", nameof(dstH));
                int top = CounterRng.UniformInt(paddedH - dstH + 1, seed, e, s, CounterRng.Key(RngPurpose.Crop, 0)) - Pad;
                int left = CounterRng.UniformInt(paddedW - dstW + 1, seed, e, s, CounterRng.Key(RngPurpose.Crop, 1)) - Pad;
                CopyWindow(source, srcC, srcH, srcW, top, left, destination, dstH, dstW, flip, scale, shift);
                break;
            }
            case AugmentKind.RandomCrop:
            {
                if (srcH < dstH || srcW < dstW)
                    throw new ArgumentException($"random-crop: {srcH}x{srcW} images are smaller than the {dstH}x{dstW} input", nameof(dstH));
                int top = CounterRng.UniformInt(srcH - dstH + 1, seed, e, s, CounterRng.Key(RngPurpose.Crop, 0));
                int left = CounterRng.UniformInt(srcW - dstW + 1, seed, e, s, CounterRng.Key(RngPurpose.Crop, 1));
                CopyWindow(source, srcC, srcH, srcW, top, left, destination, dstH, dstW, flip, scale, shift);
                break;
            }
            case AugmentKind.RandomResizedCrop:
            {
                (int top, int left, int h, int w) = ResizedCropWindow(srcH, srcW, seed, e, s);
                Resample(source, srcC, srcH, srcW, top, left, h, w, destination, dstH, dstW, flip, scale, shift);
                break;
            }
            default:
            {
                if (srcH >= dstH && srcW >= dstW)
                {
                    int top = (int)Math.Round((srcH - dstH) / 2.0, MidpointRounding.ToEven);
                    int left = (int)Math.Round((srcW - dstW) / 2.0, MidpointRounding.ToEven);
                    CopyWindow(source, srcC, srcH, srcW, top, left, destination, dstH, dstW, flip, scale, shift);
                }
                else
                {
                    Resample(source, srcC, srcH, srcW, 0, 0, srcH, srcW, destination, dstH, dstW, flip, scale, shift);
                }
                break;
            }
        }
    }

    /// <summary>torchvision's <c>RandomResizedCrop.get_params</c> with the default scale and ratio, drawn from <see cref="CounterRng"/>.</summary>
    internal static (int Top, int Left, int Height, int Width) ResizedCropWindow(int height, int width, ulong seed, ulong epoch, ulong sample)
    {
        double area = (double)height * width;
        double logLo = Math.Log(MinRatio), logHi = Math.Log(MaxRatio);
        for (uint t = 0; t < ResizedCropTries; t++)
        {
            double target = area * (MinScale + (MaxScale - MinScale) * CounterRng.UniformDouble(seed, epoch, sample, CounterRng.Key(RngPurpose.ResizedCrop, 4 * t)));
            double ratio = Math.Exp(logLo + (logHi - logLo) * CounterRng.UniformDouble(seed, epoch, sample, CounterRng.Key(RngPurpose.ResizedCrop, 4 * t + 1)));
            int w = (int)Math.Round(Math.Sqrt(target * ratio), MidpointRounding.ToEven);
            int h = (int)Math.Round(Math.Sqrt(target / ratio), MidpointRounding.ToEven);
            if (w > 0 && w <= width && h > 0 && h <= height)
            {
                int top = CounterRng.UniformInt(height - h + 1, seed, epoch, sample, CounterRng.Key(RngPurpose.ResizedCrop, 4 * t + 2));
                int left = CounterRng.UniformInt(width - w + 1, seed, epoch, sample, CounterRng.Key(RngPurpose.ResizedCrop, 4 * t + 3));
                return (top, left, h, w);
            }
        }
        // torchvision's fallback: the centre crop, clamped to the ratio range.
        double inRatio = (double)width / height;
        int fw, fh;
        if (inRatio < MinRatio)
        {
            fw = width;
            fh = Math.Max(1, (int)Math.Round(fw / MinRatio, MidpointRounding.ToEven));
        }
        else if (inRatio > MaxRatio)
        {
            fh = height;
            fw = Math.Max(1, (int)Math.Round(fh * MaxRatio, MidpointRounding.ToEven));
        }
        else
        {
            fw = width;
            fh = height;
        }
        return ((height - fh) / 2, (width - fw) / 2, fh, fw);
    }

    /// <summary>Copies the dstH x dstW window at (top, left) (pixels outside the image read as 0), mirrored when flip, as x * scale + shift.</summary>
    private static void CopyWindow(ReadOnlySpan<byte> source, int channels, int height, int width, int top, int left,
        Span<float> destination, int dstH, int dstW, bool flip, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift)
    {
        int plane = height * width, outPlane = dstH * dstW;
        // The destination columns whose source column lies within the image.
        int x0 = Math.Clamp(-left, 0, dstW), x1 = Math.Clamp(width - left, 0, dstW);
        for (int c = 0; c < channels; c++)
        {
            ReadOnlySpan<byte> src = source.Slice(c * plane, plane);
            Span<float> dst = destination.Slice(c * outPlane, outPlane);
            float a = scale[c], b = shift[c];
            for (int y = 0; y < dstH; y++)
            {
                Span<float> row = dst.Slice(y * dstW, dstW);
                int sy = top + y;
                if ((uint)sy >= (uint)height || x0 >= x1)
                {
                    row.Fill(b);
                    continue;
                }
                ReadOnlySpan<byte> srcRow = src.Slice(sy * width + left + x0, x1 - x0);
                if (!flip)
                {
                    row.Slice(0, x0).Fill(b);
                    for (int x = 0; x < srcRow.Length; x++) row[x0 + x] = srcRow[x] * a + b;
                    row.Slice(x1).Fill(b);
                }
                else
                {
                    // Output column o shows window column dstW - 1 - o.
                    row.Slice(dstW - x0).Fill(b);
                    for (int x = 0; x < srcRow.Length; x++) row[dstW - 1 - x0 - x] = srcRow[x] * a + b;
                    row.Slice(0, dstW - x1).Fill(b);
                }
            }
        }
    }

    /// <summary>Resizes the h x w window at (top, left) to dstH x dstW by bilinear interpolation (half-pixel centres, no
    /// antialiasing), mirrored when flip, as x * scale + shift.</summary>
    private static void Resample(ReadOnlySpan<byte> source, int channels, int height, int width, int top, int left, int h, int w,
        Span<float> destination, int dstH, int dstW, bool flip, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift)
    {
        int plane = height * width, outPlane = dstH * dstW;
        float sy = (float)h / dstH, sx = (float)w / dstW;
        for (int c = 0; c < channels; c++)
        {
            ReadOnlySpan<byte> src = source.Slice(c * plane, plane);
            Span<float> dst = destination.Slice(c * outPlane, outPlane);
            float a = scale[c], b = shift[c];
            for (int y = 0; y < dstH; y++)
            {
                float fy = Math.Max((y + 0.5f) * sy - 0.5f, 0f);
                int y0 = Math.Min((int)fy, h - 1);
                int y1 = Math.Min(y0 + 1, h - 1);
                float ly = fy - y0;
                ReadOnlySpan<byte> r0 = src.Slice((top + y0) * width + left, w);
                ReadOnlySpan<byte> r1 = src.Slice((top + y1) * width + left, w);
                Span<float> row = dst.Slice(y * dstW, dstW);
                for (int x = 0; x < dstW; x++)
                {
                    float fx = Math.Max((x + 0.5f) * sx - 0.5f, 0f);
                    int x0 = Math.Min((int)fx, w - 1);
                    int x1 = Math.Min(x0 + 1, w - 1);
                    float lx = fx - x0;
                    float v = (1 - ly) * ((1 - lx) * r0[x0] + lx * r0[x1]) + ly * ((1 - lx) * r1[x0] + lx * r1[x1]);
                    row[flip ? dstW - 1 - x : x] = v * a + b;
                }
            }
        }
    }
}
