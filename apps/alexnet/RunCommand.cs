using System;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet run</c>: a batch of raw float32 images in, [N, classes] float32 out.</summary>
internal static class RunCommand
{
    public static readonly CommandSpec Spec = new(
        Name: "run",
        Synopsis: "run --model NAME [--weights FILE] --input X.f32 [--batch N] --output Y.f32 [--logits]",
        Summary: "Run a batch: raw little-endian float32 NCHW images in, [N, classes] float32 out.",
        Details:
            "  --model NAME     a compiled-in model (alexnet info lists them)\n" +
            "  --map FILE       optional: rules MODEL_PREFIX = FILE_PREFIX for a checkpoint named otherwise\n" +
            "  --weights FILE   safetensors (F32, F16, BF16), PyTorch .pth (zip or legacy) or ONNX, told apart by content;\n                   keys as alexnet info --model NAME shows (ONNX graphs are matched to the spec node by node);\n                   default: the model's bundled weights (ALEXNET_WEIGHTS_DIR, weights/ beside the binary, model-spec/weights/)\n" +
            "  --input X.f32    N images of C*H*W floats each, NCHW, no header\n" +
            "  --batch N        the number of images; checked against the input's length (default: inferred from it)\n" +
            "  --output Y.f32   written with N rows of one value per class\n" +
            "  --logits         write the last layer's raw outputs even when the model ends in softmax\n",
        ValueOptions: new[] { "--model", "--weights", "--map", "--input", "--batch", "--output" },
        Flags: new[] { "--logits" },
        AllowsPositionals: false,
        Run: Run);

    private static int Run(ArgReader args)
    {
        ModelEntry model = ModelCommon.FindModel(args.Required("--model"));
        string weightsPath = BundledWeights.Resolve("run", model.Name, args.Optional("--weights"));
        string inputPath = args.Required("--input");
        string outputPath = args.Required("--output");
        int? batchArg = args.OptionalInt("--batch", 1, Network.MaxSupportedBatch);
        bool logits = args.Flag("--logits");

        float[] input = InputFiles.ReadF32("--input", inputPath);
        int batch = ModelCommon.ResolveBatch("--input", inputPath, input.Length, model.Info, batchArg);

        using Network network = ModelCommon.Open(model, weightsPath, batch, args.Optional("--map"));
        var output = new float[(long)batch * network.Classes];
        ModelCommon.Forward(network, input, output, batch, logits);
        InputFiles.WriteF32("--output", outputPath, output);
        return ExitCodes.Ok;
    }
}
