using System;
using System.IO;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using AlexNet.Aot.Training;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet eval</c>: top-1 and top-5 accuracy, per-class accuracy and the confusion matrix of a model on a data set.</summary>
internal static class EvalCommand
{
    /// <summary>The most classes whose confusion matrix is printed as a table.</summary>
    private const int MaxTableClasses = 20;

    public static readonly CommandSpec Spec = new(
        Name: "eval",
        Synopsis: "eval --model NAME [--weights FILE] --data PATH [--split test|train] [--json] [--batch N] [--threads N] [--limit N]",
        Summary: "Measure top-1/top-5 accuracy, per-class accuracy and the confusion matrix on a labelled data set.",
        Details:
            "  --model NAME      a compiled-in model (alexnet info lists them)\n" +
            "  --weights FILE    weights or a training checkpoint (safetensors, .pth, ONNX); default: the model's bundled\n" +
            "                    weights (ALEXNET_WEIGHTS_DIR, weights/ beside the binary, model-spec/weights/)\n" +
            "  --map FILE        optional: rules MODEL_PREFIX = FILE_PREFIX for a checkpoint named otherwise\n" +
            "  --data PATH       a folder of Fashion-MNIST IDX files ('fashion-mnist': " + TrainingDataset.DefaultFashionMnistFolder + "),\n" +
            "                    or a folder with one sub-folder of images per class (sorted names are the classes)\n" +
            "  --split S         for IDX folders: test (t10k, the default) or train\n" +
            "  --json            print one JSON object: model, count, top1_accuracy, top5_accuracy, top1_error, top5_error,\n" +
            "                    loss, classes, per_class_accuracy, confusion (rows: true class, columns: predicted)\n" +
            "  --batch N         images per forward pass (default 64)\n" +
            "  --threads N       threads (default: one per processor)\n" +
            "  --limit N         only the first N images\n" +
            "Images are centre-cropped (or resized when smaller) to the input and normalized as the spec says.\n",
        ValueOptions: new[] { "--model", "--weights", "--data", "--split", "--batch", "--threads", "--limit", "--map" },
        Flags: new[] { "--json" },
        AllowsPositionals: false,
        Run: Run);

    private static int Run(ArgReader args)
    {
        ModelEntry model = ModelCommon.FindModel(args.Required("--model"));
        ModelInfo info = model.Info;
        string dataPath = args.Required("--data");
        bool json = args.Flag("--json");
        int batch = args.OptionalInt("--batch", 1, Network.MaxSupportedBatch) ?? ModelCommon.ChunkImages;
        int threads = args.OptionalInt("--threads", 0, 256) ?? 0;
        int? limit = args.OptionalInt("--limit", 1, int.MaxValue);
        string? split = args.Optional("--split");
        if (split is not null and not ("test" or "train"))
            throw new UsageException($"eval: --split '{split}' is not test or train");
        string weightsPath = BundledWeights.Resolve("eval", model.Name, args.Optional("--weights"));

        InputFiles.RequireFile("--weights", weightsPath);
        IWeightSource weights = WeightsFile.Load(weightsPath, info);
        string? mapPath = args.Optional("--map");
        if (mapPath is not null)
        {
            InputFiles.RequireFile("--map", mapPath);
            weights = KeyMap.Load(mapPath).Apply(weights, info);
        }

        string folder = DataCommon.Folder(dataPath);
        if (split is not null && Directory.Exists(folder) && !DataCommon.IsIdx(folder))
            throw new UsageException($"eval: --split applies to folders of IDX files; {dataPath} is a folder of class folders");
        // Weights trained with a new head (train --reinit LAST on data with another number of classes) run through the
        // trainer's forward, since the compiled model has the old number of outputs.
        ModelInfo? withNewHead = ModelCommon.NewHead(info, weights, weightsPath);
        bool newHead = withNewHead is not null;
        if (withNewHead is not null) info = withNewHead;
        TrainingDataset data = DataCommon.Limit(DataCommon.Load("--data", dataPath, info, trainSplit: split == "train", AugmentKind.None), limit);
        if (data.Count == 0)
            throw new CliException($"--data {dataPath}: holds no images");
        var augmentation = new Augmentation(AugmentKind.None, mean: info.Mean, std: info.Std);

        EvalResult result;
        try
        {
            if (newHead)
            {
                using var trainer = new Trainer(info, weights, new TrainerOptions { MaxBatch = Math.Min(batch, data.Count), Threads = threads });
                result = DataCommon.Evaluate(trainer, info, data, augmentation);
            }
            else
            {
                using Network network = model.Create(weights, new NetworkOptions { MaxBatch = Math.Min(batch, data.Count), Threads = threads });
                result = DataCommon.Evaluate(network, data, augmentation);
            }
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--data {dataPath}: its {data.Height}x{data.Width} images cannot be made into {ModelCommon.ShapeText(info.InputShape)} input: {e.Message.Split(" (Parameter", 2)[0]}");
        }

        string[] classes = data.ClassNames;
        if (json) WriteJson(info, data, result, classes);
        else WriteText(info, data, result, classes, weightsPath);
        return ExitCodes.Ok;
    }

