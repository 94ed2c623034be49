using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using AlexNet.Aot.Imaging;
using AlexNet.Aot.Training;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet classify</c>: the top classes of each image (a JPEG or PNG photo, or a preprocessed .f32), with probabilities.</summary>
internal static class ClassifyCommand
{
    public static readonly CommandSpec Spec = new(
        Name: "classify",
        Synopsis: "classify --model NAME [--weights FILE] [--top K] [--json] [--preprocess MODE] [--ten-crop] [--labels FILE] INPUT...",
        Summary: "Print the top classes of each image (JPEG, PNG or .f32) with their probabilities.",
        Details:
            "  --model NAME        a compiled-in model (alexnet info lists them)\n" +
            "  --map FILE       optional: rules MODEL_PREFIX = FILE_PREFIX for a checkpoint named otherwise\n" +
            "  --weights FILE      the model's weights (safetensors, PyTorch .pth or ONNX, told apart by content);\n                      default: the model's bundled weights (ALEXNET_WEIGHTS_DIR, weights/ beside the binary,\n                      model-spec/weights/)\n" +
            "  --top K             how many classes to print per image (default 5)\n" +
            "  --json              print a JSON array of {\"input\", \"top\": [{\"index\", \"label\", \"probability\"}]}\n" +
            "  --preprocess MODE   how photos become input:\n" +
            "                        torchvision  shorter side to 256 (antialiased bilinear), centre crop to the input\n" +
            "                                     size, [0,1], minus mean, over std (the default when the model's spec\n" +
            "                                     has normalize; inputs under 64 pixels are resized straight)\n" +
            "                        caffe        warp to 256x256, centre crop, BGR 0-255 minus mean 104,117,123 (BVLC weights;\n" +
            "                                     the default when the model's spec says preprocess caffe)\n" +
            "                        none         resize straight to the input size, [0,1] (the default otherwise)\n" +
            "  --ten-crop          average the probabilities of 10 crops (corners, centre, and their mirror images)\n" +
            "  --labels FILE       class names, one per line (default: the spec's labels, ImageNet's for 1000 classes,\n" +
            "                      else class numbers)\n" +
            "  INPUT               a JPEG or PNG photo (recognized by content, not by name), or an .f32 file:\n" +
            "                      one C*H*W raw little-endian float32 image, already preprocessed\n",
        ValueOptions: new[] { "--model", "--weights", "--map", "--top", "--preprocess", "--labels" },
        Flags: new[] { "--json", "--ten-crop" },
        AllowsPositionals: true,
        Run: Run);

    private static readonly string[] s_imageExtensions = { ".jpg", ".jpeg", ".jpe", ".jfif", ".png" };

    private static int Run(ArgReader args)
    {
        ModelEntry model = ModelCommon.FindModel(args.Required("--model"));
        string weightsPath = BundledWeights.Resolve("classify", model.Name, args.Optional("--weights"));
        int top = args.OptionalInt("--top", 1, int.MaxValue) ?? 5;
        bool json = args.Flag("--json");
        bool tenCrop = args.Flag("--ten-crop");
        ModelInfo info = model.Info;
        PreprocessMode mode = Preprocess.DefaultFor(info);
        string? modeText = args.Optional("--preprocess");
        if (modeText is not null && !Preprocess.TryParse(modeText, out mode))
            throw new UsageException($"classify: --preprocess '{modeText}' is not torchvision, caffe or none");
        if (args.Positionals.Count == 0)
            throw new UsageException("classify: give at least one INPUT.f32 or photo (JPEG, PNG)");
        if ((modeText is not null || tenCrop) && Preprocess.Problem(info, mode, tenCrop) is string explicitProblem)
            throw new UsageException($"classify: {explicitProblem}");
        // Weights with a new head (fine-tuned for other classes) run through the trainer's forward in evaluation mode.
        IWeightSource weights = ModelCommon.LoadWeights(weightsPath, info, args.Optional("--map"));
        ModelInfo? withNewHead = ModelCommon.NewHead(info, weights, weightsPath);
        if (withNewHead is not null) info = withNewHead;
        IClassLabels labels = Labels.For(info, args.Optional("--labels"));

        IReadOnlyList<string> paths = args.Positionals;
        foreach (string path in paths) InputFiles.RequireFile("INPUT", path);

        // Inputs are read, preprocessed and run in batches of whole inputs (an input's ten crops are never split),
        // so memory stays bounded however many photos are given; only the probabilities are kept.
        var probabilities = new float[paths.Count][];
        int cropsEach = tenCrop ? Preprocess.TenCrops : 1;
        int maxBatch = (int)Math.Clamp((long)paths.Count * cropsEach, 1, ModelCommon.ChunkImages);
        using (IDisposable runner = withNewHead is null
            ? model.Create(weights, maxBatch)
            : new Trainer(info, weights, new TrainerOptions { MaxBatch = maxBatch }))
        {
            var pending = new List<(int Index, float[] Data, int Crops)>();
            int pendingCrops = 0;
            for (int i = 0; i <= paths.Count; i++)
            {
                (float[] Data, int Crops) next = i < paths.Count ? ReadInput(paths[i], info, mode, tenCrop) : (Array.Empty<float>(), 0);
                if (pending.Count > 0 && (i == paths.Count || pendingCrops + next.Crops > maxBatch))
                {
                    Run(runner, info, pending, pendingCrops, probabilities);
                    pending.Clear();
                    pendingCrops = 0;
                }
                if (i < paths.Count)
                {
                    pending.Add((i, next.Data, next.Crops));
                    pendingCrops += next.Crops;
                }
            }
        }

        if (json)
            WriteJson(paths, probabilities, labels, top);
        else
            WriteText(paths, probabilities, labels, top);
        return ExitCodes.Ok;
    }

