using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using AlexNet.Aot.Generator.Model;

namespace AlexNet.Aot.Generator.Parsing;

/// <summary>
/// Parses a model spec (see model-spec/README.md): one directive or layer per line, <c>#</c> comments.
/// Never throws: every problem becomes a <see cref="SpecDiagnostic"/> at its line and column, naming the layer.
/// </summary>
internal sealed class SpecParser
{
    private readonly string _path;
    private readonly string _text;
    private readonly List<SpecDiagnostic> _diagnostics = new();
    private readonly List<LayerSpec> _layers = new();
    private readonly List<RecipeEntry> _recipe = new();
    private readonly Dictionary<string, int> _layerLines = new(StringComparer.OrdinalIgnoreCase);
    private string? _className;
    private int _c, _h, _w;
    private SpecPosition? _inputPos, _modelPos, _normalizePos, _labelsPos, _preprocessPos, _preprocessModePos;
    private float[] _mean = Array.Empty<float>(), _std = Array.Empty<float>();
    private string[] _labels = Array.Empty<string>();
    private string _preprocess = "";

    private SpecParser(string path, string text)
    {
        _path = path;
        _text = text;
    }

    /// <summary>Parses <paramref name="text"/>, the content of the spec at <paramref name="path"/>.</summary>
    public static ModelSpec Parse(string path, string text)
    {
        var p = new SpecParser(path, text ?? string.Empty);
        try
        {
            p.Run();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The parser is written not to throw; this keeps a bug from becoming AD0001 in a user's build.
            p.Error(Diagnostics.Syntax, new SpecPosition(0, 0, 0, 0), $"internal error while parsing this spec: {e.GetType().Name}: {e.Message}");
        }
        return p.Build();
    }

    /// <summary>The model name a spec file gets: its file name without the <c>.model</c> extension.</summary>
    public static string ModelNameFromPath(string path)
    {
        string name = Path.GetFileName(path ?? string.Empty);
        return name.EndsWith(".model", StringComparison.OrdinalIgnoreCase) ? name.Substring(0, name.Length - 6) : name;
    }

    private ModelSpec Build()
    {
        string modelName = ModelNameFromPath(_path);
        if (_className is null && !HasError(Diagnostics.MissingModel))
            Error(Diagnostics.MissingModel, new SpecPosition(0, 0, 0, 0), $"{modelName}: the spec has no 'model NAME' line");
        if (_inputPos is null)
            Error(Diagnostics.MissingInput, _modelPos ?? new SpecPosition(0, 0, 0, 0), $"{modelName}: the spec has no 'input CxHxW' line");
        foreach (LayerSpec l in _layers)
        {
            if (_className is not null && Planning.Planner.ClassNameOf(l.Name) == _className)
                Error(Diagnostics.ReservedName, l.Position, $"{l.Name}: its generated class {_className} would have the model's own name; rename the layer or the model");
        }
        if (_layers.Count == 0)
            Error(Diagnostics.NoLayers, _modelPos ?? new SpecPosition(0, 0, 0, 0), $"{modelName}: the spec has no layers");
        if (_preprocess == "caffe" && _preprocessModePos is not null && _c != 0 && _c != 3)
            Error(Diagnostics.ValueOutOfRange, _preprocessModePos, $"preprocess: caffe gives 3 channels (B, G, R), but the input has {_c}");
        return new ModelSpec(_path, modelName, _className ?? "UnnamedModel", _modelPos ?? new SpecPosition(0, 0, 0, 0), _c, _h, _w,
            _mean.ToEquatable(), _std.ToEquatable(), _labels.ToEquatable(), _preprocess, _layers.ToEquatable(), _recipe.ToEquatable(), _diagnostics.ToEquatable());
    }

    private bool HasError(string id) => _diagnostics.Exists(d => d.Id == id);

    private void Error(string id, SpecPosition at, string message) => _diagnostics.Add(new SpecDiagnostic(id, _path, at, message));

    // ---------------------------------------------------------------- lines and tokens

    private sealed class Token
    {
        public string Text = "";
        public SpecPosition Pos = new(0, 0, 0, 0);
        public List<(string Text, SpecPosition Pos)>? Args;
        public SpecPosition FullPos = new(0, 0, 0, 0);
        public string FullText = "";
    }

    private void Run()
    {
        int offset = 0, line = 0;
        while (offset <= _text.Length)
        {
            int end = _text.IndexOf('\n', offset);
            if (end < 0) end = _text.Length;
            string raw = _text.Substring(offset, end - offset).TrimEnd('\r').Replace('\r', ' ').Replace('\u0085', ' ').Replace('\u2028', ' ').Replace('\u2029', ' '); // C# ends a line at each: keep them out of generated comments
            int hash = raw.IndexOf('#');
            string content = hash >= 0 ? raw.Substring(0, hash) : raw;
            List<Token>? tokens = Tokenize(content, line, offset);
            if (tokens is { Count: > 0 })
                ParseLine(tokens, content, line, offset);
            if (end >= _text.Length) break;
            offset = end + 1;
            line++;
        }
    }

