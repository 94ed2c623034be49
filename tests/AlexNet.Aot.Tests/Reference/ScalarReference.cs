using System;
using System.Collections.Generic;
using System.Globalization;

namespace AlexNet.Aot.Tests.Reference;

/// <summary>A tensor of the reference: one image's activations in double, CHW (dense: C features, H = W = 1).</summary>
public sealed class RefTensor
{
    public RefTensor(int c, int h, int w)
    {
        C = c;
        H = h;
        W = w;
        Data = new double[c * h * w];
    }

    public int C { get; }
    public int H { get; }
    public int W { get; }
    public double[] Data { get; }

    public double this[int c, int y, int x]
    {
        get => Data[(c * H + y) * W + x];
        set => Data[(c * H + y) * W + x] = value;
    }

    public override string ToString() => $"{C}x{H}x{W}";
}

/// <summary>
/// A plain scalar implementation of a whole model's forward pass, written straight from PyTorch's definitions
/// (NCHW, one image at a time, double accumulation, no packing, no tricks). It is driven only by
/// <see cref="ModelInfo"/> (each layer's operation strings, which it parses with its own small parser,
/// independent of the generator's) and the tensors of an <see cref="IWeightSource"/>.
/// It checks its own shapes against <see cref="LayerInfo.OutputShape"/> and every parameter's shape
/// against <see cref="LayerInfo.Parameters"/>, so a planner that disagrees with PyTorch shows up here too.
/// </summary>
public static class ScalarReference
{
    /// <summary>
    /// Runs <paramref name="batch"/> images (float32 NCHW) and returns [batch, classes]: the last layer's raw outputs,
    /// or their softmax when <paramref name="logits"/> is false and the model ends in softmax.
    /// </summary>
    /// <param name="skip">Operations to leave out (by the parsed op's name, e.g. "lrn"), to see what an operation changes.</param>
    /// <param name="trace">Called with (layer, operation text, input, output) after every operation of every image.</param>
    public static float[] Forward(ModelInfo model, IWeightSource weights, ReadOnlySpan<float> input, int batch, bool logits = true,
        Func<RefOp, bool>? skip = null, Action<string, RefOp, RefTensor, RefTensor>? trace = null)
    {
        int c0 = model.InputShape[0], h0 = model.InputShape[1], w0 = model.InputShape[2];
        int image = c0 * h0 * w0;
        if (input.Length != batch * image)
            throw new ArgumentException($"input has {input.Length} floats, expected {batch} x {image}");
        var layers = new List<(LayerInfo Info, List<RefOp> Ops)>();
        foreach (LayerInfo l in model.Layers)
        {
            var ops = new List<RefOp>();
            foreach (string text in l.Operations) ops.Add(RefOp.Parse(text));
            layers.Add((l, ops));
        }

        var result = new float[batch * model.Classes];
        for (int b = 0; b < batch; b++)
        {
            var x = new RefTensor(c0, h0, w0);
            for (int i = 0; i < image; i++) x.Data[i] = input[b * image + i];
            bool softmax = false;
            foreach ((LayerInfo info, List<RefOp> ops) in layers)
            {
                for (int oi = 0; oi < ops.Count; oi++)
                {
                    RefOp op = ops[oi];
                    if (oi == 0 && op.Name != info.Kind)
                        throw new InvalidOperationException($"{model.Name}.{info.Name}: kind {info.Kind} but the first operation is '{op.Text}'");
                    if (skip is not null && skip(op)) continue;
                    RefTensor y = Apply(model, info, op, x, weights, ref softmax);
                    trace?.Invoke(info.Name, op, x, y);
                    x = y;
                }
                int[] expected = info.OutputShape;
                bool same = expected.Length == 3 ? expected[0] == x.C && expected[1] == x.H && expected[2] == x.W
                    : expected.Length == 1 && expected[0] == x.C * x.H * x.W;
                if (!same && skip is null)
                    throw new InvalidOperationException($"{model.Name}.{info.Name}: the reference computes {x}, the model info says [{string.Join(", ", expected)}]");
            }
            if (x.Data.Length != model.Classes)
                throw new InvalidOperationException($"{model.Name}: {x.Data.Length} outputs, the model info says {model.Classes} classes");
            if (softmax && !logits) Softmax(x.Data);
            for (int j = 0; j < model.Classes; j++) result[b * model.Classes + j] = (float)x.Data[j];
        }
        return result;
    }