    /// <summary>Runs the pending inputs as one batch; each input's probabilities are the mean over its crops.</summary>
    private static void Run(IDisposable runner, ModelInfo info, List<(int Index, float[] Data, int Crops)> pending, int crops, float[][] probabilities)
    {
        int inLen = info.InputLength, classes = info.Classes;
        var batch = new float[(long)crops * inLen];
        int offset = 0;
        foreach (var input in pending)
        {
            input.Data.CopyTo(batch, (long)offset * inLen);
            offset += input.Crops;
        }
        var scores = new float[(long)crops * classes];
        if (runner is Network network) ModelCommon.Forward(network, batch, scores, crops, logits: true);
        else ((Trainer)runner).Evaluate(batch, crops, scores); // crops <= MaxBatch: batches are cut at it
        Kernels.SoftmaxRows(scores, crops, classes);
        offset = 0;
        foreach (var input in pending)
        {
            var mean = new float[classes];
            for (int k = 0; k < input.Crops; k++)
            {
                ReadOnlySpan<float> row = scores.AsSpan((offset + k) * classes, classes);
                for (int j = 0; j < classes; j++) mean[j] += row[j];
            }
            if (input.Crops > 1)
                for (int j = 0; j < classes; j++) mean[j] /= input.Crops;
            probabilities[input.Index] = mean;
            offset += input.Crops;
        }
    }

    /// <summary>One input as model input: a photo (by its magic bytes) decoded and preprocessed, or a raw .f32 image.</summary>
    private static (float[] Data, int Crops) ReadInput(string path, ModelInfo info, PreprocessMode mode, bool tenCrop)
    {
        InputFiles.RequireFile("INPUT", path);
        try
        {
            ImageFormat format = ImageLoader.SniffFile(path);
            if (format != ImageFormat.None)
            {
                if (Preprocess.Problem(info, mode, tenCrop) is string problem)
                    throw new CliException($"{path}: cannot prepare a photo for {info.Name}: {problem}");
                PlanarImage image = ImageLoader.Load(path, info.InputShape[0]);
                float[] prepared;
                try
                {
                    prepared = Preprocess.Prepare(image, info, mode, tenCrop);
                }
                catch (ArgumentException e)
                {
                    throw new CliException($"{path}: {e.Message.Split(" (Parameter", 2)[0]}");
                }
                return (prepared, prepared.Length / info.InputLength);
            }
        }
        catch (ImageException e)
        {
            throw new CliException(e.Message);
        }

        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (Array.IndexOf(s_imageExtensions, ext) >= 0)
            throw new CliException($"{path}: not a JPEG or PNG image by its content (its name says {ext}); photos must be JPEG or PNG, other inputs raw .f32");
        float[] raw = InputFiles.ReadF32("INPUT", path);
        if (raw.Length != info.InputLength)
            throw new CliException($"{path}: has {raw.Length} floats; one {ModelCommon.ShapeText(info.InputShape)} image of {info.Name} is {info.InputLength} (or give a JPEG or PNG photo)");
        return (raw, 1);
    }

    private static void WriteText(IReadOnlyList<string> paths, float[][] probabilities, IClassLabels labels, int top)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < paths.Count; i++)
        {
            float[] p = probabilities[i];
            sb.Append(paths[i]).Append('\n');
            foreach (int c in ModelCommon.TopK(p, top))
                sb.Append("  ").Append(ModelCommon.Number(p[c])).Append("  ").Append(labels.Label(c)).Append('\n');
        }
        Console.Out.Write(sb.ToString());
    }

    private static void WriteJson(IReadOnlyList<string> paths, float[][] probabilities, IClassLabels labels, int top)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartArray();
            for (int i = 0; i < paths.Count; i++)
            {
                float[] p = probabilities[i];
                writer.WriteStartObject();
                writer.WriteString("input", paths[i]);
                writer.WriteStartArray("top");
                foreach (int c in ModelCommon.TopK(p, top))
                {
                    writer.WriteStartObject();
                    writer.WriteNumber("index", c);
                    writer.WriteString("label", labels.Label(c));
                    writer.WriteNumber("probability", p[c]);
                    writer.WriteEndObject();
                }
                writer.WriteEndArray();
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        Console.Out.Write(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        Console.Out.Write('\n');
    }
}