    private List<Token>? Tokenize(string s, int line, int lineOffset)
    {
        var tokens = new List<Token>();
        // Messages name the line's layer (its first word) or directive.
        string trimmedLine = s.TrimStart();
        int wordEnd = 0;
        while (wordEnd < trimmedLine.Length && !char.IsWhiteSpace(trimmedLine[wordEnd]) && trimmedLine[wordEnd] != '(' && trimmedLine[wordEnd] != ')' && trimmedLine[wordEnd] != ',') wordEnd++;
        string who = wordEnd > 0 ? trimmedLine.Substring(0, wordEnd) + ": " : "";
        int i = 0;
        while (i < s.Length)
        {
            if (char.IsWhiteSpace(s[i])) { i++; continue; }
            int start = i;
            if (s[i] == '(' || s[i] == ')' || s[i] == ',')
            {
                Error(Diagnostics.Syntax, Pos(line, lineOffset, i, 1), $"{who}unexpected '{s[i]}' (arguments follow an operation name, as in maxpool(3, s2))");
                return null;
            }
            while (i < s.Length && !char.IsWhiteSpace(s[i]) && s[i] != '(' && s[i] != ')') i++;
            var t = new Token { Text = s.Substring(start, i - start), Pos = Pos(line, lineOffset, start, i - start) };
            int j = i;
            while (j < s.Length && (s[j] == ' ' || s[j] == '\t')) j++;
            if (j < s.Length && s[j] == ')')
            {
                Error(Diagnostics.Syntax, Pos(line, lineOffset, j, 1), $"{who}unexpected ')' after '{t.Text}'");
                return null;
            }
            if (j < s.Length && s[j] == '(')
            {
                int close = s.IndexOf(')', j + 1);
                int nested = s.IndexOf('(', j + 1);
                if (close < 0 || (nested >= 0 && nested < close))
                {
                    Error(Diagnostics.Syntax, Pos(line, lineOffset, j, 1), $"{who}'{t.Text}(' has no matching ')'");
                    return null;
                }
                t.Args = new List<(string, SpecPosition)>();
                int a = j + 1;
                while (a <= close)
                {
                    int comma = s.IndexOf(',', a);
                    int argEnd = comma >= 0 && comma < close ? comma : close;
                    string arg = s.Substring(a, argEnd - a);
                    int lead = arg.Length - arg.TrimStart().Length;
                    string trimmed = arg.Trim();
                    if (trimmed.Length == 0 && !(argEnd == close && t.Args.Count == 0))
                    {
                        Error(Diagnostics.Syntax, Pos(line, lineOffset, a, Math.Max(1, argEnd - a)), $"{who}empty argument in '{t.Text}(...)'");
                        return null;
                    }
                    if (trimmed.Length > 0)
                        t.Args.Add((trimmed, Pos(line, lineOffset, a + lead, trimmed.Length)));
                    a = argEnd + 1;
                }
                i = close + 1;
                t.FullPos = Pos(line, lineOffset, start, i - start);
                t.FullText = s.Substring(start, i - start);
            }
            else
            {
                t.FullPos = t.Pos;
                t.FullText = t.Text;
            }
            tokens.Add(t);
        }
        return tokens;
    }

    private static SpecPosition Pos(int line, int lineOffset, int col, int len) => new(line, col, len, lineOffset + col);

    private void ParseLine(List<Token> tokens, string content, int line, int lineOffset)
    {
        Token head = tokens[0];
        switch (head.Text)
        {
            case "model":
                ParseModel(tokens);
                return;
            case "input":
                ParseInput(tokens);
                return;
            case "normalize":
                ParseNormalize(tokens);
                return;
            case "labels":
                ParseLabels(tokens, content, line, lineOffset);
                return;
            case "preprocess":
                ParsePreprocess(tokens);
                return;
            case "train":
                ParseTrain(tokens);
                return;
        }
        if (tokens.Count >= 2 && (tokens[1].Text == "conv" || tokens[1].Text == "dense") && tokens[1].Args is null)
        {
            ParseLayer(tokens, content.Trim());
            return;
        }
        if (head.Args is not null || tokens.Count < 2)
        {
            Error(Diagnostics.UnknownKeyword, head.Pos, $"unknown keyword '{head.Text}': a line is a directive (model, input, normalize, labels, preprocess, train) or a layer 'NAME conv|dense ...'");
            return;
        }
        Error(Diagnostics.UnknownKeyword, tokens[1].Pos, $"{head.Text}: unknown layer kind '{tokens[1].Text}' (expected conv or dense)");
    }

    private void ParseModel(List<Token> t)
    {
        if (_modelPos is not null) { Error(Diagnostics.DuplicateDirective, t[0].Pos, "'model' is given twice"); return; }
        _modelPos = t[0].Pos;
        if (t.Count != 2 || t[1].Args is not null || !IsIdentifier(t[1].Text))
        {
            SpecPosition at = t.Count > 1 ? t[1].Pos : t[0].Pos;
            Error(Diagnostics.MissingModel, at, "'model' takes one C# identifier, the class to generate (e.g. model AlexNet2012)");
            return;
        }
        if (ReservedClassNames.Contains(t[1].Text))
        {
            Error(Diagnostics.ReservedName, t[1].Pos, $"'{t[1].Text}' is the name of a generated type; choose another model name");
            return;
        }
        _className = t[1].Text;
    }

