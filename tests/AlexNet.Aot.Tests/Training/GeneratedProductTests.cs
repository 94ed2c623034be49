using System;
using System.Collections.Generic;
using System.Linq;
using AlexNet.Aot.Tests.Reference;
using AlexNet.Aot.Training;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests.Training;

/// <summary>
/// The generated training products of every convolution (<see cref="ConvKernels"/>: forward, input gradient, weight
/// gradient, and the Winograd products of the stride-1 3x3 and 5x5 ones) and every dense layer (<see cref="DenseKernels"/>) against the runtime's blocked GEMM, bit for bit, on stacks
/// of one to three images (column panels that straddle images and end a stack), odd batches and odd feature slices. On
/// the other rungs of the ladder, the ISA-matrix child processes train whole models on the generated products against
/// the reference operations (which run the runtime's GEMM), bit for bit.
/// </summary>
public sealed class GeneratedProductTests
{
    private readonly ITestOutputHelper _out;

    public GeneratedProductTests(ITestOutputHelper output) => _out = output;

    public static IEnumerable<object[]> Models() => GeneratedConvGatherTests.Models();

    private static ModelInfo Find(string catalog, string name) =>
        ((catalog == "specs" ? AlexNet.Aot.Tests.Specs.ModelCatalog.Find(name) : AlexNet.Aot.Models.ModelCatalog.Find(name))
         ?? throw new InvalidOperationException(name + " is not compiled in")).Info;

    [Theory]
    [MemberData(nameof(Models))]
    public void ProductsMatchTheRuntimeGemmBitForBit(string catalog, string name)
    {
        ModelInfo model = Find(catalog, name);
        var shape = new Shape3(model.InputShape[0], model.InputShape[1], model.InputShape[2]);
        int convs = 0, denses = 0;
        for (int li = 0; li < model.Layers.Length; li++)
        {
            for (int oi = 0; oi < model.Layers[li].Ops.Length; oi++)
            {
                OperationInfo op = model.Layers[li].Ops[oi];
                Shape3 outShape = op.OutputShape.Length == 3 ? new Shape3(op.OutputShape[0], op.OutputShape[1], op.OutputShape[2]) : new Shape3(op.OutputShape[0], 1, 1);
                string what = $"{name}.{model.Layers[li].Name}";
                if (op.Kind == OperationKind.Conv)
                {
                    var k = Assert.IsAssignableFrom<ConvKernels>(model.Training!.Find(li, oi));
                    foreach (int images in new[] { 1, 2, 3 })
                        CompareConv(what, op, k, shape, outShape, images, (ulong)(li * 10 + images));
                    Assert.Equal(op.Stride == 1 && op.KernelH == op.KernelW && op.KernelH is 3 or 5, k.HasWinograd);
                    if (k.HasWinograd)
                        foreach (int tiles in new[] { 1, 37, 100 })
                            CompareWinograd(what, k, shape.C / op.Groups, outShape.C / op.Groups, tiles, (ulong)(li * 100 + tiles));
                    convs++;
                }
                else if (op.Kind == OperationKind.Dense)
                {
                    var k = Assert.IsAssignableFrom<DenseKernels>(model.Training!.Find(li, oi));
                    int fin = shape.Size, fout = outShape.C;
                    foreach ((int batch, int o0, int o1, int i0, int i1) in new[]
                    {
                        (1, 0, fout, 0, fin), (5, Math.Min(3, fout), fout, Math.Min(7, fin), fin), (37, 0, Math.Max(1, fout - 5), 0, Math.Max(1, fin - 9)),
                    })
                        CompareDense(what, k, fin, fout, batch, o0, o1, i0, i1, (ulong)(li * 10 + batch));
                    denses++;
                }
                shape = outShape;
            }
        }
        _out.WriteLine($"{convs} convolutions and {denses} dense layers compared");
        Assert.True(convs > 0 && denses > 0);
    }

    private static float[] Values(int n, ulong seed) =>
        RandomWeights.Uniform(n, seed, -1, 1).Select((v, i) => i % 13 == 0 ? 0f : v).ToArray();

