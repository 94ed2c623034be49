using System;
using System.Collections.Generic;
using AlexNet.Aot.Generator.Model;

namespace AlexNet.Aot.Generator.Planning;

/// <summary>
/// Turns a parsed spec into a <see cref="ModelPlan"/>: every tensor's shape, parameters and multiply-adds per layer,
/// and the activation arena with buffer reuse. Shape errors become diagnostics at the layer's line.
/// </summary>
internal static class Planner
{
    /// <summary>Columns of the widest im2col panel any ISA path uses (AVX-512: two 16-float vectors).</summary>
    public const int MaxPanelColumns = 32;

    /// <summary>Alignment of every worker buffer, in floats (one cache line).</summary>
    public const int Align = 16;

    /// <summary>Winograd tile columns are padded to a multiple of this (the widest column panel of any ISA path).</summary>
    public const int WinogradColumnAlign = 16;

    /// <summary>The most output channels a Winograd row panel holds on any ISA path (AVX-512: 16).</summary>
    public const int WinogradMaxRows = 16;

    /// <summary>
    /// Whether a convolution runs as Winograd on 6x6 input tiles: F(4x4, 3x3) for a 3x3 kernel, F(2x2, 5x5) for a 5x5 one,
    /// both at stride 1; and only where that takes fewer multiply-adds than the direct product even with the tile count
    /// rounded up to a whole AVX-512 vector: 36 per tile (tiles padded to 16) against k*k per output pixel, with a margin
    /// of 0.6 for the transforms. AlexNet's 13x13 3x3 layers (16 tiles: 576 against 1521 per channel pair) and its 27x27
    /// 5x5 conv2 (196 tiles: 7488 against 18225) qualify; the 6x6 3x3 layers of the Fashion-MNIST models (4 tiles) do not.
    /// A layer also needs at least <see cref="WinogradMinChannels"/> input channels per group: the products run over them,
    /// and with fewer the stores of the product tiles cost more than the multiply-adds saved (a first layer on 1 or 3
    /// channels stays direct).
    /// </summary>
    internal static bool UsesWinograd(LayerSpec L, int inC, int outH, int outW)
    {
        if (L.Kind != LayerKind.Conv || L.KernelH != L.KernelW || (L.KernelH != 3 && L.KernelH != 5) || L.Stride != 1) return false;
        if (inC / L.Groups < WinogradMinChannels) return false;
        long tiles = WinogradTileColumns(WinogradTile(L.KernelH), outH, outW);
        return 36 * tiles < 0.6 * L.KernelH * L.KernelW * outH * outW;
    }

    /// <summary>The fewest input channels per group a Winograd layer has.</summary>
    public const int WinogradMinChannels = 8;

    /// <summary>The output tile of the Winograd form for a k x k kernel on 6x6 input tiles: 4 for 3x3, 2 for 5x5.</summary>
    internal static int WinogradTile(int kernel) => 7 - kernel;

    /// <summary>m x m output tiles of an outH x outW output, rounded up to <see cref="WinogradColumnAlign"/>.</summary>
    internal static int WinogradTileColumns(int m, int outH, int outW)
    {
        long t = (long)((outH + m - 1) / m) * ((outW + m - 1) / m);
        return (int)Math.Min(RoundUp(t, WinogradColumnAlign), int.MaxValue / 64);
    }

    private const long MaxFloats = int.MaxValue / 2;

    private sealed class Tensor
    {
        public Region Region;
        public long Size;
        public int Def;
        public int LastUse;
        public int Offset;
    }

    private sealed class Step
    {
        public StepKind Kind;
        public string Text = "";
        public OpSpec? Op;
        public int InC, InH, InW, OutC, OutH, OutW;
        public Tensor In = null!;
        public Tensor Out = null!;
    }

