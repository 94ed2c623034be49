using System;
using System.IO;
using AlexNet.Aot.Models;
using AlexNet.Aot.Onnx;
using BenchmarkDotNet.Attributes;
using Microsoft.ML.OnnxRuntime;

namespace AlexNet.Aot.Bench;

/// <summary>
/// The whole network, AlexNet.Aot beside ONNX Runtime in the same run: the same generated weights (the fixtures'
/// hash rule), exported to ONNX for the peer. Both on 2 threads; ours also with bfloat16 dense weights, and with every
/// convolution as the direct product (no Winograd), for comparison. Inputs and outputs are preallocated; neither
/// side allocates per call on our part (ORT reuses bound OrtValues).
/// </summary>
[MemoryDiagnoser]
public class NetworkBenchmarks
{
    private Network _net = null!, _netBf16 = null!, _netDirect = null!;
    private float[] _input = null!, _output = null!;
    private InferenceSession _ort = null!;
    private OrtValue _ortIn = null!, _ortOut = null!;
    private OrtIoBinding _binding = null!;
    private RunOptions _runOptions = null!;
    private string _onnxPath = "";

    [Params("alexnet-torchvision", "alexnet-2012")]
    public string Model { get; set; } = "alexnet-torchvision";

    [Params(1, 64)]
    public int Batch { get; set; }

    [Params(2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        ModelEntry entry = ModelCatalog.Find(Model) ?? throw new ArgumentException("unknown model " + Model);
        var weights = new GeneratedWeights(entry.Info);
        _net = entry.Create(weights, Batch, Threads);
        _netBf16 = entry.Create(weights, new NetworkOptions { MaxBatch = Batch, Threads = Threads, DenseWeights = WeightPrecision.BFloat16 });
        _netDirect = entry.Create(weights, new NetworkOptions { MaxBatch = Batch, Threads = Threads, Convolutions = ConvolutionAlgorithm.Direct });
        _input = new float[Batch * entry.Info.InputLength];
        var rng = new Random(42);
        for (int i = 0; i < _input.Length; i++) _input[i] = (float)(rng.NextDouble() * 2 - 1);
        _output = new float[Batch * entry.Info.Classes];

        _onnxPath = Path.Combine(Path.GetTempPath(), $"alexnet-bench-{Model}-{Environment.ProcessId}.onnx");
        OnnxExporter.Export(entry.Info, weights, _onnxPath);
        var options = new SessionOptions
        {
            IntraOpNumThreads = Threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _ort = new InferenceSession(_onnxPath, options);
        long[] inShape = { Batch, entry.Info.InputShape[0], entry.Info.InputShape[1], entry.Info.InputShape[2] };
        _ortIn = OrtValue.CreateTensorValueFromMemory(_input, inShape);
        _ortOut = OrtValue.CreateTensorValueFromMemory(_output, new long[] { Batch, entry.Info.Classes });
        _binding = _ort.CreateIoBinding();
        _binding.BindInput("input", _ortIn);
        _binding.BindOutput("logits", _ortOut);
        _runOptions = new RunOptions();

        // Both sides compute the same logits (a wrong comparison is worse than none).
        _net.Forward(_input, _output, Batch, logits: true);
        float[] ours = (float[])_output.Clone();
        _ort.RunWithBinding(_runOptions, _binding);
        double worst = 0, scale = 1e-6;
        for (int i = 0; i < ours.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(ours[i] - _output[i]));
            scale = Math.Max(scale, Math.Abs(ours[i]));
        }
        if (worst > 1e-3 * scale)
            throw new InvalidOperationException($"{Model}: AlexNet.Aot and ONNX Runtime disagree (max |diff| {worst:g3}, logit scale {scale:g3})");
    }

    [Benchmark(Description = "AlexNet.Aot")]
    public void AlexNetAot() => _net.Forward(_input, _output, Batch, logits: true);

    [Benchmark(Description = "AlexNet.Aot bf16 dense")]
    public void AlexNetAotBf16() => _netBf16.Forward(_input, _output, Batch, logits: true);

    [Benchmark(Description = "AlexNet.Aot direct conv")]
    public void AlexNetAotDirect() => _netDirect.Forward(_input, _output, Batch, logits: true);

    [Benchmark(Description = "ONNX Runtime 1.31.1", Baseline = true)]
    public void OnnxRuntime() => _ort.RunWithBinding(_runOptions, _binding);

    [GlobalCleanup]
    public void Cleanup()
    {
        _net.Dispose();
        _netBf16.Dispose();
        _netDirect.Dispose();
        _binding.Dispose();
        _ortIn.Dispose();
        _ortOut.Dispose();
        _runOptions.Dispose();
        _ort.Dispose();
        try { File.Delete(_onnxPath); } catch (IOException) { }
    }
}
