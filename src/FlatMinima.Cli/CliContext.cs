using System;
using System.IO;
using System.Text.Json;
using System.Threading;
using Spectre.Console;

namespace FlatMinima.Cli;

/// <summary>Where a command writes and what the whole invocation asked for (<c>--json</c>, <c>--verbose</c>, Ctrl+C).</summary>
public sealed class CliContext
{
    /// <summary>Creates the context over <paramref name="console"/> (standard output) and <paramref name="error"/>.</summary>
    public CliContext(IAnsiConsole console, TextWriter error, CancellationToken cancellation)
    {
        Console = console;
        Out = console.Profile.Out.Writer;
        Error = error;
        Cancellation = cancellation;
    }

    /// <summary>The Spectre console: live progress when it is an interactive terminal.</summary>
    public IAnsiConsole Console { get; }

    /// <summary>Standard output as plain text (lines are never wrapped, so scripts can read them).</summary>
    public TextWriter Out { get; }

    /// <summary>Standard error: errors and hints.</summary>
    public TextWriter Error { get; }

    /// <summary>Cancelled by Ctrl+C.</summary>
    public CancellationToken Cancellation { get; }

    /// <summary><c>--json</c>: one JSON document on standard output, no other output there.</summary>
    public bool Json { get; set; }

    /// <summary><c>--verbose</c>: the library's log and the stack of errors.</summary>
    public bool Verbose { get; set; }

    /// <summary>The output is a terminal that can redraw a live display (and not <c>--json</c>).</summary>
    public bool Live => !Json && Console.Profile.Capabilities.Interactive && Console.Profile.Capabilities.Ansi;

    /// <summary>Writes a line of human-readable output (nothing under <c>--json</c>).</summary>
    public void Line(string text = "")
    {
        if (!Json) Out.WriteLine(text);
    }

    /// <summary>Writes a progress note: to standard output, or to standard error under <c>--json</c>.</summary>
    public void Status(string text)
    {
        if (Json) Error.WriteLine(text);
        else Out.WriteLine(text);
    }

    /// <summary>Writes a line to standard error whatever the mode (progress notes under <c>--json</c>, warnings).</summary>
    public void Note(string text) => Error.WriteLine(text);

    /// <summary>Writes <paramref name="value"/> as the JSON document of a <c>--json</c> run.</summary>
    public void WriteJson(object value)
    {
        Out.WriteLine(JsonSerializer.Serialize(value, value.GetType(), ModelFile.Json));
        Out.Flush();
    }
}
