using System;

namespace FlatMinima.Cli;

/// <summary>The process exit codes of <c>flatminima</c> (documented in docs/cli.md).</summary>
public static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>An unexpected error (a bug or an environment problem); <c>--verbose</c> prints the stack.</summary>
    public const int InternalError = 1;

    /// <summary>The command line is wrong: an unknown command or option, a missing or invalid value.</summary>
    public const int UsageError = 2;

    /// <summary>The data or a file is unusable: a missing or empty folder, one class, no readable image, a damaged model zip.</summary>
    public const int DataError = 3;

    /// <summary>Training failed: the loss diverged, or the options do not fit the data.</summary>
    public const int TrainingFailed = 4;

    /// <summary>Stopped by Ctrl+C (the last completed epoch's model and the checkpoint are kept when there is one).</summary>
    public const int Cancelled = 130;
}

/// <summary>An error reported as one readable line plus a hint, with its exit code.</summary>
public sealed class CliException : Exception
{
    /// <summary>Creates the error.</summary>
    public CliException(int exitCode, string message, string? hint = null, Exception? inner = null)
        : base(message, inner)
    {
        ExitCode = exitCode;
        Hint = hint;
    }

    /// <summary>The process exit code (<see cref="ExitCodes"/>).</summary>
    public int ExitCode { get; }

    /// <summary>What to do about it, or null.</summary>
    public string? Hint { get; }

    /// <summary>A usage error (<see cref="ExitCodes.UsageError"/>).</summary>
    public static CliException Usage(string message, string? hint = null) => new(ExitCodes.UsageError, message, hint);

    /// <summary>A data error (<see cref="ExitCodes.DataError"/>).</summary>
    public static CliException DataError(string message, string? hint = null, Exception? inner = null) => new(ExitCodes.DataError, message, hint, inner);
}
