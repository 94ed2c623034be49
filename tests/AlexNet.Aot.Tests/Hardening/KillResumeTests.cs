using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using AlexNet.Aot.Models;
using AlexNet.Aot.Training;
using SkiaSharp;
using Xunit;
using Xunit.Abstractions;

namespace AlexNet.Aot.Tests.Hardening;

/// <summary>
/// Crash safety of <c>alexnet train</c>: a short run (alexnet-fmnist, 96 Fashion-MNIST images, batch 8, a checkpoint every
/// 2 batches, 3 epochs) is killed with SIGKILL (<see cref="Process.Kill()"/>, as <c>kill -9</c>) at 20 seeded random
/// moments: during start-up, in the middle of a step, while a checkpoint, the metrics or the plot is being written, and
/// anywhere. After every kill each file of the output folder is absent or whole (checkpoints load and pass their
/// checksum, the CSV parses, the PNG decodes) and anything else is an atomic write's temporary file, which the next run
/// removes; the next run resumes from the last checkpoint's position. The run then finishes, and its checkpoints are
/// byte-identical to those of an uninterrupted run. Environment: ALEXNET_KILL_TEST_KILLS, _EPOCHS, _LIMIT, _SEED and
/// _REPORT (a Markdown file for the table of kills) make the longer version of scripts/kill-test.sh.
/// </summary>
public sealed class KillResumeTests : IDisposable
{
    private static readonly Regex TemporaryName = new(@"^\.(last\.safetensors|best\.safetensors|metrics\.csv|metrics\.png)\.[0-9a-f]{32}\.tmp$");
    private static readonly Regex Resuming = new(@"resuming (.+) at epoch (\d+), batch (\d+)");
    private static readonly string[] Outputs = { "last.safetensors", "best.safetensors", "metrics.csv", "metrics.png" };

