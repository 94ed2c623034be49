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
    /// Transforms [groups*m, cin, k, k] convolution weights (k = 3 or 5) for Winograd F(4x4, 3x3) or F(2x2, 5x5) on
    /// 6x6 tiles, U = G g Gᵀ (6x6 per output and input channel, computed in double), and packs them into row panels of
    /// <paramref name="mr"/> output channels: for each group, for each panel, for each of the 36 tile elements,
    /// <paramref name="cin"/> columns of mr values (rows past m are zero). The generated product reads one panel column
    /// (mr values) per input channel.
    /// </summary>
    /// <remarks>
    /// G's rows belong to the points 0, 1, -1, 2, -2 and ∞: row p is (1, p, p², ...) / Π(p - q) over the other finite
    /// points q, and the last row picks the highest coefficient. For 3x3: [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
    /// 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1] (Lavin and Gray, 2016).
    /// </remarks>
    public static float[] PackWinograd(ReadOnlySpan<float> w, int groups, int m, int cin, int kernel, int mr)
    {
        if (kernel != 3 && kernel != 5) throw new ArgumentOutOfRangeException(nameof(kernel), kernel, "Winograd weights are 3x3 or 5x5.");
        Span<double> G = stackalloc double[6 * kernel];
        WinogradG(kernel, G);

        int kk = kernel * kernel;
        int panels = (m + mr - 1) / mr;
        var packed = new float[checked(groups * panels * 36 * cin * mr)];
        Span<double> gg = stackalloc double[6 * kernel];
        for (int g = 0; g < groups; g++)
        {
            for (int row = 0; row < m; row++)
            {
                int p = row / mr, r = row - p * mr;
                int panel = (g * panels + p) * 36 * cin * mr;
                for (int c = 0; c < cin; c++)
                {
                    ReadOnlySpan<float> k = w.Slice(((g * m + row) * cin + c) * kk, kk);
                    // gg = G k (6 x kernel), then U = gg Gᵀ (6x6)
                    for (int a = 0; a < 6; a++)
                        for (int j = 0; j < kernel; j++)
                        {
                            double sum = 0;
                            for (int i = 0; i < kernel; i++) sum += G[a * kernel + i] * k[i * kernel + j];
                            gg[a * kernel + j] = sum;
                        }
                    for (int a = 0; a < 6; a++)
                        for (int b = 0; b < 6; b++)
                        {
                            double u = 0;
                            for (int j = 0; j < kernel; j++) u += gg[a * kernel + j] * G[b * kernel + j];
                            packed[panel + ((a * 6 + b) * cin + c) * mr + r] = (float)u;
                        }
                }
            }
        }
        return packed;
    }

    /// <summary>
    /// Winograd's G (6 x <paramref name="kernel"/>, row-major) for 6x6 tiles on the points 0, 1, -1, 2, -2 and ∞: row p is
    /// (1, p, p², ...) / Π(p - q) over the other finite points q, the last row picks the highest coefficient. Shared by
    /// <see cref="PackWinograd"/> and the training convolutions, so both use the same transform.
    /// </summary>
    internal static void WinogradG(int kernel, Span<double> g)
    {
        ReadOnlySpan<double> points = [0, 1, -1, 2, -2];
        for (int a = 0; a < 5; a++)
        {
            double denominator = 1;
            for (int q = 0; q < 5; q++) if (q != a) denominator *= points[a] - points[q];
            double power = 1;
            for (int j = 0; j < kernel; j++, power *= points[a]) g[a * kernel + j] = power / denominator;
        }
        for (int j = 0; j < kernel; j++) g[5 * kernel + j] = j == kernel - 1 ? 1 : 0;
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
