using System;

namespace AlexNet.Aot;

/// <summary>Load-time weight transforms used by generated code: done once per session, never per call.</summary>
public static class WeightPacking
{
    /// <summary>
    /// Packs a [groups*m, k] row-major weight matrix into row panels of <paramref name="mr"/> rows:
    /// for each group, for each panel, k columns of mr values (rows past m are zero).
    /// The GEMM micro-kernels read one panel column (mr weights) per step of k.
    /// </summary>
    public static float[] PackRowPanels(ReadOnlySpan<float> w, int groups, int m, int k, int mr)
    {
        int panels = (m + mr - 1) / mr;
        var packed = new float[groups * panels * mr * k];
        for (int g = 0; g < groups; g++)
        {
            for (int p = 0; p < panels; p++)
            {
                int dst = ((g * panels) + p) * mr * k;
                for (int kk = 0; kk < k; kk++)
                {
                    for (int r = 0; r < mr; r++)
                    {
                        int row = p * mr + r;
                        packed[dst + kk * mr + r] = row < m ? w[(g * m + row) * k + kk] : 0f;
                    }
                }
            }
        }
        return packed;
    }

    /// <summary>
    /// Folds inference-mode batch normalization into the preceding convolution:
    /// w' = w * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * gamma / sqrt(var + eps) + beta.
    /// </summary>
    public static void FoldBatchNorm(Span<float> weight, Span<float> bias, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta,
        ReadOnlySpan<float> mean, ReadOnlySpan<float> variance, float eps)
    {
        int cout = bias.Length;
        int per = weight.Length / cout;
        for (int c = 0; c < cout; c++)
        {
            double scale = gamma[c] / Math.Sqrt((double)variance[c] + eps);
            Span<float> row = weight.Slice(c * per, per);
            for (int i = 0; i < row.Length; i++) row[i] = (float)(row[i] * scale);
            bias[c] = (float)((bias[c] - (double)mean[c]) * scale + beta[c]);
        }
    }

    /// <summary>
    /// Inference-mode batch normalization as a per-channel affine map y = x * scale + shift
    /// (for a batch norm that does not directly follow a convolution or dense product, so cannot be folded).
    /// </summary>
    public static void BatchNormAffine(ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, ReadOnlySpan<float> mean,
        ReadOnlySpan<float> variance, float eps, out float[] scale, out float[] shift)
    {
        scale = new float[gamma.Length];
        shift = new float[gamma.Length];
        for (int c = 0; c < gamma.Length; c++)
        {
            double s = gamma[c] / Math.Sqrt((double)variance[c] + eps);
            scale[c] = (float)s;
            shift[c] = (float)(beta[c] - mean[c] * s);
        }
    }

    /// <summary>float32 to bfloat16 bits, rounding to nearest even (NaN stays NaN).</summary>
    public static ushort[] ToBFloat16(ReadOnlySpan<float> values)
    {
        var r = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(values[i]);
            if ((bits & 0x7FFFFFFF) > 0x7F800000) { r[i] = (ushort)((bits >> 16) | 0x40); continue; }
            uint rounding = 0x7FFF + ((bits >> 16) & 1);
            r[i] = (ushort)((bits + rounding) >> 16);
        }
        return r;
    }

    /// <summary>A copy of <paramref name="source"/>, or zeros of <paramref name="length"/> when it is null (a layer without bias).</summary>
    public static float[] CopyOrZeros(float[]? source, int length)
    {
        var r = new float[length];
        if (source is not null) source.AsSpan(0, Math.Min(length, source.Length)).CopyTo(r);
        return r;
    }
}
