using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using AlexNet.Aot.Generator.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;
using static AlexNet.Aot.Generator.ModelGenerator;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>
/// The pipeline caches: an unrelated edit (a C# file, a non-spec additional file, the same text again) leaves the
/// Parse and Plan steps cached and the source outputs untouched; editing one spec re-parses only that spec.
/// </summary>
public sealed class IncrementalTests
{
    private const string TinyA = """
        model TinyA
        input 3x16x16
        conv1 conv 8 k3 p1 relu maxpool(2, s2)
        fc2   dense 10 softmax
        """;

    private const string TinyB = """
        model TinyB
        input 1x12x12
        conv1 conv 4 k3 relu maxpool(2)
        fc2   dense 5
        """;

    private static readonly IncrementalStepRunReason[] Unaffected = { IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged };

    private static (GeneratorDriver Driver, CSharpCompilation Compilation) FirstRun(params AdditionalText[] texts)
    {
        CSharpCompilation compilation = GeneratorHarness.EmptyCompilation();
        GeneratorDriver driver = GeneratorHarness.CreateDriver(texts).RunGenerators(compilation);
        GeneratorRunResult first = driver.GetRunResult().Results.Single();
        Assert.Null(first.Exception);
        Assert.Empty(first.Diagnostics);
        Assert.NotEmpty(first.GeneratedSources);
        // The first run computes every step.
        Assert.All(Outputs(first, TrackingNames.Parse), o => Assert.Equal(IncrementalStepRunReason.New, o.Reason));
        return (driver, compilation);
    }

    private static List<(object Value, IncrementalStepRunReason Reason)> Outputs(GeneratorRunResult r, string step) =>
        r.TrackedSteps[step].SelectMany(s => s.Outputs).ToList();

    private static void AssertUnaffected(GeneratorRunResult r, int specs)
    {
        Assert.Null(r.Exception);
        foreach (string step in new[] { TrackingNames.Parse, TrackingNames.Plan })
        {
            var outputs = Outputs(r, step);
            Assert.Equal(specs, outputs.Count);
            Assert.All(outputs, o => Assert.Contains(o.Reason, Unaffected));
        }
        Assert.All(Outputs(r, TrackingNames.Namespace), o => Assert.Contains(o.Reason, Unaffected));
        Assert.All(Outputs(r, TrackingNames.Catalog), o => Assert.Contains(o.Reason, Unaffected));
        // Nothing reached the source outputs again.
        Assert.All(r.TrackedOutputSteps.SelectMany(kv => kv.Value).SelectMany(s => s.Outputs),
            o => Assert.Contains(o.Reason, Unaffected));
    }

