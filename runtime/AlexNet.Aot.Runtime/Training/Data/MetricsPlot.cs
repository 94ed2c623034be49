using System;
using System.Collections.Generic;
using System.Globalization;
using SkiaSharp;

namespace AlexNet.Aot.Training;

/// <summary>
/// Draws the training curves as a PNG of <see cref="Width"/> x <see cref="Height"/> pixels with SkiaSharp: on the left
/// the loss per epoch, on the right the accuracy, each with the training and validation curves, axes with ticks, a grid,
/// a title and a legend. Text is drawn with a built-in 5x7 pixel font, so the picture is the same on every machine and
/// needs no installed fonts (SkiaSharp's Linux assets without dependencies have no font manager). Missing values (NaN,
/// infinities: e.g. no validation set) are left out of the curves.
/// </summary>
public static class MetricsPlot
{
    /// <summary>The picture's width in pixels.</summary>
    public const int Width = 900;

    /// <summary>The picture's height in pixels.</summary>
    public const int Height = 400;

    private static readonly SKColor TrainColor = new(31, 119, 180);       // matplotlib's first two colours
    private static readonly SKColor ValidationColor = new(255, 127, 14);
    private static readonly SKColor GridColor = new(225, 225, 225);
    private static readonly SKColor AxisColor = new(60, 60, 60);
    private const int TextScale = 2;

