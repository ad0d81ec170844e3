using System.CommandLine;

namespace FlatMinima.Cli;

/// <summary><c>flatminima codegen</c>: a console project that consumes the model.</summary>
public static class CodegenCommand
{
    /// <summary>The command.</summary>
    public static Command Create(CliContext context)
    {
        var command = new Command("codegen", "Generate a console project that loads the model and predicts.");
        return command;
    }
}