    private void ParseInput(List<Token> t)
    {
        if (_inputPos is not null) { Error(Diagnostics.DuplicateDirective, t[0].Pos, "'input' is given twice"); return; }
        _inputPos = t[0].Pos;
        if (t.Count != 2 || t[1].Args is not null)
        {
            Error(Diagnostics.MissingInput, t.Count > 1 ? t[1].Pos : t[0].Pos, "'input' takes one shape CxHxW (e.g. input 3x227x227)");
            return;
        }
        string[] parts = t[1].Text.Split('x');
        if (parts.Length != 3)
        {
            Error(Diagnostics.BadNumber, t[1].Pos, $"input shape '{t[1].Text}' is not CxHxW (e.g. 3x224x224)");
            return;
        }
        int[] v = new int[3];
        for (int i = 0; i < 3; i++)
        {
            if (!TryInt(parts[i], out v[i]) || v[i] < 1 || v[i] > 65536)
            {
                Error(Diagnostics.BadNumber, t[1].Pos, $"input shape '{t[1].Text}': '{parts[i]}' is not a whole number from 1 to 65536");
                return;
            }
        }
        (_c, _h, _w) = (v[0], v[1], v[2]);
    }

    private void ParseNormalize(List<Token> t)
    {
        if (_normalizePos is not null) { Error(Diagnostics.DuplicateDirective, t[0].Pos, "'normalize' is given twice"); return; }
        _normalizePos = t[0].Pos;
        for (int i = 1; i < t.Count; i++)
        {
            if (!SplitKeyValue(t[i].Text, out string key, out string value) || (key != "mean" && key != "std") || t[i].Args is not null)
            {
                Error(Diagnostics.UnknownKeyword, t[i].Pos, $"normalize: unknown argument '{t[i].Text}' (expected mean=... std=...)");
                continue;
            }
            if ((key == "mean" && _mean.Length > 0) || (key == "std" && _std.Length > 0))
            {
                Error(Diagnostics.DuplicateArgument, t[i].Pos, $"normalize: '{key}' is given twice");
                continue;
            }
            var list = new List<float>();
            foreach (string part in value.Split(','))
            {
                if (!TryFloat(part, out float f) || (key == "std" && !(f > 0)))
                {
                    Error(Diagnostics.BadNumber, t[i].Pos, $"normalize: '{part}' in {key} is not a {(key == "std" ? "positive " : "")}number");
                    list.Clear();
                    break;
                }
                list.Add(f);
            }
            if (key == "mean") _mean = list.ToArray(); else _std = list.ToArray();
        }
        if (_mean.Length == 0 || _std.Length == 0 || _mean.Length != _std.Length)
            Error(Diagnostics.MissingValue, t[0].Pos, "normalize: needs mean=... and std=... with the same number of values (one, or one per channel)");
    }

    /// <summary>The photo preprocessing modes of <c>preprocess</c> (the runtime's PreprocessMode, in lower case).</summary>
    private static readonly string[] PreprocessModes = { "torchvision", "caffe", "none" };

    private void ParsePreprocess(List<Token> t)
    {
        if (_preprocessPos is not null) { Error(Diagnostics.DuplicateDirective, t[0].Pos, "'preprocess' is given twice"); return; }
        _preprocessPos = t[0].Pos;
        if (t.Count == 1)
        {
            Error(Diagnostics.MissingValue, t[0].Pos, "preprocess: expected a mode: torchvision, caffe or none");
            return;
        }
        if (t.Count > 2 || t[1].Args is not null)
        {
            Token extra = t.Count > 2 ? t[2] : t[1];
            Error(Diagnostics.Syntax, t.Count > 2 ? extra.Pos : extra.FullPos, "preprocess: takes one mode (torchvision, caffe or none) and nothing else");
            return;
        }
        if (Array.IndexOf(PreprocessModes, t[1].Text) < 0)
        {
            Error(Diagnostics.UnknownKeyword, t[1].Pos, $"preprocess: unknown mode '{t[1].Text}' (expected torchvision, caffe or none)");
            return;
        }
        _preprocessModePos = t[1].Pos;
        _preprocess = t[1].Text;
    }

    private void ParseLabels(List<Token> t, string content, int line, int lineOffset)
    {
        if (_labelsPos is not null) { Error(Diagnostics.DuplicateDirective, t[0].Pos, "'labels' is given twice"); return; }
        _labelsPos = t[0].Pos;
        string rest = content.Substring(t[0].Pos.Column + t[0].Pos.Length);
        var labels = new List<string>();
        foreach (string part in rest.Split(','))
        {
            string label = part.Trim();
            if (label.Length == 0)
            {
                Error(Diagnostics.Syntax, t[0].Pos, "labels: an empty label (labels are separated by commas)");
                return;
            }
            labels.Add(label);
        }
        _labels = labels.ToArray();
    }

    private static readonly HashSet<string> RecipeKeys = new(StringComparer.Ordinal)
    {
        "optimizer", "momentum", "weight_decay", "lr", "schedule", "milestones", "gamma", "patience", "step_size",
        "batch", "epochs", "augment", "pad", "init", "loss", "seed", "dropout",
    };

    // The values the trainer understands for the named settings (checked here, so that a typo is a compile error).
    private static readonly Dictionary<string, string[]> RecipeChoices = new(StringComparer.Ordinal)
    {
        ["optimizer"] = new[] { "sgd" },
        ["schedule"] = new[] { "constant", "step", "multistep", "cosine", "plateau" },
        ["init"] = new[] { "he", "paper", "xavier" },
        ["loss"] = new[] { "cross-entropy" },
        ["dropout"] = new[] { "on", "off" },
        ["augment"] = new[] { "none", "pad-crop", "random-crop", "random-resized-crop", "hflip", "pca-color" },
    };