    private static RefTensor Apply(ModelInfo model, LayerInfo layer, RefOp op, RefTensor x, IWeightSource weights, ref bool softmax)
    {
        switch (op.Name)
        {
            case "conv": return Conv(model, layer, op, x, weights);
            case "dense": return Dense(model, layer, op, x, weights);
            case "relu": return Map(x, v => v > 0 ? v : 0);
            case "lrn": return Lrn(op, x);
            case "maxpool": return Pool(op, x, max: true);
            case "avgpool": return Pool(op, x, max: false);
            case "adaptiveavgpool": return Adaptive(op, x);
            case "bn":
            case "batchnorm": return BatchNorm(model, layer, op, x, weights);
            case "dropout": return x; // eval mode
            case "flatten": return x; // CHW is already in flattened order
            case "softmax": softmax = true; return x;
            default: throw new InvalidOperationException($"{model.Name}.{layer.Name}: the reference does not know '{op.Text}'");
        }
    }

    // ------------------------------------------------------------------ the operations, as PyTorch defines them

    /// <summary>torch.nn.Conv2d: out[oc, oy, ox] = bias[oc] + sum over the group's input channels ic and the kernel window
    /// of weight[oc, ic - g*Cin/groups, ky, kx] * in[ic, oy*s - p + ky, ox*s - p + kx] (zero outside the image).</summary>
    private static RefTensor Conv(ModelInfo model, LayerInfo layer, RefOp op, RefTensor x, IWeightSource weights)
    {
        int cout = op.Int(0, "out");
        (int kh, int kw) = op.Kernel();
        int s = op.IntOr("stride", 1), p = op.IntOr("padding", 0), groups = op.IntOr("groups", 1);
        bool hasBias = op.BoolOr("bias", true);
        if (x.C % groups != 0 || cout % groups != 0) throw new InvalidOperationException($"{layer.Name}: groups={groups} does not divide {x.C} -> {cout}");
        int cinG = x.C / groups, coutG = cout / groups;
        int oh = (x.H + 2 * p - kh) / s + 1, ow = (x.W + 2 * p - kw) / s + 1;
        float[] w = Param(model, layer, 0, ".weight", new[] { cout, cinG, kh, kw }, weights);
        float[]? bias = hasBias ? Param(model, layer, 1, ".bias", new[] { cout }, weights) : null;
        var y = new RefTensor(cout, oh, ow);
        double[] xd = x.Data, yd = y.Data;
        int h = x.H, wd = x.W;
        // The same sum, ordered weight by weight (direct convolution): for each weight w[oc, icg, ky, kx], add its product
        // with every input pixel it meets to the output pixels of channel oc. Plain arrays, so it stays fast unoptimized too.
        for (int oc = 0; oc < cout; oc++)
        {
            int g = oc / coutG;
            int plane = oc * oh * ow;
            for (int i = 0; i < oh * ow; i++) yd[plane + i] = bias is null ? 0 : bias[oc];
            for (int icg = 0; icg < cinG; icg++)
            {
                int ic = g * cinG + icg;
                for (int ky = 0; ky < kh; ky++)
                {
                    for (int kx = 0; kx < kw; kx++)
                    {
                        double wv = w[((oc * cinG + icg) * kh + ky) * kw + kx];
                        for (int oy = 0; oy < oh; oy++)
                        {
                            int iy = oy * s - p + ky;
                            if (iy < 0 || iy >= h) continue; // zero padding
                            int row = (ic * h + iy) * wd, outRow = plane + oy * ow;
                            for (int ox = 0; ox < ow; ox++)
                            {
                                int ix = ox * s - p + kx;
                                if (ix < 0 || ix >= wd) continue; // zero padding
                                yd[outRow + ox] += wv * xd[row + ix];
                            }
                        }
                    }
                }
            }
        }
        return y;
    }

