using System;

namespace AlexNet.Aot.Imaging;

/// <summary>How a decoded photo becomes a model's input.</summary>
public enum PreprocessMode
{
    /// <summary>
    /// torchvision's ImageNet evaluation transform: <c>Resize(256)</c> (the shorter side to 256, bilinear with
    /// antialiasing), <c>CenterCrop(224)</c> (or the model's input size), <c>ToTensor()</c> ([0, 1]) and
    /// <c>Normalize(mean, std)</c> with the model's mean and std. Inputs smaller than 64 pixels (Fashion-MNIST's
    /// 28x28) are resized straight to the input size instead, then normalized.
    /// </summary>
    Torchvision,

    /// <summary>
    /// Caffe's (BVLC reference AlexNet): the image warped to 256x256 (aspect ratio not kept), a centre crop of the
    /// input size (227 for the 2012 model), channels in B, G, R order, values 0-255, minus the per-channel ImageNet
    /// mean B=104, G=117, R=123. Three-channel models only.
    /// </summary>
    Caffe,

    /// <summary>The image resized straight to the input size, values in [0, 1], nothing else.</summary>
    None,
}

/// <summary>
/// Turns a decoded image (<see cref="ImageLoader"/>: planes in [0, 1], with the model's number of channels) into
/// model input, torchvision's or Caffe's way (<see cref="PreprocessMode"/>), with one centre crop or ten crops
/// (the four corners and the centre, and the same of the horizontally flipped image, as torchvision's <c>TenCrop</c>
/// and the AlexNet paper's test-time averaging).
/// <para>
/// The resize filter: separable linear interpolation with antialiasing, exactly the algorithm of Pillow's
/// <c>Image.resize(..., BILINEAR)</c> (<c>ImagingResample</c>) and of torchvision's tensor
/// <c>resize(..., antialias=True)</c>: output pixel i of an axis samples the source around
/// <c>center = (i + 0.5) * scale</c> (scale = in / out) with the triangle kernel <c>max(0, 1 - |t|)</c> stretched
/// by <c>max(scale, 1)</c> (so a downscale averages every source pixel it covers), over source pixels
/// <c>[(int)(center - support + 0.5), (int)(center + support + 0.5))</c> clamped to the image, weights
/// normalized to sum 1; the width is resized first, then the height. It runs in float32 throughout (Pillow rounds to
/// 8 bits between the passes and after them, so Pillow-made inputs may differ by up to about 1/255 before normalizing).
/// </para>
/// </summary>
public static class Preprocess
{
    /// <summary>torchvision's resize target for the shorter side, before a 224 crop.</summary>
    public const int ResizeSize = 256;

    /// <summary>Inputs whose height or width is below this are resized straight to the input size.</summary>
    public const int SmallInput = 64;

    /// <summary>The most pixels <see cref="ResizeShorterSide"/> makes (an aspect ratio of about 256:1 at 256); more is refused.</summary>
    public const long MaxResizedPixels = 16L * 1024 * 1024;

    /// <summary>The number of crops of <see cref="Prepare"/> with ten-crop on.</summary>
    public const int TenCrops = 10;

    /// <summary>Caffe's per-channel ImageNet mean, B, G, R, on the 0-255 scale.</summary>
    public static ReadOnlySpan<float> CaffeMeanBgr => new float[] { 104f, 117f, 123f };

    /// <summary>ImageNet's mean and std (torchvision), used in torchvision mode for a 3-channel model whose spec has no <c>normalize</c>.</summary>
    public static ReadOnlySpan<float> ImageNetMean => new float[] { 0.485f, 0.456f, 0.406f };

    /// <inheritdoc cref="ImageNetMean"/>
    public static ReadOnlySpan<float> ImageNetStd => new float[] { 0.229f, 0.224f, 0.225f };

