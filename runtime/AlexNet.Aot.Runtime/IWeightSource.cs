using System.Collections.Generic;

namespace AlexNet.Aot;

/// <summary>A tensor read from a weights file, converted to float32.</summary>
/// <param name="Key">Its key in the file.</param>
/// <param name="Shape">Its shape, outermost first.</param>
/// <param name="DType">The dtype stored in the file (F32, F16, BF16, I64, ...).</param>
/// <param name="Data">The values as float32, row-major; empty for non-floating tensors.</param>
public sealed record LoadedTensor(string Key, int[] Shape, string DType, float[] Data);

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
