using System;

namespace AlexNet.Aot.Training;

/// <summary>How far two SGD steps of ours are from PyTorch's (<see cref="OracleCheck.Run"/>).</summary>
/// <param name="Loss1">Our mean loss before step 1.</param>
/// <param name="Loss2">Our mean loss before step 2.</param>
/// <param name="LossError">The larger |ours − PyTorch| of the two losses.</param>
/// <param name="Gradients">Gradient tensors compared.</param>
/// <param name="WorstGradient">The largest |ours − PyTorch|₂ / |PyTorch|₂ over the gradients.</param>
/// <param name="WorstGradientKey">Its tensor.</param>
/// <param name="After">State-dict tensors compared after two steps (batch-norm running statistics included).</param>
/// <param name="WorstAfter">The largest |ours − PyTorch|₂ / |PyTorch|₂ over them.</param>
/// <param name="WorstAfterKey">Its tensor.</param>
public sealed record OracleCheckResult(float Loss1, float Loss2, double LossError, int Gradients, double WorstGradient, string WorstGradientKey,
    int After, double WorstAfter, string WorstAfterKey)
{
    /// <summary>True when every tensor is within <paramref name="tolerance"/> (the fixtures README: 1e-4) and both losses within 1e-5.</summary>
    public bool Passed(double tolerance) => Gradients > 0 && After > 0 && WorstGradient <= tolerance && WorstAfter <= tolerance && LossError <= 1e-5;
}

/// <summary>
/// Checks the training kernels against a PyTorch training oracle (shared/fixtures/torch/README.md): two SGD steps on one
/// batch with the fixtures' settings (dropout off, batch norm in training mode, lr 0.01, momentum 0.9, weight decay
/// 5e-4), compared with <c>loss_step1</c>, <c>loss_step2</c>, <c>grad.KEY</c> and <c>after2.KEY</c>. Used by
/// <c>alexnet compare --train</c> (every native binary, NEON under qemu included) and the ISA-matrix child process.
/// </summary>
/// <remarks>
/// The two steps run with direct convolutions. Where layers train by Winograd (the default), the loss and every
/// gradient of step 1 are compared once more on that path. Its parameters after two steps are not: Winograd rounds
/// differently from PyTorch's direct sums (a few 1e-6 of the activations' scale), and on the fixtures' small networks
/// that flips a max-pool near-tie or a ReLU sign in step 2, which moves step 2's gradients by a percent. Perturbing the
/// direct path's weights by 2e-6 moves it as much, so that comparison measures the network's conditioning, not the
/// kernels.
/// </remarks>
public static class OracleCheck
{
    /// <summary>Runs the two steps and measures them against <paramref name="oracle"/>.</summary>
    /// <exception cref="System.IO.InvalidDataException">the oracle lacks a tensor or has one of the wrong size.</exception>
    public static OracleCheckResult Run(ModelInfo model, IWeightSource weights, IWeightSource oracle, ReadOnlySpan<float> input, int[] labels, int threads = 2)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(oracle);
        ArgumentNullException.ThrowIfNull(labels);
        int batch = labels.Length;
        using var trainer = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = threads, Dropout = false, Convolutions = ConvolutionAlgorithm.Direct })
        {
            LearningRate = 0.01f,
            Momentum = 0.9f,
            WeightDecay = 5e-4f,
        };
        double worstGrad = 0, worstAfter = 0;
        string worstGradKey = "", worstAfterKey = "";
        int gradients = 0, after = 0;
        float loss1 = trainer.ComputeGradients(input, labels, batch);
        double lossError = Math.Abs(loss1 - Tensor(oracle, "loss_step1", 1)[0]);
        void CompareGradients(Trainer t, string suffix)
        {
            foreach (TrainableTensor p in t.Tensors)
            {
                // A bias right before training-mode batch norm: the batch mean removes it, so its true gradient is zero
                // and both sides hold rounding noise (its value after two steps is still compared).
                if (!p.Trainable || IsBiasBeforeBatchNorm(model, p.Key)) continue;
                double r = RelativeL2(p.Gradient, Tensor(oracle, "grad." + p.Key, p.Value.Length));
                gradients++;
                if (!(r <= worstGrad)) { worstGrad = r; worstGradKey = p.Key + suffix; }
            }
        }
        CompareGradients(trainer, "");
        using (var winograd = new Trainer(model, weights, new TrainerOptions { MaxBatch = batch, Threads = threads, Dropout = false }))
        {
            if (winograd.WinogradLayers.Count > 0)
            {
                float w1 = winograd.ComputeGradients(input, labels, batch);
                lossError = Math.Max(lossError, Math.Abs(w1 - Tensor(oracle, "loss_step1", 1)[0]));
                CompareGradients(winograd, " (winograd)");
            }
        }
        trainer.ApplyGradients();
        float loss2 = trainer.ComputeGradients(input, labels, batch);
        lossError = Math.Max(lossError, Math.Abs(loss2 - Tensor(oracle, "loss_step2", 1)[0]));
        trainer.ApplyGradients();
        foreach (TrainableTensor t in trainer.Tensors)
        {
            if (t.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal) || !oracle.TryGet("after2." + t.Key, out _)) continue;
            double r = RelativeL2(t.Value, Tensor(oracle, "after2." + t.Key, t.Value.Length));
            after++;
            if (!(r <= worstAfter)) { worstAfter = r; worstAfterKey = t.Key; }
        }
        return new OracleCheckResult(loss1, loss2, lossError, gradients, worstGrad, worstGradKey, after, worstAfter, worstAfterKey);
    }

    /// <summary>True when <paramref name="key"/> is the bias of a convolution or dense product directly followed by batch norm.</summary>
    public static bool IsBiasBeforeBatchNorm(ModelInfo model, string key)
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (LayerInfo layer in model.Layers)
        {
            OperationInfo[] ops = layer.Ops;
            if (ops.Length > 1 && ops[1].Kind == OperationKind.BatchNorm && ops[0].CheckpointPrefix + ".bias" == key) return true;
        }
        return false;
    }

    /// <summary>|ours − theirs|₂ / |theirs|₂ (NaN when either holds a NaN).</summary>
    public static double RelativeL2(ReadOnlySpan<float> ours, ReadOnlySpan<float> theirs)
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

    private static float[] Tensor(IWeightSource oracle, string name, int count)
    {
        if (!oracle.TryGet(name, out LoadedTensor t))
            throw new System.IO.InvalidDataException($"{oracle.Origin}: no tensor '{name}' (a training oracle has loss_step1, loss_step2, grad.KEY and after2.KEY)");
        if (t.Data.Length != count)
            throw new System.IO.InvalidDataException($"{oracle.Origin}: {name} has {t.Data.Length} floats; expected {count}");
        return t.Data;
    }
}
