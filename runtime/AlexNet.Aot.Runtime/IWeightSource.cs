using System;
using System.Collections.Generic;

namespace AlexNet.Aot;

/// <summary>
/// A tensor read from a weights file, converted to float32. Its values live either in a managed array or, for the
/// float32 tensors of a memory-mapped safetensors file (<see cref="SafeTensorsFile.Load(string, bool)"/>), in the
/// file's pages themselves: <see cref="Values"/> reads them in place; <see cref="Data"/> copies them into an array
/// the first time it is asked for (and keeps it).
/// </summary>
public sealed class LoadedTensor
{
    private float[]? _data;

    /// <summary>A tensor whose values are in <paramref name="data"/>.</summary>
    public LoadedTensor(string key, int[] shape, string dtype, float[] data)
    {
        Key = key;
        Shape = shape;
        DType = dtype;
        _data = data ?? throw new ArgumentNullException(nameof(data));
        Values = data;
    }

    /// <summary>A tensor whose values stay where <paramref name="values"/> points (a mapped file), read in place.</summary>
    public LoadedTensor(string key, int[] shape, string dtype, ReadOnlyMemory<float> values, bool mapped)
    {
        Key = key;
        Shape = shape;
        DType = dtype;
        Values = values;
        IsMapped = mapped;
    }

    /// <summary>Its key in the file.</summary>
    public string Key { get; }

    /// <summary>Its shape, outermost first.</summary>
    public int[] Shape { get; }

    /// <summary>The dtype stored in the file (F32, F16, BF16, I64, ...).</summary>
    public string DType { get; }

    /// <summary>The values as float32, row-major, wherever they are (empty for non-floating tensors); no copy.</summary>
    public ReadOnlyMemory<float> Values { get; }

    /// <summary>Whether <see cref="Values"/> reads a memory-mapped file in place.</summary>
    public bool IsMapped { get; }

    /// <summary>The values as a float32 array (for a mapped tensor, a copy made on first use).</summary>
    public float[] Data => _data ??= Values.ToArray();
}

/// <summary>A set of named tensors: a loaded weights file, or tensors made in memory.</summary>
public interface IWeightSource
{
    /// <summary>Where the tensors come from (a file path, or a description), for error messages.</summary>
    string Origin { get; }

    /// <summary>Every key, in file order.</summary>
    IReadOnlyList<string> Keys { get; }

    /// <summary>Finds a tensor by key.</summary>
    bool TryGet(string key, out LoadedTensor tensor);
}