    private readonly ITestOutputHelper _output;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "alexnet-kill-" + Guid.NewGuid().ToString("N"));

    public KillResumeTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_root);
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private enum Moment
    {
        /// <summary>A random delay within the reference run's start-up (before its first batch is done).</summary>
        Startup,
        /// <summary>After the N-th progress line (a tenth of an epoch), plus a few milliseconds: inside a step.</summary>
        MidStep,
        /// <summary>As the temporary file of an atomic write of a given output appears (inotify): during the write of a
        /// checkpoint (last, at a --checkpoint-every point or an epoch's end; best), the metrics CSV or the plot.</summary>
        Write,
        /// <summary>A random delay within the reference run's whole duration.</summary>
        Anywhere,
    }

    private sealed record Kill(int Index, Moment Moment, string Plan, double AtMs, bool Resumed, string StartedAt, string After, int Temporaries, string Note);

    [Fact]
    public void Training_killed_at_random_moments_resumes_from_its_last_checkpoint_to_bit_identical_weights()
    {
        int kills = Env("ALEXNET_KILL_TEST_KILLS", 20);
        int epochs = Env("ALEXNET_KILL_TEST_EPOCHS", 3);
        int limit = Env("ALEXNET_KILL_TEST_LIMIT", 96);
        int seed = Env("ALEXNET_KILL_TEST_SEED", 20261126);
        string[] common =
        {
            "train", "--model", "alexnet-fmnist", "--data", "fashion-mnist", "--limit", Text(limit), "--batch", "8", "--val-limit", "32",
            "--threads", "2", "--epochs", Text(epochs), "--checkpoint-every", "2", "--seed", "3",
        };
        ModelInfo info = ModelCatalog.Find("alexnet-fmnist")!.Info;
        long totalSteps = (long)epochs * ((limit + 7) / 8);

        // The uninterrupted run: the expected result, and the time scale of the kills.
        string reference = Path.Combine(_root, "reference");
        var clock = Stopwatch.StartNew();
        double firstStepMs;
        using (Child r = Child.Start(common.Concat(new[] { "--out", reference }).ToArray(), null))
        {
            Assert.True(r.Process.WaitForExit(600_000), "the reference run did not finish in 10 minutes");
            r.Process.WaitForExit();
            Assert.True(r.Process.ExitCode == 0, $"the reference run failed ({r.Process.ExitCode}):\n{r.Stderr}");
            firstStepMs = r.FirstProgressMs > 0 ? r.FirstProgressMs : clock.Elapsed.TotalMilliseconds / 3;
        }
        double totalMs = clock.Elapsed.TotalMilliseconds;
        Assert.Equal(Text(totalSteps), SafeTensorsFile.Load(Path.Combine(reference, "last.safetensors")).Metadata["step_count"]);

        // The kill moments: the four kinds in equal shares, in a seeded order, with seeded parameters.
        var rng = new Random(seed);
        Moment[] moments = Enumerable.Range(0, kills).Select(i => (Moment)(i % 4)).OrderBy(_ => rng.Next()).ToArray();

        var records = new List<Kill>();
        int segment = 0, completions = 0, resumesChecked = 0;
        var temporaries = new HashSet<string>(StringComparer.Ordinal);
        var removed = new HashSet<string>(StringComparer.Ordinal);
        string dir = Path.Combine(_root, "run" + segment);
        Directory.CreateDirectory(dir);
        long lastStep = -1;
        string[] leftover = Array.Empty<string>();
        for (int k = 0, attempt = 0; k < kills; attempt++)
        {
            Assert.True(attempt < 4 * kills, $"{attempt} starts for {k} kills: the runs keep finishing before the kill");
            string last = Path.Combine(dir, "last.safetensors");
            TrainingState? from = File.Exists(last) ? TrainingCheckpoint.Load(last, info).State : null;
            string[] args = common.Concat(new[] { "--out", dir }).Concat(from is null ? Array.Empty<string>() : new[] { "--resume" }).ToArray();

            Moment moment = moments[k];
            double delayMs = moment switch
            {
                Moment.Startup => rng.NextDouble() * firstStepMs,
                Moment.Anywhere => rng.NextDouble() * totalMs,
                Moment.MidStep => rng.Next(0, 30),
                _ => 0,
            };
            int nth = moment == Moment.MidStep ? rng.Next(1, 6) : 0;
            string target = moment == Moment.Write ? Outputs[rng.Next(Outputs.Length)] : "";
            string plan = moment switch
            {
                Moment.MidStep => $"progress line {nth} + {delayMs:F0} ms",
                Moment.Write => $"a write of {target} begins",
                _ => $"after {delayMs:F0} ms",
            };

            using Child child = Child.Start(args, moment == Moment.Write ? (dir, target) : null);
            if (moment == Moment.MidStep) child.WaitForProgressThenKill(nth, (int)delayMs);
            else if (moment == Moment.Write) child.WaitForWriteKill();
            else child.SleepThenKill(delayMs);
            Assert.True(child.Process.WaitForExit(600_000), "a killed run did not exit");
            child.Process.WaitForExit();
            string stderr = child.Stderr;

            // The next run resumed from where the checkpoint stood, and removed the previous kill's temporary files.
            Match resumed = Resuming.Match(stderr);
            if (from is not null && resumed.Success)
            {
                Assert.Equal(last, resumed.Groups[1].Value);
                Assert.Equal((from.Epoch + 1, from.BatchInEpoch + 1),
                    (int.Parse(resumed.Groups[2].Value, CultureInfo.InvariantCulture), int.Parse(resumed.Groups[3].Value, CultureInfo.InvariantCulture)));
                resumesChecked++;
            }
            if (stderr.Contains("  output " + dir, StringComparison.Ordinal))
            {
                foreach (string t in leftover)
                {
                    Assert.False(File.Exists(t), $"{t}: a temporary file of an earlier kill was not removed by the next run");
                    removed.Add(t);
                }
            }

            if (child.Process.ExitCode == 0)
            {
                // It finished before the kill: the result must be the reference's; go on with a fresh run.
                AssertSameRun(reference, dir);
                completions++;
                dir = Path.Combine(_root, "run" + ++segment);
                Directory.CreateDirectory(dir);
                lastStep = -1;
                leftover = Array.Empty<string>();
                continue;
            }
            Assert.True(child.Process.ExitCode == 137, $"kill {k + 1} ({moment}, {plan}): exit code {child.Process.ExitCode}, not SIGKILL's 137:\n{stderr}");

            // Every file is absent or whole; anything else is a temporary file of an atomic write.
            leftover = CheckFolder(dir, info, out TrainingState? after);
            int fresh = leftover.Count(temporaries.Add); // left by this kill (the others by an earlier one)
            long step = after?.StepCount ?? -1;
            Assert.True(step >= lastStep, $"kill {k + 1}: the checkpoint went back from step {lastStep} to {step}");
            if (after is not null)
                Assert.True(after.StepCount <= totalSteps, $"kill {k + 1}: step {after.StepCount} of {totalSteps}");
            lastStep = step;
            records.Add(new Kill(k + 1, moment, plan, child.KilledAtMs, from is not null, Position(from), Position(after), fresh,
                child.Note + (moment == Moment.Write && child.KilledAtMs >= 0 && fresh == 0 ? " (the write was over when the kill came)" : "") +
                (resumed.Success ? "" : from is null ? "" : " (killed before it printed its start)")));
            k++;
        }

        // The last run goes to the end, from the last checkpoint.
        {
            string last = Path.Combine(dir, "last.safetensors");
            bool resume = File.Exists(last);
            TrainingState? from = resume ? TrainingCheckpoint.Load(last, info).State : null;
            CliResult final = Cli.Run(common.Concat(new[] { "--out", dir }).Concat(resume ? new[] { "--resume" } : Array.Empty<string>()).ToArray());
            Assert.True(final.ExitCode == 0, $"the final run failed ({final.ExitCode}):\n{final.Stderr}");
            if (from is not null)
                Assert.Contains($"resuming {last} at epoch {from.Epoch + 1}, batch {from.BatchInEpoch + 1}", final.Stderr);
            foreach (string t in leftover)
            {
                Assert.False(File.Exists(t), $"{t}: a temporary file of the last kill was not removed");
                removed.Add(t);
            }
            AssertSameRun(reference, dir);
            Assert.Empty(Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories).Concat(Directory.GetFiles(dir, ".*")));
        }

        string report = Report(records, kills, epochs, limit, seed, totalSteps, totalMs, firstStepMs, completions, resumesChecked, temporaries.Count, removed.Count);
        _output.WriteLine(report);
        string? reportPath = Environment.GetEnvironmentVariable("ALEXNET_KILL_TEST_REPORT");
        if (!string.IsNullOrWhiteSpace(reportPath)) File.WriteAllText(reportPath, report);

        Assert.Equal(kills, records.Count);
        Assert.Contains(records, r => r.Moment == Moment.Write && r.Temporaries > 0); // at least one kill landed inside a write
    }

    [Fact]
    public void Only_the_temporary_files_of_an_interrupted_atomic_write_are_removed()
    {
        string dir = Path.Combine(_root, "stale");
        Directory.CreateDirectory(dir);
        string target = Path.Combine(dir, "last.safetensors");
        string hex = new string('a', 16) + "0123456789abcdef";
        string[] stale = { $".last.safetensors.{hex}.tmp", $".last.safetensors.{Guid.NewGuid():N}.tmp" };
        string[] kept =
        {
            "last.safetensors", "best.safetensors", $".best.safetensors.{hex}.tmp", $".last.safetensors.{hex.ToUpperInvariant()}.tmp",
            ".last.safetensors.1234.tmp", $"last.safetensors.{hex}.tmp", $".last.safetensors.{hex}.tmp.keep", "notes.tmp",
        };
        foreach (string name in stale.Concat(kept)) File.WriteAllText(Path.Combine(dir, name), "x");
        Assert.Equal(2, AtomicFile.RemoveStaleTemporaries(target));
        Assert.Equal(kept.OrderBy(n => n, StringComparer.Ordinal), Directory.GetFiles(dir).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal));
        Assert.Equal(0, AtomicFile.RemoveStaleTemporaries(Path.Combine(_root, "missing", "last.safetensors")));
    }

    /// <summary>Checks every entry of a run's folder after a kill; returns the temporary files left there.</summary>
    private static string[] CheckFolder(string dir, ModelInfo info, out TrainingState? last)
    {
        last = null;
        var temporaries = new List<string>();
        foreach (string path in Directory.GetFileSystemEntries(dir))
        {
            string name = Path.GetFileName(path);
            if (TemporaryName.IsMatch(name))
            {
                temporaries.Add(path);
                continue;
            }
            Assert.Contains(name, Outputs);
            switch (name)
            {
                case "last.safetensors":
                    last = TrainingCheckpoint.Load(path, info).State; // verifies the checksum
                    break;
                case "best.safetensors":
                    TrainingCheckpoint.Load(path, info);
                    break;
                case "metrics.csv":
                    Assert.NotEmpty(MetricsCsv.Read(path));
                    break;
                case "metrics.png":
                    using (SKBitmap? png = SKBitmap.Decode(path))
                        Assert.True(png is { Width: MetricsPlot.Width, Height: MetricsPlot.Height }, $"{path} does not decode as the metrics plot");
                    break;
            }
        }
        return temporaries.ToArray();
    }

    /// <summary>The run in <paramref name="dir"/> ended as the reference did: both checkpoints byte for byte, the metrics
    /// (but for the timings).</summary>
    private static void AssertSameRun(string reference, string dir)
    {
        foreach (string name in new[] { "last.safetensors", "best.safetensors" })
        {
            byte[] expected = File.ReadAllBytes(Path.Combine(reference, name));
            byte[] actual = File.ReadAllBytes(Path.Combine(dir, name));
            if (!expected.AsSpan().SequenceEqual(actual))
            {
                Training.TrainCliTests.AssertSameTensors(Path.Combine(reference, name), Path.Combine(dir, name));
                Assert.Fail($"{name}: the tensors are bit-identical but the files differ (metadata)");
            }
        }
        List<EpochMetrics> a = MetricsCsv.Read(Path.Combine(reference, "metrics.csv"));
        List<EpochMetrics> b = MetricsCsv.Read(Path.Combine(dir, "metrics.csv"));
        Assert.Equal(a.Select(m => (m.Epoch, m.LearningRate, m.TrainLoss, m.TrainAccuracy, m.ValidationLoss, m.ValidationAccuracy)),
            b.Select(m => (m.Epoch, m.LearningRate, m.TrainLoss, m.TrainAccuracy, m.ValidationLoss, m.ValidationAccuracy)));
    }

    private static string Position(TrainingState? s) =>
        s is null ? "none" : $"epoch {s.Epoch + (s.BatchInEpoch == 0 ? 0 : 1)}{(s.BatchInEpoch == 0 ? " done" : $" batch {s.BatchInEpoch}")}, step {s.StepCount}";

    private static string Report(List<Kill> records, int kills, int epochs, int limit, int seed, long totalSteps, double totalMs, double firstStepMs,
        int completions, int resumesChecked, int temporaries, int removed)
    {
        var sb = new StringBuilder();
        sb.Append($"{kills} SIGKILLs of `alexnet train` (alexnet-fmnist, {limit} images, batch 8, {epochs} epochs = {totalSteps} steps, ");
        sb.Append($"a checkpoint every 2 steps, seed {seed}); the uninterrupted run took {totalMs / 1000:F1} s, its first progress line at {firstStepMs / 1000:F1} s.\n\n");
        sb.Append("| kill | moment | plan | killed at | started from | checkpoint after the kill | temporary files it left | note |\n");
        sb.Append("| ---: | --- | --- | ---: | --- | --- | ---: | --- |\n");
        foreach (Kill r in records)
            sb.Append($"| {r.Index} | {r.Moment} | {r.Plan} | {r.AtMs:F0} ms | {(r.Resumed ? "--resume " : "fresh, ")}{r.StartedAt} | {r.After} | {r.Temporaries} | {r.Note.Trim()} |\n");
        sb.Append('\n');
        sb.Append($"After every kill: each checkpoint present loaded and passed its SHA-256 checksum, metrics.csv parsed, metrics.png decoded, ");
        sb.Append($"and nothing else was in the folder but atomic-write temporary files ({temporaries} in all, ");
        sb.Append($"{removed} seen removed, each by the next run that got as far as opening its output folder). The checkpoint never went back. ");
        sb.Append($"{resumesChecked} resumed runs printed their starting point before being killed, each the last checkpoint's position. ");
        sb.Append($"Runs that finished before their kill: {completions} (each compared with the reference, then a fresh run). ");
        sb.Append("The final resumed run finished with last.safetensors and best.safetensors byte-identical to the uninterrupted run's, ");
        sb.Append("and the same losses and accuracies in metrics.csv.\n");
        return sb.ToString();
    }

    private static int Env(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : fallback;

    private static string Text(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>A training run as a child process, with its stderr lines counted and, optionally, inotify on its folder.</summary>
    private sealed class Child : IDisposable
    {
        private readonly StringBuilder _stderr = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly ManualResetEventSlim _line = new();
        private readonly ManualResetEventSlim _written = new();
        private FileSystemWatcher? _watcher;
        private int _progress, _temporaries, _killed;
        private double _killedAt = -1;

        private Child(Process process) => Process = process;

        /// <summary>When the first progress line came, in ms after the start (0: none yet).</summary>
        public double FirstProgressMs { get; private set; }

        public Process Process { get; }

        public string Stderr
        {
            get { lock (_stderr) return _stderr.ToString(); }
        }

        /// <summary>When the kill was sent, in ms after the start (-1: not sent).</summary>
        public double KilledAtMs => _killedAt;

        public string Note { get; private set; } = "";

        public static Child Start(string[] args, (string Dir, string Output)? killOnWrite)
        {
            ProcessStartInfo psi = Cli.StartInfo(args);
            var process = new Process { StartInfo = psi };
            var child = new Child(process);
            if (killOnWrite is (string dir, string output))
            {
                child._watcher = new FileSystemWatcher(dir, "." + output + ".*.tmp") { NotifyFilter = NotifyFilters.FileName, IncludeSubdirectories = false };
                child._watcher.Created += (_, e) =>
                {
                    if (Interlocked.Increment(ref child._temporaries) == 1)
                    {
                        child.KillNow();
                        child.Note = "during the write of " + output;
                        child._written.Set();
                    }
                };
                child._watcher.EnableRaisingEvents = true;
            }
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (child._stderr) child._stderr.Append(e.Data).Append('\n');
                if (e.Data.StartsWith("epoch ", StringComparison.Ordinal) && e.Data.Contains('[', StringComparison.Ordinal))
                {
                    if (Interlocked.Increment(ref child._progress) == 1) child.FirstProgressMs = child._clock.Elapsed.TotalMilliseconds;
                    child._line.Set();
                }
            };
            process.OutputDataReceived += (_, _) => { };
            process.Start();
            child._clock.Restart();
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            return child;
        }

        public void SleepThenKill(double ms)
        {
            if (!Process.WaitForExit(TimeSpan.FromMilliseconds(ms))) KillNow();
        }

        public void WaitForProgressThenKill(int lines, int extraMs)
        {
            while (Volatile.Read(ref _progress) < lines && !Process.HasExited)
            {
                _line.Wait(50);
                _line.Reset();
            }
            if (Process.HasExited) return;
            if (extraMs > 0) Thread.Sleep(extraMs);
            KillNow();
        }

        public void WaitForWriteKill()
        {
            while (!_written.IsSet && !Process.HasExited) _written.Wait(50);
            if (!_written.IsSet) Note = "it ended before that write";
        }

        private void KillNow()
        {
            if (Interlocked.Exchange(ref _killed, 1) != 0) return;
            _killedAt = _clock.Elapsed.TotalMilliseconds;
            try
            {
                Process.Kill(); // SIGKILL on Unix
            }
            catch (InvalidOperationException)
            {
                // it had exited
            }
        }

        public void Dispose()
        {
            _watcher?.Dispose();
            if (!Process.HasExited)
            {
                try { Process.Kill(); } catch (InvalidOperationException) { }
                Process.WaitForExit();
            }
            Process.Dispose();
            _line.Dispose();
            _written.Dispose();
        }
    }
}
