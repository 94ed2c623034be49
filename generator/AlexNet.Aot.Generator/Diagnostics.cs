using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace AlexNet.Aot.Generator;

/// <summary>Every diagnostic the generator reports. Ids are tracked in AnalyzerReleases.Unshipped.md.</summary>
internal static class Diagnostics
{
    private const string Category = "AlexNet.Aot.Spec";

    public const string UnknownKeyword = "ANX001";
    public const string BadNumber = "ANX002";
    public const string MissingInput = "ANX003";
    public const string GroupsDoNotDivide = "ANX004";
    public const string KernelTooLarge = "ANX005";
    public const string ShapeDoesNotReachDense = "ANX006";
    public const string DuplicateLayer = "ANX007";
    public const string MissingModel = "ANX008";
    public const string NoLayers = "ANX009";
    public const string DuplicateArgument = "ANX010";
    public const string OpNotAllowed = "ANX011";
    public const string ValueOutOfRange = "ANX012";
    public const string SoftmaxNotLast = "ANX013";
    public const string MissingValue = "ANX014";
    public const string Syntax = "ANX015";
    public const string DuplicateDirective = "ANX016";
    public const string DuplicateCheckpointKey = "ANX017";
    public const string ReservedName = "ANX018";
    public const string DuplicateModel = "ANX019";
    public const string TooLarge = "ANX020";

    private static readonly Dictionary<string, string> Titles = new()
    {
        [UnknownKeyword] = "Unknown keyword in model spec",
        [BadNumber] = "Malformed number in model spec",
        [MissingInput] = "Model spec has no input shape",
        [GroupsDoNotDivide] = "Convolution groups do not divide the channels",
        [KernelTooLarge] = "Kernel larger than its padded input",
        [ShapeDoesNotReachDense] = "Shape does not reach the dense layers",
        [DuplicateLayer] = "Duplicate layer name",
        [MissingModel] = "Model spec has no valid model name",
        [NoLayers] = "Model spec has no layers",
        [DuplicateArgument] = "Argument given twice",
        [OpNotAllowed] = "Operation not allowed here",
        [ValueOutOfRange] = "Value out of range",
        [SoftmaxNotLast] = "Softmax must be the last operation",
        [MissingValue] = "Required value missing",
        [Syntax] = "Malformed line",
        [DuplicateDirective] = "Directive given twice",
        [DuplicateCheckpointKey] = "Two layers bind the same checkpoint key",
        [ReservedName] = "Name reserved by the generated code",
        [DuplicateModel] = "Two model specs have the same name",
        [TooLarge] = "Model too large",
    };

    private static readonly Dictionary<string, DiagnosticDescriptor> Descriptors = Build();

    private static Dictionary<string, DiagnosticDescriptor> Build()
    {
        var d = new Dictionary<string, DiagnosticDescriptor>();
        foreach (KeyValuePair<string, string> kv in Titles)
        {
            d[kv.Key] = new DiagnosticDescriptor(kv.Key, kv.Value, "{0}", Category, DiagnosticSeverity.Error,
                isEnabledByDefault: true, helpLinkUri: "model-spec/README.md#diagnostics");
        }
        return d;
    }

    public static IEnumerable<string> AllIds => Titles.Keys;

    public static DiagnosticDescriptor Get(string id) => Descriptors[id];
}