    private static void CompareConv(string what, OperationInfo op, ConvKernels k, Shape3 shape, Shape3 outShape, int images, ulong seed)
    {
        int groups = op.Groups, cinG = shape.C / groups, coutG = outShape.C / groups, p = outShape.Plane;
        int kk = cinG * op.KernelH * op.KernelW, n = images * p, g = groups - 1;
        float[] w = Values(outShape.C * kk, seed), x = Values(images * shape.Size, seed + 1), dy = Values(images * outShape.Size, seed + 2);
        float[] bias = Values(outShape.C, seed + 3);
        float[] scratch = new float[k.ProductScratchFloats(images)];
        var gemm = new Gemm();
        string mode = $"{what}, {images} image(s), group {g}";
        ReadOnlySpan<float> wg = w.AsSpan(g * coutG * kk, coutG * kk);

        // The column matrix of the stack (the generated gather, which GeneratedConvGatherTests holds to Im2Col).
        float[] col = new float[kk * n], gatherScratch = new float[Math.Max(1, k.ScratchFloats)];
        for (int j = 0; j < images; j++)
            k.Gather(x.AsSpan(j * shape.Size + g * cinG * shape.Plane, cinG * shape.Plane), col.AsSpan(j * p), n, gatherScratch);

        // Forward: the GEMM into a [coutG, n] tile plus the bias, against the generated product's planes.
        float[] packed = new float[Gemm.PackedLength(coutG, kk)];
        Gemm.PackWhole(coutG, kk, ref w[g * coutG * kk], kk, 1, ref packed[0]);
        float[] tile = new float[coutG * n];
        gemm.MultiplyPacked(coutG, n, kk, ref packed[0], ref col[0], n, 1, ref tile[0], n, false);
        float[] yG = new float[images * outShape.Size];
        yG.AsSpan().Fill(float.NaN);
        float[] pk = new float[k.PackedFloats];
        k.PackWeights(wg, pk);
        k.Forward(pk, x.AsSpan(g * cinG * shape.Plane), shape.Size, images, bias.AsSpan(g * coutG, coutG), yG.AsSpan(g * coutG * p), outShape.Size, scratch);
        for (int j = 0; j < images; j++)
            for (int o = 0; o < coutG; o++)
                for (int q = 0; q < p; q++)
                {
                    float expected = tile[o * n + j * p + q] + bias[g * coutG + o];
                    float got = yG[j * outShape.Size + (g * coutG + o) * p + q];
                    if (BitConverter.SingleToInt32Bits(expected) != BitConverter.SingleToInt32Bits(got))
                        Assert.Fail($"{mode}: forward image {j} channel {o} pixel {q}: {got} against the GEMM's {expected}");
                }
        // Nothing outside the group's planes is written.
        for (int j = 0; j < images; j++)
            Assert.True(float.IsNaN(yG[j * outShape.Size]) || g == 0, $"{mode}: forward wrote outside its group");

        // dY of the group, stacked as the reference stacks it.
        float[] dyg = new float[coutG * n];
        for (int j = 0; j < images; j++)
            for (int o = 0; o < coutG; o++)
                Array.Copy(dy, j * outShape.Size + (g * coutG + o) * p, dyg, o * n + j * p, p);

        // Weight gradient, accumulated onto values already there.
        float[] acc0 = Values(kk * coutG, seed + 4);
        float[] accR = (float[])acc0.Clone(), accG = (float[])acc0.Clone();
        gemm.Multiply(kk, coutG, n, ref col[0], n, 1, ref dyg[0], 1, n, ref accR[0], coutG, true);
        k.WeightGradient(col, dy.AsSpan(g * coutG * p), outShape.Size, images, accG, scratch);
        AssertBits($"{mode}: weight gradient", accR, accG);

        // Input gradient (the column matrix's).
        float[] packedT = new float[Gemm.PackedLength(kk, coutG)];
        Gemm.PackWhole(kk, coutG, ref w[g * coutG * kk], 1, kk, ref packedT[0]);
        float[] dcolR = new float[kk * n], dcolG = new float[kk * n];
        gemm.MultiplyPacked(kk, n, coutG, ref packedT[0], ref dyg[0], n, 1, ref dcolR[0], n, false);
        float[] pt = new float[k.PackedTransposedFloats];
        k.PackWeightsTransposed(wg, pt);
        k.InputGradient(pt, dy.AsSpan(g * coutG * p), outShape.Size, images, dcolG, scratch);
        AssertBits($"{mode}: input gradient", dcolR, dcolG);
    }

