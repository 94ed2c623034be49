using System;
using System.Collections.Generic;
using System.Globalization;

namespace AlexNet.Aot.Cli;

/// <summary>
/// A small parser for one command's arguments: <c>--name value</c>, <c>--name=value</c>, flags,
/// positionals, and <c>--</c> to end the options. Every problem is a <see cref="UsageException"/>.
/// </summary>
internal sealed class ArgReader
{
    private readonly string _command;
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly List<string> _positionals = new();

    public ArgReader(CommandSpec spec, ReadOnlySpan<string> args)
    {
        _command = spec.Name;
        bool optionsEnded = false;
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (optionsEnded || arg.Length < 2 || arg[0] != '-')
            {
                if (!spec.AllowsPositionals)
                    throw new UsageException($"{_command}: unexpected argument '{arg}'");
                _positionals.Add(arg);
                continue;
            }
            if (arg == "--")
            {
                optionsEnded = true;
                continue;
            }
            if (arg is "-h" or "--help")
            {
                HelpRequested = true;
                continue;
            }

            string name = arg;
            string? inline = null;
            int eq = arg.IndexOf('=');
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 2)
            {
                name = arg.Substring(0, eq);
                inline = arg.Substring(eq + 1);
            }

            if (Array.IndexOf(spec.Flags, name) >= 0)
            {
                if (inline is not null)
                    throw new UsageException($"{_command}: {name} takes no value");
                if (!_flags.Add(name))
                    throw new UsageException($"{_command}: {name} given twice");
            }
            else if (Array.IndexOf(spec.ValueOptions, name) >= 0)
            {
                string value;
                if (inline is not null)
                {
                    value = inline;
                }
                else
                {
                    if (i + 1 >= args.Length)
                        throw new UsageException($"{_command}: {name} needs a value");
                    value = args[++i];
                }
                if (value.Length == 0)
                    throw new UsageException($"{_command}: {name} needs a non-empty value");
                if (!_values.TryAdd(name, value))
                    throw new UsageException($"{_command}: {name} given twice");
            }
            else if (spec.OptionalValues is not null && Array.IndexOf(spec.OptionalValues, name) >= 0)
            {
                string value = inline ?? (i + 1 < args.Length && !args[i + 1].StartsWith('-') ? args[++i] : "");
                if (!_values.TryAdd(name, value))
                    throw new UsageException($"{_command}: {name} given twice");
            }
            else
            {
                throw new UsageException($"{_command}: unknown option '{name}'");
            }
        }
    }

    /// <summary>True when <c>-h</c> or <c>--help</c> was given.</summary>
    public bool HelpRequested { get; }

    /// <summary>The arguments that are not options, in order.</summary>
    public IReadOnlyList<string> Positionals => _positionals;

    /// <summary>Whether a flag was given.</summary>
    public bool Flag(string name) => _flags.Contains(name);

    /// <summary>An option's value, or null when it was not given.</summary>
    public string? Optional(string name) => _values.TryGetValue(name, out string? v) ? v : null;

    /// <summary>Whether an option was given (with or without a value).</summary>
    public bool Has(string name) => _values.ContainsKey(name) || _flags.Contains(name);

    /// <summary>An option's value; a usage error when it was not given.</summary>
    public string Required(string name) =>
        Optional(name) ?? throw new UsageException($"{_command}: {name} is required");

    /// <summary>An integer option in [min, max], or null when it was not given.</summary>
    public int? OptionalInt(string name, int min, int max)
    {
        string? text = Optional(name);
        if (text is null) return null;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value))
            throw new UsageException($"{_command}: {name} '{text}' is not a whole number");
        if (value < min || value > max)
            throw new UsageException($"{_command}: {name} {value} is out of range ({min} to {max})");
        return value;
    }

    /// <summary>A positive finite number option, or <paramref name="fallback"/> when it was not given.</summary>
    public double PositiveDouble(string name, double fallback)
    {
        string? text = Optional(name);
        if (text is null) return fallback;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value) || value <= 0)
            throw new UsageException($"{_command}: {name} '{text}' is not a positive number");
        return value;
    }
}
