using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>A spec file held in memory, as MSBuild's AdditionalFiles hands it to the generator.</summary>
internal sealed class InMemoryAdditionalText : AdditionalText
{
    private readonly SourceText _text;

    public InMemoryAdditionalText(string path, string text)
    {
        Path = path;
        _text = SourceText.From(text, Encoding.UTF8);
    }

    public override string Path { get; }

    public override SourceText GetText(CancellationToken cancellationToken = default) => _text;
}

/// <summary>Global analyzer options: the MSBuild properties the project makes compiler-visible.</summary>
internal sealed class GlobalOptionsProvider : AnalyzerConfigOptionsProvider
{
    private static readonly AnalyzerConfigOptions Empty = new Options(ImmutableDictionary<string, string>.Empty);

    public GlobalOptionsProvider(string? rootNamespace)
    {
        var d = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.OrdinalIgnoreCase);
        if (rootNamespace is not null) d["build_property.RootNamespace"] = rootNamespace;
        GlobalOptions = new Options(d.ToImmutable());
    }

    public override AnalyzerConfigOptions GlobalOptions { get; }

    public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => Empty;

    public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => Empty;

    private sealed class Options : AnalyzerConfigOptions
    {
        private readonly ImmutableDictionary<string, string> _values;

        public Options(ImmutableDictionary<string, string> values) => _values = values;

        public override bool TryGetValue(string key, out string value)
        {
            if (_values.TryGetValue(key, out string? v)) { value = v; return true; }
            value = null!;
            return false;
        }
    }
}

/// <summary>A shipped spec: its model name (file name), path relative to the repository, and text.</summary>
public sealed record ShippedSpec(string Name, string RelativePath, string FullPath, string Text)
{
    public override string ToString() => Name;
}

/// <summary>Runs <see cref="ModelGenerator"/> in memory and compiles what it writes.</summary>
internal static class GeneratorHarness
{
    public const string RootNamespace = "AlexNet.Aot.Models";

    public static readonly CSharpParseOptions ParseOptions =
        new(LanguageVersion.Latest, DocumentationMode.Diagnose);

    private static readonly Lazy<string> RepoRootLazy = new(FindRepoRoot);

    /// <summary>The repository root: the first folder up from the test assembly that holds AlexNet.Aot.sln.</summary>
    public static string RepoRoot => RepoRootLazy.Value;

