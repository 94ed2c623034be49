using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests;

/// <summary>
/// Every rung of the generated kernels' ISA ladder on this machine: AlexNet.Aot.IsaCheck (tests/AlexNet.Aot.IsaCheck,
/// built with these tests) runs as a child process with the .NET 10 switches below, prints <c>isa=PATH</c> and checks
/// the fixtures against PyTorch and the odd-shape specs against the scalar reference on that path.
/// Measured on .NET 10 (x64, AVX-512): DOTNET_EnableAVX512=0 gives avx2; DOTNET_EnableAVX2=0 alone already gives
/// sse (AVX-512 depends on it); DOTNET_EnableHWIntrinsic=0 gives scalar; DOTNET_EnableAVX512F=0 (the old name) changes nothing.
/// </summary>
public sealed class IsaMatrixTests
{
    private readonly ITestOutputHelper _out;

    public IsaMatrixTests(ITestOutputHelper output) => _out = output;

    private static readonly string[] Ranks = { "scalar", "sse|neon", "avx2", "avx512" };

    private static int Rank(string path)
    {
        for (int i = 0; i < Ranks.Length; i++)
            if (Ranks[i].Split('|').Contains(path)) return i;
        throw new ArgumentException("unknown ISA path " + path);
    }

    /// <summary>
    /// The path a child should take: the row's cap, or this process's own path where that is lower (a machine
    /// without AVX-512, or one where .NET does not accelerate Vector512, runs its best path in the "avx512" row,
    /// and that is what the row asserts). The child inherits this process's environment plus the row's variables.
    /// </summary>
    private static string Expected(string cap)
    {
        string mine = Isa.Path;
        return cap.Length > 0 && Rank(cap) < Rank(mine) ? cap : mine;
    }

    [Theory]
    [InlineData("avx512", "")]
    [InlineData("avx2", "DOTNET_EnableAVX512=0")]
    [InlineData("sse", "DOTNET_EnableAVX512=0 DOTNET_EnableAVX2=0")]
    [InlineData("scalar", "DOTNET_EnableHWIntrinsic=0")]
    public void Every_isa_path_matches_the_reference_and_PyTorch(string cap, string environment)
    {
        string expected = Expected(cap == "avx512" ? "" : cap);
        if (expected != cap)
            _out.WriteLine($"this machine's best path here is {Isa.Path}: the {cap} row expects {expected}");

        var env = new Dictionary<string, string>();
        foreach (string kv in environment.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            env[kv.Substring(0, kv.IndexOf('='))] = kv.Substring(kv.IndexOf('=') + 1);
        (int exit, string stdout, string stderr) = IsaCheck.Run(env, Fixtures.Root);
        _out.WriteLine($"{environment} -> exit {exit}");
        _out.WriteLine(stdout);
        if (stderr.Length > 0) _out.WriteLine("stderr: " + stderr);

        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length > 0 && lines[0].StartsWith("isa=", StringComparison.Ordinal), $"no isa= line first:\n{stdout}\n{stderr}");
        Assert.Equal("isa=" + expected, lines[0]);
        string[] failures = lines.Where(l => l.StartsWith("FAIL", StringComparison.Ordinal)).ToArray();
        Assert.True(failures.Length == 0, string.Join("\n", failures));
        int oks = lines.Count(l => l.StartsWith("ok ", StringComparison.Ordinal));
        int wanted = 3 + 2 * AlexNet.Aot.Tests.Specs.ModelCatalog.All.Count;
        Assert.True(oks >= wanted, $"only {oks} checks passed, expected at least {wanted}:\n{stdout}");
        Assert.True(exit == 0, $"exit code {exit}:\n{stdout}\n{stderr}");

        // The training kernels take the same rung, and their gradients and SGD steps match PyTorch on it.
        string trainingPath = expected switch { "avx512" => "avx512", "avx2" => "avx2", "scalar" => "scalar", _ => "vector128" };
        Assert.Contains("# training gemm=" + trainingPath, lines);
        Assert.Equal(3, lines.Count(l => l.StartsWith("ok train ", StringComparison.Ordinal)));
        // The generated training kernels run on this rung and match the trainer's reference operations (three models with
        // the convolutions the trainer picks, two with every convolution direct: the generated gathers and scatters).
        Assert.Equal(5, lines.Count(l => l.StartsWith("ok generated ", StringComparison.Ordinal)));
    }
}

/// <summary>Finds and runs the AlexNet.Aot.IsaCheck child process.</summary>
internal static class IsaCheck
{
    private static readonly Lazy<string> s_dll = new(Find);

    /// <summary>Runs the check with extra environment variables; at most five minutes.</summary>
    public static (int Exit, string Stdout, string Stderr) Run(IReadOnlyDictionary<string, string> environment, string fixtures)
    {
        var psi = new ProcessStartInfo
        {
            FileName = Cli.DotnetHost(),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(s_dll.Value);
        psi.ArgumentList.Add(fixtures);
        foreach (KeyValuePair<string, string> kv in environment) psi.Environment[kv.Key] = kv.Value;
        using Process p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + psi.FileName);
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"AlexNet.Aot.IsaCheck ({string.Join(' ', environment.Select(kv => kv.Key + "=" + kv.Value))}) did not finish in 5 minutes");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result.Replace("\r\n", "\n"), stderr.Result.Replace("\r\n", "\n"));
    }

    /// <summary>ALEXNET_ISACHECK, else tests/AlexNet.Aot.IsaCheck/bin/CONFIG/TFM/AlexNet.Aot.IsaCheck.dll of the repository
    /// above this test assembly, CONFIG and TFM being this assembly's own (…/tests/AlexNet.Aot.Tests/bin/CONFIG/TFM/).
    /// The test project references the IsaCheck project (ReferenceOutputAssembly=false), so building the tests builds it.</summary>
    private static string Find()
    {
        string? env = Environment.GetEnvironmentVariable("ALEXNET_ISACHECK");
        if (!string.IsNullOrWhiteSpace(env))
        {
            if (!File.Exists(env)) throw new InvalidOperationException($"ALEXNET_ISACHECK={env}: no such file");
            return Path.GetFullPath(env);
        }
        var baseDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = baseDir.Name;
        string configuration = baseDir.Parent?.Name ?? "Release";
        for (DirectoryInfo? dir = baseDir; dir is not null; dir = dir.Parent)
        {
            foreach (string candidate in new[]
            {
                Path.Combine(dir.FullName, "tests", "AlexNet.Aot.IsaCheck", "bin", configuration, tfm, "AlexNet.Aot.IsaCheck.dll"),
                Path.Combine(dir.FullName, "AlexNet.Aot.IsaCheck", "bin", configuration, tfm, "AlexNet.Aot.IsaCheck.dll"),
            })
            {
                if (File.Exists(candidate)) return candidate;
            }
        }
        throw new InvalidOperationException(
            $"AlexNet.Aot.IsaCheck.dll not found: build tests/AlexNet.Aot.IsaCheck ({configuration}) first (building the tests does), or set ALEXNET_ISACHECK");
    }
}