    private void ParseTrain(List<Token> t)
    {
        if (t.Count == 1) { Error(Diagnostics.MissingValue, t[0].Pos, "train: expected key=value pairs (e.g. train optimizer=sgd lr=0.01)"); return; }
        for (int i = 1; i < t.Count; i++)
        {
            if (t[i].Args is not null || !SplitKeyValue(t[i].Text, out string key, out string value) || !RecipeKeys.Contains(key))
            {
                Error(Diagnostics.UnknownKeyword, t[i].Pos, $"train: unknown setting '{t[i].Text}' (known: {string.Join(", ", Sorted(RecipeKeys))})");
                continue;
            }
            foreach (RecipeEntry e in _recipe)
                if (e.Key == key) { Error(Diagnostics.DuplicateArgument, t[i].Pos, $"train: '{key}' is given twice"); break; }
            bool numeric = key is "momentum" or "weight_decay" or "lr" or "gamma";
            bool integer = key is "batch" or "epochs" or "patience" or "seed" or "pad" or "step_size";
            int least = key is "seed" or "pad" or "patience" ? 0 : 1;
            if (numeric && (!TryFloat(value, out float f) || f < 0))
                Error(Diagnostics.BadNumber, t[i].Pos, $"train: {key}={value} is not a non-negative number");
            else if (integer && (!TryInt(value, out int n) || n < least))
                Error(Diagnostics.BadNumber, t[i].Pos, $"train: {key}={value} is not a {(least == 0 ? "non-negative" : "positive")} whole number");
            else if (RecipeChoices.TryGetValue(key, out string[]? choices))
            {
                foreach (string v in key == "augment" ? value.Split(',') : new[] { value })
                    if (Array.IndexOf(choices, v) < 0)
                    {
                        Error(Diagnostics.UnknownKeyword, t[i].Pos, $"train: {key} '{v}' is not known (known: {string.Join(", ", choices)})");
                        break;
                    }
            }
            else if (key == "milestones")
            {
                foreach (string m in value.Split(','))
                    if (!TryInt(m, out int mi) || mi < 1) { Error(Diagnostics.BadNumber, t[i].Pos, $"train: milestone '{m}' is not a positive whole number"); break; }
            }
            _recipe.Add(new RecipeEntry(key, value, t[i].Pos));
        }
    }

    private static List<string> Sorted(IEnumerable<string> items)
    {
        var l = new List<string>(items);
        l.Sort(StringComparer.Ordinal);
        return l;
    }

    // ---------------------------------------------------------------- layers

    private void ParseLayer(List<Token> t, string text)
    {
        Token nameTok = t[0];
        string name = nameTok.Text;
        LayerKind kind = t[1].Text == "conv" ? LayerKind.Conv : LayerKind.Dense;
        if (nameTok.Args is not null || !IsIdentifier(name))
        {
            Error(Diagnostics.Syntax, nameTok.Pos, $"'{name}' is not a layer name (letters, digits and '_', starting with a letter)");
            return;
        }
        if (_layerLines.TryGetValue(name, out int firstLine))
        {
            Error(Diagnostics.DuplicateLayer, nameTok.Pos, $"{name}: a layer of this name is already defined on line {firstLine + 1}");
            return;
        }
        _layerLines[name] = nameTok.Pos.Line;
        int errorsBefore = _diagnostics.Count;
        int i = 2;
        int outCount = 0;
        if (i < t.Count && t[i].Args is null && TryInt(t[i].Text, out outCount))
        {
            if (outCount < 1 || outCount > 1 << 20)
                Error(Diagnostics.ValueOutOfRange, t[i].Pos, $"{name}: {t[1].Text} output count {outCount} must be from 1 to {1 << 20}");
            i++;
        }
        else if (i < t.Count && t[i].Args is null && LooksNumeric(t[i].Text))
        {
            Error(Diagnostics.BadNumber, t[i].Pos, $"{name}: '{t[i].Text}' is not a whole number of {(kind == LayerKind.Conv ? "output channels" : "outputs")}");
            return;
        }
        else
        {
            Error(Diagnostics.MissingValue, t[1].Pos, $"{name}: '{t[1].Text}' needs its number of {(kind == LayerKind.Conv ? "output channels" : "outputs")} (e.g. {name} {t[1].Text} 64 ...)");
            return;
        }

        int kh = 0, kw = 0, stride = 1, padding = 0, groups = 1;
        bool bias = true;
        string prefix = name;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var ops = new List<OpSpec>();
        for (; i < t.Count; i++)
        {
            Token tok = t[i];
            string s = tok.Text;
            if (tok.Args is null && TryLayerOption(s, out string opt, out string value))
            {
                if (!seen.Add(opt))
                {
                    Error(Diagnostics.DuplicateArgument, tok.Pos, $"{name}: '{opt}' is given twice");
                    continue;
                }
                if (kind == LayerKind.Dense && opt is "kernel" or "stride" or "padding" or "groups")
                {
                    Error(Diagnostics.OpNotAllowed, tok.Pos, $"{name}: '{s}' applies to conv layers, not dense");
                    continue;
                }
                if (ops.Count > 0)
                {
                    Error(Diagnostics.Syntax, tok.Pos, $"{name}: layer option '{s}' must come before the operations (relu, pools, ...)");
                    continue;
                }
                switch (opt)
                {
                    case "kernel":
                        string[] kk = value.Split('x');
                        if (kk.Length > 2 || !TryInt(kk[0], out kh) || !TryInt(kk[kk.Length - 1], out kw))
                            Error(Diagnostics.BadNumber, tok.Pos, $"{name}: kernel size '{value}' is not N or NxM");
                        else if (kh < 1 || kw < 1 || kh > 4096 || kw > 4096)
                            Error(Diagnostics.ValueOutOfRange, tok.Pos, $"{name}: kernel size {value} must be from 1 to 4096");
                        break;
                    case "stride":
                        ReadInt(tok, name, "stride", value, 1, 4096, out stride);
                        break;
                    case "padding":
                        ReadInt(tok, name, "padding", value, 0, 4096, out padding);
                        break;
                    case "groups":
                        if (ReadInt(tok, name, "groups", value, 1, 1 << 20, out groups) && outCount % groups != 0)
                            Error(Diagnostics.GroupsDoNotDivide, tok.Pos, $"{name}: groups={groups} does not divide the {outCount} output channels");
                        break;
                    case "bias":
                        if (value == "true") bias = true;
                        else if (value == "false") bias = false;
                        else Error(Diagnostics.BadNumber, tok.Pos, $"{name}: bias={value} must be true or false");
                        break;
                    case "from":
                        if (!IsCheckpointPrefix(value))
                            Error(Diagnostics.Syntax, tok.Pos, $"{name}: from={value} is not a checkpoint prefix (e.g. from=features.0)");
                        else prefix = value;
                        break;
                }
                continue;
            }
            OpSpec? op = ParseOp(tok, name, kind);
            if (op is not null) ops.Add(op);
        }
        if (kind == LayerKind.Conv && kh == 0 && !seen.Contains("kernel"))
            Error(Diagnostics.MissingValue, t[1].Pos, $"{name}: conv needs a kernel size (e.g. k3 or kernel=3)");
        if (kind == LayerKind.Dense) { kh = kw = 1; }
        for (int o = 0; o < ops.Count; o++)
        {
            if (ops[o].Kind == OpKind.Softmax && o != ops.Count - 1)
                Error(Diagnostics.SoftmaxNotLast, ops[o].Position, $"{name}: softmax must be the last operation of the last layer");
        }
        if (_diagnostics.Count != errorsBefore)
            return;
        _layers.Add(new LayerSpec(name, kind, text, nameTok.Pos, outCount, kh, kw, stride, padding, groups, bias, prefix, ops.ToEquatable()));
    }

