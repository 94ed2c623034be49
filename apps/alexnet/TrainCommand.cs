using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Text;
using AlexNet.Aot.Training;

namespace AlexNet.Aot.Cli;

/// <summary>
/// <c>alexnet train</c>: SGD training of a compiled model on Fashion-MNIST or a folder of class folders, with the spec's
/// recipe as defaults; a checkpoint after every epoch (and every N batches), the best one by validation accuracy,
/// metrics.csv and metrics.png; <c>--resume</c> continues a run exactly where its checkpoint left it.
/// </summary>
internal static class TrainCommand
{
    private const string Prefix = "train.";

    public static readonly CommandSpec Spec = new(
        Name: "train",
        Synopsis: "train --model NAME --data PATH [--epochs N] [--batch N] [--lr X] [--out DIR] [--resume [FILE]] [--weights FILE] [OPTIONS]",
        Summary: "Train a model (SGD, the spec's recipe) on Fashion-MNIST or a folder of class folders; checkpoints and metrics.",
        Details:
            "  --model NAME          a compiled-in model (alexnet info lists them)\n" +
            "  --data PATH           a folder of Fashion-MNIST IDX files ('fashion-mnist': " + TrainingDataset.DefaultFashionMnistFolder + "),\n" +
            "                        or a folder with one sub-folder of images per class (sorted names are the classes)\n" +
            "Defaults come from the spec's train recipe (alexnet info --model NAME), then from a resumed checkpoint's\n" +
            "settings, then these:\n" +
            "  --epochs N            epochs to train in all (default 10)\n" +
            "  --batch N             images per step (default 64; a last partial batch is used)\n" +
            "  --lr X                base learning rate (default 0.01)\n" +
            "  --momentum X          SGD momentum (default 0.9)\n" +
            "  --weight-decay X      L2 weight decay (default 5e-4)\n" +
            "  --schedule NAME       constant | step (--step-size, --gamma) | multistep (--milestones, --gamma) | cosine |\n" +
            "                        plateau (divide by 1/gamma when the validation error stops improving for --patience epochs)\n" +
            "  --milestones A,B      multistep: epochs (from 0) at which the rate is multiplied by gamma\n" +
            "  --gamma X             the factor of each reduction (default 0.1)\n" +
            "  --step-size N         step: epochs between reductions (default 30)\n" +
            "  --patience N          plateau: epochs without improvement before a reduction (default 10)\n" +
            "  --seed N              shuffles, augmentation, dropout masks and initialization (default 1)\n" +
            "  --threads N           threads (default: one per processor; a resumed run keeps its checkpoint's)\n" +
            "  --init NAME           he | paper | xavier: initialization of what --weights does not supply (default he)\n" +
            "  --augment LIST|none   pad-crop, random-crop, random-resized-crop, hflip, pca-color (comma list)\n" +
            "  --no-dropout          train without dropout\n" +
            "  --out DIR             output folder (default runs/MODEL): last.safetensors (after every epoch), best.safetensors\n" +
            "                        (best validation accuracy), metrics.csv, metrics.png; checkpoints are also weights files\n" +
            "  --checkpoint-every N  also write last.safetensors every N batches (default 0: only after each epoch)\n" +
            "  --resume [FILE]       continue exactly from a checkpoint (default DIR/last.safetensors): same epoch, batch,\n" +
            "                        shuffles, dropout masks and momentum\n" +
            "  --stop-after N        stop after N batches of this run, writing last.safetensors (resume later)\n" +
            "  --weights FILE        start from these weights (transfer learning; any weights format)\n" +
            "  --reinit LAYERS       comma list of layers initialized fresh even when --weights has them (e.g. fc8);\n" +
            "                        reinitializing the last layer on data with another number of classes gives it\n" +
            "                        that many outputs (a new head, named by the data's classes; eval and classify take the checkpoint)\n" +
            "  --freeze LAYERS       comma list of layers not updated; 'convs': every convolution\n" +
            "  --limit N             train on the first N training images only\n" +
            "  --val-data PATH       validation set (default: Fashion-MNIST's t10k test set, or 10% of an image folder)\n" +
            "  --val-split N         validate on N images split off the training data (seeded; 0: no validation)\n" +
            "  --val-limit N         validate on the first N validation images only\n" +
            "  --quiet               no progress bar\n" +
            "  --profile             at the end, print each operation's forward and backward time per step\n" +
            "  --conv auto|direct    auto (default): stride-1 3x3 and 5x5 convolutions with enough channels train by\n" +
            "                        Winograd; direct: every convolution as a direct product\n" +
            "  --kernels generated|reference  generated (default): the training kernels the generator emitted for the\n" +
            "                        model; reference: the trainer's own operations (to compare results or times)\n" +
            "A loss that becomes NaN or infinite stops training at once (exit code 1); the last good checkpoint is kept.\n",
        ValueOptions: new[]
        {
            "--model", "--data", "--epochs", "--batch", "--lr", "--momentum", "--weight-decay", "--schedule", "--milestones", "--gamma",
            "--step-size", "--patience", "--seed", "--threads", "--init", "--augment", "--out", "--checkpoint-every", "--stop-after",
            "--weights", "--reinit", "--freeze", "--limit", "--val-data", "--val-split", "--val-limit", "--conv",
            "--kernels",
        },
        Flags: new[] { "--no-dropout", "--quiet", "--profile" },
        AllowsPositionals: false,
        Run: Run,
        OptionalValues: new[] { "--resume" });

