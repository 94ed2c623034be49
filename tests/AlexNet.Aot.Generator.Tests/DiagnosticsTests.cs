using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Xunit;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>
/// Every spec error is a diagnostic with its own id, at the file, line and column of the offending token, and its
/// message names the layer (or, for a whole-file problem, the model or directive). Lines and columns here are 1-based.
/// </summary>
public sealed class DiagnosticsTests
{
    private const string Path = "/specs/tiny.model";

    /// <summary>
    /// One case: a spec that is valid but for one mistake, the id it must raise, where (1-based line and column, and the
    /// token found there) and what the message must name.
    /// </summary>
    public sealed record Case(string Spec, string Id, int Line, int Column, string Token, string Names);

    // The valid spec every case edits:
    //   model Tiny
    //   input 3x32x32
    //
    //   conv1 conv 8 k3 p1 relu maxpool(2, s2)
    //   conv2 conv 16 k3 p1 relu maxpool(2, s2)
    //   fc3 dense 10 softmax
    private static string Tiny(string? conv1 = null, string? conv2 = null, string? fc3 = null, string model = "model Tiny", string input = "input 3x32x32", string line3 = "", string? extra = null)
    {
        var lines = new List<string?> { model, input, line3, conv1 ?? "conv1 conv 8 k3 p1 relu maxpool(2, s2)", conv2 ?? "conv2 conv 16 k3 p1 relu maxpool(2, s2)", fc3 ?? "fc3 dense 10 softmax", extra };
        return string.Join("\n", lines.Where(l => l is not null && l != "<none>")) + "\n";
    }

