using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>The generated code compiles against the runtime with every warning an error, nullable on, doc comments checked.</summary>
public sealed class CompileTests
{
    [Fact]
    public void TheGeneratedCodeOfEveryShippedSpecCompilesWithWarningsAsErrors()
    {
        GeneratorDriverRunResult result = ShippedRun.Result;
        GeneratorHarness.AssertNoGeneratorFailure(result, "shipped specs");
        Assert.Empty(result.Diagnostics);
        IReadOnlyList<Diagnostic> diagnostics = GeneratorHarness.Compile(result.GeneratedTrees);
        Assert.True(diagnostics.Count == 0, string.Join("\n", diagnostics.Select(d => d.ToString())));
        // One network class per spec, and the catalog.
        Assert.Equal(GeneratorHarness.Shipped.Count, result.GeneratedTrees.Count(t => t.FilePath.EndsWith(".g.cs", StringComparison.Ordinal)
            && t.FilePath.Split('/', '\\').Last().Count(c => c == '.') == 2 && !t.FilePath.EndsWith("ModelCatalog.g.cs", StringComparison.Ordinal)));
    }

    [Fact]
    public void TheGeneratorRunsCleanlyInsideACompilationAsTheModelsProjectRunsIt()
    {
        // RunGeneratorsAndUpdateCompilation: the same path the compiler takes; no CS8784/CS8785 (generator failed).
        CSharpCompilation input = GeneratorHarness.EmptyCompilation();
        GeneratorHarness.CreateDriver(GeneratorHarness.ShippedTexts(), track: false)
            .RunGeneratorsAndUpdateCompilation(input, out Compilation output, out var generatorDiagnostics);
        Assert.Empty(generatorDiagnostics);
        // Per spec (eight layers each): the network class, a file per layer, a training file per layer and the training table; and the catalog.
        Assert.Equal(GeneratorHarness.Shipped.Count * (1 + 8 + 8 + 1) + 1, output.SyntaxTrees.Count());
    }

    /// <summary>Valid specs off the beaten path: every construct of the language, odd sizes, options the shipped specs never use.</summary>
    internal static readonly (string Name, string Text)[] EdgeSpecs =
    {
        ("dense-only", """
            model DenseOnly
            input 5x1x1
            fc1 dense 3 relu
            fc2 dense 2 bias=false
            """),
        ("odd-shapes", """
            model OddShapes
            input 2x9x7
            normalize mean=-0.5 std=0.25
            labels a, b, c
            c1 conv 5 k3x2 s2 p1 nobias relu avgpool(2, s1, p1, ceil, exclude_pad)
            c2 conv 3 k1 relu lrn(3, 1e-3, 0.5, 1) maxpool(2, s2, ceil) flatten
            f3 dense 3 softmax
            """),
        ("bn-late", """
            model BnLate
            input 3x11x11
            c1 conv 6 k3 g3 relu bn(eps=1e-3) relu lrn(size=2, alpha=2e-4, beta=1, k=1) adaptiveavgpool(4, 5)
            c2 conv 4 k2 bias=false bn(from=norms.c2) adaptiveavgpool(3x4) dropout(p=0.25)
            f3 dense 9 bn relu dropout(0)
            f4 dense 1
            """),
        ("lrn-pow", """
            model LrnPow
            input 4x3x3
            c1 conv 7 k3 p1 lrn(size=4, beta=0.6) maxpool(3, s3, p1)
            f2 dense 2
            """),
    };

    [Fact]
    public void ALineSeparatorInsideALayerLineDoesNotBreakTheGeneratedCode()
    {
        // C# ends a line (and so a // or /// comment) at CR, NEL, LS and PS; the spec parser treats them as spaces.
        foreach (string sep in new[] { "\r", "\u0085", "\u2028", "\u2029" })
        {
            string spec = $"model Sep\ninput 1x4x4\nc1 conv 2 k3{sep}relu\nf2 dense 2{sep}softmax\n";
            GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(new[] { new InMemoryAdditionalText("/edge/sep.model", spec) }, track: false)
                .RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
            GeneratorHarness.AssertNoGeneratorFailure(result, "sep.model");
            if (!result.Diagnostics.IsEmpty) continue; // rejecting the character is fine too
            IReadOnlyList<Diagnostic> diagnostics = GeneratorHarness.Compile(result.GeneratedTrees, name: "Sep");
            Assert.True(diagnostics.Count == 0, $"U+{(int)sep[0]:X4}: " + string.Join("\n", diagnostics.Take(5).Select(d => d.ToString())));
        }
    }

    /// <summary>
    /// Specs the parser accepts whose generated code does not compile today (generator bugs, see the test report):
    /// a model class named like a member the generator declares in it (CS0542) or like a C# keyword, and two checkpoint
    /// prefixes that sanitize to the same constructor local (CS0128). Each must become an ANX diagnostic or compile.
    /// </summary>
    [Theory]
    [InlineData("model Create\ninput 1x4x4\nc1 conv 2 k3\nf2 dense 3\n")]
    [InlineData("model Metadata\ninput 1x4x4\nc1 conv 2 k3\nf2 dense 3\n")]
    [InlineData("model Entry\ninput 1x4x4\nc1 conv 2 k3\nf2 dense 3\n")]
    [InlineData("model Work\ninput 1x4x4\nc1 conv 2 k3\nf2 dense 3\n")]
    [InlineData("model ImageFloats\ninput 1x4x4\nc1 conv 2 k3\nf2 dense 3\n")]
    [InlineData("model class\ninput 1x4x4\nc1 conv 2 k3\nf2 dense 3\n")]
    [InlineData("model K\ninput 1x4x4\nc1 conv 2 k3 from=a.b\nc2 conv 2 k1 from=a_b\nf2 dense 2\n")]
    public void AcceptedSpecsCompileOrAreDiagnosed(string spec)
    {
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(new[] { new InMemoryAdditionalText("/edge/x.model", spec) }, track: false)
            .RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorHarness.AssertNoGeneratorFailure(result, spec);
        if (!result.Diagnostics.IsEmpty) return;
        IReadOnlyList<Diagnostic> diagnostics = GeneratorHarness.Compile(result.GeneratedTrees, name: "X");
        Assert.True(diagnostics.Count == 0, string.Join("\n", diagnostics.Take(5).Select(d => d.ToString())));
    }

    [Fact]
    public void EdgeSpecsGenerateCodeThatCompilesWithWarningsAsErrors()
    {
        var texts = EdgeSpecs.Select(s => new InMemoryAdditionalText($"/edge/{s.Name}.model", s.Text)).ToArray();
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(texts, track: false).RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorHarness.AssertNoGeneratorFailure(result, "edge specs");
        Assert.True(result.Diagnostics.IsEmpty, string.Join("\n", result.Diagnostics.Select(GeneratorHarness.Describe)));
        IReadOnlyList<Diagnostic> diagnostics = GeneratorHarness.Compile(result.GeneratedTrees, name: "Edge");
        Assert.True(diagnostics.Count == 0, string.Join("\n", diagnostics.Take(20).Select(d => d.ToString())));
    }
}
