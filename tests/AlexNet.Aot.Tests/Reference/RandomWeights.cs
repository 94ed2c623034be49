using System;
using System.Collections.Generic;

namespace AlexNet.Aot.Tests.Reference;

/// <summary>
/// Seeded random tensors for every parameter a model binds, made in memory (no file): conv and dense weights
/// He-uniform (U(-b, b), b = sqrt(6 / fan_in), which keeps activations of order one through ReLU layers),
/// biases and batch-norm shifts U(-0.1, 0.1), batch-norm gamma and running variance U(0.5, 1.5), running mean
/// U(-0.2, 0.2). Each tensor's values depend only on the seed and its key, so two models that share a key get
/// the same tensor. Optional tensors (num_batches_tracked) are left out.
/// </summary>
public sealed class RandomWeights : IWeightSource
{
    private readonly Dictionary<string, LoadedTensor> _tensors = new(StringComparer.Ordinal);
    private readonly List<string> _keys = new();

    /// <param name="model">The model whose parameters to make.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="weightGain">A factor on every conv and dense weight (He-uniform times this).</param>
    public RandomWeights(ModelInfo model, ulong seed, double weightGain = 1.0)
    {
        Origin = $"random weights for {model.Name} (seed {seed})";
        foreach (ParameterInfo p in model.AllParameters)
        {
            if (p.Optional) continue;
            var data = new float[p.Count];
            var rng = new SplitMix(seed ^ Hash(p.Key));
            (double lo, double hi) = Range(p, weightGain);
            for (int i = 0; i < data.Length; i++) data[i] = (float)(lo + (hi - lo) * rng.NextDouble());
            _tensors[p.Key] = new LoadedTensor(p.Key, (int[])p.Shape.Clone(), "F32", data);
            _keys.Add(p.Key);
        }
    }

    public string Origin { get; }

    public IReadOnlyList<string> Keys => _keys;

    public bool TryGet(string key, out LoadedTensor tensor) => _tensors.TryGetValue(key, out tensor!);

    /// <summary>Uniform values in [lo, hi) from a seed: test inputs.</summary>
    public static float[] Uniform(int count, ulong seed, double lo = -1, double hi = 1)
    {
        var rng = new SplitMix(seed);
        var x = new float[count];
        for (int i = 0; i < count; i++) x[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return x;
    }

    private static (double Lo, double Hi) Range(ParameterInfo p, double gain)
    {
        string key = p.Key;
        if (p.Shape.Length >= 2)
        {
            long fanIn = p.Count / p.Shape[0];
            double b = gain * Math.Sqrt(6.0 / fanIn);
            return (-b, b);
        }
        if (key.EndsWith(".running_var", StringComparison.Ordinal)) return (0.5, 1.5);
        if (key.EndsWith(".running_mean", StringComparison.Ordinal)) return (-0.2, 0.2);
        if (key.EndsWith(".weight", StringComparison.Ordinal)) return (0.5, 1.5); // a rank-1 weight is batch norm's gamma
        return (-0.1, 0.1); // biases and batch norm's beta
    }

    /// <summary>FNV-1a of the key: stable across processes (string.GetHashCode is not).</summary>
    private static ulong Hash(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in s)
        {
            h ^= c;
            h *= 1099511628211UL;
        }
        return h;
    }

    private struct SplitMix
    {
        private ulong _state;

        public SplitMix(ulong seed) => _state = seed;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
    }
}
