using System;
using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace AlexNet.Aot.Onnx;

/// <summary>
/// Writes a model's graph and weights as an ONNX file (IR version 8, opset 17): an OnnxSharp <c>Onnx.ModelProto</c>
/// written by Google.Protobuf (generated code, no reflection: AOT-safe), the initializers' raw data wrapping the
/// weights' float32 arrays without a copy (on little-endian machines).
/// The graph takes <c>input</c> [N, C, H, W] float32 and gives <c>logits</c> [N, classes]: a trailing softmax
/// is left out, as in PyTorch's exported fixtures. Dropout and flatten (identities at inference) are left out;
/// an explicit <c>Flatten(axis=1)</c> precedes the first <c>Gemm</c>. Initializers keep their checkpoint keys.
/// </summary>
public static class OnnxExporter
{
    /// <summary>The ONNX IR version written.</summary>
    public const long IrVersion = 8;

    /// <summary>The default-domain opset written.</summary>
    public const long Opset = 17;

    /// <summary>Exports <paramref name="model"/> with the tensors of <paramref name="weights"/> to <paramref name="path"/>.</summary>
    /// <param name="model">The model's description (its layers' resolved operations).</param>
    /// <param name="weights">The checkpoint tensors, found by each operation's checkpoint keys.</param>
    /// <param name="path">The file to write, replaced atomically (a temporary file in the same folder, then moved).</param>
    /// <param name="dynamicBatch">True: the batch dimension is the symbol <c>N</c>; false: it is fixed at 1.</param>
    /// <exception cref="WeightsException">Tensors are missing, mis-shaped or not floating-point (every problem is listed), the
    /// weights are more than a protobuf file can hold (2 GiB), or the file cannot be written.</exception>
    /// <exception cref="NotSupportedException">An operation has no ONNX equivalent here (e.g. an adaptive average pool whose input is not a multiple of its output).</exception>
    public static void Export(ModelInfo model, IWeightSource weights, string path, bool dynamicBatch = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(path);

        var builder = new GraphBuilder(model, weights);
        builder.Build();

        var graph = new GraphProto { Name = model.Name };
        graph.Node.AddRange(builder.Nodes);
        long rawBytes = 0;
        foreach (Initializer init in builder.Initializers)
        {
            var t = new TensorProto { DataType = (int)TensorProto.Types.DataType.Float, Name = init.Name, RawData = RawFloats(init.Data) };
            foreach (int d in init.Shape) t.Dims.Add(d);
            graph.Initializer.Add(t);
            rawBytes += 4L * init.Data.Length;
        }
        // Room for the graph's structure besides the raw data; protobuf messages are limited to 2 GiB.
        if (rawBytes > int.MaxValue - (64L << 20))
            throw new WeightsException($"{path}: the weights take {rawBytes} bytes, more than an ONNX protobuf file can hold (2 GiB)");
        graph.Input.Add(ValueInfo("input", dynamicBatch, model.InputShape));
        graph.Output.Add(ValueInfo("logits", dynamicBatch, new[] { model.Classes }));

        var proto = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "AlexNet.Aot",
            ProducerVersion = typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = graph,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });

        AtomicFile.Write(path, fs => proto.WriteTo(fs));
    }

    /// <summary>A float32 array's little-endian bytes as a raw_data ByteString: the array itself, wrapped, on
    /// little-endian machines (the exporter neither changes nor keeps it); a copy elsewhere.</summary>
    private static ByteString RawFloats(float[] data)
    {
        if (BitConverter.IsLittleEndian) return UnsafeByteOperations.UnsafeWrap(new FloatBytes(data).Memory);
        var bytes = new byte[4L * data.Length];
        for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), data[i]);
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>A float array seen as bytes, for <see cref="UnsafeByteOperations.UnsafeWrap(ReadOnlyMemory{byte})"/>.</summary>
    private sealed class FloatBytes : MemoryManager<byte>
    {
        private readonly float[] _data;

        public FloatBytes(float[] data) => _data = data;

        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(_data.AsSpan());

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            GCHandle handle = GCHandle.Alloc(_data, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle, this);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }

    /// <summary>ValueInfoProto: name, TypeProto { tensor_type { elem_type FLOAT, shape [N or 1, dims...] } }.</summary>
    private static ValueInfoProto ValueInfo(string name, bool dynamicBatch, int[] perImage)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(dynamicBatch ? new TensorShapeProto.Types.Dimension { DimParam = "N" } : new TensorShapeProto.Types.Dimension { DimValue = 1 });
        foreach (int d in perImage) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape };
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    private sealed record Initializer(string Name, int[] Shape, float[] Data);

    /// <summary>Walks the layers' operations, collecting nodes (as NodeProtos) and initializers.</summary>
    private sealed class GraphBuilder
    {
        private readonly ModelInfo _model;
        private readonly WeightBinder _binder;
        private readonly List<NodeProto> _nodes = new();
        private readonly HashSet<string> _names = new(StringComparer.Ordinal);

        public GraphBuilder(ModelInfo model, IWeightSource weights)
        {
            _model = model;
            _binder = new WeightBinder(weights, model);
        }

        public List<Initializer> Initializers { get; } = new();

        public IReadOnlyList<NodeProto> Nodes => _nodes;

        public void Build()
        {
            if (_model.InputShape is not { Length: 3 })
                throw new NotSupportedException($"model {_model.Name}: the input shape must be [C, H, W]");

            string current = "input";
            int[] shape = (int[])_model.InputShape.Clone();
            var pending = new List<PendingNode>();

            foreach (LayerInfo layer in _model.Layers)
            {
                int index = 0;
                foreach (OperationInfo op in layer.Ops)
                {
                    string nodeName = layer.Name + "_" + op.Kind.ToString().ToLowerInvariant() + (index == 0 ? "" : "_" + index.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    index++;
                    switch (op.Kind)
                    {
                        case OperationKind.Conv:
                        {
                            RequireRank(layer, op, shape, 3);
                            int cin = shape[0];
                            if (op.Groups < 1 || cin % op.Groups != 0 || op.Out % op.Groups != 0)
                                throw new NotSupportedException($"layer {layer.Name}: {cin} input and {op.Out} output channels do not divide into {op.Groups} groups");
                            var inputs = new List<string> { current };
                            inputs.Add(Param(op.CheckpointPrefix + ".weight", new[] { op.Out, cin / op.Groups, op.KernelH, op.KernelW }));
                            if (op.Bias) inputs.Add(Param(op.CheckpointPrefix + ".bias", new[] { op.Out }));
                            var attrs = new AttributeProto[]
                            {
                                Attr.Ints("dilations", 1, 1),
                                Attr.Int("group", op.Groups),
                                Attr.Ints("kernel_shape", op.KernelH, op.KernelW),
                                Attr.Ints("pads", op.Padding, op.Padding, op.Padding, op.Padding),
                                Attr.Ints("strides", op.Stride, op.Stride),
                            };
                            pending.Add(new PendingNode("Conv", nodeName, inputs, attrs));
                            current = nodeName;
                            int oh = (shape[1] + 2 * op.Padding - op.KernelH) / op.Stride + 1;
                            int ow = (shape[2] + 2 * op.Padding - op.KernelW) / op.Stride + 1;
                            shape = new[] { op.Out, oh, ow };
                            CheckShape(layer, op, shape);
                            break;
                        }
                        case OperationKind.Dense:
                        {
                            int features = Product(shape);
                            if (shape.Length != 1)
                            {
                                string flat = layer.Name + "_flatten";
                                pending.Add(new PendingNode("Flatten", flat, new List<string> { current }, new[] { Attr.Int("axis", 1) }));
                                current = flat;
                                shape = new[] { features };
                            }
                            var inputs = new List<string> { current };
                            inputs.Add(Param(op.CheckpointPrefix + ".weight", new[] { op.Out, features }));
                            if (op.Bias) inputs.Add(Param(op.CheckpointPrefix + ".bias", new[] { op.Out }));
                            var attrs = new AttributeProto[]
                            {
                                Attr.Float("alpha", 1f),
                                Attr.Float("beta", 1f),
                                Attr.Int("transB", 1),
                            };
                            pending.Add(new PendingNode("Gemm", nodeName, inputs, attrs));
                            current = nodeName;
                            shape = new[] { op.Out };
                            CheckShape(layer, op, shape);
                            break;
                        }
                        case OperationKind.Relu:
                            pending.Add(new PendingNode("Relu", nodeName, new List<string> { current }, Array.Empty<AttributeProto>()));
                            current = nodeName;
                            break;
                        case OperationKind.Lrn:
                        {
                            RequireRank(layer, op, shape, 3);
                            var attrs = new AttributeProto[]
                            {
                                Attr.Float("alpha", op.Alpha),
                                Attr.Float("beta", op.Beta),
                                Attr.Float("bias", op.K),
                                Attr.Int("size", op.Size),
                            };
                            pending.Add(new PendingNode("LRN", nodeName, new List<string> { current }, attrs));
                            current = nodeName;
                            break;
                        }
                        case OperationKind.MaxPool:
                        case OperationKind.AvgPool:
                        {
                            RequireRank(layer, op, shape, 3);
                            bool max = op.Kind == OperationKind.MaxPool;
                            var attrs = new List<AttributeProto>
                            {
                                Attr.Int("ceil_mode", op.CeilMode ? 1 : 0),
                            };
                            if (!max) attrs.Add(Attr.Int("count_include_pad", op.CountIncludePad ? 1 : 0));
                            attrs.Add(Attr.Ints("kernel_shape", op.KernelH, op.KernelW));
                            attrs.Add(Attr.Ints("pads", op.Padding, op.Padding, op.Padding, op.Padding));
                            attrs.Add(Attr.Ints("strides", op.Stride, op.Stride));
                            pending.Add(new PendingNode(max ? "MaxPool" : "AveragePool", nodeName, new List<string> { current }, attrs.ToArray()));
                            current = nodeName;
                            // ONNX's (opset 17) output size: no PyTorch rule dropping a last window that starts in the padding.
                            shape = new[] { shape[0], OnnxPoolOut(shape[1], op.KernelH, op.Stride, op.Padding, op.CeilMode), OnnxPoolOut(shape[2], op.KernelW, op.Stride, op.Padding, op.CeilMode) };
                            if (!SameShape(shape, op.OutputShape))
                                throw new NotSupportedException($"layer {layer.Name}: ONNX {(max ? "MaxPool" : "AveragePool")} (opset {Opset}) gives [{string.Join(", ", shape)}] where the model has [{string.Join(", ", op.OutputShape)}] (ceil_mode edge case)");
                            break;
                        }
                        case OperationKind.AdaptiveAvgPool:
                        {
                            RequireRank(layer, op, shape, 3);
                            if (op.OutputShape is not { Length: 3 })
                                throw new NotSupportedException($"layer {layer.Name}: adaptive average pool without a [C, H, W] output shape");
                            int oh = op.OutputShape[1], ow = op.OutputShape[2];
                            if (shape[1] == oh && shape[2] == ow)
                                break; // the identity
                            if (oh <= 0 || ow <= 0 || shape[1] % oh != 0 || shape[2] % ow != 0)
                                throw new NotSupportedException($"layer {layer.Name}: adaptive average pool from {shape[1]}x{shape[2]} to {oh}x{ow} is not a plain average pool (the input is not a multiple of the output); ONNX export supports only that case");
                            int kh = shape[1] / oh, kw = shape[2] / ow;
                            var attrs = new AttributeProto[]
                            {
                                Attr.Int("ceil_mode", 0),
                                Attr.Int("count_include_pad", 0),
                                Attr.Ints("kernel_shape", kh, kw),
                                Attr.Ints("pads", 0, 0, 0, 0),
                                Attr.Ints("strides", kh, kw),
                            };
                            pending.Add(new PendingNode("AveragePool", nodeName, new List<string> { current }, attrs));
                            current = nodeName;
                            shape = new[] { shape[0], oh, ow };
                            break;
                        }
                        case OperationKind.BatchNorm:
                        {
                            int c = shape[0];
                            string p = op.CheckpointPrefix;
                            var inputs = new List<string>
                            {
                                current,
                                Param(p + ".weight", new[] { c }),
                                Param(p + ".bias", new[] { c }),
                                Param(p + ".running_mean", new[] { c }),
                                Param(p + ".running_var", new[] { c }),
                            };
                            pending.Add(new PendingNode("BatchNormalization", nodeName, inputs, new[] { Attr.Float("epsilon", op.Eps) }));
                            current = nodeName;
                            break;
                        }
                        case OperationKind.Dropout:
                        case OperationKind.Flatten:
                        case OperationKind.Softmax:
                            // Identities at inference (a flatten of NCHW data is implied by the Gemm's Flatten);
                            // the softmax is left out: the exported output is the logits.
                            if (op.Kind == OperationKind.Softmax) shape = new[] { Product(shape) };
                            break;
                        default:
                            throw new NotSupportedException($"layer {layer.Name}: operation {op.Kind} has no ONNX export");
                    }
                }
            }

            _binder.ThrowIfFailed();

            if (shape.Length != 1)
            {
                string flat = "output_flatten";
                pending.Add(new PendingNode("Flatten", flat, new List<string> { current }, new[] { Attr.Int("axis", 1) }));
                shape = new[] { Product(shape) };
            }
            if (shape[0] != _model.Classes)
                throw new NotSupportedException($"model {_model.Name}: the graph ends with {shape[0]} values per image, not the model's {_model.Classes} classes");
            if (pending.Count == 0)
                throw new NotSupportedException($"model {_model.Name}: no operations to export");

            for (int i = 0; i < pending.Count; i++)
            {
                PendingNode n = pending[i];
                string output = i == pending.Count - 1 ? "logits" : n.Name;
                _nodes.Add(Encode(n, output));
            }
        }

        private static NodeProto Encode(PendingNode n, string output)
        {
            var node = new NodeProto { Name = n.Name, OpType = n.OpType };
            node.Input.AddRange(n.Inputs);
            node.Output.Add(output);
            node.Attribute.AddRange(n.Attributes);
            return node;
        }

        /// <summary>Takes a checkpoint tensor (shape checked by the binder) as an initializer; returns its name.</summary>
        private string Param(string key, int[] shape)
        {
            float[]? data = _binder.Take(new ParameterInfo(key, shape));
            // On a problem the binder records it (reported by ThrowIfFailed) and gives an empty array.
            if (data is not null && data.Length == Product(shape) && _names.Add(key))
                Initializers.Add(new Initializer(key, shape, data));
            return key;
        }

        private static void RequireRank(LayerInfo layer, OperationInfo op, int[] shape, int rank)
        {
            if (shape.Length != rank)
                throw new NotSupportedException($"layer {layer.Name}: {op.Kind} needs a [C, H, W] input, found [{string.Join(", ", shape)}]");
        }

        private static void CheckShape(LayerInfo layer, OperationInfo op, int[] shape)
        {
            if (op.OutputShape is { Length: > 0 } && !SameShape(shape, op.OutputShape))
                throw new NotSupportedException($"layer {layer.Name}: {op.Kind} gives [{string.Join(", ", shape)}] where the model has [{string.Join(", ", op.OutputShape)}]");
        }

        private static int OnnxPoolOut(int input, int kernel, int stride, int padding, bool ceil)
        {
            int span = input + 2 * padding - kernel;
            if (span < 0) return 0;
            return (ceil ? (span + stride - 1) / stride : span / stride) + 1;
        }
    }

    private sealed record PendingNode(string OpType, string Name, List<string> Inputs, AttributeProto[] Attributes);

    /// <summary>AttributeProto builders: name, f, i or ints, and type.</summary>
    private static class Attr
    {
        public static AttributeProto Float(string name, float value) =>
            new() { Name = name, F = value, Type = AttributeProto.Types.AttributeType.Float };

        public static AttributeProto Int(string name, long value) =>
            new() { Name = name, I = value, Type = AttributeProto.Types.AttributeType.Int };

        public static AttributeProto Ints(string name, params int[] values)
        {
            var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            foreach (int v in values) a.Ints.Add(v);
            return a;
        }
    }

    private static int Product(int[] shape)
    {
        int n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }

    private static bool SameShape(int[] a, int[] b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
        return true;
    }
}