    private bool ReadInt(Token tok, string layer, string what, string value, int min, int max, out int result)
    {
        if (!TryInt(value, out result))
        {
            Error(Diagnostics.BadNumber, tok.Pos, $"{layer}: {what} '{value}' is not a whole number");
            return false;
        }
        if (result < min || result > max)
        {
            Error(Diagnostics.ValueOutOfRange, tok.Pos, $"{layer}: {what} {result} must be from {min} to {max}");
            return false;
        }
        return true;
    }

    private static bool TryLayerOption(string s, out string option, out string value)
    {
        if (SplitKeyValue(s, out string key, out value))
        {
            option = key switch
            {
                "kernel" or "k" => "kernel",
                "stride" or "s" => "stride",
                "padding" or "pad" or "p" => "padding",
                "groups" or "g" => "groups",
                "bias" => "bias",
                "from" => "from",
                _ => "",
            };
            return option.Length > 0;
        }
        option = "";
        if (s == "nobias") { option = "bias"; value = "false"; return true; }
        if (s.Length >= 2 && (s[0] == 'k' || s[0] == 's' || s[0] == 'p' || s[0] == 'g') && char.IsDigit(s[1]))
        {
            option = s[0] switch { 'k' => "kernel", 's' => "stride", 'p' => "padding", _ => "groups" };
            value = s.Substring(1);
            return true;
        }
        return false;
    }

