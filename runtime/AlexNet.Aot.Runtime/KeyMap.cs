using System;
using System.Collections.Generic;
using System.IO;

namespace AlexNet.Aot;

/// <summary>
/// A mapping from a model's checkpoint names to the names in a weights file, for checkpoints whose names the
/// spec's <c>from=</c> prefixes do not match. One rule per line, <c>MODEL_PREFIX = FILE_PREFIX</c>
/// (<c>#</c> starts a comment): a model key equal to MODEL_PREFIX, or starting with MODEL_PREFIX followed by
/// a dot, is looked up with that prefix replaced; the longest matching rule wins. Example, for a checkpoint
/// that names torchvision's first convolution <c>conv1</c>:
/// <code>features.0 = conv1      # features.0.weight is read from conv1.weight</code>
/// </summary>
public sealed class KeyMap
{
    private readonly List<(string Model, string File)> _rules;

    private KeyMap(List<(string, string)> rules) => _rules = rules;

    /// <summary>The rules, in file order.</summary>
    public IReadOnlyList<(string Model, string File)> Rules => _rules;

    /// <summary>Reads a mapping file; every malformed line is a <see cref="WeightsException"/> naming the file and line.</summary>
    public static KeyMap Load(string path)
    {
        if (!File.Exists(path)) throw new WeightsException($"{path}: file not found");
        string[] lines;
        try
        {
            if (new FileInfo(path).Length > 16 << 20) throw new WeightsException($"{path}: a mapping file over 16 MB is not a mapping file");
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeightsException($"{path}: cannot read the file: {e.Message}", e);
        }
        return Parse(lines, path);
    }

    /// <summary>Parses mapping lines (see the class summary).</summary>
    public static KeyMap Parse(IReadOnlyList<string> lines, string origin)
    {
        var rules = new List<(string, string)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < lines.Count; i++)
        {
            string line = lines[i];
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line.Substring(0, hash);
            line = line.Trim();
            if (line.Length == 0) continue;
            int eq = line.IndexOf('=');
            string model = eq < 0 ? "" : line.Substring(0, eq).Trim();
            string file = eq < 0 ? "" : line.Substring(eq + 1).Trim();
            if (eq < 0 || model.Length == 0 || file.Length == 0 || file.IndexOf('=') >= 0 || HasSpace(model) || HasSpace(file))
                throw new WeightsException($"{origin}:{i + 1}: expected 'MODEL_PREFIX = FILE_PREFIX', found '{lines[i].Trim()}'");
            if (!seen.Add(model))
                throw new WeightsException($"{origin}:{i + 1}: '{model}' is mapped twice");
            rules.Add((model, file));
        }
        return new KeyMap(rules);
    }

    /// <summary>The file key a model key is read from (itself when no rule matches).</summary>
    public string FileKey(string modelKey)
    {
        string? best = null, target = null;
        foreach ((string model, string file) in _rules)
        {
            bool match = modelKey == model || (modelKey.Length > model.Length && modelKey.StartsWith(model, StringComparison.Ordinal) && modelKey[model.Length] == '.');
            if (match && (best is null || model.Length > best.Length)) { best = model; target = file; }
        }
        return best is null ? modelKey : target + modelKey.Substring(best.Length);
    }

    /// <summary>A view of <paramref name="source"/> in which the model's keys find the file's tensors.</summary>
    public IWeightSource Apply(IWeightSource source, ModelInfo model) => new Mapped(source, this, model);

    private static bool HasSpace(string s)
    {
        foreach (char c in s) if (char.IsWhiteSpace(c)) return true;
        return false;
    }

    private sealed class Mapped : IWeightSource
    {
        private readonly IWeightSource _inner;
        private readonly KeyMap _map;
        private readonly List<string> _keys = new();

        public Mapped(IWeightSource inner, KeyMap map, ModelInfo model)
        {
            _inner = inner;
            _map = map;
            var mappedFileKeys = new HashSet<string>(StringComparer.Ordinal);
            foreach (ParameterInfo p in model.AllParameters)
            {
                string fileKey = map.FileKey(p.Key);
                if (inner.TryGet(fileKey, out _)) { _keys.Add(p.Key); mappedFileKeys.Add(fileKey); }
            }
            foreach (string k in inner.Keys)
                if (!mappedFileKeys.Contains(k)) _keys.Add(k);
        }

        public string Origin => _inner.Origin;

        public IReadOnlyList<string> Keys => _keys;

        public bool TryGet(string key, out LoadedTensor tensor)
        {
            if (_inner.TryGet(_map.FileKey(key), out tensor)) return true;
            return _inner.TryGet(key, out tensor);
        }
    }
}