    public static ModelPlan Plan(ModelSpec spec)
    {
        var diags = new List<SpecDiagnostic>(spec.Diagnostics);
        if (spec.HasErrors)
            return new ModelPlan(spec, EquatableArray<LayerPlan>.Empty, 0, 0, 0, false, diags.ToEquatable());

        void Error(string id, SpecPosition pos, string message) => diags.Add(new SpecDiagnostic(id, spec.FilePath, pos, message));

        var input = new Tensor { Region = Region.Input, Def = -1 };
        var workerTensors = new List<Tensor>();
        var denseTensors = new List<Tensor>();
        var layerSteps = new List<List<Step>>();
        var layerData = new List<(int InC, int InH, int InW, int OutC, int OutH, int OutW, bool Fuse, OpSpec? Bn, Tensor? Scratch, Tensor? Transform, long Macs, List<ParamPlan> Params)>();
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);

        int c = spec.InputC, h = spec.InputH, w = spec.InputW;
        Tensor cur = input;
        int stepIndex = 0;
        bool seenDense = false;
        int lastConv = -1;
        for (int li = 0; li < spec.Layers.Count; li++)
            if (spec.Layers[li].Kind == LayerKind.Conv) lastConv = li;

        for (int li = 0; li < spec.Layers.Count; li++)
        {
            LayerSpec L = spec.Layers[li];
            var steps = new List<Step>();
            var ps = new List<ParamPlan>();
            int inC = c, inH = h, inW = w;
            bool isLast = li == spec.Layers.Count - 1;
            bool fuse = false;
            OpSpec? bn = null;
            Tensor? scratch = null, transform = null;
            long macs;
            List<Tensor> region = L.Kind == LayerKind.Conv ? workerTensors : denseTensors;

            if (L.Kind == LayerKind.Conv)
            {
                if (seenDense)
                {
                    Error(Diagnostics.OpNotAllowed, L.Position, $"{L.Name}: a conv layer cannot follow a dense layer");
                    break;
                }
                if (c % L.Groups != 0)
                {
                    Error(Diagnostics.GroupsDoNotDivide, L.Position, $"{L.Name}: groups={L.Groups} does not divide the {c} input channels");
                    break;
                }
                if (L.KernelH > h + 2 * L.Padding || L.KernelW > w + 2 * L.Padding)
                {
                    Error(Diagnostics.KernelTooLarge, L.Position, $"{L.Name}: kernel {L.KernelH}x{L.KernelW} is larger than its padded input {h + 2 * L.Padding}x{w + 2 * L.Padding} ({c}x{h}x{w} with padding {L.Padding})");
                    break;
                }
                int oh = (h + 2 * L.Padding - L.KernelH) / L.Stride + 1;
                int ow = (w + 2 * L.Padding - L.KernelW) / L.Stride + 1;
                long k = (long)(c / L.Groups) * L.KernelH * L.KernelW;
                long outSize = (long)L.Out * oh * ow;
                long scratchSize = k * MaxPanelColumns; // one column panel, gathered per (group, panel)
                bool winograd = UsesWinograd(L, c, oh, ow);
                long transformSize = 0;
                if (winograd)
                {
                    // Winograd: the transformed input [groups][36][cin/groups][tile columns] is shared by the team; each
                    // worker's scratch holds one row panel's 36 products [36][rows][tile columns] (or, while transforming
                    // the input, one channel's 6x6 input tiles) and its 4x4 outputs [16][tile columns].
                    long tp = WinogradTileColumns(WinogradTile(L.KernelH), oh, ow);
                    transformSize = 36L * c * tp;
                    scratchSize = Math.Max(scratchSize, (36L * WinogradMaxRows + 16) * tp);
                }
                if (outSize > MaxFloats || scratchSize > MaxFloats || transformSize > MaxFloats)
                {
                    Error(Diagnostics.TooLarge, L.Position, $"{L.Name}: {L.Out}x{oh}x{ow} output or its {scratchSize}-float column panel is too large for one arena");
                    break;
                }
                macs = outSize * k;
                var o = NewTensor(workerTensors, Region.Worker, outSize, stepIndex);
                scratch = NewTensor(workerTensors, Region.Worker, scratchSize, stepIndex);
                scratch.LastUse = stepIndex;
                if (winograd) transform = NewTensor(workerTensors, Region.Worker, transformSize, stepIndex);
                Use(cur, stepIndex);
                steps.Add(new Step { Kind = StepKind.Conv, Text = LayerHead(L), InC = c, InH = h, InW = w, OutC = L.Out, OutH = oh, OutW = ow, In = cur, Out = o });
                stepIndex++;
                AddParam(ps, keys, L.CheckpointPrefix + ".weight", new[] { L.Out, c / L.Groups, L.KernelH, L.KernelW }, "weight", false, L, Error);
                if (L.Bias) AddParam(ps, keys, L.CheckpointPrefix + ".bias", new[] { L.Out }, "bias", false, L, Error);
                c = L.Out; h = oh; w = ow; cur = o;
            }
            else
            {
                seenDense = true;
                long inFeatures = (long)c * h * w;
                if (inFeatures > MaxFloats || (long)L.Out * inFeatures > MaxFloats * 2)
                {
                    Error(Diagnostics.TooLarge, L.Position, $"{L.Name}: a {inFeatures}x{L.Out} dense layer is too large");
                    break;
                }
                macs = inFeatures * L.Out;
                var o = isLast ? new Tensor { Region = Region.Output, Size = L.Out, Def = stepIndex } : NewTensor(denseTensors, Region.Dense, L.Out, stepIndex);
                Use(cur, stepIndex);
                steps.Add(new Step { Kind = StepKind.Dense, Text = LayerHead(L), InC = (int)inFeatures, InH = 1, InW = 1, OutC = L.Out, OutH = 1, OutW = 1, In = cur, Out = o });
                stepIndex++;
                AddParam(ps, keys, L.CheckpointPrefix + ".weight", new[] { L.Out, (int)inFeatures }, "weight", false, L, Error);
                if (L.Bias) AddParam(ps, keys, L.CheckpointPrefix + ".bias", new[] { L.Out }, "bias", false, L, Error);
                c = L.Out; h = 1; w = 1; cur = o;
            }

            bool failed = false;
            for (int oi = 0; oi < L.Ops.Count && !failed; oi++)
            {
                OpSpec op = L.Ops[oi];
                bool directlyAfterMain = steps.Count == 1 && (oi == 0 || (oi == 1 && bn is not null));
                switch (op.Kind)
                {
                    case OpKind.Relu:
                        if (directlyAfterMain && !fuse) { fuse = true; break; }
                        steps.Add(InPlace(StepKind.Relu, op, c, h, w, cur, stepIndex++));
                        break;
                    case OpKind.BatchNorm:
                        foreach (string leaf in new[] { "weight", "bias", "running_mean", "running_var" })
                            AddParam(ps, keys, op.CheckpointPrefix + "." + leaf, new[] { c }, "bn." + leaf, false, L, Error);
                        AddParam(ps, keys, op.CheckpointPrefix + ".num_batches_tracked", Array.Empty<int>(), "bn.num_batches_tracked", true, L, Error);
                        if (oi == 0 && steps.Count == 1 && bn is null) { bn = op; break; }
                        steps.Add(InPlace(StepKind.Affine, op, c, h, w, cur, stepIndex++));
                        break;
                    case OpKind.Dropout:
                        steps.Add(InPlace(StepKind.Dropout, op, c, h, w, cur, stepIndex++));
                        break;
                    case OpKind.Flatten:
                        steps.Add(InPlace(StepKind.Flatten, op, c, h, w, cur, stepIndex++));
                        break;
                    case OpKind.Softmax:
                        if (!isLast)
                        {
                            Error(Diagnostics.SoftmaxNotLast, op.Position, $"{L.Name}: softmax must be the last operation of the last layer");
                            failed = true;
                            break;
                        }
                        steps.Add(InPlace(StepKind.Softmax, op, c, h, w, cur, stepIndex++));
                        break;
                    case OpKind.Lrn:
                    {
                        var o = NewTensor(region, Region.Worker, (long)c * h * w, stepIndex);
                        Use(cur, stepIndex);
                        steps.Add(new Step { Kind = StepKind.Lrn, Text = op.Text, Op = op, InC = c, InH = h, InW = w, OutC = c, OutH = h, OutW = w, In = cur, Out = o });
                        stepIndex++;
                        cur = o;
                        break;
                    }
                    case OpKind.MaxPool:
                    case OpKind.AvgPool:
                    {
                        if (op.Kernel > h + 2 * op.Padding || op.Kernel > w + 2 * op.Padding)
                        {
                            Error(Diagnostics.KernelTooLarge, op.Position, $"{L.Name}: {op.Text} kernel {op.Kernel} is larger than its padded input {h + 2 * op.Padding}x{w + 2 * op.Padding} ({c}x{h}x{w})");
                            failed = true;
                            break;
                        }
                        int oh = PoolOut(h, op), ow = PoolOut(w, op);
                        if (oh < 1 || ow < 1)
                        {
                            Error(Diagnostics.ShapeDoesNotReachDense, op.Position, $"{L.Name}: {op.Text} leaves no output from {c}x{h}x{w}");
                            failed = true;
                            break;
                        }
                        var o = NewTensor(region, Region.Worker, (long)c * oh * ow, stepIndex);
                        Use(cur, stepIndex);
                        if (L.Kind == LayerKind.Conv && op.Kind == OpKind.MaxPool && op.Padding == 0)
                        {
                            // The emitter fuses a separable max-pool into the step before (LayerEmitter.LrnPoolFused,
                            // WinogradPoolFused): what that step still reads while the pool writes must not share memory
                            // with the pool's output. After an LRN: the LRN's input. Right after a Winograd convolution:
                            // the transformed input and the workers' product scratch.
                            Step before = steps[steps.Count - 1];
                            // The fused LRN's own output is never written: it takes no memory.
                            if (before.Kind == StepKind.Lrn)
                            {
                                Use(before.In, stepIndex);
                                before.Out.Size = 0;
                            }
                            else if (steps.Count == 1 && transform is not null)
                            {
                                Use(transform, stepIndex);
                                Use(scratch!, stepIndex);
                            }
                        }
                        steps.Add(new Step { Kind = op.Kind == OpKind.MaxPool ? StepKind.MaxPool : StepKind.AvgPool, Text = op.Text, Op = op, InC = c, InH = h, InW = w, OutC = c, OutH = oh, OutW = ow, In = cur, Out = o });
                        stepIndex++;
                        h = oh; w = ow; cur = o;
                        break;
                    }
                    case OpKind.AdaptiveAvgPool:
                    {
                        if (op.OutH == h && op.OutW == w)
                        {
                            steps.Add(InPlace(StepKind.AdaptiveAvgPool, op, c, h, w, cur, stepIndex++));
                            break;
                        }
                        var o = NewTensor(region, Region.Worker, (long)c * op.OutH * op.OutW, stepIndex);
                        Use(cur, stepIndex);
                        steps.Add(new Step { Kind = StepKind.AdaptiveAvgPool, Text = op.Text, Op = op, InC = c, InH = h, InW = w, OutC = c, OutH = op.OutH, OutW = op.OutW, In = cur, Out = o });
                        stepIndex++;
                        h = op.OutH; w = op.OutW; cur = o;
                        break;
                    }
                }
            }
            if (failed) break;
            if (L.Kind == LayerKind.Conv && (h < 1 || w < 1))
            {
                Error(Diagnostics.ShapeDoesNotReachDense, L.Position, $"{L.Name}: the shape shrinks to {c}x{h}x{w}");
                break;
            }
            if (li == lastConv)
            {
                // The last conv line writes straight into this image's row of the batched dense input.
                cur.Region = Region.Dense;
                workerTensors.Remove(cur);
                denseTensors.Add(cur);
                cur.Def = -1;
            }
            layerSteps.Add(steps);
            layerData.Add((inC, inH, inW, steps[0].OutC, steps[0].OutH, steps[0].OutW, fuse, bn, scratch, transform, macs, ps));
        }

