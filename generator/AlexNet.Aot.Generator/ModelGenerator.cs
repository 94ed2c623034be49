using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using AlexNet.Aot.Generator.Emit;
using AlexNet.Aot.Generator.Model;
using AlexNet.Aot.Generator.Parsing;
using AlexNet.Aot.Generator.Planning;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace AlexNet.Aot.Generator;

/// <summary>
/// The incremental generator: AdditionalFiles <c>*.model</c> → <see cref="ModelSpec"/> → <see cref="ModelPlan"/> →
/// one file per layer plus the network class, and a catalog of every model.
/// Source depends on the plan alone; diagnostics travel beside it.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class ModelGenerator : IIncrementalGenerator
{
    /// <summary>Names of the pipeline steps, so tests can assert what was cached.</summary>
    public static class TrackingNames
    {
        public const string Parse = nameof(Parse);
        public const string Plan = nameof(Plan);
        public const string Namespace = nameof(Namespace);
        public const string Catalog = nameof(Catalog);
    }

    /// <summary>The namespace when the project sets no RootNamespace.</summary>
    public const string DefaultNamespace = "AlexNet.Aot.Models";

    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        IncrementalValuesProvider<ModelSpec> specs = context.AdditionalTextsProvider
            .Where(static t => t.Path.EndsWith(".model", StringComparison.OrdinalIgnoreCase))
            .Select(static (t, ct) => SpecParser.Parse(t.Path, t.GetText(ct)?.ToString() ?? string.Empty))
            .WithTrackingName(TrackingNames.Parse);

        IncrementalValuesProvider<ModelPlan> plans = specs
            .Select(static (s, _) => SafePlan(s))
            .WithTrackingName(TrackingNames.Plan);

        IncrementalValueProvider<string> ns = context.AnalyzerConfigOptionsProvider
            .Select(static (o, _) => o.GlobalOptions.TryGetValue("build_property.RootNamespace", out string? v) && IsNamespace(v) ? v! : DefaultNamespace)
            .WithTrackingName(TrackingNames.Namespace);

        // Pipeline 1: diagnostics.
        context.RegisterSourceOutput(plans.Select(static (p, _) => p.Diagnostics), static (spc, diags) =>
        {
            foreach (SpecDiagnostic d in diags) spc.ReportDiagnostic(ToDiagnostic(d));
        });

        // The names of every model: two specs may not share a model name (file name) or class name.
        IncrementalValueProvider<(ImmutableArray<CatalogItem> Left, string Right)> catalog = plans
            .Where(static p => !p.HasErrors)
            .Select(static (p, _) => new CatalogItem(p.Spec.ModelName, p.Spec.ClassName, p.Spec.FilePath, p.Spec.ModelPosition))
            .Collect()
            .Combine(ns)
            .WithTrackingName(TrackingNames.Catalog);
        IncrementalValueProvider<EquatableArray<CatalogItem>> duplicates = catalog
            .Select(static (c, _) => FindDuplicates(c.Left));

        // Pipeline 2: source per model (a model that repeats another's name is reported, not emitted).
        context.RegisterSourceOutput(plans.Where(static p => !p.HasErrors).Combine(ns).Combine(duplicates), static (spc, input) =>
        {
            ModelPlan plan = input.Left.Left;
            foreach (CatalogItem d in input.Right)
                if (d.FilePath == plan.Spec.FilePath) return;
            foreach ((string hint, string source) in Emitter.EmitModel(plan, input.Left.Right))
                spc.AddSource(hint, SourceText.From(source, System.Text.Encoding.UTF8));
        });

        // Pipeline 3: the catalog of every model, and the duplicates' diagnostics.
        context.RegisterSourceOutput(catalog.Combine(duplicates), static (spc, input) =>
        {
            var rejected = new HashSet<string>(StringComparer.Ordinal);
            foreach (CatalogItem d in input.Right)
            {
                rejected.Add(d.FilePath);
                spc.ReportDiagnostic(ToDiagnostic(new SpecDiagnostic(Diagnostics.DuplicateModel, d.FilePath, d.Position,
                    $"{d.ModelName}: another spec already defines model name '{d.ModelName}' or class '{d.ClassName}'")));
            }
            var models = new List<(string, string)>();
            foreach (CatalogItem item in Sorted(input.Left.Left))
                if (!rejected.Contains(item.FilePath)) models.Add((item.ModelName, item.ClassName));
            spc.AddSource("ModelCatalog.g.cs", SourceText.From(Emitter.EmitCatalog(models, input.Left.Right), System.Text.Encoding.UTF8));
        });
    }

    private static List<CatalogItem> Sorted(ImmutableArray<CatalogItem> items)
    {
        var list = new List<CatalogItem>(items);
        list.Sort(static (a, b) => string.CompareOrdinal(a.ModelName, b.ModelName) != 0
            ? string.CompareOrdinal(a.ModelName, b.ModelName)
            : string.CompareOrdinal(a.FilePath, b.FilePath));
        return list;
    }

    /// <summary>Every spec after the first (in name, then path order) that repeats a model name or class name.</summary>
    private static EquatableArray<CatalogItem> FindDuplicates(ImmutableArray<CatalogItem> items)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var classes = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var dups = new List<CatalogItem>();
        foreach (CatalogItem item in Sorted(items))
        {
            bool newName = names.Add(item.ModelName);
            bool newClass = classes.Add(item.ClassName);
            if (!newName || !newClass) dups.Add(item);
        }
        return dups.ToEquatable();
    }

    private static ModelPlan SafePlan(ModelSpec spec)
    {
        try
        {
            return Planner.Plan(spec);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var d = new List<SpecDiagnostic>(spec.Diagnostics)
            {
                new(Diagnostics.TooLarge, spec.FilePath, new SpecPosition(0, 0, 0, 0), $"{spec.ModelName}: internal error while planning: {e.GetType().Name}: {e.Message}"),
            };
            return new ModelPlan(spec, EquatableArray<LayerPlan>.Empty, 0, 0, 0, false, d.ToEquatable());
        }
    }

    internal static Diagnostic ToDiagnostic(SpecDiagnostic d)
    {
        var start = new LinePosition(d.Position.Line, d.Position.Column);
        var end = new LinePosition(d.Position.Line, d.Position.Column + d.Position.Length);
        Location location = Location.Create(d.FilePath, new TextSpan(d.Position.Offset, d.Position.Length), new LinePositionSpan(start, end));
        return Diagnostic.Create(Diagnostics.Get(d.Id), location, d.Message);
    }

    private static bool IsNamespace(string? s)
    {
        if (string.IsNullOrEmpty(s)) return false;
        foreach (string part in s!.Split('.'))
            if (!SpecParser.IsIdentifier(part)) return false;
        return true;
    }

    /// <summary>A model's entry in the catalog step (cacheable: strings only).</summary>
    internal sealed record CatalogItem(string ModelName, string ClassName, string FilePath, SpecPosition Position);
}