    /// <summary>torch.nn.Linear on the flattened input: out[o] = bias[o] + sum over i of weight[o, i] * in[i].</summary>
    private static RefTensor Dense(ModelInfo model, LayerInfo layer, RefOp op, RefTensor x, IWeightSource weights)
    {
        int outF = op.Int(0, "out");
        int inF = x.Data.Length;
        bool hasBias = op.BoolOr("bias", true);
        float[] w = Param(model, layer, 0, ".weight", new[] { outF, inF }, weights);
        float[]? bias = hasBias ? Param(model, layer, 1, ".bias", new[] { outF }, weights) : null;
        var y = new RefTensor(outF, 1, 1);
        double[] xd = x.Data;
        for (int o = 0; o < outF; o++)
        {
            double sum = bias is null ? 0 : bias[o];
            int row = o * inF;
            for (int i = 0; i < inF; i++) sum += w[row + i] * xd[i];
            y.Data[o] = sum;
        }
        return y;
    }

    /// <summary>torch.nn.LocalResponseNorm(size, alpha, beta, k): b[c] = a[c] / (k + alpha/size * sum of a[c']^2)^beta,
    /// c' from c - size/2 to c + (size-1)/2, cut at the channel edges (PyTorch zero-pads, then averages over size).</summary>
    private static RefTensor Lrn(RefOp op, RefTensor x)
    {
        int size = op.IntAt(0, "size", null);
        double alpha = op.DoubleAt(1, "alpha", 1e-4), beta = op.DoubleAt(2, "beta", 0.75), k = op.DoubleAt(3, "k", 1.0);
        var y = new RefTensor(x.C, x.H, x.W);
        for (int c = 0; c < x.C; c++)
        {
            for (int yy = 0; yy < x.H; yy++)
            {
                for (int xx = 0; xx < x.W; xx++)
                {
                    double sum = 0;
                    for (int j = c - size / 2; j <= c + (size - 1) / 2; j++)
                    {
                        if (j < 0 || j >= x.C) continue;
                        sum += x[j, yy, xx] * x[j, yy, xx];
                    }
                    y[c, yy, xx] = x[c, yy, xx] / Math.Pow(k + alpha / size * sum, beta);
                }
            }
        }
        return y;
    }

    /// <summary>PyTorch's pooling output size: floor or ceil of (n + 2p - k) / s, plus one; in ceil mode a last
    /// window that would start in the right padding is dropped.</summary>
    public static int PoolOutput(int n, int k, int s, int p, bool ceil)
    {
        int span = n + 2 * p - k;
        int o = (ceil ? (int)Math.Ceiling(span / (double)s) : (int)Math.Floor(span / (double)s)) + 1;
        if (ceil && (o - 1) * s >= n + p) o--;
        return o;
    }

    /// <summary>torch.nn.MaxPool2d / AvgPool2d (square kernel). Max: padding never wins. Avg: the window is cut at
    /// n + p (PyTorch's hend = min(hstart + k, n + p)); count_include_pad divides by that window's size,
    /// otherwise by the number of pixels inside the image.</summary>
    private static RefTensor Pool(RefOp op, RefTensor x, bool max)
    {
        int k = op.IntAt(0, "kernel", null);
        int s = op.IntOr("stride", k), p = op.IntOr("padding", 0);
        bool ceil = op.BoolOr("ceil_mode", false);
        bool includePad = op.BoolOr("count_include_pad", true);
        int oh = PoolOutput(x.H, k, s, p, ceil), ow = PoolOutput(x.W, k, s, p, ceil);
        var y = new RefTensor(x.C, oh, ow);
        for (int c = 0; c < x.C; c++)
        {
            for (int oy = 0; oy < oh; oy++)
            {
                for (int ox = 0; ox < ow; ox++)
                {
                    int hs = oy * s - p, ws = ox * s - p;
                    int he = Math.Min(hs + k, x.H + p), we = Math.Min(ws + k, x.W + p);
                    int poolSize = (he - hs) * (we - ws);
                    hs = Math.Max(hs, 0);
                    ws = Math.Max(ws, 0);
                    he = Math.Min(he, x.H);
                    we = Math.Min(we, x.W);
                    double acc = max ? double.NegativeInfinity : 0;
                    for (int yy = hs; yy < he; yy++)
                        for (int xx = ws; xx < we; xx++)
                            acc = max ? Math.Max(acc, x[c, yy, xx]) : acc + x[c, yy, xx];
                    y[c, oy, ox] = max ? acc : acc / (includePad ? poolSize : (he - hs) * (we - ws));
                }
            }
        }
        return y;
    }

