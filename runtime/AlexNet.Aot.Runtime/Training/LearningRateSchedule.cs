using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace AlexNet.Aot.Training;

/// <summary>
/// The learning rate per epoch (epochs counted from 0), as PyTorch's schedulers stepped once per epoch:
/// <list type="bullet">
/// <item><c>constant</c>: the base rate throughout.</item>
/// <item><c>step</c>: <c>StepLR</c>, the rate times <see cref="Gamma"/> every <see cref="StepSize"/> epochs
/// (<c>lr · gamma^(epoch / step_size)</c>); a recipe that gives <c>milestones</c> and no <c>step_size</c> steps at the
/// milestones instead (as <c>multistep</c>).</item>
/// <item><c>multistep</c>: <c>MultiStepLR</c>, the rate times <see cref="Gamma"/> once for every milestone reached
/// (with milestones 8,11: epochs 0–7 lr, 8–10 lr·0.1, 11 on lr·0.01).</item>
/// <item><c>cosine</c>: <c>CosineAnnealingLR(T_max=epochs, eta_min=0)</c> stepped per epoch,
/// <c>lr · (1 + cos(π · epoch / epochs)) / 2</c>.</item>
/// <item><c>plateau</c>: the paper's rule, <c>ReduceLROnPlateau(mode="min", factor=gamma, patience, threshold=1e-4,
/// threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)</c>: after each epoch <see cref="Observe"/> gets the validation
/// error; when it has not improved on the best by the relative threshold for more than <see cref="Patience"/> epochs
/// the rate is multiplied by <see cref="Gamma"/>.</item>
/// </list>
/// The plateau state (current rate, best error, bad epochs, last epoch observed) is saved and restored with
/// <see cref="SaveState"/> and <see cref="RestoreState"/>, so a resumed run continues exactly.
/// </summary>
public sealed class LearningRateSchedule
{
    /// <summary>The schedule names: <c>constant</c>, <c>step</c>, <c>multistep</c>, <c>cosine</c>, <c>plateau</c>.</summary>
    public static IReadOnlyList<string> KnownKinds => Kinds;

    private static readonly string[] Kinds = { "constant", "step", "multistep", "cosine", "plateau" };

    /// <summary>The base learning rate when neither the recipe nor the caller gives one.</summary>
    public const double DefaultLearningRate = 0.01;

    /// <summary>The factor when neither the recipe nor the caller gives one.</summary>
    public const double DefaultGamma = 0.1;

    /// <summary><c>step</c>'s period in epochs when neither the recipe nor the caller gives one (torchvision's reference recipe).</summary>
    public const int DefaultStepSize = 30;

    /// <summary><c>plateau</c>'s patience when neither the recipe nor the caller gives one (PyTorch's default).</summary>
    public const int DefaultPatience = 10;

    /// <summary><c>plateau</c>'s relative improvement threshold (PyTorch's default).</summary>
    public const double PlateauThreshold = 1e-4;

    /// <summary><c>plateau</c>: reductions smaller than this are skipped (PyTorch's <c>eps</c>).</summary>
    public const double PlateauEps = 1e-8;

    private readonly int[] _milestones;
    private double _current;
    private double _best = double.PositiveInfinity;
    private int _badEpochs;
    private int _lastObserved = -1;

    /// <summary>Creates a schedule.</summary>
    /// <param name="kind">One of <see cref="KnownKinds"/>.</param>
    /// <param name="learningRate">The base learning rate (positive, finite).</param>
    /// <param name="gamma">The factor of each reduction (positive, finite).</param>
    /// <param name="stepSize"><c>step</c>'s period in epochs (at least 1).</param>
    /// <param name="milestones"><c>multistep</c>'s epochs (non-negative; sorted here). For <c>step</c> given without
    /// a step size, the milestones are used instead of a period.</param>
    /// <param name="patience"><c>plateau</c>'s patience in epochs (non-negative).</param>
    /// <param name="epochs"><c>cosine</c>'s period: the run's epochs (at least 1).</param>
    /// <exception cref="ArgumentException">An unknown kind or a value out of range; the message says which.</exception>
    public LearningRateSchedule(string kind, double learningRate, double gamma = DefaultGamma, int stepSize = DefaultStepSize,
        IReadOnlyList<int>? milestones = null, int patience = DefaultPatience, int epochs = 1)
    {
        if (epochs < 1)
            throw new ArgumentException($"epochs {epochs} is not at least 1", nameof(epochs));
        Epochs = epochs;
        ArgumentNullException.ThrowIfNull(kind);
        if (Array.IndexOf(Kinds, kind) < 0)
            throw new ArgumentException($"schedule '{kind}' is not known (known: {string.Join(", ", KnownKinds)})", nameof(kind));
        if (!(learningRate > 0) || !double.IsFinite(learningRate))
            throw new ArgumentException($"learning rate {Format(learningRate)} is not a positive finite number", nameof(learningRate));
        if (!(gamma > 0) || !double.IsFinite(gamma))
            throw new ArgumentException($"gamma {Format(gamma)} is not a positive finite number", nameof(gamma));
        if (stepSize < 1)
            throw new ArgumentException($"step size {stepSize} is not at least 1 epoch", nameof(stepSize));
        if (patience < 0)
            throw new ArgumentException($"patience {patience} is negative", nameof(patience));
        _milestones = milestones is null ? Array.Empty<int>() : new List<int>(milestones).ToArray();
        foreach (int m in _milestones)
            if (m < 0) throw new ArgumentException($"milestone {m} is negative", nameof(milestones));
        Array.Sort(_milestones);
        if (kind == "multistep" && _milestones.Length == 0)
            throw new ArgumentException("schedule multistep needs milestones (epochs, e.g. 8,11)", nameof(milestones));
        Kind = kind;
        BaseLearningRate = learningRate;
        Gamma = gamma;
        StepSize = stepSize;
        Patience = patience;
        _current = learningRate;
    }

