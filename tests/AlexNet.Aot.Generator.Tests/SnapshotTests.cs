using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>The generator run over every shipped spec at once (as the models project runs it), shared by several tests.</summary>
internal static class ShippedRun
{
    private static readonly Lazy<GeneratorDriverRunResult> Lazy = new(() =>
        GeneratorHarness.CreateDriver(GeneratorHarness.ShippedTexts(), track: false)
            .RunGenerators(GeneratorHarness.EmptyCompilation())
            .GetRunResult());

    public static GeneratorDriverRunResult Result => Lazy.Value;

    /// <summary>The generated files of one spec: those whose hint name starts with its class name.</summary>
    public static IReadOnlyList<GeneratedSourceResult> SourcesOf(ShippedSpec spec)
    {
        string cls = Parsing.SpecParser.Parse(spec.FullPath, spec.Text).ClassName;
        return Result.Results.Single().GeneratedSources
            .Where(s => s.HintName.StartsWith(cls + ".", StringComparison.Ordinal))
            .OrderBy(s => s.HintName, StringComparer.Ordinal)
            .ToList();
    }
}

/// <summary>Snapshots of every file the generator writes for every shipped spec, and of a bad spec's diagnostics.</summary>
public sealed class SnapshotTests
{
    [Theory]
    [MemberData(nameof(GeneratorHarness.ShippedNames), MemberType = typeof(GeneratorHarness))]
    public void EveryGeneratedFileMatchesItsApprovedSnapshot(string specName)
    {
        ShippedSpec spec = GeneratorHarness.Spec(specName);
        GeneratorHarness.AssertNoGeneratorFailure(ShippedRun.Result, specName);
        IReadOnlyList<GeneratedSourceResult> sources = ShippedRun.SourcesOf(spec);
        Assert.NotEmpty(sources);

        string folder = Path.Combine(Snapshots.Root, spec.Name);
        var failures = new List<string>();
        foreach (GeneratedSourceResult s in sources)
        {
            string? f = Snapshots.Check(folder, s.HintName, s.SourceText.ToString());
            if (f is not null) failures.Add(f);
        }

        // An approved file no generated source matches is a stale snapshot (a layer renamed or removed).
        var names = new HashSet<string>(sources.Select(s => s.HintName + ".approved.txt"), StringComparer.Ordinal);
        if (Directory.Exists(folder))
        {
            foreach (string approved in Directory.GetFiles(folder, "*.approved.txt"))
            {
                if (names.Contains(Path.GetFileName(approved))) continue;
                if (Snapshots.Approving) File.Delete(approved);
                else failures.Add($"{Path.GetFileName(approved)}: approved, but the generator no longer writes it");
            }
        }
        Snapshots.Assert(failures);
    }

    [Fact]
    public void TheCatalogOfAllShippedModelsMatchesItsSnapshot()
    {
        GeneratedSourceResult catalog = ShippedRun.Result.Results.Single().GeneratedSources.Single(s => s.HintName == "ModelCatalog.g.cs");
        Snapshots.Assert(new[] { Snapshots.Check(Snapshots.Root, catalog.HintName, catalog.SourceText.ToString()) }.OfType<string>().ToList());
    }

    [Fact]
    public void EveryGeneratedFileBelongsToAShippedSpecOrIsTheCatalog()
    {
        var owned = new HashSet<string>(GeneratorHarness.Shipped.SelectMany(ShippedRun.SourcesOf).Select(s => s.HintName)) { "ModelCatalog.g.cs" };
        Assert.All(ShippedRun.Result.Results.Single().GeneratedSources, s => Assert.Contains(s.HintName, owned));
        Assert.Empty(ShippedRun.Result.Diagnostics);
    }

    /// <summary>A spec with an error on many lines: every diagnostic, in order, with its place and message.</summary>
    internal const string BadSpec = """
        # a spec with one mistake per line
        model BadNet
        input 3x32x32
        input 3x64x64
        normalize mean=0.5 std=0
        conv1  conv 8 k3 p1 relu swish
        conv2  conv 8.5 k3
        conv3  conv 12 k3 groups=5
        conv1  conv 8 k3
        conv4  conv 16 k3 s0 maxpool(2, s2
        fc5    dense 10 lrn(size=5) dropout(1) softmax relu
        fc6    dense 10 k3
        train  optimizer=sgd lr=fast speed=11
        train  schedule=onecycle augment=hflip,mixup init=he pad=-1
        """;

    [Fact]
    public void TheDiagnosticsOfABadSpecMatchTheirSnapshot()
    {
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(new[] { new InMemoryAdditionalText("/specs/bad.model", BadSpec) }, track: false)
            .RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorHarness.AssertNoGeneratorFailure(result, "bad.model");
        Assert.Empty(result.Results.Single().GeneratedSources.Where(s => s.HintName != "ModelCatalog.g.cs"));
        string text = string.Join("\n", result.Diagnostics.Select(GeneratorHarness.Describe)) + "\n";
        Snapshots.Assert(new[] { Snapshots.Check(Path.Combine(Snapshots.Root, "diagnostics"), "bad.model.diagnostics", text) }.OfType<string>().ToList());
    }
}
