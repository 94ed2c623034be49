using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using AlexNet.Aot.Models;
using AlexNet.Aot.Training;
using SkiaSharp;
using Xunit;

namespace AlexNet.Aot.Tests.Training;

/// <summary>One short training run of alexnet-fmnist (2 epochs of 128 Fashion-MNIST images), shared by the CLI tests.</summary>
public sealed class TrainedRun : IDisposable
{
    /// <summary>The options every training run of these tests shares (same data, batches, threads: bit-identical results).</summary>
    public static readonly string[] Common =
    {
        "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--limit", "128", "--batch", "32", "--val-limit", "64", "--threads", "2",
    };

    public TrainedRun()
    {
        Root = Path.Combine(Path.GetTempPath(), "alexnet-train-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
        Dir = Path.Combine(Root, "base");
        Result = Cli.Run(Train(Dir, "--epochs", "2"));
    }

    /// <summary>A folder for all the tests' files.</summary>
    public string Root { get; }

    /// <summary>The run's --out folder.</summary>
    public string Dir { get; }

    /// <summary>The run's result.</summary>
    internal CliResult Result { get; }

    public string Last => Path.Combine(Dir, "last.safetensors");

    /// <summary><c>train</c> with <see cref="Common"/>, --out and more arguments.</summary>
    public static string[] Train(string outDir, params string[] more) =>
        new[] { "train" }.Concat(Common).Concat(new[] { "--out", outDir }).Concat(more).ToArray();

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// <c>alexnet train</c> and <c>alexnet eval</c> end to end, as child processes (the CLI of the tests' configuration, as
/// <see cref="CliTests"/>): outputs, exact resumption, checksums, divergence and argument errors.
/// </summary>
public sealed class TrainCliTests : IClassFixture<TrainedRun>
{
    private readonly TrainedRun _run;

    public TrainCliTests(TrainedRun run) => _run = run;

    private string Temp(string name) => Path.Combine(_run.Root, name + "-" + Guid.NewGuid().ToString("N").Substring(0, 8));

    [Fact]
    public void Train_writes_checkpoints_metrics_and_plot()
    {
        AssertOk(_run.Result);
        Assert.Contains("epoch 1/2", _run.Result.Stdout);
        Assert.Contains("epoch 2/2", _run.Result.Stdout);
        Assert.Contains("val loss", _run.Result.Stdout);
        Assert.Contains("train alexnet-fmnist: 128 images", _run.Result.Stderr);
        Assert.Contains("[########################] 4/4", _run.Result.Stderr); // not a terminal: one progress line per tenth

        string[] csv = File.ReadAllLines(Path.Combine(_run.Dir, "metrics.csv"));
        Assert.Equal(MetricsCsv.Header, csv[0]);
        List<EpochMetrics> rows = MetricsCsv.Read(Path.Combine(_run.Dir, "metrics.csv"));
        Assert.Equal(new[] { 1, 2 }, rows.Select(r => r.Epoch));
        Assert.All(rows, r =>
        {
            Assert.Equal(0.02, r.LearningRate, 12);
            Assert.True(double.IsFinite(r.TrainLoss) && double.IsFinite(r.ValidationLoss));
            Assert.InRange(r.ValidationAccuracy, 0, 1);
            Assert.True(r.ImagesPerSecond > 0);
        });

        byte[] png = File.ReadAllBytes(Path.Combine(_run.Dir, "metrics.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png.Take(4));

        foreach (string name in new[] { "last.safetensors", "best.safetensors" })
        {
            var file = SafeTensorsFile.Load(Path.Combine(_run.Dir, name));
            Assert.Equal(TrainingCheckpoint.Format, file.Metadata["format"]);
            Assert.Equal("alexnet-fmnist", file.Metadata["model"]);
            Assert.Equal("0", file.Metadata["batch_in_epoch"]);
            Assert.Contains("conv1.weight", file.Keys);
            Assert.Contains(TrainingCheckpoint.MomentumPrefix + "fc8.weight", file.Keys);
        }
        var last = SafeTensorsFile.Load(_run.Last);
        Assert.Equal("2", last.Metadata["epoch"]);
        Assert.Equal("8", last.Metadata["step_count"]);
        Assert.Equal("8", last.Metadata["optimizer_steps"]);
    }

    [Fact]
    public void Eval_json_has_the_keys_and_counts_the_limit()
    {
        AssertOk(_run.Result);
        CliResult r = Cli.Run("eval", "--model", "alexnet-fmnist", "--weights", _run.Last, "--data", "fashion-mnist", "--limit", "100", "--json", "--threads", "2");
        AssertOk(r);
        using JsonDocument doc = JsonDocument.Parse(r.Stdout);
        JsonElement root = doc.RootElement;
        foreach (string key in new[] { "model", "count", "top1_accuracy", "top5_accuracy", "top1_error", "top5_error", "confusion", "classes" })
            Assert.True(root.TryGetProperty(key, out _), $"no key {key} in {r.Stdout}");
        Assert.Equal("alexnet-fmnist", root.GetProperty("model").GetString());
        Assert.Equal(100, root.GetProperty("count").GetInt32());
        Assert.Equal(1.0, root.GetProperty("top1_accuracy").GetDouble() + root.GetProperty("top1_error").GetDouble(), 12);
        Assert.True(root.GetProperty("top5_accuracy").GetDouble() >= root.GetProperty("top1_accuracy").GetDouble());
        Assert.Equal(TrainingDataset.FashionMnistClassNames, root.GetProperty("classes").EnumerateArray().Select(e => e.GetString()));
        int[][] confusion = root.GetProperty("confusion").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        Assert.Equal(10, confusion.Length);
        Assert.All(confusion, row => Assert.Equal(10, row.Length));
        Assert.Equal(100, confusion.Sum(row => row.Sum()));
        Assert.Equal(root.GetProperty("top1_accuracy").GetDouble() * 100, Enumerable.Range(0, 10).Sum(i => confusion[i][i]), 9);

        // The text report, on the training split.
        CliResult text = Cli.Run("eval", "--model", "alexnet-fmnist", "--weights", _run.Last, "--data", "fashion-mnist", "--split", "train", "--limit", "50");
        AssertOk(text);
        Assert.Contains("images        50", text.Stdout);
        Assert.Contains("top-5", text.Stdout);
        Assert.Contains("Ankle boot", text.Stdout);
        Assert.Contains("confusion (rows: true class", text.Stdout);
    }

    [Fact]
    public void Eval_finds_bundled_weights_through_the_environment()
    {
        AssertOk(_run.Result);
        string dir = Temp("bundle");
        Directory.CreateDirectory(dir);
        File.Copy(_run.Last, Path.Combine(dir, "alexnet-fmnist.safetensors"));
        CliResult r = Cli.RunWith(new Dictionary<string, string> { ["ALEXNET_WEIGHTS_DIR"] = dir },
            "eval", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--limit", "20", "--json");
        AssertOk(r);
        using JsonDocument doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(20, doc.RootElement.GetProperty("count").GetInt32());
    }

    [Fact]
    public void Resume_after_an_epoch_or_mid_epoch_gives_bit_identical_weights()
    {
        AssertOk(_run.Result);
        // One epoch, then a resume to two.
        string byEpoch = Temp("by-epoch");
        AssertOk(Cli.Run(TrainedRun.Train(byEpoch, "--epochs", "1", "--quiet")));
        AssertOk(Cli.Run(TrainedRun.Train(byEpoch, "--epochs", "2", "--resume", "--quiet")));
        AssertSameTensors(_run.Last, Path.Combine(byEpoch, "last.safetensors"));

        // Stopped after 3 of the 4 batches of epoch 1 (a mid-epoch checkpoint), resumed from the file by name.
        string midEpoch = Temp("mid-epoch");
        CliResult stop = Cli.Run(TrainedRun.Train(midEpoch, "--epochs", "2", "--stop-after", "3", "--quiet"));
        AssertOk(stop);
        Assert.Contains("stopped after 3 batch(es) at epoch 1, batch 4 of 4", stop.Stdout);
        var partial = SafeTensorsFile.Load(Path.Combine(midEpoch, "last.safetensors"));
        Assert.Equal(("0", "3", "3"), (partial.Metadata["epoch"], partial.Metadata["batch_in_epoch"], partial.Metadata["step_count"]));
        AssertOk(Cli.Run(TrainedRun.Train(midEpoch, "--resume", Path.Combine(midEpoch, "last.safetensors"), "--quiet")));
        AssertSameTensors(_run.Last, Path.Combine(midEpoch, "last.safetensors"));

        // Mid-epoch checkpoints every 2 batches, stopped inside epoch 2: the metrics match the straight run's too.
        string every = Temp("every");
        AssertOk(Cli.Run(TrainedRun.Train(every, "--epochs", "2", "--checkpoint-every", "2", "--stop-after", "5", "--quiet")));
        Assert.Equal(("1", "1"), (SafeTensorsFile.Load(Path.Combine(every, "last.safetensors")).Metadata["epoch"],
            SafeTensorsFile.Load(Path.Combine(every, "last.safetensors")).Metadata["batch_in_epoch"]));
        AssertOk(Cli.Run(TrainedRun.Train(every, "--resume", "--quiet")));
        AssertSameTensors(_run.Last, Path.Combine(every, "last.safetensors"));
        List<EpochMetrics> straight = MetricsCsv.Read(Path.Combine(_run.Dir, "metrics.csv"));
        List<EpochMetrics> resumed = MetricsCsv.Read(Path.Combine(every, "metrics.csv"));
        Assert.Equal(straight.Select(m => (m.Epoch, m.TrainLoss, m.TrainAccuracy, m.ValidationLoss, m.ValidationAccuracy)),
            resumed.Select(m => (m.Epoch, m.TrainLoss, m.TrainAccuracy, m.ValidationLoss, m.ValidationAccuracy)));

        // Nothing left to do.
        CliResult done = Cli.Run(TrainedRun.Train(every, "--resume", "--quiet"));
        AssertOk(done);
        Assert.Contains("nothing to do", done.Stdout);
    }

    [Fact]
    public void A_checkpoint_with_one_flipped_byte_is_refused_everywhere()
    {
        AssertOk(_run.Result);
        string dir = Temp("corrupt");
        Directory.CreateDirectory(dir);
        string bad = Path.Combine(dir, "last.safetensors");
        File.Copy(_run.Last, bad);
        FlipTensorByte(bad, 1000);

        CliResult resume = Cli.Run(TrainedRun.Train(dir, "--epochs", "3", "--resume", bad, "--quiet"));
        AssertFailure(resume, 1, "checksum mismatch: the file is corrupt or was modified");
        Assert.Contains(bad, resume.Stderr);

        string input = Path.Combine(dir, "x.f32");
        File.WriteAllBytes(input, new byte[4 * 28 * 28]);
        AssertFailure(Cli.Run("run", "--model", "alexnet-fmnist", "--weights", bad, "--input", input, "--output", Path.Combine(dir, "y.f32")),
            1, "checksum mismatch");
        AssertFailure(Cli.Run("eval", "--model", "alexnet-fmnist", "--weights", bad, "--data", "fashion-mnist", "--limit", "10"),
            1, "checksum mismatch");

        // The intact checkpoint is a weights file for run.
        AssertOk(Cli.Run("run", "--model", "alexnet-fmnist", "--weights", _run.Last, "--input", input, "--output", Path.Combine(dir, "y.f32")));
        Assert.Equal(40, new FileInfo(Path.Combine(dir, "y.f32")).Length);
    }

    [Fact]
    public void A_diverging_loss_stops_at_once_and_keeps_the_last_good_checkpoint()
    {
        AssertOk(_run.Result);
        string dir = Temp("diverge");
        Directory.CreateDirectory(dir);
        string last = Path.Combine(dir, "last.safetensors");
        File.Copy(_run.Last, last);
        File.Copy(Path.Combine(_run.Dir, "metrics.csv"), Path.Combine(dir, "metrics.csv"));
        byte[] before = File.ReadAllBytes(last);

        CliResult r = Cli.Run(TrainedRun.Train(dir, "--epochs", "3", "--resume", "--lr", "1e30", "--quiet"));
        AssertFailure(r, 1, "training diverged at epoch 3, batch");
        Assert.Contains("still holds the last good checkpoint", r.Stderr);
        Assert.Equal(before, File.ReadAllBytes(last));
        Assert.False(File.Exists(Path.Combine(dir, "best.safetensors")));
        Assert.Equal(2, MetricsCsv.Read(Path.Combine(dir, "metrics.csv")).Count);
    }

    [Fact]
    public void An_image_folder_trains_with_a_seeded_validation_split()
    {
        string root = Temp("images");
        for (int c = 0; c < 10; c++)
        {
            string dir = Path.Combine(root, "class" + c);
            Directory.CreateDirectory(dir);
            for (int i = 0; i < 3; i++)
                File.WriteAllBytes(Path.Combine(dir, $"{i}.png"), Png(28, 28, (x, y) => (byte)((x * (c + 1) + y * (i + 2)) % 256)));
        }
        string outDir = Temp("images-out");
        CliResult r = Cli.Run("train", "--model", "alexnet-fmnist", "--data", root, "--epochs", "1", "--batch", "8", "--threads", "2", "--out", outDir, "--profile");
        AssertOk(r);
        // --profile: per-operation times, and which convolutions trained by Winograd (none in alexnet-fmnist: too narrow).
        Assert.Contains("no Winograd layers)", r.Stdout);
        Assert.Contains("conv2.conv", r.Stdout);
        // The operations that run generated training kernels are marked (every one but flatten and softmax here).
        Assert.Contains("kernels: generated for", r.Stdout);
        // ReLU, LRN and max-pool after a convolution run as one chain, a block of images at a time: one row.
        Assert.Matches(@"conv1\.relu\+lrn\+maxpool +backward .*generated by image block", r.Stdout);
        // A convolution's and a dense layer's products are generated (the convolution's forward gathers its own column
        // panels; its backward gathers the column matrix and scatters its gradient), and their bias gradients.
        Assert.Matches(@"conv2\.conv +forward .*  generated product\r?\n", r.Stdout);
        Assert.Matches(@"conv2\.conv +backward .*  generated products, gather, scatter, bias gradient", r.Stdout);
        Assert.Matches(@"conv1\.conv +backward .*  generated product, gather, bias gradient", r.Stdout); // no dx below the first layer
        Assert.Matches(@"fc6\.dense +forward .*  generated product\r?\n", r.Stdout);
        Assert.Matches(@"fc6\.dense +backward .*  generated products, bias gradient", r.Stdout);
        Assert.Matches(@"loss +softmax cross-entropy .*  generated\r?\n", r.Stdout);
        Assert.Contains("27 images of " + root, r.Stderr);
        Assert.Contains("validation: 3 images", r.Stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "last.safetensors")));

        CliResult eval = Cli.Run("eval", "--model", "alexnet-fmnist", "--weights", Path.Combine(outDir, "last.safetensors"), "--data", root, "--json");
        AssertOk(eval);
        using JsonDocument doc = JsonDocument.Parse(eval.Stdout);
        Assert.Equal(30, doc.RootElement.GetProperty("count").GetInt32());
        Assert.Equal("class0", doc.RootElement.GetProperty("classes")[0].GetString());
    }

    [Fact]
    public void Transfer_learning_starts_from_pretrained_weights_with_a_new_head_and_frozen_convolutions()
    {
        // tv-mini's PyTorch weights as the "pretrained" network; a new fc8 for the folder's 10 classes; conv1-5 frozen.
        string root = Temp("transfer");
        for (int c = 0; c < 10; c++)
        {
            string dir = Path.Combine(root, "class" + c);
            Directory.CreateDirectory(dir);
            for (int i = 0; i < 2; i++)
                File.WriteAllBytes(Path.Combine(dir, $"{i}.png"), Png(40, 32, (x, y) => (byte)((x * (c + 3) + y * (i + 1)) % 256)));
        }
        string pretrained = Fixtures.Path("tv-mini", "tv-mini.pth");
        string outDir = Temp("transfer-out");
        CliResult r = Cli.Run("train", "--model", "tv-mini", "--data", root, "--weights", pretrained, "--reinit", "fc8", "--freeze", "convs",
            "--epochs", "1", "--batch", "6", "--val-split", "0", "--augment", "hflip", "--threads", "2", "--out", outDir, "--profile");
        AssertOk(r);
        Assert.Contains("Winograd: conv4)", r.Stdout); // tv-mini's 72 -> 48 channel 13x13 layer; frozen, so dX only
        Assert.Contains("from weights " + pretrained + ", reinitialized fc8", r.Stderr);
        Assert.Contains("frozen conv1,conv2,conv3,conv4,conv5", r.Stderr);

        var before = SafeTensorsFile.Load(Fixtures.Path("tv-mini", "tv-mini.safetensors"));
        var after = SafeTensorsFile.Load(Path.Combine(outDir, "last.safetensors"));
        foreach (string key in new[] { "features.0.weight", "features.3.bias", "features.10.weight" })
        {
            before.TryGet(key, out LoadedTensor b);
            after.TryGet(key, out LoadedTensor a);
            Assert.Equal(b.Data, a.Data); // frozen: bit-identical
        }
        before.TryGet("classifier.1.weight", out LoadedTensor fc6Before);
        after.TryGet("classifier.1.weight", out LoadedTensor fc6After);
        Assert.NotEqual(fc6Before.Data, fc6After.Data); // trained from the pretrained values
        before.TryGet("classifier.6.weight", out LoadedTensor headBefore);
        after.TryGet("classifier.6.weight", out LoadedTensor headAfter);
        double diff = 0;
        for (int i = 0; i < headBefore.Data.Length; i++) diff = Math.Max(diff, Math.Abs(headBefore.Data[i] - headAfter.Data[i]));
        Assert.True(diff > 1e-2, "the new head should start from a fresh initialization, not the pretrained one");
    }

    [Fact]
    public void A_new_head_for_another_number_of_classes_trains_resumes_and_evaluates()
    {
        string root = Temp("newhead");
        for (int c = 0; c < 4; c++)
        {
            string dir = Path.Combine(root, "kind" + c);
            Directory.CreateDirectory(dir);
            for (int i = 0; i < 3; i++)
                File.WriteAllBytes(Path.Combine(dir, $"{i}.png"), Png(36, 30, (x, y) => (byte)((x * (c + 2) + y * (i + 3)) % 256)));
        }
        string pretrained = Fixtures.Path("tv-mini", "tv-mini.safetensors");
        string outDir = Temp("newhead-out");

        // Without --reinit fc8 the class count is a clear error that says what to do.
        AssertFailure(Cli.Run("train", "--model", "tv-mini", "--data", root, "--weights", pretrained, "--out", outDir), 1,
            "the data has 4 classes (kind0, kind1, kind2, kind3); model tv-mini has 10 (add --reinit fc8 to train a new fc8 for 4 classes)");

        AssertOk(Cli.Run("train", "--model", "tv-mini", "--data", root, "--weights", pretrained, "--reinit", "fc8", "--epochs", "1",
            "--batch", "4", "--val-split", "0", "--threads", "2", "--out", outDir, "--quiet"));
        var ckpt = SafeTensorsFile.Load(Path.Combine(outDir, "last.safetensors"));
        Assert.True(ckpt.TryGet("classifier.6.weight", out LoadedTensor head));
        Assert.Equal(new[] { 4, 64 }, head.Shape);
        AssertOk(Cli.Run("train", "--model", "tv-mini", "--data", root, "--resume", "--epochs", "2", "--out", outDir, "--quiet"));

        CliResult eval = Cli.Run("eval", "--model", "tv-mini", "--weights", Path.Combine(outDir, "last.safetensors"), "--data", root, "--json");
        AssertOk(eval);
        using JsonDocument doc = JsonDocument.Parse(eval.Stdout);
        Assert.Equal(12, doc.RootElement.GetProperty("count").GetInt32());
        Assert.Equal(4, doc.RootElement.GetProperty("classes").GetArrayLength());
        Assert.Equal(4, doc.RootElement.GetProperty("confusion").GetArrayLength());

        // classify runs the new head too (through the trainer's forward) and names the classes as the data did.
        Assert.Equal("kind0\nkind1\nkind2\nkind3", SafeTensorsFile.Load(Path.Combine(outDir, "last.safetensors")).Metadata["train.class_names"]);
        CliResult classify = Cli.Run("classify", "--model", "tv-mini", "--weights", Path.Combine(outDir, "last.safetensors"), "--json", "--top", "4",
            Path.Combine(root, "kind1", "0.png"), Path.Combine(root, "kind3", "2.png"));
        AssertOk(classify);
        using JsonDocument top = JsonDocument.Parse(classify.Stdout);
        Assert.Equal(2, top.RootElement.GetArrayLength());
        foreach (JsonElement image in top.RootElement.EnumerateArray())
        {
            var labels = new List<string>();
            double total = 0;
            foreach (JsonElement t in image.GetProperty("top").EnumerateArray())
            {
                labels.Add(t.GetProperty("label").GetString()!);
                total += t.GetProperty("probability").GetDouble();
            }
            Assert.Equal(new[] { "kind0", "kind1", "kind2", "kind3" }, labels.OrderBy(l => l).ToArray());
            Assert.InRange(total, 0.999, 1.001); // a softmax over the 4 new classes
        }
    }

    [Fact]
    public void Wrong_arguments_are_one_clear_line_and_exit_code_2()
    {
        string outDir = Temp("usage");
        (string Expected, string[] Args)[] cases =
        {
            ("--model no-such-net: no such model", new[] { "train", "--model", "no-such-net", "--data", "fashion-mnist" }),
            ("--data is required", new[] { "train", "--model", "alexnet-fmnist" }),
            ("--batch 0 is out of range", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--batch", "0", "--out", outDir }),
            ("unknown augmentation 'sparkle'", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--augment", "pad-crop,sparkle", "--out", outDir }),
            ("--freeze: model alexnet-fmnist has no layer 'conv9'", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--freeze", "conv1,conv9", "--out", outDir }),
            ("--reinit: model alexnet-fmnist has no layer 'fc9'", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--reinit", "fc9", "--out", outDir }),
            ("schedule 'sometimes' is not known", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--schedule", "sometimes", "--out", outDir }),
            ("--lr '-1' is not a positive number", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--lr", "-1", "--out", outDir }),
            ("--init 'zeros' is not he, paper or xavier", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--init", "zeros", "--out", outDir }),
            ("--kernels 'fast' is not generated or reference", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--kernels", "fast", "--out", outDir }),
            ("not both", new[] { "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--resume", "--weights", "w.safetensors", "--out", outDir }),
            ("--model no-such-net: no such model", new[] { "eval", "--model", "no-such-net", "--data", "fashion-mnist" }),
            ("--split 'both' is not test or train", new[] { "eval", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--split", "both" }),
        };
        foreach ((string expected, string[] args) in cases)
            AssertFailure(Cli.Run(args), 2, expected);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Data_that_does_not_fit_is_one_clear_line_and_exit_code_1()
    {
        string missing = Temp("no-such-data");
        AssertFailure(Cli.Run("train", "--model", "alexnet-fmnist", "--data", missing), 1, $"--data {missing}: folder not found");
        AssertFailure(Cli.Run("eval", "--model", "alexnet-fmnist", "--weights", "x", "--data", missing), 1, "--weights x: file not found");

        string three = Temp("three-classes");
        foreach (string c in new[] { "cat", "dog", "emu" })
        {
            Directory.CreateDirectory(Path.Combine(three, c));
            File.WriteAllBytes(Path.Combine(three, c, "a.png"), Png(28, 28, (x, y) => (byte)(x + y)));
            File.WriteAllBytes(Path.Combine(three, c, "b.png"), Png(28, 28, (x, y) => (byte)(x * y)));
        }
        CliResult r = Cli.Run("train", "--model", "alexnet-fmnist", "--data", three, "--out", Temp("three-out"));
        AssertFailure(r, 1, $"--data {three}: the data has 3 classes (cat, dog, emu); model alexnet-fmnist has 10");

        string noRun = Temp("no-run");
        AssertFailure(Cli.Run("train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--resume", "--out", noRun), 1,
            Path.Combine(noRun, "last.safetensors") + ": file not found");
    }

    [Fact]
    public void Help_lists_train_and_eval()
    {
        CliResult r = Cli.Run("--help");
        AssertOk(r);
        Assert.Contains("alexnet train --model NAME --data PATH", r.Stdout);
        Assert.Contains("alexnet eval --model NAME [--weights FILE] --data PATH", r.Stdout);
        CliResult train = Cli.Run("train", "--help");
        AssertOk(train);
        foreach (string option in new[] { "--resume [FILE]", "--checkpoint-every N", "--freeze LAYERS", "--val-split N", "--augment LIST|none" })
            Assert.Contains(option, train.Stdout);
    }

    // ---- helpers ----

    /// <summary>Every tensor of <paramref name="expected"/> (weights, running statistics, momentum) bit for bit in <paramref name="actual"/>.</summary>
    internal static void AssertSameTensors(string expected, string actual)
    {
        var a = SafeTensorsFile.Load(expected);
        var b = SafeTensorsFile.Load(actual);
        Assert.Equal(a.Keys, b.Keys);
        foreach (string key in a.Keys)
        {
            a.TryGet(key, out LoadedTensor ta);
            b.TryGet(key, out LoadedTensor tb);
            int[] bitsA = ta.Data.Select(BitConverter.SingleToInt32Bits).ToArray();
            int[] bitsB = tb.Data.Select(BitConverter.SingleToInt32Bits).ToArray();
            Assert.True(bitsA.SequenceEqual(bitsB), $"{key} differs between {expected} and {actual}");
        }
        foreach (string meta in new[] { "epoch", "batch_in_epoch", "step_count", "optimizer_steps", "lr", "schedule" })
            Assert.Equal(a.Metadata[meta], b.Metadata[meta]);
    }

    /// <summary>Flips every bit of the byte <paramref name="offset"/> bytes into the tensor data of a safetensors file.</summary>
    internal static void FlipTensorByte(string path, int offset)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long header = BitConverter.ToInt64(bytes, 0);
        bytes[8 + header + offset] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
    }

    private static byte[] Png(int width, int height, Func<int, int, byte> gray)
    {
        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                byte v = gray(x, y);
                bitmap.SetPixel(x, y, new SKColor(v, v, v));
            }
        using SKData data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static void AssertOk(CliResult r) =>
        Assert.True(r.ExitCode == 0, $"exit code {r.ExitCode}\nstdout:\n{r.Stdout}\nstderr:\n{r.Stderr}");

    private static void AssertFailure(CliResult r, int exitCode, string expected)
    {
        Assert.True(r.ExitCode == exitCode, $"exit code {r.ExitCode}, expected {exitCode} ('{expected}')\nstdout:\n{r.Stdout}\nstderr:\n{r.Stderr}");
        Assert.Contains(expected, r.Stderr);
        Assert.StartsWith("alexnet: ", r.Stderr);
        Assert.DoesNotContain("Exception", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}

/// <summary>The learning-rate schedules against PyTorch's semantics.</summary>
public sealed class LearningRateScheduleTests
{
    private static double[] Rates(LearningRateSchedule s, int epochs) => Enumerable.Range(0, epochs).Select(s.LearningRate).ToArray();

    private static void Near(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-15, $"epoch {i}: expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void Multistep_from_the_fmnist_recipe_is_MultiStepLR()
    {
        ModelInfo model = ModelCatalog.Find("alexnet-fmnist")!.Info;
        LearningRateSchedule s = LearningRateSchedule.FromRecipe(model.Recipe);
        Assert.Equal("multistep", s.Kind);
        Assert.Equal(new[] { 8, 11 }, s.Milestones);
        double[] expected = Enumerable.Repeat(1.0, 8).Concat(Enumerable.Repeat(0.1, 3)).Concat(new[] { 0.01 }).Select(f => 0.02 * f).ToArray();
        Near(expected, Rates(s, 12));
        Assert.Equal("multistep lr=0.02 milestones=8,11 gamma=0.1", s.ToString());

        // Overrides win over the recipe.
        LearningRateSchedule o = LearningRateSchedule.FromRecipe(model.Recipe, learningRate: 0.1, milestones: new[] { 2 }, gamma: 0.5);
        Near(new[] { 0.1, 0.1, 0.05, 0.05 }, Rates(o, 4));
        Assert.Equal("constant", LearningRateSchedule.FromRecipe(model.Recipe, kind: "constant").Kind);
        Near(new[] { 0.02, 0.02, 0.02 }, Rates(LearningRateSchedule.FromRecipe(model.Recipe, kind: "constant"), 3));
    }

    [Fact]
    public void Step_is_StepLR_and_milestones_without_a_step_size_step_there()
    {
        var s = new LearningRateSchedule("step", 1.0, gamma: 0.5, stepSize: 3);
        Near(new[] { 1, 1, 1, 0.5, 0.5, 0.5, 0.25 }, Rates(s, 7));
        // alexnet-bn's recipe: schedule=step milestones=30,60.
        LearningRateSchedule bn = LearningRateSchedule.FromRecipe(ModelCatalog.Find("alexnet-bn")!.Info.Recipe);
        Assert.Equal(0.05, bn.LearningRate(29), 15);
        Assert.Equal(0.005, bn.LearningRate(30), 15);
        Assert.Equal(0.0005, bn.LearningRate(60), 15);
        // An explicit step size makes it StepLR again.
        LearningRateSchedule every10 = LearningRateSchedule.FromRecipe(ModelCatalog.Find("alexnet-bn")!.Info.Recipe, stepSize: 10);
        Assert.Equal(0.005, every10.LearningRate(10), 15);
    }

    [Fact]
    public void Plateau_is_ReduceLROnPlateau_and_its_state_round_trips()
    {
        var s = new LearningRateSchedule("plateau", 0.01, gamma: 0.1, patience: 2);
        // errors: improving, then flat; bad epochs counted with the relative threshold 1e-4.
        double[] errors = { 0.5, 0.4, 0.4, 0.39999, 0.4, 0.3, 0.3, 0.3, 0.3 };
        var rates = new List<double>();
        for (int e = 0; e < errors.Length; e++)
        {
            rates.Add(s.LearningRate(e));
            s.Observe(e, errors[e]);
        }
        // e=2,3,4 are bad (0.39999 is not below 0.4·(1-1e-4)); after the third the rate drops; e=5 improves; e=6,7,8 bad.
        Near(new[] { 0.01, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001 }, rates.ToArray());
        Assert.Equal(0.0001, s.LearningRate(9), 15);
        Assert.Equal(0.3, s.Best);
        Assert.Equal(0, s.BadEpochs);

        string state = s.SaveState();
        var t = new LearningRateSchedule("plateau", 0.01, gamma: 0.1, patience: 2);
        t.RestoreState(state);
        Assert.Equal(state, t.SaveState());
        Assert.Equal(s.LearningRate(9), t.LearningRate(9));
        // An epoch already observed is not counted twice.
        t.Observe(8, 0.9);
        Assert.Equal(state, t.SaveState());
        Assert.Throws<FormatException>(() => t.RestoreState("lr=x;best=1;bad=0;last=0"));
        Assert.Equal("lr=0.01;best=Infinity;bad=0;last=-1", new LearningRateSchedule("plateau", 0.01).SaveState());
    }

    [Fact]
    public void Cosine_is_CosineAnnealingLR_stepped_per_epoch()
    {
        var s = LearningRateSchedule.FromRecipe(new[] { "lr=0.1", "schedule=cosine" }, epochs: 12);
        Assert.Equal(0.1, s.LearningRate(0), 12);
        Assert.Equal(0.05, s.LearningRate(6), 12);
        Assert.Equal(0.1 * 0.5 * (1 + Math.Cos(Math.PI * 11 / 12)), s.LearningRate(11), 12);
        Assert.Equal(0.0, s.LearningRate(12), 12);
        Assert.Equal("cosine lr=0.1 epochs=12", s.ToString());
    }

    [Fact]
    public void Bad_settings_are_refused_with_their_names()
    {
        Assert.Contains("schedule 'onecycle' is not known", Assert.Throws<ArgumentException>(() => new LearningRateSchedule("onecycle", 0.1)).Message);
        Assert.Contains("multistep needs milestones", Assert.Throws<ArgumentException>(() => new LearningRateSchedule("multistep", 0.1)).Message);
        Assert.Contains("not a positive", Assert.Throws<ArgumentException>(() => new LearningRateSchedule("constant", 0)).Message);
        Assert.Contains("'x' is not a whole number", Assert.Throws<ArgumentException>(() => LearningRateSchedule.ParseMilestones("3,x")).Message);
    }
}

/// <summary>Checkpoints: a round trip that resumes bit for bit, and refusal of corrupt or foreign files.</summary>
public sealed class TrainingCheckpointTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "alexnet-ckpt-" + Guid.NewGuid().ToString("N"));

    public TrainingCheckpointTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static (float[] Input, int[] Labels) Batch(ModelInfo model, int batch, int salt)
    {
        var input = new float[batch * model.InputLength];
        for (int i = 0; i < input.Length; i++) input[i] = ((i * 31 + salt * 17) % 97) / 97f - 0.5f;
        int[] labels = Enumerable.Range(0, batch).Select(i => (i + salt) % model.Classes).ToArray();
        return (input, labels);
    }

    [Fact]
    public void Round_trip_restores_the_trainer_exactly()
    {
        ModelInfo model = ModelCatalog.Find("alexnet-fmnist")!.Info;
        var options = new TrainerOptions { MaxBatch = 4, Threads = 2, Seed = 7 };
        using var a = new Trainer(model, null, options) { LearningRate = 0.05f };
        for (int s = 0; s < 2; s++)
        {
            (float[] x, int[] y) = Batch(model, 4, s);
            a.Step(x, y, 4);
        }
        string path = Path.Combine(_dir, "ckpt.safetensors");
        var properties = new Dictionary<string, string> { ["train.note"] = "hello" };
        TrainingCheckpoint.Save(path, a, new TrainingState { Epoch = 3, BatchInEpoch = 5, LearningRate = 0.05, Schedule = "lr=0.05;best=Infinity;bad=0;last=2", Seed = 7, Properties = properties });
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));

        TrainingCheckpoint c = TrainingCheckpoint.Load(path, model);
        Assert.Equal((3, 5, 2L, 2L, 0.05, 7UL), (c.State.Epoch, c.State.BatchInEpoch, c.State.StepCount, c.State.OptimizerSteps, c.State.LearningRate, c.State.Seed));
        Assert.Equal("lr=0.05;best=Infinity;bad=0;last=2", c.State.Schedule);
        Assert.Equal("hello", c.State.Properties["train.note"]);
        Assert.Equal("alexnet-fmnist", c.ModelName);
        Assert.DoesNotContain(c.Weights.Keys, k => k.StartsWith(TrainingCheckpoint.MomentumPrefix, StringComparison.Ordinal));

        using var b = new Trainer(model, c.Weights, options) { LearningRate = 0.05f };
        c.Restore(b);
        Assert.Equal((a.StepCount, a.OptimizerSteps), (b.StepCount, b.OptimizerSteps));
        (float[] x2, int[] y2) = Batch(model, 4, 9);
        Assert.Equal(a.Step(x2, y2, 4), b.Step(x2, y2, 4));
        for (int i = 0; i < a.Tensors.Count; i++)
        {
            Assert.Equal(a.Tensors[i].Value, b.Tensors[i].Value);
            Assert.Equal(a.Tensors[i].Momentum, b.Tensors[i].Momentum);
        }

        // It is a weights file too.
        using Network net = ModelCatalog.Find("alexnet-fmnist")!.Create(WeightsFile.Load(path, model), maxBatch: 1, threads: 1);
        Assert.Equal(10, net.Classes);
    }

    [Fact]
    public void Corrupt_foreign_and_plain_files_are_refused()
    {
        ModelInfo model = ModelCatalog.Find("alexnet-fmnist")!.Info;
        using var trainer = new Trainer(model, null, new TrainerOptions { MaxBatch = 2, Threads = 1 });
        string path = Path.Combine(_dir, "a.safetensors");
        TrainingCheckpoint.Save(path, trainer, new TrainingState { Epoch = 1, LearningRate = 0.1, Seed = 1 });

        Assert.Equal($"{path}: is a checkpoint of model alexnet-fmnist, not tv-mini",
            Assert.Throws<WeightsException>(() => TrainingCheckpoint.Load(path, ModelCatalog.Find("tv-mini")!.Info)).Message);

        string bad = Path.Combine(_dir, "bad.safetensors");
        File.Copy(path, bad);
        TrainCliTests.FlipTensorByte(bad, 12345);
        WeightsException e = Assert.Throws<WeightsException>(() => TrainingCheckpoint.Load(bad, model));
        Assert.StartsWith($"{bad}: checksum mismatch: the file is corrupt or was modified", e.Message);
        Assert.Contains("checksum mismatch", Assert.Throws<WeightsException>(() => SafeTensorsFile.Load(bad)).Message);
        Assert.Contains("checksum mismatch", Assert.Throws<WeightsException>(() => SafeTensorsFile.Parse(File.ReadAllBytes(bad), bad)).Message);

        string plain = Path.Combine(_dir, "plain.safetensors");
        SafeTensorsFile.Write(plain, trainer.Tensors.Select(t => (t.Key, t.Shape, t.Value)));
        Assert.Contains("not a training checkpoint", Assert.Throws<WeightsException>(() => TrainingCheckpoint.Load(plain, model)).Message);
        Assert.Throws<ArgumentException>(() => TrainingCheckpoint.Save(path, trainer,
            new TrainingState { Properties = new Dictionary<string, string> { ["checksum"] = "0" } }));
    }
}
