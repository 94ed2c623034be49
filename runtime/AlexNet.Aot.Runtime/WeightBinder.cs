using System;
using System.Collections.Generic;
using System.Text;

namespace AlexNet.Aot;

/// <summary>A weights file that does not fit a model: every missing or mismatched tensor is listed.</summary>
public sealed class WeightsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WeightsException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public WeightsException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// Binds a model's parameters to the tensors of a weights source by checkpoint key, checking every shape.
/// Problems are collected, then reported together by <see cref="ThrowIfFailed"/>: what was expected and what was found.
/// </summary>
public sealed class WeightBinder
{
    private readonly IWeightSource _source;
    private readonly ModelInfo _model;
    private readonly List<string> _problems = new();
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    /// <summary>Starts binding <paramref name="source"/> to <paramref name="model"/>.</summary>
    public WeightBinder(IWeightSource source, ModelInfo model)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        _model = model;
    }

    /// <summary>The tensor for <paramref name="parameter"/> as float32, or an empty array (and a recorded problem) when it is missing or mis-shaped;
    /// for an optional parameter that is absent, null.</summary>
    public float[]? Take(ParameterInfo parameter)
    {
        if (Find(parameter) is not LoadedTensor t)
            return parameter.Optional && !_source.TryGet(parameter.Key, out _) ? null : Array.Empty<float>();
        return t.Data;
    }

    /// <summary>
    /// The values for <paramref name="parameter"/> where they are (a mapped file's pages, or the loaded array), without a
    /// copy; empty (and a recorded problem) when the tensor is missing, mis-shaped or not floating-point.
    /// For required parameters only: weights that are packed or used as they are.
    /// </summary>
    public ReadOnlyMemory<float> TakeValues(ParameterInfo parameter) => Find(parameter)?.Values ?? ReadOnlyMemory<float>.Empty;

    /// <summary>The tensor bound to <paramref name="parameter"/>, or null with the problem recorded (an optional parameter
    /// may be absent, or of any dtype, without one).</summary>
    private LoadedTensor? Find(ParameterInfo parameter)
    {
        if (!_source.TryGet(parameter.Key, out LoadedTensor t))
        {
            if (!parameter.Optional)
                _problems.Add($"missing {parameter.Key}: expected shape {parameter.ShapeText}");
            return null;
        }
        _used.Add(parameter.Key);
        if (!SameShape(t.Shape, parameter.Shape))
        {
            _problems.Add($"{parameter.Key}: expected shape {parameter.ShapeText}, found [{string.Join(", ", t.Shape)}]");
            return null;
        }
        if (!parameter.Optional && t.Values.Length != parameter.Count) // e.g. num_batches_tracked (int64) is optional
        {
            _problems.Add($"{parameter.Key}: dtype {t.DType} is not a floating-point type");
            return null;
        }
        return t;
    }

    /// <summary>Throws a <see cref="WeightsException"/> listing every problem, and the keys found that the model does not use.</summary>
    public void ThrowIfFailed()
    {
        if (_problems.Count == 0) return;
        var sb = new StringBuilder();
        sb.Append(_source.Origin).Append(": the weights do not fit model ").Append(_model.Name).Append(':');
        foreach (string p in _problems) sb.Append("\n  ").Append(p);
        var unused = new List<string>();
        foreach (string k in _source.Keys)
            if (!_used.Contains(k)) unused.Add(k);
        if (unused.Count > 0)
        {
            sb.Append("\n  found but not used: ");
            int shown = Math.Min(unused.Count, 12);
            for (int i = 0; i < shown; i++)
            {
                if (i > 0) sb.Append(", ");
                sb.Append(unused[i]);
                if (_source.TryGet(unused[i], out LoadedTensor u)) sb.Append(" [").Append(string.Join(", ", u.Shape)).Append(']');
            }
            if (unused.Count > shown) sb.Append(", and ").Append(unused.Count - shown).Append(" more");
        }
        throw new WeightsException(sb.ToString());
    }

    private static bool SameShape(int[] a, int[] b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
        return true;
    }
}
