using System;
using System.Collections.Generic;

namespace AlexNet.Aot;

/// <summary>
/// Weights made from a hash rule instead of a file, for benchmarks and tests of full-size models:
/// the rule of the PyTorch reference fixtures (shared/fixtures/torch/make_fixtures.py). For the k-th parameter
/// (1-based, model order) with n elements, u(i) = ((i + k*1000003) * 2654435761 mod 2^32) / 2^32;
/// conv/dense weights (u-0.5)*2*sqrt(6/fan_in), biases (u-0.5)*0.1, batch-norm weight 0.5+u, bias and
/// running_mean (u-0.5)*0.2, running_var 0.5+u.
/// </summary>
public sealed class GeneratedWeights : IWeightSource
{
    private readonly Dictionary<string, LoadedTensor> _tensors = new(StringComparer.Ordinal);
    private readonly List<string> _keys = new();

    /// <summary>Makes every parameter of <paramref name="model"/>.</summary>
    public GeneratedWeights(ModelInfo model)
    {
        int k = 0;
        foreach (ParameterInfo p in model.AllParameters)
        {
            k++;
            if (p.Optional)
            {
                _tensors[p.Key] = new LoadedTensor(p.Key, p.Shape, "I64", Array.Empty<float>());
                _keys.Add(p.Key);
                continue;
            }
            int n = checked((int)p.Count);
            var data = new float[n];
            string leaf = p.Key.Substring(p.Key.LastIndexOf('.') + 1);
            bool bn = IsBatchNorm(model, p.Key);
            double fanIn = p.Shape.Length > 1 ? (double)n / p.Shape[0] : 1;
            for (int i = 0; i < n; i++)
            {
                ulong h = (ulong)((i + (long)k * 1000003L) * 2654435761L) % 4294967296UL;
                double u = h / 4294967296.0;
                double v = (bn, leaf) switch
                {
                    (true, "weight") => 0.5 + u,
                    (true, "bias") => (u - 0.5) * 0.2,
                    (true, "running_mean") => (u - 0.5) * 0.2,
                    (true, "running_var") => 0.5 + u,
                    (false, "weight") => (u - 0.5) * 2 * Math.Sqrt(6.0 / fanIn),
                    _ => (u - 0.5) * 2 * 0.05,
                };
                data[i] = (float)v;
            }
            _tensors[p.Key] = new LoadedTensor(p.Key, p.Shape, "F32", data);
            _keys.Add(p.Key);
        }
        Origin = "generated weights for " + model.Name;
    }

    /// <inheritdoc/>
    public string Origin { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> Keys => _keys;

    /// <inheritdoc/>
    public bool TryGet(string key, out LoadedTensor tensor) => _tensors.TryGetValue(key, out tensor!);

    private static bool IsBatchNorm(ModelInfo model, string key)
    {
        foreach (LayerInfo l in model.Layers)
            foreach (OperationInfo op in l.Ops)
                if (op.Kind == OperationKind.BatchNorm && key.StartsWith(op.CheckpointPrefix + ".", StringComparison.Ordinal))
                    return true;
        return false;
    }
}