    /// <summary>Writes the plot of <paramref name="rows"/> to <paramref name="path"/> as PNG, replacing it atomically.
    /// No rows give empty axes.</summary>
    /// <exception cref="WeightsException">The file cannot be written; the message starts with the path.</exception>
    public static void WritePng(string path, IReadOnlyList<EpochMetrics> rows)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] png = RenderPng(rows);
        AtomicFile.Write(path, s => s.Write(png));
    }

    /// <summary>The plot of <paramref name="rows"/>, PNG-encoded.</summary>
    public static byte[] RenderPng(IReadOnlyList<EpochMetrics> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var epochs = new double[rows.Count];
        var trainLoss = new double[rows.Count];
        var valLoss = new double[rows.Count];
        var trainAcc = new double[rows.Count];
        var valAcc = new double[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            EpochMetrics r = rows[i] ?? throw new ArgumentException($"row {i} is null", nameof(rows));
            epochs[i] = r.Epoch;
            trainLoss[i] = r.TrainLoss;
            valLoss[i] = r.ValidationLoss;
            trainAcc[i] = r.TrainAccuracy;
            valAcc[i] = r.ValidationAccuracy;
        }

        using var surface = SKSurface.Create(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Premul))
            ?? throw new InvalidOperationException("SkiaSharp cannot create a raster surface");
        SKCanvas canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        int half = Width / 2;
        DrawPanel(canvas, new SKRect(0, 0, half, Height), "LOSS", epochs, trainLoss, valLoss, legendTop: true, clampUnit: false);
        DrawPanel(canvas, new SKRect(half, 0, Width, Height), "ACCURACY", epochs, trainAcc, valAcc, legendTop: false, clampUnit: true);
        using SKImage image = surface.Snapshot();
        using SKData data = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp cannot encode PNG");
        return data.ToArray();
    }

    private static void DrawPanel(SKCanvas canvas, SKRect panel, string title, double[] x, double[] train, double[] validation, bool legendTop, bool clampUnit)
    {
        // The plot area inside the panel: room for the y tick labels on the left, the title above, the x labels below.
        var area = new SKRect(panel.Left + 72, panel.Top + 36, panel.Right - 18, panel.Bottom - 52);

        (double xLo, double xHi, double xStep) = EpochRange(x);
        (double yLo, double yHi, double yStep) = ValueRange(train, validation, clampUnit);
        float X(double v) => (float)(area.Left + (v - xLo) / (xHi - xLo) * area.Width);
        float Y(double v) => (float)(area.Bottom - (v - yLo) / (yHi - yLo) * area.Height);

        using var grid = new SKPaint { Color = GridColor, StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        using var axis = new SKPaint { Color = AxisColor, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke };
        using var text = new SKPaint { Color = AxisColor, Style = SKPaintStyle.Fill };

        // Grid and ticks.
        int yDecimals = Decimals(yStep);
        for (int k = 0; ; k++)
        {
            double v = yLo + k * yStep;
            if (v > yHi + yStep * 1e-6) break;
            float py = Y(v);
            canvas.DrawLine(area.Left, py, area.Right, py, grid);
            canvas.DrawLine(area.Left - 5, py, area.Left, py, axis);
            string label = v.ToString("F" + yDecimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
            PixelFont.Draw(canvas, label, area.Left - 9, py - PixelFont.Height(TextScale) / 2f, TextScale, text, PixelFont.Align.Right);
        }
        for (int k = 0; ; k++)
        {
            double v = xLo + k * xStep;
            if (v > xHi + xStep * 1e-6) break;
            float px = X(v);
            canvas.DrawLine(px, area.Top, px, area.Bottom, grid);
            canvas.DrawLine(px, area.Bottom, px, area.Bottom + 5, axis);
            string label = v.ToString("0", CultureInfo.InvariantCulture);
            PixelFont.Draw(canvas, label, px, area.Bottom + 10, TextScale, text, PixelFont.Align.Center);
        }
        canvas.DrawRect(area, axis);

        // Titles.
        PixelFont.Draw(canvas, title, area.MidX, panel.Top + 12, TextScale, text, PixelFont.Align.Center);
        PixelFont.Draw(canvas, "EPOCH", area.MidX, area.Bottom + 30, TextScale, text, PixelFont.Align.Center);

        // Curves, clipped to the plot area and a margin (markers on the edges stay whole).
        canvas.Save();
        canvas.ClipRect(SKRect.Inflate(area, 5, 5));
        DrawSeries(canvas, x, validation, ValidationColor, X, Y);
        DrawSeries(canvas, x, train, TrainColor, X, Y);
        canvas.Restore();

        // Legend in the corner the curves usually leave free: top right for loss, bottom right for accuracy.
        float lineHeight = PixelFont.Height(TextScale) + 8;
        float boxW = 36 + PixelFont.Width("VALIDATION", TextScale) + 12, boxH = 2 * lineHeight + 8;
        float left = area.Right - boxW - 8;
        float top = legendTop ? area.Top + 8 : area.Bottom - boxH - 8;
        using (var fill = new SKPaint { Color = SKColors.White.WithAlpha(230), Style = SKPaintStyle.Fill })
            canvas.DrawRect(left, top, boxW, boxH, fill);
        using (var border = new SKPaint { Color = GridColor, Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
            canvas.DrawRect(left, top, boxW, boxH, border);
        LegendEntry(canvas, left + 8, top + 4 + lineHeight / 2, TrainColor, "TRAIN", text);
        LegendEntry(canvas, left + 8, top + 4 + lineHeight * 1.5f, ValidationColor, "VALIDATION", text);
    }

    private static void LegendEntry(SKCanvas canvas, float left, float midY, SKColor color, string label, SKPaint text)
    {
        using var line = new SKPaint { Color = color, StrokeWidth = 2.5f, Style = SKPaintStyle.Stroke, IsAntialias = true };
        using var dot = new SKPaint { Color = color, Style = SKPaintStyle.Fill, IsAntialias = true };
        canvas.DrawLine(left, midY, left + 22, midY, line);
        canvas.DrawCircle(left + 11, midY, 3, dot);
        PixelFont.Draw(canvas, label, left + 30, midY - PixelFont.Height(TextScale) / 2f, TextScale, text, PixelFont.Align.Left);
    }

    private static void DrawSeries(SKCanvas canvas, double[] x, double[] y, SKColor color, Func<double, float> px, Func<double, float> py)
    {
        using var line = new SKPaint { Color = color, StrokeWidth = 2.5f, Style = SKPaintStyle.Stroke, IsAntialias = true, StrokeCap = SKStrokeCap.Round };
        using var dot = new SKPaint { Color = color, Style = SKPaintStyle.Fill, IsAntialias = true };
        // Segments between consecutive finite values (round caps make the joins); a missing value breaks the curve.
        for (int i = 1; i < x.Length; i++)
            if (double.IsFinite(y[i - 1]) && double.IsFinite(y[i]))
                canvas.DrawLine(px(x[i - 1]), py(y[i - 1]), px(x[i]), py(y[i]), line);
        if (x.Length <= 60)
            for (int i = 0; i < x.Length; i++)
                if (double.IsFinite(y[i]))
                    canvas.DrawCircle(px(x[i]), py(y[i]), 3, dot);
    }

    /// <summary>The x range: the epochs, with whole-number ticks about every tenth of the span.</summary>
    private static (double Lo, double Hi, double Step) EpochRange(double[] x)
    {
        double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
        foreach (double v in x)
        {
            lo = Math.Min(lo, v);
            hi = Math.Max(hi, v);
        }
        if (x.Length == 0) (lo, hi) = (0, 1);
        if (hi <= lo) (lo, hi) = (lo - 1, hi + 1);
        double step = Math.Max(1, NiceStep((hi - lo) / 8));
        return (Math.Floor(lo / step) * step, Math.Ceiling(hi / step) * step, step);
    }

    /// <summary>The y range: the finite values of both series, widened to whole ticks (within [0, 1] for accuracies
    /// that are fractions; never below 0 for losses).</summary>
    private static (double Lo, double Hi, double Step) ValueRange(double[] a, double[] b, bool clampUnit)
    {
        double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
        foreach (double[] series in new[] { a, b })
            foreach (double v in series)
                if (double.IsFinite(v))
                {
                    lo = Math.Min(lo, v);
                    hi = Math.Max(hi, v);
                }
        if (lo > hi) (lo, hi) = (0, 1);
        double min = lo, max = hi;
        if (hi - lo < 1e-9)
        {
            double pad = Math.Max(Math.Abs(hi) * 0.05, 0.01);
            (lo, hi) = (lo - pad, hi + pad);
        }
        double step = NiceStep((hi - lo) / 5);
        lo = Math.Floor(lo / step + 1e-9) * step;
        hi = Math.Ceiling(hi / step - 1e-9) * step;
        if (min >= 0 && lo < 0) lo = 0;
        if (clampUnit && max <= 1 && hi > 1) hi = 1;
        if (hi <= lo) hi = lo + step;
        return (lo, hi, step);
    }

    /// <summary>The 1, 2 or 5 times a power of ten nearest above <paramref name="rough"/>.</summary>
    internal static double NiceStep(double rough)
    {
        if (!(rough > 0) || !double.IsFinite(rough)) return 1;
        double power = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        double f = rough / power;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
    }

    internal static int Decimals(double step) => Math.Clamp((int)Math.Ceiling(-Math.Log10(step) - 1e-9), 0, 8);
}

/// <summary>A 5x7 pixel font (digits, capital letters, a little punctuation; lower case is drawn as capitals), drawn as
/// squares of <c>scale</c> pixels: text that needs no font files.</summary>
internal static class PixelFont
{
    /// <summary>Where a text's x coordinate is.</summary>
    public enum Align
    {
        /// <summary>x is the text's left edge.</summary>
        Left,
        /// <summary>x is the text's centre.</summary>
        Center,
        /// <summary>x is the text's right edge.</summary>
        Right,
    }

    private const string Characters = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.-+%:/(),_=? ";

    // Seven rows per glyph, five bits per row, the leftmost pixel in bit 4.
    private static ReadOnlySpan<byte> Glyphs => new byte[]
    {
        0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, // 0
        0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, // 1
        0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, // 2
        0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, // 3
        0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, // 4
        0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, // 5
        0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, // 6
        0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, // 7
        0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, // 8
        0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, // 9
        0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, // A
        0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, // B
        0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, // C
        0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, // D
        0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, // E
        0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, // F
        0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, // G
        0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, // H
        0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, // I
        0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, // J
        0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, // K
        0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, // L
        0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, // M
        0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, // N
        0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, // O
        0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, // P
        0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, // Q
        0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, // R
        0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, // S
        0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, // T
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, // U
        0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, // V
        0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, // W
        0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, // X
        0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, // Y
        0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, // Z
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, // .
        0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, // -
        0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, // +
        0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, // %
        0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, // :
        0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, // /
        0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, // (
        0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, // )
        0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08, // ,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, // _
        0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, // =
        0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, // ?
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // space
    };

    /// <summary>The height of a line of text, in pixels.</summary>
    public static float Height(int scale) => 7 * scale;

    /// <summary>The width of <paramref name="text"/>, in pixels (six columns per character, less the last gap).</summary>
    public static float Width(string text, int scale) => text.Length == 0 ? 0 : (6 * text.Length - 1) * scale;

    /// <summary>Draws <paramref name="text"/> with its top at <paramref name="top"/>; unknown characters draw as '?'.</summary>
    public static void Draw(SKCanvas canvas, string text, float x, float top, int scale, SKPaint paint, Align align)
    {
        float left = align switch
        {
            Align.Center => x - Width(text, scale) / 2,
            Align.Right => x - Width(text, scale),
            _ => x,
        };
        left = MathF.Round(left);
        top = MathF.Round(top);
        ReadOnlySpan<byte> glyphs = Glyphs;
        for (int i = 0; i < text.Length; i++)
        {
            int g = Characters.IndexOf(char.ToUpperInvariant(text[i]));
            if (g < 0) g = Characters.IndexOf('?');
            for (int row = 0; row < 7; row++)
            {
                byte bits = glyphs[g * 7 + row];
                for (int col = 0; col < 5; col++)
                    if ((bits & (0x10 >> col)) != 0)
                        canvas.DrawRect(left + (6 * i + col) * scale, top + row * scale, scale, scale, paint);
            }
        }
    }
}
