using AlexNet.Aot.Generator.Model;

namespace AlexNet.Aot.Generator.Planning;

/// <summary>What a planned step computes.</summary>
internal enum StepKind { Conv, Dense, Relu, Affine, Lrn, MaxPool, AvgPool, AdaptiveAvgPool, Dropout, Flatten, Softmax }

/// <summary>Where a tensor lives. Offsets are in floats; see <see cref="ModelPlan"/> for the arena layout.</summary>
internal enum Region
{
    /// <summary>The caller's input span (one image, or the whole batch for a model that starts dense).</summary>
    Input,
    /// <summary>The per-image convolution region at the start of the arena: <c>arena[offset]</c>.</summary>
    Worker,
    /// <summary>The batched dense region after it: <c>arena[WorkerFloats + offset * maxBatch]</c>, [batch, n] row-major.</summary>
    Dense,
    /// <summary>The caller's output span (the last layer's raw outputs).</summary>
    Output,
}

/// <summary>A tensor's place: region and offset in floats.</summary>
internal sealed record Slot(Region Region, int Offset);

/// <summary>One step of a layer line after planning: shapes in and out, and where both live.</summary>
internal sealed record StepPlan(
    StepKind Kind,
    string Text,
    OpSpec? Op,
    int InC, int InH, int InW,
    int OutC, int OutH, int OutW,
    Slot In,
    Slot Out)
{
    public int InSize => InC * InH * InW;
    public int OutSize => OutC * OutH * OutW;
}

/// <summary>A checkpoint tensor the layer binds, with its role in the layer.</summary>
internal sealed record ParamPlan(string Key, EquatableArray<int> Shape, string Role, bool Optional);

/// <summary>One spec line, planned.</summary>
internal sealed record LayerPlan(
    int Index,
    LayerSpec Spec,
    string ClassName,
    int InC, int InH, int InW,
    int OutC, int OutH, int OutW,
    int Groups, int CinG, int CoutG, int GemmK, int GemmN,
    bool FuseRelu,
    OpSpec? FoldedBatchNorm,
    EquatableArray<StepPlan> Steps,
    EquatableArray<ParamPlan> Parameters,
    long MultiplyAdds,
    int ScratchOffset,
    int ScratchFloats,
    int FinalC, int FinalH, int FinalW,
    bool Winograd, int TransformOffset, int TileColumns)
{
    public bool IsConv => Spec.Kind == LayerKind.Conv;
    public StepPlan Main => Steps[0];
    public int FinalSize => FinalC * FinalH * FinalW;
    /// <summary>The Winograd output tile: 4 (F(4x4, 3x3)) or 2 (F(2x2, 5x5)).</summary>
    public int WinogradTile => Planner.WinogradTile(Spec.KernelW);
    /// <summary>Winograd output tiles per row and per column.</summary>
    public int TilesW => (OutW + WinogradTile - 1) / WinogradTile;
    public int TilesH => (OutH + WinogradTile - 1) / WinogradTile;
    /// <summary>
    /// Tile columns a Winograd product works on at once: as many (a multiple of 16) as keep that block of the transformed
    /// input, 36 x CinG x block floats, within 512 KiB, half of a Zen 4 or Skylake-SP core's L2, so that every row panel of
    /// weights runs over it from L2; at least 16, at most all of them.
    /// </summary>
    public int TileBlock => System.Math.Max(16, System.Math.Min(TileColumns, (int)(131072L / (36L * CinG)) / 16 * 16));
    /// <summary>Blocks of <see cref="TileBlock"/> tile columns (the last may be narrower).</summary>
    public int TileBlocks => (TileColumns + TileBlock - 1) / TileBlock;
    /// <summary>The Winograd form's name: F(4x4, 3x3) or F(2x2, 5x5).</summary>
    public string WinogradName => $"F({WinogradTile}x{WinogradTile}, {Spec.KernelH}x{Spec.KernelW})";
}

/// <summary>
/// The whole model, planned at build time. The arena of a session is
/// [ WorkerFloats per thread: per-image conv buffers and one column panel | DenseFloatsPerImage * maxBatch: dense activations ],
/// every offset a compile-time constant; buffers are reused once dead.
/// </summary>
internal sealed record ModelPlan(
    ModelSpec Spec,
    EquatableArray<LayerPlan> Layers,
    int WorkerFloats,
    int DenseFloatsPerImage,
    int Classes,
    bool HasSoftmax,
    EquatableArray<SpecDiagnostic> Diagnostics)
{
    public bool HasErrors => Diagnostics.Count > 0;
}
