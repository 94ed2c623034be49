using System;
using System.Collections.Generic;

namespace AlexNet.Aot;

/// <summary>Writes the tensors a model uses, and only those, to a weights file.</summary>
public static class WeightsExport
{
    /// <summary>
    /// Writes <paramref name="model"/>'s parameter tensors from <paramref name="weights"/> to a safetensors file at
    /// <paramref name="path"/> (atomically, via <see cref="SafeTensorsFile.Write"/>), as float32, in the model's
    /// parameter order, under their checkpoint keys. Optional parameters that are absent or not floating-point
    /// (batch norm's int64 <c>num_batches_tracked</c>) are left out; every other parameter must be present with its
    /// expected shape. The header's metadata names the model (<c>model</c>) and says <c>format=pt</c>.
    /// </summary>
    /// <exception cref="WeightsException">Parameters are missing, mis-shaped or not floating-point (every problem is listed), or the file cannot be written.</exception>
    public static void ToSafeTensors(ModelInfo model, IWeightSource weights, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(path);

        var binder = new WeightBinder(weights, model);
        var tensors = new List<(string Key, int[] Shape, float[] Data)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (ParameterInfo p in model.AllParameters)
        {
            if (!seen.Add(p.Key)) continue;
            float[]? data = binder.Take(p);
            if (data is null || data.Length != p.Count) continue; // absent optional, non-float optional, or a recorded problem
            tensors.Add((p.Key, (int[])p.Shape.Clone(), data));
        }
        binder.ThrowIfFailed();

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["format"] = "pt",
            ["model"] = model.Name,
        };
        SafeTensorsFile.Write(path, tensors, metadata);
    }
}
