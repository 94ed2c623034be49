using System;
using System.Globalization;
using System.Text;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet compare</c>: runs a batch and compares it with a reference tensor (PyTorch's logits).</summary>
internal static class CompareCommand
{
    public const double DefaultTolerance = 1e-4;

    public static readonly CommandSpec Spec = new(
        Name: "compare",
        Synopsis: "compare --model NAME --weights FILE --input X.f32 [--batch N] --oracle FILE [--tensor NAME] [--tolerance T] [--train --labels L,...]",
        Summary: "Run a batch and compare it with a reference tensor: top-5 side by side, largest difference; fails above the tolerance. With --train: two SGD steps against PyTorch's gradients and weights.",
        Details:
            "  --model, --weights, --input, --batch   as for run\n" +
            "  --oracle FILE    a .safetensors file holding the reference, e.g. tv-mini.oracle.safetensors\n" +
            "  --tensor NAME    the reference tensor, [N, classes] (default logits_eval); a name starting with\n" +
            "                   'probs' is compared with our probabilities, any other with our logits\n" +
            "  --tolerance T    the largest absolute difference accepted (default 1e-4)\n" +
            "  --train          instead: the training kernels. Two SGD steps on the batch with the fixtures' settings\n" +
            "                   (dropout off, lr 0.01, momentum 0.9, weight decay 5e-4) against the oracle's loss_step1/2,\n" +
            "                   grad.KEY and after2.KEY; the tolerance bounds |ours - PyTorch| / |PyTorch| per tensor\n" +
            "  --labels L,...   with --train: the batch's class labels (the fixtures': 0,3,6,9)\n",
        ValueOptions: new[] { "--model", "--weights", "--map", "--input", "--batch", "--oracle", "--tensor", "--tolerance", "--labels" },
        Flags: new[] { "--train" },
        AllowsPositionals: false,
        Run: Run);

    private static int Run(ArgReader args)
    {
        ModelEntry model = ModelCommon.FindModel(args.Required("--model"));
        string weightsPath = args.Required("--weights");
        string inputPath = args.Required("--input");
        string oraclePath = args.Required("--oracle");
        string tensorName = args.Optional("--tensor") ?? "logits_eval";
        int? batchArg = args.OptionalInt("--batch", 1, Network.MaxSupportedBatch);
        double tolerance = args.PositiveDouble("--tolerance", DefaultTolerance);
        bool probabilities = tensorName.StartsWith("probs", StringComparison.Ordinal);

        float[] input = InputFiles.ReadF32("--input", inputPath);
        int batch = ModelCommon.ResolveBatch("--input", inputPath, input.Length, model.Info, batchArg);
        int classes = model.Info.Classes;

        InputFiles.RequireFile("--oracle", oraclePath);
        IWeightSource oracle = SafeTensorsFile.Load(oraclePath);
        if (args.Flag("--train"))
        {
            string labelText = args.Optional("--labels") ?? throw new UsageException("compare: --train needs --labels (the batch's class labels, e.g. 0,3,6,9)");
            return CompareTraining.Run(model, weightsPath, input, batch, oracle, oraclePath, CompareTraining.ParseLabels(labelText, classes),
                args.Optional("--tolerance") is null ? CompareTraining.DefaultTolerance : tolerance, args.Optional("--map"));
        }
        if (!oracle.TryGet(tensorName, out LoadedTensor reference))
            throw new CliException($"--oracle {oraclePath}: no tensor '{tensorName}'");
        if (reference.Shape.Length != 2 || reference.Shape[0] != batch || reference.Shape[1] != classes || reference.Data.Length != batch * classes)
            throw new CliException($"--oracle {oraclePath}: {tensorName} has shape [{string.Join(", ", reference.Shape)}] ({reference.DType}); expected [{batch}, {classes}] floats");

        var ours = new float[batch * classes];
        using (Network network = ModelCommon.Open(model, weightsPath, batch, args.Optional("--map")))
            ModelCommon.Forward(network, input, ours, batch, logits: true);
        if (probabilities) Kernels.SoftmaxRows(ours, batch, classes);

        double maxDiff = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            double d = Math.Abs((double)ours[i] - reference.Data[i]);
            if (!(d <= maxDiff)) maxDiff = d; // NaN counts as the largest difference
        }

        // Show both sides as probabilities, whichever tensor is compared.
        float[] oursP = (float[])ours.Clone(), theirsP = (float[])reference.Data.Clone();
        if (!probabilities)
        {
            Kernels.SoftmaxRows(oursP, batch, classes);
            Kernels.SoftmaxRows(theirsP, batch, classes);
        }

        IClassLabels labels = Labels.For(model.Info);
        var sb = new StringBuilder();
        sb.Append($"{model.Name}, {batch} image(s), ISA path {BuildInfo.IsaPath}; top-5 as class:probability\n");
        for (int n = 0; n < batch; n++)
        {
            ReadOnlySpan<float> a = oursP.AsSpan(n * classes, classes), b = theirsP.AsSpan(n * classes, classes);
            sb.Append($"image {n}\n  ours     ").Append(Top(a, labels)).Append("\n  PyTorch  ").Append(Top(b, labels)).Append('\n');
        }
        string verdict = maxDiff <= tolerance ? "OK" : "TOO LARGE";
        sb.Append($"max |ours - reference| over {tensorName}: {Sci(maxDiff)} (tolerance {Sci(tolerance)}): {verdict}\n");
        Console.Out.Write(sb.ToString());

        if (!(maxDiff <= tolerance))
            throw new CliException($"compare: {tensorName} differs from {oraclePath} by up to {Sci(maxDiff)}, more than {Sci(tolerance)}");
        return ExitCodes.Ok;
    }

    private static string Top(ReadOnlySpan<float> p, IClassLabels labels)
    {
        var sb = new StringBuilder();
        foreach (int c in ModelCommon.TopK(p, 5))
            sb.Append(labels.Label(c)).Append(':').Append(ModelCommon.Number(p[c])).Append("  ");
        return sb.ToString().TrimEnd();
    }

    private static string Sci(double x) => x.ToString("0.0e+00", CultureInfo.InvariantCulture);
}
