using System;

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
}
