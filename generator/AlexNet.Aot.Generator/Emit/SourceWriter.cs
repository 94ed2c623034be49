using System;
using System.Text;

namespace AlexNet.Aot.Generator.Emit;

/// <summary>
/// Writes indented C# text (after System.Text.Json's SourceWriter): multi-line strings are re-indented,
/// <see cref="Block"/> opens a brace block that closes on dispose. Line endings are always '\n'.
/// </summary>
internal sealed class SourceWriter
{
    private readonly StringBuilder _sb = new();
    private int _indent;

    public void Line() => _sb.Append('\n');

    public void Line(string text)
    {
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0) { _sb.Append('\n'); continue; }
            _sb.Append(' ', _indent * 4).Append(line).Append('\n');
        }
    }

    public void Indent() => _indent++;

    public void Dedent() => _indent = Math.Max(0, _indent - 1);

    public Scope Block(string header)
    {
        Line(header);
        Line("{");
        _indent++;
        return new Scope(this);
    }

    public override string ToString() => _sb.ToString();

    internal readonly struct Scope : IDisposable
    {
        private readonly SourceWriter _w;

        public Scope(SourceWriter w) => _w = w;

        public void Dispose()
        {
            _w._indent--;
            _w.Line("}");
        }
    }
}
