using System;
using System.Runtime.CompilerServices;

namespace AlexNet.Aot.Training;

/// <summary>What a random number of <see cref="CounterRng"/> is drawn for: one independent stream per purpose.</summary>
/// <remarks>Values from 1000 up are free for callers' own purposes.</remarks>
public enum RngPurpose : uint
{
    /// <summary>The per-epoch order of the training set (<see cref="BatchSampler.Shuffle"/>).</summary>
    Shuffle = 1,
    /// <summary>The choice of a validation subset (<see cref="TrainingDataset.Split"/>).</summary>
    Split = 2,
    /// <summary>The crop offset of <c>pad-crop</c> and <c>random-crop</c>.</summary>
    Crop = 3,
    /// <summary>The horizontal flip coin.</summary>
    Flip = 4,
    /// <summary>The window of <c>random-resized-crop</c>.</summary>
    ResizedCrop = 5,
    /// <summary>The PCA colour noise of <c>pca-color</c>.</summary>
    ColorNoise = 6,
    /// <summary>Dropout masks (for the trainer).</summary>
    Dropout = 7,
    /// <summary>Weight initialization (for the trainer).</summary>
    WeightInit = 8,
}

/// <summary>
/// A stateless, counter-based random number generator: every number is a pure function of a key, so training is
/// reproducible and resumable without saving generator state, and any thread may draw any number in any order.
/// <para>
/// The key is <c>(seed, a, b, c)</c>; by convention <c>a</c> is the epoch, <c>b</c> the sample (the image's index in
/// its data set, or the position for a shuffle), and <c>c</c> the purpose and draw: <c>((ulong)purpose &lt;&lt; 32) | draw</c>
/// (<see cref="Key"/>). So the streams are keyed by (seed, epoch, sample, purpose), and the same image in the same
/// epoch gets the same crop whatever batch or thread it lands in.
/// </para>
/// <para>
/// The hash chains SplitMix64's finalizer (Steele, Lea and Flood, 2014; the output function of
/// <c>java.util.SplittableRandom</c>): each key word is added to the state with a distinct odd constant and the state
/// is mixed, so the result is a bijection of each word for the others fixed, and passes avalanche tests.
/// </para>
/// </summary>
public static class CounterRng
{
    private const ulong Golden = 0x9E3779B97F4A7C15;

    /// <summary>SplitMix64's finalizer (Stafford's Mix13): a bijection on 64 bits with full avalanche.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    /// <summary>The 64 random bits of the key (<paramref name="seed"/>, <paramref name="a"/>, <paramref name="b"/>, <paramref name="c"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Hash(ulong seed, ulong a, ulong b = 0, ulong c = 0)
    {
        ulong h = Mix(seed + Golden);
        h = Mix(h ^ (a + 0xD1B54A32D192ED03));
        h = Mix(h ^ (b + 0x8CB92BA72F3D8DD7));
        return Mix(h ^ (c + 0xABC98388FB8FAC03));
    }

    /// <summary>The conventional last key word: <paramref name="purpose"/> in the high 32 bits, the <paramref name="draw"/>
    /// number (for several numbers of one purpose) in the low.</summary>
    public static ulong Key(RngPurpose purpose, uint draw = 0) => ((ulong)purpose << 32) | draw;

    /// <summary>A float uniform in [0, 1): 24 random bits, every value a multiple of 2^-24.</summary>
    public static float Uniform(ulong seed, ulong a, ulong b = 0, ulong c = 0) => (Hash(seed, a, b, c) >> 40) * (1f / (1 << 24));

    /// <summary>A double uniform in [0, 1): 53 random bits.</summary>
    public static double UniformDouble(ulong seed, ulong a, ulong b = 0, ulong c = 0) => (Hash(seed, a, b, c) >> 11) * (1.0 / (1UL << 53));

    /// <summary>An integer uniform in [0, <paramref name="n"/>) by Lemire's multiply-shift (bias below 2^-32 for any int n).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is not positive.</exception>
    public static int UniformInt(int n, ulong seed, ulong a, ulong b = 0, ulong c = 0)
    {
        if (n <= 0)
            throw new ArgumentOutOfRangeException(nameof(n), n, "the range must hold at least one value");
        return (int)(((Hash(seed, a, b, c) >> 32) * (ulong)(uint)n) >> 32);
    }

    /// <summary>A standard normal float (mean 0, standard deviation 1), by the Box-Muller transform of two uniform
    /// numbers drawn from the key's hash and a second hash derived from it.</summary>
    public static float Normal(ulong seed, ulong a, ulong b = 0, ulong c = 0)
    {
        ulong h1 = Hash(seed, a, b, c);
        ulong h2 = Mix(h1 ^ Golden);
        double u1 = ((h1 >> 11) + 1) * (1.0 / (1UL << 53)); // (0, 1]: the logarithm is finite
        double u2 = (h2 >> 11) * (1.0 / (1UL << 53));
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
    }
}
