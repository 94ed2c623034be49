using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace AlexNet.Aot.Tests;

/// <summary>How a zoo-style graph writes Caffe's ceil-mode max pooling.</summary>
internal enum ZooPools
{
    /// <summary>Opset 9, explicit end padding as Caffe2's ONNX exporter computes it for <c>legacy_pad</c>
    /// (<c>end = out * stride - begin - 1 + kernel - in</c>): pads [0, 0, 2, 2] at 54 -> 27, [0, 0, 1, 1] at 27 -> 13.</summary>
    Caffe2,
    /// <summary>Opset 9, the least end padding that gives the ceil-mode size: [0, 0, 1, 1] at 54 -> 27.</summary>
    OneEndPad,
    /// <summary>Opset 10, <c>ceil_mode=1</c> with the spec's symmetric pads.</summary>
    CeilMode,
}

/// <summary>One node of a zoo-style graph, editable before it is written.</summary>
internal sealed class ZooNode
{
    public ZooNode(string opType, string[] inputs, string[] outputs)
    {
        OpType = opType;
        Inputs = new List<string>(inputs);
        Outputs = new List<string>(outputs);
    }

    public string OpType { get; set; }
    public List<string> Inputs { get; }
    public List<string> Outputs { get; }

    /// <summary>The attributes in order: each value a <c>long</c>, a <c>float</c> or a <c>long[]</c>.</summary>
    public List<(string Name, object Value)> Attributes { get; } = new();

    public ZooNode Set(string name, object value)
    {
        int i = Attributes.FindIndex(a => a.Name == name);
        if (i >= 0) Attributes[i] = (name, value);
        else Attributes.Add((name, value));
        return this;
    }
}

/// <summary>What to vary in a zoo-style graph.</summary>
internal sealed record ZooOptions
{
    public ZooPools Pools { get; init; } = ZooPools.Caffe2;

    /// <summary>Dense layers written as <c>Gemm(transB=0)</c> with the weight stored [in, out].</summary>
    public string[] TransposedDense { get; init; } = Array.Empty<string>();

    /// <summary>Called on every node before it is written (to break one attribute).</summary>
    public Action<ZooNode>? Edit { get; init; }

    /// <summary>Also make the last dense layer's output (the logits, before the softmax) a graph output.</summary>
    public bool LogitsOutput { get; init; }
}