    /// <summary>The run's epochs: <c>cosine</c>'s period.</summary>
    public int Epochs { get; }

    /// <summary>The schedule's kind (<see cref="KnownKinds"/>).</summary>
    public string Kind { get; }

    /// <summary>The learning rate of epoch 0.</summary>
    public double BaseLearningRate { get; }

    /// <summary>The factor of each reduction.</summary>
    public double Gamma { get; }

    /// <summary><c>step</c>'s period in epochs.</summary>
    public int StepSize { get; }

    /// <summary>The milestones (sorted), for <c>multistep</c> (and <c>step</c> given milestones without a step size).</summary>
    public IReadOnlyList<int> Milestones => _milestones;

    /// <summary><c>plateau</c>'s patience in epochs.</summary>
    public int Patience { get; }

    /// <summary><c>plateau</c>: the current learning rate (the base rate for the other kinds).</summary>
    public double CurrentLearningRate => _current;

    /// <summary><c>plateau</c>: the best (lowest) validation error observed (+∞ before the first).</summary>
    public double Best => _best;

    /// <summary><c>plateau</c>: epochs since the last improvement.</summary>
    public int BadEpochs => _badEpochs;

    /// <summary>The last epoch given to <see cref="Observe"/> (-1: none).</summary>
    public int LastObservedEpoch => _lastObserved;

