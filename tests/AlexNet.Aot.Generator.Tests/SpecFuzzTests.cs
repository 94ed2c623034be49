using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using AlexNet.Aot.Tests.Fuzz;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>A spec the generator rejected, with its diagnostics: the spec reader's "clear error".</summary>
internal sealed class SpecRejected(string message) : Exception(message);

/// <summary>
/// The spec parser fuzzed through the generator (the shared engine of the reader fuzz tests, CsCheck underneath): each
/// mutated spec file goes through <see cref="CSharpGeneratorDriver"/> and must either generate a model, or be rejected
/// with ANX error diagnostics located in that file; the generator must never throw, report a non-ANX diagnostic or an
/// internal error, or take longer than the limit. A short run here; <c>scripts/fuzz.sh</c> runs 100,000 inputs.
/// (<see cref="FuzzTests"/> compiles a sample of what the mutants generate.)
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class SpecFuzzTests(ITestOutputHelper output)
{
    /// <summary>Inputs in the test run (about 5 s on an idle two-core machine).</summary>
    public const int CiIterations = 1000;

    /// <summary>Mutants whose kernels were already emitted run with source output off (see <see cref="FuzzTests.EmitKey"/>).</summary>
    private static readonly ConcurrentDictionary<string, bool> s_emitted = new(StringComparer.Ordinal);

    internal static void Generate(string path, string text, bool alwaysEmit)
    {
        Model.ModelSpec parsed = Parsing.SpecParser.Parse(path, text);
        // With source output off the generator reports no diagnostics either: a spec with parse errors always runs with it on.
        bool emit = alwaysEmit || parsed.HasErrors || s_emitted.TryAdd(FuzzTests.EmitKey(parsed), true);
        GeneratorDriver driver = CSharpGeneratorDriver.Create(
            new[] { new ModelGenerator().AsSourceGenerator() },
            new[] { new InMemoryAdditionalText(path, text) },
            GeneratorHarness.ParseOptions,
            new GlobalOptionsProvider("Fuzz.Spec"),
            new GeneratorDriverOptions(emit ? IncrementalGeneratorOutputKind.None : IncrementalGeneratorOutputKind.Source, trackIncrementalGeneratorSteps: false));
        GeneratorDriverRunResult run = driver.RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorRunResult r = run.Results.Single();
        if (r.Exception is not null)
            throw new FuzzInvariantException($"the generator threw {r.Exception}");
        var errors = new List<string>();
        foreach (Diagnostic d in run.Diagnostics)
        {
            string message = d.GetMessage(CultureInfo.InvariantCulture);
            if (!d.Id.StartsWith("ANX", StringComparison.Ordinal) || message.Contains("internal error", StringComparison.Ordinal))
                throw new FuzzInvariantException($"not a spec diagnostic: {d}");
            FileLinePositionSpan span = d.Location.GetLineSpan();
            if (span.Path != path)
                throw new FuzzInvariantException($"{d.Id} is located in '{span.Path}', not in the spec: {d}");
            if (d.Severity == DiagnosticSeverity.Error)
                errors.Add($"{span.Path}:{span.StartLinePosition.Line + 1}:{span.StartLinePosition.Character + 1}: {d.Id} {message}");
        }
        bool models = r.GeneratedSources.Any(s => s.HintName != "ModelCatalog.g.cs");
        if (parsed.HasErrors && errors.Count == 0)
            throw new FuzzInvariantException($"the parser's {parsed.Diagnostics[0].Id} was not reported as an error");
        if (errors.Count > 0)
        {
            if (models) throw new FuzzInvariantException($"code was generated despite {errors[0]}");
            throw new SpecRejected(string.Join("\n", errors));
        }
        if (emit && !models)
            throw new FuzzInvariantException("neither an error nor a model");
    }

    private static IEnumerable<FuzzSeed> Seeds()
    {
        foreach (ShippedSpec s in GeneratorHarness.Shipped)
            yield return new FuzzSeed(s.Name, Encoding.UTF8.GetBytes(s.Text));
        // The odd shapes of the runtime tests' specs.
        string odd = Path.Combine(GeneratorHarness.RepoRoot, "tests", "AlexNet.Aot.Tests", "specs");
        foreach (string f in Directory.GetFiles(odd, "*.model").OrderBy(f => f, StringComparer.Ordinal))
            yield return new FuzzSeed(Path.GetFileNameWithoutExtension(f), File.ReadAllBytes(f));
    }

    private static readonly Lazy<FuzzTarget> s_target = new(() => new FuzzTarget
    {
        Name = "spec",
        Extension = "model",
        Seeds = Seeds().ToList(),
        Dictionary = FuzzTests.Vocabulary.Select(v => Encoding.UTF8.GetBytes(" " + v + " ")).ToArray(),
        // The spec file as MSBuild reads it: UTF-8 (invalid bytes become U+FFFD).
        Load = (path, _) => Generate(path, File.ReadAllText(path, Encoding.UTF8), alwaysEmit: false),
        IsClearError = (e, path) => e is SpecRejected && Fuzzer.NamesFile(e.Message, path),
    });

    [Fact]
    public void GeneratorSurvivesFuzzedSpecs()
    {
        int iterations = Fuzzer.Iterations("spec", CiIterations);
        if (iterations == 0) return;
        FuzzSummary s = Fuzzer.Run(s_target.Value, iterations, output.WriteLine);
        Assert.Equal(0, s.Failures);
        Assert.True(s.Errors > s.Inputs / 10, $"only {s.Errors} specs were rejected: the mutations are too gentle");
        Assert.True(s.Loaded > s.Inputs / 20, $"only {s.Loaded} specs generated code: the mutations are too rough");
    }

    [Fact]
    public void RegressionsStillPass()
    {
        string folder = Path.Combine(GeneratorHarness.RepoRoot, "tests", "AlexNet.Aot.Tests", "fuzz-regressions", "spec");
        FuzzTarget t = s_target.Value;
        // Replayed with every output on: an input that once failed must now be rejected or generate code.
        var replay = new FuzzTarget
        {
            Name = t.Name,
            Extension = t.Extension,
            Seeds = t.Seeds,
            Load = (path, _) => Generate(path, File.ReadAllText(path, Encoding.UTF8), alwaysEmit: true),
            IsClearError = t.IsClearError,
        };
        output.WriteLine($"spec: {Fuzzer.Replay(replay, folder)} saved inputs replayed");
    }
}
