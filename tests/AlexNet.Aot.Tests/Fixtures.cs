using System;
using System.IO;

namespace AlexNet.Aot.Tests;

/// <summary>Finds the PyTorch reference fixtures (shared/fixtures/torch) from wherever the tests run.</summary>
public static class Fixtures
{
    private static readonly Lazy<string> s_root = new(Find);

    /// <summary>The fixtures folder: the one holding tv-mini/, paper-mini/ and bn-mini/.</summary>
    public static string Root => s_root.Value;

    /// <summary>A path under <see cref="Root"/>, e.g. <c>Path("tv-mini", "tv-mini.safetensors")</c>.</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine(Root, System.IO.Path.Combine(parts));

    private static string Find()
    {
        string? env = Environment.GetEnvironmentVariable("ALEXNET_FIXTURES");
        if (!string.IsNullOrWhiteSpace(env))
        {
            // Either the torch folder itself, or a folder above it.
            foreach (string candidate in new[] { env, System.IO.Path.Combine(env, "torch"), System.IO.Path.Combine(env, "fixtures", "torch"), System.IO.Path.Combine(env, "shared", "fixtures", "torch") })
                if (IsRoot(candidate)) return System.IO.Path.GetFullPath(candidate);
            throw new InvalidOperationException($"ALEXNET_FIXTURES={env}: no torch fixtures (tv-mini/) there");
        }

        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string inside = System.IO.Path.Combine(dir.FullName, "shared", "fixtures", "torch");
            if (IsRoot(inside)) return inside;
            string beside = System.IO.Path.Combine(dir.FullName, "..", "shared", "fixtures", "torch");
            if (IsRoot(beside)) return System.IO.Path.GetFullPath(beside);
        }
        throw new InvalidOperationException(
            $"no shared/fixtures/torch found in or beside any folder above {AppContext.BaseDirectory}; set ALEXNET_FIXTURES to the fixtures folder");
    }

    private static bool IsRoot(string dir) => Directory.Exists(System.IO.Path.Combine(dir, "tv-mini"));
}
