using System;
using AlexNet.Aot.Training;
using Xunit;

namespace AlexNet.Aot.Tests.Training;

/// <summary>
/// The dense layers' products (Gemm.Dense.cs) against a double-precision reference on shapes with partial row panels,
/// partial column panels, several depth chunks, a transposed C, accumulation, and (for the non-temporal product) every
/// alignment of C and strides that do or do not keep it, on this machine's path (the ISA matrix runs the training
/// fixtures, and so these products, on the others).
/// </summary>
public sealed class DenseGemmTests
{
    [Theory]
    [InlineData(37, 5, 19, false, false)]
    [InlineData(24, 32, 300, true, false)]
    [InlineData(50, 33, 7000, true, true)]   // several depth chunks, a partial column panel, partial row panels
    [InlineData(8, 1, 1, false, true)]
    [InlineData(3, 70, 40, false, false)]    // fewer rows than a panel
    public void StreamedAMatchesTheReference(int m, int n, int k, bool transposedC, bool accumulate)
    {
        var rng = new Random(m * 1000 + n * 10 + k);
        int lda = k + 3;
        float[] a = Fill(rng, m * lda), bt = Fill(rng, n * k); // B(p, j) = bt[j * k + p], as a dense layer's input
        nint rsC = transposedC ? 1 : n + 2, csC = transposedC ? m + 1 : 1;
        float[] c = Fill(rng, (int)(transposedC ? n * csC : m * rsC));
        float[] before = (float[])c.Clone();
        new Gemm().MultiplyStreamA(m, n, k, ref a[0], lda, ref bt[0], 1, k, ref c[0], rsC, csC, accumulate);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = accumulate ? before[i * rsC + j * csC] : 0;
                for (int p = 0; p < k; p++) s += (double)a[i * lda + p] * bt[j * k + p];
                Assert.True(Math.Abs(c[i * rsC + j * csC] - s) <= 1e-4 * (1 + Math.Abs(s)), $"C({i}, {j}) = {c[i * rsC + j * csC]}, expected {s}");
            }
    }

    [Theory]
    [InlineData(16, 100, 32, 112)]
    [InlineData(19, 333, 7, 336)]
    [InlineData(40, 1600, 32, 1600)]   // more than one column block
    [InlineData(9, 40, 300, 48)]       // deeper than one block: the plain product
    [InlineData(11, 45, 5, 47)]        // rows that do not keep the alignment: the plain product
    public void StreamedCMatchesTheReferenceAtEveryAlignment(int m, int n, int k, int ldc)
    {
        var rng = new Random(m + n + k);
        float[] dyt = Fill(rng, k * m), x = Fill(rng, k * n); // A(i, p) = dyt[p * m + i]: a transposed output gradient
        for (int offset = 0; offset < 16; offset++)
        {
            float[] c = Fill(rng, offset + m * ldc);
            float[] before = (float[])c.Clone();
            new Gemm().MultiplyStreamC(m, n, k, ref dyt[0], 1, m, ref x[0], n, ref c[offset], ldc);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < ldc; j++)
                {
                    float got = c[offset + i * ldc + j];
                    if (j >= n)
                    {
                        Assert.Equal(before[offset + i * ldc + j], got); // padding between rows untouched
                        continue;
                    }
                    double s = 0;
                    for (int p = 0; p < k; p++) s += (double)dyt[p * m + i] * x[p * n + j];
                    Assert.True(Math.Abs(got - s) <= 1e-4 * (1 + Math.Abs(s)), $"offset {offset}: C({i}, {j}) = {got}, expected {s}");
                }
            for (int i = 0; i < offset; i++) Assert.Equal(before[i], c[i]);
        }
    }

    private static float[] Fill(Random rng, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }
}
