using System;
using System.IO;
using System.Text;

namespace AlexNet.Aot.Cli;

/// <summary>The <c>alexnet</c> command line: dispatch, usage, and the one place errors become exit codes.</summary>
internal static class Program
{
    private static readonly CommandSpec[] s_commands =
    {
        InfoCommand.Spec,
        RunCommand.Spec,
        ClassifyCommand.Spec,
        EvalCommand.Spec,
        TrainCommand.Spec,
        ConvertCommand.Spec,
        CompareCommand.Spec,
        MakeInputCommand.Spec,
        BenchCommand.Spec,
        SoakCommand.Spec,
    };

    public static int Main(string[] args)
    {
        try
        {
            return Dispatch(args);
        }
        catch (UsageException e)
        {
            Fail(e.Message);
            Console.Error.WriteLine("Run 'alexnet --help' for usage.");
            return ExitCodes.Usage;
        }
        catch (CliException e)
        {
            return Fail(e.Message);
        }
        catch (WeightsException e)
        {
            return Fail(e.Message);
        }
        catch (FileNotFoundException e)
        {
            return Fail(e.FileName is null ? e.Message : $"{e.FileName}: file not found");
        }
        catch (DirectoryNotFoundException e)
        {
            return Fail(e.Message);
        }
        catch (IOException e)
        {
            return Fail(e.Message);
        }
        catch (UnauthorizedAccessException e)
        {
            return Fail(e.Message);
        }
        catch (OutOfMemoryException)
        {
            return Fail("out of memory (try a smaller --batch or fewer inputs)");
        }
        catch (Exception e)
        {
            return Fail($"unexpected error ({e.GetType().Name}): {e.Message}");
        }
    }

    private static int Dispatch(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.Out.Write(Usage());
            return ExitCodes.Ok;
        }
        if (args[0] == "help")
        {
            if (args.Length == 1)
            {
                Console.Out.Write(Usage());
                return ExitCodes.Ok;
            }
            Console.Out.Write(CommandUsage(Find(args[1])));
            return ExitCodes.Ok;
        }

        CommandSpec command = Find(args[0]);
        var reader = new ArgReader(command, args.AsSpan(1));
        if (reader.HelpRequested)
        {
            Console.Out.Write(CommandUsage(command));
            return ExitCodes.Ok;
        }
        int code = command.Run(reader);
        Console.Out.Flush();
        return code;
    }

    private static CommandSpec Find(string name)
    {
        foreach (CommandSpec c in s_commands)
            if (c.Name == name) return c;
        if (name.StartsWith('-'))
            throw new UsageException($"unknown option '{name}' (options go after the command)");
        throw new UsageException($"unknown command '{name}'");
    }

    /// <summary>Writes "alexnet: MESSAGE" to stderr; returns the runtime-failure exit code.</summary>
    private static int Fail(string message)
    {
        Console.Out.Flush();
        Console.Error.WriteLine("alexnet: " + message);
        return ExitCodes.Failure;
    }

    private static string Usage()
    {
        var sb = new StringBuilder();
        sb.Append("alexnet: AlexNet-family image classifiers compiled to native code\n\n");
        sb.Append("Usage:\n");
        foreach (CommandSpec c in s_commands)
            if (!c.Hidden) sb.Append("  alexnet ").Append(c.Synopsis).Append('\n');
        sb.Append("  alexnet help COMMAND | alexnet COMMAND --help\n\n");
        sb.Append("Commands:\n");
        foreach (CommandSpec c in s_commands)
            if (!c.Hidden) sb.Append("  ").Append(c.Name.PadRight(11)).Append(c.Summary).Append('\n');
        sb.Append("\nModels: ").Append(ModelCommon.ModelNames()).Append('\n');
        sb.Append("Tensors are raw little-endian float32 files (.f32), NCHW, no header.\n");
        sb.Append("Data (train, eval): a folder of Fashion-MNIST IDX files ('fashion-mnist' for the installed one) or of class folders.\n");
        sb.Append("Without --weights, run, classify and eval use the model's bundled weights (ALEXNET_WEIGHTS_DIR, weights/, model-spec/weights/).\n");
        sb.Append("Exit codes: 0 success, 1 failure (files, weights, inputs), 2 wrong command line.\n");
        return sb.ToString();
    }

    private static string CommandUsage(CommandSpec c) =>
        $"Usage: alexnet {c.Synopsis}\n\n{c.Summary}\n\n{c.Details}";
}
