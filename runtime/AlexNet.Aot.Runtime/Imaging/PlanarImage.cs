using System;

namespace AlexNet.Aot.Imaging;

/// <summary>An image as float planes, channel-major: <c>Data[(c * Height + y) * Width + x]</c> ([C, H, W], as a model's input).</summary>
public sealed class PlanarImage
{
    /// <summary>Wraps <paramref name="data"/>, which must hold <c>channels * height * width</c> values.</summary>
    public PlanarImage(int channels, int height, int width, float[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (channels <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"an image of {channels}x{height}x{width} is empty");
        if ((long)channels * height * width != data.Length)
            throw new ArgumentException($"{data.Length} values do not make a {channels}x{height}x{width} image", nameof(data));
        Channels = channels;
        Height = height;
        Width = width;
        Data = data;
    }

    /// <summary>Creates a zero image.</summary>
    public PlanarImage(int channels, int height, int width)
        : this(channels, height, width, new float[checked(channels * height * width)]) { }

    /// <summary>The number of channels (3: RGB or BGR, 1: grayscale).</summary>
    public int Channels { get; }

    /// <summary>Rows.</summary>
    public int Height { get; }

    /// <summary>Columns.</summary>
    public int Width { get; }

    /// <summary>The values, [C, H, W] row-major.</summary>
    public float[] Data { get; }

    /// <summary>One channel's plane.</summary>
    public Span<float> Plane(int channel) => Data.AsSpan(channel * Height * Width, Height * Width);
}
