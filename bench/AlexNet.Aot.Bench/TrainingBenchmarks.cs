using System;
using AlexNet.Aot.Models;
using AlexNet.Aot.Training;
using BenchmarkDotNet.Attributes;

namespace AlexNet.Aot.Bench;

/// <summary>
/// One training step (training-mode forward, softmax cross-entropy, backward through every operation, SGD with
/// momentum and weight decay) on 2 threads: alexnet-fmnist at its recipe's batch of 128 and alexnet-torchvision at
/// batch 32. ONNX Runtime does not train, so the peers are PyTorch's figures from DESIGN.md (measured on a comparable
/// machine, 2 pinned threads): 860 images/s for alexnet-fmnist and 0.94 s per torchvision step at batch 32.
/// Images per second = batch / (mean time per step). <see cref="Conv"/> <c>auto</c> trains the stride-1 3x3 and 5x5
/// convolutions by Winograd (the default), <c>direct</c> every convolution by the generated direct products.
/// <see cref="Kernels"/> <c>generated</c> runs the kernels the generator emitted for the model (the default),
/// <c>reference</c> the trainer's reference operations on the runtime's blocked GEMM (what <c>alexnet train --kernels
/// reference</c> runs): the same arithmetic, bit for bit.
/// </summary>
[MemoryDiagnoser]
public class TrainingBenchmarks
{
    private Trainer _trainer = null!;
    private float[] _input = null!;
    private int[] _labels = null!;

    [Params("alexnet-fmnist@128", "alexnet-torchvision@32")]
    public string Case { get; set; } = "alexnet-fmnist@128";

    [Params("auto", "direct")]
    public string Conv { get; set; } = "auto";

    [Params("generated", "reference")]
    public string Kernels { get; set; } = "generated";

    // Parsed once in Setup: parsing the parameter inside the benchmark allocated a string per step, which
    // BenchmarkDotNet's allocation column counted as the trainer's.
    private int _batch;

    [GlobalSetup]
    public void Setup()
    {
        string model = Case.Substring(0, Case.IndexOf('@'));
        ModelInfo info = (ModelCatalog.Find(model) ?? throw new ArgumentException(model)).Info;
        int batch = _batch = int.Parse(Case.Substring(Case.IndexOf('@') + 1), System.Globalization.CultureInfo.InvariantCulture);
        var options = new TrainerOptions
        {
            MaxBatch = batch,
            Threads = 2,
            Seed = 1,
            Convolutions = Conv == "direct" ? ConvolutionAlgorithm.Direct : ConvolutionAlgorithm.Auto,
        };
        // The reference operations are an internal option (the CLI's --kernels reference); set it as the CLI does.
        if (Kernels == "reference")
            typeof(TrainerOptions).GetProperty("ReferenceOps", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public)!
                .SetValue(options, true);
        _trainer = new Trainer(info, null, options) { LearningRate = 0.001f };
        _input = new float[batch * info.InputLength];
        var rng = new Random(3);
        for (int i = 0; i < _input.Length; i++) _input[i] = (float)(rng.NextDouble() * 2 - 1);
        _labels = new int[batch];
        for (int i = 0; i < batch; i++) _labels[i] = i % info.Classes;
    }

    [Benchmark]
    public float Step() => _trainer.Step(_input, _labels, _batch);

    [GlobalCleanup]
    public void Cleanup() => _trainer.Dispose();
}
