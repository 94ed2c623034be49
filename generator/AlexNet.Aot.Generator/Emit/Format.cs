using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace AlexNet.Aot.Generator.Emit;

/// <summary>Culture-proof literals for generated code.</summary>
internal static class Format
{
    /// <summary>A float as the shortest round-trip literal with an <c>f</c> suffix, whatever the current culture.</summary>
    public static string F(float v)
    {
        string s = v.ToString("R", CultureInfo.InvariantCulture);
        if (s.IndexOf('.') < 0 && s.IndexOf('E') < 0) s += ".0";
        return s + "f";
    }

    /// <summary>An int literal.</summary>
    public static string I(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>A long literal with an <c>L</c> suffix.</summary>
    public static string L(long v) => v.ToString(CultureInfo.InvariantCulture) + "L";

    /// <summary>A C# string literal.</summary>
    public static string S(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 32 || c > 126) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }

    /// <summary>XML-escaped text for doc comments.</summary>
    public static string X(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");

    /// <summary><c>new int[] { 1, 2 }</c> or <c>global::System.Array.Empty&lt;int&gt;()</c>.</summary>
    public static string IntArray(IEnumerable<int> values)
    {
        var parts = new List<string>();
        foreach (int v in values) parts.Add(I(v));
        return parts.Count == 0 ? "global::System.Array.Empty<int>()" : "new int[] { " + string.Join(", ", parts) + " }";
    }

    /// <summary><c>new string[] { "a" }</c> or an empty array.</summary>
    public static string StringArray(IEnumerable<string> values)
    {
        var parts = new List<string>();
        foreach (string v in values) parts.Add(S(v));
        return parts.Count == 0 ? "global::System.Array.Empty<string>()" : "new string[] { " + string.Join(", ", parts) + " }";
    }

    /// <summary><c>new float[] { 1f }</c> or an empty array.</summary>
    public static string FloatArray(IEnumerable<float> values)
    {
        var parts = new List<string>();
        foreach (float v in values) parts.Add(F(v));
        return parts.Count == 0 ? "global::System.Array.Empty<float>()" : "new float[] { " + string.Join(", ", parts) + " }";
    }

    /// <summary>A shape as <c>3x224x224</c>.</summary>
    public static string Shape(int c, int h, int w) => h == 1 && w == 1 ? I(c) : I(c) + "x" + I(h) + "x" + I(w);
}