    /// <summary>torch.nn.AdaptiveAvgPool2d: output (i, j) averages rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1, columns likewise.</summary>
    private static RefTensor Adaptive(RefOp op, RefTensor x)
    {
        (int oh, int ow) = op.OutputSize();
        var y = new RefTensor(x.C, oh, ow);
        for (int c = 0; c < x.C; c++)
        {
            for (int i = 0; i < oh; i++)
            {
                int y0 = (int)Math.Floor(i * x.H / (double)oh), y1 = (int)Math.Ceiling((i + 1) * x.H / (double)oh);
                for (int j = 0; j < ow; j++)
                {
                    int x0 = (int)Math.Floor(j * x.W / (double)ow), x1 = (int)Math.Ceiling((j + 1) * x.W / (double)ow);
                    double sum = 0;
                    for (int yy = y0; yy < y1; yy++)
                        for (int xx = x0; xx < x1; xx++)
                            sum += x[c, yy, xx];
                    y[c, i, j] = sum / ((y1 - y0) * (x1 - x0));
                }
            }
        }
        return y;
    }

    /// <summary>torch.nn.BatchNorm2d / BatchNorm1d in eval mode: (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel.</summary>
    private static RefTensor BatchNorm(ModelInfo model, LayerInfo layer, RefOp op, RefTensor x, IWeightSource weights)
    {
        double eps = op.DoubleOr("eps", 1e-5);
        string prefix = op.StringOr("from", layer.Name + ".bn");
        float[] gamma = Named(model, layer, prefix + ".weight", new[] { x.C }, weights);
        float[] beta = Named(model, layer, prefix + ".bias", new[] { x.C }, weights);
        float[] mean = Named(model, layer, prefix + ".running_mean", new[] { x.C }, weights);
        float[] variance = Named(model, layer, prefix + ".running_var", new[] { x.C }, weights);
        var y = new RefTensor(x.C, x.H, x.W);
        int hw = x.H * x.W;
        for (int c = 0; c < x.C; c++)
            for (int i = 0; i < hw; i++)
                y.Data[c * hw + i] = (x.Data[c * hw + i] - mean[c]) / Math.Sqrt(variance[c] + eps) * gamma[c] + beta[c];
        return y;
    }

    private static void Softmax(double[] v)
    {
        double max = double.NegativeInfinity;
        foreach (double d in v) max = Math.Max(max, d);
        double sum = 0;
        for (int i = 0; i < v.Length; i++) sum += v[i] = Math.Exp(v[i] - max);
        for (int i = 0; i < v.Length; i++) v[i] /= sum;
    }

    private static RefTensor Map(RefTensor x, Func<double, double> f)
    {
        var y = new RefTensor(x.C, x.H, x.W);
        for (int i = 0; i < x.Data.Length; i++) y.Data[i] = f(x.Data[i]);
        return y;
    }

    // ------------------------------------------------------------------ parameters