        if (diags.Count == 0 && spec.Layers[spec.Layers.Count - 1].Kind != LayerKind.Dense)
        {
            LayerSpec last = spec.Layers[spec.Layers.Count - 1];
            Error(Diagnostics.ShapeDoesNotReachDense, last.Position, $"{last.Name}: the last layer must be dense (it gives the class scores); the conv output {c}x{h}x{w} never reaches a dense layer");
        }
        if (diags.Count == 0 && spec.Mean.Count > 1 && spec.Mean.Count != spec.InputC)
            Error(Diagnostics.ValueOutOfRange, spec.Layers[0].Position, $"{spec.ModelName}: normalize gives {spec.Mean.Count} means for {spec.InputC} input channels (give one, or one per channel)");
        if (diags.Count == 0 && spec.Labels.Count > 0 && spec.Labels.Count != spec.Layers[spec.Layers.Count - 1].Out)
        {
            LayerSpec last = spec.Layers[spec.Layers.Count - 1];
            Error(Diagnostics.ValueOutOfRange, last.Position, $"{last.Name}: labels names {spec.Labels.Count} classes but the last layer has {last.Out} outputs");
        }
        if (diags.Count > 0)
            return new ModelPlan(spec, EquatableArray<LayerPlan>.Empty, 0, 0, 0, false, diags.ToEquatable());

