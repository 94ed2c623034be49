using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AlexNet.Aot.Training;

/// <summary>
/// Single-precision matrix product for the training kernels: C[m, n] = (or +=) op(A)[m, k] x op(B)[k, n], where
/// A(i, p) = a[i * rsA + p * csA] and B(p, j) = b[p * rsB + j * csB], so any transpose is a choice of strides.
/// C is row-major with row stride <c>ldc</c>.
/// </summary>
/// <remarks>
/// The classic blocked scheme (Goto/BLIS): B is packed into column panels of 2 vectors (kc x nr), A into row panels
/// (kc x mr), and a register-tiled micro-kernel keeps the whole mr x nr tile of C in registers for the kc steps.
/// Tiles: 8 x 32 on AVX-512 (16 zmm accumulators), 6 x 16 on AVX2 (12 ymm), 4 x 8 on NEON/SSE (8 q registers),
/// 4 x 2 scalar. One instance per thread: it owns its packing buffers, and a product allocates nothing.
/// </remarks>
internal sealed partial class Gemm
{
    /// <summary>Depth of one packed block (floats of k): a B panel of kc x 32 floats is 32 KiB, L1-sized.</summary>
    public const int KC = 256;
    /// <summary>Rows of A packed at once (a multiple of 8, 6 and 4).</summary>
    public const int MC = 96;
    /// <summary>Columns of B packed at once.</summary>
    public const int NC = 1536;

    private readonly float[] _packA = GC.AllocateUninitializedArray<float>(MC * KC, pinned: true);
    private readonly float[] _packB = GC.AllocateUninitializedArray<float>(KC * (NC + 64), pinned: true);
    private readonly float[] _tile = new float[8 * 64];

    /// <summary>The ISA the products run on.</summary>
    public static string Path => Vector512.IsHardwareAccelerated ? "avx512" : Vector256.IsHardwareAccelerated ? "avx2" : Vector128.IsHardwareAccelerated ? "vector128" : "scalar";

    /// <summary>C = (or, with <paramref name="accumulate"/>, +=) A x B; see the class remarks for the strides.</summary>
    public void Multiply(int m, int n, int k, ref float a, nint rsA, nint csA, ref float b, nint rsB, nint csB, ref float c, nint ldc, bool accumulate)
        => Dispatch(m, n, k, ref a, rsA, csA, packedA: false, ref b, rsB, csB, ref c, ldc, accumulate);

    /// <summary>Rows of A per packed panel on this machine's path (the micro-kernel's tile height).</summary>
    public static int PanelRows => Vector512.IsHardwareAccelerated ? 8 : Vector256.IsHardwareAccelerated ? 6 : 4;

    /// <summary>Floats that <see cref="PackWhole"/> writes for an m x k A: whole panels of <see cref="PanelRows"/> rows.</summary>
    public static long PackedLength(int m, int k) => (long)((m + PanelRows - 1) / PanelRows) * PanelRows * k;

    /// <summary>Packs all of A (m x k, strides as in <see cref="Multiply"/>) once, for products that reuse it
    /// (<see cref="MultiplyPacked"/>): panel r holds rows r*mr.. for every k, rows past m zero.</summary>
    public static void PackWhole(int m, int k, ref float a, nint rsA, nint csA, ref float dst)
    {
        if (m > 0 && k > 0) PackA(m, k, PanelRows, ref a, rsA, csA, ref dst);
    }

    /// <summary><see cref="Multiply"/> with A already packed by <see cref="PackWhole"/> (same m and k).</summary>
    public void MultiplyPacked(int m, int n, int k, ref float packedA, ref float b, nint rsB, nint csB, ref float c, nint ldc, bool accumulate)
        => Dispatch(m, n, k, ref packedA, 0, 0, packedA: true, ref b, rsB, csB, ref c, ldc, accumulate);