    /// <summary>The layer's index-th parameter, which must end in <paramref name="suffix"/> and have <paramref name="shape"/>.</summary>
    private static float[] Param(ModelInfo model, LayerInfo layer, int index, string suffix, int[] shape, IWeightSource weights)
    {
        if (index >= layer.Parameters.Length || !layer.Parameters[index].Key.EndsWith(suffix, StringComparison.Ordinal))
            throw new InvalidOperationException($"{model.Name}.{layer.Name}: parameter {index} should be the layer's '{suffix}'; the model info has [{string.Join(", ", Array.ConvertAll(layer.Parameters, q => q.Key))}]");
        return Named(model, layer, layer.Parameters[index].Key, shape, weights);
    }

    private static float[] Named(ModelInfo model, LayerInfo layer, string key, int[] shape, IWeightSource weights)
    {
        ParameterInfo? info = Array.Find(layer.Parameters, q => q.Key == key);
        if (info is null)
            throw new InvalidOperationException($"{model.Name}.{layer.Name}: the model info does not list {key}");
        if (!SameShape(info.Shape, shape))
            throw new InvalidOperationException($"{model.Name}.{layer.Name}: {key} is {info.ShapeText} in the model info; PyTorch's shape is [{string.Join(", ", shape)}]");
        if (!weights.TryGet(key, out LoadedTensor t))
            throw new InvalidOperationException($"{weights.Origin}: no tensor {key}");
        if (!SameShape(t.Shape, shape) || t.Data.Length != info.Count)
            throw new InvalidOperationException($"{weights.Origin}: {key} has shape [{string.Join(", ", t.Shape)}], expected [{string.Join(", ", shape)}]");
        return t.Data;
    }

    private static bool SameShape(int[] a, int[] b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
        return true;
    }
}

/// <summary>
/// One operation string of <see cref="LayerInfo.Operations"/>, parsed on its own terms: <c>conv 16 k11 s4 p2 groups=2 bias=false</c>,
/// <c>dense 64</c>, <c>relu</c>, <c>lrn(size=5, alpha=1e-4, beta=0.75, k=2)</c> or <c>lrn(5, 1e-4, 0.75, 2)</c>,
/// <c>maxpool(3, s2, p1, ceil)</c>, <c>avgpool(kernel=3, stride=2, count_include_pad=false)</c> or <c>avgpool(3, exclude_pad)</c>,
/// <c>adaptiveavgpool(6x6)</c> or <c>adaptiveavgpool(2, 1)</c>, <c>bn(eps=1e-3, from=features.1)</c>, <c>dropout(0.5)</c>, <c>softmax</c>.
/// </summary>
public sealed class RefOp
{
    private RefOp(string text, string name, List<string> positional, Dictionary<string, string> named)
    {
        Text = text;
        Name = name;
        Positional = positional;
        Named = named;
    }

    /// <summary>The operation as written.</summary>
    public string Text { get; }

    /// <summary>conv, dense, relu, lrn, maxpool, avgpool, adaptiveavgpool, bn, dropout, flatten, softmax.</summary>
    public string Name { get; }

    public List<string> Positional { get; }

    public Dictionary<string, string> Named { get; }

    public override string ToString() => Text;

