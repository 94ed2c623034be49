using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Threading.Tasks;
using Xunit;

namespace AlexNet.Aot.Tests;

/// <summary>
/// End-to-end tests of the <c>alexnet</c> CLI as a child process: exit codes, one-line messages
/// without stack traces, and tv-mini's logits against PyTorch's. They run the JIT build
/// (apps/alexnet/bin/CONFIGURATION/net10.0/alexnet.dll, built by the solution) through
/// <c>dotnet exec</c>, or the binary named by ALEXNET_CLI (a NativeAOT build, for instance).
/// </summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "alexnet-cli-" + Guid.NewGuid().ToString("N"));

    public CliTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string TvMiniWeights => Fixtures.Path("tv-mini", "tv-mini.safetensors");

    private static string TvMiniOracle => Fixtures.Path("tv-mini", "tv-mini.oracle.safetensors");

    private string Temp(string name) => Path.Combine(_dir, name);

    private string FixtureInput()
    {
        string path = Temp("x.f32");
        AssertOk(Cli.Run("make-input", "--rule", "fixture", "--shape", "4x3x224x224", "--output", path));
        return path;
    }

    // ---- usage ----

    [Fact]
    public void No_arguments_prints_usage_and_succeeds()
    {
        CliResult r = Cli.Run();
        AssertOk(r);
        Assert.Contains("Usage:", r.Stdout);
        Assert.Contains("alexnet run --model NAME", r.Stdout);
        Assert.Contains("tv-mini", r.Stdout);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void Help_prints_usage(string flag)
    {
        CliResult r = Cli.Run(flag);
        AssertOk(r);
        Assert.Contains("Usage:", r.Stdout);
    }

    [Fact]
    public void Command_help_prints_its_options()
    {
        CliResult r = Cli.Run("run", "--help");
        AssertOk(r);
        Assert.Contains("--weights FILE", r.Stdout);
    }

    [Theory]
    [InlineData("unknown command 'frobnicate'", "frobnicate")]
    [InlineData("unknown option '--bogus'", "info", "--bogus")]
    [InlineData("--model needs a value", "info", "--model")]
    [InlineData("--weights is required", "run", "--model", "tv-mini")]
    [InlineData("--batch 'four' is not a whole number", "run", "--model", "tv-mini", "--weights", "w", "--input", "x", "--output", "y", "--batch", "four")]
    [InlineData("--batch 0 is out of range", "run", "--model", "tv-mini", "--weights", "w", "--input", "x", "--output", "y", "--batch", "0")]
    [InlineData("--output given twice", "run", "--output", "a", "--output", "b")]
    [InlineData("give at least one INPUT.f32", "classify", "--model", "tv-mini", "--weights", "w")]
    [InlineData("--rule nope: unknown rule", "make-input", "--rule", "nope", "--shape", "1x2", "--output", "o")]
    [InlineData("--conv fast: expected auto or direct", "bench", "--model", "tv-mini", "--conv", "fast")]
    [InlineData("--conv fast: expected auto or direct", "train", "--model", "tv-mini", "--data", "nowhere", "--conv", "fast")]
    [InlineData("--conv fast: expected auto or direct", "soak", "--model", "tv-mini", "--mode", "train", "--conv", "fast")]
    [InlineData("--lr 'zero' is not a positive number", "soak", "--model", "tv-mini", "--mode", "train", "--lr", "zero")]
    public void Usage_errors_exit_2_with_one_clear_message(string expected, params string[] args)
    {
        CliResult r = Cli.Run(args);
        AssertFailure(r, 2, expected);
    }

    [Fact]
    public void Unknown_model_is_a_usage_error_listing_the_known_models()
    {
        CliResult r = Cli.Run("info", "--model", "no-such-net");
        AssertFailure(r, 2, "--model no-such-net: no such model");
        Assert.Contains("tv-mini", r.Stderr);
    }

    // ---- runtime errors ----

    [Fact]
    public void Missing_weights_file_exits_1_naming_it()
    {
        string missing = Temp("missing.safetensors");
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", missing, "--input", FixtureInput(), "--output", Temp("y.f32"));
        AssertFailure(r, 1, $"--weights {missing}: file not found");
    }

    [Fact]
    public void Malformed_weights_file_exits_1_naming_it()
    {
        string bad = Temp("bad.safetensors");
        File.WriteAllText(bad, "this is not a safetensors file");
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", bad, "--input", FixtureInput(), "--output", Temp("y.f32"));
        AssertFailure(r, 1, bad);
    }

    [Fact]
    public void Weights_of_another_layout_exit_1_listing_the_mismatches()
    {
        string paper = Fixtures.Path("paper-mini", "paper-mini.safetensors");
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", paper, "--input", FixtureInput(), "--output", Temp("y.f32"));
        AssertFailure(r, 1, "features.0.weight");
        Assert.Contains("[24, 3, 11, 11]", r.Stderr);
    }

    [Fact]
    public void Missing_input_file_exits_1_naming_it()
    {
        string missing = Temp("nope.f32");
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", missing, "--output", Temp("y.f32"));
        AssertFailure(r, 1, $"--input {missing}: file not found");
    }

    [Fact]
    public void Input_that_is_not_whole_images_exits_1()
    {
        string input = Temp("short.f32");
        File.WriteAllBytes(input, new byte[4 * 1000]);
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", input, "--output", Temp("y.f32"));
        AssertFailure(r, 1, "has 1000 floats, not a whole number of 3x224x224 images");
    }

    [Fact]
    public void Input_that_does_not_match_the_batch_exits_1()
    {
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", FixtureInput(), "--batch", "3", "--output", Temp("y.f32"));
        AssertFailure(r, 1, "has 602112 floats; --batch 3 of 3x224x224 needs 451584");
    }

    [Fact]
    public void Input_with_a_partial_float_exits_1()
    {
        string input = Temp("odd.f32");
        File.WriteAllBytes(input, new byte[4 * 150528 + 2]);
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", input, "--output", Temp("y.f32"));
        AssertFailure(r, 1, "is not a whole number of float32 values");
    }

    [Fact]
    public void Input_with_nan_or_infinity_exits_1_naming_the_file_and_the_float()
    {
        string input = Temp("nan.f32");
        var floats = new float[150528];
        floats[1234] = float.PositiveInfinity;
        File.WriteAllBytes(input, System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()).ToArray());
        CliResult r = Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", input, "--output", Temp("y.f32"));
        AssertFailure(r, 1, "--input " + input + ": holds Infinity at float 1234; inputs must be finite");
        AssertFailure(Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, input), 1, "INPUT " + input + ": holds Infinity at float 1234");
    }

    [Fact]
    public void Classify_input_of_the_wrong_length_exits_1_naming_it()
    {
        string input = FixtureInput(); // four images, not one
        CliResult r = Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, input);
        AssertFailure(r, 1, $"{input}: has 602112 floats; one 3x224x224 image of tv-mini is 150528");
    }

    // ---- results ----

    [Fact]
    public void Make_input_writes_the_fixture_rule()
    {
        string path = Temp("rule.f32");
        AssertOk(Cli.Run("make-input", "--rule", "fixture", "--shape", "2x3", "--output", path));
        float[] values = ReadF32(path);
        Assert.Equal(6, values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            ulong h = (((ulong)i + 777UL * 1000003UL) * 2654435761UL) % 4294967296UL;
            Assert.Equal((float)((h / 4294967296.0 - 0.5) * 2), values[i]);
        }
    }

    [Fact]
    public void Run_tv_mini_matches_pytorch_logits()
    {
        string output = Temp("logits.f32");
        AssertOk(Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", FixtureInput(), "--batch", "4", "--output", output, "--logits"));

        float[] ours = ReadF32(output);
        Assert.True(SafeTensorsFile.Load(TvMiniOracle).TryGet("logits_eval", out LoadedTensor theirs));
        Assert.Equal(new[] { 4, 10 }, theirs.Shape);
        Assert.Equal(theirs.Data.Length, ours.Length);
        for (int i = 0; i < ours.Length; i++)
            Assert.True(Math.Abs(ours[i] - theirs.Data[i]) <= 1e-4, $"logit {i}: ours {ours[i]}, PyTorch {theirs.Data[i]}");
    }

    [Fact]
    public void Run_infers_the_batch_and_chunks_large_batches_the_same()
    {
        // 4 images, no --batch: inferred; the result must equal the explicit batch's.
        string input = FixtureInput();
        string a = Temp("a.f32"), b = Temp("b.f32");
        AssertOk(Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", input, "--output", a, "--logits"));
        AssertOk(Cli.Run("run", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", input, "--batch", "4", "--output", b, "--logits"));
        Assert.Equal(ReadF32(b), ReadF32(a));
    }

    [Fact]
    public void Compare_tv_mini_against_the_oracle_succeeds_and_prints_both_top5()
    {
        CliResult r = Cli.Run("compare", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", FixtureInput(),
            "--batch", "4", "--oracle", TvMiniOracle, "--tensor", "logits_eval");
        AssertOk(r);
        Assert.Contains("PyTorch", r.Stdout);
        Assert.Contains("image 3", r.Stdout);
        Assert.Contains(": OK", r.Stdout);
    }

    [Fact]
    public void Compare_fails_with_exit_1_above_the_tolerance()
    {
        CliResult r = Cli.Run("compare", "--model", "tv-mini", "--weights", TvMiniWeights, "--input", FixtureInput(),
            "--oracle", TvMiniOracle, "--tensor", "logits_eval", "--tolerance", "1e-12");
        AssertFailure(r, 1, "more than 1.0e-12");
    }

    [Fact]
    public void Classify_prints_top5_probabilities_per_image()
    {
        float[] batch = ReadF32(FixtureInput());
        string image = Temp("image0.f32");
        File.WriteAllBytes(image, MemoryMarshal.AsBytes(batch.AsSpan(0, 3 * 224 * 224)).ToArray());

        CliResult r = Cli.Run("classify", "--model", "tv-mini", "--weights", TvMiniWeights, image);
        AssertOk(r);
        string[] lines = r.Stdout.TrimEnd().Split('\n');
        Assert.Equal(6, lines.Length);
        Assert.Equal(image, lines[0]);
        // PyTorch's top class for image 0 of the fixture batch is 4 (probs_eval).
        Assert.EndsWith("  4", lines[1]);
    }

    [Fact]
    public void Info_json_describes_the_isa_and_every_layer()
    {
        CliResult r = Cli.Run("info", "--model", "tv-mini", "--json");
        AssertOk(r);
        using JsonDocument doc = JsonDocument.Parse(r.Stdout);
        JsonElement isa = doc.RootElement.GetProperty("isa");
        Assert.Contains(isa.GetProperty("path").GetString(), new[] { "avx512", "avx2", "neon", "sse", "scalar" });
        if (Cli.IsJit)
            Assert.Equal(Isa.Path, isa.GetProperty("path").GetString()); // same runtime, same CPU: same path
        JsonElement model = doc.RootElement.GetProperty("models")[0];
        Assert.Equal("tv-mini", model.GetProperty("name").GetString());
        Assert.Equal(10, model.GetProperty("classes").GetInt32());
        JsonElement layers = model.GetProperty("layers");
        Assert.Equal(8, layers.GetArrayLength());
        JsonElement conv1 = layers[0].GetProperty("parameters")[0];
        Assert.Equal("features.0.weight", conv1.GetProperty("key").GetString());
        Assert.Equal(new[] { 16, 3, 11, 11 }, conv1.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(new[] { "direct", "winograd", "winograd", "winograd", "winograd" },
            layers.EnumerateArray().Take(5).Select(l => l.GetProperty("algorithm").GetString()).ToArray());
    }

    [Theory]
    [InlineData("auto", "winograd")]
    [InlineData("direct", "direct")]
    public void Bench_json_says_how_each_convolution_ran(string conv, string conv3Algorithm)
    {
        string json = Temp("bench.json");
        CliResult r = Cli.Run("bench", "--model", "tv-mini", "--threads", "1", "--iterations", "2", "--conv", conv, "--json", json);
        AssertOk(r);
        Assert.Contains("convolutions " + conv, r.Stdout);
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal(conv, doc.RootElement.GetProperty("conv").GetString());
        JsonElement layers = doc.RootElement.GetProperty("layers");
        Assert.Equal("direct", layers[0].GetProperty("algorithm").GetString());
        Assert.Equal(conv3Algorithm, layers[2].GetProperty("algorithm").GetString());
        Assert.Equal("dense", layers[7].GetProperty("algorithm").GetString());
        Assert.True(doc.RootElement.GetProperty("total").GetProperty("ms_per_batch").GetDouble() > 0);
    }

    [Fact]
    public void Info_lists_the_models_and_the_isa_path()
    {
        CliResult r = Cli.Run("info");
        AssertOk(r);
        Assert.Contains(Cli.IsJit ? "ISA path: " + Isa.Path : "ISA path: ", r.Stdout);
        Assert.Contains("tv-mini", r.Stdout);
    }

    // ---- helpers ----

    private static float[] ReadF32(string path) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();

    private static void AssertOk(CliResult r) =>
        Assert.True(r.ExitCode == 0, $"exit code {r.ExitCode}\nstdout:\n{r.Stdout}\nstderr:\n{r.Stderr}");

    private static void AssertFailure(CliResult r, int exitCode, string expected)
    {
        Assert.True(r.ExitCode == exitCode, $"exit code {r.ExitCode}, expected {exitCode}\nstdout:\n{r.Stdout}\nstderr:\n{r.Stderr}");
        Assert.Contains(expected, r.Stderr);
        Assert.StartsWith("alexnet: ", r.Stderr);
        Assert.DoesNotContain("Exception", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}

/// <summary>The result of one CLI run.</summary>
internal sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the CLI as a child process.</summary>
internal static class Cli
{
    private static readonly Lazy<string> s_target = new(FindTarget);

    /// <summary>True when the CLI under test runs on the JIT (a .dll), so it sees the CPU as this process does.</summary>
    public static bool IsJit => s_target.Value.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);

    /// <summary>Runs <c>alexnet ARGS</c> and waits for it (at most two minutes).</summary>
    public static CliResult Run(params string[] args) => RunWith(null, args);

    /// <summary>Runs <c>alexnet ARGS</c> with extra environment variables and waits for it (at most two minutes).</summary>
    public static CliResult RunWith(System.Collections.Generic.IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        ProcessStartInfo psi = StartInfo(args);
        if (environment is not null)
            foreach (var kv in environment) psi.Environment[kv.Key] = kv.Value;

        using Process p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {psi.FileName}");
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"alexnet {string.Join(' ', args)} did not finish in 2 minutes");
        }
        p.WaitForExit();
        return new CliResult(p.ExitCode, stdout.Result.Replace("\r\n", "\n"), stderr.Result.Replace("\r\n", "\n"));
    }

    /// <summary>How to start <c>alexnet ARGS</c> as a child process with stdout and stderr redirected (for tests that
    /// watch or kill it).</summary>
    public static ProcessStartInfo StartInfo(params string[] args)
    {
        string target = s_target.Value;
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (IsJit)
        {
            psi.FileName = DotnetHost();
            psi.ArgumentList.Add("exec");
            psi.ArgumentList.Add(target);
        }
        else
        {
            psi.FileName = target;
        }
        foreach (string a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    /// <summary>ALEXNET_CLI, else apps/alexnet/bin/CONFIG/net10.0/alexnet.dll of the repository above the tests,
    /// CONFIG being the test assembly's own configuration (Release or Debug).</summary>
    private static string FindTarget()
    {
        string? env = Environment.GetEnvironmentVariable("ALEXNET_CLI");
        if (!string.IsNullOrWhiteSpace(env))
        {
            if (!File.Exists(env)) throw new InvalidOperationException($"ALEXNET_CLI={env}: no such file");
            return Path.GetFullPath(env);
        }

        // .../tests/AlexNet.Aot.Tests/bin/Release/net10.0/ → configuration "Release", repository two folders above tests/.
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = baseDir.Name;
        string configuration = baseDir.Parent?.Name ?? "Release";
        for (DirectoryInfo? dir = baseDir; dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "apps", "alexnet", "bin", configuration, tfm, "alexnet.dll");
            if (File.Exists(candidate)) return candidate;
        }
        throw new InvalidOperationException(
            $"alexnet.dll not found: build apps/alexnet ({configuration}) first, or set ALEXNET_CLI to the alexnet binary or dll");
    }

    /// <summary>The dotnet host running this process (DOTNET_HOST_PATH, else DOTNET_ROOT's, else the one on PATH).</summary>
    internal static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(host) && File.Exists(host)) return host;
        string? root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root))
        {
            string candidate = Path.Combine(root, RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "dotnet.exe" : "dotnet");
            if (File.Exists(candidate)) return candidate;
        }
        return "dotnet";
    }
}