    /// <summary>
    /// The schedule of a training recipe (<see cref="ModelInfo.Recipe"/>: <c>key=value</c> strings; <c>lr</c>,
    /// <c>schedule</c>, <c>gamma</c>, <c>step_size</c>, <c>milestones</c>, <c>patience</c>; other keys are ignored), each
    /// value replaced by the matching argument when that is not null. Defaults: <see cref="DefaultLearningRate"/>,
    /// <c>constant</c>, <see cref="DefaultGamma"/>, <see cref="DefaultStepSize"/>, no milestones, <see cref="DefaultPatience"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A malformed recipe value or override; the message names the key.</exception>
    public static LearningRateSchedule FromRecipe(IReadOnlyList<string> recipe, string? kind = null, double? learningRate = null,
        double? gamma = null, int? stepSize = null, IReadOnlyList<int>? milestones = null, int? patience = null, int epochs = 1)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        string? rKind = null, rLr = null, rGamma = null, rStep = null, rMilestones = null, rPatience = null;
        foreach (string entry in recipe)
        {
            int eq = entry.IndexOf('=');
            if (eq < 0) continue;
            string key = entry.Substring(0, eq).Trim(), value = entry.Substring(eq + 1).Trim();
            switch (key)
            {
                case "schedule": rKind = value; break;
                case "lr": rLr = value; break;
                case "gamma": rGamma = value; break;
                case "step_size": rStep = value; break;
                case "milestones": rMilestones = value; break;
                case "patience": rPatience = value; break;
            }
        }
        string k = kind ?? rKind ?? "constant";
        double lr = learningRate ?? (rLr is null ? DefaultLearningRate : ParseDouble("lr", rLr));
        double g = gamma ?? (rGamma is null ? DefaultGamma : ParseDouble("gamma", rGamma));
        IReadOnlyList<int>? ms = milestones ?? (rMilestones is null ? null : ParseMilestones(rMilestones));
        int? step = stepSize ?? (rStep is null ? null : ParseInt("step_size", rStep));
        int p = patience ?? (rPatience is null ? DefaultPatience : ParseInt("patience", rPatience));
        // "schedule=step milestones=30,60" (no step_size) steps at the milestones.
        if (k == "step")
        {
            if (step is null && ms is not null && ms.Count > 0) k = "multistep";
            else ms = null;
        }
        return new LearningRateSchedule(k, lr, g, step ?? DefaultStepSize, ms, p, epochs);
    }

    /// <summary>Parses a comma list of milestone epochs (<c>8,11</c>).</summary>
    /// <exception cref="ArgumentException">An empty list or a value that is not a non-negative whole number.</exception>
    public static int[] ParseMilestones(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var list = new List<int>();
        foreach (string part in text.Split(','))
        {
            string s = part.Trim();
            if (!int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int m))
                throw new ArgumentException($"milestones '{text}': '{s}' is not a whole number of epochs", nameof(text));
            list.Add(m);
        }
        return list.ToArray();
    }

    /// <summary>The learning rate of <paramref name="epoch"/> (0-based). For <c>plateau</c>, the current rate.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="epoch"/> is negative.</exception>
    public double LearningRate(int epoch)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "the epoch must not be negative");
        switch (Kind)
        {
            case "step" when _milestones.Length == 0:
                return BaseLearningRate * Math.Pow(Gamma, epoch / StepSize);
            case "step":
            case "multistep":
            {
                // PyTorch multiplies the rate by gamma once per milestone passed (a repeated milestone counts twice).
                double lr = BaseLearningRate;
                foreach (int m in _milestones)
                    if (epoch >= m) lr *= Gamma;
                return lr;
            }
            case "plateau":
                return _current;
            case "cosine":
                return BaseLearningRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(epoch, Epochs) / Epochs));
            default:
                return BaseLearningRate;
        }
    }

    /// <summary>
    /// Records the validation error (or any metric where lower is better) after <paramref name="epoch"/>; only
    /// <c>plateau</c> uses it. An epoch not after the last observed one is ignored, so replaying an epoch after a resume
    /// does not count it twice.
    /// </summary>
    public void Observe(int epoch, double validationError)
    {
        if (epoch <= _lastObserved) return;
        _lastObserved = epoch;
        if (Kind != "plateau") return;
        if (validationError < _best * (1 - PlateauThreshold))
        {
            _best = validationError;
            _badEpochs = 0;
        }
        else
        {
            _badEpochs++;
        }
        if (_badEpochs > Patience)
        {
            double reduced = _current * Gamma;
            if (_current - reduced > PlateauEps) _current = reduced;
            _badEpochs = 0;
        }
    }

    /// <summary>The mutable state as one string (<c>lr=...;best=...;bad=...;last=...</c>, round-trip numbers), for checkpoint metadata.</summary>
    public string SaveState() =>
        $"lr={Format(_current)};best={Format(_best)};bad={_badEpochs.ToString(CultureInfo.InvariantCulture)};last={_lastObserved.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Restores the state written by <see cref="SaveState"/>.</summary>
    /// <exception cref="FormatException">The text is not such a state.</exception>
    public void RestoreState(string state)
    {
        ArgumentNullException.ThrowIfNull(state);
        double? lr = null, best = null;
        int? bad = null, last = null;
        foreach (string part in state.Split(';'))
        {
            int eq = part.IndexOf('=');
            if (eq < 0) throw new FormatException($"schedule state '{state}': '{part}' is not key=value");
            string key = part.Substring(0, eq), value = part.Substring(eq + 1);
            bool ok;
            switch (key)
            {
                case "lr": ok = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double l) && l > 0 && double.IsFinite(l); lr = l; break;
                case "best": ok = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double b) && !double.IsNaN(b); best = b; break;
                case "bad": ok = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n); bad = n; break;
                case "last": ok = int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int e) && e >= -1; last = e; break;
                default: throw new FormatException($"schedule state '{state}': unknown key '{key}'");
            }
            if (!ok) throw new FormatException($"schedule state '{state}': '{part}' is not a valid value");
        }
        if (lr is null || best is null || bad is null || last is null)
            throw new FormatException($"schedule state '{state}' lacks one of lr, best, bad, last");
        _current = lr.Value;
        _best = best.Value;
        _badEpochs = bad.Value;
        _lastObserved = last.Value;
    }

    /// <summary>The settings as recipe text: e.g. <c>multistep lr=0.02 milestones=8,11 gamma=0.1</c>.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder(Kind).Append(" lr=").Append(Format(BaseLearningRate));
        switch (Kind)
        {
            case "step" when _milestones.Length == 0:
                sb.Append(" step_size=").Append(StepSize.ToString(CultureInfo.InvariantCulture)).Append(" gamma=").Append(Format(Gamma));
                break;
            case "step":
            case "multistep":
                sb.Append(" milestones=").Append(string.Join(",", _milestones)).Append(" gamma=").Append(Format(Gamma));
                break;
            case "cosine":
                sb.Append(" epochs=").Append(Epochs.ToString(CultureInfo.InvariantCulture));
                break;
            case "plateau":
                sb.Append(" patience=").Append(Patience.ToString(CultureInfo.InvariantCulture)).Append(" gamma=").Append(Format(Gamma));
                break;
        }
        return sb.ToString();
    }

    private static string Format(double x) => x.ToString("R", CultureInfo.InvariantCulture);

    private static double ParseDouble(string key, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double x)
            ? x : throw new ArgumentException($"{key}={value} is not a number");

    private static int ParseInt(string key, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int x)
            ? x : throw new ArgumentException($"{key}={value} is not a whole number");
}
