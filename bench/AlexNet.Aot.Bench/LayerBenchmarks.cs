using System;
using System.Runtime.InteropServices;
using AlexNet.Aot.Models;
using BenchmarkDotNet.Attributes;

namespace AlexNet.Aot.Bench;

/// <summary>
/// Each generated layer line of alexnet-torchvision alone, one image on one thread: the kernels themselves
/// (im2col + GEMM + fused epilogue + pooling; dense product), with the same packed weights a session uses. The
/// "winograd" cases run conv2 to conv5 as a session does by default (Winograd F(2x2, 5x5) and F(4x4, 3x3)); the plain
/// names run the direct product, for comparison.
/// Multiply-adds per call are in <see cref="LayerInfo.MultiplyAdds"/> (GFLOP/s = 2 * MACs / time).
/// </summary>
[MemoryDiagnoser]
public class LayerBenchmarks
{
    private float[] _arena = null!, _input = null!, _output = null!, _w = null!, _b = null!;
    // Parsed once in Setup: splitting the parameter inside the benchmark allocated 32 to 112 bytes per call, which
    // BenchmarkDotNet's allocation column counted as the kernels'.
    private string _name = "";
    private bool _winograd;

    [Params("conv1", "conv2", "conv2 winograd", "conv3", "conv3 winograd", "conv4", "conv4 winograd", "conv5", "conv5 winograd", "fc6", "fc7", "fc8")]
    public string Layer { get; set; } = "conv1";

    [GlobalSetup]
    public void Setup()
    {
        _name = Layer.Split(' ')[0];
        _winograd = Layer.EndsWith(" winograd", StringComparison.Ordinal);
        ModelInfo info = AlexNetTorchvision.Metadata;
        var weights = new GeneratedWeights(info);
        LayerInfo layer = Array.Find(info.Layers, l => l.Name == _name) ?? throw new ArgumentException(Layer);
        weights.TryGet(layer.Parameters[0].Key, out LoadedTensor w);
        weights.TryGet(layer.Parameters[1].Key, out LoadedTensor b);
        _b = b.Data;
        _arena = new float[AlexNetTorchvision.WorkerFloats];
        _output = new float[64 * 9216];
        _input = new float[Math.Max(3 * 224 * 224, 9216)];
        var rng = new Random(7);
        for (int i = 0; i < _input.Length; i++) _input[i] = (float)rng.NextDouble();
        _w = Layer switch
        {
            "conv2 winograd" => AlexNetTorchvision.Conv2Layer.PackWinogradWeights(w.Data),
            "conv3 winograd" => AlexNetTorchvision.Conv3Layer.PackWinogradWeights(w.Data),
            "conv4 winograd" => AlexNetTorchvision.Conv4Layer.PackWinogradWeights(w.Data),
            "conv5 winograd" => AlexNetTorchvision.Conv5Layer.PackWinogradWeights(w.Data),
            "conv1" => AlexNetTorchvision.Conv1Layer.PackWeights(w.Data),
            "conv2" => AlexNetTorchvision.Conv2Layer.PackWeights(w.Data),
            "conv3" => AlexNetTorchvision.Conv3Layer.PackWeights(w.Data),
            "conv4" => AlexNetTorchvision.Conv4Layer.PackWeights(w.Data),
            "conv5" => AlexNetTorchvision.Conv5Layer.PackWeights(w.Data),
            _ => w.Data,
        };
    }

    [Benchmark]
    public void Run()
    {
        ref float arena = ref MemoryMarshal.GetArrayDataReference(_arena);
        ref float input = ref MemoryMarshal.GetArrayDataReference(_input);
        ref float output = ref MemoryMarshal.GetArrayDataReference(_output);
        bool wino = _winograd;
        switch (_name)
        {
            case "conv1": AlexNetTorchvision.Conv1Layer.Forward(ref arena, ref arena, ref input, ref output, _w, _b, 0, 1, null); break;
            case "conv2": AlexNetTorchvision.Conv2Layer.Forward(ref arena, ref arena, ref input, ref output, _w, _b, 0, 1, null, wino); break;
            case "conv3": AlexNetTorchvision.Conv3Layer.Forward(ref arena, ref arena, ref input, ref output, _w, _b, 0, 1, null, wino); break;
            case "conv4": AlexNetTorchvision.Conv4Layer.Forward(ref arena, ref arena, ref input, ref output, _w, _b, 0, 1, null, wino); break;
            case "conv5": AlexNetTorchvision.Conv5Layer.Forward(ref arena, ref arena, ref input, ref output, _w, _b, 0, 1, null, wino); break;
            case "fc6": AlexNetTorchvision.Fc6Layer.Forward(ref input, ref output, 1, _w, _b, 0, 1); break;
            case "fc7": AlexNetTorchvision.Fc7Layer.Forward(ref input, ref output, 1, _w, _b, 0, 1); break;
            default: AlexNetTorchvision.Fc8Layer.Forward(ref input, ref output, 1, _w, _b, 0, 1); break;
        }
    }
}
