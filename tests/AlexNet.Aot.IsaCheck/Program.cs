using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using AlexNet.Aot.Tests;
using AlexNet.Aot.Tests.Reference;

namespace AlexNet.Aot.IsaCheck;

/// <summary>
/// Checks the generated kernels on whatever ISA path this process gets (run it under DOTNET_EnableAVX512=0,
/// DOTNET_EnableAVX2=0 or DOTNET_EnableHWIntrinsic=0 to pick a lower rung). Prints <c>isa=PATH</c>, then one line per
/// check, <c>ok NAME MAXDIFF</c> or <c>FAIL NAME ...</c>; exits 0 only when every check passes.
/// Usage: AlexNet.Aot.IsaCheck [FIXTURES_DIR]   (else ALEXNET_FIXTURES, else shared/fixtures/torch above this program)
/// </summary>
public static class Program
{
    private static int s_failures;

    public static int Main(string[] args)
    {
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Console.WriteLine("isa=" + Isa.Path);
        Console.WriteLine($"# {Isa.Description}; Vector512 {Vector512.IsHardwareAccelerated}, Vector256 {Vector256.IsHardwareAccelerated}, " +
            $"Vector128 {Vector128.IsHardwareAccelerated}, Avx512F {Avx512F.IsSupported}, Avx2 {Avx2.IsSupported}, Fma {Fma.IsSupported}, Sse41 {Sse41.IsSupported}");

        // 1. The PyTorch fixtures, with their weights, against PyTorch's logits.
        string? fixtures = FindFixtures(args.Length > 0 ? args[0] : null);
        foreach (string model in new[] { "tv-mini", "paper-mini", "bn-mini" })
            Check("fixture " + model, () => Fixture(fixtures, model));

        // 2. Every odd-shape spec, with seeded random weights, against the scalar reference: batch 3 in a session of 5, and batch 1.
        foreach (ModelEntry entry in AlexNet.Aot.IsaCheck.ModelCatalog.All)
        {
            Check(entry.Name, () => ReferenceCheck.Compare(entry, batch: 3, maxBatch: 5, seed: 11, relativeTolerance: 1e-4));
            Check(entry.Name + " batch 1", () => ReferenceCheck.Compare(entry, batch: 1, maxBatch: 1, seed: 12, relativeTolerance: 1e-4));
        }

        // 3. LRN with activations of about 10 to 100 (alpha matters), and the shipped alexnet-fmnist (LRN over 28x28 on every vector width).
        ModelEntry strong = AlexNet.Aot.IsaCheck.ModelCatalog.Find("lrn-strong") ?? throw new InvalidOperationException("lrn-strong is not compiled in");
        Check("lrn-strong x100", () => ReferenceCheck.Compare(strong, batch: 2, maxBatch: 2, seed: 5, relativeTolerance: 1e-4, inputScale: 100));
        ModelEntry fmnist = AlexNet.Aot.Models.ModelCatalog.Find("alexnet-fmnist") ?? throw new InvalidOperationException("alexnet-fmnist is not compiled in");
        Check("alexnet-fmnist", () => ReferenceCheck.Compare(fmnist, batch: 2, maxBatch: 2, seed: 3, relativeTolerance: 1e-4));

        // 4. Training on this path (the trainer's GEMM and vector kernels): loss, every gradient and the weights after two
        //    SGD steps against PyTorch's, measured as the worst |ours - PyTorch| / |PyTorch| over tensors (L2 norms).
        Console.WriteLine("# training gemm=" + AlexNet.Aot.Training.Trainer.KernelPath);
        foreach (string model in new[] { "tv-mini", "paper-mini", "bn-mini" })
            Check("train " + model, () => Train(fixtures, model));

        // 5. The generated training kernels (ModelInfo.Training) against the trainer's reference operations on this rung:
        //    the loss and every gradient of a step with dropout on, bit for bit (conv bias gradients to 1e-6: another grouping).
        foreach (string model in new[] { "alexnet-fmnist", "alexnet-fmnist-bn", "bn-mini" })
            Check("generated " + model, () => Generated(model));
        //    Every convolution direct: the generated column gathers and scatters on this rung.
        foreach (string model in new[] { "alexnet-fmnist", "tv-mini" })
            Check("generated direct " + model, () => Generated(model, AlexNet.Aot.ConvolutionAlgorithm.Direct));

        Console.WriteLine(s_failures == 0 ? "all passed" : $"{s_failures} failed");
        return s_failures == 0 ? 0 : 1;
    }

    private static void Check(string name, Func<ReferenceCheck.Result> run)
    {
        try
        {
            ReferenceCheck.Result r = run();
            if (r.Ok) Console.WriteLine($"ok {name} {r.MaxDiff:g3} (max |logit| {r.Scale:g3}, tolerance {r.Tolerance:g3})");
            else
            {
                s_failures++;
                Console.WriteLine($"FAIL {name} {r}");
            }
        }
        catch (Exception e)
        {
            s_failures++;
            Console.WriteLine($"FAIL {name} {e.GetType().Name}: {e.Message.Replace('\n', ' ')}");
        }
    }

