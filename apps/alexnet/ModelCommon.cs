using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using AlexNet.Aot.Models;

namespace AlexNet.Aot.Cli;

/// <summary>What the commands share: finding a model, loading weights, running batches.</summary>
internal static class ModelCommon
{
    /// <summary>The largest batch one session runs at once; bigger inputs go through in chunks.</summary>
    public const int ChunkImages = 64;

    /// <summary>The compiled-in model names, comma-separated.</summary>
    public static string ModelNames()
    {
        var names = new List<string>();
        foreach (ModelEntry m in ModelCatalog.All) names.Add(m.Name);
        return string.Join(", ", names);
    }

    /// <summary>The model named by <c>--model</c>; a usage error naming the known models when there is none.</summary>
    /// <summary>--conv auto|direct (default auto): how convolutions run (bench, train, soak).</summary>
    public static ConvolutionAlgorithm Convolutions(ArgReader args) => (args.Optional("--conv") ?? "auto") switch
    {
        "auto" => ConvolutionAlgorithm.Auto,
        "direct" => ConvolutionAlgorithm.Direct,
        string other => throw new UsageException($"--conv {other}: expected auto or direct"),
    };

    public static ModelEntry FindModel(string name) =>
        ModelCatalog.Find(name) ?? throw new UsageException($"--model {name}: no such model (known: {ModelNames()})");

    /// <summary>Loads a weights file (its names mapped by <paramref name="mapPath"/>, if given) and binds it to
    /// <paramref name="model"/> for up to <paramref name="maxBatch"/> images.</summary>
    public static Network Open(ModelEntry model, string weightsPath, int maxBatch, string? mapPath = null) =>
        model.Create(LoadWeights(weightsPath, model.Info, mapPath), Math.Clamp(maxBatch, 1, ChunkImages));

    /// <summary>Loads a weights file, by content, its names mapped by <paramref name="mapPath"/> when given.</summary>
    public static IWeightSource LoadWeights(string weightsPath, ModelInfo model, string? mapPath)
    {
        InputFiles.RequireFile("--weights", weightsPath);
        IWeightSource weights = WeightsFile.Load(weightsPath, model);
        if (mapPath is not null)
        {
            InputFiles.RequireFile("--map", mapPath);
            weights = KeyMap.Load(mapPath).Apply(weights, model);
        }
        return weights;
    }

    /// <summary>The checkpoint metadata key under which <c>alexnet train</c> keeps a new head's class names (one per line).</summary>
    public const string ClassNamesKey = "train.class_names";

    /// <summary>
    /// Weights trained with a new head (<c>train --reinit LAST</c> on data with another number of classes): when the
    /// last layer's weight in <paramref name="weights"/> has another number of outputs than <paramref name="info"/>,
    /// returns the model with that many (<see cref="ModelInfo.WithClasses"/>), named by the checkpoint's
    /// <see cref="ClassNamesKey"/> when it has them; else null. The compiled model cannot run such weights: the trainer's
    /// forward does.
    /// </summary>
    public static ModelInfo? NewHead(ModelInfo info, IWeightSource weights, string weightsPath)
    {
        string headKey = info.Layers[^1].Parameters.Length > 0 ? info.Layers[^1].Parameters[0].Key : "";
        if (!weights.TryGet(headKey, out LoadedTensor head) || head.Shape.Length != 2 || head.Shape[0] == info.Classes || head.Shape[0] <= 0)
            return null;
        int classes = head.Shape[0];
        string[]? names = null;
        if (weights is SafeTensorsFile file && file.Metadata.TryGetValue(ClassNamesKey, out string? text))
        {
            string[] lines = text.Split('\n');
            if (lines.Length == classes) names = lines;
        }
        try
        {
            return info.WithClasses(classes, names);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--weights {weightsPath}: {e.Message}");
        }
    }

    /// <summary>Runs <paramref name="batch"/> images through <paramref name="network"/>, in chunks of its MaxBatch.
    /// <paramref name="output"/> receives [batch, classes]: logits when <paramref name="logits"/>, else what the model ends in.</summary>
    public static void Forward(Network network, ReadOnlySpan<float> input, Span<float> output, int batch, bool logits)
    {
        int inLen = network.InputLength, classes = network.Classes;
        for (int start = 0; start < batch; start += network.MaxBatch)
        {
            int n = Math.Min(network.MaxBatch, batch - start);
            network.Forward(input.Slice(start * inLen, n * inLen), output.Slice(start * classes, n * classes), n, logits);
        }
    }

