using System;
using System.Collections.Generic;
using System.IO;
using AlexNet.Aot.Onnx;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet convert</c>: reads weights of any supported format (by content) and writes them as
/// safetensors or ONNX (by the output's extension).</summary>
internal static class ConvertCommand
{
    public static readonly CommandSpec Spec = new(
        Name: "convert",
        Synopsis: "convert [--model NAME] IN OUT",
        Summary: "Convert weights between formats (IN by content; OUT .safetensors or .onnx).",
        Details:
            "  --model NAME   the model the weights are for: checks every tensor's presence and shape, keeps\n" +
            "                 only the model's tensors; required for .onnx (the graph comes from the model)\n" +
            "  IN             weights: safetensors, a PyTorch checkpoint (.pth) or ONNX, told apart by content\n" +
            "  OUT            .safetensors (float32) or .onnx (IR 8, opset 17, input [N,C,H,W] -> logits);\n" +
            "                 replaced atomically if it exists\n",
        ValueOptions: new[] { "--model" },
        Flags: Array.Empty<string>(),
        AllowsPositionals: true,
        Run: Run);

    private static int Run(ArgReader args)
    {
        if (args.Positionals.Count != 2)
            throw new UsageException($"convert: give IN and OUT ({args.Positionals.Count} argument(s) given)");
        string input = args.Positionals[0], output = args.Positionals[1];
        string? modelName = args.Optional("--model");
        ModelEntry? model = modelName is null ? null : ModelCommon.FindModel(modelName);

        string ext = Path.GetExtension(output).ToLowerInvariant();
        if (ext is not (".safetensors" or ".onnx"))
            throw new UsageException($"convert: OUT {output}: unknown extension '{ext}' (write .safetensors or .onnx)");
        if (ext == ".onnx" && model is null)
            throw new UsageException("convert: writing ONNX needs --model NAME (the graph comes from the model)");
        if (Directory.Exists(output))
            throw new CliException($"OUT {output}: is a directory, not a file");
        string? dir = Path.GetDirectoryName(Path.GetFullPath(output));
        if (dir is not null && !Directory.Exists(dir))
            throw new CliException($"OUT {output}: folder {dir} does not exist");

        InputFiles.RequireFile("IN", input);
        IWeightSource weights = WeightsFile.Load(input);

        int written;
        if (ext == ".onnx")
        {
            try
            {
                OnnxExporter.Export(model!.Info, weights, output);
            }
            catch (NotSupportedException e)
            {
                throw new CliException($"{output}: {model!.Name} cannot be written as ONNX: {e.Message}");
            }
            written = CountModelTensors(model.Info, weights);
        }
        else if (model is not null)
        {
            WeightsExport.ToSafeTensors(model.Info, weights, output);
            written = CountModelTensors(model.Info, weights);
        }
        else
        {
            var tensors = new List<(string Key, int[] Shape, float[] Data)>();
            var skipped = new List<string>();
            foreach (string key in weights.Keys)
            {
                if (!weights.TryGet(key, out LoadedTensor t)) continue;
                long count = 1;
                foreach (int d in t.Shape) count *= d;
                if (t.Data.Length != count)
                {
                    skipped.Add($"{key} ({t.DType})");
                    continue;
                }
                tensors.Add((key, t.Shape, t.Data));
            }
            if (tensors.Count == 0)
                throw new CliException($"{input}: has no floating-point tensors to write");
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" };
            SafeTensorsFile.Write(output, tensors, metadata);
            written = tensors.Count;
            if (skipped.Count > 0)
                Console.Error.WriteLine($"alexnet: note: left out {skipped.Count} tensor(s) that are not floating-point: {string.Join(", ", skipped)}");
        }
        Console.Out.WriteLine($"wrote {output} ({written} tensors{(model is null ? "" : ", " + model.Name)})");
        return ExitCodes.Ok;
    }

    private static int CountModelTensors(ModelInfo model, IWeightSource weights)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int n = 0;
        foreach (ParameterInfo p in model.AllParameters)
            if (seen.Add(p.Key) && weights.TryGet(p.Key, out LoadedTensor t) && t.Data.Length == p.Count) n++;
        return n;
    }
}
