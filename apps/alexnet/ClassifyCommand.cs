using System;
using System.Text;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet classify</c>: the top classes of each image, with probabilities.</summary>
internal static class ClassifyCommand
{
    public static readonly CommandSpec Spec = new(
        Name: "classify",
        Synopsis: "classify --model NAME --weights FILE [--top K] INPUT.f32...",
        Summary: "Print the top classes of each image with their probabilities.",
        Details:
            "  --model NAME     a compiled-in model (alexnet info lists them)\n" +
            "  --weights FILE   weights as .safetensors\n" +
            "  --top K          how many classes to print per image (default 5)\n" +
            "  INPUT.f32        one image each: C*H*W raw little-endian float32, already preprocessed\n",
        ValueOptions: new[] { "--model", "--weights", "--top" },
        Flags: Array.Empty<string>(),
        AllowsPositionals: true,
        Run: Run);

    private static int Run(ArgReader args)
    {
        ModelEntry model = ModelCommon.FindModel(args.Required("--model"));
        string weightsPath = args.Required("--weights");
        int top = args.OptionalInt("--top", 1, int.MaxValue) ?? 5;
        if (args.Positionals.Count == 0)
            throw new UsageException("classify: give at least one INPUT.f32 image");

        ModelInfo info = model.Info;
        int images = args.Positionals.Count;
        int inLen = info.InputLength, classes = info.Classes;
        var input = new float[(long)images * inLen];
        for (int i = 0; i < images; i++)
        {
            string path = args.Positionals[i];
            float[] image = InputFiles.ReadF32("INPUT", path);
            if (image.Length != inLen)
                throw new CliException($"{path}: has {image.Length} floats; one {ModelCommon.ShapeText(info.InputShape)} image of {info.Name} is {inLen}");
            image.CopyTo(input, (long)i * inLen);
        }

        using Network network = ModelCommon.Open(model, weightsPath, images);
        var scores = new float[(long)images * classes];
        ModelCommon.Forward(network, input, scores, images, logits: true);
        Kernels.SoftmaxRows(scores, images, classes);

        IClassLabels labels = Labels.For(info);
        var sb = new StringBuilder();
        for (int i = 0; i < images; i++)
        {
            ReadOnlySpan<float> p = scores.AsSpan(i * classes, classes);
            sb.Append(args.Positionals[i]).Append('\n');
            foreach (int c in ModelCommon.TopK(p, top))
                sb.Append("  ").Append(ModelCommon.Number(p[c])).Append("  ").Append(labels.Label(c)).Append('\n');
        }
        Console.Out.Write(sb.ToString());
        return ExitCodes.Ok;
    }
}