    private static void WriteText(ModelInfo info, TrainingDataset data, EvalResult r, string[] classes, string weightsPath)
    {
        var sb = new StringBuilder();
        sb.Append(info.Name).Append(" (").Append(weightsPath).Append(") on ").Append(data.Origin).Append('\n');
        sb.Append("images        ").Append(ModelCommon.Count(r.Count)).Append('\n');
        sb.Append("top-1         ").Append(Percent(r.Top1Accuracy)).Append(" accuracy, ").Append(Percent(1 - r.Top1Accuracy)).Append(" error\n");
        sb.Append("top-5         ").Append(Percent(r.Top5Accuracy)).Append(" accuracy, ").Append(Percent(1 - r.Top5Accuracy)).Append(" error\n");
        sb.Append("loss          ").Append(ModelCommon.Number(r.Loss)).Append('\n');

        int width = 5;
        foreach (string c in classes) width = Math.Max(width, Math.Min(c.Length, 24));
        sb.Append("\nper class:\n");
        for (int c = 0; c < r.Classes; c++)
        {
            (long total, long right) = r.PerClass(c);
            sb.Append("  ").Append(c.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(3)).Append("  ")
              .Append(Clip(classes[c], 24).PadRight(width)).Append("  ").Append(ModelCommon.Count(total).PadLeft(7)).Append("  ")
              .Append(total == 0 ? "      -" : Percent((double)right / total).PadLeft(7)).Append('\n');
        }
        if (r.Classes <= MaxTableClasses)
        {
            sb.Append("\nconfusion (rows: true class, columns: predicted class):\n");
            int cell = 5;
            foreach (long v in r.Confusion) cell = Math.Max(cell, ModelCommon.Count(v).Length + 1);
            sb.Append("     ");
            for (int p = 0; p < r.Classes; p++) sb.Append(p.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(cell));
            sb.Append('\n');
            for (int t = 0; t < r.Classes; t++)
            {
                sb.Append(t.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(5));
                for (int p = 0; p < r.Classes; p++) sb.Append(ModelCommon.Count(r.Confusion[t * r.Classes + p]).PadLeft(cell));
                sb.Append('\n');
            }
        }
        else
        {
            sb.Append("\n(the confusion matrix of ").Append(r.Classes).Append(" classes is in --json)\n");
        }
        Console.Out.Write(sb.ToString());
    }

    private static void WriteJson(ModelInfo info, TrainingDataset data, EvalResult r, string[] classes)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("model", info.Name);
            w.WriteString("data", data.Origin);
            w.WriteNumber("count", r.Count);
            w.WriteNumber("top1_accuracy", r.Top1Accuracy);
            w.WriteNumber("top5_accuracy", r.Top5Accuracy);
            w.WriteNumber("top1_error", 1 - r.Top1Accuracy);
            w.WriteNumber("top5_error", 1 - r.Top5Accuracy);
            if (double.IsFinite(r.Loss)) w.WriteNumber("loss", r.Loss);
            else w.WriteNull("loss");
            w.WriteStartArray("classes");
            foreach (string c in classes) w.WriteStringValue(c);
            w.WriteEndArray();
            w.WriteStartArray("per_class_accuracy");
            for (int c = 0; c < r.Classes; c++)
            {
                (long total, long right) = r.PerClass(c);
                if (total == 0) w.WriteNullValue();
                else w.WriteNumberValue((double)right / total);
            }
            w.WriteEndArray();
            w.WriteStartArray("confusion");
            for (int t = 0; t < r.Classes; t++)
            {
                w.WriteStartArray();
                for (int p = 0; p < r.Classes; p++) w.WriteNumberValue(r.Confusion[t * r.Classes + p]);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        Console.Out.Write(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        Console.Out.Write('\n');
    }

    private static string Percent(double x) => double.IsNaN(x) ? "-" : ModelCommon.Number(100 * x, "0.00") + "%";

    private static string Clip(string s, int n) => s.Length <= n ? s : s.Substring(0, n - 1) + "…";
}