    private OpSpec? ParseOp(Token tok, string layer, LayerKind kind)
    {
        string s = tok.Text;
        var args = tok.Args ?? new List<(string Text, SpecPosition Pos)>();
        OpKind? k = s switch
        {
            "relu" => OpKind.Relu,
            "lrn" => OpKind.Lrn,
            "maxpool" => OpKind.MaxPool,
            "avgpool" => OpKind.AvgPool,
            "adaptiveavgpool" => OpKind.AdaptiveAvgPool,
            "bn" or "batchnorm" => OpKind.BatchNorm,
            "dropout" => OpKind.Dropout,
            "flatten" => OpKind.Flatten,
            "softmax" => OpKind.Softmax,
            _ => null,
        };
        if (k is null)
        {
            Error(Diagnostics.UnknownKeyword, tok.Pos, $"{layer}: unknown keyword '{s}' (options: kN sN pN groups=N bias= from=; operations: relu lrn maxpool avgpool adaptiveavgpool bn dropout flatten softmax)");
            return null;
        }
        OpKind kindOp = k.Value;
        if (kind == LayerKind.Dense && kindOp is OpKind.Lrn or OpKind.MaxPool or OpKind.AvgPool or OpKind.AdaptiveAvgPool)
        {
            Error(Diagnostics.OpNotAllowed, tok.Pos, $"{layer}: {s} needs a spatial input; it cannot follow a dense product");
            return null;
        }
        if (kind == LayerKind.Conv && kindOp == OpKind.Softmax)
        {
            Error(Diagnostics.OpNotAllowed, tok.Pos, $"{layer}: softmax belongs on the last dense layer");
            return null;
        }
        var named = new Dictionary<string, (string Value, SpecPosition Pos)>(StringComparer.Ordinal);
        var positional = new List<(string Text, SpecPosition Pos)>();
        foreach (var a in args)
        {
            if (SplitKeyValue(a.Text, out string key, out string value))
            {
                if (named.ContainsKey(key)) { Error(Diagnostics.DuplicateArgument, a.Pos, $"{layer}: {s}: '{key}' is given twice"); return null; }
                named[key] = (value, a.Pos);
            }
            else if (kindOp is OpKind.MaxPool or OpKind.AvgPool && a.Text.Length >= 2 && (a.Text[0] == 's' || a.Text[0] == 'p') && char.IsDigit(a.Text[1]))
            {
                string shortKey = a.Text[0] == 's' ? "stride" : "padding";
                if (named.ContainsKey(shortKey)) { Error(Diagnostics.DuplicateArgument, a.Pos, $"{layer}: {s}: '{shortKey}' is given twice"); return null; }
                named[shortKey] = (a.Text.Substring(1), a.Pos);
            }
            else if (kindOp is OpKind.MaxPool or OpKind.AvgPool && a.Text == "ceil")
            {
                if (named.ContainsKey("ceil_mode")) { Error(Diagnostics.DuplicateArgument, a.Pos, $"{layer}: {s}: 'ceil_mode' is given twice"); return null; }
                named["ceil_mode"] = ("true", a.Pos);
            }
            else if (kindOp == OpKind.AvgPool && a.Text == "exclude_pad")
            {
                if (named.ContainsKey("count_include_pad")) { Error(Diagnostics.DuplicateArgument, a.Pos, $"{layer}: {s}: 'count_include_pad' is given twice"); return null; }
                named["count_include_pad"] = ("false", a.Pos);
            }
            else
            {
                positional.Add(a);
            }
        }
        int errors = _diagnostics.Count;
        OpSpec? result = kindOp switch
        {
            OpKind.Relu or OpKind.Flatten or OpKind.Softmax => NoArgs(tok, layer, kindOp, positional, named),
            OpKind.MaxPool or OpKind.AvgPool => Pool(tok, layer, kindOp, positional, named),
            OpKind.AdaptiveAvgPool => Adaptive(tok, layer, positional, named),
            OpKind.Lrn => Lrn(tok, layer, positional, named),
            OpKind.BatchNorm => BatchNorm(tok, layer, positional, named),
            _ => Dropout(tok, layer, positional, named),
        };
        return _diagnostics.Count == errors ? result : null;
    }

    private OpSpec? NoArgs(Token tok, string layer, OpKind kind, List<(string Text, SpecPosition Pos)> positional, Dictionary<string, (string Value, SpecPosition Pos)> named)
    {
        if (positional.Count > 0 || named.Count > 0)
        {
            Error(Diagnostics.Syntax, tok.FullPos, $"{layer}: {tok.Text} takes no arguments");
            return null;
        }
        return new OpSpec(kind, tok.FullText, tok.FullPos);
    }

    private bool Unknown(string layer, Token tok, Dictionary<string, (string Value, SpecPosition Pos)> named, params string[] known)
    {
        bool ok = true;
        foreach (var kv in named)
        {
            if (Array.IndexOf(known, kv.Key) < 0)
            {
                Error(Diagnostics.UnknownKeyword, kv.Value.Pos, $"{layer}: {tok.Text}: unknown argument '{kv.Key}' (known: {string.Join(", ", known)})");
                ok = false;
            }
        }
        return ok;
    }

    private bool TooMany(string layer, Token tok, List<(string Text, SpecPosition Pos)> positional, int max, string names)
    {
        if (positional.Count <= max) return false;
        Error(Diagnostics.Syntax, positional[max].Pos, $"{layer}: {tok.Text} takes at most {max} positional argument{(max == 1 ? "" : "s")} ({names}); '{positional[max].Text}' is one too many");
        return true;
    }

    private OpSpec? Pool(Token tok, string layer, OpKind kind, List<(string Text, SpecPosition Pos)> positional, Dictionary<string, (string Value, SpecPosition Pos)> named)
    {
        if (!Unknown(layer, tok, named, "kernel", "stride", "padding", "ceil_mode", "count_include_pad") || TooMany(layer, tok, positional, 1, "kernel"))
            return null;
        if (positional.Count == 1 && named.TryGetValue("kernel", out var both))
        {
            Error(Diagnostics.DuplicateArgument, both.Pos, $"{layer}: {tok.Text}: the kernel is given twice");
            return null;
        }
        string? kText = positional.Count == 1 ? positional[0].Text : named.TryGetValue("kernel", out var kv) ? kv.Value : null;
        SpecPosition kPos = positional.Count == 1 ? positional[0].Pos : tok.FullPos;
        if (kText is null) { Error(Diagnostics.MissingValue, tok.FullPos, $"{layer}: {tok.Text} needs a kernel size (e.g. {tok.Text}(3, s2))"); return null; }
        if (!IntArg(layer, tok, "kernel", kText, kPos, 1, 4096, out int kernel)) return null;
        int stride = kernel, padding = 0;
        if (named.TryGetValue("stride", out var sv) && !IntArg(layer, tok, "stride", sv.Value, sv.Pos, 1, 4096, out stride)) return null;
        if (named.TryGetValue("padding", out var pv))
        {
            if (!IntArg(layer, tok, "padding", pv.Value, pv.Pos, 0, 4096, out padding)) return null;
            if (padding > kernel / 2)
            {
                Error(Diagnostics.ValueOutOfRange, pv.Pos, $"{layer}: {tok.Text} padding {padding} must be at most half the kernel ({kernel / 2}), as in PyTorch");
                return null;
            }
        }
        bool ceil = false, include = true;
        if (named.TryGetValue("ceil_mode", out var cv) && !BoolArg(layer, tok, "ceil_mode", cv.Value, cv.Pos, out ceil)) return null;
        if (named.TryGetValue("count_include_pad", out var iv))
        {
            if (kind == OpKind.MaxPool) { Error(Diagnostics.UnknownKeyword, iv.Pos, $"{layer}: maxpool has no count_include_pad"); return null; }
            if (!BoolArg(layer, tok, "count_include_pad", iv.Value, iv.Pos, out include)) return null;
        }
        return new OpSpec(kind, tok.FullText, tok.FullPos, Kernel: kernel, Stride: stride, Padding: padding, CeilMode: ceil, CountIncludePad: include);
    }

