using System;

namespace AlexNet.Aot.Cli;

/// <summary>A wrong command line: unknown command or option, a missing or malformed value. Exit code 2.</summary>
internal sealed class UsageException : Exception
{
    public UsageException(string message) : base(message) { }
}

/// <summary>A failure while doing the work: a missing or malformed file, a wrong input length. Exit code 1.</summary>
internal sealed class CliException : Exception
{
    public CliException(string message) : base(message) { }
}

/// <summary>The process exit codes.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
}