    public static RefOp Parse(string text)
    {
        string t = text.Trim();
        var positional = new List<string>();
        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        string name;
        int open = t.IndexOf('(');
        if (open >= 0)
        {
            // name(arg, arg, key=value, ...)
            if (!t.EndsWith(")", StringComparison.Ordinal)) throw new FormatException($"'{text}': no closing ')'");
            name = t.Substring(0, open).Trim();
            string inner = t.Substring(open + 1, t.Length - open - 2);
            foreach (string raw in inner.Split(','))
            {
                string a = raw.Trim();
                if (a.Length == 0) continue;
                int eq = a.IndexOf('=');
                if (eq > 0) { named[a.Substring(0, eq).Trim()] = a.Substring(eq + 1).Trim(); continue; }
                if (name is "maxpool" or "avgpool")
                {
                    // pool shorthands: sN, pN, ceil, exclude_pad
                    if (a.Length > 1 && a[0] == 's' && char.IsDigit(a[1])) { named["stride"] = a.Substring(1); continue; }
                    if (a.Length > 1 && a[0] == 'p' && char.IsDigit(a[1])) { named["padding"] = a.Substring(1); continue; }
                    if (a == "ceil") { named["ceil_mode"] = "true"; continue; }
                    if (a == "exclude_pad") { named["count_include_pad"] = "false"; continue; }
                }
                positional.Add(a);
            }
        }
        else
        {
            // conv N kH[xW] sN pN groups=N bias=false from=...   |   dense N   |   relu
            string[] parts = t.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            name = parts[0];
            for (int i = 1; i < parts.Length; i++)
            {
                string a = parts[i];
                int eq = a.IndexOf('=');
                if (eq > 0)
                {
                    string key = a.Substring(0, eq) switch { "k" => "kernel", "s" => "stride", "p" or "pad" => "padding", "g" => "groups", var other => other };
                    named[key] = a.Substring(eq + 1);
                }
                else if (a == "nobias") named["bias"] = "false";
                else if (a.Length > 1 && char.IsDigit(a[1]) && a[0] is 'k' or 's' or 'p' or 'g')
                    named[a[0] switch { 'k' => "kernel", 's' => "stride", 'p' => "padding", _ => "groups" }] = a.Substring(1);
                else positional.Add(a);
            }
        }
        if (name == "batchnorm") name = "bn";
        return new RefOp(text, name, positional, named);
    }

    public int Int(int index, string what) =>
        index < Positional.Count ? ParseInt(Positional[index]) : throw new FormatException($"'{Text}': no {what}");

    public int IntOr(string key, int fallback) => Named.TryGetValue(key, out string? v) ? ParseInt(v) : fallback;

    /// <summary>The value given by name, else the index-th positional argument, else the default (null: required).</summary>
    public int IntAt(int index, string key, int? fallback) =>
        Named.TryGetValue(key, out string? v) ? ParseInt(v)
        : index < Positional.Count ? ParseInt(Positional[index])
        : fallback ?? throw new FormatException($"'{Text}': no {key}");

    public double DoubleAt(int index, string key, double fallback) =>
        Named.TryGetValue(key, out string? v) ? ParseDouble(v)
        : index < Positional.Count ? ParseDouble(Positional[index])
        : fallback;

    public double DoubleOr(string key, double fallback) => Named.TryGetValue(key, out string? v) ? ParseDouble(v) : fallback;

    public bool BoolOr(string key, bool fallback) => Named.TryGetValue(key, out string? v) ? v == "true" : fallback;

    public string StringOr(string key, string fallback) => Named.TryGetValue(key, out string? v) ? v : fallback;

    /// <summary>kernel=N or kernel=HxW.</summary>
    public (int H, int W) Kernel()
    {
        string k = Named.TryGetValue("kernel", out string? v) ? v : throw new FormatException($"'{Text}': no kernel");
        string[] hw = k.Split('x');
        return hw.Length == 1 ? (ParseInt(hw[0]), ParseInt(hw[0])) : (ParseInt(hw[0]), ParseInt(hw[1]));
    }

    /// <summary>adaptiveavgpool(HxW), (N), (H, W) or size=HxW.</summary>
    public (int H, int W) OutputSize()
    {
        var parts = new List<string>();
        if (Named.TryGetValue("size", out string? s)) parts.Add(s);
        parts.AddRange(Positional);
        if (parts.Count == 1 && parts[0].Contains('x'))
        {
            string[] hw = parts[0].Split('x');
            return (ParseInt(hw[0]), ParseInt(hw[1]));
        }
        if (parts.Count == 1) return (ParseInt(parts[0]), ParseInt(parts[0]));
        if (parts.Count == 2) return (ParseInt(parts[0]), ParseInt(parts[1]));
        throw new FormatException($"'{Text}': no output size");
    }

    private static int ParseInt(string s) => int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture);

    private static double ParseDouble(string s) => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);
}
