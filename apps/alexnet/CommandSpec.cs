using System;

namespace AlexNet.Aot.Cli;

/// <summary>What a command accepts, its help text, and what runs it.</summary>
/// <param name="Name">The command word (<c>info</c>, <c>run</c>, ...).</param>
/// <param name="Synopsis">One usage line, without the leading <c>alexnet</c>.</param>
/// <param name="Summary">One line saying what it does.</param>
/// <param name="Details">The option descriptions shown by <c>alexnet COMMAND --help</c>.</param>
/// <param name="ValueOptions">Options that take a value.</param>
/// <param name="Flags">Options without a value.</param>
/// <param name="AllowsPositionals">Whether arguments that are not options are accepted.</param>
/// <param name="Run">Runs the command; returns the exit code.</param>
/// <param name="OptionalValues">Options whose value may be left out (<c>--resume</c> or <c>--resume FILE</c>): the next argument
/// is taken as the value unless it starts with '-'.</param>
/// <param name="Hidden">Left out of <c>alexnet --help</c> (a maintainers' command; <c>alexnet COMMAND --help</c> still works).</param>
internal sealed record CommandSpec(
    string Name,
    string Synopsis,
    string Summary,
    string Details,
    string[] ValueOptions,
    string[] Flags,
    bool AllowsPositionals,
    Func<ArgReader, int> Run,
    string[]? OptionalValues = null,
    bool Hidden = false);