    private OpSpec? Adaptive(Token tok, string layer, List<(string Text, SpecPosition Pos)> positional, Dictionary<string, (string Value, SpecPosition Pos)> named)
    {
        if (!Unknown(layer, tok, named, "size") || TooMany(layer, tok, positional, 2, "height, width"))
            return null;
        var texts = new List<(string Text, SpecPosition Pos)>(positional);
        if (named.TryGetValue("size", out var sz))
        {
            if (positional.Count > 0) { Error(Diagnostics.DuplicateArgument, sz.Pos, $"{layer}: adaptiveavgpool: the size is given twice"); return null; }
            texts.Add((sz.Value, sz.Pos));
        }
        if (texts.Count == 1 && texts[0].Text.IndexOf('x') > 0)
        {
            string[] hw = texts[0].Text.Split('x');
            if (hw.Length != 2) { Error(Diagnostics.BadNumber, texts[0].Pos, $"{layer}: adaptiveavgpool size '{texts[0].Text}' is not HxW"); return null; }
            texts = new List<(string, SpecPosition)> { (hw[0], texts[0].Pos), (hw[1], texts[0].Pos) };
        }
        if (texts.Count == 0) { Error(Diagnostics.MissingValue, tok.FullPos, $"{layer}: adaptiveavgpool needs an output size (e.g. adaptiveavgpool(6x6))"); return null; }
        if (!IntArg(layer, tok, "height", texts[0].Text, texts[0].Pos, 1, 65536, out int h)) return null;
        int w = h;
        if (texts.Count > 1 && !IntArg(layer, tok, "width", texts[1].Text, texts[1].Pos, 1, 65536, out w)) return null;
        return new OpSpec(OpKind.AdaptiveAvgPool, tok.FullText, tok.FullPos, OutH: h, OutW: w);
    }

    private OpSpec? Lrn(Token tok, string layer, List<(string Text, SpecPosition Pos)> positional, Dictionary<string, (string Value, SpecPosition Pos)> named)
    {
        if (!Unknown(layer, tok, named, "size", "alpha", "beta", "k") || TooMany(layer, tok, positional, 4, "size, alpha, beta, k"))
            return null;
        string[] order = { "size", "alpha", "beta", "k" };
        for (int i = 0; i < positional.Count; i++)
        {
            if (named.ContainsKey(order[i])) { Error(Diagnostics.DuplicateArgument, positional[i].Pos, $"{layer}: lrn: '{order[i]}' is given twice"); return null; }
            named[order[i]] = (positional[i].Text, positional[i].Pos);
        }
        if (!named.TryGetValue("size", out var size)) { Error(Diagnostics.MissingValue, tok.FullPos, $"{layer}: lrn needs size= (e.g. lrn(size=5, alpha=1e-4, beta=0.75, k=2))"); return null; }
        if (!IntArg(layer, tok, "size", size.Value, size.Pos, 1, 4096, out int n)) return null;
        float alpha = 1e-4f, beta = 0.75f, k = 1f;
        if (named.TryGetValue("alpha", out var a) && !FloatArg(layer, tok, "alpha", a.Value, a.Pos, 0, false, out alpha)) return null;
        if (named.TryGetValue("beta", out var b) && !FloatArg(layer, tok, "beta", b.Value, b.Pos, 0, false, out beta)) return null;
        if (named.TryGetValue("k", out var kv) && !FloatArg(layer, tok, "k", kv.Value, kv.Pos, 0, true, out k)) return null;
        return new OpSpec(OpKind.Lrn, tok.FullText, tok.FullPos, Size: n, Alpha: alpha, Beta: beta, K: k);
    }

