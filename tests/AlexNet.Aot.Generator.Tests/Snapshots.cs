using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using ApprovalTests;
using ApprovalTests.Approvers;
using ApprovalTests.Core;
using ApprovalTests.Core.Exceptions;

namespace AlexNet.Aot.Generator.Tests;

/// <summary>
/// Approved-file snapshots through ApprovalTests, one file per generated source, under Snapshots/ in this project's
/// source folder. A mismatch writes <c>NAME.received.txt</c> beside <c>NAME.approved.txt</c> and fails; no diff tool is
/// launched. With <c>APPROVE=1</c> in the environment the received text becomes the approved file instead.
/// </summary>
internal static class Snapshots
{
    public static string Root => Path.Combine(GeneratorHarness.RepoRoot, "tests", "AlexNet.Aot.Generator.Tests", "Snapshots");

    public static bool Approving => Environment.GetEnvironmentVariable("APPROVE") == "1";

    /// <summary>Verifies <paramref name="text"/> against <c>{folder}/{name}.approved.txt</c>; returns a failure description or null.</summary>
    public static string? Check(string folder, string name, string text)
    {
        var approver = new FileApprover(new ApprovalTextWriter(text, "txt"), new Namer(folder, name), normalizeLineEndingsForTextFiles: true);
        try
        {
            Approvals.Verify(approver, Reporter.Instance);
            return null;
        }
        catch (ApprovalException e)
        {
            string approved = Path.Combine(folder, name + ".approved.txt");
            if (!File.Exists(approved))
                return $"{Rel(approved)}: no approved file (run with APPROVE=1 to create it from {Rel(approved).Replace(".approved.", ".received.")})";
            return $"{Rel(approved)}: {FirstDifference(File.ReadAllText(approved), text)} ({e.GetType().Name}; see the .received.txt beside it)";
        }
    }

    /// <summary>Fails with every failure, not just the first, so one run shows (or, approving, fixes) them all.</summary>
    public static void Assert(IReadOnlyCollection<string> failures)
    {
        if (failures.Count > 0)
            throw new Xunit.Sdk.XunitException($"{failures.Count} snapshot(s) differ:\n" + string.Join("\n", failures));
    }

    private static string Rel(string path) => Path.GetRelativePath(GeneratorHarness.RepoRoot, path).Replace('\\', '/');

    private static string FirstDifference(string approved, string received)
    {
        string[] a = approved.Replace("\r\n", "\n").Split('\n');
        string[] r = received.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < Math.Max(a.Length, r.Length); i++)
        {
            string? x = i < a.Length ? a[i] : null, y = i < r.Length ? r[i] : null;
            if (x != y)
                return $"first difference at line {i + 1}:\n    approved: {x ?? "<end of file>"}\n    received: {y ?? "<end of file>"}";
        }
        return "the texts differ only in encoding";
    }

    private sealed class Namer : IApprovalNamer
    {
        public Namer(string sourcePath, string name)
        {
            SourcePath = sourcePath;
            Name = name;
        }

        public string SourcePath { get; }

        public string Name { get; }
    }

    /// <summary>Opens nothing. Approving, it copies the received text (UTF-8, no BOM) over the approved file.</summary>
    private sealed class Reporter : IReporterWithApprovalPower
    {
        public static readonly Reporter Instance = new();

        public void Report(string approved, string received)
        {
            if (Approving)
                File.WriteAllText(approved, File.ReadAllText(received), new UTF8Encoding(false));
        }

        public bool ApprovedWhenReported() => Approving;
    }
}
