using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AlexNet.Aot.Training;

/// <summary>
/// Products for the dense layers, whose weight matrix (151 MB for AlexNet's fc6) is far larger than the caches and whose
/// other operand is one small batch. <see cref="MultiplyStreamA"/> reads the rows of a large A in place, never packed:
/// each weight is used once per column panel, so packing (and, for Y = X·Wᵀ, transposing) the weights as the B operand
/// cost a full extra pass; the micro-kernel instead broadcasts from <see cref="PanelRows"/> sequential row streams, which
/// the hardware prefetches while the FMAs run. <see cref="MultiplyStreamC"/> writes a large C (a weight gradient) with
/// non-temporal stores, so it is not read from memory before being overwritten.
/// </summary>
internal sealed partial class Gemm
{
    /// <summary>Floats of packed B per depth chunk in <see cref="MultiplyStreamA"/> (512 KiB: half an L2, so the
    /// chunk stays cached while the rows of A stream past it).</summary>
    private const int StreamBudget = 1 << 17;

    /// <summary>
    /// C (+)= A x B with A(i, p) = a[i * lda + p] read in place, never packed (each element is used by one micro-tile
    /// row per column panel: meant for a large A against a small B), B(p, j) = b[p * rsB + j * csB] packed in depth
    /// chunks, and C(i, j) = c[i * rsC + j * csC] (so C may be stored transposed).
    /// </summary>
    public void MultiplyStreamA(int m, int n, int k, ref float a, nint lda, ref float b, nint rsB, nint csB, ref float c, nint rsC, nint csC, bool accumulate)
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) Unsafe.Add(ref c, i * rsC + j * csC) = 0f;
            return;
        }
        if (Vector512.IsHardwareAccelerated) StreamA<V512>(m, n, k, ref a, lda, ref b, rsB, csB, ref c, rsC, csC, accumulate);
        else if (Vector256.IsHardwareAccelerated) StreamA<V256>(m, n, k, ref a, lda, ref b, rsB, csB, ref c, rsC, csC, accumulate);
        else if (Vector128.IsHardwareAccelerated) StreamA<V128>(m, n, k, ref a, lda, ref b, rsB, csB, ref c, rsC, csC, accumulate);
        else StreamA<V1>(m, n, k, ref a, lda, ref b, rsB, csB, ref c, rsC, csC, accumulate);
    }

    /// <summary><see cref="MultiplyStreamA"/> on one path: for each depth chunk, B is packed once and every
    /// <see cref="PanelRows"/> rows of A meet every column panel; tiles that are partial, or whose C is not row-major,
    /// go through the tile buffer.</summary>
    private void StreamA<V>(int m, int n, int k, ref float a, nint lda, ref float b, nint rsB, nint csB, ref float c, nint rsC, nint csC, bool accumulate)
        where V : struct, IVec<V>
    {
        int mr = PanelRows, nr = 2 * V.Count;
        ref float packA = ref _packA[0];
        ref float packB = ref _packB[0];
        ref float tile = ref _tile[0];
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc), ncPadded = (nc + nr - 1) / nr * nr;
            // Depth chunks as deep as the budget allows (a partial row panel of A is packed, so its buffer bounds
            // them too), of equal depth.
            int kMax = Math.Max(1, Math.Min(StreamBudget / ncPadded, _packA.Length / mr));
            int chunks = (k + kMax - 1) / kMax, kStep = (k + chunks - 1) / chunks;
            for (int pc = 0; pc < k; pc += kStep)
            {
                int kc = Math.Min(kStep, k - pc);
                PackB(kc, nc, nr, ref Unsafe.Add(ref b, pc * rsB + jc * csB), rsB, csB, ref packB);
                bool acc = accumulate || pc > 0;
                for (int ir = 0; ir < m; ir += mr)
                {
                    int rows = Math.Min(mr, m - ir);
                    ref float ar = ref Unsafe.Add(ref a, ir * lda + pc);
                    // The last rows of A, fewer than a panel: packed with zero rows, so no read runs past A.
                    if (rows < mr) PackA(rows, kc, mr, ref ar, lda, 1, ref packA);
                    for (int jr = 0; jr < nc; jr += nr)
                    {
                        int cols = Math.Min(nr, nc - jr);
                        ref float pb = ref Unsafe.Add(ref packB, jr * kc);
                        ref float ct = ref Unsafe.Add(ref c, ir * rsC + (jc + jr) * csC);
                        if (rows == mr && cols == nr && csC == 1)
                        {
                            KernelRows<V>(mr, kc, ref ar, lda, ref pb, ref ct, rsC, acc);
                            continue;
                        }
                        if (rows == mr) KernelRows<V>(mr, kc, ref ar, lda, ref pb, ref tile, nr, false);
                        else Kernel<V>(mr, kc, ref packA, ref pb, ref tile, nr, false);
                        // Column by column, so that a transposed C (rsC = 1) is written in runs.
                        for (int j = 0; j < cols; j++)
                        {
                            ref float cj = ref Unsafe.Add(ref ct, j * csC);
                            for (int r = 0; r < rows; r++)
                            {
                                ref float d = ref Unsafe.Add(ref cj, r * rsC);
                                float v = Unsafe.Add(ref tile, r * nr + j);
                                d = acc ? d + v : v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// C[m, n] = A x B (no accumulation) with a shallow depth (k &lt;= <see cref="KC"/>; a weight gradient over a batch):
    /// <see cref="Multiply"/>, except that on x86 whole tiles of C go to memory by non-temporal stores, so a C much
    /// larger than the caches is written without first being read (no read-for-ownership: half the memory traffic).
    /// C's rows must keep its alignment (<paramref name="ldc"/> a multiple of 16 floats); the columns before the first
    /// 64-byte boundary, a deeper product, or another machine take <see cref="Multiply"/>. Ends with a store fence.
    /// </summary>
    public unsafe void MultiplyStreamC(int m, int n, int k, ref float a, nint rsA, nint csA, ref float b, nint ldb, ref float c, nint ldc)
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0 || k > KC || ldc % 16 != 0 || !System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            Multiply(m, n, k, ref a, rsA, csA, ref b, ldb, 1, ref c, ldc, false);
            return;
        }
        fixed (float* c0 = &c)
        {
            int head = (int)((64 - ((nuint)c0 & 63)) & 63) / sizeof(float);
            if (((nuint)c0 & 3) != 0 || head >= n)
            {
                Multiply(m, n, k, ref a, rsA, csA, ref b, ldb, 1, ref c, ldc, false);
                return;
            }
            if (head > 0) Multiply(m, head, k, ref a, rsA, csA, ref b, ldb, 1, ref c, ldc, false);
            ref float bh = ref Unsafe.Add(ref b, head);
            if (Vector512.IsHardwareAccelerated) StreamC<V512>(m, n - head, k, ref a, rsA, csA, ref bh, ldb, c0 + head, ldc);
            else if (Vector256.IsHardwareAccelerated) StreamC<V256>(m, n - head, k, ref a, rsA, csA, ref bh, ldb, c0 + head, ldc);
            else StreamC<V128>(m, n - head, k, ref a, rsA, csA, ref bh, ldb, c0 + head, ldc);
            System.Runtime.Intrinsics.X86.Sse.StoreFence();
        }
    }

    /// <summary><see cref="MultiplyStreamC"/> on one path, C 64-byte aligned: the blocking of <see cref="Multiply"/> with one
    /// depth block; each whole tile is computed into the tile buffer and streamed out, partial tiles are copied.</summary>
    private unsafe void StreamC<V>(int m, int n, int k, ref float a, nint rsA, nint csA, ref float b, nint ldb, float* c, nint ldc)
        where V : struct, IVec<V>
    {
        int mr = PanelRows, nr = 2 * V.Count, w = V.Count;
        ref float packA = ref _packA[0];
        ref float packB = ref _packB[0];
        ref float tile = ref _tile[0];
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            PackB(k, nc, nr, ref Unsafe.Add(ref b, jc), ldb, 1, ref packB);
            for (int ic = 0; ic < m; ic += MC)
            {
                int mc = Math.Min(MC, m - ic);
                PackA(mc, k, mr, ref Unsafe.Add(ref a, ic * rsA), rsA, csA, ref packA);
                for (int jr = 0; jr < nc; jr += nr)
                {
                    int cols = Math.Min(nr, nc - jr);
                    ref float pb = ref Unsafe.Add(ref packB, jr * k);
                    for (int ir = 0; ir < mc; ir += mr)
                    {
                        int rows = Math.Min(mr, mc - ir);
                        Kernel<V>(mr, k, ref Unsafe.Add(ref packA, ir * k), ref pb, ref tile, nr, false);
                        float* ct = c + (ic + ir) * ldc + jc + jr;
                        if (cols == nr)
                        {
                            for (int r = 0; r < rows; r++)
                            {
                                StoreStream<V>(ref Unsafe.Add(ref tile, r * nr), ct + r * ldc);
                                StoreStream<V>(ref Unsafe.Add(ref tile, r * nr + w), ct + r * ldc + w);
                            }
                        }
                        else
                        {
                            for (int r = 0; r < rows; r++)
                                for (int j = 0; j < cols; j++) ct[r * ldc + j] = Unsafe.Add(ref tile, r * nr + j);
                        }
                    }
                }
            }
        }
    }

    /// <summary>Stores one vector of the path from <paramref name="src"/> to the aligned <paramref name="dst"/> with a
    /// non-temporal store (x86 only: the callers check SSE).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreStream<V>(ref float src, float* dst) where V : struct, IVec<V>
    {
        if (typeof(V) == typeof(V512)) System.Runtime.Intrinsics.X86.Avx512F.StoreAlignedNonTemporal(dst, Vector512.LoadUnsafe(ref src));
        else if (typeof(V) == typeof(V256)) System.Runtime.Intrinsics.X86.Avx.StoreAlignedNonTemporal(dst, Vector256.LoadUnsafe(ref src));
        else System.Runtime.Intrinsics.X86.Sse.StoreAlignedNonTemporal(dst, Vector128.LoadUnsafe(ref src));
    }

    /// <summary>The path's micro-kernel with A read in place: <paramref name="mr"/> rows <paramref name="lda"/> floats
    /// apart, each contiguous in depth; B a packed panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KernelRows<V>(int mr, int kc, ref float a, nint lda, ref float pb, ref float c, nint ldc, bool acc) where V : struct, IVec<V>
    {
        if (mr == 8) KernelRows8x2<V>(kc, ref a, lda, ref pb, ref c, ldc, acc);
        else if (mr == 6) KernelRows6x2<V>(kc, ref a, lda, ref pb, ref c, ldc, acc);
        else KernelRows4x2<V>(kc, ref a, lda, ref pb, ref c, ldc, acc);
    }

    /// <summary>C[8, 2w] (+)= A[8, kc] (rows read in place, <paramref name="lda"/> apart) x B panel [kc][2w]:
    /// <see cref="Kernel8x2"/> with each step's 8 broadcasts taken from 8 row streams instead of a packed panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelRows8x2<V>(int kc, ref float a, nint lda, ref float pb, ref float c, nint ldc, bool accumulate) where V : struct, IVec<V>
    {
        nint w = V.Count;
        ref float a0 = ref a, a1 = ref Unsafe.Add(ref a, lda), a2 = ref Unsafe.Add(ref a, 2 * lda), a3 = ref Unsafe.Add(ref a, 3 * lda);
        ref float a4 = ref Unsafe.Add(ref a, 4 * lda), a5 = ref Unsafe.Add(ref a, 5 * lda), a6 = ref Unsafe.Add(ref a, 6 * lda), a7 = ref Unsafe.Add(ref a, 7 * lda);
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
        for (nint p = 0; p < kc; p++)
        {
            V b0 = V.Load(ref pb), b1 = V.Load(ref Unsafe.Add(ref pb, w));
            V x0 = V.Broadcast(Unsafe.Add(ref a0, p)); c00 = V.MulAdd(x0, b0, c00); c01 = V.MulAdd(x0, b1, c01);
            V x1 = V.Broadcast(Unsafe.Add(ref a1, p)); c10 = V.MulAdd(x1, b0, c10); c11 = V.MulAdd(x1, b1, c11);
            V x2 = V.Broadcast(Unsafe.Add(ref a2, p)); c20 = V.MulAdd(x2, b0, c20); c21 = V.MulAdd(x2, b1, c21);
            V x3 = V.Broadcast(Unsafe.Add(ref a3, p)); c30 = V.MulAdd(x3, b0, c30); c31 = V.MulAdd(x3, b1, c31);
            V x4 = V.Broadcast(Unsafe.Add(ref a4, p)); c40 = V.MulAdd(x4, b0, c40); c41 = V.MulAdd(x4, b1, c41);
            V x5 = V.Broadcast(Unsafe.Add(ref a5, p)); c50 = V.MulAdd(x5, b0, c50); c51 = V.MulAdd(x5, b1, c51);
            V x6 = V.Broadcast(Unsafe.Add(ref a6, p)); c60 = V.MulAdd(x6, b0, c60); c61 = V.MulAdd(x6, b1, c61);
            V x7 = V.Broadcast(Unsafe.Add(ref a7, p)); c70 = V.MulAdd(x7, b0, c70); c71 = V.MulAdd(x7, b1, c71);
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

    /// <summary>C[6, 2w] (+)= A[6, kc] (rows read in place, <paramref name="lda"/> apart) x B panel [kc][2w]
    /// (<see cref="Kernel6x2"/> with row-stream broadcasts).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelRows6x2<V>(int kc, ref float a, nint lda, ref float pb, ref float c, nint ldc, bool accumulate) where V : struct, IVec<V>
    {
        nint w = V.Count;
        ref float a0 = ref a, a1 = ref Unsafe.Add(ref a, lda), a2 = ref Unsafe.Add(ref a, 2 * lda);
        ref float a3 = ref Unsafe.Add(ref a, 3 * lda), a4 = ref Unsafe.Add(ref a, 4 * lda), a5 = ref Unsafe.Add(ref a, 5 * lda);
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
        for (nint p = 0; p < kc; p++)
        {
            V b0 = V.Load(ref pb), b1 = V.Load(ref Unsafe.Add(ref pb, w));
            V x0 = V.Broadcast(Unsafe.Add(ref a0, p)); c00 = V.MulAdd(x0, b0, c00); c01 = V.MulAdd(x0, b1, c01);
            V x1 = V.Broadcast(Unsafe.Add(ref a1, p)); c10 = V.MulAdd(x1, b0, c10); c11 = V.MulAdd(x1, b1, c11);
            V x2 = V.Broadcast(Unsafe.Add(ref a2, p)); c20 = V.MulAdd(x2, b0, c20); c21 = V.MulAdd(x2, b1, c21);
            V x3 = V.Broadcast(Unsafe.Add(ref a3, p)); c30 = V.MulAdd(x3, b0, c30); c31 = V.MulAdd(x3, b1, c31);
            V x4 = V.Broadcast(Unsafe.Add(ref a4, p)); c40 = V.MulAdd(x4, b0, c40); c41 = V.MulAdd(x4, b1, c41);
            V x5 = V.Broadcast(Unsafe.Add(ref a5, p)); c50 = V.MulAdd(x5, b0, c50); c51 = V.MulAdd(x5, b1, c51);
            pb = ref Unsafe.Add(ref pb, 2 * w);
        }
        V.Store(c00, ref Unsafe.Add(ref c, 0 * ldc)); V.Store(c01, ref Unsafe.Add(ref c, 0 * ldc + w));
        V.Store(c10, ref Unsafe.Add(ref c, 1 * ldc)); V.Store(c11, ref Unsafe.Add(ref c, 1 * ldc + w));
        V.Store(c20, ref Unsafe.Add(ref c, 2 * ldc)); V.Store(c21, ref Unsafe.Add(ref c, 2 * ldc + w));
        V.Store(c30, ref Unsafe.Add(ref c, 3 * ldc)); V.Store(c31, ref Unsafe.Add(ref c, 3 * ldc + w));
        V.Store(c40, ref Unsafe.Add(ref c, 4 * ldc)); V.Store(c41, ref Unsafe.Add(ref c, 4 * ldc + w));
        V.Store(c50, ref Unsafe.Add(ref c, 5 * ldc)); V.Store(c51, ref Unsafe.Add(ref c, 5 * ldc + w));
    }

    /// <summary>C[4, 2w] (+)= A[4, kc] (rows read in place, <paramref name="lda"/> apart) x B panel [kc][2w]
    /// (<see cref="Kernel4x2"/> with row-stream broadcasts).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelRows4x2<V>(int kc, ref float a, nint lda, ref float pb, ref float c, nint ldc, bool accumulate) where V : struct, IVec<V>
    {
        nint w = V.Count;
        ref float a0 = ref a, a1 = ref Unsafe.Add(ref a, lda), a2 = ref Unsafe.Add(ref a, 2 * lda), a3 = ref Unsafe.Add(ref a, 3 * lda);
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
        for (nint p = 0; p < kc; p++)
        {
            V b0 = V.Load(ref pb), b1 = V.Load(ref Unsafe.Add(ref pb, w));
            V x0 = V.Broadcast(Unsafe.Add(ref a0, p)); c00 = V.MulAdd(x0, b0, c00); c01 = V.MulAdd(x0, b1, c01);
            V x1 = V.Broadcast(Unsafe.Add(ref a1, p)); c10 = V.MulAdd(x1, b0, c10); c11 = V.MulAdd(x1, b1, c11);
            V x2 = V.Broadcast(Unsafe.Add(ref a2, p)); c20 = V.MulAdd(x2, b0, c20); c21 = V.MulAdd(x2, b1, c21);
            V x3 = V.Broadcast(Unsafe.Add(ref a3, p)); c30 = V.MulAdd(x3, b0, c30); c31 = V.MulAdd(x3, b1, c31);
            pb = ref Unsafe.Add(ref pb, 2 * w);
        }
        V.Store(c00, ref Unsafe.Add(ref c, 0 * ldc)); V.Store(c01, ref Unsafe.Add(ref c, 0 * ldc + w));
        V.Store(c10, ref Unsafe.Add(ref c, 1 * ldc)); V.Store(c11, ref Unsafe.Add(ref c, 1 * ldc + w));
        V.Store(c20, ref Unsafe.Add(ref c, 2 * ldc)); V.Store(c21, ref Unsafe.Add(ref c, 2 * ldc + w));
        V.Store(c30, ref Unsafe.Add(ref c, 3 * ldc)); V.Store(c31, ref Unsafe.Add(ref c, 3 * ldc + w));
    }
}