    /// <summary>The mode a model gets by default: the one its spec's <c>preprocess</c> line names (caffe for the BVLC
    /// weights); without that line, torchvision's when its spec has mean and std, else a plain resize.</summary>
    public static PreprocessMode DefaultFor(ModelInfo model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Preprocess.Length > 0 && TryParse(model.Preprocess, out PreprocessMode named)) return named;
        return model.Mean.Length > 0 && model.Std.Length > 0 ? PreprocessMode.Torchvision : PreprocessMode.None;
    }

    /// <summary>Parses <c>torchvision</c>, <c>caffe</c> or <c>none</c> (case-insensitive).</summary>
    public static bool TryParse(string? text, out PreprocessMode mode)
    {
        switch (text?.ToLowerInvariant())
        {
            case "torchvision": mode = PreprocessMode.Torchvision; return true;
            case "caffe": mode = PreprocessMode.Caffe; return true;
            case "none": mode = PreprocessMode.None; return true;
            default: mode = PreprocessMode.Torchvision; return false;
        }
    }

    /// <summary>True when <paramref name="model"/>'s input is small enough to be resized straight (no resize-then-crop).</summary>
    public static bool IsSmallInput(ModelInfo model) => model.InputShape[1] < SmallInput || model.InputShape[2] < SmallInput;

    /// <summary>Why <paramref name="mode"/> (with ten crops when <paramref name="tenCrop"/>) cannot prepare inputs for
    /// <paramref name="model"/>, or null when it can.</summary>
    public static string? Problem(ModelInfo model, PreprocessMode mode, bool tenCrop)
    {
        ArgumentNullException.ThrowIfNull(model);
        int c = model.InputShape[0];
        if (c is not (1 or 3))
            return $"{model.Name} takes {c}-channel input; photos give 1 (grayscale) or 3 (RGB) channels";
        if (mode == PreprocessMode.Caffe && c != 3)
            return $"caffe preprocessing needs a 3-channel model; {model.Name} takes {c} channel(s)";
        if (tenCrop && mode == PreprocessMode.None)
            return "ten crops need torchvision or caffe preprocessing (none resizes straight to the input size)";
        if (tenCrop && IsSmallInput(model))
            return $"ten crops need an input of at least {SmallInput} pixels; {model.Name}'s {model.InputShape[1]}x{model.InputShape[2]} is resized straight";
        if (mode == PreprocessMode.Torchvision && c == 1 && model.Mean.Length == 0 && model.Std.Length == 0)
            return null;
        if (mode == PreprocessMode.Torchvision && model.Mean.Length > 0 && (model.Mean.Length != c || model.Std.Length != c))
            return $"{model.Name}'s normalize has {model.Mean.Length} mean and {model.Std.Length} std values for {c} channel(s)";
        return null;
    }

    /// <summary>
    /// Prepares one decoded image for <paramref name="model"/>: one input (<c>C*H*W</c> floats) or, with
    /// <paramref name="tenCrop"/>, ten of them back to back (average their probabilities).
    /// </summary>
    /// <param name="image">The decoded image, values in [0, 1], with the model's channels (<see cref="ImageLoader.Load(string, int)"/>).</param>
    /// <param name="model">The model (input shape, mean and std).</param>
    /// <param name="mode">The preprocessing.</param>
    /// <param name="tenCrop">Ten crops instead of the centre one.</param>
    /// <exception cref="ArgumentException">The mode does not fit the model (<see cref="Problem"/>), the image's channels differ from
    /// the model's, or its aspect ratio is too extreme for torchvision's resize (<see cref="MaxResizedPixels"/>).</exception>
    public static float[] Prepare(PlanarImage image, ModelInfo model, PreprocessMode mode, bool tenCrop = false)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(model);
        if (Problem(model, mode, tenCrop) is string problem)
            throw new ArgumentException(problem, nameof(mode));
        int c = model.InputShape[0], h = model.InputShape[1], w = model.InputShape[2];
        if (image.Channels != c)
            throw new ArgumentException($"the image has {image.Channels} channel(s); {model.Name} takes {c}", nameof(image));

        PlanarImage resized;
        bool caffe = mode == PreprocessMode.Caffe;
        if (mode == PreprocessMode.None || IsSmallInput(model))
            resized = Resize(image, h, w);
        else if (caffe)
            resized = Resize(image, Math.Max(ResizeSize, h), Math.Max(ResizeSize, w));
        else
            resized = ResizeShorterSide(image, ShorterSideTarget(h, w));

        int crops = tenCrop ? TenCrops : 1;
        int inLen = c * h * w;
        var output = new float[crops * inLen];
        if (!tenCrop)
        {
            (int top, int left) = caffe ? CaffeCenterOffset(resized, h, w) : CenterCropOffset(resized, h, w);
            Crop(resized, top, left, h, w, flip: false, output.AsSpan(0, inLen));
        }
        else
        {
            (int ct, int cl) = caffe ? CaffeCenterOffset(resized, h, w) : CenterCropOffset(resized, h, w);
            int bottom = resized.Height - h, right = resized.Width - w;
            // torchvision's TenCrop: five_crop(img) + five_crop(hflip(img)); five_crop is tl, tr, bl, br, centre.
            // A crop of the flipped image at left L is the flip of the crop at right - L.
            var offsets = new (int Top, int Left)[] { (0, 0), (0, right), (bottom, 0), (bottom, right), (ct, cl) };
            for (int i = 0; i < 5; i++)
            {
                Crop(resized, offsets[i].Top, offsets[i].Left, h, w, flip: false, output.AsSpan(i * inLen, inLen));
                Crop(resized, offsets[i].Top, right - offsets[i].Left, h, w, flip: true, output.AsSpan((5 + i) * inLen, inLen));
            }
        }

        for (int k = 0; k < crops; k++)
            Normalize(output.AsSpan(k * inLen, inLen), model, mode, h * w);
        return output;
    }

    /// <summary>The shorter-side target of torchvision mode for an input of <paramref name="h"/>x<paramref name="w"/>:
    /// 256 for inputs up to 256 pixels (224 and 227 alike), else the input size times 256/224.</summary>
    public static int ShorterSideTarget(int h, int w)
    {
        int crop = Math.Max(h, w);
        return crop <= ResizeSize ? ResizeSize : (int)Math.Round(crop * (double)ResizeSize / 224, MidpointRounding.AwayFromZero);
    }

    /// <summary>torchvision's <c>Resize(size)</c> with an int size: the shorter side becomes <paramref name="size"/>,
    /// the longer <c>(int)(size * long / short)</c> (truncated, as torchvision), with <see cref="Resize"/>'s filter.</summary>
    public static PlanarImage ResizeShorterSide(PlanarImage image, int size)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (size <= 0)
            throw new ArgumentOutOfRangeException(nameof(size), size, "the shorter side must be positive");
        int h = image.Height, w = image.Width;
        long outH, outW;
        if (w <= h)
        {
            outW = size;
            outH = (long)size * h / w;
        }
        else
        {
            outH = size;
            outW = (long)size * w / h;
        }
        if (outH * outW > MaxResizedPixels)
            throw new ArgumentException(
                $"a {w}x{h} image resized to {size} on its shorter side would be {outW}x{outH}: its aspect ratio is too extreme " +
                $"(at most {MaxResizedPixels} pixels after resizing)", nameof(image));
        return Resize(image, (int)Math.Max(outH, 1), (int)Math.Max(outW, 1));
    }

    /// <summary>torchvision's <c>CenterCrop</c> offsets: <c>round((H - h) / 2)</c>, <c>round((W - w) / 2)</c>, halves to even as Python's round.</summary>
    public static (int Top, int Left) CenterCropOffset(PlanarImage image, int h, int w) =>
        ((int)Math.Round((image.Height - h) / 2.0, MidpointRounding.ToEven), (int)Math.Round((image.Width - w) / 2.0, MidpointRounding.ToEven));

    /// <summary>Caffe's centre crop offsets: <c>(H - h) / 2</c>, <c>(W - w) / 2</c> in integer division.</summary>
    public static (int Top, int Left) CaffeCenterOffset(PlanarImage image, int h, int w) => ((image.Height - h) / 2, (image.Width - w) / 2);

    /// <summary>Resizes every channel to <paramref name="height"/>x<paramref name="width"/> with antialiased bilinear
    /// interpolation (Pillow's BILINEAR; see <see cref="Preprocess"/>). An unchanged size returns a copy.</summary>
    public static PlanarImage Resize(PlanarImage image, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (height <= 0 || width <= 0)
            throw new ArgumentOutOfRangeException(nameof(height), $"cannot resize to {height}x{width}");
        int c = image.Channels, inH = image.Height, inW = image.Width;
        var output = new PlanarImage(c, height, width);
        if (inH == height && inW == width)
        {
            image.Data.AsSpan().CopyTo(output.Data);
            return output;
        }

        Coefficients horizontal = Coefficients.For(inW, width);
        Coefficients vertical = Coefficients.For(inH, height);
        var temp = new float[inH * width];
        for (int ch = 0; ch < c; ch++)
        {
            ReadOnlySpan<float> src = image.Plane(ch);
            // Width first: each source row to `width` columns.
            for (int y = 0; y < inH; y++)
            {
                ReadOnlySpan<float> row = src.Slice(y * inW, inW);
                Span<float> dst = temp.AsSpan(y * width, width);
                for (int x = 0; x < width; x++)
                {
                    int start = horizontal.Start[x], count = horizontal.Count[x];
                    ReadOnlySpan<float> wts = horizontal.Weights.AsSpan(x * horizontal.Stride, count);
                    float sum = 0;
                    for (int k = 0; k < count; k++) sum += row[start + k] * wts[k];
                    dst[x] = sum;
                }
            }
            // Then the height: each output row mixes rows of temp.
            Span<float> outPlane = output.Plane(ch);
            for (int y = 0; y < height; y++)
            {
                int start = vertical.Start[y], count = vertical.Count[y];
                ReadOnlySpan<float> wts = vertical.Weights.AsSpan(y * vertical.Stride, count);
                Span<float> dst = outPlane.Slice(y * width, width);
                dst.Clear();
                for (int k = 0; k < count; k++)
                {
                    float wk = wts[k];
                    ReadOnlySpan<float> srcRow = temp.AsSpan((start + k) * width, width);
                    for (int x = 0; x < width; x++) dst[x] += srcRow[x] * wk;
                }
            }
        }
        return output;
    }

    /// <summary>The horizontally mirrored image.</summary>
    public static PlanarImage FlipHorizontal(PlanarImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var output = new PlanarImage(image.Channels, image.Height, image.Width);
        Crop(image, 0, 0, image.Height, image.Width, flip: true, output.Data);
        return output;
    }

    /// <summary>Copies the <paramref name="h"/>x<paramref name="w"/> window at (<paramref name="top"/>, <paramref name="left"/>)
    /// of every channel into <paramref name="destination"/> ([C, h, w]), mirrored left to right when <paramref name="flip"/>.</summary>
    public static void Crop(PlanarImage image, int top, int left, int h, int w, bool flip, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (top < 0 || left < 0 || h <= 0 || w <= 0 || top + h > image.Height || left + w > image.Width)
            throw new ArgumentOutOfRangeException(nameof(top), $"a {h}x{w} crop at ({top}, {left}) does not fit a {image.Height}x{image.Width} image");
        if (destination.Length != image.Channels * h * w)
            throw new ArgumentException($"the destination holds {destination.Length} values, not {image.Channels * h * w}", nameof(destination));
        for (int ch = 0; ch < image.Channels; ch++)
        {
            ReadOnlySpan<float> plane = image.Plane(ch);
            for (int y = 0; y < h; y++)
            {
                ReadOnlySpan<float> src = plane.Slice((top + y) * image.Width + left, w);
                Span<float> dst = destination.Slice((ch * h + y) * w, w);
                src.CopyTo(dst);
                if (flip) dst.Reverse();
            }
        }
    }

    private static void Normalize(Span<float> input, ModelInfo model, PreprocessMode mode, int planeLength)
    {
        int c = input.Length / planeLength;
        switch (mode)
        {
            case PreprocessMode.Caffe:
            {
                // Planes are R, G, B in [0, 1]; Caffe wants B, G, R in 0-255 minus the mean.
                ReadOnlySpan<float> mean = CaffeMeanBgr;
                float[] r = input.Slice(0, planeLength).ToArray();
                input.Slice(2 * planeLength, planeLength).CopyTo(input.Slice(0, planeLength)); // B to plane 0
                r.CopyTo(input.Slice(2 * planeLength, planeLength));                          // R to plane 2
                for (int ch = 0; ch < 3; ch++)
                {
                    Span<float> p = input.Slice(ch * planeLength, planeLength);
                    float m = mean[ch];
                    for (int i = 0; i < p.Length; i++) p[i] = p[i] * 255f - m;
                }
                break;
            }
            case PreprocessMode.Torchvision:
            {
                ReadOnlySpan<float> mean = model.Mean, std = model.Std;
                if (mean.Length == 0 || std.Length == 0)
                {
                    if (c != 3) break; // a grayscale model without normalize: [0, 1] as is
                    mean = ImageNetMean;
                    std = ImageNetStd;
                }
                for (int ch = 0; ch < c; ch++)
                {
                    Span<float> p = input.Slice(ch * planeLength, planeLength);
                    float m = mean[ch], s = std[ch];
                    for (int i = 0; i < p.Length; i++) p[i] = (p[i] - m) / s;
                }
                break;
            }
        }
    }

    /// <summary>Per output pixel of one axis: the first source pixel, how many, and their normalized weights.</summary>
    private sealed class Coefficients
    {
        public required int[] Start { get; init; }
        public required int[] Count { get; init; }
        public required float[] Weights { get; init; }
        public required int Stride { get; init; }

        /// <summary>Pillow's precompute_coeffs with the bilinear (triangle) filter, support 1.</summary>
        public static Coefficients For(int inSize, int outSize)
        {
            double scale = (double)inSize / outSize;
            double filterScale = Math.Max(scale, 1.0);
            double support = 1.0 * filterScale;
            int stride = (int)Math.Ceiling(support) * 2 + 1;
            var start = new int[outSize];
            var count = new int[outSize];
            var weights = new float[outSize * stride];
            var w = new double[stride];
            for (int i = 0; i < outSize; i++)
            {
                double center = (i + 0.5) * scale;
                int xmin = (int)(center - support + 0.5);
                if (xmin < 0) xmin = 0;
                int xmax = (int)(center + support + 0.5);
                if (xmax > inSize) xmax = inSize;
                int n = xmax - xmin;
                double total = 0;
                for (int k = 0; k < n; k++)
                {
                    double t = (k + xmin - center + 0.5) / filterScale;
                    double v = Math.Max(0.0, 1.0 - Math.Abs(t));
                    w[k] = v;
                    total += v;
                }
                for (int k = 0; k < n; k++)
                    weights[i * stride + k] = (float)(total == 0 ? 0 : w[k] / total);
                start[i] = xmin;
                count[i] = n;
            }
            return new Coefficients { Start = start, Count = count, Weights = weights, Stride = stride };
        }
    }
}
