using System;
using System.Globalization;
using System.IO;
using System.Text;
using AlexNet.Aot.Training;

namespace AlexNet.Aot.Cli;

/// <summary>
/// <c>alexnet compare --train</c>: the training kernels against a PyTorch training oracle (<see cref="OracleCheck"/>):
/// two SGD steps with the fixtures' settings, each gradient and each tensor after two steps measured as
/// |ours − PyTorch|₂ / |PyTorch|₂; the check fails above the tolerance (default 1e-4, the fixtures README's). This is
/// how the native binaries' training kernels (each x64 level, and NEON under qemu) are checked.
/// </summary>
internal static class CompareTraining
{
    public const double DefaultTolerance = 1e-4;

    public static int Run(ModelEntry model, string weightsPath, float[] input, int batch, IWeightSource oracle, string oraclePath, int[] labels, double tolerance, string? map)
    {
        if (labels.Length != batch)
            throw new UsageException($"compare: --labels has {labels.Length} labels; the batch has {batch} images");
        IWeightSource weights = ModelCommon.LoadWeights(weightsPath, model.Info, map);
        OracleCheckResult r;
        try
        {
            r = OracleCheck.Run(model.Info, weights, oracle, input, labels);
        }
        catch (InvalidDataException e)
        {
            throw new CliException("--oracle " + e.Message);
        }
        var sb = new StringBuilder();
        sb.Append($"{model.Name}, {batch} image(s), training kernels on {Trainer.KernelPath}: two SGD steps against PyTorch\n");
        sb.Append($"  loss before steps 1 and 2: {r.Loss1:0.0000000}, {r.Loss2:0.0000000} (largest |ours - PyTorch| {Sci(r.LossError)})\n");
        sb.Append($"  gradients: {r.Gradients} tensors, worst |ours - PyTorch| / |PyTorch| {Sci(r.WorstGradient)} ({r.WorstGradientKey})\n");
        sb.Append($"  after two steps: {r.After} tensors, worst {Sci(r.WorstAfter)} ({r.WorstAfterKey})\n");
        bool ok = r.Passed(tolerance);
        sb.Append($"tolerance {Sci(tolerance)} (loss 1e-05): {(ok ? "OK" : "TOO LARGE")}\n");
        Console.Out.Write(sb.ToString());
        if (!ok)
            throw new CliException($"compare --train: {model.Name} differs from {oraclePath}: gradients {Sci(r.WorstGradient)}, weights after two steps {Sci(r.WorstAfter)}, loss {Sci(r.LossError)}");
        return ExitCodes.Ok;
    }

    /// <summary>Parses <c>--labels 0,3,6,9</c>.</summary>
    public static int[] ParseLabels(string text, int classes)
    {
        string[] parts = text.Split(',');
        var labels = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out labels[i]) || labels[i] >= classes)
                throw new UsageException($"compare: --labels '{text}': '{parts[i]}' is not a class index 0..{classes - 1}");
        }
        return labels;
    }

    private static string Sci(double x) => x.ToString("0.0e+00", CultureInfo.InvariantCulture);
}
