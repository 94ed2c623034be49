namespace AlexNet.Aot.Generator.Emit;

/// <summary>
/// One rung of the ISA ladder every kernel has: AVX-512 → AVX2+FMA → NEON/SSE (Vector128) → portable scalar.
/// <c>VectorNNN.IsHardwareAccelerated</c> is a JIT/AOT-time constant, so each kernel keeps only its rung.
/// </summary>
internal sealed record IsaPath(string Suffix, string Vector, int Lanes, string Guard, string Description, int PanelRows, int WinogradRows, int WinogradVectors)
{
    /// <summary>Tile columns of a Winograd product panel on this path (divides <c>Planner.WinogradColumnAlign</c>).</summary>
    public int WinogradColumns => Vector.Length == 0 ? 4 : WinogradVectors * Lanes;

    /// <summary>Columns of an im2col panel on this path: two vectors, or 4 on the scalar path.</summary>
    public int PanelColumns => Vector.Length == 0 ? 4 : 2 * Lanes;

    public bool IsScalar => Vector.Length == 0;

    public static readonly IsaPath[] Ladder =
    {
        // MR x NR register tiles: 8 x 32 uses 16 of AVX-512's 32 zmm accumulators, 6 x 16 uses 12 of AVX2's 16 ymm,
        // 4 x 8 uses 8 of the 16 xmm (SSE) or 32 q registers (NEON), and the scalar tile is 4 x 4.
        // Winograd product tiles (rows = output channels, columns = 4x4 tiles): 16 x 16 on AVX-512 (16 zmm accumulators;
        // 13x13 outputs have exactly 16 tiles), 6 x 16 on AVX2, 4 x 8 on Vector128 and 4 x 4 scalar.
        new("512", "Vector512", 16, "Vector512.IsHardwareAccelerated", "AVX-512 (Vector512, 16 floats)", 8, 16, 1),
        new("256", "Vector256", 8, "Vector256.IsHardwareAccelerated", "AVX2+FMA (Vector256, 8 floats)", 6, 6, 2),
        new("128", "Vector128", 4, "Vector128.IsHardwareAccelerated", "NEON or SSE (Vector128, 4 floats)", 4, 4, 2),
        new("Scalar", "", 1, "", "portable scalar", 4, 4, 4),
    };
}
