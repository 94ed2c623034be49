using System;
using System.Globalization;

namespace AlexNet.Aot.Cli;

/// <summary><c>alexnet make-input</c>: writes a deterministic test batch (for tests and the fixture demo).</summary>
internal static class MakeInputCommand
{
    public static readonly CommandSpec Spec = new(
        Name: "make-input",
        Synopsis: "make-input --rule fixture --shape NxCxHxW --output X.f32",
        Summary: "For testing: write a deterministic input batch as raw float32.",
        Details:
            "  --rule fixture   the PyTorch fixtures' input rule (shared/fixtures/torch/README.md): for flat index i,\n" +
            "                   h = ((i + 777 * 1000003) * 2654435761) mod 2^32, value = (h / 2^32 - 0.5) * 2\n" +
            "  --shape S        dimensions separated by x, e.g. 4x3x224x224\n" +
            "  --output X.f32   the file to write\n",
        ValueOptions: new[] { "--rule", "--shape", "--output" },
        Flags: Array.Empty<string>(),
        AllowsPositionals: false,
        Run: Run);

    private static int Run(ArgReader args)
    {
        string rule = args.Required("--rule");
        if (rule != "fixture")
            throw new UsageException($"make-input: --rule {rule}: unknown rule (known: fixture)");
        long count = ParseShape(args.Required("--shape"));
        string output = args.Required("--output");

        var data = GC.AllocateUninitializedArray<float>((int)count);
        FixtureRule(data);
        InputFiles.WriteF32("--output", output, data);
        return ExitCodes.Ok;
    }

    /// <summary>The fixtures' input rule, exactly as their README states it (64-bit integers, double arithmetic).</summary>
    internal static void FixtureRule(Span<float> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            ulong h = (((ulong)i + 777UL * 1000003UL) * 2654435761UL) & 0xFFFF_FFFFUL;
            data[i] = (float)((h / 4294967296.0 - 0.5) * 2.0);
        }
    }

    private static long ParseShape(string text)
    {
        string[] parts = text.Split('x');
        long count = 1;
        foreach (string part in parts)
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int d) || d < 1)
                throw new UsageException($"make-input: --shape {text}: expected positive whole numbers separated by x, e.g. 4x3x224x224");
            count *= d;
            if (count > Array.MaxLength)
                throw new UsageException($"make-input: --shape {text}: more than {Array.MaxLength} values");
        }
        return count;
    }
}
