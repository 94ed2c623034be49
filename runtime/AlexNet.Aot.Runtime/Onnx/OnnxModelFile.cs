using System;
using System.Buffers.Binary;
using System.Buffers;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using Onnx;

namespace AlexNet.Aot.Onnx;

/// <summary>
/// Reads an ONNX model (a torch export, the BVLC/Caffe-style model zoo graph, or our own <see cref="OnnxExporter"/> output)
/// as a weights source. The protobuf is parsed by Google.Protobuf into OnnxSharp's generated ONNX messages
/// (<c>Onnx.ModelProto</c>: generated code, no reflection, AOT-safe).
/// </summary>
/// <remarks>
/// <para>The reader is hardened for untrusted files: a file is read only up to 2 GiB (the most a protobuf message can
/// be; larger files and external data are refused), the parser refuses a length that claims more bytes than remain
/// (nothing is allocated for it), malformed varints, tags and wire types, and limits message nesting to
/// <see cref="MaxDepth"/> levels (Google.Protobuf's recursion limit). Every problem is a <see cref="WeightsException"/>
/// naming the file.</para>
/// <para>With a model, the graph's compute nodes (Conv, Gemm, MatMul(+Add), LRN, MaxPool, AveragePool,
/// GlobalAveragePool, BatchNormalization) are matched in order to the model's operations and their attributes checked
/// against the spec; shape-only nodes (Relu, Flatten, Reshape, Dropout, Softmax, Identity, Constant, ...) are tolerated.
/// The tensors are then yielded under the MODEL's checkpoint keys, taken from the matched nodes' initializer inputs,
/// so the names in the ONNX file do not matter (<c>features.0.weight</c> in a torch export, <c>conv1_w_0</c> in the
/// zoo's graph). Without a model the initializers are yielded under their own names.</para>
/// <para>The attributes checked: Conv kernel_shape, strides, pads, group (and no dilation or auto_pad); LRN size, alpha,
/// beta, bias; MaxPool and AveragePool kernel_shape, strides, pads, ceil_mode (a max pool's Caffe-style rounding up may
/// be written as ceil_mode or as extra end padding, as in the model zoo's BVLC graphs: see <c>CheckMaxPool</c>); Gemm
/// transA (0), alpha and beta (1) and transB (0: the weight is [in, out] and is transposed at load; 1: [out, in]).
/// A mismatch is a <see cref="WeightsException"/> naming the file, the node and the attribute. An attribute counts as
/// given when its <c>type</c> says so (FLOAT, INT) or its value is not zero (proto3 writers leave zeros out).</para>
/// <para>Batch norm folded by the exporter: when the model has batch norm operations directly after its convolutions and
/// the graph has no BatchNormalization node at all (PyTorch's eval-mode export folds them into the convolutions), the
/// folded convolution weight and bias are yielded as the convolution's (a bias the spec's convolution lacks goes to the
/// batch norm's bias), and the batch norm gets identity parameters: weight 1, bias 0, running_mean 0 and
/// running_var = 1 - eps, so that the runtime's fold <c>w * gamma / sqrt(var + eps)</c> multiplies by exactly 1
/// (to float rounding).</para>
/// </remarks>
public sealed class OnnxModelFile : IWeightSource
{
    /// <summary>The deepest nesting of messages accepted: Google.Protobuf's recursion limit (its default, 100).</summary>
    public const int MaxDepth = 100;

    private readonly List<string> _keys = new();
    private readonly Dictionary<string, LoadedTensor> _tensors = new(StringComparer.Ordinal);

    private OnnxModelFile(string origin) => Origin = origin;