    [Fact]
    public void AddingAnUnrelatedCSharpFileLeavesEveryStepCached()
    {
        var (driver, compilation) = FirstRun(new InMemoryAdditionalText("/p/a.model", TinyA), new InMemoryAdditionalText("/p/b.model", TinyB));
        CSharpCompilation edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("class Unrelated { }", GeneratorHarness.ParseOptions));
        driver = driver.RunGenerators(edited);
        AssertUnaffected(driver.GetRunResult().Results.Single(), specs: 2);
    }

    [Fact]
    public void AddingAnUnrelatedAdditionalFileLeavesEveryStepCached()
    {
        var (driver, compilation) = FirstRun(new InMemoryAdditionalText("/p/a.model", TinyA), new InMemoryAdditionalText("/p/b.model", TinyB));
        driver = driver.AddAdditionalTexts(ImmutableArray.Create<AdditionalText>(new InMemoryAdditionalText("/p/notes.txt", "model Nope\nconv1 conv 8 k3\n")));
        driver = driver.RunGenerators(compilation);
        AssertUnaffected(driver.GetRunResult().Results.Single(), specs: 2);
    }

    [Fact]
    public void ReplacingASpecWithTheSameTextLeavesEveryStepCachedOrUnchanged()
    {
        var a = new InMemoryAdditionalText("/p/a.model", TinyA);
        var (driver, compilation) = FirstRun(a, new InMemoryAdditionalText("/p/b.model", TinyB));
        driver = driver.ReplaceAdditionalText(a, new InMemoryAdditionalText("/p/a.model", TinyA));
        driver = driver.RunGenerators(compilation);
        GeneratorRunResult r = driver.GetRunResult().Results.Single();
        AssertUnaffected(r, specs: 2);
        // The new text object was read again, and its spec compared equal to the old one.
        Assert.Contains(Outputs(r, TrackingNames.Parse), o => o.Reason == IncrementalStepRunReason.Unchanged && ((ModelSpec)o.Value).FilePath == "/p/a.model");
    }

    [Fact]
    public void ACommentOnlyEditKeepsThePlanUnchanged()
    {
        // The spec records token positions, so a comment at the end (no position moves) is the edit that must not re-plan.
        var a = new InMemoryAdditionalText("/p/a.model", TinyA);
        var (driver, compilation) = FirstRun(a);
        driver = driver.ReplaceAdditionalText(a, new InMemoryAdditionalText("/p/a.model", TinyA + "\n# a trailing comment\n"));
        driver = driver.RunGenerators(compilation);
        AssertUnaffected(driver.GetRunResult().Results.Single(), specs: 1);
    }

    [Fact]
    public void EditingOneSpecOfTwoReparsesOnlyThatSpec()
    {
        var a = new InMemoryAdditionalText("/p/a.model", TinyA);
        var b = new InMemoryAdditionalText("/p/b.model", TinyB);
        var (driver, compilation) = FirstRun(a, b);
        driver = driver.ReplaceAdditionalText(b, new InMemoryAdditionalText("/p/b.model", TinyB.Replace("dense 5", "dense 7")));
        driver = driver.RunGenerators(compilation);
        GeneratorRunResult r = driver.GetRunResult().Results.Single();
        Assert.Null(r.Exception);

        foreach (string step in new[] { TrackingNames.Parse, TrackingNames.Plan })
        {
            var outputs = Outputs(r, step);
            Assert.Equal(2, outputs.Count);
            string PathOf(object v) => v is ModelSpec s ? s.FilePath : ((Planning.ModelPlan)v).Spec.FilePath;
            Assert.Equal(IncrementalStepRunReason.Modified, Assert.Single(outputs, o => PathOf(o.Value) == "/p/b.model").Reason);
            Assert.Contains(Assert.Single(outputs, o => PathOf(o.Value) == "/p/a.model").Reason, Unaffected);
        }
        Assert.Contains(r.GeneratedSources, s => s.HintName == "TinyB.fc2.g.cs" && s.SourceText.ToString().Contains("Out = 7", StringComparison.Ordinal));
    }

    [Fact]
    public void ChangingTheRootNamespaceReemitsWithoutReparsing()
    {
        var a = new InMemoryAdditionalText("/p/a.model", TinyA);
        CSharpCompilation compilation = GeneratorHarness.EmptyCompilation();
        GeneratorDriver driver = GeneratorHarness.CreateDriver(new[] { a }, "First.Ns").RunGenerators(compilation);
        driver = driver.WithUpdatedAnalyzerConfigOptions(new GlobalOptionsProvider("Second.Ns")).RunGenerators(compilation);
        GeneratorRunResult r = driver.GetRunResult().Results.Single();
        Assert.All(Outputs(r, TrackingNames.Parse), o => Assert.Contains(o.Reason, Unaffected));
        Assert.All(Outputs(r, TrackingNames.Plan), o => Assert.Contains(o.Reason, Unaffected));
        Assert.Equal(IncrementalStepRunReason.Modified, Assert.Single(Outputs(r, TrackingNames.Namespace)).Reason);
        Assert.All(r.GeneratedSources, s => Assert.Contains("namespace Second.Ns", s.SourceText.ToString(), StringComparison.Ordinal));
    }
}
