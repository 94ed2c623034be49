using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Globalization;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Xunit;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>
/// Random mutations of the shipped specs (seeded, so a failure reproduces): the generator never throws and never fails;
/// each mutant either gets ANX diagnostics or generates code, and a sample of the code that comes out compiles.
/// </summary>
public sealed class FuzzTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Mutants = 2000;
    private const int Compiled = 20;
    private const int BoundFileBudget = 60;

    internal static readonly string[] Vocabulary =
    {
        "conv", "dense", "relu", "lrn", "lrn(size=5, alpha=1e-4, beta=0.75, k=2)", "lrn(3)", "maxpool", "maxpool(3, s2)", "maxpool(2, s2, p1, ceil)",
        "avgpool(3, s1, p1, exclude_pad)", "avgpool(2)", "adaptiveavgpool(6x6)", "adaptiveavgpool(1)", "bn", "bn(eps=1e-3)", "batchnorm(from=x.y)",
        "dropout", "dropout(0.5)", "dropout(p=0.1)", "flatten", "softmax", "groups=2", "g4", "k1", "k3", "k5x3", "s2", "p1", "nobias", "bias=false",
        "from=features.0", "from=classifier.1", "model", "model X", "input", "input 1x8x8", "normalize", "labels a, b", "train", "train lr=0.1",
        "(", ")", ",", "=", "#", "\n", "-1", "0", "1", "7", "1e40", "NaN", "4096", "65537", "x", "\t", "\u2212", "fc9 dense 3", "c9 conv 2 k1",
    };

    private static readonly string InsertChars = "abcxyzkpsg0123456789 \t\n\r()=,.#-+_eE\u2212\u00e9\0";

    internal static string Mutate(string text, Random rng)
    {
        var s = new StringBuilder(text);
        int edits = 1 + rng.Next(3);
        for (int e = 0; e < edits; e++)
        {
            int at = s.Length == 0 ? 0 : rng.Next(s.Length + 1);
            switch (rng.Next(8))
            {
                case 0 when s.Length > 0: // delete a few chars
                    int len = Math.Min(1 + rng.Next(4), s.Length - Math.Min(at, s.Length - 1));
                    s.Remove(Math.Min(at, s.Length - 1), Math.Max(1, len));
                    break;
                case 1: // insert a char
                    s.Insert(at, InsertChars[rng.Next(InsertChars.Length)]);
                    break;
                case 2 when s.Length > 0: // replace a char
                    s[Math.Min(at, s.Length - 1)] = InsertChars[rng.Next(InsertChars.Length)];
                    break;
                case 3: // insert a token of the language, with spaces
                    s.Insert(at, " " + Vocabulary[rng.Next(Vocabulary.Length)] + " ");
                    break;
                case 4: // insert a token at a word boundary
                    string tok = Vocabulary[rng.Next(Vocabulary.Length)];
                    int sp = s.ToString().IndexOf(' ', at < s.Length ? at : 0);
                    s.Insert(sp < 0 ? s.Length : sp, " " + tok);
                    break;
                default: // line edits: swap two, duplicate one, delete one
                    var lines = s.ToString().Split('\n').ToList();
                    int a = rng.Next(lines.Count), b = rng.Next(lines.Count);
                    switch (rng.Next(3))
                    {
                        case 0: (lines[a], lines[b]) = (lines[b], lines[a]); break;
                        case 1: lines.Insert(b, lines[a]); break;
                        default: lines.RemoveAt(a); break;
                    }
                    s.Clear().Append(string.Join("\n", lines));
                    break;
            }
        }
        return s.ToString();
    }

    /// <summary>
    /// What the emitter sees of a spec, positions and line texts left out: mutants that differ only there (a comment, a
    /// space, a swapped train line) emit the same kernels, so only the first of them is run with source output on.
    /// </summary>
    internal static string EmitKey(Model.ModelSpec s)
    {
        var zero = new Model.SpecPosition(0, 0, 0, 0);
        var sb = new StringBuilder();
        sb.Append(s.ClassName).Append('|').Append(s.InputC).Append('x').Append(s.InputH).Append('x').Append(s.InputW)
            .Append('|').Append(string.Join(",", s.Mean)).Append('|').Append(string.Join(",", s.Std)).Append('|').Append(string.Join(",", s.Labels))
            .Append('|').Append(s.Preprocess);
        foreach (Model.LayerSpec l in s.Layers)
        {
            sb.Append('\n').Append((l with { Position = zero, Text = "", Ops = Model.EquatableArray<Model.OpSpec>.Empty }).ToString());
            foreach (Model.OpSpec o in l.Ops) sb.Append(' ').Append((o with { Position = zero, Text = "" }).ToString());
        }
        return sb.ToString();
    }

    [Fact]
    public void MutatedSpecsNeverBreakTheGenerator()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var rng = new Random(20120101);
        IReadOnlyList<ShippedSpec> specs = GeneratorHarness.Shipped;
        var emitted = new HashSet<string>(StringComparer.Ordinal);
        var compiled = new List<(int Index, string Text, IReadOnlyList<GeneratedSourceResult> Sources)>();
        var changed = new HashSet<SyntaxTree>();
        // A file the mutation left as the shipped spec's (but for the namespace) was compiled by CompileTests; only the
        // files a mutation changed are bound, within a budget (binding the unrolled kernels is what costs).
        var original = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (GeneratedSourceResult s in ShippedRun.Result.Results.Single().GeneratedSources)
            original[s.HintName] = s.SourceText.ToString().Replace("namespace " + GeneratorHarness.RootNamespace + "\n", "namespace N\n", StringComparison.Ordinal);
        int withDiagnostics = 0, withCode = 0, full = 0;
        for (int i = 0; i < Mutants; i++)
        {
            ShippedSpec spec = specs[i % specs.Count];
            string text = Mutate(spec.Text, rng);
            string path = $"/fuzz/{spec.Name}.model";
            // Every mutant goes through the driver; those whose kernels were already emitted skip the source outputs.
            Model.ModelSpec parsed = Parsing.SpecParser.Parse(path, text);
            bool emit = parsed.HasErrors || emitted.Add(EmitKey(parsed));
            GeneratorDriverRunResult run;
            try
            {
                GeneratorDriver driver = CSharpGeneratorDriver.Create(
                    new[] { new ModelGenerator().AsSourceGenerator() },
                    new[] { new InMemoryAdditionalText(path, text) },
                    GeneratorHarness.ParseOptions,
                    new GlobalOptionsProvider("Fuzz.M" + i),
                    new GeneratorDriverOptions(emit ? IncrementalGeneratorOutputKind.None : IncrementalGeneratorOutputKind.Source, trackIncrementalGeneratorSteps: false));
                run = driver.RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
            }
            catch (Exception ex)
            {
                throw new Xunit.Sdk.XunitException($"mutant {i} of {spec.Name}: the driver threw {ex}\n---\n{text}");
            }
            GeneratorRunResult r = run.Results.Single();
            if (r.Exception is not null)
                throw new Xunit.Sdk.XunitException($"mutant {i} of {spec.Name}: the generator threw {r.Exception}\n---\n{text}");
            foreach (Diagnostic d in run.Diagnostics)
            {
                if (!d.Id.StartsWith("ANX", StringComparison.Ordinal) || d.GetMessage(CultureInfo.InvariantCulture).Contains("internal error", StringComparison.Ordinal))
                    throw new Xunit.Sdk.XunitException($"mutant {i} of {spec.Name}: {d}\n---\n{text}");
            }
            if (parsed.HasErrors) Assert.False(run.Diagnostics.IsEmpty, $"mutant {i}: the parser's {parsed.Diagnostics[0].Id} was not reported");
            bool models = r.GeneratedSources.Any(s => s.HintName != "ModelCatalog.g.cs");
            if (run.Diagnostics.IsEmpty)
            {
                withCode++;
                if (!emit) continue;
                full++;
                Assert.True(models, $"mutant {i} of {spec.Name}: neither a diagnostic nor a model\n---\n{text}");
                if (compiled.Count < Compiled && full % 3 == 1)
                {
                    var mine = new List<SyntaxTree>();
                    foreach (GeneratedSourceResult s in r.GeneratedSources)
                    {
                        string t = s.SourceText.ToString().Replace($"namespace Fuzz.M{i}\n", "namespace N\n", StringComparison.Ordinal);
                        if (s.HintName == "ModelCatalog.g.cs" || !original.TryGetValue(s.HintName, out string? o) || o != t) mine.Add(s.SyntaxTree);
                    }
                    if (changed.Count + mine.Count <= BoundFileBudget)
                    {
                        compiled.Add((i, text, r.GeneratedSources));
                        changed.UnionWith(mine);
                    }
                }
            }
            else
            {
                withDiagnostics++;
                Assert.False(models, $"mutant {i} of {spec.Name}: code despite {run.Diagnostics[0]}");
            }
        }
        Assert.True(withDiagnostics > Mutants / 4, $"only {withDiagnostics} mutants had errors: the mutations are too gentle");
        Assert.True(withCode > Mutants / 10, $"only {withCode} mutants generated code: the mutations are too rough");
        Assert.True(compiled.Count >= Compiled / 2, $"only {compiled.Count} distinct mutants were compiled");

        output.WriteLine($"{Mutants} mutants in {clock.ElapsedMilliseconds} ms: {withDiagnostics} with diagnostics, {withCode} with code ({full} distinct, emitted)");
        clock.Restart();

        // Each mutant in its own namespace, all in one compilation.
        IReadOnlyList<Diagnostic> diagnostics = GeneratorHarness.Compile(compiled.SelectMany(c => c.Sources.Select(s => s.SyntaxTree)), "Fuzz", changed.Contains);
        output.WriteLine($"{compiled.Count} mutants compiled ({changed.Count} files bound) in {clock.ElapsedMilliseconds} ms");
        if (diagnostics.Count > 0)
        {
            Diagnostic first = diagnostics[0];
            string ns = first.Location.SourceTree?.GetRoot().DescendantNodes().OfType<BaseNamespaceDeclarationSyntax>().FirstOrDefault()?.Name.ToString() ?? "?";
            var culprit = compiled.FirstOrDefault(c => "Fuzz.M" + c.Index == ns);
            throw new Xunit.Sdk.XunitException($"{diagnostics.Count} compile diagnostics; first: {first}\nin mutant {ns}:\n{culprit.Text}");
        }
    }
}