    private static void CompareWinograd(string what, ConvKernels k, int cinG, int coutG, int tiles, ulong seed)
    {
        string mode = $"{what}, Winograd, {tiles} tiles";
        int ld = (tiles + 15) / 16 * 16 + 3, stride = (int)Math.Max(Gemm.PackedLength(coutG, cinG), Gemm.PackedLength(cinG, coutG));
        float[] u = Values(36 * coutG * cinG, seed), v = Values(36 * cinG * ld, seed + 1), dm = Values(36 * coutG * ld, seed + 2);
        float[] packed = new float[36 * stride], packedT = new float[36 * stride];
        for (int xi = 0; xi < 36; xi++)
        {
            Gemm.PackWhole(coutG, cinG, ref u[xi * coutG * cinG], cinG, 1, ref packed[xi * stride]);
            Gemm.PackWhole(cinG, coutG, ref u[xi * coutG * cinG], 1, cinG, ref packedT[xi * stride]);
        }
        float[] scratch = new float[k.WinogradScratchFloats(ld)];
        var gemm = new Gemm();

        float[] mR = Values(36 * coutG * ld, seed + 3), mG = (float[])mR.Clone();
        for (int xi = 0; xi < 36; xi++)
            gemm.MultiplyPacked(coutG, tiles, cinG, ref packed[xi * stride], ref v[xi * cinG * ld], ld, 1, ref mR[xi * coutG * ld], ld, false);
        k.WinogradForward(packed, stride, v, ld, tiles, mG, scratch);
        AssertBits($"{mode}: forward", mR, mG);

        float[] dvR = Values(36 * cinG * ld, seed + 4), dvG = (float[])dvR.Clone();
        for (int xi = 0; xi < 36; xi++)
            gemm.MultiplyPacked(cinG, tiles, coutG, ref packedT[xi * stride], ref dm[xi * coutG * ld], ld, 1, ref dvR[xi * cinG * ld], ld, false);
        k.WinogradInputGradient(packedT, stride, dm, ld, tiles, dvG, scratch);
        AssertBits($"{mode}: input gradient", dvR, dvG);

        float[] duR = Values(36 * coutG * cinG, seed + 5), duG = (float[])duR.Clone();
        for (int xi = 0; xi < 36; xi++)
            gemm.Multiply(coutG, cinG, tiles, ref dm[xi * coutG * ld], ld, 1, ref v[xi * cinG * ld], 1, ld, ref duR[xi * coutG * cinG], cinG, true);
        k.WinogradWeightGradient(dm, v, ld, tiles, duG, scratch);
        AssertBits($"{mode}: weight gradient", duR, duG);
    }

    private static void CompareDense(string what, DenseKernels k, int fin, int fout, int batch, int o0, int o1, int i0, int i1, ulong seed)
    {
        string mode = $"{what}, batch {batch}, features [{o0}, {o1}), inputs [{i0}, {i1})";
        float[] w = Values(fout * fin, seed), x = Values(batch * fin, seed + 1), dy = Values(batch * fout, seed + 2), bias = Values(fout, seed + 3);
        float[] scratch = new float[k.ScratchFloats(batch)];
        var gemm = new Gemm();

        float[] yR = Values(batch * fout, seed + 5), yG = (float[])yR.Clone();
        gemm.MultiplyStreamA(o1 - o0, batch, fin, ref w[o0 * fin], fin, ref x[0], 1, fin, ref yR[o0], 1, fout, false);
        for (int b = 0; b < batch; b++)
            for (int o = o0; o < o1; o++) yR[b * fout + o] += bias[o];
        k.Forward(w, x, batch, bias, yG, o0, o1, scratch);
        AssertBits($"{mode}: forward", yR, yG);

        float[] dwR = Values(fout * fin, seed + 6), dwG = (float[])dwR.Clone();
        gemm.MultiplyStreamC(o1 - o0, fin, batch, ref dy[o0], 1, fout, ref x[0], fin, ref dwR[o0 * fin], fin);
        k.WeightGradient(dy, x, batch, dwG, o0, o1, scratch);
        AssertBits($"{mode}: weight gradient", dwR, dwG);

        float[] dxR = Values(batch * fin, seed + 7), dxG = (float[])dxR.Clone();
        gemm.Multiply(batch, i1 - i0, fout, ref dy[0], fout, 1, ref w[i0], fin, 1, ref dxR[i0], fin, false);
        k.InputGradient(dy, w, batch, dxG, i0, i1, scratch);
        AssertBits($"{mode}: input gradient", dxR, dxG);
    }

    private static void AssertBits(string what, float[] expected, float[] got)
    {
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(got[i]))
                Assert.Fail($"{what}: element {i} is {got[i]}, the GEMM's {expected[i]}");
    }
}
