// The package sample (scripts/test-package.sh): the model generated from tiny.model by the package's
// source generator, with weights made by rule, run on one image. Exit code 0 only when the
// probabilities sum to 1 and the model has three classes.
using System;
using AlexNet.Aot;

namespace Sample;

internal static class Program
{
    private static int Main()
    {
        using Tiny net = Tiny.Create(new GeneratedWeights(Tiny.Metadata), maxBatch: 1, threads: 1);
        var input = new float[Tiny.ImageFloats];
        for (int i = 0; i < input.Length; i++) input[i] = (i % 7) / 7f - 0.5f;
        var probabilities = new float[net.Classes];
        net.Forward(input, probabilities, batch: 1);

        double sum = 0;
        foreach (float p in probabilities) sum += p;
        Console.WriteLine("probabilities: " + string.Join(" ", Array.ConvertAll(probabilities, p => p.ToString("F6", System.Globalization.CultureInfo.InvariantCulture))));
        Console.WriteLine($"sum: {sum:F6}");
        Console.WriteLine($"models in Sample.ModelCatalog: {Sample.ModelCatalog.All.Count} ({Sample.ModelCatalog.All[0].Name})");
        Console.WriteLine($"classes: {net.Classes}");

        bool ok = Math.Abs(sum - 1) < 1e-5 && net.Classes == 3 && Tiny.ClassCount == 3
            && Sample.ModelCatalog.All.Count == 1 && Array.TrueForAll(probabilities, p => p >= 0 && p <= 1);
        Console.WriteLine(ok ? "package sample: OK" : "package sample: FAIL");
        return ok ? 0 : 1;
    }
}