    private OpSpec? BatchNorm(Token tok, string layer, List<(string Text, SpecPosition Pos)> positional, Dictionary<string, (string Value, SpecPosition Pos)> named)
    {
        if (!Unknown(layer, tok, named, "eps", "momentum", "from") || TooMany(layer, tok, positional, 0, "none"))
            return null;
        float eps = 1e-5f, momentum = 0.1f;
        if (named.TryGetValue("eps", out var e) && !FloatArg(layer, tok, "eps", e.Value, e.Pos, 0, true, out eps)) return null;
        if (named.TryGetValue("momentum", out var m))
        {
            if (!FloatArg(layer, tok, "momentum", m.Value, m.Pos, 0, false, out momentum)) return null;
            if (momentum > 1) { Error(Diagnostics.ValueOutOfRange, m.Pos, $"{layer}: bn momentum {m.Value} must be from 0 to 1"); return null; }
        }
        string prefix = layer + ".bn";
        if (named.TryGetValue("from", out var f))
        {
            if (!IsCheckpointPrefix(f.Value)) { Error(Diagnostics.Syntax, f.Pos, $"{layer}: bn from={f.Value} is not a checkpoint prefix (e.g. from=features.1)"); return null; }
            prefix = f.Value;
        }
        return new OpSpec(OpKind.BatchNorm, tok.FullText, tok.FullPos, Eps: eps, Momentum: momentum, CheckpointPrefix: prefix);
    }

    private OpSpec? Dropout(Token tok, string layer, List<(string Text, SpecPosition Pos)> positional, Dictionary<string, (string Value, SpecPosition Pos)> named)
    {
        if (!Unknown(layer, tok, named, "p") || TooMany(layer, tok, positional, 1, "p"))
            return null;
        float p = 0.5f;
        if (positional.Count == 1 && named.TryGetValue("p", out var twice))
        {
            Error(Diagnostics.DuplicateArgument, twice.Pos, $"{layer}: dropout: p is given twice");
            return null;
        }
        (string Text, SpecPosition Pos)? arg = positional.Count == 1 ? positional[0] : named.TryGetValue("p", out var pv) ? (pv.Value, pv.Pos) : null;
        if (arg is { } av)
        {
            if (!FloatArg(layer, tok, "p", av.Text, av.Pos, 0, false, out p)) return null;
            if (p >= 1) { Error(Diagnostics.ValueOutOfRange, av.Pos, $"{layer}: dropout p={av.Text} must be at least 0 and below 1"); return null; }
        }
        return new OpSpec(OpKind.Dropout, tok.FullText, tok.FullPos, P: p);
    }

    private bool IntArg(string layer, Token tok, string what, string text, SpecPosition pos, int min, int max, out int value)
    {
        if (!TryInt(text, out value)) { Error(Diagnostics.BadNumber, pos, $"{layer}: {tok.Text} {what} '{text}' is not a whole number"); return false; }
        if (value < min || value > max) { Error(Diagnostics.ValueOutOfRange, pos, $"{layer}: {tok.Text} {what} {value} must be from {min} to {max}"); return false; }
        return true;
    }

    private bool FloatArg(string layer, Token tok, string what, string text, SpecPosition pos, float min, bool exclusive, out float value)
    {
        if (!TryFloat(text, out value)) { Error(Diagnostics.BadNumber, pos, $"{layer}: {tok.Text} {what} '{text}' is not a number"); return false; }
        if (exclusive ? !(value > min) : !(value >= min))
        {
            Error(Diagnostics.ValueOutOfRange, pos, $"{layer}: {tok.Text} {what} {text} must be {(exclusive ? "greater than" : "at least")} {min.ToString(CultureInfo.InvariantCulture)}");
            return false;
        }
        return true;
    }

    private bool BoolArg(string layer, Token tok, string what, string text, SpecPosition pos, out bool value)
    {
        value = text == "true";
        if (text is "true" or "false") return true;
        Error(Diagnostics.BadNumber, pos, $"{layer}: {tok.Text} {what}={text} must be true or false");
        return false;
    }

    // ---------------------------------------------------------------- lexical helpers

    internal static bool TryInt(string s, out int value) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    internal static bool TryFloat(string s, out float value) =>
        float.TryParse(s, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out value)
        && !float.IsNaN(value) && !float.IsInfinity(value);

    private static bool LooksNumeric(string s) => s.Length > 0 && (char.IsDigit(s[0]) || s[0] == '-' || s[0] == '+' || s[0] == '.');

    private static bool SplitKeyValue(string s, out string key, out string value)
    {
        int eq = s.IndexOf('=');
        if (eq <= 0) { key = value = ""; return false; }
        key = s.Substring(0, eq);
        value = s.Substring(eq + 1);
        return true;
    }

    /// <summary>Names the generated code declares in or beside a model class, so a model may not take them.</summary>
    private static readonly HashSet<string> ReservedClassNames = new(StringComparer.Ordinal)
    {
        "ModelCatalog", "Create", "Metadata", "Entry", "Work", "Tick", "ImageFloats", "ClassCount", "WorkerFloats",
        "DenseFloatsPerImage", "FeaturesOffset", "FeatureFloats",
    };

    internal static bool IsIdentifier(string s)
    {
        if (Microsoft.CodeAnalysis.CSharp.SyntaxFacts.GetKeywordKind(s) != Microsoft.CodeAnalysis.CSharp.SyntaxKind.None) return false;
        if (s.Length == 0 || s.Length > 128 || !(char.IsLetter(s[0]) && s[0] < 128)) return false;
        foreach (char c in s)
            if (!(c < 128 && (char.IsLetterOrDigit(c) || c == '_'))) return false;
        return true;
    }

    private static bool IsCheckpointPrefix(string s)
    {
        if (s.Length == 0 || s.Length > 256 || s[0] == '.' || s[s.Length - 1] == '.' || s.Contains("..")) return false;
        foreach (char c in s)
            if (!(c < 128 && (char.IsLetterOrDigit(c) || c == '_' || c == '.' || c == '-'))) return false;
        return true;
    }
}
