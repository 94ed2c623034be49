using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace AlexNet.Aot;

/// <summary>The instruction-set path generated kernels take on this machine (the same ladder every kernel uses).</summary>
public static class Isa
{
    /// <summary>The vector width in floats of the path in use: 16, 8, 4, or 1 for the portable scalar path.</summary>
    public static int VectorFloats =>
        Vector512.IsHardwareAccelerated ? 16 :
        Vector256.IsHardwareAccelerated ? 8 :
        Vector128.IsHardwareAccelerated ? 4 : 1;

    /// <summary>A short name of the path in use: <c>avx512</c>, <c>avx2</c>, <c>neon</c>, <c>sse</c>, <c>scalar</c>.</summary>
    public static string Path =>
        Vector512.IsHardwareAccelerated ? "avx512" :
        Vector256.IsHardwareAccelerated ? "avx2" :
        Vector128.IsHardwareAccelerated ? (AdvSimd.IsSupported ? "neon" : "sse") : "scalar";

    /// <summary>A description of the path in use and of the instruction sets behind it.</summary>
    public static string Description => Path switch
    {
        "avx512" => "AVX-512 (Vector512, 16 floats" + (Avx512F.IsSupported ? ", FMA" : "") + ")",
        "avx2" => "AVX2" + (Fma.IsSupported ? "+FMA" : "") + " (Vector256, 8 floats)",
        "neon" => "NEON/AdvSimd (Vector128, 4 floats, FMLA)",
        "sse" => "SSE (Vector128, 4 floats" + (Fma.IsSupported ? ", FMA" : ", no FMA") + ")",
        _ => "portable scalar (no hardware intrinsics)",
    };
}