        long workerFloats = Allocate(workerTensors, Align);
        long denseFloats = Allocate(denseTensors, 1);
        if (workerFloats > MaxFloats || denseFloats > MaxFloats)
        {
            Error(Diagnostics.TooLarge, spec.Layers[0].Position, $"{spec.ModelName}: the activation arena ({workerFloats} + {denseFloats} floats per image) is too large");
            return new ModelPlan(spec, EquatableArray<LayerPlan>.Empty, 0, 0, 0, false, diags.ToEquatable());
        }

        var layers = new List<LayerPlan>();
        for (int li = 0; li < layerSteps.Count; li++)
        {
            LayerSpec L = spec.Layers[li];
            var d = layerData[li];
            var steps = new List<StepPlan>();
            foreach (Step s in layerSteps[li])
                steps.Add(new StepPlan(s.Kind, s.Text, s.Op, s.InC, s.InH, s.InW, s.OutC, s.OutH, s.OutW, SlotOf(s.In), SlotOf(s.Out)));
            StepPlan lastStep = steps[steps.Count - 1];
            int groups = L.Kind == LayerKind.Conv ? L.Groups : 1;
            int cinG = d.InC / groups;
            layers.Add(new LayerPlan(li, L, ClassNameOf(L.Name), d.InC, d.InH, d.InW, d.OutC, d.OutH, d.OutW,
                groups, L.Kind == LayerKind.Conv ? cinG : d.InC * d.InH * d.InW, d.OutC / groups,
                L.Kind == LayerKind.Conv ? cinG * L.KernelH * L.KernelW : d.InC * d.InH * d.InW,
                d.OutH * d.OutW, d.Fuse, d.Bn, steps.ToEquatable(), d.Params.ToEquatable(), d.Macs,
                d.Scratch?.Offset ?? 0, (int)(d.Scratch?.Size ?? 0), lastStep.OutC, lastStep.OutH, lastStep.OutW,
                d.Transform is not null, d.Transform?.Offset ?? 0, d.Transform is null ? 0 : WinogradTileColumns(WinogradTile(L.KernelH), d.OutH, d.OutW)));
        }
        LayerSpec lastLayer = spec.Layers[spec.Layers.Count - 1];
        bool softmax = lastLayer.Ops.Count > 0 && lastLayer.Ops[lastLayer.Ops.Count - 1].Kind == OpKind.Softmax;
        return new ModelPlan(spec, layers.ToEquatable(), (int)workerFloats, (int)denseFloats, lastLayer.Out, softmax, diags.ToEquatable());
    }

    private static Step InPlace(StepKind kind, OpSpec op, int c, int h, int w, Tensor t, int step)
    {
        Use(t, step);
        return new Step { Kind = kind, Text = op.Text, Op = op, InC = c, InH = h, InW = w, OutC = c, OutH = h, OutW = w, In = t, Out = t };
    }

    private static Tensor NewTensor(List<Tensor> list, Region region, long size, int def)
    {
        var t = new Tensor { Region = region, Size = size, Def = def, LastUse = def };
        list.Add(t);
        return t;
    }

    private static void Use(Tensor t, int step)
    {
        if (step > t.LastUse) t.LastUse = step;
    }

    /// <summary>First-fit allocation by definition order; a buffer is free again after its last use. Returns the region's size.</summary>
    private static long Allocate(List<Tensor> tensors, int align)
    {
        tensors.Sort((a, b) => a.Def != b.Def ? a.Def.CompareTo(b.Def) : b.Size.CompareTo(a.Size));
        var live = new List<Tensor>();
        long top = 0;
        foreach (Tensor t in tensors)
        {
            live.RemoveAll(x => x.LastUse < t.Def);
            live.Sort((a, b) => a.Offset.CompareTo(b.Offset));
            long offset = 0;
            foreach (Tensor x in live)
            {
                if (offset + t.Size <= x.Offset) break;
                offset = Math.Max(offset, RoundUp(x.Offset + x.Size, align));
            }
            t.Offset = (int)Math.Min(offset, int.MaxValue);
            live.Add(t);
            top = Math.Max(top, RoundUp(offset + t.Size, align));
        }
        return top;
    }

    private static long RoundUp(long v, int m) => (v + m - 1) / m * m;

    private static Slot SlotOf(Tensor t) => new(t.Region, t.Region is Region.Worker or Region.Dense ? t.Offset : 0);

    /// <summary>PyTorch's pooling output size, ceil mode included (a last window must start inside the input or left padding).</summary>
    internal static int PoolOut(int size, OpSpec op)
    {
        int span = size + 2 * op.Padding - op.Kernel;
        if (span < 0) return 0;
        int o = (op.CeilMode ? (span + op.Stride - 1) / op.Stride : span / op.Stride) + 1;
        if (op.CeilMode && (o - 1) * op.Stride >= size + op.Padding) o--;
        return o;
    }

    private static void AddParam(List<ParamPlan> ps, Dictionary<string, string> keys, string key, int[] shape, string role, bool optional,
        LayerSpec layer, Action<string, SpecPosition, string> error)
    {
        if (keys.TryGetValue(key, out string? owner))
        {
            error(Diagnostics.DuplicateCheckpointKey, layer.Position, $"{layer.Name}: checkpoint key '{key}' is already bound by layer {owner}");
            return;
        }
        keys[key] = layer.Name;
        ps.Add(new ParamPlan(key, shape.ToEquatable(), role, optional));
    }

    /// <summary>The layer's head as text, normalized: <c>conv 96 k11 s4</c>, <c>dense 4096</c>.</summary>
    internal static string LayerHead(LayerSpec L)
    {
        if (L.Kind == LayerKind.Dense) return "dense " + L.Out + (L.Bias ? "" : " bias=false");
        string k = L.KernelH == L.KernelW ? "k" + L.KernelH : "k" + L.KernelH + "x" + L.KernelW;
        return "conv " + L.Out + " " + k + (L.Stride != 1 ? " s" + L.Stride : "") + (L.Padding != 0 ? " p" + L.Padding : "")
            + (L.Groups != 1 ? " groups=" + L.Groups : "") + (L.Bias ? "" : " bias=false");
    }

    /// <summary>A C# class name for a layer: <c>conv1</c> → <c>Conv1Layer</c>.</summary>
    internal static string ClassNameOf(string layer) => char.ToUpperInvariant(layer[0]) + layer.Substring(1) + "Layer";
}