    private static ReferenceCheck.Result Fixture(string? root, string model)
    {
        if (root is null) throw new DirectoryNotFoundException("no fixtures: pass the shared/fixtures/torch folder as the first argument or set ALEXNET_FIXTURES");
        ModelEntry entry = AlexNet.Aot.Models.ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in");
        SafeTensorsFile weights = SafeTensorsFile.Load(Path.Combine(root, model, model + ".safetensors"));
        SafeTensorsFile oracle = SafeTensorsFile.Load(Path.Combine(root, model, model + ".oracle.safetensors"));
        if (!oracle.TryGet("logits_eval", out LoadedTensor expected)) throw new InvalidDataException(model + ": the oracle has no logits_eval");
        const int batch = 4;
        float[] input = FixtureInputs.Hash(batch * entry.Info.InputLength);
        var logits = new float[batch * entry.Info.Classes];
        using (Network net = entry.Create(weights, batch))
            net.Forward(input, logits, batch, logits: true);
        // PyTorch's logits are of order one: an absolute 1e-4, as the fixture tests use (tolerance = 1e-4 * (1 + 0)).
        ReferenceCheck.Result r = ReferenceCheck.Measure(model, batch, logits, expected.Data, 1e-4);
        return r with { Tolerance = 1e-4 };
    }

    private static ReferenceCheck.Result Train(string? root, string model)
    {
        if (root is null) throw new DirectoryNotFoundException("no fixtures: pass the shared/fixtures/torch folder as the first argument or set ALEXNET_FIXTURES");
        ModelInfo info = (AlexNet.Aot.Models.ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in")).Info;
        SafeTensorsFile weights = SafeTensorsFile.Load(Path.Combine(root, model, model + ".safetensors"));
        SafeTensorsFile oracle = SafeTensorsFile.Load(Path.Combine(root, model, model + ".oracle.safetensors"));
        float[] input = FixtureInputs.Hash(4 * info.InputLength);
        AlexNet.Aot.Training.OracleCheckResult r = AlexNet.Aot.Training.OracleCheck.Run(info, weights, oracle, input, new[] { 0, 3, 6, 9 });
        // The fixtures README: the L2 norm of the difference under 1e-4 of the tensor's, and the loss within 1e-5.
        double worst = Math.Max(Math.Max(r.WorstGradient, r.WorstAfter), r.LossError * 10);
        return new ReferenceCheck.Result(model, 4, r.Passed(1e-4) ? worst : double.PositiveInfinity, 1, 1e-4);
    }

    private static ReferenceCheck.Result Generated(string model, AlexNet.Aot.ConvolutionAlgorithm convolutions = AlexNet.Aot.ConvolutionAlgorithm.Auto)
    {
        ModelInfo info = (AlexNet.Aot.Models.ModelCatalog.Find(model) ?? throw new InvalidOperationException(model + " is not compiled in")).Info;
        const int batch = 3;
        var weights = new RandomWeights(info, 5);
        float[] input = RandomWeights.Uniform(batch * info.InputLength, 9);
        int[] labels = { 1, 4, 7 };
        var options = new AlexNet.Aot.Training.TrainerOptions { MaxBatch = batch, Threads = 2, Convolutions = convolutions };
        using var generated = new AlexNet.Aot.Training.Trainer(info, weights, options);
        using var reference = new AlexNet.Aot.Training.Trainer(info with { Training = null }, weights, options); // a description without kernels
        if (generated.GeneratedOperations.Count == 0) throw new InvalidOperationException(model + ": no operation runs generated kernels");
        float lg = generated.ComputeGradients(input, labels, batch), lr = reference.ComputeGradients(input, labels, batch);
        // MaxDiff: the worst relative L2 difference of a conv bias gradient, or infinity for any other bit that differs.
        double worst = BitConverter.SingleToInt32Bits(lg) == BitConverter.SingleToInt32Bits(lr) ? 0 : double.PositiveInfinity;
        for (int i = 0; i < generated.Tensors.Count; i++)
        {
            float[] g = generated.Tensors[i].Gradient, r = reference.Tensors[i].Gradient;
            bool convBias = generated.Tensors[i].Key.EndsWith(".bias", StringComparison.Ordinal) && generated.Tensors[i].Shape.Length == 1
                && Array.Exists(info.Layers, l => l.Kind == "conv" && l.Ops[0].CheckpointPrefix + ".bias" == generated.Tensors[i].Key);
            if (convBias) worst = Math.Max(worst, AlexNet.Aot.Training.OracleCheck.RelativeL2(g, r));
            else if (!g.AsSpan().SequenceEqual(r)) worst = double.PositiveInfinity;
        }
        return new ReferenceCheck.Result(model, batch, worst, 1, 1e-6);
    }

    private static string? FindFixtures(string? arg)
    {
        var candidates = new List<string>();
        if (!string.IsNullOrWhiteSpace(arg)) candidates.Add(arg);
        string? env = Environment.GetEnvironmentVariable("ALEXNET_FIXTURES");
        if (!string.IsNullOrWhiteSpace(env)) candidates.Add(env);
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            candidates.Add(Path.Combine(dir.FullName, "shared", "fixtures", "torch"));
            candidates.Add(Path.Combine(dir.FullName, "..", "shared", "fixtures", "torch"));
        }
        foreach (string c in candidates)
        {
            foreach (string d in new[] { c, Path.Combine(c, "torch"), Path.Combine(c, "fixtures", "torch"), Path.Combine(c, "shared", "fixtures", "torch") })
                if (Directory.Exists(Path.Combine(d, "tv-mini"))) return Path.GetFullPath(d);
            if (c == arg || c == env) return null; // an explicit folder without fixtures: say so rather than look elsewhere
        }
        return null;
    }
}
