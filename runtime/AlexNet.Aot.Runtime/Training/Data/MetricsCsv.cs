using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace AlexNet.Aot.Training;

/// <summary>One epoch of training, as the metrics file and plot record it.</summary>
/// <param name="Epoch">The epoch, counted from 1.</param>
/// <param name="LearningRate">The learning rate used in the epoch.</param>
/// <param name="TrainLoss">The mean training loss over the epoch's batches.</param>
/// <param name="TrainAccuracy">The fraction of training images classified right during the epoch, in [0, 1].</param>
/// <param name="ValidationLoss">The mean loss on the validation set after the epoch (NaN: none).</param>
/// <param name="ValidationAccuracy">The fraction of the validation set classified right, in [0, 1] (NaN: none).</param>
/// <param name="Seconds">The epoch's wall-clock time, in seconds.</param>
/// <param name="ImagesPerSecond">Training throughput: images trained on per second.</param>
public sealed record EpochMetrics(
    int Epoch,
    double LearningRate,
    double TrainLoss,
    double TrainAccuracy,
    double ValidationLoss,
    double ValidationAccuracy,
    double Seconds,
    double ImagesPerSecond);

/// <summary>
/// Reads and writes the per-epoch metrics as CSV: the header <see cref="Header"/>, then one line per epoch, numbers in
/// the invariant culture with round-trip precision (<c>NaN</c> for a missing value). Writes are atomic (a temporary
/// file renamed over the target), so a reader never sees half a file.
/// </summary>
public static class MetricsCsv
{
    /// <summary>The first line of a metrics file.</summary>
    public const string Header = "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second";

    private const int Columns = 8;

    /// <summary>Writes <paramref name="rows"/> to <paramref name="path"/>, replacing it atomically.</summary>
    /// <exception cref="WeightsException">The file cannot be written; the message starts with the path.</exception>
    public static void Write(string path, IReadOnlyList<EpochMetrics> rows)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(rows);
        var sb = new StringBuilder(Header).Append('\n');
        foreach (EpochMetrics r in rows)
        {
            ArgumentNullException.ThrowIfNull(r, nameof(rows));
            sb.Append(r.Epoch.ToString(CultureInfo.InvariantCulture));
            foreach (double v in new[] { r.LearningRate, r.TrainLoss, r.TrainAccuracy, r.ValidationLoss, r.ValidationAccuracy, r.Seconds, r.ImagesPerSecond })
                sb.Append(',').Append(v.ToString("R", CultureInfo.InvariantCulture));
            sb.Append('\n');
        }
        byte[] bytes = Encoding.UTF8.GetBytes(sb.ToString());
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Reads a metrics file written by <see cref="Write"/>.</summary>
    /// <exception cref="DatasetException">The file is missing or unreadable, its header is not <see cref="Header"/>, or a
    /// line has not 8 fields, a field is not a number, or an epoch is not a whole number; the message names the file and the line.</exception>
    public static List<EpochMetrics> Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new DatasetException(path, Directory.Exists(path) ? "is a directory, not a metrics file" : "file not found");
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new DatasetException(path, $"cannot read the file: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        if (lines.Length == 0 || lines[0].Trim() != Header)
            throw new DatasetException(path, $"line 1: expected the header '{Header}'{(lines.Length == 0 ? ", the file is empty" : "")}");
        var rows = new List<EpochMetrics>();
        var values = new double[Columns - 1];
        for (int n = 1; n < lines.Length; n++)
        {
            string line = lines[n].Trim();
            if (line.Length == 0) continue;
            string[] fields = line.Split(',');
            if (fields.Length != Columns)
                throw new DatasetException(path, $"line {n + 1}: {fields.Length} fields, expected {Columns} ({Header})");
            if (!int.TryParse(fields[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int epoch) || epoch < 0)
                throw new DatasetException(path, $"line {n + 1}: epoch '{fields[0]}' is not a whole number");
            for (int k = 1; k < Columns; k++)
                if (!double.TryParse(fields[k], NumberStyles.Float, CultureInfo.InvariantCulture, out values[k - 1]))
                    throw new DatasetException(path, $"line {n + 1}: {Header.Split(',')[k]} '{fields[k]}' is not a number");
            rows.Add(new EpochMetrics(epoch, values[0], values[1], values[2], values[3], values[4], values[5], values[6]));
        }
        return rows;
    }
}
