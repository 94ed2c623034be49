using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace AlexNet.Aot.Training;

/// <summary>Where a training run stands: what a <see cref="TrainingCheckpoint"/> records besides the tensors.</summary>
public sealed class TrainingState
{
    /// <summary>Epochs completed (the epoch to continue is this one, counted from 0).</summary>
    public int Epoch { get; init; }

    /// <summary>Batches done in epoch <see cref="Epoch"/> (0 at an epoch boundary; more for a mid-epoch checkpoint).</summary>
    public int BatchInEpoch { get; init; }

    /// <summary><see cref="Trainer.StepCount"/> (<see cref="TrainingCheckpoint.Save"/> takes it from the trainer).</summary>
    public long StepCount { get; init; }

    /// <summary><see cref="Trainer.OptimizerSteps"/> (<see cref="TrainingCheckpoint.Save"/> takes it from the trainer).</summary>
    public long OptimizerSteps { get; init; }

    /// <summary>The learning rate in use.</summary>
    public double LearningRate { get; init; }

    /// <summary>The schedule's state (<see cref="LearningRateSchedule.SaveState"/>; empty: none).</summary>
    public string Schedule { get; init; } = "";

    /// <summary>The training seed (shuffles, augmentation, dropout, initialization).</summary>
    public ulong Seed { get; init; }

    /// <summary>Other strings to keep in the metadata (the caller's settings, running sums of the epoch); keys must not
    /// be one of <see cref="TrainingCheckpoint.ReservedKeys"/>.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);
}

/// <summary>
/// A training checkpoint: a safetensors file holding every model tensor under its own key (so it is also a weights file
/// for a <see cref="Network"/>), every optimizer momentum buffer under <c>optimizer.momentum.KEY</c>, and metadata:
/// <c>format</c> (<see cref="Format"/>), <c>model</c>, <c>epoch</c> (completed), <c>batch_in_epoch</c>, <c>step_count</c>,
/// <c>optimizer_steps</c>, <c>lr</c>, <c>schedule</c>, <c>seed</c>, the caller's properties, and <c>checksum</c>: the
/// lower-case hex SHA-256 over every tensor in file order (its UTF-8 key, a zero byte, the rank as a little-endian
/// int32, each dimension and the byte length as little-endian int64, then the raw little-endian bytes).
/// Files are written atomically (a temporary file in the same folder, flushed to disk, renamed over the target), and
/// <see cref="SafeTensorsFile.Load(string)"/> verifies the checksum of any file in this format, so a corrupt checkpoint is
/// refused wherever it is read.
/// </summary>
public sealed class TrainingCheckpoint
{
    /// <summary>The metadata <c>format</c> of a checkpoint.</summary>
    public const string Format = CheckpointChecksum.Format;

    /// <summary>The key prefix of the momentum buffers.</summary>
    public const string MomentumPrefix = "optimizer.momentum.";

    private static readonly string[] Reserved =
        { "format", "model", "epoch", "batch_in_epoch", "step_count", "optimizer_steps", "lr", "schedule", "seed", "checksum" };

    private TrainingCheckpoint(string path, string modelName, IWeightSource weights, Dictionary<string, float[]> momentum, TrainingState state)
    {
        FilePath = path;
        ModelName = modelName;
        Weights = weights;
        Momentum = momentum;
        State = state;
    }

    /// <summary>The metadata keys a checkpoint sets itself.</summary>
    public static IReadOnlyList<string> ReservedKeys => Reserved;

    /// <summary>The file it was read from.</summary>
    public string FilePath { get; }

    /// <summary>The model it is a checkpoint of.</summary>
    public string ModelName { get; }

    /// <summary>The model's tensors (parameters and running statistics), without the momentum buffers.</summary>
    public IWeightSource Weights { get; }

    /// <summary>The momentum buffers, by tensor key.</summary>
    public IReadOnlyDictionary<string, float[]> Momentum { get; }

    /// <summary>Where training stood.</summary>
    public TrainingState State { get; }

