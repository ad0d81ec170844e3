using System;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Threading;

namespace FlatMinima.Cli.Tests;

/// <summary>The result of one in-process run of the tool.</summary>
internal sealed record CliResult(int ExitCode, string Output, string Error)
{
    public JsonElement Json() => JsonDocument.Parse(Output).RootElement;

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

/// <summary>Runs the tool in-process and builds small image folders from the embedded subset.</summary>
internal static class Cli
{
    public static CliResult Run(params string[] args) => Run(CancellationToken.None, null, args);

    /// <summary>Runs with a token; <paramref name="onLine"/> sees every line written to standard output as it is written.</summary>
    public static CliResult Run(CancellationToken cancellation, Action<string>? onLine, params string[] args)
    {
        var output = new LineWriter(onLine);
        var error = new StringWriter();
        int code = FlatMinimaApp.Run(args, output, error, cancellation);
        return new CliResult(code, output.ToString(), error.ToString());
    }

    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Subset => Path.Combine(RepoRoot, "data", "fashion-mnist-subset");

    /// <summary>A new folder with the first <paramref name="perClass"/> training images of each of <paramref name="classes"/>.</summary>
    public static string ImageFolder(string name, int perClass, params string[] classes)
    {
        string root = Path.Combine(Path.GetTempPath(), "flatminima-cli-tests-" + Environment.ProcessId, name);
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        foreach (string c in classes)
        {
            Directory.CreateDirectory(Path.Combine(root, c));
            foreach (string file in Directory.GetFiles(Path.Combine(Subset, "train", c)).Order(StringComparer.Ordinal).Take(perClass))
                File.Copy(file, Path.Combine(root, c, Path.GetFileName(file)));
        }
        return root;
    }

    /// <summary>A path under the tests' temporary folder; its parent folder exists.</summary>
    public static string TempPath(string name)
    {
        string path = Path.Combine(Path.GetTempPath(), "flatminima-cli-tests-" + Environment.ProcessId, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FlatMinima.MLNet.sln"))) return dir.FullName;
        throw new InvalidOperationException("Could not find the repository root (FlatMinima.MLNet.sln) above " + AppContext.BaseDirectory);
    }

    private sealed class LineWriter(Action<string>? onLine) : StringWriter
    {
        private readonly StringBuilder _line = new();

        public override void Write(char value)
        {
            base.Write(value);
            if (value == '\n')
            {
                onLine?.Invoke(_line.ToString());
                _line.Clear();
            }
            else _line.Append(value);
        }

        public override void Write(string? value)
        {
            foreach (char c in value ?? "") Write(c);
        }

        public override void WriteLine(string? value)
        {
            Write(value);
            Write('\n');
        }
    }
}