    private static int Run(ArgReader args)
    {
        ModelEntry model = ModelCommon.FindModel(args.Required("--model"));
        ModelInfo info = model.Info;
        string dataPath = args.Required("--data");
        string outDir = args.Optional("--out") ?? Path.Combine("runs", model.Name);
        string lastPath = Path.Combine(outDir, "last.safetensors");
        string bestPath = Path.Combine(outDir, "best.safetensors");
        string csvPath = Path.Combine(outDir, "metrics.csv");
        string pngPath = Path.Combine(outDir, "metrics.png");
        bool quiet = args.Flag("--quiet");
        string? weightsPath = args.Optional("--weights");
        bool resume = args.Has("--resume");
        if (resume && weightsPath is not null)
            throw new UsageException("train: give --resume (continue a run) or --weights (start from weights), not both");
        if (resume && args.Optional("--reinit") is not null)
            throw new UsageException("train: --reinit applies to a fresh start, not to --resume");
        int checkpointEvery = args.OptionalInt("--checkpoint-every", 0, int.MaxValue) ?? 0;
        int? stopAfter = args.OptionalInt("--stop-after", 1, int.MaxValue);
        string[] reinit = Layers(info, "--reinit", args.Optional("--reinit"), allowConvs: false);

        // The checkpoint first: its settings are the defaults of a resumed run.
        TrainingCheckpoint? checkpoint = null;
        if (resume)
        {
            string value = args.Optional("--resume")!;
            string from = value.Length == 0 ? lastPath : value;
            if (!File.Exists(from))
                throw new CliException($"--resume {from}: file not found" + (value.Length == 0 ? " (no run to continue in " + outDir + ")" : ""));
            checkpoint = TrainingCheckpoint.Load(from, info);
        }
        IReadOnlyDictionary<string, string> saved = checkpoint?.State.Properties ?? new Dictionary<string, string>();
        Dictionary<string, string> recipe = Recipe(info);
        string? Get(string option, string key) =>
            args.Optional(option) ?? (saved.TryGetValue(Prefix + key, out string? v) && v.Length > 0 ? v : null);
        string? FromRecipe(string key) => recipe.TryGetValue(key, out string? v) ? v : null;

        if (FromRecipe("optimizer") is string optimizer && optimizer != "sgd")
            throw new CliException($"model {info.Name}: its recipe asks for optimizer={optimizer}; the trainer implements sgd only");
        if (FromRecipe("loss") is string lossName && lossName != "cross-entropy")
            throw new CliException($"model {info.Name}: its recipe asks for loss={lossName}; the trainer implements cross-entropy only");

        int epochs = Int("--epochs", Get("--epochs", "epochs") ?? FromRecipe("epochs") ?? "10", 1, 1_000_000);
        int batch = Int("--batch", Get("--batch", "batch") ?? FromRecipe("batch") ?? "64", 1, Network.MaxSupportedBatch);
        double lr = Real("--lr", Get("--lr", "lr") ?? FromRecipe("lr") ?? "0.01", positive: true);
        double momentum = Real("--momentum", Get("--momentum", "momentum") ?? FromRecipe("momentum") ?? "0.9", positive: false);
        double weightDecay = Real("--weight-decay", Get("--weight-decay", "weight_decay") ?? FromRecipe("weight_decay") ?? "5e-4", positive: false);
        ulong seed = ulong.TryParse(Get("--seed", "seed") ?? FromRecipe("seed") ?? "1", NumberStyles.None, CultureInfo.InvariantCulture, out ulong s)
            ? s : throw new UsageException($"train: --seed '{args.Optional("--seed")}' is not a whole number");
        int threads = Int("--threads", Get("--threads", "threads") ?? "0", 0, 256);
        ConvolutionAlgorithm conv = ModelCommon.Convolutions(args);
        string kernels = args.Optional("--kernels") ?? "generated";
        if (kernels is not ("generated" or "reference"))
            throw new UsageException($"train: --kernels '{kernels}' is not generated or reference");
        bool referenceOps = kernels == "reference";
        string init = Get("--init", "init") ?? FromRecipe("init") ?? "he";
        if (init is not ("he" or "paper" or "xavier"))
            throw new UsageException($"train: --init '{init}' is not he, paper or xavier");
        bool dropout = !args.Flag("--no-dropout") && !(saved.TryGetValue(Prefix + "dropout", out string? d) && d == "false") && FromRecipe("dropout") != "off";
        string[] freeze = Layers(info, "--freeze", Get("--freeze", "freeze"), allowConvs: true);
        int? limit = OptionalInt("--limit", Get("--limit", "limit"), 1);
        string? valData = Get("--val-data", "val_data");
        int? valSplit = OptionalInt("--val-split", Get("--val-split", "val_split"), 0);
        int? valLimit = OptionalInt("--val-limit", Get("--val-limit", "val_limit"), 1);
        if (valData is not null && args.Optional("--val-split") is not null)
            throw new UsageException("train: give --val-data or --val-split, not both");

        LearningRateSchedule schedule;
        try
        {
            string? milestones = Get("--milestones", "milestones");
            string? gamma = Get("--gamma", "gamma"), stepSize = Get("--step-size", "step_size"), patience = Get("--patience", "patience");
            schedule = LearningRateSchedule.FromRecipe(info.Recipe, Get("--schedule", "schedule"), lr,
                gamma is null ? null : Real("--gamma", gamma, positive: true),
                stepSize is null ? null : Int("--step-size", stepSize, 1, int.MaxValue),
                milestones is null ? null : LearningRateSchedule.ParseMilestones(milestones),
                patience is null ? null : Int("--patience", patience, 0, int.MaxValue), epochs);
        }
        catch (ArgumentException e)
        {
            throw new UsageException("train: " + Clean(e));
        }

        string augmentText = Get("--augment", "augment") ?? FromRecipe("augment") ?? "none";
        Augmentation augmentation;
        try
        {
            AugmentKind kinds = augmentText == "none" ? AugmentKind.None : Augmentation.ParseKinds(augmentText);
            int pad = FromRecipe("pad") is string p ? Int("pad", p, 0, Augmentation.MaxPad) : Augmentation.DefaultPad;
            augmentation = new Augmentation(kinds, pad, info.Mean, info.Std);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"train: --augment {augmentText}: {Clean(e).Replace("augment: ", "")}");
        }

