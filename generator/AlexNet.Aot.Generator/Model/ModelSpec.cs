using System;

namespace AlexNet.Aot.Generator.Model;

// Every type in Model/ is cacheable as a Roslyn incremental value: it is 1) immutable and 2) implements
// structural (pointwise) equality. No ISymbol, SyntaxNode, Location or Compilation is held here.

/// <summary>A place in a spec file: 0-based line and column, the length of the token, and its absolute offset.</summary>
internal sealed record SpecPosition(int Line, int Column, int Length, int Offset);

/// <summary>A diagnostic reported against a spec file, as data (turned into a Roslyn Diagnostic at output time).</summary>
internal sealed record SpecDiagnostic(string Id, string FilePath, SpecPosition Position, string Message);

/// <summary>What a layer line computes first.</summary>
internal enum LayerKind { Conv, Dense }

/// <summary>The operations that may follow a layer's convolution or dense product.</summary>
internal enum OpKind { Relu, Lrn, MaxPool, AvgPool, AdaptiveAvgPool, BatchNorm, Dropout, Flatten, Softmax }

/// <summary>One operation of a layer line, with every argument resolved to its value or default.</summary>
internal sealed record OpSpec(
    OpKind Kind,
    string Text,
    SpecPosition Position,
    int Kernel = 0,
    int Stride = 0,
    int Padding = 0,
    bool CeilMode = false,
    bool CountIncludePad = true,
    int OutH = 0,
    int OutW = 0,
    int Size = 0,
    float Alpha = 0,
    float Beta = 0,
    float K = 0,
    float Eps = 0,
    float Momentum = 0,
    float P = 0,
    string CheckpointPrefix = "");

/// <summary>One layer line: a convolution or dense product and the operations after it.</summary>
internal sealed record LayerSpec(
    string Name,
    LayerKind Kind,
    string Text,
    SpecPosition Position,
    int Out,
    int KernelH,
    int KernelW,
    int Stride,
    int Padding,
    int Groups,
    bool Bias,
    string CheckpointPrefix,
    EquatableArray<OpSpec> Ops);

/// <summary>A <c>key=value</c> pair of the training recipe, kept as written (the trainer interprets it).</summary>
internal sealed record RecipeEntry(string Key, string Value, SpecPosition Position);

/// <summary>A parsed spec file.</summary>
internal sealed record ModelSpec(
    string FilePath,
    string ModelName,
    string ClassName,
    SpecPosition ModelPosition,
    int InputC,
    int InputH,
    int InputW,
    EquatableArray<float> Mean,
    EquatableArray<float> Std,
    EquatableArray<string> Labels,
    string Preprocess,
    EquatableArray<LayerSpec> Layers,
    EquatableArray<RecipeEntry> Recipe,
    EquatableArray<SpecDiagnostic> Diagnostics)
{
    public bool HasErrors => Diagnostics.Count > 0;
}
