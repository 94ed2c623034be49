using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using AlexNet.Aot.Generator.Model;
using AlexNet.Aot.Generator.Planning;
using Microsoft.CodeAnalysis;
using Xunit;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>
/// The values that flow through the incremental pipeline must be cacheable: immutable, with value equality, and free of
/// compilation objects (Roslyn's incremental-generators cookbook). This walks every model type, through every property
/// and field type, recursively.
/// </summary>
public sealed class ModelWalkTests
{
    private static readonly Type[] Forbidden =
    {
        typeof(ISymbol), typeof(SyntaxNode), typeof(SyntaxToken), typeof(SyntaxTree), typeof(Location),
        typeof(Compilation), typeof(SemanticModel), typeof(AdditionalText), typeof(Diagnostic),
    };

    private const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>The roots: every type of the Model and Planning namespaces that holds data, and the catalog step's item.</summary>
    public static IEnumerable<Type> Roots()
    {
        Assembly asm = typeof(ModelGenerator).Assembly;
        foreach (Type t in asm.GetTypes())
        {
            if (t.Namespace is not ("AlexNet.Aot.Generator.Model" or "AlexNet.Aot.Generator.Planning")) continue;
            if (t.IsNested || t.IsDefined(typeof(CompilerGeneratedAttribute)) || (t.IsAbstract && t.IsSealed)) continue;
            yield return t;
        }
        yield return typeof(ModelGenerator.CatalogItem);
    }

    [Fact]
    public void TheRootsIncludeThePipelineValues()
    {
        var roots = Roots().ToList();
        foreach (Type t in new[] { typeof(ModelSpec), typeof(LayerSpec), typeof(OpSpec), typeof(SpecPosition), typeof(SpecDiagnostic),
                     typeof(ModelPlan), typeof(LayerPlan), typeof(StepPlan), typeof(ParamPlan), typeof(Slot), typeof(EquatableArray<>) })
            Assert.Contains(t, roots);
    }

    [Fact]
    public void NoSymbolSyntaxLocationCompilationOrBareArrayHidesInAModel()
    {
        var problems = new List<string>();
        var seen = new HashSet<Type>();
        foreach (Type root in Roots()) Walk(root, root.Name, seen, problems);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void EveryModelHasValueEqualityAndNoSettableState()
    {
        var problems = new List<string>();
        var seen = new HashSet<Type>();
        foreach (Type root in Roots()) Walk(root, root.Name, seen, new List<string>());
        foreach (Type t in seen)
        {
            if (t.IsPrimitive || t.IsEnum || t == typeof(string) || t.IsGenericParameter) continue;
            Type closed = t.IsGenericTypeDefinition ? t.MakeGenericType(typeof(int)) : t;
            Type equatable = typeof(IEquatable<>).MakeGenericType(closed);
            if (!equatable.IsAssignableFrom(closed)) problems.Add($"{t.Name} does not implement IEquatable<{t.Name}>");
            foreach (PropertyInfo p in t.GetProperties(Instance))
            {
                MethodInfo? set = p.SetMethod;
                if (set is not null && !Array.Exists(set.ReturnParameter.GetRequiredCustomModifiers(), m => m.FullName == "System.Runtime.CompilerServices.IsExternalInit"))
                    problems.Add($"{t.Name}.{p.Name} has a setter that is not init-only");
            }
            if (t.IsValueType)
            {
                foreach (FieldInfo f in t.GetFields(Instance))
                    if (!f.IsInitOnly) problems.Add($"{t.Name}.{f.Name} is a mutable field of a struct");
            }
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    private static void Walk(Type t, string path, HashSet<Type> seen, List<string> problems)
    {
        if (Nullable.GetUnderlyingType(t) is { } underlying) t = underlying;
        if (t.IsArray)
        {
            problems.Add($"{path}: an array {t.Name} (wrap it in EquatableArray<T>)");
            Walk(t.GetElementType()!, path + "[]", seen, problems);
            return;
        }
        foreach (Type f in Forbidden)
        {
            if (f.IsAssignableFrom(t) || t == f)
                problems.Add($"{path}: {t.FullName} is a {f.Name}");
        }
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(EquatableArray<>))
        {
            // The allowed wrapper: its private T[] is the point; check what it holds.
            seen.Add(typeof(EquatableArray<>));
            Walk(t.GetGenericArguments()[0], path + "<T>", seen, problems);
            return;
        }
        if (t.IsGenericTypeDefinition && t == typeof(EquatableArray<>))
        {
            seen.Add(t);
            return;
        }
        if (t.IsPrimitive || t.IsEnum || t == typeof(string) || t.IsGenericParameter) return;
        if (t.Assembly != typeof(ModelGenerator).Assembly && t.Assembly != typeof(ModelWalkTests).Assembly)
        {
            problems.Add($"{path}: {t.FullName} is not a model type of the generator (nor a primitive, string or enum)");
            return;
        }
        if (!seen.Add(t)) return;
        foreach (FieldInfo f in t.GetFields(Instance))
            Walk(f.FieldType, $"{path}.{f.Name}", seen, problems);
        foreach (PropertyInfo p in t.GetProperties(Instance))
        {
            if (p.GetIndexParameters().Length > 0) continue;
            if (p.Name == "EqualityContract") continue; // records: typeof(self), static in effect
            Walk(p.PropertyType, $"{path}.{p.Name}", seen, problems);
        }
    }

    [Fact]
    public void TheWalkCatchesWhatItLooksFor()
    {
        var problems = new List<string>();
        Walk(typeof(Bad), "Bad", new HashSet<Type>(), problems);
        Assert.Contains(problems, p => p.Contains("array", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("Location", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("ISymbol", StringComparison.Ordinal));
    }

    private sealed record Bad(int[] Shape, Location Where, INamedTypeSymbol Symbol);
}