        // The data.
        TrainingDataset train = DataCommon.Load("--data", dataPath, info, trainSplit: true, augmentation.Kinds, checkClasses: false);
        // A data set with another number of classes trains a new last layer (transfer learning): asked for with
        // --reinit LAST on a fresh start, remembered by the checkpoint on --resume. Validation then runs through the
        // trainer's own forward, since the compiled model has the old number of outputs.
        bool newHead = false;
        if (train.Classes != info.Classes)
        {
            string last = info.Layers[^1].Name;
            bool asked = Array.IndexOf(reinit, last) >= 0 ||
                (saved.TryGetValue(Prefix + "classes", out string? savedClasses) && savedClasses == Text(train.Classes));
            if (!asked)
            {
                string[] names = train.ClassNames;
                throw new CliException($"--data {dataPath}: the data has {train.Classes} classes ({string.Join(", ", names, 0, Math.Min(names.Length, 12))}{(names.Length > 12 ? ", ..." : "")}); " +
                    $"model {info.Name} has {info.Classes} (add --reinit {last} to train a new {last} for {train.Classes} classes)");
            }
            try
            {
                info = info.WithClasses(train.Classes, train.ClassNames);
            }
            catch (ArgumentException e)
            {
                throw new CliException($"--data {dataPath}: {e.Message}");
            }
            newHead = true;
        }
        TrainingDataset? validation = null;
        if (valData is not null)
        {
            validation = DataCommon.Load("--val-data", valData, info, trainSplit: false, augmentation.Kinds);
        }
        else if (valSplit is int n)
        {
            if (n >= train.Count)
                throw new UsageException($"train: --val-split {n} leaves no training images ({dataPath} has {train.Count})");
            if (n > 0) train = train.Split(n, seed, out validation);
        }
        else if (DataCommon.IsIdx(DataCommon.Folder(dataPath)))
        {
            validation = DataCommon.Load("--data", dataPath, info, trainSplit: false, augmentation.Kinds);
        }
        else
        {
            int tenth = (int)Math.Round(train.Count * 0.1);
            if (tenth >= 1 && tenth < train.Count)
            {
                valSplit = tenth;
                train = train.Split(tenth, seed, out validation);
            }
        }
        train = DataCommon.Limit(train, limit);
        if (validation is not null) validation = validation.Count == 0 ? null : DataCommon.Limit(validation, valLimit);
        int inLen = info.InputLength, height = info.InputShape[1], width = info.InputShape[2];
        CheckAugmentation(augmentation, train, info, seed, dataPath);