    /// <summary>The number of images in <paramref name="floats"/> floats read from <paramref name="path"/>; checks it against
    /// the model's image length and, when given, <paramref name="batch"/>.</summary>
    public static int ResolveBatch(string option, string path, long floats, ModelInfo model, int? batch)
    {
        long image = model.InputLength;
        string shape = ShapeText(model.InputShape);
        if (batch is int n)
        {
            if (floats != n * image)
                throw new CliException($"{option} {path}: has {floats} floats; --batch {n} of {shape} needs {n * image}");
            return n;
        }
        if (floats == 0 || floats % image != 0)
            throw new CliException($"{option} {path}: has {floats} floats, not a whole number of {shape} images ({image} floats each)");
        long images = floats / image;
        if (images > Network.MaxSupportedBatch)
            throw new CliException($"{option} {path}: {images} images is more than {Network.MaxSupportedBatch}");
        return (int)images;
    }

    /// <summary>Index of the <paramref name="k"/> largest values, largest first (ties: lower index first).</summary>
    public static int[] TopK(ReadOnlySpan<float> scores, int k)
    {
        k = Math.Min(k, scores.Length);
        var best = new int[k];
        int count = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            float s = scores[i];
            int pos = count;
            while (pos > 0 && s > scores[best[pos - 1]]) pos--;
            if (pos >= k) continue;
            int last = Math.Min(count, k - 1);
            for (int j = last; j > pos; j--) best[j] = best[j - 1];
            best[pos] = i;
            if (count < k) count++;
        }
        return best;
    }

    /// <summary>A shape as <c>3x224x224</c>.</summary>
    public static string ShapeText(int[] shape)
    {
        var parts = new string[shape.Length];
        for (int i = 0; i < shape.Length; i++) parts[i] = shape[i].ToString(CultureInfo.InvariantCulture);
        return string.Join("x", parts);
    }

    /// <summary>A count with thousands separators, culture-independent.</summary>
    public static string Count(long n) => n.ToString("#,0", CultureInfo.InvariantCulture);

    /// <summary>A probability or difference in a fixed, culture-independent format.</summary>
    public static string Number(double x, string format = "0.0000") => x.ToString(format, CultureInfo.InvariantCulture);
}

/// <summary>Raw little-endian float32 files and file checks with messages that name the option and the path.</summary>
internal static class InputFiles
{
    /// <summary>A usage-independent failure when <paramref name="path"/> is not an existing file.</summary>
    public static void RequireFile(string option, string path)
    {
        if (Directory.Exists(path))
            throw new CliException($"{option} {path}: is a directory, not a file");
        if (!File.Exists(path))
            throw new CliException($"{option} {path}: file not found");
    }

    /// <summary>Reads a whole .f32 file.</summary>
    public static float[] ReadF32(string option, string path)
    {
        RequireFile(option, path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        long bytes = stream.Length;
        if (bytes == 0)
            throw new CliException($"{option} {path}: the file is empty");
        if (bytes % 4 != 0)
            throw new CliException($"{option} {path}: {bytes} bytes is not a whole number of float32 values");
        if (bytes / 4 > Array.MaxLength)
            throw new CliException($"{option} {path}: {bytes} bytes is too large to read at once");
        var data = GC.AllocateUninitializedArray<float>((int)(bytes / 4));
        stream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        if (!BitConverter.IsLittleEndian) SwapBytes(data);
        if (Kernels.FirstNonFinite(data) is int bad and >= 0)
            throw new CliException($"{option} {path}: holds {data[bad].ToString(CultureInfo.InvariantCulture)} at float {bad}; inputs must be finite");
        return data;
    }

    /// <summary>Writes floats as a raw little-endian .f32 file, replacing any file there.</summary>
    public static void WriteF32(string option, string path, ReadOnlySpan<float> data)
    {
        if (Directory.Exists(path))
            throw new CliException($"{option} {path}: is a directory, not a file");
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir))
            throw new CliException($"{option} {path}: folder {dir} does not exist");
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        if (BitConverter.IsLittleEndian)
        {
            stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data));
        }
        else
        {
            float[] copy = data.ToArray();
            SwapBytes(copy);
            stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(copy.AsSpan()));
        }
    }

    private static void SwapBytes(float[] data)
    {
        Span<int> bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(data.AsSpan());
        System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(bits, bits);
    }
}