    /// <summary>Empty products first (k = 0 clears C unless accumulating), then the path's micro-kernel with its tile height.</summary>
    private void Dispatch(int m, int n, int k, ref float a, nint rsA, nint csA, bool packedA, ref float b, nint rsB, nint csB, ref float c, nint ldc, bool accumulate)
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++) MemoryMarshalEx.Clear(ref Unsafe.Add(ref c, i * ldc), n);
            return;
        }
        if (Vector512.IsHardwareAccelerated) Run<V512>(PanelRows, m, n, k, ref a, rsA, csA, packedA, ref b, rsB, csB, ref c, ldc, accumulate);
        else if (Vector256.IsHardwareAccelerated) Run<V256>(PanelRows, m, n, k, ref a, rsA, csA, packedA, ref b, rsB, csB, ref c, ldc, accumulate);
        else if (Vector128.IsHardwareAccelerated) Run<V128>(PanelRows, m, n, k, ref a, rsA, csA, packedA, ref b, rsB, csB, ref c, ldc, accumulate);
        else Run<V1>(PanelRows, m, n, k, ref a, rsA, csA, packedA, ref b, rsB, csB, ref c, ldc, accumulate);
    }

    private void Run<V>(int mr, int m, int n, int k, ref float a, nint rsA, nint csA, bool packedA, ref float b, nint rsB, nint csB, ref float c, nint ldc, bool accumulate)
        where V : struct, IVec<V>
    {
        int nr = 2 * V.Count;
        ref float packA = ref _packA[0];
        ref float packB = ref _packB[0];
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            // Equal depth blocks of at most KC (K = 800 runs as 4 x 200, not 3 x 256 + 32: a thin last block would
            // load and store every C tile for a few steps of k).
            int kStep = (k + (k + KC - 1) / KC - 1) / ((k + KC - 1) / KC);
            for (int pc = 0; pc < k; pc += kStep)
            {
                int kc = Math.Min(kStep, k - pc);
                PackB(kc, nc, nr, ref Unsafe.Add(ref b, pc * rsB + jc * csB), rsB, csB, ref packB);
                bool acc = accumulate || pc > 0;
                for (int ic = 0; ic < m; ic += MC)
                {
                    int mc = Math.Min(MC, m - ic);
                    // Panel (ic + ir) / mr of a whole-packed A holds every k: its block pc starts at pc * mr.
                    if (!packedA) PackA(mc, kc, mr, ref Unsafe.Add(ref a, ic * rsA + pc * csA), rsA, csA, ref packA);
                    ref float blockA = ref packedA ? ref Unsafe.Add(ref a, (nint)ic * k + pc * mr) : ref packA;
                    nint panelStride = packedA ? k : kc;
                    for (int jr = 0; jr < nc; jr += nr)
                    {
                        int cols = Math.Min(nr, nc - jr);
                        ref float pb = ref Unsafe.Add(ref packB, jr * kc);
                        for (int ir = 0; ir < mc; ir += mr)
                        {
                            int rows = Math.Min(mr, mc - ir);
                            ref float pa = ref Unsafe.Add(ref blockA, ir * panelStride);
                            ref float ct = ref Unsafe.Add(ref c, (ic + ir) * ldc + jc + jr);
                            if (rows == mr && cols == nr)
                            {
                                Kernel<V>(mr, kc, ref pa, ref pb, ref ct, ldc, acc);
                            }
                            else
                            {
                                ref float tile = ref _tile[0];
                                if (acc)
                                    for (int r = 0; r < rows; r++)
                                        for (int j = 0; j < cols; j++) Unsafe.Add(ref tile, r * nr + j) = Unsafe.Add(ref ct, r * ldc + j);
                                Kernel<V>(mr, kc, ref pa, ref pb, ref tile, nr, acc);
                                for (int r = 0; r < rows; r++)
                                    for (int j = 0; j < cols; j++) Unsafe.Add(ref ct, r * ldc + j) = Unsafe.Add(ref tile, r * nr + j);
                            }
                        }
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kernel<V>(int mr, int kc, ref float pa, ref float pb, ref float c, nint ldc, bool acc) where V : struct, IVec<V>
    {
        if (mr == 8) Kernel8x2<V>(kc, ref pa, ref pb, ref c, ldc, acc);
        else if (mr == 6) Kernel6x2<V>(kc, ref pa, ref pb, ref c, ldc, acc);
        else Kernel4x2<V>(kc, ref pa, ref pb, ref c, ldc, acc);
    }

    /// <summary>Packs A[mc, kc] into row panels of <paramref name="mr"/>: panel r holds, for each p, the mr values A(r*mr.., p); rows past mc are zero.</summary>
    private static void PackA(int mc, int kc, int mr, ref float a, nint rsA, nint csA, ref float dst)
    {
        for (int ir = 0; ir < mc; ir += mr)
        {
            int rows = Math.Min(mr, mc - ir);
            ref float panel = ref Unsafe.Add(ref dst, ir * kc);
            if (csA == 1 && rows == mr)
            {
                // Rows are contiguous in k: read each row once, write it strided into the panel (8 x 8 blocks
                // transposed in registers where the panel is 8 rows and AVX is there).
                int p0 = 0;
                if (mr == 8 && Transpose.IsSupported)
                    for (; p0 + 8 <= kc; p0 += 8)
                        Transpose.Block8x8(ref Unsafe.Add(ref a, ir * rsA + p0), rsA, ref Unsafe.Add(ref panel, p0 * 8), 8);
                for (int r = 0; r < mr; r++)
                {
                    ref float src = ref Unsafe.Add(ref a, (ir + r) * rsA);
                    for (int p = p0; p < kc; p++) Unsafe.Add(ref panel, p * mr + r) = Unsafe.Add(ref src, p);
                }
                continue;
            }
            if (rsA == 1 && rows == mr)
            {
                // Columns are contiguous in m (a transposed A): each step of k is one contiguous copy.
                for (int p = 0; p < kc; p++)
                    Small.Copy(ref Unsafe.Add(ref a, ir + p * csA), ref Unsafe.Add(ref panel, p * mr), mr);
                continue;
            }
            for (int p = 0; p < kc; p++)
            {
                ref float d = ref Unsafe.Add(ref panel, p * mr);
                ref float src = ref Unsafe.Add(ref a, ir * rsA + p * csA);
                int r = 0;
                for (; r < rows; r++) Unsafe.Add(ref d, r) = Unsafe.Add(ref src, r * rsA);
                for (; r < mr; r++) Unsafe.Add(ref d, r) = 0f;
            }
        }
    }

    /// <summary>Packs B[kc, nc] into column panels of <paramref name="nr"/>: panel j holds, for each p, the nr values B(p, j*nr..); columns past nc are zero.</summary>
    private static void PackB(int kc, int nc, int nr, ref float b, nint rsB, nint csB, ref float dst)
    {
        for (int jr = 0; jr < nc; jr += nr)
        {
            int cols = Math.Min(nr, nc - jr);
            ref float panel = ref Unsafe.Add(ref dst, jr * kc);
            if (csB == 1 && cols == nr)
            {
                for (int p = 0; p < kc; p++)
                    Small.Copy(ref Unsafe.Add(ref b, p * rsB + jr), ref Unsafe.Add(ref panel, p * nr), nr);
                continue;
            }
            if (csB == 1)
            {
                // The last, partial panel of a row-major B: copy what there is, zero the rest.
                for (int p = 0; p < kc; p++)
                {
                    ref float d = ref Unsafe.Add(ref panel, p * nr);
                    Small.Copy(ref Unsafe.Add(ref b, p * rsB + jr), ref d, cols);
                    for (int j = cols; j < nr; j++) Unsafe.Add(ref d, j) = 0f;
                }
                continue;
            }
            if (rsB == 1 && cols == nr && Transpose.IsSupported)
            {
                // A transposed B (columns contiguous in k): 8 x 8 blocks transposed in registers.
                int p0 = 0;
                for (; p0 + 8 <= kc; p0 += 8)
                    for (int j = 0; j < nr; j += 8)
                        Transpose.Block8x8(ref Unsafe.Add(ref b, p0 + (jr + j) * csB), csB, ref Unsafe.Add(ref panel, p0 * nr + j), nr);
                for (int p = p0; p < kc; p++)
                    for (int j = 0; j < nr; j++) Unsafe.Add(ref panel, p * nr + j) = Unsafe.Add(ref b, p + (jr + j) * csB);
                continue;
            }
            for (int p = 0; p < kc; p++)
            {
                ref float d = ref Unsafe.Add(ref panel, p * nr);
                ref float src = ref Unsafe.Add(ref b, p * rsB + jr * csB);
                int j = 0;
                for (; j < cols; j++) Unsafe.Add(ref d, j) = Unsafe.Add(ref src, j * csB);
                for (; j < nr; j++) Unsafe.Add(ref d, j) = 0f;
            }
        }
    }

    /// <summary>The 8-row x 2-vector micro-kernel: C[8, 2w] (+)= A panel [kc][8] x B panel [kc][2w], 16 accumulators in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel8x2<V>(int kc, ref float pa, ref float pb, ref float c, nint ldc, bool accumulate) where V : struct, IVec<V>
    {
        nint w = V.Count;
        V c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (accumulate)
        {
            c00 = V.Load(ref c); c01 = V.Load(ref Unsafe.Add(ref c, 0 * ldc + w));
            c10 = V.Load(ref Unsafe.Add(ref c, 1 * ldc)); c11 = V.Load(ref Unsafe.Add(ref c, 1 * ldc + w));
            c20 = V.Load(ref Unsafe.Add(ref c, 2 * ldc)); c21 = V.Load(ref Unsafe.Add(ref c, 2 * ldc + w));
            c30 = V.Load(ref Unsafe.Add(ref c, 3 * ldc)); c31 = V.Load(ref Unsafe.Add(ref c, 3 * ldc + w));
            c40 = V.Load(ref Unsafe.Add(ref c, 4 * ldc)); c41 = V.Load(ref Unsafe.Add(ref c, 4 * ldc + w));
            c50 = V.Load(ref Unsafe.Add(ref c, 5 * ldc)); c51 = V.Load(ref Unsafe.Add(ref c, 5 * ldc + w));
            c60 = V.Load(ref Unsafe.Add(ref c, 6 * ldc)); c61 = V.Load(ref Unsafe.Add(ref c, 6 * ldc + w));
            c70 = V.Load(ref Unsafe.Add(ref c, 7 * ldc)); c71 = V.Load(ref Unsafe.Add(ref c, 7 * ldc + w));
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = V.Zero;
        }
        for (int p = 0; p < kc; p++)
        {
            V b0 = V.Load(ref pb), b1 = V.Load(ref Unsafe.Add(ref pb, w));
            V a0 = V.Broadcast(pa); c00 = V.MulAdd(a0, b0, c00); c01 = V.MulAdd(a0, b1, c01);
            V a1 = V.Broadcast(Unsafe.Add(ref pa, 1)); c10 = V.MulAdd(a1, b0, c10); c11 = V.MulAdd(a1, b1, c11);
            V a2 = V.Broadcast(Unsafe.Add(ref pa, 2)); c20 = V.MulAdd(a2, b0, c20); c21 = V.MulAdd(a2, b1, c21);
            V a3 = V.Broadcast(Unsafe.Add(ref pa, 3)); c30 = V.MulAdd(a3, b0, c30); c31 = V.MulAdd(a3, b1, c31);
            V a4 = V.Broadcast(Unsafe.Add(ref pa, 4)); c40 = V.MulAdd(a4, b0, c40); c41 = V.MulAdd(a4, b1, c41);
            V a5 = V.Broadcast(Unsafe.Add(ref pa, 5)); c50 = V.MulAdd(a5, b0, c50); c51 = V.MulAdd(a5, b1, c51);
            V a6 = V.Broadcast(Unsafe.Add(ref pa, 6)); c60 = V.MulAdd(a6, b0, c60); c61 = V.MulAdd(a6, b1, c61);
            V a7 = V.Broadcast(Unsafe.Add(ref pa, 7)); c70 = V.MulAdd(a7, b0, c70); c71 = V.MulAdd(a7, b1, c71);
            pa = ref Unsafe.Add(ref pa, 8);
            pb = ref Unsafe.Add(ref pb, 2 * w);
        }
        V.Store(c00, ref Unsafe.Add(ref c, 0 * ldc)); V.Store(c01, ref Unsafe.Add(ref c, 0 * ldc + w));
        V.Store(c10, ref Unsafe.Add(ref c, 1 * ldc)); V.Store(c11, ref Unsafe.Add(ref c, 1 * ldc + w));
        V.Store(c20, ref Unsafe.Add(ref c, 2 * ldc)); V.Store(c21, ref Unsafe.Add(ref c, 2 * ldc + w));
        V.Store(c30, ref Unsafe.Add(ref c, 3 * ldc)); V.Store(c31, ref Unsafe.Add(ref c, 3 * ldc + w));
        V.Store(c40, ref Unsafe.Add(ref c, 4 * ldc)); V.Store(c41, ref Unsafe.Add(ref c, 4 * ldc + w));
        V.Store(c50, ref Unsafe.Add(ref c, 5 * ldc)); V.Store(c51, ref Unsafe.Add(ref c, 5 * ldc + w));
        V.Store(c60, ref Unsafe.Add(ref c, 6 * ldc)); V.Store(c61, ref Unsafe.Add(ref c, 6 * ldc + w));
        V.Store(c70, ref Unsafe.Add(ref c, 7 * ldc)); V.Store(c71, ref Unsafe.Add(ref c, 7 * ldc + w));
    }

    /// <summary>The 6-row x 2-vector micro-kernel: C[6, 2w] (+)= A panel [kc][6] x B panel [kc][2w], 12 accumulators in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x2<V>(int kc, ref float pa, ref float pb, ref float c, nint ldc, bool accumulate) where V : struct, IVec<V>
    {
        nint w = V.Count;
        V c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (accumulate)
        {
            c00 = V.Load(ref c); c01 = V.Load(ref Unsafe.Add(ref c, 0 * ldc + w));
            c10 = V.Load(ref Unsafe.Add(ref c, 1 * ldc)); c11 = V.Load(ref Unsafe.Add(ref c, 1 * ldc + w));
            c20 = V.Load(ref Unsafe.Add(ref c, 2 * ldc)); c21 = V.Load(ref Unsafe.Add(ref c, 2 * ldc + w));
            c30 = V.Load(ref Unsafe.Add(ref c, 3 * ldc)); c31 = V.Load(ref Unsafe.Add(ref c, 3 * ldc + w));
            c40 = V.Load(ref Unsafe.Add(ref c, 4 * ldc)); c41 = V.Load(ref Unsafe.Add(ref c, 4 * ldc + w));
            c50 = V.Load(ref Unsafe.Add(ref c, 5 * ldc)); c51 = V.Load(ref Unsafe.Add(ref c, 5 * ldc + w));
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = V.Zero;
        }
        for (int p = 0; p < kc; p++)
        {
            V b0 = V.Load(ref pb), b1 = V.Load(ref Unsafe.Add(ref pb, w));
            V a0 = V.Broadcast(pa); c00 = V.MulAdd(a0, b0, c00); c01 = V.MulAdd(a0, b1, c01);
            V a1 = V.Broadcast(Unsafe.Add(ref pa, 1)); c10 = V.MulAdd(a1, b0, c10); c11 = V.MulAdd(a1, b1, c11);
            V a2 = V.Broadcast(Unsafe.Add(ref pa, 2)); c20 = V.MulAdd(a2, b0, c20); c21 = V.MulAdd(a2, b1, c21);
            V a3 = V.Broadcast(Unsafe.Add(ref pa, 3)); c30 = V.MulAdd(a3, b0, c30); c31 = V.MulAdd(a3, b1, c31);
            V a4 = V.Broadcast(Unsafe.Add(ref pa, 4)); c40 = V.MulAdd(a4, b0, c40); c41 = V.MulAdd(a4, b1, c41);
            V a5 = V.Broadcast(Unsafe.Add(ref pa, 5)); c50 = V.MulAdd(a5, b0, c50); c51 = V.MulAdd(a5, b1, c51);
            pa = ref Unsafe.Add(ref pa, 6);
            pb = ref Unsafe.Add(ref pb, 2 * w);
        }
        V.Store(c00, ref Unsafe.Add(ref c, 0 * ldc)); V.Store(c01, ref Unsafe.Add(ref c, 0 * ldc + w));
        V.Store(c10, ref Unsafe.Add(ref c, 1 * ldc)); V.Store(c11, ref Unsafe.Add(ref c, 1 * ldc + w));
        V.Store(c20, ref Unsafe.Add(ref c, 2 * ldc)); V.Store(c21, ref Unsafe.Add(ref c, 2 * ldc + w));
        V.Store(c30, ref Unsafe.Add(ref c, 3 * ldc)); V.Store(c31, ref Unsafe.Add(ref c, 3 * ldc + w));
        V.Store(c40, ref Unsafe.Add(ref c, 4 * ldc)); V.Store(c41, ref Unsafe.Add(ref c, 4 * ldc + w));
        V.Store(c50, ref Unsafe.Add(ref c, 5 * ldc)); V.Store(c51, ref Unsafe.Add(ref c, 5 * ldc + w));
    }

    /// <summary>The 4-row x 2-vector micro-kernel: C[4, 2w] (+)= A panel [kc][4] x B panel [kc][2w], 8 accumulators in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel4x2<V>(int kc, ref float pa, ref float pb, ref float c, nint ldc, bool accumulate) where V : struct, IVec<V>
    {
        nint w = V.Count;
        V c00, c01, c10, c11, c20, c21, c30, c31;
        if (accumulate)
        {
            c00 = V.Load(ref c); c01 = V.Load(ref Unsafe.Add(ref c, 0 * ldc + w));
            c10 = V.Load(ref Unsafe.Add(ref c, 1 * ldc)); c11 = V.Load(ref Unsafe.Add(ref c, 1 * ldc + w));
            c20 = V.Load(ref Unsafe.Add(ref c, 2 * ldc)); c21 = V.Load(ref Unsafe.Add(ref c, 2 * ldc + w));
            c30 = V.Load(ref Unsafe.Add(ref c, 3 * ldc)); c31 = V.Load(ref Unsafe.Add(ref c, 3 * ldc + w));
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = V.Zero;
        }
        for (int p = 0; p < kc; p++)
        {
            V b0 = V.Load(ref pb), b1 = V.Load(ref Unsafe.Add(ref pb, w));
            V a0 = V.Broadcast(pa); c00 = V.MulAdd(a0, b0, c00); c01 = V.MulAdd(a0, b1, c01);
            V a1 = V.Broadcast(Unsafe.Add(ref pa, 1)); c10 = V.MulAdd(a1, b0, c10); c11 = V.MulAdd(a1, b1, c11);
            V a2 = V.Broadcast(Unsafe.Add(ref pa, 2)); c20 = V.MulAdd(a2, b0, c20); c21 = V.MulAdd(a2, b1, c21);
            V a3 = V.Broadcast(Unsafe.Add(ref pa, 3)); c30 = V.MulAdd(a3, b0, c30); c31 = V.MulAdd(a3, b1, c31);
            pa = ref Unsafe.Add(ref pa, 4);
            pb = ref Unsafe.Add(ref pb, 2 * w);
        }
        V.Store(c00, ref Unsafe.Add(ref c, 0 * ldc)); V.Store(c01, ref Unsafe.Add(ref c, 0 * ldc + w));
        V.Store(c10, ref Unsafe.Add(ref c, 1 * ldc)); V.Store(c11, ref Unsafe.Add(ref c, 1 * ldc + w));
        V.Store(c20, ref Unsafe.Add(ref c, 2 * ldc)); V.Store(c21, ref Unsafe.Add(ref c, 2 * ldc + w));
        V.Store(c30, ref Unsafe.Add(ref c, 3 * ldc)); V.Store(c31, ref Unsafe.Add(ref c, 3 * ldc + w));
    }
}

/// <summary>8 x 8 float transposes in AVX registers (data movement only), for packing transposed operands.</summary>
internal static class Transpose
{
    /// <summary>Whether <see cref="Block8x8"/> runs (x86 with AVX); callers fall back to scalar copies otherwise.</summary>
    public static bool IsSupported => System.Runtime.Intrinsics.X86.Avx.IsSupported;

    /// <summary>dst[j * dstStride + i] = src[i * srcStride + j] for i, j in 0..8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block8x8(ref float src, nint srcStride, ref float dst, nint dstStride)
    {
        Vector256<float> r0 = Vector256.LoadUnsafe(ref src), r1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, srcStride));
        Vector256<float> r2 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 2 * srcStride)), r3 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 3 * srcStride));
        Vector256<float> r4 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 4 * srcStride)), r5 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 5 * srcStride));
        Vector256<float> r6 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 6 * srcStride)), r7 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 7 * srcStride));
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
        Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5), t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
        Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE), u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
        Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE), u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Permute2x128(u0, u4, 0x20).StoreUnsafe(ref dst);
        Avx.Permute2x128(u1, u5, 0x20).StoreUnsafe(ref Unsafe.Add(ref dst, dstStride));
        Avx.Permute2x128(u2, u6, 0x20).StoreUnsafe(ref Unsafe.Add(ref dst, 2 * dstStride));
        Avx.Permute2x128(u3, u7, 0x20).StoreUnsafe(ref Unsafe.Add(ref dst, 3 * dstStride));
        Avx.Permute2x128(u0, u4, 0x31).StoreUnsafe(ref Unsafe.Add(ref dst, 4 * dstStride));
        Avx.Permute2x128(u1, u5, 0x31).StoreUnsafe(ref Unsafe.Add(ref dst, 5 * dstStride));
        Avx.Permute2x128(u2, u6, 0x31).StoreUnsafe(ref Unsafe.Add(ref dst, 6 * dstStride));
        Avx.Permute2x128(u3, u7, 0x31).StoreUnsafe(ref Unsafe.Add(ref dst, 7 * dstStride));
    }
}

/// <summary>Span-free helpers over refs (the kernels address their buffers by ref and offset).</summary>
internal static class MemoryMarshalEx
{
    /// <summary>Zeroes <paramref name="count"/> floats at <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Clear(ref float p, int count) => System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref p, count).Clear();

    /// <summary>Copies <paramref name="count"/> floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy(ref float src, ref float dst, int count) =>
        System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpan(ref src, count).CopyTo(System.Runtime.InteropServices.MemoryMarshal.CreateSpan(ref dst, count));
}
