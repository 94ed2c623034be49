using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace AlexNet.Aot.Training;

/// <summary>
/// A float vector of one hardware width, as static members so that a kernel written once as a generic method over
/// <typeparamref name="TSelf"/> is compiled (by the JIT and by NativeAOT) into one specialized copy per width: the
/// training kernels' equivalent of the generator's per-ISA emission. <see cref="V512"/> is the AVX-512 path,
/// <see cref="V256"/> AVX2+FMA, <see cref="V128"/> NEON/AdvSimd and SSE, <see cref="V1"/> the portable scalar fallback.
/// </summary>
internal interface IVec<TSelf> where TSelf : struct, IVec<TSelf>
{
    /// <summary>Floats per vector.</summary>
    static abstract int Count { get; }

    /// <summary>All zeros.</summary>
    static abstract TSelf Zero { get; }

    /// <summary>Loads <see cref="Count"/> floats from <paramref name="p"/> (unaligned).</summary>
    static abstract TSelf Load(ref float p);

    /// <summary>Stores to <paramref name="p"/> (unaligned).</summary>
    static abstract void Store(TSelf v, ref float p);

    /// <summary>Every lane <paramref name="x"/>.</summary>
    static abstract TSelf Broadcast(float x);

    /// <summary>a * b + c: fused where the hardware has FMA, multiply then add where it does not.</summary>
    static abstract TSelf MulAdd(TSelf a, TSelf b, TSelf c);

    /// <summary>a + b.</summary>
    static abstract TSelf Add(TSelf a, TSelf b);

    /// <summary>a - b.</summary>
    static abstract TSelf Sub(TSelf a, TSelf b);

    /// <summary>a * s.</summary>
    static abstract TSelf Scale(TSelf a, float s);
}

/// <summary>AVX-512: 16 floats.</summary>
internal struct V512 : IVec<V512>
{
    public Vector512<float> V;
    public static int Count => Vector512<float>.Count;
    public static V512 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Load(ref float p) => new() { V = Vector512.LoadUnsafe(ref p) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V512 v, ref float p) => v.V.StoreUnsafe(ref p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Broadcast(float x) => new() { V = Vector512.Create(x) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 MulAdd(V512 a, V512 b, V512 c) => new() { V = Vector512.MultiplyAddEstimate(a.V, b.V, c.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Add(V512 a, V512 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Sub(V512 a, V512 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V512 Scale(V512 a, float s) => new() { V = a.V * s };
}

/// <summary>AVX2 + FMA: 8 floats.</summary>
internal struct V256 : IVec<V256>
{
    public Vector256<float> V;
    public static int Count => Vector256<float>.Count;
    public static V256 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Load(ref float p) => new() { V = Vector256.LoadUnsafe(ref p) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V256 v, ref float p) => v.V.StoreUnsafe(ref p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Broadcast(float x) => new() { V = Vector256.Create(x) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 MulAdd(V256 a, V256 b, V256 c) => new() { V = Vector256.MultiplyAddEstimate(a.V, b.V, c.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Add(V256 a, V256 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Sub(V256 a, V256 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V256 Scale(V256 a, float s) => new() { V = a.V * s };
}

/// <summary>NEON (AdvSimd) on arm64, SSE on x64: 4 floats.</summary>
internal struct V128 : IVec<V128>
{
    public Vector128<float> V;
    public static int Count => Vector128<float>.Count;
    public static V128 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Load(ref float p) => new() { V = Vector128.LoadUnsafe(ref p) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V128 v, ref float p) => v.V.StoreUnsafe(ref p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Broadcast(float x) => new() { V = Vector128.Create(x) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 MulAdd(V128 a, V128 b, V128 c) => new() { V = Vector128.MultiplyAddEstimate(a.V, b.V, c.V) };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Add(V128 a, V128 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Sub(V128 a, V128 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V128 Scale(V128 a, float s) => new() { V = a.V * s };
}

/// <summary>The portable fallback: one float (plain multiply and add, no intrinsics).</summary>
internal struct V1 : IVec<V1>
{
    public float V;
    public static int Count => 1;
    public static V1 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Load(ref float p) => new() { V = p };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(V1 v, ref float p) => p = v.V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Broadcast(float x) => new() { V = x };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 MulAdd(V1 a, V1 b, V1 c) => new() { V = a.V * b.V + c.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Add(V1 a, V1 b) => new() { V = a.V + b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Sub(V1 a, V1 b) => new() { V = a.V - b.V };
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static V1 Scale(V1 a, float s) => new() { V = a.V * s };
}
