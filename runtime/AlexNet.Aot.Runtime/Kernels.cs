using System;
using System.Numerics;

namespace AlexNet.Aot;

/// <summary>Small shape-independent kernels shared by generated code.</summary>
public static class Kernels
{
    /// <summary>Softmax of each row of a [rows, cols] matrix, in place (max-subtracted, as PyTorch does).</summary>
    public static void SoftmaxRows(Span<float> x, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            Span<float> row = x.Slice(r * cols, cols);
            float max = float.NegativeInfinity;
            foreach (float v in row) if (v > max) max = v;
            double sum = 0;
            for (int i = 0; i < row.Length; i++)
            {
                float e = MathF.Exp(row[i] - max);
                row[i] = e;
                sum += e;
            }
            float inv = (float)(1.0 / sum);
            for (int i = 0; i < row.Length; i++) row[i] *= inv;
        }
    }

    /// <summary>The index of the first NaN or infinity in <paramref name="x"/>, or -1 when every value is finite
    /// (vectorized: <c>v - v</c> is zero exactly for finite <c>v</c>).</summary>
    public static int FirstNonFinite(ReadOnlySpan<float> x)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + Vector<float>.Count <= x.Length; i += Vector<float>.Count)
            {
                var v = new Vector<float>(x.Slice(i));
                if (!Vector.EqualsAll(v - v, Vector<float>.Zero)) break;
            }
        }
        for (; i < x.Length; i++)
            if (!float.IsFinite(x[i])) return i;
        return -1;
    }

    /// <summary>The message for a non-finite input value: where it is (image, channel, row, column) and what it is.</summary>
    internal static string NonFiniteMessage(string name, ReadOnlySpan<float> x, int index, int[] imageShape, string hint = "")
    {
        int per = 1;
        foreach (int d in imageShape) per *= d;
        int image = index / per, rest = index % per;
        string where = $"image {image}";
        if (imageShape.Length == 3)
        {
            int hw = imageShape[1] * imageShape[2];
            where += $", channel {rest / hw}, row {rest % hw / imageShape[2]}, column {rest % imageShape[2]}";
        }
        return $"{name} holds {x[index].ToString(System.Globalization.CultureInfo.InvariantCulture)} at float {index} ({where}); inputs must be finite{hint}.";
    }
}
