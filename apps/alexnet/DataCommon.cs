using System;
using System.Collections.Generic;
using System.IO;
using AlexNet.Aot.Training;

namespace AlexNet.Aot.Cli;

/// <summary>What <c>train</c> and <c>eval</c> share: reading a data set for a model, and scoring a session on one.</summary>
internal static class DataCommon
{
    /// <summary>The word that stands for <see cref="TrainingDataset.DefaultFashionMnistFolder"/>.</summary>
    public const string FashionMnistWord = "fashion-mnist";

    /// <summary>The folder a data argument names (<c>fashion-mnist</c>: the installed Fashion-MNIST).</summary>
    public static string Folder(string path) => path == FashionMnistWord ? TrainingDataset.DefaultFashionMnistFolder : path;

    /// <summary>Whether <paramref name="folder"/> holds Fashion-MNIST style IDX files (else it is a folder of class folders).</summary>
    public static bool IsIdx(string folder)
    {
        foreach (string name in new[] { "train-images-idx3-ubyte", "t10k-images-idx3-ubyte" })
            if (File.Exists(Path.Combine(folder, name)) || File.Exists(Path.Combine(folder, name + ".gz")))
                return true;
        return false;
    }

    /// <summary>The side images of a class-folder data set are stored at: the model's input side, or 256/224 of it for
    /// inputs of 64 pixels or more and for the random crops (which need room to crop from; evaluation takes the centre).</summary>
    public static int StoredSize(ModelInfo info, AugmentKind kinds)
    {
        int side = Math.Max(info.InputShape[1], info.InputShape[2]);
        bool crops = (kinds & (AugmentKind.RandomCrop | AugmentKind.RandomResizedCrop)) != 0;
        return side >= 64 || crops ? (int)Math.Ceiling(side * 256.0 / 224.0) : side;
    }

    /// <summary>
    /// Reads the data set <paramref name="path"/> names for <paramref name="info"/>: an IDX folder's training or test set
    /// (<paramref name="trainSplit"/>), or a folder of class folders (stored at <see cref="StoredSize"/>, in the model's channels).
    /// </summary>
    public static TrainingDataset Load(string option, string path, ModelInfo info, bool trainSplit, AugmentKind kinds, bool checkClasses = true)
    {
        string folder = Folder(path);
        if (File.Exists(folder))
            throw new CliException($"{option} {path}: is a file; give a folder of Fashion-MNIST IDX files or a folder of class folders of images");
        if (!Directory.Exists(folder))
            throw new CliException($"{option} {path}: folder not found" +
                (path == FashionMnistWord ? $" (the Debian package dataset-fashion-mnist installs it in {folder})" : ""));
        TrainingDataset data = IsIdx(folder)
            ? TrainingDataset.FashionMnist(folder, trainSplit)
            : TrainingDataset.ImageFolder(folder, info.InputShape[0] == 1 ? 1 : 3, StoredSize(info, kinds));
        CheckFits(option, path, data, info, checkClasses);
        return data;
    }

    /// <summary>A failure unless the data set has the model's classes and channels.</summary>
    public static void CheckFits(string option, string path, TrainingDataset data, ModelInfo info, bool checkClasses = true)
    {
        if (checkClasses && data.Classes != info.Classes)
        {
            string[] names = data.ClassNames;
            string shown = string.Join(", ", names, 0, Math.Min(names.Length, 12)) + (names.Length > 12 ? ", ..." : "");
            throw new CliException($"{option} {path}: the data has {data.Classes} classes ({shown}); model {info.Name} has {info.Classes}");
        }
        if (data.Channels != info.InputShape[0])
            throw new CliException($"{option} {path}: the images have {data.Channels} channel(s); model {info.Name} takes {info.InputShape[0]}");
    }

    /// <summary>The first <paramref name="limit"/> images, or all when there are fewer or no limit.</summary>
    public static TrainingDataset Limit(TrainingDataset data, int? limit) =>
        limit is int n && n < data.Count ? data.Subset(0, n) : data;