    private static string FindRepoRoot()
    {
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (DirectoryInfo? d = new(start); d is not null; d = d.Parent)
                if (File.Exists(System.IO.Path.Combine(d.FullName, "AlexNet.Aot.sln"))) return d.FullName;
        }
        throw new InvalidOperationException("AlexNet.Aot.sln not found above " + AppContext.BaseDirectory);
    }

    private static readonly Lazy<IReadOnlyList<ShippedSpec>> ShippedLazy = new(() =>
    {
        string specDir = System.IO.Path.Combine(RepoRoot, "model-spec");
        var files = Directory.GetFiles(specDir, "*.model")
            .Concat(Directory.GetFiles(System.IO.Path.Combine(specDir, "fixtures"), "*.model"))
            .OrderBy(f => f, StringComparer.Ordinal);
        var list = new List<ShippedSpec>();
        foreach (string f in files)
        {
            string rel = System.IO.Path.GetRelativePath(RepoRoot, f).Replace('\\', '/');
            list.Add(new ShippedSpec(System.IO.Path.GetFileNameWithoutExtension(f), rel, f, File.ReadAllText(f)));
        }
        return list;
    });

    /// <summary>model-spec/*.model and model-spec/fixtures/*.model, read from disk.</summary>
    public static IReadOnlyList<ShippedSpec> Shipped => ShippedLazy.Value;

    public static ShippedSpec Spec(string name) => Shipped.Single(s => s.Name == name);

    public static IEnumerable<object[]> ShippedNames() => Shipped.Select(s => new object[] { s.Name });

    /// <summary>The shipped specs as additional texts, under a fixed, machine-independent path.</summary>
    public static InMemoryAdditionalText[] ShippedTexts() =>
        Shipped.Select(s => new InMemoryAdditionalText("/repo/" + s.RelativePath, s.Text)).ToArray();

    private static readonly Lazy<ImmutableArray<MetadataReference>> ReferencesLazy = new(() =>
    {
        var refs = new List<MetadataReference>();
        string tpa = (string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!;
        foreach (string path in tpa.Split(System.IO.Path.PathSeparator))
        {
            string file = System.IO.Path.GetFileName(path);
            if (file.StartsWith("System.", StringComparison.Ordinal) || file == "mscorlib.dll" || file == "netstandard.dll")
                refs.Add(MetadataReference.CreateFromFile(path));
        }
        refs.Add(MetadataReference.CreateFromFile(typeof(global::AlexNet.Aot.Network).Assembly.Location));
        return refs.ToImmutableArray();
    });

    /// <summary>The framework and AlexNet.Aot.Runtime: what the models project compiles against.</summary>
    public static ImmutableArray<MetadataReference> References => ReferencesLazy.Value;

    /// <summary>Every warning an error, nullable on, all warning waves.</summary>
    public static readonly CSharpCompilationOptions StrictOptions = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary)
        .WithNullableContextOptions(NullableContextOptions.Enable)
        .WithGeneralDiagnosticOption(ReportDiagnostic.Error)
        .WithWarningLevel(9999)
        .WithDeterministic(true)
        .WithOptimizationLevel(OptimizationLevel.Release);

    /// <summary>An empty compilation for the generator to run against (it reads no C#).</summary>
    public static CSharpCompilation EmptyCompilation(string name = "Models") =>
        CSharpCompilation.Create(name, Array.Empty<SyntaxTree>(), References, StrictOptions);

    public static GeneratorDriver CreateDriver(IEnumerable<AdditionalText> texts, string? rootNamespace = RootNamespace, bool track = true) =>
        CSharpGeneratorDriver.Create(
            new[] { new ModelGenerator().AsSourceGenerator() },
            texts,
            ParseOptions,
            new GlobalOptionsProvider(rootNamespace),
            new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: track));

    /// <summary>Runs the generator once over <paramref name="texts"/>.</summary>
    public static GeneratorRunResult Run(IEnumerable<AdditionalText> texts, string? rootNamespace = RootNamespace, bool track = false)
    {
        GeneratorDriver driver = CreateDriver(texts, rootNamespace, track).RunGenerators(EmptyCompilation());
        return driver.GetRunResult().Results.Single();
    }

    public static GeneratorRunResult Run(string path, string text) => Run(new[] { new InMemoryAdditionalText(path, text) });

    /// <summary>The generator's own failure: an exception it threw, or a diagnostic that says it failed.</summary>
    public static void AssertNoGeneratorFailure(GeneratorDriverRunResult all, string what)
    {
        foreach (GeneratorRunResult r in all.Results)
        {
            if (r.Exception is not null)
                throw new Xunit.Sdk.XunitException($"{what}: the generator threw {r.Exception}");
        }
        foreach (Diagnostic d in all.Diagnostics)
        {
            if (!d.Id.StartsWith("ANX", StringComparison.Ordinal))
                throw new Xunit.Sdk.XunitException($"{what}: non-spec diagnostic {d}");
        }
    }

    /// <summary>
    /// Compiles <paramref name="trees"/> with <see cref="StrictOptions"/> and returns every warning and error (warnings are
    /// errors here); hidden diagnostics such as CS8019 (unnecessary using) are not warnings and are left out.
    /// With <paramref name="only"/>, only those trees are bound (the others are declarations for them).
    /// </summary>
    public static IReadOnlyList<Diagnostic> Compile(IEnumerable<SyntaxTree> trees, string name = "Models", Func<SyntaxTree, bool>? only = null)
    {
        CSharpCompilation c = CSharpCompilation.Create(name, trees, References, StrictOptions);
        IEnumerable<Diagnostic> all = only is null
            ? c.GetDiagnostics()
            : c.GetDeclarationDiagnostics().Concat(c.SyntaxTrees.Where(only).SelectMany(t => c.GetSemanticModel(t).GetDiagnostics()));
        return all.Where(d => d.Severity >= DiagnosticSeverity.Warning).Distinct().ToList();
    }

    /// <summary>A diagnostic as one line: <c>ANX001 file(line,col): message</c>, line and column 1-based.</summary>
    public static string Describe(Diagnostic d)
    {
        FileLinePositionSpan span = d.Location.GetLineSpan();
        return $"{d.Id} {span.Path}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1}): {d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}";
    }
}
