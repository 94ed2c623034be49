using System;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AlexNet.Aot.Training;

/// <summary>
/// Non-temporal stores for the generated products that write a matrix much larger than the caches (a dense layer's
/// weight gradient, 64 MB for a 4096 x 4096 layer): written this way, the destination's lines are not first read from
/// memory (no read-for-ownership), which halves the memory traffic. Generated code compiles without unsafe code, so
/// the pinning and the pointer arithmetic live here.
/// </summary>
public static class StreamingStores
{
    /// <summary>
    /// Copies <paramref name="rows"/> x <paramref name="cols"/> floats from a tile (rows <paramref name="tileStride"/>
    /// floats apart) to <paramref name="dst"/> (rows <paramref name="ld"/> floats apart): on x86, each row by 64-byte
    /// aligned non-temporal stores where the row and its length allow, the rest by plain stores. Call
    /// <see cref="Fence"/> once the product is done.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Rows(ref float tile, int tileStride, ref float dst, nint ld, int rows, int cols)
    {
        fixed (float* d0 = &dst)
        {
            for (int r = 0; r < rows; r++)
            {
                float* d = d0 + r * ld;
                ref float s = ref Unsafe.Add(ref tile, r * tileStride);
                int j = 0;
                if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported && ((nuint)d & 63) == 0)
                    for (; j + 16 <= cols; j += 16)
                        System.Runtime.Intrinsics.X86.Avx512F.StoreAlignedNonTemporal(d + j, Vector512.LoadUnsafe(ref s, (nuint)j));
                else if (System.Runtime.Intrinsics.X86.Avx.IsSupported && ((nuint)d & 31) == 0)
                    for (; j + 8 <= cols; j += 8)
                        System.Runtime.Intrinsics.X86.Avx.StoreAlignedNonTemporal(d + j, Vector256.LoadUnsafe(ref s, (nuint)j));
                for (; j < cols; j++) d[j] = Unsafe.Add(ref s, j);
            }
        }
    }

    /// <summary>Orders the non-temporal stores before what follows (a store fence on x86; nothing elsewhere).</summary>
    public static void Fence()
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.StoreFence();
    }
}
