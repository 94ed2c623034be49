using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace AlexNet.Aot.Onnx;

/// <summary>
/// Writes a model's graph and weights as an ONNX file (IR version 8, opset 17), with the protobuf wire
/// format written by hand: no protobuf library, no reflection (AOT-safe).
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
    /// <exception cref="WeightsException">Tensors are missing, mis-shaped or not floating-point (every problem is listed), or the file cannot be written.</exception>
    /// <exception cref="NotSupportedException">An operation has no ONNX equivalent here (e.g. an adaptive average pool whose input is not a multiple of its output).</exception>
    public static void Export(ModelInfo model, IWeightSource weights, string path, bool dynamicBatch = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(path);

        var graph = new GraphBuilder(model, weights);
        graph.Build();

        // The graph message: nodes and name, then the initializers (streamed), then input and output.
        var before = new ProtoWriter();
        foreach (ProtoWriter node in graph.Nodes) before.WriteMessage(1, node);
        before.WriteString(2, model.Name);

        var after = new ProtoWriter();
        after.WriteMessage(11, ValueInfo("input", dynamicBatch, model.InputShape));
        after.WriteMessage(12, ValueInfo("logits", dynamicBatch, new[] { model.Classes }));

        var initializers = new List<(byte[] Head, float[] Data)>();
        long graphLength = before.Length + after.Length;
        foreach (Initializer init in graph.Initializers)
        {
            // TensorProto: dims (1), data_type (2) = FLOAT, name (8), raw_data (9), whose bytes follow the head.
            var t = new ProtoWriter();
            foreach (int d in init.Shape) t.WriteInt64(1, d);
            t.WriteInt64(2, 1);
            t.WriteString(8, init.Name);
            long rawBytes = 4L * init.Data.Length;
            t.WriteTag(9, ProtoWriter.LengthDelimited);
            t.WriteVarint((ulong)rawBytes);
            long tensorLength = t.Length + rawBytes;

            var head = new ProtoWriter();
            head.WriteTag(5, ProtoWriter.LengthDelimited);
            head.WriteVarint((ulong)tensorLength);
            head.WriteRaw(t.AsSpan());
            initializers.Add((head.ToArray(), init.Data));
            graphLength += head.Length + rawBytes;
        }

        var modelHead = new ProtoWriter();
        modelHead.WriteInt64(1, IrVersion);
        modelHead.WriteString(2, "AlexNet.Aot");
        modelHead.WriteString(3, typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "0");
        modelHead.WriteTag(7, ProtoWriter.LengthDelimited);
        modelHead.WriteVarint((ulong)graphLength);

        var opset = new ProtoWriter();
        opset.WriteString(1, "");
        opset.WriteInt64(2, Opset);
        var modelTail = new ProtoWriter();
        modelTail.WriteMessage(8, opset);

        AtomicFile.Write(path, fs =>
        {
            fs.Write(modelHead.AsSpan());
            fs.Write(before.AsSpan());
            foreach ((byte[] head, float[] data) in initializers)
            {
                fs.Write(head);
                AtomicFile.WriteFloats(fs, data);
            }
            fs.Write(after.AsSpan());
            fs.Write(modelTail.AsSpan());
        });
    }

    /// <summary>ValueInfoProto: name, TypeProto { tensor_type { elem_type FLOAT, shape [N or 1, dims...] } }.</summary>
    private static ProtoWriter ValueInfo(string name, bool dynamicBatch, int[] perImage)
    {
        var shape = new ProtoWriter();
        var batch = new ProtoWriter();
        if (dynamicBatch) batch.WriteString(2, "N");
        else batch.WriteInt64(1, 1);
        shape.WriteMessage(1, batch);
        foreach (int d in perImage)
        {
            var dim = new ProtoWriter();
            dim.WriteInt64(1, d);
            shape.WriteMessage(1, dim);
        }
        var tensor = new ProtoWriter();
        tensor.WriteInt64(1, 1);
        tensor.WriteMessage(2, shape);
        var type = new ProtoWriter();
        type.WriteMessage(1, tensor);
        var info = new ProtoWriter();
        info.WriteString(1, name);
        info.WriteMessage(2, type);
        return info;
    }

    private sealed record Initializer(string Name, int[] Shape, float[] Data);

    /// <summary>Walks the layers' operations, collecting nodes (as encoded NodeProtos) and initializers.</summary>
    private sealed class GraphBuilder
    {
        private readonly ModelInfo _model;
        private readonly WeightBinder _binder;
        private readonly List<(ProtoWriter Node, string Output)> _nodes = new();
        private readonly HashSet<string> _names = new(StringComparer.Ordinal);

        public GraphBuilder(ModelInfo model, IWeightSource weights)
        {
            _model = model;
            _binder = new WeightBinder(weights, model);
        }

        public List<Initializer> Initializers { get; } = new();

        public IEnumerable<ProtoWriter> Nodes
        {
            get
            {
                foreach (var n in _nodes) yield return n.Node;
            }
        }

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
                            var attrs = new ProtoWriter[]
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
                            var attrs = new ProtoWriter[]
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
                            pending.Add(new PendingNode("Relu", nodeName, new List<string> { current }, Array.Empty<ProtoWriter>()));
                            current = nodeName;
                            break;
                        case OperationKind.Lrn:
                        {
                            RequireRank(layer, op, shape, 3);
                            var attrs = new ProtoWriter[]
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
                            var attrs = new List<ProtoWriter>
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
                            var attrs = new ProtoWriter[]
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
                _nodes.Add((Encode(n, output), output));
            }
        }

        private static ProtoWriter Encode(PendingNode n, string output)
        {
            var w = new ProtoWriter();
            foreach (string input in n.Inputs) w.WriteString(1, input);
            w.WriteString(2, output);
            w.WriteString(3, n.Name);
            w.WriteString(4, n.OpType);
            foreach (ProtoWriter a in n.Attributes) w.WriteMessage(5, a);
            return w;
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

    private sealed record PendingNode(string OpType, string Name, List<string> Inputs, ProtoWriter[] Attributes);

    /// <summary>AttributeProto builders: name (1), f (2), i (3), ints (8), type (20).</summary>
    private static class Attr
    {
        private const int TypeFloat = 1, TypeInt = 2, TypeInts = 7;

        public static ProtoWriter Float(string name, float value)
        {
            var w = new ProtoWriter();
            w.WriteString(1, name);
            w.WriteFloat(2, value);
            w.WriteInt64(20, TypeFloat);
            return w;
        }

        public static ProtoWriter Int(string name, long value)
        {
            var w = new ProtoWriter();
            w.WriteString(1, name);
            w.WriteInt64(3, value);
            w.WriteInt64(20, TypeInt);
            return w;
        }

        public static ProtoWriter Ints(string name, params int[] values)
        {
            var w = new ProtoWriter();
            w.WriteString(1, name);
            foreach (int v in values) w.WriteInt64(8, v); // unpacked repeated int64 (proto2's default)
            w.WriteInt64(20, TypeInts);
            return w;
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

/// <summary>
/// A minimal protobuf encoder: varints, tags, fixed32 floats, strings and nested messages (length-delimited),
/// into a growable buffer. Enough for ONNX's messages; large tensor payloads are streamed by the caller.
/// </summary>
internal sealed class ProtoWriter
{
    /// <summary>Wire type 0: varint.</summary>
    public const int Varint = 0;
    /// <summary>Wire type 2: length-delimited.</summary>
    public const int LengthDelimited = 2;
    /// <summary>Wire type 5: 32-bit little-endian.</summary>
    public const int Fixed32 = 5;

    private byte[] _buffer = new byte[64];
    private int _length;

    /// <summary>Bytes written so far.</summary>
    public int Length => _length;

    /// <summary>The bytes written so far.</summary>
    public ReadOnlySpan<byte> AsSpan() => _buffer.AsSpan(0, _length);

    /// <summary>A copy of the bytes written so far.</summary>
    public byte[] ToArray() => AsSpan().ToArray();

    /// <summary>Appends a base-128 varint.</summary>
    public void WriteVarint(ulong value)
    {
        Span<byte> span = Grow(10);
        int n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[n++] = (byte)value;
        _length += n;
    }

    /// <summary>Appends a field key: (field number &lt;&lt; 3) | wire type.</summary>
    public void WriteTag(int field, int wireType) => WriteVarint(((ulong)(uint)field << 3) | (uint)wireType);

    /// <summary>An int64 (or enum, int32) field; negative values take ten bytes, two's complement.</summary>
    public void WriteInt64(int field, long value)
    {
        WriteTag(field, Varint);
        WriteVarint(unchecked((ulong)value));
    }

    /// <summary>A float field (fixed32, little-endian).</summary>
    public void WriteFloat(int field, float value)
    {
        WriteTag(field, Fixed32);
        BinaryPrimitives.WriteSingleLittleEndian(Grow(4), value);
        _length += 4;
    }

    /// <summary>A string field, UTF-8.</summary>
    public void WriteString(int field, string value)
    {
        int count = Encoding.UTF8.GetByteCount(value);
        WriteTag(field, LengthDelimited);
        WriteVarint((ulong)count);
        Encoding.UTF8.GetBytes(value, Grow(count));
        _length += count;
    }

    /// <summary>A bytes field.</summary>
    public void WriteBytes(int field, ReadOnlySpan<byte> value)
    {
        WriteTag(field, LengthDelimited);
        WriteVarint((ulong)value.Length);
        WriteRaw(value);
    }

    /// <summary>A nested message field: its length, then its bytes.</summary>
    public void WriteMessage(int field, ProtoWriter message) => WriteBytes(field, message.AsSpan());

    /// <summary>Appends bytes as they are.</summary>
    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Grow(bytes.Length));
        _length += bytes.Length;
    }

    private Span<byte> Grow(int count)
    {
        if (_buffer.Length - _length < count)
        {
            long wanted = Math.Max((long)_buffer.Length * 2, (long)_length + count);
            if (wanted > Array.MaxLength) wanted = (long)_length + count;
            if (wanted > Array.MaxLength) throw new InvalidOperationException("protobuf message too large");
            Array.Resize(ref _buffer, (int)wanted);
        }
        return _buffer.AsSpan(_length, count);
    }
}
