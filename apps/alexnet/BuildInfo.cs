using System.Reflection;

namespace AlexNet.Aot.Cli;

/// <summary>How this binary was built and which instruction-set path its kernels take.</summary>
internal static class BuildInfo
{
    /// <summary>The kernels' path in use: <c>avx512</c>, <c>avx2</c>, <c>neon</c>, <c>sse</c> or <c>scalar</c>.</summary>
    public static string IsaPath => Isa.Path;

    /// <summary>A description of that path.</summary>
    public static string IsaDescription => Isa.Description;

    /// <summary>True under the JIT (<c>dotnet alexnet.dll</c>), false in a NativeAOT binary. Not
    /// RuntimeFeature.IsDynamicCodeSupported: PublishAot switches that off under the JIT too.</summary>
    public static bool IsJit => System.Runtime.JitInfo.GetCompiledMethodCount() > 0;

    /// <summary><c>nativeaot</c> for a NativeAOT binary, <c>jit</c> when run with <c>dotnet</c>.</summary>
    public static string Runtime => IsJit ? "jit" : "nativeaot";

    /// <summary>The IlcInstructionSet the binary was published with (empty under the JIT or when none was set).</summary>
    public static string CompiledFor
    {
        get
        {
            if (IsJit) return "";
            foreach (AssemblyMetadataAttribute a in typeof(BuildInfo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>())
                if (a.Key == "AlexNet.IlcInstructionSet") return a.Value ?? "";
            return "";
        }
    }

    /// <summary>One line for people: the path, and what the binary was compiled for.</summary>
    public static string Summary
    {
        get
        {
            string compiled = IsJit
                ? "JIT: this CPU's instruction sets, less any DOTNET_Enable*=0"
                : "NativeAOT, compiled for " + (CompiledFor.Length > 0 ? CompiledFor : "the default baseline");
            return $"{IsaPath}: {IsaDescription} ({compiled})";
        }
    }
}