    public static readonly Dictionary<string, Case> Cases = new()
    {
        // ANX001 unknown keyword
        ["unknown operation"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 relu swish maxpool(2, s2)"), "ANX001", 4, 25, "swish", "conv1"),
        ["unknown layer kind"] = new(Tiny(fc3: "fc3 linear 10"), "ANX001", 6, 5, "linear", "fc3"),
        ["unknown pool argument"] = new(Tiny(conv2: "conv2 conv 16 k3 p1 relu maxpool(2, s2, dilation=2)"), "ANX001", 5, 41, "dilation=2", "conv2"),
        ["unknown preprocess mode"] = new(Tiny(line3: "preprocess opencv"), "ANX001", 3, 12, "opencv", "preprocess"),
        // ANX002 bad number
        ["fractional channel count"] = new(Tiny(conv2: "conv2 conv 16.5 k3 p1 relu maxpool(2, s2)"), "ANX002", 5, 12, "16.5", "conv2"),
        ["malformed stride"] = new(Tiny(conv1: "conv1 conv 8 k3 s2x p1 relu maxpool(2, s2)"), "ANX002", 4, 17, "s2x", "conv1"),
        ["malformed dropout"] = new(Tiny(fc3: "fc3 dense 10 dropout(0.5x) softmax"), "ANX002", 6, 22, "0.5x", "fc3"),
        // ANX003 missing input: reported at the model line, naming the model (the file's name)
        ["missing input"] = new(Tiny(input: "<none>"), "ANX003", 1, 1, "model", "tiny"),
        // ANX004 groups do not divide the channels: output channels (parser), input channels (planner)
        ["groups vs output channels"] = new(Tiny(conv2: "conv2 conv 16 k3 p1 groups=3 relu maxpool(2, s2)"), "ANX004", 5, 21, "groups=3", "conv2"),
        ["groups vs input channels"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 groups=2 relu maxpool(2, s2)"), "ANX004", 4, 1, "conv1", "conv1"),
        // ANX005 kernel larger than its padded input: conv (planner, at the layer), pool (planner, at the op)
        ["conv kernel too large"] = new(Tiny(conv2: "conv2 conv 16 k17 relu"), "ANX005", 5, 1, "conv2", "conv2"),
        ["pool kernel too large"] = new(Tiny(conv2: "conv2 conv 16 k3 p1 relu maxpool(17)"), "ANX005", 5, 26, "maxpool(17)", "conv2"),
        // ANX007 duplicate layer name: at the second definition
        ["duplicate layer"] = new(Tiny(conv2: "conv1 conv 16 k3 p1 relu maxpool(2, s2)"), "ANX007", 5, 1, "conv1", "conv1"),
        // ANX008 missing model
        ["no model line"] = new(Tiny(model: "<none>"), "ANX008", 1, 1, "input", "tiny"),
        ["model name not an identifier"] = new(Tiny(model: "model 2Tiny"), "ANX008", 1, 7, "2Tiny", "model"),
        // ANX009 no layers
        ["no layers"] = new("model Tiny\ninput 3x32x32\n# nothing else\n", "ANX009", 1, 1, "model", "tiny"),
        // ANX010 duplicate argument
        ["kernel twice"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 k5 relu maxpool(2, s2)"), "ANX010", 4, 20, "k5", "conv1"),
        ["pool stride twice"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 relu maxpool(2, s2, stride=2)"), "ANX010", 4, 40, "stride=2", "conv1"),
        // ANX011 operation not allowed
        ["lrn on a dense layer"] = new(Tiny(fc3: "fc3 dense 10 lrn(size=5) softmax"), "ANX011", 6, 14, "lrn", "fc3"),
        ["conv after dense"] = new(Tiny(fc3: "fc3 dense 10", extra: "conv4 conv 8 k1"), "ANX011", 7, 1, "conv4", "conv4"),
        ["kernel on a dense layer"] = new(Tiny(fc3: "fc3 dense 10 k3 softmax"), "ANX011", 6, 14, "k3", "fc3"),
        // ANX012 value out of range
        ["dropout p=1"] = new(Tiny(fc3: "fc3 dense 10 dropout(1) softmax"), "ANX012", 6, 22, "1", "fc3"),
        ["stride 0"] = new(Tiny(conv1: "conv1 conv 8 k3 s0 p1 relu maxpool(2, s2)"), "ANX012", 4, 17, "s0", "conv1"),
        ["pool padding over half the kernel"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 relu maxpool(2, s2, p2)"), "ANX012", 4, 40, "p2", "conv1"),
        ["caffe preprocessing of one channel"] = new(Tiny(input: "input 1x32x32", line3: "preprocess caffe"), "ANX012", 3, 12, "caffe", "preprocess"),
        // ANX013 softmax not last: in its line (parser), on a layer that is not the last (planner)
        ["softmax before relu"] = new(Tiny(fc3: "fc3 dense 10 softmax relu"), "ANX013", 6, 14, "softmax", "fc3"),
        ["softmax on a hidden layer"] = new(Tiny(fc3: "fc3 dense 32 relu softmax", extra: "fc4 dense 10"), "ANX013", 6, 19, "softmax", "fc3"),
        // ANX014 missing value
        ["conv without out channels"] = new(Tiny(conv1: "conv1 conv k3 p1 relu maxpool(2, s2)"), "ANX014", 4, 7, "conv", "conv1"),
        ["conv without kernel"] = new(Tiny(conv1: "conv1 conv 8 p1 relu maxpool(2, s2)"), "ANX014", 4, 7, "conv", "conv1"),
        ["lrn without size"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 relu lrn(alpha=1e-4) maxpool(2, s2)"), "ANX014", 4, 25, "lrn(alpha=1e-4)", "conv1"),
        ["preprocess without a mode"] = new(Tiny(line3: "preprocess"), "ANX014", 3, 1, "preprocess", "preprocess"),
        // ANX015 syntax
        ["option after operation"] = new(Tiny(conv1: "conv1 conv 8 k3 relu p1 maxpool(2, s2)"), "ANX015", 4, 22, "p1", "conv1"),
        ["unbalanced parenthesis"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 relu maxpool(2, s2"), "ANX015", 4, 32, "(", ""),
        ["stray closing parenthesis"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 relu) maxpool(2, s2)"), "ANX015", 4, 24, ")", ""),
        ["arguments to relu"] = new(Tiny(conv1: "conv1 conv 8 k3 p1 relu(2) maxpool(2, s2)"), "ANX015", 4, 20, "relu(2)", "conv1"),
        ["preprocess with two modes"] = new(Tiny(line3: "preprocess caffe torchvision"), "ANX015", 3, 18, "torchvision", "preprocess"),
        // ANX016 duplicate directive
        ["input twice"] = new(Tiny(line3: "input 3x64x64"), "ANX016", 3, 1, "input", "input"),
        ["preprocess twice"] = new(Tiny(line3: "preprocess caffe", extra: "preprocess torchvision"), "ANX016", 7, 1, "preprocess", "preprocess"),
        // ANX017 duplicate checkpoint key: at the layer that binds it second
        ["checkpoint key twice"] = new(Tiny(conv2: "conv2 conv 16 k3 p1 from=conv1 relu maxpool(2, s2)"), "ANX017", 5, 1, "conv2", "conv2"),
        // ANX006 the shape does not reach a dense layer: the last layer is a conv
        ["ends in a conv"] = new(Tiny(fc3: "<none>"), "ANX006", 5, 1, "conv2", "conv2"),
        // ANX018 a name the generated code reserves
        ["model named like the catalog"] = new(Tiny(model: "model ModelCatalog"), "ANX018", 1, 7, "ModelCatalog", "ModelCatalog"),
        ["layer class named like the model"] = new(Tiny(model: "model Conv2Layer"), "ANX018", 5, 1, "conv2", "conv2"),
        // ANX020 too large
        ["conv output too large"] = new(Tiny(input: "input 1x65536x65536", conv1: "conv1 conv 8 k1", conv2: "<none>"), "ANX020", 4, 1, "conv1", "conv1"),
        ["dense input too large"] = new("model Tiny\ninput 1x32768x32768\nfc1 dense 10\n", "ANX020", 3, 1, "fc1", "fc1"),
    };

    public static IEnumerable<object[]> CaseNames() => Cases.Keys.Select(k => new object[] { k });

    private static List<Diagnostic> Diagnose(string spec, string path = Path)
    {
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(new[] { new InMemoryAdditionalText(path, spec) }, track: false)
            .RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorHarness.AssertNoGeneratorFailure(result, spec);
        // A spec with an error generates no model (the catalog, empty, still comes).
        Assert.All(result.Results.Single().GeneratedSources, s => Assert.Equal("ModelCatalog.g.cs", s.HintName));
        return result.Diagnostics.ToList();
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void EachSpecErrorIsADiagnosticAtItsToken(string name)
    {
        Case c = Cases[name];
        List<Diagnostic> all = Diagnose(c.Spec);
        Assert.True(all.Count > 0, "no diagnostic for\n" + c.Spec);
        Diagnostic d = all.FirstOrDefault(x => x.Id == c.Id)
            ?? throw new Xunit.Sdk.XunitException($"expected {c.Id}, got:\n{string.Join("\n", all.Select(GeneratorHarness.Describe))}");
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        FileLinePositionSpan span = d.Location.GetLineSpan();
        Assert.Equal(Path, span.Path);
        Assert.Equal((c.Line, c.Column), (span.StartLinePosition.Line + 1, span.StartLinePosition.Character + 1));
        // The column points at the token the case names, and the span covers it when the error is about that token.
        string line = c.Spec.Split('\n')[c.Line - 1];
        Assert.True(line.Substring(c.Column - 1).StartsWith(c.Token, StringComparison.Ordinal),
            $"{GeneratorHarness.Describe(d)}: column {c.Column} of '{line}' is not '{c.Token}'");
        Assert.True(span.EndLinePosition.Character > span.StartLinePosition.Character || c.Line == 1 && c.Column == 1);
        // The text span agrees with the line span (Roslyn shows either, depending on the host).
        Assert.Equal(c.Spec.Split('\n').Take(c.Line - 1).Sum(l => l.Length + 1) + c.Column - 1, d.Location.SourceSpan.Start);
        if (c.Names.Length > 0)
            Assert.Contains(c.Names, d.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    [Fact]
    public void TokenizerSyntaxErrorsNameTheLayer()
    {
        foreach (string name in new[] { "unbalanced parenthesis", "stray closing parenthesis" })
        {
            Diagnostic d = Diagnose(Cases[name].Spec).First(x => x.Id == "ANX015");
            Assert.Contains("conv1", d.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void TwoSpecsWithTheSameModelNameAreADiagnosticOnTheSecond()
    {
        // Same file name (the model name) in two folders, different classes.
        var texts = new[]
        {
            new InMemoryAdditionalText("/a/tiny.model", Tiny(model: "model TinyA")),
            new InMemoryAdditionalText("/b/tiny.model", Tiny(model: "model TinyB")),
        };
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(texts, track: false).RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorHarness.AssertNoGeneratorFailure(result, "two tiny.model");
        Diagnostic d = Assert.Single(result.Diagnostics);
        Assert.Equal("ANX019", d.Id);
        Assert.Equal("/b/tiny.model", d.Location.GetLineSpan().Path);
        Assert.Equal(0, d.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Contains("tiny", d.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        // The catalog lists the first only.
        string catalog = result.Results.Single().GeneratedSources.Single(s => s.HintName == "ModelCatalog.g.cs").SourceText.ToString();
        Assert.Contains("TinyA.Entry", catalog, StringComparison.Ordinal);
        Assert.DoesNotContain("TinyB.Entry", catalog, StringComparison.Ordinal);
    }

    [Fact]
    public void TwoSpecsWithTheSameClassAreADiagnosticNotAGeneratorFailure()
    {
        var texts = new[]
        {
            new InMemoryAdditionalText("/a/one.model", Tiny()),
            new InMemoryAdditionalText("/a/two.model", Tiny()),
        };
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(texts, track: false).RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorHarness.AssertNoGeneratorFailure(result, "two specs of class Tiny");
        Diagnostic d = Assert.Single(result.Diagnostics);
        Assert.Equal("ANX019", d.Id);
        Assert.Equal("/a/two.model", d.Location.GetLineSpan().Path);
    }

    [Fact]
    public void LayerNamesThatDifferOnlyInCaseAreADiagnosticNotAGeneratorFailure()
    {
        // conv1 and Conv1 both become the nested class Conv1Layer and hint names that differ only in case.
        string spec = Tiny(conv2: "Conv1 conv 16 k3 p1 relu maxpool(2, s2)");
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(new[] { new InMemoryAdditionalText(Path, spec) }, track: false)
            .RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        GeneratorHarness.AssertNoGeneratorFailure(result, spec);
        Assert.Contains(result.Diagnostics, d => d.Id == "ANX007");
    }

    /// <summary>Ids no input can raise, with the reason (none today).</summary>
    private static readonly Dictionary<string, string> Unreachable = new();

    [Fact]
    public void EveryDiagnosticIdIsCoveredByACase()
    {
        var covered = new HashSet<string>(Cases.Values.Select(c => c.Id)) { "ANX019" };
        foreach (string id in Diagnostics.AllIds)
            Assert.True(covered.Contains(id) || Unreachable.ContainsKey(id), $"{id} ({Diagnostics.Get(id).Title}) has no test case");
    }

    [Fact]
    public void EveryDescriptorIsAnErrorWithAnAnxIdAndATitle()
    {
        Assert.Equal(20, Diagnostics.AllIds.Count());
        foreach (string id in Diagnostics.AllIds)
        {
            DiagnosticDescriptor d = Diagnostics.Get(id);
            Assert.Matches("^ANX0[0-9][0-9]$", d.Id);
            Assert.Equal(DiagnosticSeverity.Error, d.DefaultSeverity);
            Assert.False(string.IsNullOrWhiteSpace(d.Title.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
    }

    [Theory]
    [InlineData("torchvision")]
    [InlineData("caffe")]
    [InlineData("none")]
    public void EachPreprocessModeIsValidAndGoesIntoTheMetadata(string mode)
    {
        string spec = Tiny(line3: "preprocess " + mode);
        Assert.Equal(mode, Parsing.SpecParser.Parse(Path, spec).Preprocess);
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(new[] { new InMemoryAdditionalText(Path, spec) }, track: false)
            .RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        Assert.Empty(result.Diagnostics);
        string model = result.Results.Single().GeneratedSources.Single(s => s.HintName == "Tiny.g.cs").SourceText.ToString();
        Assert.Contains($"Preprocess = \"{mode}\",", model, StringComparison.Ordinal);
        // Without the line, nothing is emitted (ModelInfo.Preprocess stays empty).
        Assert.Equal("", Parsing.SpecParser.Parse(Path, Tiny()).Preprocess);
    }

    [Fact]
    public void ATrainSettingRepeatedManyTimesIsReportedOncePerRepeat()
    {
        // Found by fuzzing: each repeat was reported once per earlier occurrence, so 2,000 repeats made two million
        // diagnostics and took seconds. Now one per repeat.
        string spec = Tiny(extra: "train lr=0.1" + string.Concat(Enumerable.Repeat(" lr=0.1", 2000)));
        List<Diagnostic> all = Diagnose(spec);
        Assert.Equal(2000, all.Count(d => d.Id == "ANX010"));
        Assert.All(all, d => Assert.Equal("ANX010", d.Id));
    }

    [Fact]
    public void AValidSpecHasNoDiagnostics()
    {
        GeneratorDriverRunResult result = GeneratorHarness.CreateDriver(new[] { new InMemoryAdditionalText(Path, Tiny()) }, track: false)
            .RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
        Assert.Empty(result.Diagnostics);
        Assert.Contains(result.Results.Single().GeneratedSources, s => s.HintName == "Tiny.conv1.g.cs");
    }
}
