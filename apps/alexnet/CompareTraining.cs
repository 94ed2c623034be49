using System;
using System.Globalization;
using System.Text;
using AlexNet.Aot.Training;

namespace AlexNet.Aot.Cli;

/// <summary>
/// <c>alexnet compare --train</c>: two SGD steps on the input batch with PyTorch's reference settings (dropout off,
/// batch norm in training mode, lr 0.01, momentum 0.9, weight decay 5e-4), compared with the oracle's
/// <c>loss_step1</c>, <c>loss_step2</c>, <c>grad.KEY</c> and <c>after2.KEY</c> (shared/fixtures/torch/README.md).
/// Each tensor is measured as |ours − PyTorch|₂ / |PyTorch|₂; the check fails above the tolerance (default 1e-4, the
/// README's). This is how the native binaries' training kernels (each x64 level, and NEON under qemu) are checked.
/// </summary>
internal static class CompareTraining
{
    public const double DefaultTolerance = 1e-4;

    public static int Run(ModelEntry model, string weightsPath, float[] input, int batch, IWeightSource oracle, string oraclePath, int[] labels, double tolerance, string? map)
    {
        ModelInfo info = model.Info;
        if (labels.Length != batch)
            throw new UsageException($"compare: --labels has {labels.Length} labels; the batch has {batch} images");
        IWeightSource weights = ModelCommon.LoadWeights(weightsPath, info, map);
        using var trainer = new Trainer(info, weights, new TrainerOptions { MaxBatch = batch, Threads = 2, Dropout = false })
        {
            LearningRate = 0.01f,
            Momentum = 0.9f,
            WeightDecay = 5e-4f,
        };
        double worstGrad = 0, worstAfter = 0, worstLoss = 0;
        string worstGradKey = "", worstAfterKey = "";
        int gradients = 0, after = 0;
        float loss1 = trainer.ComputeGradients(input, labels, batch);
        worstLoss = Math.Max(worstLoss, Math.Abs(loss1 - Scalar(oracle, oraclePath, "loss_step1")));
        foreach (TrainableTensor t in trainer.Tensors)
        {
            // A convolution bias right before training-mode batch norm: the batch mean removes it, its true gradient
            // is zero and both sides hold rounding noise (its value after two steps is still compared).
            if (!t.Trainable || BiasBeforeBatchNorm(info, t.Key)) continue;
            double r = Ratio(t.Gradient, Tensor(oracle, oraclePath, "grad." + t.Key, t.Value.Length));
            gradients++;
            if (!(r <= worstGrad)) { worstGrad = r; worstGradKey = t.Key; }
        }
        trainer.ApplyGradients();
        float loss2 = trainer.ComputeGradients(input, labels, batch);
        worstLoss = Math.Max(worstLoss, Math.Abs(loss2 - Scalar(oracle, oraclePath, "loss_step2")));
        trainer.ApplyGradients();
        foreach (TrainableTensor t in trainer.Tensors)
        {
            if (t.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal) || !oracle.TryGet("after2." + t.Key, out _)) continue;
            double r = Ratio(t.Value, Tensor(oracle, oraclePath, "after2." + t.Key, t.Value.Length));
            after++;
            if (!(r <= worstAfter)) { worstAfter = r; worstAfterKey = t.Key; }
        }
        var sb = new StringBuilder();
        sb.Append($"{model.Name}, {batch} image(s), training kernels on {Trainer.KernelPath}: two SGD steps against PyTorch\n");
        sb.Append($"  loss before steps 1 and 2: {loss1:0.0000000}, {loss2:0.0000000} (largest |ours - PyTorch| {Sci(worstLoss)})\n");
        sb.Append($"  gradients: {gradients} tensors, worst |ours - PyTorch| / |PyTorch| {Sci(worstGrad)} ({worstGradKey})\n");
        sb.Append($"  after two steps: {after} tensors, worst {Sci(worstAfter)} ({worstAfterKey})\n");
        bool ok = worstGrad <= tolerance && worstAfter <= tolerance && worstLoss <= 1e-5 && gradients > 0 && after > 0;
        sb.Append($"tolerance {Sci(tolerance)} (loss 1e-05): {(ok ? "OK" : "TOO LARGE")}\n");
        Console.Out.Write(sb.ToString());
        if (!ok)
            throw new CliException($"compare --train: {model.Name} differs from {oraclePath}: gradients {Sci(worstGrad)}, weights after two steps {Sci(worstAfter)}, loss {Sci(worstLoss)}");
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

    private static bool BiasBeforeBatchNorm(ModelInfo info, string key)
    {
        foreach (LayerInfo layer in info.Layers)
        {
            if (layer.Kind != "conv" && layer.Kind != "dense") continue;
            OperationInfo[] ops = layer.Ops;
            if (ops.Length > 1 && ops[1].Kind == OperationKind.BatchNorm && ops[0].CheckpointPrefix + ".bias" == key) return true;
        }
        return false;
    }

    private static double Ratio(float[] ours, float[] theirs)
    {
        double d2 = 0, n2 = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = (double)ours[i] - theirs[i];
            d2 += d * d;
            n2 += (double)theirs[i] * theirs[i];
        }
        return Math.Sqrt(d2) / Math.Max(Math.Sqrt(n2), 1e-30);
    }

    private static float Scalar(IWeightSource oracle, string path, string name) => Tensor(oracle, path, name, 1)[0];

    private static float[] Tensor(IWeightSource oracle, string path, string name, int count)
    {
        if (!oracle.TryGet(name, out LoadedTensor t))
            throw new CliException($"--oracle {path}: no tensor '{name}' (a training oracle has loss_step1, loss_step2, grad.KEY and after2.KEY)");
        if (t.Data.Length != count)
            throw new CliException($"--oracle {path}: {name} has {t.Data.Length} floats; expected {count}");
        return t.Data;
    }

    private static string Sci(double x) => x.ToString("0.0e+00", CultureInfo.InvariantCulture);
}