    /// <summary>Writes a checkpoint of <paramref name="trainer"/> (its tensors, momentum buffers, <see cref="Trainer.StepCount"/> and
    /// <see cref="Trainer.OptimizerSteps"/>) and <paramref name="state"/> to <paramref name="path"/>, atomically. Call it between steps.</summary>
    /// <exception cref="ArgumentException">A property key is reserved or empty.</exception>
    /// <exception cref="WeightsException">The file cannot be written; the message starts with the path.</exception>
    public static void Save(string path, Trainer trainer, TrainingState state)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(state);
        var tensors = new List<(string Key, int[] Shape, float[] Data)>();
        foreach (TrainableTensor t in trainer.Tensors) tensors.Add((t.Key, t.Shape, t.Value));
        foreach (TrainableTensor t in trainer.Tensors)
            if (t.Trainable) tensors.Add((MomentumPrefix + t.Key, t.Shape, t.Momentum));

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["format"] = Format,
            ["model"] = trainer.Model.Name,
            ["epoch"] = Int(state.Epoch),
            ["batch_in_epoch"] = Int(state.BatchInEpoch),
            ["step_count"] = Int(trainer.StepCount),
            ["optimizer_steps"] = Int(trainer.OptimizerSteps),
            ["lr"] = state.LearningRate.ToString("R", CultureInfo.InvariantCulture),
            ["schedule"] = state.Schedule ?? "",
            ["seed"] = state.Seed.ToString(CultureInfo.InvariantCulture),
        };
        foreach (KeyValuePair<string, string> kv in state.Properties)
        {
            if (string.IsNullOrEmpty(kv.Key) || Array.IndexOf(Reserved, kv.Key) >= 0)
                throw new ArgumentException($"checkpoint property '{kv.Key}' is empty or reserved ({string.Join(", ", Reserved)})", nameof(state));
            metadata[kv.Key] = kv.Value ?? "";
        }
        using (IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            foreach (var t in tensors) CheckpointChecksum.Append(hash, t.Key, t.Shape, t.Data);
            metadata["checksum"] = CheckpointChecksum.Hex(hash);
        }
        SafeTensorsFile.Write(path, tensors, metadata);
    }

    /// <summary>Reads and checks a checkpoint of <paramref name="model"/>: its checksum, its format and its model name.</summary>
    /// <exception cref="WeightsException">The file is missing, unreadable, malformed, corrupt ("checksum mismatch"), not a
    /// checkpoint, of another format version or of another model; the message starts with the path and says which.</exception>
    public static TrainingCheckpoint Load(string path, ModelInfo model)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(model);
        SafeTensorsFile file = SafeTensorsFile.Load(path);
        IReadOnlyDictionary<string, string> meta = file.Metadata;
        if (!meta.TryGetValue("format", out string? format))
            throw new WeightsException($"{path}: not a training checkpoint (its metadata has no format \"{Format}\"); it can only be used as initial weights");
        if (format != Format)
            throw new WeightsException($"{path}: checkpoint format \"{format}\" is not supported (this version reads \"{Format}\")");
        if (!meta.ContainsKey("checksum"))
            throw new WeightsException($"{path}: the checkpoint has no checksum; it cannot be verified");
        string name = Text(path, meta, "model");
        if (name != model.Name)
            throw new WeightsException($"{path}: is a checkpoint of model {name}, not {model.Name}");

        var state = new TrainingState
        {
            Epoch = (int)Number(path, meta, "epoch", int.MaxValue),
            BatchInEpoch = (int)Number(path, meta, "batch_in_epoch", int.MaxValue),
            StepCount = Number(path, meta, "step_count", long.MaxValue),
            OptimizerSteps = Number(path, meta, "optimizer_steps", long.MaxValue),
            LearningRate = double.TryParse(Text(path, meta, "lr"), NumberStyles.Float, CultureInfo.InvariantCulture, out double lr) && double.IsFinite(lr)
                ? lr : throw new WeightsException($"{path}: metadata lr '{meta["lr"]}' is not a finite number"),
            Schedule = Text(path, meta, "schedule"),
            Seed = ulong.TryParse(Text(path, meta, "seed"), NumberStyles.None, CultureInfo.InvariantCulture, out ulong seed)
                ? seed : throw new WeightsException($"{path}: metadata seed '{meta["seed"]}' is not a whole number"),
            Properties = Others(meta),
        };

        var weights = new List<LoadedTensor>();
        var momentum = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (string key in file.Keys)
        {
            file.TryGet(key, out LoadedTensor t);
            if (key.StartsWith(MomentumPrefix, StringComparison.Ordinal)) momentum[key.Substring(MomentumPrefix.Length)] = t.Data;
            else weights.Add(t);
        }
        return new TrainingCheckpoint(path, name, new TensorSet(weights, path), momentum, state);
    }

    /// <summary>
    /// Puts the optimizer state into <paramref name="trainer"/> (made with <see cref="Weights"/> as its weights source):
    /// the momentum buffers, <see cref="Trainer.OptimizerSteps"/> and <see cref="Trainer.StepCount"/> (which keys the dropout
    /// masks), so the next step is the one the checkpointed run would have taken.
    /// </summary>
    /// <exception cref="WeightsException">The trainer is of another model, or a momentum buffer is missing or mis-shaped.</exception>
    public void Restore(Trainer trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        if (trainer.Model.Name != ModelName)
            throw new WeightsException($"{FilePath}: is a checkpoint of model {ModelName}, not {trainer.Model.Name}");
        foreach (TrainableTensor t in trainer.Tensors)
        {
            if (!t.Trainable) continue;
            if (Momentum.TryGetValue(t.Key, out float[]? m))
            {
                if (m.Length != t.Momentum.Length)
                    throw new WeightsException($"{FilePath}: momentum of {t.Key} has {m.Length} values; the tensor has {t.Momentum.Length}");
                m.AsSpan().CopyTo(t.Momentum);
            }
            else if (State.OptimizerSteps > 0)
            {
                throw new WeightsException($"{FilePath}: has no momentum buffer {MomentumPrefix}{t.Key}");
            }
        }
        trainer.OptimizerSteps = State.OptimizerSteps;
        trainer.StepCount = State.StepCount;
    }

    private static string Int(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Text(string path, IReadOnlyDictionary<string, string> meta, string key) =>
        meta.TryGetValue(key, out string? v) ? v : throw new WeightsException($"{path}: the checkpoint's metadata lacks \"{key}\"");

    private static long Number(string path, IReadOnlyDictionary<string, string> meta, string key, long max)
    {
        string text = Text(path, meta, key);
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n > max)
            throw new WeightsException($"{path}: metadata {key} '{text}' is not a whole number in range");
        return n;
    }

    private static Dictionary<string, string> Others(IReadOnlyDictionary<string, string> meta)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (KeyValuePair<string, string> kv in meta)
            if (Array.IndexOf(Reserved, kv.Key) < 0) d[kv.Key] = kv.Value;
        return d;
    }
}

