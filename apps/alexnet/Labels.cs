using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using AlexNet.Aot.Imaging;

namespace AlexNet.Aot.Cli;

/// <summary>Names for a model's classes.</summary>
internal interface IClassLabels
{
    /// <summary>The label of class <paramref name="index"/>.</summary>
    string Label(int index);
}

/// <summary>Labels that are the class indices themselves.</summary>
internal sealed class IndexLabels : IClassLabels
{
    public static readonly IndexLabels Instance = new();

    public string Label(int index) => index.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Labels from a list, one per class.</summary>
internal sealed class ListLabels : IClassLabels
{
    private readonly IReadOnlyList<string> _names;

    public ListLabels(IReadOnlyList<string> names) => _names = names;

    public string Label(int index) =>
        (uint)index < (uint)_names.Count ? _names[index] : index.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Chooses the labels for a model, first that applies: a <c>--labels</c> file (one name per line, one line per
/// class); the spec's <c>labels</c> line (alexnet-fmnist's Fashion-MNIST names); the built-in ImageNet names for a
/// 1000-class model; else the class numbers.
/// </summary>
internal static class Labels
{
    public static IClassLabels For(ModelInfo model) => For(model, labelsFile: null);

    public static IClassLabels For(ModelInfo model, string? labelsFile)
    {
        if (labelsFile is not null)
            return new ListLabels(ReadFile(labelsFile, model.Classes));
        if (model.Labels.Length == model.Classes)
            return new ListLabels(model.Labels);
        if (model.Classes == ImageNetLabels.Count)
            return new ListLabels(ImageNetLabels.Names.ToArray());
        return IndexLabels.Instance;
    }

    /// <summary>Reads a labels file: one name per line (trailing blank lines ignored), exactly <paramref name="classes"/> lines.</summary>
    private static string[] ReadFile(string path, int classes)
    {
        InputFiles.RequireFile("--labels", path);
        var info = new FileInfo(path);
        if (info.Length > 16L * 1024 * 1024)
            throw new CliException($"--labels {path}: {info.Length} bytes is too large for a labels file");
        var names = new List<string>(File.ReadAllLines(path));
        while (names.Count > 0 && names[^1].Trim().Length == 0) names.RemoveAt(names.Count - 1);
        if (names.Count != classes)
            throw new CliException($"--labels {path}: has {names.Count} labels (one per line); the model has {classes} classes");
        for (int i = 0; i < names.Count; i++) names[i] = names[i].Trim();
        return names.ToArray();
    }
}
