using System;
using System.Collections.Generic;
using System.Globalization;
using SkiaSharp;

namespace AlexNet.Aot.Training;

/// <summary>One curve of a <see cref="SeriesPlot"/> panel: y values (NaN: missing) over the panel's x values.</summary>
internal sealed record PlotSeries(string Name, double[] Y, SKColor Color);

/// <summary>One panel of a <see cref="SeriesPlot"/>: a title, an x axis label, the x values, the curves, and an optional
/// vertical marker (e.g. the end of a warm-up). The y axis starts at zero unless a value is negative.</summary>
internal sealed record PlotPanel(string Title, string XLabel, double[] X, IReadOnlyList<PlotSeries> Series, double Marker = double.NaN);

/// <summary>
/// Line plots over a numeric x axis, drawn like <see cref="MetricsPlot"/> (SkiaSharp, the built-in pixel font, a grid,
/// a legend): a grid of panels, for curves such as the memory, descriptor and thread counts of a soak run.
/// </summary>
internal static class SeriesPlot
{
    /// <summary>matplotlib's first colours, for the curves of a panel in order.</summary>
    public static readonly SKColor[] Colors = { new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40) };

    private static readonly SKColor GridColor = new(225, 225, 225);
    private static readonly SKColor AxisColor = new(60, 60, 60);
    private static readonly SKColor MarkerColor = new(150, 150, 150);
    private const int TextScale = 2;

    /// <summary>Writes the panels, <paramref name="columns"/> to a row, each <paramref name="panelWidth"/> x
    /// <paramref name="panelHeight"/> pixels under a title line, to <paramref name="path"/> as PNG, replacing it atomically.</summary>
    /// <exception cref="WeightsException">The file cannot be written; the message starts with the path.</exception>
    public static void WritePng(string path, string title, IReadOnlyList<PlotPanel> panels, int columns = 2, int panelWidth = 560, int panelHeight = 340)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] png = RenderPng(title, panels, columns, panelWidth, panelHeight);
        AtomicFile.Write(path, s => s.Write(png));
    }

    /// <summary>The picture of <see cref="WritePng"/>, PNG-encoded.</summary>
    public static byte[] RenderPng(string title, IReadOnlyList<PlotPanel> panels, int columns = 2, int panelWidth = 560, int panelHeight = 340)
    {
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(panels);
        if (panels.Count == 0) throw new ArgumentException("no panels", nameof(panels));
        columns = Math.Clamp(columns, 1, panels.Count);
        int rows = (panels.Count + columns - 1) / columns;
        const int titleHeight = 36;
        int width = columns * panelWidth, height = titleHeight + rows * panelHeight;
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul))
            ?? throw new InvalidOperationException("SkiaSharp cannot create a raster surface");
        SKCanvas canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using (var text = new SKPaint { Color = AxisColor, Style = SKPaintStyle.Fill })
            PixelFont.Draw(canvas, title, width / 2f, 12, TextScale, text, PixelFont.Align.Center);
        for (int i = 0; i < panels.Count; i++)
        {
            float left = i % columns * panelWidth, top = titleHeight + i / columns * panelHeight;
            DrawPanel(canvas, new SKRect(left, top, left + panelWidth, top + panelHeight), panels[i]);
        }
        using SKImage image = surface.Snapshot();
        using SKData data = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp cannot encode PNG");
        return data.ToArray();
    }

    private static void DrawPanel(SKCanvas canvas, SKRect panel, PlotPanel p)
    {
        var area = new SKRect(panel.Left + 84, panel.Top + 30, panel.Right - 20, panel.Bottom - 52);
        (double xLo, double xHi, double xStep) = Range(p.X, zeroBased: false);
        var all = new List<double>();
        foreach (PlotSeries s in p.Series) all.AddRange(s.Y);
        (double yLo, double yHi, double yStep) = Range(all, zeroBased: true);
        float X(double v) => (float)(area.Left + (v - xLo) / (xHi - xLo) * area.Width);
        float Y(double v) => (float)(area.Bottom - (v - yLo) / (yHi - yLo) * area.Height);

        using var grid = new SKPaint { Color = GridColor, StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        using var axis = new SKPaint { Color = AxisColor, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke };
        using var text = new SKPaint { Color = AxisColor, Style = SKPaintStyle.Fill };

        int yDecimals = MetricsPlot.Decimals(yStep);
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
        bool thousands = xHi >= 10_000 && xStep >= 1000;
        for (int k = 0; ; k++)
        {
            double v = xLo + k * xStep;
            if (v > xHi + xStep * 1e-6) break;
            float px = X(v);
            canvas.DrawLine(px, area.Top, px, area.Bottom, grid);
            canvas.DrawLine(px, area.Bottom, px, area.Bottom + 5, axis);
            string label = thousands && v != 0
                ? (v / 1000).ToString("0.#", CultureInfo.InvariantCulture) + "K"
                : v.ToString("0.##", CultureInfo.InvariantCulture);
            PixelFont.Draw(canvas, label, px, area.Bottom + 10, TextScale, text, PixelFont.Align.Center);
        }
        canvas.DrawRect(area, axis);
        PixelFont.Draw(canvas, p.Title, area.MidX, panel.Top + 8, TextScale, text, PixelFont.Align.Center);
        PixelFont.Draw(canvas, p.XLabel, area.MidX, area.Bottom + 30, TextScale, text, PixelFont.Align.Center);

        canvas.Save();
        canvas.ClipRect(SKRect.Inflate(area, 3, 3));
        if (double.IsFinite(p.Marker) && p.Marker >= xLo && p.Marker <= xHi)
        {
            using var marker = new SKPaint
            {
                Color = MarkerColor, StrokeWidth = 1.5f, Style = SKPaintStyle.Stroke, PathEffect = SKPathEffect.CreateDash(new float[] { 6, 4 }, 0),
            };
            canvas.DrawLine(X(p.Marker), area.Top, X(p.Marker), area.Bottom, marker);
        }
        for (int s = p.Series.Count - 1; s >= 0; s--)
        {
            PlotSeries series = p.Series[s];
            using var line = new SKPaint { Color = series.Color, StrokeWidth = 2, Style = SKPaintStyle.Stroke, IsAntialias = true, StrokeCap = SKStrokeCap.Round };
            int n = Math.Min(p.X.Length, series.Y.Length);
            for (int i = 1; i < n; i++)
                if (double.IsFinite(series.Y[i - 1]) && double.IsFinite(series.Y[i]))
                    canvas.DrawLine(X(p.X[i - 1]), Y(series.Y[i - 1]), X(p.X[i]), Y(series.Y[i]), line);
            if (n == 1 && double.IsFinite(series.Y[0]))
                using (var dot = new SKPaint { Color = series.Color, Style = SKPaintStyle.Fill, IsAntialias = true })
                    canvas.DrawCircle(X(p.X[0]), Y(series.Y[0]), 3, dot);
        }
        canvas.Restore();

        // The legend, bottom right (the curves of a soak run are flat lines well above zero).
        if (p.Series.Count == 0) return;
        float lineHeight = PixelFont.Height(TextScale) + 8;
        float widest = 0;
        foreach (PlotSeries s in p.Series) widest = Math.Max(widest, PixelFont.Width(s.Name, TextScale));
        float boxW = 36 + widest + 12, boxH = p.Series.Count * lineHeight + 8;
        float left = area.Right - boxW - 8, top = area.Bottom - boxH - 8;
        using (var fill = new SKPaint { Color = SKColors.White.WithAlpha(230), Style = SKPaintStyle.Fill })
            canvas.DrawRect(left, top, boxW, boxH, fill);
        using (var border = new SKPaint { Color = GridColor, Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
            canvas.DrawRect(left, top, boxW, boxH, border);
        for (int s = 0; s < p.Series.Count; s++)
        {
            float midY = top + 4 + lineHeight * (s + 0.5f);
            using var line = new SKPaint { Color = p.Series[s].Color, StrokeWidth = 2.5f, Style = SKPaintStyle.Stroke, IsAntialias = true };
            canvas.DrawLine(left + 8, midY, left + 30, midY, line);
            PixelFont.Draw(canvas, p.Series[s].Name, left + 38, midY - PixelFont.Height(TextScale) / 2f, TextScale, text, PixelFont.Align.Left);
        }
    }

    /// <summary>The axis range of the finite values, widened to whole ticks of a 1-2-5 step (from zero when
    /// <paramref name="zeroBased"/> and no value is negative).</summary>
    private static (double Lo, double Hi, double Step) Range(IEnumerable<double> values, bool zeroBased)
    {
        double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
        foreach (double v in values)
            if (double.IsFinite(v))
            {
                lo = Math.Min(lo, v);
                hi = Math.Max(hi, v);
            }
        if (lo > hi) (lo, hi) = (0, 1);
        if (zeroBased && lo >= 0) lo = 0;
        if (hi - lo < 1e-9)
        {
            double pad = Math.Max(Math.Abs(hi) * 0.05, 1);
            (lo, hi) = (zeroBased && lo >= 0 ? 0 : lo - pad, hi + pad);
        }
        double step = MetricsPlot.NiceStep((hi - lo) / 5);
        lo = Math.Floor(lo / step + 1e-9) * step;
        hi = Math.Ceiling(hi / step - 1e-9) * step;
        if (hi <= lo) hi = lo + step;
        return (lo, hi, step);
    }
}