    /// <summary>Runs every image of <paramref name="data"/> through <paramref name="network"/> (evaluation transform: centre crop or
    /// resize, the model's normalization) and scores the logits against the labels.</summary>
    public static EvalResult Evaluate(Network network, TrainingDataset data, Augmentation augmentation) =>
        Evaluate(network.Info, network.MaxBatch, (x, y, n) => network.Forward(x, y, n, logits: true), data, augmentation);

    /// <summary>The same through a trainer's evaluation forward (a model whose head differs from the compiled one).</summary>
    public static EvalResult Evaluate(Trainer trainer, ModelInfo info, TrainingDataset data, Augmentation augmentation) =>
        Evaluate(info, trainer.MaxBatch, (x, y, n) => trainer.Evaluate(x, n, y), data, augmentation);

    /// <summary>A forward pass: input [n, C, H, W], logits [n, classes], n images.</summary>
    public delegate void ForwardPass(ReadOnlySpan<float> input, Span<float> logits, int n);

    private static EvalResult Evaluate(ModelInfo info, int batch, ForwardPass forward, TrainingDataset data, Augmentation augmentation)
    {
        int classes = info.Classes, inLen = info.InputLength;
        int h = info.InputShape[1], w = info.InputShape[2];
        var input = new float[(long)batch * inLen];
        var labels = new int[batch];
        var logits = new float[(long)batch * classes];
        var indices = new int[batch];
        var result = new EvalResult(classes);
        for (int start = 0; start < data.Count; start += batch)
        {
            int n = Math.Min(batch, data.Count - start);
            for (int k = 0; k < n; k++) indices[k] = start + k;
            BatchSampler.FillBatch(data, indices.AsSpan(0, n), augmentation, input, labels, h, w, seed: 0, epoch: 0, train: false);
            forward(input.AsSpan(0, n * inLen), logits.AsSpan(0, n * classes), n);
            for (int k = 0; k < n; k++) result.Add(logits.AsSpan(k * classes, classes), labels[k]);
        }
        return result;
    }
}

/// <summary>Scores of logits against labels: loss, top-1 and top-5 counts, and the confusion matrix.</summary>
internal sealed class EvalResult
{
    private double _lossSum;

    public EvalResult(int classes)
    {
        Classes = classes;
        Confusion = new long[classes * classes];
    }

    /// <summary>The number of classes.</summary>
    public int Classes { get; }

    /// <summary>Images scored.</summary>
    public int Count { get; private set; }

    /// <summary>Images whose top class was the label (ties go to the lower class index).</summary>
    public int Top1 { get; private set; }

    /// <summary>Images whose label was among the top five classes.</summary>
    public int Top5 { get; private set; }

    /// <summary>[true class, predicted class] counts, row-major.</summary>
    public long[] Confusion { get; }

    /// <summary>The mean cross-entropy.</summary>
    public double Loss => Count == 0 ? double.NaN : _lossSum / Count;

    /// <summary>Top-1 accuracy in [0, 1].</summary>
    public double Top1Accuracy => Count == 0 ? double.NaN : (double)Top1 / Count;

    /// <summary>Top-5 accuracy in [0, 1].</summary>
    public double Top5Accuracy => Count == 0 ? double.NaN : (double)Top5 / Count;

    /// <summary>Scores one image's logits.</summary>
    public void Add(ReadOnlySpan<float> z, int label)
    {
        float max = float.NegativeInfinity;
        int argmax = 0;
        for (int c = 0; c < z.Length; c++)
            if (z[c] > max) { max = z[c]; argmax = c; }
        double sum = 0;
        for (int c = 0; c < z.Length; c++) sum += Math.Exp(z[c] - max);
        _lossSum += max + Math.Log(sum) - z[label];
        int above = 0;
        for (int c = 0; c < z.Length; c++)
            if (z[c] > z[label] || (z[c] == z[label] && c < label)) above++;
        if (above == 0) Top1++;
        if (above < 5) Top5++;
        Confusion[label * Classes + argmax]++;
        Count++;
    }

    /// <summary>Images of class <paramref name="c"/>, and how many of them were classified right.</summary>
    public (long Total, long Right) PerClass(int c)
    {
        long total = 0;
        for (int p = 0; p < Classes; p++) total += Confusion[c * Classes + p];
        return (total, Confusion[c * Classes + c]);
    }
}
