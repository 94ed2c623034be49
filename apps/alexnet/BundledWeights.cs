using System;
using System.Collections.Generic;
using System.IO;

namespace AlexNet.Aot.Cli;

/// <summary>
/// The weights that come with a model, used when a command is given no <c>--weights</c>: <c>MODEL.safetensors</c> in
/// the folder named by <c>ALEXNET_WEIGHTS_DIR</c>, else in <c>weights/</c> beside the executable or beside its folder
/// (scripts/publish.sh puts them in <c>artifacts/alexnet/weights/</c>, next to the launcher), else in
/// <c>model-spec/weights/</c> of the first folder at or above the executable's that has one (a repository checkout).
/// </summary>
internal static class BundledWeights
{
    /// <summary>The environment variable naming a folder of <c>MODEL.safetensors</c> files.</summary>
    public const string EnvironmentVariable = "ALEXNET_WEIGHTS_DIR";

    /// <summary>The bundled weights file of <paramref name="modelName"/>, or null when there is none.</summary>
    public static string? Find(string modelName)
    {
        foreach (string candidate in Candidates(modelName))
            if (File.Exists(candidate)) return candidate;
        return null;
    }

    /// <summary>The weights file to use: <paramref name="given"/> when not null, else the bundled one; a usage error
    /// saying where it was looked for when there is none.</summary>
    public static string Resolve(string command, string modelName, string? given)
    {
        if (given is not null) return given;
        return Find(modelName) ?? throw new UsageException(
            $"{command}: --weights is required: model {modelName} has no bundled weights " +
            $"(no {modelName}.safetensors in ${EnvironmentVariable}, {Path.Combine(AppContext.BaseDirectory, "weights")} or a model-spec/weights folder above it); pass --weights FILE");
    }

    private static IEnumerable<string> Candidates(string modelName)
    {
        string file = modelName + ".safetensors";
        string? env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) yield return Path.Combine(env, file);
        string exeDir = AppContext.BaseDirectory;
        yield return Path.Combine(exeDir, "weights", file);
        // The published layout: LEVEL/alexnet beside the launcher, the weights once in weights/ next to the launcher.
        if (Directory.GetParent(exeDir.TrimEnd(Path.DirectorySeparatorChar)) is DirectoryInfo parent)
            yield return Path.Combine(parent.FullName, "weights", file);
        for (DirectoryInfo? dir = new DirectoryInfo(exeDir); dir is not null; dir = dir.Parent)
            yield return Path.Combine(dir.FullName, "model-spec", "weights", file);
    }
}