        int startEpoch = checkpoint?.State.Epoch ?? 0, startBatch = checkpoint?.State.BatchInEpoch ?? 0;
        if (checkpoint is not null && startBatch > 0)
        {
            // A mid-epoch position only means the same thing for the same batches.
            if (saved.TryGetValue(Prefix + "batch", out string? b) && b != batch.ToString(CultureInfo.InvariantCulture))
                throw new UsageException($"train: {checkpoint.FilePath} stopped in the middle of an epoch with --batch {b}; resume with the same --batch");
            if (saved.TryGetValue(Prefix + "count", out string? c) && c != train.Count.ToString(CultureInfo.InvariantCulture))
                throw new CliException($"{checkpoint.FilePath}: stopped in the middle of an epoch over {c} training images; the data now has {train.Count} (same --data and --limit needed)");
        }
        if (startEpoch >= epochs)
        {
            Console.Out.WriteLine($"{checkpoint!.FilePath}: already trained {startEpoch} epoch(s) of {epochs}; nothing to do (raise --epochs to go on)");
            return ExitCodes.Ok;
        }

        // The trainer.
        IWeightSource? initial = checkpoint?.Weights;
        if (weightsPath is not null)
        {
            InputFiles.RequireFile("--weights", weightsPath);
            initial = WeightsFile.Load(weightsPath, info);
        }
        using var trainer = new Trainer(info, initial, new TrainerOptions
        {
            MaxBatch = Math.Min(batch, train.Count),
            Threads = threads,
            Seed = seed,
            Init = init,
            Dropout = dropout,
            Reinitialize = reinit,
            Freeze = freeze,
            Convolutions = conv,
            ReferenceOps = referenceOps,
        });
        checkpoint?.Restore(trainer);
        trainer.Profiling = args.Flag("--profile");
        trainer.Momentum = (float)momentum;
        trainer.WeightDecay = (float)weightDecay;
        if (checkpoint is not null && checkpoint.State.Schedule.Length > 0)
        {
            try
            {
                schedule.RestoreState(checkpoint.State.Schedule);
            }
            catch (FormatException e)
            {
                throw new CliException($"{checkpoint.FilePath}: {e.Message}");
            }
        }

        try
        {
            Directory.CreateDirectory(outDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"--out {outDir}: cannot create the folder: {e.Message}");
        }
        // A run killed while writing leaves its temporary files (.NAME.GUID.tmp, never taken for the files): remove them.
        int staleFiles = 0;
        foreach (string path in new[] { lastPath, bestPath, csvPath, pngPath })
            staleFiles += AtomicFile.RemoveStaleTemporaries(path);
        var rows = new List<EpochMetrics>();
        if (checkpoint is not null && File.Exists(csvPath))
        {
            try
            {
                foreach (EpochMetrics r in MetricsCsv.Read(csvPath))
                    if (r.Epoch <= startEpoch) rows.Add(r);
            }
            catch (DatasetException e)
            {
                Console.Error.WriteLine($"alexnet: warning: {e.Message}; starting a new metrics file");
            }
        }

