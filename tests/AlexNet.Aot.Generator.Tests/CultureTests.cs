using System;
using System.Globalization;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Xunit;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>The output does not depend on the culture of the build: numbers, signs and ordering are invariant.</summary>
public sealed class CultureTests
{
    /// <summary>A culture that writes -1.5 as "−1,5" (U+2212 MINUS SIGN, decimal comma), as some cultures do.</summary>
    private static CultureInfo Hostile()
    {
        var c = (CultureInfo)CultureInfo.InvariantCulture.Clone();
        c.NumberFormat.NegativeSign = "\u2212";
        c.NumberFormat.NumberDecimalSeparator = ",";
        c.NumberFormat.NumberGroupSeparator = "\u00a0";
        c.NumberFormat.PositiveInfinitySymbol = "∞";
        c.NumberFormat.NegativeInfinitySymbol = "\u2212∞";
        return c;
    }

    private static string RunAll(CultureInfo culture)
    {
        CultureInfo saved = CultureInfo.CurrentCulture, savedUi = CultureInfo.CurrentUICulture;
        try
        {
            CultureInfo.CurrentCulture = culture;
            CultureInfo.CurrentUICulture = culture;
            var texts = GeneratorHarness.ShippedTexts().Concat(CompileTests.EdgeSpecs.Select(s => new InMemoryAdditionalText($"/edge/{s.Name}.model", s.Text)))
                .Append(new InMemoryAdditionalText("/bad/bad.model", SnapshotTests.BadSpec))
                .ToArray();
            GeneratorDriverRunResult r = GeneratorHarness.CreateDriver(texts, track: false).RunGenerators(GeneratorHarness.EmptyCompilation()).GetRunResult();
            GeneratorHarness.AssertNoGeneratorFailure(r, culture.Name);
            var sb = new System.Text.StringBuilder();
            foreach (GeneratedSourceResult s in r.Results.Single().GeneratedSources.OrderBy(s => s.HintName, StringComparer.Ordinal))
                sb.Append("==== ").Append(s.HintName).Append('\n').Append(s.SourceText.ToString());
            foreach (Diagnostic d in r.Diagnostics)
                sb.Append(GeneratorHarness.Describe(d)).Append('\n');
            return sb.ToString();
        }
        finally
        {
            CultureInfo.CurrentCulture = saved;
            CultureInfo.CurrentUICulture = savedUi;
        }
    }

    [Fact]
    public void OutputUnderAMinusSignAndDecimalCommaCultureIsByteIdenticalToInvariant()
    {
        CultureInfo hostile = Hostile();
        Assert.Equal("\u22121,5", (-1.5f).ToString(hostile)); // the culture really is hostile

        string invariant = RunAll(CultureInfo.InvariantCulture);
        string other = RunAll(hostile);
        Assert.Contains("-0.5f", invariant, StringComparison.Ordinal); // a negative float literal is in the output
        Assert.DoesNotContain("\u2212", invariant, StringComparison.Ordinal);
        Assert.Equal(invariant.Length, other.Length);
        int at = Enumerable.Range(0, invariant.Length).FirstOrDefault(i => invariant[i] != other[i], -1);
        Assert.True(at < 0, $"differs at {at}: '{invariant.Substring(Math.Max(0, at - 60), 120)}' vs '{other.Substring(Math.Max(0, at - 60), 120)}'");
    }

    [Fact]
    public void TwoRunsGiveTheSameOutput()
    {
        Assert.Equal(RunAll(CultureInfo.InvariantCulture), RunAll(CultureInfo.InvariantCulture));
    }
}