/// <summary>
/// Writes a graph shaped like the ONNX model zoo's <c>bvlc_alexnet</c> (Caffe -> Caffe2 -> ONNX, as Caffe2's exporter
/// writes it) for a model of that layout, as an OnnxSharp <c>ModelProto</c> written by Google.Protobuf: the input <c>data_0</c> [1, C, H, W];
/// initializers <c>conv1_w_0</c>, <c>conv1_b_0</c>, ..., <c>fc8_b_0</c>, listed as graph inputs too (IR version 4);
/// unnamed nodes whose outputs carry SSA-style names as Caffe2 gives them (<c>conv1_1</c>, <c>conv1_2</c>,
/// <c>norm1_1</c>, <c>pool1_1</c>, ..., <c>prob_1</c>; the names do not matter to the import); Conv with kernel_shape, strides, pads and group; Relu; LRN with size, alpha, beta and bias;
/// MaxPool per <see cref="ZooPools"/>; a Reshape to [-1, features] by the INT64 initializer <c>OC2_DUMMY_1</c> before
/// the first Gemm; Gemm with transB=1; Dropout with ratio; Softmax to <c>prob_1</c>. Producer <c>onnx-caffe2</c>.
/// </summary>
internal static class ZooGraph
{
    public static void Write(string path, ModelInfo model, IWeightSource weights, ZooOptions? options = null)
    {
        options ??= new ZooOptions();
        var nodes = new List<ZooNode>();
        var inits = new List<(string Name, long[] Dims, int DataType, float[]? Floats, long[]? Longs)>();
        var versions = new Dictionary<string, int>(StringComparer.Ordinal);
        string Ssa(string blob)
        {
            versions[blob] = versions.TryGetValue(blob, out int v) ? v + 1 : 1;
            return blob + "_" + versions[blob].ToString(CultureInfo.InvariantCulture);
        }

        LoadedTensor Tensor(string key) =>
            weights.TryGet(key, out LoadedTensor t) ? t : throw new InvalidOperationException($"{weights.Origin} has no {key}");

        string x = "data_0";
        int[] shape = model.InputShape;
        bool flat = false;
        string logits = "";
        foreach (LayerInfo layer in model.Layers)
        {
            string name = layer.Name, number = name.TrimStart('c', 'o', 'n', 'v', 'f'); // conv1 -> 1: norm1, pool1
            int[] inShape = shape;
            foreach (OperationInfo op in layer.Ops)
            {
                ZooNode? n = null;
                switch (op.Kind)
                {
                    case OperationKind.Conv:
                    {
                        string w = name + "_w_0", b = name + "_b_0";
                        LoadedTensor wt = Tensor(op.CheckpointPrefix + ".weight"), bt = Tensor(op.CheckpointPrefix + ".bias");
                        inits.Add((w, Longs(wt.Shape), 1, wt.Data, null));
                        inits.Add((b, Longs(bt.Shape), 1, bt.Data, null));
                        n = new ZooNode("Conv", new[] { x, w, b }, new[] { Ssa(name) });
                        n.Set("kernel_shape", new long[] { op.KernelH, op.KernelW });
                        n.Set("strides", new long[] { op.Stride, op.Stride });
                        n.Set("pads", new long[] { op.Padding, op.Padding, op.Padding, op.Padding });
                        if (op.Groups > 1) n.Set("group", (long)op.Groups);
                        break;
                    }
                    case OperationKind.Dense:
                    {
                        if (!flat && inShape.Length == 3)
                        {
                            inits.Add(("OC2_DUMMY_1", new long[] { 2 }, 7, null, new long[] { -1, (long)inShape[0] * inShape[1] * inShape[2] }));
                            var reshape = new ZooNode("Reshape", new[] { x, "OC2_DUMMY_1" }, new[] { "OC2_DUMMY_0" });
                            options.Edit?.Invoke(reshape);
                            nodes.Add(reshape);
                            x = "OC2_DUMMY_0";
                        }
                        flat = true;
                        string w = name + "_w_0", b = name + "_b_0";
                        LoadedTensor wt = Tensor(op.CheckpointPrefix + ".weight"), bt = Tensor(op.CheckpointPrefix + ".bias");
                        bool transposed = Array.IndexOf(options.TransposedDense, name) >= 0;
                        inits.Add((w, transposed ? new long[] { wt.Shape[1], wt.Shape[0] } : Longs(wt.Shape), 1, transposed ? Transpose(wt) : wt.Data, null));
                        inits.Add((b, Longs(bt.Shape), 1, bt.Data, null));
                        n = new ZooNode("Gemm", new[] { x, w, b }, new[] { Ssa(name) });
                        n.Set("transB", transposed ? 0L : 1L);
                        logits = n.Outputs[0];
                        break;
                    }
                    case OperationKind.Relu:
                        n = new ZooNode("Relu", new[] { x }, new[] { Ssa(name) });
                        break;
                    case OperationKind.Lrn:
                        n = new ZooNode("LRN", new[] { x }, new[] { Ssa("norm" + number) });
                        n.Set("size", (long)op.Size).Set("alpha", op.Alpha).Set("beta", op.Beta).Set("bias", op.K);
                        break;
                    case OperationKind.MaxPool:
                    {
                        if (shape.Length != 3) throw new NotSupportedException("a zoo graph pools [C, H, W]");
                        n = new ZooNode("MaxPool", new[] { x }, new[] { Ssa("pool" + number) });
                        n.Set("kernel_shape", new long[] { op.KernelH, op.KernelW });
                        n.Set("strides", new long[] { op.Stride, op.Stride });
                        int p = op.Padding, oh = op.OutputShape[1], ow = op.OutputShape[2];
                        long EndPad(int input, int output, int kernel) => options.Pools switch
                        {
                            ZooPools.Caffe2 => (long)output * op.Stride - p - 1 + kernel - input,
                            ZooPools.OneEndPad => Math.Max(0, (long)(output - 1) * op.Stride + kernel - input - p),
                            _ => p,
                        };
                        n.Set("pads", new long[] { p, p, EndPad(shape[1], oh, op.KernelH), EndPad(shape[2], ow, op.KernelW) });
                        if (options.Pools == ZooPools.CeilMode) n.Set("ceil_mode", op.CeilMode ? 1L : 0L);
                        break;
                    }
                    case OperationKind.Dropout:
                        n = new ZooNode("Dropout", new[] { x }, new[] { Ssa(name), Ssa("_" + name + "_mask") });
                        n.Set("ratio", op.P);
                        break;
                    case OperationKind.Softmax:
                        n = new ZooNode("Softmax", new[] { x }, new[] { "prob_1" });
                        break;
                    case OperationKind.Flatten:
                        break;
                    default:
                        throw new NotSupportedException($"{layer.Name}: {op.Kind} is not in a zoo-style AlexNet graph");
                }
                if (op.OutputShape is { Length: > 0 }) shape = op.OutputShape;
                if (n is null) continue;
                options.Edit?.Invoke(n);
                nodes.Add(n);
                x = n.Outputs[0];
            }
        }

        var graph = new GraphProto { Name = "bvlc_alexnet" };
        foreach (ZooNode n in nodes) graph.Node.Add(Encode(n));
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("raw_data is written in the machine's byte order");
        foreach (var init in inits)
        {
            var t = new TensorProto { DataType = init.DataType, Name = init.Name };
            t.Dims.AddRange(init.Dims);
            t.RawData = init.Floats is not null
                ? ByteString.CopyFrom(MemoryMarshal.AsBytes(init.Floats.AsSpan()))
                : ByteString.CopyFrom(MemoryMarshal.AsBytes(init.Longs.AsSpan()));
            graph.Initializer.Add(t);
        }
        graph.Input.Add(ValueInfo("data_0", 1, new long[] { 1 }, Longs(model.InputShape)));
        foreach (var init in inits) graph.Input.Add(ValueInfo(init.Name, init.DataType, Array.Empty<long>(), init.Dims));
        graph.Output.Add(ValueInfo(x, 1, new long[] { 1 }, new long[] { model.Classes }));
        if (options.LogitsOutput && logits != x) graph.Output.Add(ValueInfo(logits, 1, new long[] { 1 }, new long[] { model.Classes }));

        bool opset10 = options.Pools == ZooPools.CeilMode;
        var proto = new ModelProto { IrVersion = opset10 ? 5 : 4, ProducerName = "onnx-caffe2", Graph = graph };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset10 ? 10 : 9 });
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        proto.WriteTo(fs);
    }

    /// <summary>A NodeProto: input, output, op_type, attribute; no name, as in Caffe2's export.</summary>
    private static NodeProto Encode(ZooNode n)
    {
        var node = new NodeProto { OpType = n.OpType };
        node.Input.AddRange(n.Inputs);
        node.Output.AddRange(n.Outputs);
        foreach ((string name, object value) in n.Attributes)
        {
            var a = new AttributeProto { Name = name };
            switch (value)
            {
                case float f:
                    a.F = f;
                    a.Type = AttributeProto.Types.AttributeType.Float;
                    break;
                case long i:
                    a.I = i;
                    a.Type = AttributeProto.Types.AttributeType.Int;
                    break;
                case long[] ints:
                    a.Ints.AddRange(ints);
                    a.Type = AttributeProto.Types.AttributeType.Ints;
                    break;
                default:
                    throw new ArgumentException($"attribute {name}: {value.GetType().Name} is not long, float or long[]");
            }
            node.Attribute.Add(a);
        }
        return node;
    }

    /// <summary>ValueInfoProto: name, a tensor type of the element type with the shape <paramref name="lead"/> then <paramref name="dims"/>.</summary>
    private static ValueInfoProto ValueInfo(string name, int elemType, long[] lead, long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in lead) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        var tensor = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape };
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    private static long[] Longs(int[] v) => Array.ConvertAll(v, d => (long)d);

    private static float[] Transpose(LoadedTensor w)
    {
        int rows = w.Shape[0], cols = w.Shape[1];
        var t = new float[w.Data.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                t[(long)c * rows + r] = w.Data[(long)r * cols + c];
        return t;
    }
}