/// <summary>The checkpoint checksum: SHA-256 over every tensor's key, shape and raw bytes, in file order.</summary>
internal static class CheckpointChecksum
{
    public const string Format = "alexnet-aot-checkpoint/1";

    /// <summary>A hash to feed, when <paramref name="metadata"/> is a checkpoint's with a checksum; else null.</summary>
    public static IncrementalHash? Begin(IReadOnlyDictionary<string, string> metadata) =>
        metadata.TryGetValue("format", out string? f) && f == Format && metadata.ContainsKey("checksum")
            ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;

    public static void Append(IncrementalHash hash, string key, int[] shape, float[] data)
    {
        if (BitConverter.IsLittleEndian)
        {
            Append(hash, key, shape, MemoryMarshal.AsBytes(data.AsSpan()));
            return;
        }
        var bytes = new byte[data.Length * 4L];
        for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), data[i]);
        Append(hash, key, shape, bytes);
    }

    public static void Append(IncrementalHash hash, string key, int[] shape, ReadOnlySpan<byte> data)
    {
        hash.AppendData(Encoding.UTF8.GetBytes(key));
        Span<byte> buf = stackalloc byte[8];
        buf[0] = 0;
        hash.AppendData(buf.Slice(0, 1));
        BinaryPrimitives.WriteInt32LittleEndian(buf, shape.Length);
        hash.AppendData(buf.Slice(0, 4));
        foreach (int d in shape)
        {
            BinaryPrimitives.WriteInt64LittleEndian(buf, d);
            hash.AppendData(buf);
        }
        BinaryPrimitives.WriteInt64LittleEndian(buf, data.Length);
        hash.AppendData(buf);
        hash.AppendData(data);
    }

    public static string Hex(IncrementalHash hash) => Convert.ToHexStringLower(hash.GetHashAndReset());

    /// <summary>Throws the "checksum mismatch" <see cref="WeightsException"/> when the hash is not the metadata's.</summary>
    public static void Verify(IncrementalHash hash, IReadOnlyDictionary<string, string> metadata, string origin)
    {
        string actual = Hex(hash), expected = metadata["checksum"];
        if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
            throw new WeightsException($"{origin}: checksum mismatch: the file is corrupt or was modified (the metadata says SHA-256 {expected}, the tensors hash to {actual})");
    }
}
