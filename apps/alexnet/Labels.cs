using System.Globalization;

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

/// <summary>Chooses the labels for a model. Today every model gets its class indices;
/// a label list (ImageNet, Fashion-MNIST, or a --labels file) plugs in here.</summary>
internal static class Labels
{
    public static IClassLabels For(ModelInfo model) => IndexLabels.Instance;
}