    /// <inheritdoc/>
    public string Origin { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> Keys => _keys;

    /// <summary>The file's producer (e.g. <c>pytorch 2.11.0</c>).</summary>
    public string Producer { get; private set; } = "";

    /// <summary>The graph's inputs that are not initializers (e.g. <c>input</c>).</summary>
    public IReadOnlyList<string> GraphInputs { get; private set; } = Array.Empty<string>();

    /// <summary>True when the model has batch norm and the graph had it folded into the convolutions.</summary>
    public bool BatchNormFolded { get; private set; }

    /// <inheritdoc/>
    public bool TryGet(string key, out LoadedTensor tensor) => _tensors.TryGetValue(key, out tensor!);

    /// <summary>Loads an ONNX file. With <paramref name="model"/>: the graph is checked against it and the tensors are
    /// yielded under its checkpoint keys; without: the initializers under their own names.</summary>
    /// <remarks>The file is mapped read-only while it is parsed (read into memory instead when <c>ALEXNET_MMAP=0</c>), then
    /// unmapped: the peak memory is about the tensors' bytes as parsed plus their float32 copies, each tensor's parsed
    /// bytes being let go once it is converted.</remarks>
    /// <exception cref="WeightsException">The file cannot be read, is malformed, or does not match the model.</exception>
    public static IWeightSource Load(string path, ModelInfo? model = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ModelProto proto;
        try
        {
            if (!File.Exists(path)) throw new WeightsException($"{path}: no such file");
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            long length = fs.Length;
            if (length == 0) throw new WeightsException($"{path}: the file is empty, not an ONNX model");
            if (length > Array.MaxLength)
                throw new WeightsException($"{path}: {length} bytes is more than an ONNX protobuf file can hold (2 GiB); external data is not supported");
            if (MappedFile.Enabled)
            {
                // The parser copies what it keeps, so the mapping is dropped as soon as the parse is done.
                using MappedFile map = MappedFile.Map(fs.SafeFileHandle, length);
                proto = ParseProto(new ReadOnlySequence<byte>(map.ByteMemory(0, (int)length)), path);
            }
            else
            {
                var bytes = new byte[length];
                fs.ReadExactly(bytes);
                proto = ParseProto(new ReadOnlySequence<byte>(bytes), path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException or ArgumentException)
        {
            throw new WeightsException($"{path}: cannot read the file: {e.Message}", e);
        }
        return FromProto(proto, path, model);
    }

    /// <summary>Parses the bytes of an ONNX file; <paramref name="origin"/> names it in errors.</summary>
    /// <exception cref="WeightsException">The bytes are malformed or do not match the model.</exception>
    public static IWeightSource Parse(byte[] bytes, string origin, ModelInfo? model = null)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(origin);
        if (bytes.Length == 0) throw new WeightsException($"{origin}: the file is empty, not an ONNX model");
        return FromProto(ParseProto(new ReadOnlySequence<byte>(bytes), origin), origin, model);
    }

    /// <summary>Google.Protobuf's parse (nesting limited to <see cref="MaxDepth"/>, its default recursion limit), its
    /// errors as <see cref="WeightsException"/>s naming the file. The whole input is in memory (or mapped), so every
    /// length is checked against the bytes that are there before anything is allocated for it.</summary>
    private static ModelProto ParseProto(ReadOnlySequence<byte> data, string origin)
    {
        try
        {
            return ModelProto.Parser.ParseFrom(data);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new WeightsException($"{origin}: malformed ONNX file: {e.Message}", e);
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentException or OverflowException or InvalidCastException or DecoderFallbackException or InvalidOperationException)
        {
            // Defence in depth: the parser reports malformed input as InvalidProtocolBufferException.
            throw new WeightsException($"{origin}: malformed ONNX file: {e.Message}", e);
        }
    }

    private static OnnxModelFile FromProto(ModelProto proto, string origin, ModelInfo? model)
    {
        try
        {
            PModel m = ReadModel(proto, origin);
            if (m.Graph is null)
                throw new WeightsException($"{origin}: not an ONNX model: no graph (ModelProto field 7) found");
            var file = new OnnxModelFile(origin) { Producer = (m.Producer + " " + m.ProducerVersion).Trim() };
            var inits = new HashSet<string>(StringComparer.Ordinal);
            foreach (PTensor t in m.Graph.Initializers) inits.Add(t.Name);
            var inputs = new List<string>();
            foreach (string i in m.Graph.Inputs) if (!inits.Contains(i)) inputs.Add(i);
            file.GraphInputs = inputs;
            if (model is null)
            {
                foreach (PTensor t in m.Graph.Initializers)
                {
                    if (file._tensors.ContainsKey(t.Name))
                        throw new WeightsException($"{origin}: initializer \"{t.Name}\" appears twice");
                    file.Add(Convert(t, origin));
                }
            }
            else
            {
                new Matcher(file, m.Graph, origin, model).Run();
            }
            return file;
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentException or OverflowException or InvalidCastException or DecoderFallbackException)
        {
            // Defence in depth: the checks above should make these impossible.
            throw new WeightsException($"{origin}: malformed ONNX file: {e.Message}", e);
        }
    }

    private void Add(LoadedTensor t)
    {
        if (_tensors.TryAdd(t.Key, t)) _keys.Add(t.Key);
        else _tensors[t.Key] = t;
    }

    // ---------------------------------------------------------------- the ONNX messages read

    private sealed class PModel
    {
        public string Producer = "", ProducerVersion = "";
        public PGraph? Graph;
    }

    private sealed class PGraph
    {
        public string Name = "";
        public readonly List<PNode> Nodes = new();
        public readonly List<PTensor> Initializers = new();
        public readonly List<string> Inputs = new();
    }

    private sealed class PNode
    {
        public readonly List<string> Inputs = new();
        public readonly List<string> Outputs = new();
        public string Name = "", OpType = "", Domain = "";
        public readonly Dictionary<string, PAttr> Attributes = new(StringComparer.Ordinal);

        public string Label => $"{(Name.Length > 0 ? Name : Outputs.Count > 0 ? Outputs[0] : "?")} ({OpType})";
    }

    private sealed class PAttr
    {
        public string Name = "";
        public float F;
        public long I;
        public bool HasF, HasI;
        public string? S;
        public PTensor? T;
        public readonly List<long> Ints = new();
        public readonly List<float> Floats = new();
    }

    /// <summary>A TensorProto, its name (a Constant node's output renames it) and, once converted, its float32 values
    /// (the parsed bytes are then dropped).</summary>
    private sealed class PTensor
    {
        public PTensor(TensorProto proto)
        {
            Proto = proto;
            Name = proto.Name;
        }

        public readonly TensorProto Proto;
        public string Name;
        public LoadedTensor? Converted;
    }

    private static PModel ReadModel(ModelProto proto, string origin)
    {
        var m = new PModel { Producer = proto.ProducerName, ProducerVersion = proto.ProducerVersion };
        if (proto.Graph is GraphProto g) m.Graph = ReadGraph(g, origin);
        return m;
    }

    private static PGraph ReadGraph(GraphProto proto, string origin)
    {
        var g = new PGraph { Name = proto.Name };
        foreach (NodeProto n in proto.Node) g.Nodes.Add(ReadNode(n, origin));
        foreach (TensorProto t in proto.Initializer) g.Initializers.Add(new PTensor(t));
        foreach (ValueInfoProto v in proto.Input) g.Inputs.Add(v.Name);
        return g;
    }

    private static PNode ReadNode(NodeProto proto, string origin)
    {
        var n = new PNode { Name = proto.Name, OpType = proto.OpType, Domain = proto.Domain };
        n.Inputs.AddRange(proto.Input);
        n.Outputs.AddRange(proto.Output);
        foreach (AttributeProto a in proto.Attribute)
        {
            PAttr attr = ReadAttribute(a);
            if (!n.Attributes.TryAdd(attr.Name, attr))
                throw new WeightsException($"{origin}: malformed ONNX file: node \"{n.Name}\" has attribute \"{attr.Name}\" twice");
        }
        return n;
    }

    /// <summary>An AttributeProto. Sub-graphs (fields 6 and 11) are parsed by the library but never looked at.</summary>
    private static PAttr ReadAttribute(AttributeProto proto)
    {
        var a = new PAttr
        {
            Name = proto.Name,
            F = proto.F,
            I = proto.I,
            // proto3 writers leave out zero values: a zero counts as given when the type says so.
            HasF = proto.Type == AttributeProto.Types.AttributeType.Float || proto.F != 0,
            HasI = proto.Type == AttributeProto.Types.AttributeType.Int || proto.I != 0,
            S = proto.S.IsEmpty ? null : proto.S.ToStringUtf8(),
            T = proto.T is TensorProto t ? new PTensor(t) : null,
        };
        a.Ints.AddRange(proto.Ints);
        a.Floats.AddRange(proto.Floats);
        return a;
    }

    // ---------------------------------------------------------------- tensors

    private const int OnnxFloat = 1, OnnxInt64 = 7, OnnxFloat16 = 10, OnnxDouble = 11, OnnxBFloat16 = 16;

    /// <summary>The tensor's values as float32 (converted once; its parsed bytes are then let go).</summary>
    private static LoadedTensor Convert(PTensor pt, string origin)
    {
        if (pt.Converted is { } done)
            return done.Key == pt.Name ? done : new LoadedTensor(pt.Name, done.Shape, done.DType, done.Data);
        TensorProto t = pt.Proto;
        string what = $"{origin}: tensor \"{pt.Name}\"";
        if (t.DataLocation == TensorProto.Types.DataLocation.External || t.ExternalData.Count > 0)
            throw new WeightsException($"{what} is stored as external data, which is not supported; save the model with its weights inside the file");
        var shape = new int[t.Dims.Count];
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            long d = t.Dims[i];
            if (d < 0 || d > int.MaxValue) throw new WeightsException($"{what} has an invalid dimension {d}");
            shape[i] = (int)d;
            count *= d;
            if (count > Array.MaxLength) throw new WeightsException($"{what} has more elements ({string.Join("x", t.Dims)}) than an ONNX file can hold");
        }
        int n = (int)count;
        // proto3: an empty raw_data is no raw_data.
        ReadOnlySpan<byte> rawBytes = t.RawData.Span;
        bool raw = !rawBytes.IsEmpty;

        void CheckRaw(ReadOnlySpan<byte> bytes, int size)
        {
            if ((long)bytes.Length != (long)n * size)
                throw new WeightsException($"{what} has {bytes.Length} bytes of raw data, its shape [{string.Join(", ", shape)}] needs {(long)n * size}");
        }
        void CheckCount(int found, string field)
        {
            if (found != n)
                throw new WeightsException($"{what} has {found} values in {field}, its shape [{string.Join(", ", shape)}] needs {n}");
        }

        var data = new float[0];
        string dtype;
        switch (t.DataType)
        {
            case OnnxFloat:
                dtype = "F32";
                if (raw)
                {
                    CheckRaw(rawBytes, 4);
                    data = new float[n];
                    if (BitConverter.IsLittleEndian)
                        MemoryMarshal.Cast<byte, float>(rawBytes).CopyTo(data);
                    else
                        for (int i = 0; i < n; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(rawBytes.Slice(4 * i, 4));
                }
                else
                {
                    CheckCount(t.FloatData.Count, "float_data");
                    data = new float[n];
                    t.FloatData.CopyTo(data, 0);
                }
                break;
            case OnnxFloat16:
            case OnnxBFloat16:
            {
                bool half = t.DataType == OnnxFloat16;
                dtype = half ? "F16" : "BF16";
                if (raw) CheckRaw(rawBytes, 2);
                else CheckCount(t.Int32Data.Count, "int32_data");
                data = new float[n];
                for (int i = 0; i < n; i++)
                {
                    ushort bits = raw ? BinaryPrimitives.ReadUInt16LittleEndian(rawBytes.Slice(2 * i, 2)) : unchecked((ushort)t.Int32Data[i]);
                    data[i] = half ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.Int32BitsToSingle(bits << 16);
                }
                break;
            }
            case OnnxDouble:
                dtype = "F64";
                if (raw)
                {
                    CheckRaw(rawBytes, 8);
                    data = new float[n];
                    for (int i = 0; i < n; i++) data[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(rawBytes.Slice(8 * i, 8));
                }
                else
                {
                    CheckCount(t.DoubleData.Count, "double_data");
                    data = new float[n];
                    for (int i = 0; i < n; i++) data[i] = (float)t.DoubleData[i];
                }
                break;
            case OnnxInt64:
                dtype = "I64"; // not floating: no data, as LoadedTensor's contract says
                if (raw) CheckRaw(rawBytes, 8);
                else CheckCount(t.Int64Data.Count, "int64_data");
                break;
            default:
                throw new WeightsException($"{what} has ONNX data type {t.DataType}, not one of FLOAT (1), FLOAT16 (10), BFLOAT16 (16), DOUBLE (11), INT64 (7)");
        }
        var result = new LoadedTensor(pt.Name, shape, dtype, data);
        if (dtype != "I64")
        {
            // The float32 copy is kept; the parsed bytes go, so that a file's tensors are in memory about twice at most.
            pt.Converted = result;
            t.RawData = ByteString.Empty;
            t.FloatData.Clear();
            t.Int32Data.Clear();
            t.DoubleData.Clear();
        }
        return result;
    }

    // ---------------------------------------------------------------- matching the graph to a model

    private static readonly HashSet<string> s_tolerated = new(StringComparer.Ordinal)
    {
        "Relu", "Flatten", "Reshape", "Dropout", "Softmax", "LogSoftmax", "Identity", "Constant",
        "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast",
    };

    private static readonly HashSet<string> s_compute = new(StringComparer.Ordinal)
    {
        "Conv", "Gemm", "MatMul", "LRN", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
    };

    private sealed record SpecOp(LayerInfo Layer, OperationInfo Op, int OpIndex, int[] InputShape)
    {
        public string Label => $"{Layer.Name}:{Op.Kind}";
    }

    private sealed class Matcher
    {
        private readonly OnnxModelFile _file;
        private readonly PGraph _graph;
        private readonly string _origin;
        private readonly ModelInfo _model;
        private readonly Dictionary<string, PTensor> _constants = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int[]> _expected = new(StringComparer.Ordinal);

        public Matcher(OnnxModelFile file, PGraph graph, string origin, ModelInfo model)
        {
            _file = file;
            _graph = graph;
            _origin = origin;
            _model = model;
        }

        private WeightsException Fail(string message) => new($"{_origin}: {message}");

        public void Run()
        {
            foreach (PTensor t in _graph.Initializers) _constants[t.Name] = t;
            foreach (ParameterInfo p in _model.AllParameters) _expected[p.Key] = p.Shape;

            // The model's compute operations, with each one's input shape.
            var spec = new List<SpecOp>();
            int[] shape = _model.InputShape;
            bool hasBn = false;
            foreach (LayerInfo layer in _model.Layers)
            {
                for (int i = 0; i < layer.Ops.Length; i++)
                {
                    OperationInfo op = layer.Ops[i];
                    if (op.Kind is OperationKind.Conv or OperationKind.Dense or OperationKind.Lrn or OperationKind.MaxPool
                        or OperationKind.AvgPool or OperationKind.AdaptiveAvgPool or OperationKind.BatchNorm)
                        spec.Add(new SpecOp(layer, op, i, shape));
                    if (op.Kind == OperationKind.BatchNorm) hasBn = true;
                    if (op.OutputShape is { Length: > 0 }) shape = op.OutputShape;
                }
            }

            // The graph's compute nodes; an Add after a MatMul is its bias.
            var nodes = new List<PNode>();
            var matmulBias = new Dictionary<PNode, string>();
            bool graphHasBn = false;
            foreach (PNode n in _graph.Nodes)
            {
                if (n.Domain is not ("" or "ai.onnx"))
                    throw Fail($"node {n.Label} is in domain \"{n.Domain}\", not the default ONNX domain");
                if (n.OpType == "Constant" && n.Attributes.TryGetValue("value", out PAttr? v) && v.T is not null && n.Outputs.Count == 1)
                {
                    v.T.Name = n.Outputs[0];
                    _constants[n.Outputs[0]] = v.T;
                }
            }
            for (int index = 0; index < _graph.Nodes.Count; index++)
            {
                PNode n = _graph.Nodes[index];
                if (n.OpType == "Mul" && n.Inputs.Count == 2 && n.Inputs[0] == n.Inputs[1] && n.Inputs[0].Length > 0)
                {
                    // PyTorch's LocalResponseNorm, exported op by op: x*x ... AveragePool ... Mul alpha, Add k, Pow beta, Div.
                    nodes.Add(DecomposedLrn(ref index));
                    continue;
                }
                if (s_tolerated.Contains(n.OpType)) continue;
                if (n.OpType == "Add" && nodes.Count > 0 && nodes[^1].OpType == "MatMul" && !matmulBias.ContainsKey(nodes[^1])
                    && n.Inputs.Count == 2 && nodes[^1].Outputs.Count == 1)
                {
                    string prev = nodes[^1].Outputs[0];
                    string? other = n.Inputs[0] == prev ? n.Inputs[1] : n.Inputs[1] == prev ? n.Inputs[0] : null;
                    if (other is not null && _constants.ContainsKey(other))
                    {
                        matmulBias[nodes[^1]] = other;
                        continue;
                    }
                }
                if (!s_compute.Contains(n.OpType))
                    throw Fail($"node {n.Label} is not supported: an AlexNet graph holds Conv, Gemm or MatMul(+Add), LRN, MaxPool, AveragePool, BatchNormalization and shape-only nodes (Relu, Flatten, Reshape, Dropout, Softmax, Identity)");
                if (n.OpType == "BatchNormalization") graphHasBn = true;
                nodes.Add(n);
            }

            bool folded = hasBn && !graphHasBn;
            if (folded)
            {
                foreach (SpecOp s in spec)
                {
                    if (s.Op.Kind != OperationKind.BatchNorm) continue;
                    if (s.OpIndex == 0 || s.Layer.Ops[s.OpIndex - 1].Kind != OperationKind.Conv)
                        throw Fail($"the graph has no BatchNormalization node (folded into the convolutions?), but the spec's {s.Layer.Name} has a batch norm that does not directly follow a convolution");
                }
                spec.RemoveAll(s => s.Op.Kind == OperationKind.BatchNorm);
                _file.BatchNormFolded = true;
            }

            // Align: an adaptive average pool that is the identity may be absent from the graph.
            int j = 0;
            foreach (PNode n in nodes)
            {
                while (j < spec.Count && !Fits(n, spec[j]) && IsOptional(spec[j])) j++;
                if (j >= spec.Count)
                    throw Fail($"node {n.Label} is one compute node more than the spec has; {Lists(spec, nodes)}");
                if (!Fits(n, spec[j]))
                    throw Fail($"node {n.Label} is where the spec's {spec[j].Layer.Name} has {spec[j].Op.Kind}; {Lists(spec, nodes)}");
                Bind(n, spec[j], folded, matmulBias.TryGetValue(n, out string? b) ? b : null);
                j++;
            }
            while (j < spec.Count && IsOptional(spec[j])) j++;
            if (j < spec.Count)
                throw Fail($"the graph ends where the spec still has {spec[j].Layer.Name}'s {spec[j].Op.Kind}; {Lists(spec, nodes)}");
        }

        /// <summary>Reads PyTorch's decomposed LocalResponseNorm (<c>x / (k + alpha * avgpool3d(pad(x*x)))^beta</c>), from the
        /// <c>Mul(x, x)</c> at <paramref name="index"/> to the <c>Div(x, ...)</c> that ends it, as one LRN node.</summary>
        private PNode DecomposedLrn(ref int index)
        {
            PNode mul = _graph.Nodes[index];
            string x = mul.Inputs[0];
            var lrn = new PNode { OpType = "LRN", Name = mul.Name };
            long size = -1;
            float? alpha = null, k = null, beta = null;
            for (int i = index + 1; i < _graph.Nodes.Count; i++)
            {
                PNode n = _graph.Nodes[i];
                if (s_compute.Contains(n.OpType) && n.OpType != "AveragePool")
                    throw Fail($"node {mul.Label} (x*x) looks like the start of a decomposed LocalResponseNorm, but node {n.Label} comes before its closing Div");
                switch (n.OpType)
                {
                    case "AveragePool":
                    {
                        long[]? ks = Ints(n, "kernel_shape");
                        if (ks is not { Length: 3 } || ks[1] != 1 || ks[2] != 1)
                            throw Fail($"node {n.Label} in a decomposed LocalResponseNorm has kernel_shape {Text(ks ?? Array.Empty<long>())}, not [size, 1, 1]");
                        size = ks[0];
                        break;
                    }
                    case "Mul": alpha = Scalar(n, lrn); break;
                    case "Add": k = Scalar(n, lrn); break;
                    case "Pow": beta = Scalar(n, lrn); break;
                    case "Div" when n.Inputs.Count == 2 && n.Inputs[0] == x:
                        if (size < 0 || alpha is null || k is null || beta is null)
                            throw Fail($"nodes {mul.Name} to {n.Name} are not a LocalResponseNorm (no AveragePool, Mul, Add and Pow with constants)");
                        lrn.Name = mul.Name + ".." + n.Name;
                        lrn.Outputs.AddRange(n.Outputs);
                        lrn.Attributes["size"] = new PAttr { Name = "size", I = size, HasI = true };
                        lrn.Attributes["alpha"] = new PAttr { Name = "alpha", F = alpha.Value, HasF = true };
                        lrn.Attributes["bias"] = new PAttr { Name = "bias", F = k.Value, HasF = true };
                        lrn.Attributes["beta"] = new PAttr { Name = "beta", F = beta.Value, HasF = true };
                        index = i;
                        return lrn;
                }
            }
            throw Fail($"node {mul.Label} (x*x) looks like the start of a decomposed LocalResponseNorm, but no Div by its result follows");
        }

        private float Scalar(PNode n, PNode group)
        {
            foreach (string input in n.Inputs)
            {
                if (!_constants.TryGetValue(input, out PTensor? t)) continue;
                LoadedTensor v = Convert(t, _origin);
                if (v.Data.Length != 1)
                    throw Fail($"node {n.Label} in a decomposed LocalResponseNorm ({group.Name}) has a constant of shape [{string.Join(", ", v.Shape)}], not a scalar");
                return v.Data[0];
            }
            throw Fail($"node {n.Label} in a decomposed LocalResponseNorm ({group.Name}) has no constant input");
        }

        private static string Lists(List<SpecOp> spec, List<PNode> nodes)
        {
            var e = new List<string>();
            foreach (SpecOp s in spec) e.Add(s.Label);
            var f = new List<string>();
            foreach (PNode n in nodes) f.Add(n.OpType + (n.Name.Length > 0 ? " " + n.Name : ""));
            return $"expected {e.Count} compute operations [{string.Join(", ", e)}], found {f.Count} compute nodes [{string.Join(", ", f)}]";
        }

        private static bool IsOptional(SpecOp s) =>
            s.Op.Kind == OperationKind.AdaptiveAvgPool && s.InputShape.Length == 3 && s.Op.OutputShape.Length == 3
            && s.InputShape[1] == s.Op.OutputShape[1] && s.InputShape[2] == s.Op.OutputShape[2];

        private static bool Fits(PNode n, SpecOp s) => (n.OpType, s.Op.Kind) switch
        {
            ("Conv", OperationKind.Conv) => true,
            ("Gemm" or "MatMul", OperationKind.Dense) => true,
            ("LRN", OperationKind.Lrn) => true,
            ("MaxPool", OperationKind.MaxPool) => true,
            ("AveragePool", OperationKind.AvgPool or OperationKind.AdaptiveAvgPool) => true,
            ("GlobalAveragePool", OperationKind.AdaptiveAvgPool) => true,
            ("BatchNormalization", OperationKind.BatchNorm) => true,
            _ => false,
        };

        // ------------------------------------------------------------ attributes

        private static long Int(PNode n, string name, long fallback) =>
            n.Attributes.TryGetValue(name, out PAttr? a) && a.HasI ? a.I : fallback;

        private static float Float(PNode n, string name, float fallback) =>
            n.Attributes.TryGetValue(name, out PAttr? a) && a.HasF ? a.F : fallback;

        private static long[]? Ints(PNode n, string name) =>
            n.Attributes.TryGetValue(name, out PAttr? a) ? a.Ints.ToArray() : null;

        private static string Text(long[] v) => "[" + string.Join(", ", v) + "]";

        private static bool Close(float a, float b) => Math.Abs(a - b) <= 1e-5 * Math.Max(Math.Abs(a), Math.Abs(b)) + 1e-12;

        private void CheckNoAutoPad(PNode n, SpecOp s)
        {
            if (n.Attributes.TryGetValue("auto_pad", out PAttr? a) && a.S is { } v && v != "NOTSET" && v != "")
                throw Fail($"node {n.Label} has auto_pad {v}; only explicit pads are supported (the spec's {s.Layer.Name} has padding {s.Op.Padding})");
        }

        private void CheckDilations(PNode n)
        {
            long[]? d = Ints(n, "dilations");
            if (d is not null)
                foreach (long v in d)
                    if (v != 1) throw Fail($"node {n.Label} has dilations {Text(d)}; only 1 is supported");
        }

        private void CheckWindow(PNode n, SpecOp s, string noun)
        {
            OperationInfo op = s.Op;
            CheckNoAutoPad(n, s);
            CheckDilations(n);
            long[]? k = Ints(n, "kernel_shape");
            if (k is not null && (k.Length != 2 || k[0] != op.KernelH || k[1] != op.KernelW))
                throw Fail($"node {n.Label} has kernel_shape {Text(k)}, the spec's {s.Layer.Name} has a {op.KernelH}x{op.KernelW} {noun}");
            long[] st = Ints(n, "strides") ?? new long[] { 1, 1 };
            if (st.Length != 2 || st[0] != op.Stride || st[1] != op.Stride)
                throw Fail($"node {n.Label} has strides {Text(st)}, the spec's {s.Layer.Name} has stride {op.Stride}");
            long[] p = Ints(n, "pads") ?? new long[] { 0, 0, 0, 0 };
            if (p.Length != 4 || p[0] != op.Padding || p[1] != op.Padding || p[2] != op.Padding || p[3] != op.Padding)
                throw Fail($"node {n.Label} has pads {Text(p)}, the spec's {s.Layer.Name} has padding {op.Padding}");
        }

        // ------------------------------------------------------------ binding

        private PTensor Constant(PNode n, int index, string role)
        {
            if (n.Inputs.Count <= index || n.Inputs[index].Length == 0)
                throw Fail($"node {n.Label} has no {role} input");
            if (!_constants.TryGetValue(n.Inputs[index], out PTensor? t))
                throw Fail($"node {n.Label}: its {role} \"{n.Inputs[index]}\" is not an initializer or a constant");
            return t;
        }

        private PTensor? OptionalConstant(PNode n, int index, string role) =>
            n.Inputs.Count > index && n.Inputs[index].Length > 0 ? Constant(n, index, role) : null;

        private LoadedTensor Tensor(PTensor t, PNode n)
        {
            LoadedTensor lt = Convert(t, _origin);
            if (lt.DType == "I64")
                throw Fail($"node {n.Label}: tensor \"{t.Name}\" is INT64, not floating point");
            return lt;
        }

        private void Yield(string key, int[] shape, string dtype, float[] data, PNode n, SpecOp s)
        {
            if (_expected.TryGetValue(key, out int[]? want) && !SameShape(want, shape))
                throw Fail($"node {n.Label} has a tensor of shape [{string.Join(", ", shape)}] for {key}, the spec's {s.Layer.Name} expects [{string.Join(", ", want)}]");
            _file.Add(new LoadedTensor(key, shape, dtype, data));
        }

        private void Bind(PNode n, SpecOp s, bool folded, string? matmulBias)
        {
            OperationInfo op = s.Op;
            string pre = op.CheckpointPrefix;
            switch (op.Kind)
            {
                case OperationKind.Conv:
                {
                    CheckWindow(n, s, "kernel");
                    long group = Int(n, "group", 1);
                    if (group != op.Groups)
                        throw Fail($"node {n.Label} has group {group}, the spec's {s.Layer.Name} has groups {op.Groups}");
                    LoadedTensor w = Tensor(Constant(n, 1, "weight"), n);
                    Yield(pre + ".weight", w.Shape, w.DType, w.Data, n, s);
                    PTensor? bt = OptionalConstant(n, 2, "bias");
                    LoadedTensor? b = bt is null ? null : Tensor(bt, n);
                    if (b is not null && b.Data.Length != op.Out)
                        throw Fail($"node {n.Label} has a bias of shape [{string.Join(", ", b.Shape)}], the spec's {s.Layer.Name} has {op.Out} output channels");
                    bool bnNext = folded && s.OpIndex + 1 < s.Layer.Ops.Length && s.Layer.Ops[s.OpIndex + 1].Kind == OperationKind.BatchNorm;
                    float[] beta = new float[op.Out];
                    if (op.Bias)
                    {
                        Yield(pre + ".bias", new[] { op.Out }, b?.DType ?? "F32", b?.Data ?? new float[op.Out], n, s);
                    }
                    else if (b is not null)
                    {
                        if (bnNext) beta = b.Data;
                        else if (Array.Exists(b.Data, v => v != 0))
                            throw Fail($"node {n.Label} has a bias, the spec's {s.Layer.Name} has none (bias=false)");
                    }
                    if (bnNext)
                    {
                        OperationInfo bn = s.Layer.Ops[s.OpIndex + 1];
                        string bp = bn.CheckpointPrefix;
                        var ones = new float[op.Out];
                        var zeros = new float[op.Out];
                        var variance = new float[op.Out];
                        Array.Fill(ones, 1f);
                        Array.Fill(variance, (float)(1.0 - bn.Eps));
                        var c = new[] { op.Out };
                        Yield(bp + ".weight", c, "F32", ones, n, s);
                        Yield(bp + ".bias", c, "F32", beta, n, s);
                        Yield(bp + ".running_mean", c, "F32", zeros, n, s);
                        Yield(bp + ".running_var", c, "F32", variance, n, s);
                    }
                    break;
                }
                case OperationKind.Dense:
                {
                    bool transposed; // true: W is [out, in]
                    PTensor? bias;
                    if (n.OpType == "Gemm")
                    {
                        if (Int(n, "transA", 0) != 0) throw Fail($"node {n.Label} has transA=1; only transA=0 is supported");
                        float alpha = Float(n, "alpha", 1f), beta = Float(n, "beta", 1f);
                        if (alpha != 1f) throw Fail($"node {n.Label} has alpha {alpha.ToString(CultureInfo.InvariantCulture)}; only 1 is supported");
                        bias = OptionalConstant(n, 2, "bias (C)");
                        if (bias is not null && beta != 1f) throw Fail($"node {n.Label} has beta {beta.ToString(CultureInfo.InvariantCulture)}; only 1 is supported");
                        transposed = Int(n, "transB", 0) != 0;
                    }
                    else
                    {
                        bias = matmulBias is null ? null : _constants[matmulBias];
                        transposed = false;
                    }
                    LoadedTensor w = Tensor(Constant(n, 1, "weight (B)"), n);
                    if (w.Shape.Length != 2)
                        throw Fail($"node {n.Label} has a weight of shape [{string.Join(", ", w.Shape)}]; a dense layer's is two-dimensional");
                    int rows = w.Shape[0], cols = w.Shape[1];
                    float[] data = w.Data;
                    int[] shape = w.Shape;
                    if (!transposed)
                    {
                        data = new float[w.Data.Length];
                        for (int r = 0; r < rows; r++)
                            for (int c = 0; c < cols; c++)
                                data[(long)c * rows + r] = w.Data[(long)r * cols + c];
                        shape = new[] { cols, rows };
                    }
                    if (shape[0] != op.Out)
                        throw Fail($"node {n.Label} has {shape[0]} outputs (weight [{string.Join(", ", w.Shape)}], transB={(transposed ? 1 : 0)}), the spec's {s.Layer.Name} has {op.Out}");
                    Yield(pre + ".weight", shape, w.DType, data, n, s);
                    LoadedTensor? b = bias is null ? null : Tensor(bias, n);
                    if (b is not null && b.Data.Length != op.Out)
                        throw Fail($"node {n.Label} has a bias of shape [{string.Join(", ", b.Shape)}], the spec's {s.Layer.Name} has {op.Out} outputs");
                    if (op.Bias) Yield(pre + ".bias", new[] { op.Out }, b?.DType ?? "F32", b?.Data ?? new float[op.Out], n, s);
                    else if (b is not null && Array.Exists(b.Data, v => v != 0))
                        throw Fail($"node {n.Label} has a bias, the spec's {s.Layer.Name} has none (bias=false)");
                    break;
                }
                case OperationKind.Lrn:
                {
                    long size = Int(n, "size", 0);
                    float alpha = Float(n, "alpha", 1e-4f), beta = Float(n, "beta", 0.75f), bias = Float(n, "bias", 1f);
                    if (size != op.Size) throw Fail($"node {n.Label} has size {size}, the spec's {s.Layer.Name} has LRN size {op.Size}");
                    if (!Close(alpha, op.Alpha)) throw Fail($"node {n.Label} has alpha {G(alpha)}, the spec's {s.Layer.Name} has LRN alpha {G(op.Alpha)}");
                    if (!Close(beta, op.Beta)) throw Fail($"node {n.Label} has beta {G(beta)}, the spec's {s.Layer.Name} has LRN beta {G(op.Beta)}");
                    if (!Close(bias, op.K)) throw Fail($"node {n.Label} has bias {G(bias)}, the spec's {s.Layer.Name} has LRN k {G(op.K)}");
                    break;
                }
                case OperationKind.MaxPool:
                case OperationKind.AvgPool:
                {
                    if (n.Attributes.TryGetValue("kernel_shape", out _) is false)
                        throw Fail($"node {n.Label} has no kernel_shape");
                    if (op.Kind == OperationKind.MaxPool && s.InputShape.Length == 3 && op.OutputShape.Length == 3)
                    {
                        CheckMaxPool(n, s);
                        break;
                    }
                    CheckWindow(n, s, "window");
                    bool ceil = Int(n, "ceil_mode", 0) != 0;
                    if (ceil != op.CeilMode && s.InputShape.Length == 3)
                    {
                        // Only a difference that changes the output size matters.
                        bool same = PoolOut(s.InputShape[1], op.KernelH, op.Stride, op.Padding, true) == PoolOut(s.InputShape[1], op.KernelH, op.Stride, op.Padding, false)
                            && PoolOut(s.InputShape[2], op.KernelW, op.Stride, op.Padding, true) == PoolOut(s.InputShape[2], op.KernelW, op.Stride, op.Padding, false);
                        if (!same)
                            throw Fail($"node {n.Label} has ceil_mode {(ceil ? 1 : 0)}, the spec's {s.Layer.Name} has ceil mode {(op.CeilMode ? "on" : "off")}");
                    }
                    if (op.Kind == OperationKind.AvgPool && op.Padding > 0)
                    {
                        bool include = Int(n, "count_include_pad", 0) != 0;
                        if (include != op.CountIncludePad)
                            throw Fail($"node {n.Label} has count_include_pad {(include ? 1 : 0)}, the spec's {s.Layer.Name} has {(op.CountIncludePad ? 1 : 0)}");
                    }
                    break;
                }
                case OperationKind.AdaptiveAvgPool:
                {
                    if (s.InputShape.Length != 3 || op.OutputShape.Length != 3)
                        throw Fail($"node {n.Label}: the spec's {s.Layer.Name} adaptive pool has no [C, H, W] shapes");
                    int ih = s.InputShape[1], iw = s.InputShape[2], oh = op.OutputShape[1], ow = op.OutputShape[2];
                    if (n.OpType == "GlobalAveragePool")
                    {
                        if (oh != 1 || ow != 1)
                            throw Fail($"node {n.Label} pools to 1x1, the spec's {s.Layer.Name} pools to {oh}x{ow}");
                        break;
                    }
                    CheckNoAutoPad(n, s);
                    CheckDilations(n);
                    long[]? k = Ints(n, "kernel_shape");
                    long[] st = Ints(n, "strides") ?? new long[] { 1, 1 };
                    long[] p = Ints(n, "pads") ?? new long[] { 0, 0, 0, 0 };
                    bool ok = k is { Length: 2 } && st.Length == 2 && p.Length == 4 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0
                        && Int(n, "ceil_mode", 0) == 0
                        && AdaptiveSame(ih, oh, k[0], st[0]) && AdaptiveSame(iw, ow, k[1], st[1]);
                    if (!ok)
                        throw Fail($"node {n.Label} has kernel_shape {Text(k ?? Array.Empty<long>())}, strides {Text(st)}, pads {Text(p)}: not the spec's {s.Layer.Name} adaptive average pool from {ih}x{iw} to {oh}x{ow}");
                    break;
                }
                case OperationKind.BatchNorm:
                {
                    float eps = Float(n, "epsilon", 1e-5f);
                    if (!Close(eps, op.Eps))
                        throw Fail($"node {n.Label} has epsilon {G(eps)}, the spec's {s.Layer.Name} has batch norm eps {G(op.Eps)}");
                    if (Int(n, "training_mode", 0) != 0)
                        throw Fail($"node {n.Label} is in training mode");
                    string[] names = { "weight", "bias", "running_mean", "running_var" };
                    string[] roles = { "scale", "B", "input_mean", "input_var" };
                    for (int i = 0; i < 4; i++)
                    {
                        LoadedTensor t = Tensor(Constant(n, i + 1, roles[i]), n);
                        Yield(pre + "." + names[i], t.Shape, t.DType, t.Data, n, s);
                    }
                    break;
                }
            }
        }

        private static string G(float v) => v.ToString("g6", CultureInfo.InvariantCulture);

        /// <summary>
        /// A MaxPool node against the spec's max pool. Caffe's pooling rounds the output size up, and converters write
        /// that either as <c>ceil_mode=1</c> (opset 10 and later) or, as Caffe2's exporter does for the model zoo's
        /// BVLC graphs (opset 9 and earlier have no ceil_mode), as extra padding at the end of each axis:
        /// <c>pads [0, 0, 1, 1]</c> or <c>[0, 0, 2, 2]</c>. Padding never wins a max, so a node is the spec's pool
        /// exactly when its windows start at the same places (the same begin padding and stride) and there are as many of
        /// them (the same output size, from the node's pads and ceil_mode): any end padding and ceil_mode that give the
        /// spec's output size are accepted, and anything else is refused naming the node, its pads and ceil_mode.
        /// </summary>
        private void CheckMaxPool(PNode n, SpecOp s)
        {
            OperationInfo op = s.Op;
            CheckNoAutoPad(n, s);
            CheckDilations(n);
            long[]? k = Ints(n, "kernel_shape");
            if (k is not null && (k.Length != 2 || k[0] != op.KernelH || k[1] != op.KernelW))
                throw Fail($"node {n.Label} has kernel_shape {Text(k)}, the spec's {s.Layer.Name} has a {op.KernelH}x{op.KernelW} window");
            long[] st = Ints(n, "strides") ?? new long[] { 1, 1 };
            if (st.Length != 2 || st[0] != op.Stride || st[1] != op.Stride)
                throw Fail($"node {n.Label} has strides {Text(st)}, the spec's {s.Layer.Name} has stride {op.Stride}");
            long[] p = Ints(n, "pads") ?? new long[] { 0, 0, 0, 0 };
            bool ceil = Int(n, "ceil_mode", 0) != 0;
            string spec = $"the spec's {s.Layer.Name} has padding {op.Padding}{(op.CeilMode ? " and ceil mode" : "")}";
            if (p.Length != 4 || p[0] != op.Padding || p[1] != op.Padding)
                throw Fail($"node {n.Label} has pads {Text(p)}, {spec} (the begin pads must equal it)");
            if (p[2] < 0 || p[3] < 0 || p[2] > op.KernelH || p[3] > op.KernelW)
                throw Fail($"node {n.Label} has pads {Text(p)}, {spec} (end pads must be from 0 to the kernel size)");
            int ih = s.InputShape[1], iw = s.InputShape[2];
            long oh = OnnxPoolOut(ih, op.KernelH, op.Stride, p[0], p[2], ceil), ow = OnnxPoolOut(iw, op.KernelW, op.Stride, p[1], p[3], ceil);
            if (oh != op.OutputShape[1] || ow != op.OutputShape[2])
                throw Fail($"node {n.Label} has pads {Text(p)} and ceil_mode {(ceil ? 1 : 0)}, so it pools {ih}x{iw} to {oh}x{ow}; {spec}, which pools it to {op.OutputShape[1]}x{op.OutputShape[2]}");
        }

        /// <summary>ONNX's pooling output size with begin and end padding: <c>floor</c> or, in ceil mode, <c>ceil</c> of
        /// <c>(input + begin + end - kernel) / stride</c>, plus one; in ceil mode a last window that would start past the
        /// input and its begin padding is dropped (PyTorch's rule, which the spec's planner applies too).</summary>
        private static long OnnxPoolOut(long input, long kernel, long stride, long begin, long end, bool ceil)
        {
            long span = input + begin + end - kernel;
            if (span < 0 || stride <= 0) return 0;
            long o = (ceil ? (span + stride - 1) / stride : span / stride) + 1;
            if (ceil && (o - 1) * stride >= input + begin) o--;
            return o;
        }

        private static int PoolOut(int input, int kernel, int stride, int padding, bool ceil)
        {
            int span = input + 2 * padding - kernel;
            if (span < 0 || stride <= 0) return 0;
            return (ceil ? (span + stride - 1) / stride : span / stride) + 1;
        }

        /// <summary>Whether an average pool (kernel k, stride s, no padding) has exactly the adaptive pool's windows.</summary>
        private static bool AdaptiveSame(int input, int output, long k, long s)
        {
            if (k <= 0 || s <= 0 || output <= 0) return false;
            if ((input - k) / s + 1 != output || input < k) return false;
            for (long i = 0; i < output; i++)
            {
                long start = i * input / output;
                long end = ((i + 1) * input + output - 1) / output;
                if (i * s != start || i * s + k != end) return false;
            }
            return true;
        }

        private static bool SameShape(int[] a, int[] b)
        {
            if (a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
            return true;
        }
    }
}