        var settings = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [Prefix + "epochs"] = Text(epochs),
            [Prefix + "batch"] = Text(batch),
            [Prefix + "lr"] = Text(lr),
            [Prefix + "momentum"] = Text(momentum),
            [Prefix + "weight_decay"] = Text(weightDecay),
            [Prefix + "schedule"] = schedule.Kind,
            [Prefix + "milestones"] = string.Join(",", schedule.Milestones),
            [Prefix + "gamma"] = Text(schedule.Gamma),
            [Prefix + "step_size"] = Text(schedule.StepSize),
            [Prefix + "patience"] = Text(schedule.Patience),
            [Prefix + "seed"] = seed.ToString(CultureInfo.InvariantCulture),
            [Prefix + "threads"] = Text(trainer.Threads),
            [Prefix + "init"] = init,
            [Prefix + "augment"] = augmentation.Kinds == AugmentKind.None ? "none" : augmentText,
            [Prefix + "dropout"] = dropout ? "true" : "false",
            [Prefix + "freeze"] = string.Join(",", freeze),
            [Prefix + "limit"] = limit is int l ? Text(l) : "",
            [Prefix + "val_data"] = valData ?? "",
            [Prefix + "val_split"] = valSplit is int vs ? Text(vs) : "",
            [Prefix + "val_limit"] = valLimit is int vl ? Text(vl) : "",
            [Prefix + "data"] = dataPath,
            [Prefix + "count"] = Text(train.Count),
            [Prefix + "classes"] = Text(info.Classes),
        };
        if (schedule.Kind != "step" || schedule.Milestones.Count > 0) settings.Remove(Prefix + "step_size");
        // A new head's class names (the data's), for classify and eval to print.
        if (newHead && info.Labels.Length == info.Classes) settings[ModelCommon.ClassNamesKey] = string.Join("\n", info.Labels);

        double best = double.NegativeInfinity;
        int bestEpoch = 0;
        if (saved.TryGetValue(Prefix + "best_accuracy", out string? bestText) &&
            double.TryParse(bestText, NumberStyles.Float, CultureInfo.InvariantCulture, out double bestValue))
        {
            best = bestValue;
            _ = int.TryParse(saved.TryGetValue(Prefix + "best_epoch", out string? be) ? be : "0", NumberStyles.None, CultureInfo.InvariantCulture, out bestEpoch);
        }

        if (!quiet)
        {
            var sb = new StringBuilder();
            sb.Append("train ").Append(info.Name).Append(": ").Append(ModelCommon.Count(train.Count)).Append(" images of ").Append(train.Origin).Append('\n');
            sb.Append("  validation: ").Append(validation is null ? "none" : ModelCommon.Count(validation.Count) + " images of " + validation.Origin).Append('\n');
            sb.Append("  ").Append(epochs).Append(" epochs, batch ").Append(batch).Append(", ").Append(schedule)
              .Append(", momentum ").Append(Text(momentum)).Append(", weight decay ").Append(Text(weightDecay)).Append('\n');
            sb.Append("  augment ").Append(augmentation).Append(", init ").Append(init).Append(dropout ? "" : ", no dropout")
              .Append(freeze.Length > 0 ? ", frozen " + string.Join(",", freeze) : "").Append(", seed ").Append(seed)
              .Append(", ").Append(trainer.Threads).Append(" thread(s)\n");
            if (checkpoint is not null)
                sb.Append("  resuming ").Append(checkpoint.FilePath).Append(" at epoch ").Append(startEpoch + 1).Append(", batch ").Append(startBatch + 1).Append('\n');
            else if (weightsPath is not null)
                sb.Append("  from weights ").Append(weightsPath).Append(reinit.Length > 0 ? ", reinitialized " + string.Join(",", reinit) : "").Append('\n');
            sb.Append("  output ").Append(outDir);
            if (staleFiles > 0) sb.Append(" (removed ").Append(staleFiles).Append(" temporary file(s) of an interrupted write)");
            sb.Append('\n');
            Console.Error.Write(sb.ToString());
        }

        var order = new int[train.Count];
        var input = new float[(long)trainer.MaxBatch * inLen];
        var labels = new int[trainer.MaxBatch];
        var progress = new Progress(quiet);
        int stepsThisRun = 0;
        int batches = (train.Count + batch - 1) / batch;

        for (int epoch = startEpoch; epoch < epochs; epoch++)
        {
            double rate = schedule.LearningRate(epoch);
            trainer.LearningRate = (float)rate;
            BatchSampler.Shuffle(order, seed, epoch);
            int first = epoch == startEpoch ? startBatch : 0;
            double lossSum = 0, secondsBefore = 0;
            long correct = 0, seen = 0;
            if (first > 0)
            {
                lossSum = Saved(saved, "epoch_loss_sum");
                correct = (long)Saved(saved, "epoch_correct");
                seen = (long)Saved(saved, "epoch_seen");
                secondsBefore = Saved(saved, "epoch_seconds");
            }
            long seenThisRun = 0;
            var clock = Stopwatch.StartNew();
            progress.Start(epoch + 1, epochs, batches);

            TrainingState State(int epochDone, int batchDone, double nextRate)
            {
                var props = new Dictionary<string, string>(settings, StringComparer.Ordinal);
                if (double.IsFinite(best))
                {
                    props[Prefix + "best_accuracy"] = Text(best);
                    props[Prefix + "best_epoch"] = Text(bestEpoch);
                }
                if (batchDone > 0)
                {
                    props[Prefix + "epoch_loss_sum"] = Text(lossSum);
                    props[Prefix + "epoch_correct"] = Text(correct);
                    props[Prefix + "epoch_seen"] = Text(seen);
                    props[Prefix + "epoch_seconds"] = Text(secondsBefore + clock.Elapsed.TotalSeconds);
                }
                return new TrainingState
                {
                    Epoch = epochDone, BatchInEpoch = batchDone, LearningRate = nextRate, Schedule = schedule.SaveState(), Seed = seed, Properties = props,
                };
            }

            for (int b = first; b < batches; b++)
            {
                if (stopAfter is int stop && stepsThisRun >= stop)
                {
                    progress.End();
                    if (b > 0)
                    {
                        RequireFinite(trainer, epoch, b, batches, lastPath);
                        TrainingCheckpoint.Save(lastPath, trainer, State(epoch, b, rate));
                    }
                    Console.Out.WriteLine($"stopped after {stepsThisRun} batch(es) at epoch {epoch + 1}, batch {b + 1} of {batches}: {lastPath} (continue with --resume)");
                    PrintProfile(trainer, batch);
                    return ExitCodes.Ok;
                }
                int n = Math.Min(batch, train.Count - b * batch);
                BatchSampler.FillBatch(train, order.AsSpan(b * batch, n), augmentation, input, labels, height, width, seed, epoch, train: true);
                float loss = trainer.Step(input.AsSpan(0, n * inLen), labels.AsSpan(0, n), n);
                stepsThisRun++;
                if (!float.IsFinite(loss))
                {
                    progress.End();
                    throw Diverged($"the loss is {Text(loss)}", epoch, b, batches, rate, lastPath);
                }
                lossSum += (double)loss * n;
                correct += trainer.LastCorrect;
                seen += n;
                seenThisRun += n;
                progress.Update(b + 1, lossSum / seen, (double)correct / seen, seenThisRun / Math.Max(clock.Elapsed.TotalSeconds, 1e-9));
                if (checkpointEvery > 0 && (b + 1) % checkpointEvery == 0 && b + 1 < batches)
                {
                    RequireFinite(trainer, epoch, b, batches, lastPath);
                    TrainingCheckpoint.Save(lastPath, trainer, State(epoch, b + 1, rate));
                }
            }
            progress.End();
            RequireFinite(trainer, epoch, batches - 1, batches, lastPath);
            double trainSeconds = clock.Elapsed.TotalSeconds;

            EvalResult? val = null;
            if (validation is not null)
            {
                int evalBatch = Math.Min(Math.Min(batch, ModelCommon.ChunkImages * 4), validation.Count);
                if (newHead)
                {
                    val = DataCommon.Evaluate(trainer, info, validation, augmentation);
                }
                else
                {
                    using Network network = model.Create(trainer.AsWeightSource(), new NetworkOptions { MaxBatch = evalBatch, Threads = trainer.Threads });
                    val = DataCommon.Evaluate(network, validation, augmentation);
                }
            }
            double trainLoss = lossSum / Math.Max(seen, 1), trainAccuracy = (double)correct / Math.Max(seen, 1);
            schedule.Observe(epoch, val is null ? 1 - trainAccuracy : 1 - val.Top1Accuracy);
            double seconds = secondsBefore + clock.Elapsed.TotalSeconds;
            var row = new EpochMetrics(epoch + 1, rate, trainLoss, trainAccuracy, val?.Loss ?? double.NaN, val?.Top1Accuracy ?? double.NaN,
                seconds, seenThisRun / Math.Max(trainSeconds, 1e-9));
            rows.RemoveAll(r => r.Epoch >= epoch + 1);
            rows.Add(row);
            MetricsCsv.Write(csvPath, rows);
            MetricsPlot.WritePng(pngPath, rows);

            double score = val?.Top1Accuracy ?? trainAccuracy;
            bool improved = score > best;
            if (improved)
            {
                best = score;
                bestEpoch = epoch + 1;
            }
            TrainingState state = State(epoch + 1, 0, schedule.LearningRate(epoch + 1));
            if (improved) TrainingCheckpoint.Save(bestPath, trainer, state);
            TrainingCheckpoint.Save(lastPath, trainer, state);

            var line = new StringBuilder();
            line.Append("epoch ").Append(epoch + 1).Append('/').Append(epochs)
                .Append("  lr ").Append(Text(rate))
                .Append("  train loss ").Append(ModelCommon.Number(trainLoss)).Append(" acc ").Append(Percent(trainAccuracy));
            if (val is not null)
                line.Append("  val loss ").Append(ModelCommon.Number(val.Loss)).Append(" acc ").Append(Percent(val.Top1Accuracy))
                    .Append(" top-5 ").Append(Percent(val.Top5Accuracy));
            line.Append("  ").Append(ModelCommon.Number(seconds, "0.0")).Append(" s  ")
                .Append(ModelCommon.Number(row.ImagesPerSecond, "0")).Append(" img/s");
            if (improved) line.Append("  *best");
            Console.Out.WriteLine(line.ToString());
            Console.Out.Flush();
        }

        Console.Out.WriteLine($"done: {epochs} epoch(s); best {(validation is null ? "training" : "validation")} accuracy {Percent(best)} (epoch {bestEpoch}); {outDir}");
        PrintProfile(trainer, batch);
        return ExitCodes.Ok;
    }

    /// <summary>With --profile: each operation's forward and backward milliseconds per step, and its share of the step.</summary>
    private static void PrintProfile(Trainer trainer, int batch)
    {
        if (!trainer.Profiling) return;
        var rows = trainer.GetProfile();
        double total = 0;
        foreach (var r in rows) total += r.Milliseconds;
        if (total <= 0) return;
        Console.Out.WriteLine($"profile: {ModelCommon.Number(total, "0.0")} ms per step of up to {batch} images ({trainer.Threads} thread(s), {Trainer.KernelPath}; " +
            (trainer.WinogradLayers.Count == 0 ? "no Winograd layers)" : "Winograd: " + string.Join(", ", trainer.WinogradLayers) + ")"));
        Console.Out.WriteLine(trainer.GeneratedOperations.Count == 0 ? "kernels: the trainer's reference operations"
            : $"kernels: generated for {trainer.GeneratedOperations.Count} operations (marked), the reference's for the rest");
        var generated = new HashSet<string>(trainer.GeneratedOperations, StringComparer.Ordinal);
        Console.Out.WriteLine("OPERATION          PASS                       MS   SHARE  KERNELS");
        foreach (var (op, pass, ms) in rows)
        {
            // A convolution's or dense layer's products, a direct convolution's column gather and scatter and the bias
            // gradients are generated; a Winograd convolution's tile transforms run in the runtime.
            // A chain of generated image-by-image operations (conv1.relu+lrn+maxpool) runs a block of images at a time, one row.
            string? parts = op.Contains('+') ? "by image block" : generated.Contains(op) ? trainer.GeneratedParts(op, pass == "backward") : null;
            string mark = parts is null ? "" : parts.Length == 0 ? "  generated" : "  generated " + parts;
            Console.Out.WriteLine($"{op,-18} {pass,-22} {ModelCommon.Number(ms, "0.00"),8} {ModelCommon.Number(100 * ms / total, "0.0"),6}%{mark}");
        }
    }

    /// <summary>The divergence error, once no checkpoint is written (the last good one stays).</summary>
    private static CliException Diverged(string what, int epoch, int b, int batches, double rate, string lastPath) =>
        new($"training diverged at epoch {epoch + 1}, batch {b + 1} of {batches}: {what} (learning rate {Text(rate)}); stopped without saving; " +
            (File.Exists(lastPath) ? $"{lastPath} still holds the last good checkpoint" : "no checkpoint had been written") +
            " (try a smaller --lr)");

    /// <summary>Refuses to checkpoint parameters that are no longer finite.</summary>
    private static void RequireFinite(Trainer trainer, int epoch, int b, int batches, string lastPath)
    {
        foreach (TrainableTensor t in trainer.Tensors)
            foreach (float v in t.Value)
                if (!float.IsFinite(v))
                    throw Diverged($"{t.Key} holds {Text(v)}", epoch, b, batches, trainer.LearningRate, lastPath);
    }

    /// <summary>Checks that the augmentation accepts the data's images for the model's input, with a clear error otherwise.</summary>
    private static void CheckAugmentation(Augmentation augmentation, TrainingDataset data, ModelInfo info, ulong seed, string dataPath)
    {
        if (data.Count == 0) throw new CliException($"--data {dataPath}: no training images");
        var probe = new float[info.InputLength];
        try
        {
            augmentation.Apply(data.Image(0), data.Channels, data.Height, data.Width, probe, info.InputShape[1], info.InputShape[2], seed, 0, 0, train: true);
            augmentation.Apply(data.Image(0), data.Channels, data.Height, data.Width, probe, info.InputShape[1], info.InputShape[2], seed, 0, 0, train: false);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--data {dataPath}: its {data.Channels}x{data.Height}x{data.Width} images cannot become {ModelCommon.ShapeText(info.InputShape)} input with augment {augmentation}: {Clean(e)}");
        }
    }

    /// <summary>The layers a comma list names (for --freeze, 'convs' adds every convolution); a usage error for an unknown one.</summary>
    private static string[] Layers(ModelInfo info, string option, string? list, bool allowConvs)
    {
        var result = new List<string>();
        if (string.IsNullOrWhiteSpace(list)) return result.ToArray();
        var names = new List<string>();
        foreach (LayerInfo l in info.Layers) names.Add(l.Name);
        foreach (string raw in list.Split(','))
        {
            string name = raw.Trim();
            if (allowConvs && name == "convs")
            {
                foreach (LayerInfo l in info.Layers)
                    if (l.Kind == "conv" && !result.Contains(l.Name)) result.Add(l.Name);
                continue;
            }
            if (!names.Contains(name))
                throw new UsageException($"train: {option}: model {info.Name} has no layer '{name}' (layers: {string.Join(", ", names)}{(allowConvs ? "; or convs" : "")})");
            if (!result.Contains(name)) result.Add(name);
        }
        return result.ToArray();
    }

    private static Dictionary<string, string> Recipe(ModelInfo info)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string entry in info.Recipe)
        {
            int eq = entry.IndexOf('=');
            if (eq > 0) d[entry.Substring(0, eq).Trim()] = entry.Substring(eq + 1).Trim();
        }
        return d;
    }

    private static int Int(string option, string text, int min, int max)
    {
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
            throw new UsageException($"train: {option} '{text}' is not a whole number");
        if (value < min || value > max)
            throw new UsageException($"train: {option} {value} is out of range ({min} to {max})");
        return value;
    }

    private static int? OptionalInt(string option, string? text, int min) => text is null ? null : Int(option, text, min, int.MaxValue);

    private static double Real(string option, string text, bool positive)
    {
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value) ||
            (positive ? value <= 0 : value < 0))
            throw new UsageException($"train: {option} '{text}' is not a {(positive ? "positive" : "non-negative")} number");
        return value;
    }

    private static double Saved(IReadOnlyDictionary<string, string> saved, string key) =>
        saved.TryGetValue(Prefix + key, out string? v) && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) ? x : 0;

    private static string Text(double x) => x.ToString("R", CultureInfo.InvariantCulture);

    private static string Text(long x) => x.ToString(CultureInfo.InvariantCulture);

    private static string Percent(double x) => double.IsFinite(x) ? ModelCommon.Number(100 * x, "0.00") + "%" : "-";

    private static string Clean(ArgumentException e) => e.Message.Split(" (Parameter", 2)[0];

    /// <summary>The progress bar on stderr: redrawn in place on a terminal, one line per tenth of the epoch otherwise.</summary>
    private sealed class Progress
    {
        private const int BarWidth = 24;
        private readonly bool _quiet;
        private readonly bool _terminal = !Console.IsErrorRedirected;
        private readonly Stopwatch _sinceDraw = new();
        private int _epoch, _epochs, _batches, _lastTenth;
        private bool _drawn;

        public Progress(bool quiet) => _quiet = quiet;

        public void Start(int epoch, int epochs, int batches)
        {
            _epoch = epoch;
            _epochs = epochs;
            _batches = batches;
            _lastTenth = -1;
            _drawn = false;
            _sinceDraw.Restart();
        }

        public void Update(int done, double loss, double accuracy, double imagesPerSecond)
        {
            if (_quiet) return;
            if (_terminal)
            {
                if (done < _batches && _drawn && _sinceDraw.ElapsedMilliseconds < 200) return;
                _sinceDraw.Restart();
                Console.Error.Write("\r" + Line(done, loss, accuracy, imagesPerSecond) + "\u001b[K");
                _drawn = true;
            }
            else
            {
                int tenth = (int)(10L * done / _batches);
                if (tenth <= _lastTenth || tenth == 0) return;
                _lastTenth = tenth;
                Console.Error.WriteLine(Line(done, loss, accuracy, imagesPerSecond));
            }
        }

        public void End()
        {
            if (_quiet || !_terminal || !_drawn) return;
            Console.Error.WriteLine();
            _drawn = false;
        }

        private string Line(int done, double loss, double accuracy, double imagesPerSecond)
        {
            int filled = (int)((long)BarWidth * done / _batches);
            return $"epoch {_epoch}/{_epochs} [{new string('#', filled)}{new string('.', BarWidth - filled)}] {done}/{_batches}" +
                   $"  loss {ModelCommon.Number(loss)}  acc {Percent(accuracy)}  {ModelCommon.Number(imagesPerSecond, "0")} img/s";
        }
    }
}
