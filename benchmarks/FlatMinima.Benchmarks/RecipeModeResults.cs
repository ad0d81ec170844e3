using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Serialization;
using FlatMinima.Torch.Training;

namespace FlatMinima.Benchmarks;

/// <summary>
/// What the label-noise and clean-budget reports add about cost: forward-backward passes per optimizer step (from the
/// trainer's epoch reports) and the accuracy gained over SGD per extra second of training.
/// </summary>
internal static class MethodCost
{
    /// <summary>
    /// Forward-backward passes per optimizer step of a run, measured from its <see cref="EpochReport"/>s: a step takes
    /// one pass, a sharpness-aware step one more (SAM/ASAM: 2 per step; LookSAM/RST/AE-SAM: 1 + the share of
    /// sharpness-aware steps). MESA's extra teacher forward pass (no backward) is not counted. NaN without steps.
    /// </summary>
    public static double PassesPerStep(IReadOnlyList<EpochReport> reports)
    {
        long steps = reports.Sum(r => r.Steps);
        return steps == 0 ? double.NaN : (double)(steps + reports.Sum(r => r.SharpnessAwareSteps)) / steps;
    }

    /// <summary>
    /// Accuracy gained over SGD per extra second of training: <paramref name="gainPoints"/> (percentage points) ÷
    /// (<paramref name="seconds"/> − <paramref name="sgdSeconds"/>), as table text; "n/a" when SGD was not run, the gain
    /// is unknown, or the method was not slower than SGD.
    /// </summary>
    public static string GainPerExtraSecond(double gainPoints, double seconds, double? sgdSeconds)
    {
        if (sgdSeconds is not double sgd || double.IsNaN(gainPoints)) return "n/a";
        double extra = seconds - sgd;
        return extra > 0 ? (gainPoints / extra).ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture) : "n/a";
    }

    /// <summary>The "passes/step" cell: mean over runs, 2 decimals ("—" when unknown).</summary>
    public static string Passes(IEnumerable<double> perRun)
    {
        var known = perRun.Where(v => !double.IsNaN(v)).ToArray();
        return known.Length == 0 ? "—" : known.Average().ToString("F2", CultureInfo.InvariantCulture);
    }
}

/// <summary>One point of an accuracy-vs-time plot request (<c>FlatMinima.BenchmarkPlots</c>'s JSON input).</summary>
internal sealed record PlotPoint(string Label, double X, double Y, double YError);

/// <summary>A colored group of <see cref="PlotPoint"/>s (one noise rate).</summary>
internal sealed record PlotSeries(string Name, PlotPoint[] Points);

/// <summary>A plot request: title, axis labels and series.</summary>
internal sealed record PlotRequest(string Title, string XLabel, string YLabel, PlotSeries[] Series);

/// <summary>
/// Writes PNG plots through the <c>FlatMinima.BenchmarkPlots</c> project, in a child process (<c>dotnet run</c>): ScottPlot
/// and this project's ImageAnalytics need different SkiaSharp versions, so they never share a process.
/// </summary>
internal static class BenchmarkPlots
{
    /// <summary>The plot project, relative to the repository root.</summary>
    public const string Project = "benchmarks/FlatMinima.BenchmarkPlots";

    /// <summary>Writes <paramref name="request"/> as a PNG to <paramref name="png"/>; on failure prints why and how to retry, and keeps the request file.</summary>
    public static void Save(PlotRequest request, string png, string repoRoot)
    {
        string requestFile = Path.Combine(Path.GetTempPath(), $"flatminima-plot-{Environment.ProcessId}-{Guid.NewGuid():N}.json");
        File.WriteAllText(requestFile, JsonSerializer.Serialize(request, ResultFiles.Json));
        string project = Path.Combine(repoRoot, Project);
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        foreach (var a in new[] { "run", "-c", "Release", "--project", project, "--", requestFile, Path.GetFullPath(png) }) start.ArgumentList.Add(a);
        string retry = $"dotnet run -c Release --project {Project} -- {requestFile} {png}";
        try
        {
            using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
            process.WaitForExit();
            if (process.ExitCode == 0)
            {
                File.Delete(requestFile);
                return;
            }
            Console.WriteLine($"The plot was not written (exit code {process.ExitCode}); the request is kept: {retry}");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            Console.WriteLine($"The plot was not written ({e.Message}); the request is kept: {retry}");
        }
    }

    /// <summary>Throws naming <paramref name="option"/> unless <paramref name="path"/> is null or ends in .png.</summary>
    public static void CheckPng(string? path, string option)
    {
        if (path is not null && !path.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{option} {path}: the plot is a PNG; name a file ending in .png.");
    }
}

/// <summary>The per-run results files of the label-noise, clean-budget and domain-generalization modes (<c>-results FILE.json|FILE.csv</c>, <c>-from FILE.json</c>).</summary>
internal static class ResultFiles
{
    /// <summary>Indented JSON that keeps NaN (an undefined memorization share, for example).</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Throws naming <paramref name="option"/> unless <paramref name="path"/> is null or ends in .json or .csv.</summary>
    public static void CheckResults(string? path, string option)
    {
        if (path is not null && !path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{option} {path}: name a .json file (every run; the report can be regenerated from it) or a .csv file (one row per run).");
    }

    /// <summary>Throws naming <paramref name="option"/> unless <paramref name="path"/> is null or an existing .json file.</summary>
    public static void CheckSource(string? path, string option)
    {
        if (path is null) return;
        if (!path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{option} {path}: the results to regenerate from are a .json file written by the -results option.");
        if (!File.Exists(path)) throw new FileNotFoundException($"{option} {path}: no such file.", path);
    }

    /// <summary>Writes <paramref name="file"/> as JSON, or as CSV with the columns of <paramref name="csvColumns"/> (one row per run);
    /// says so on the console unless <paramref name="quiet"/>.</summary>
    public static void Write<TFile, TRun>(string path, TFile file, IEnumerable<TRun> runs, (string Name, Func<TRun, object> Value)[] csvColumns, bool quiet = false)
    {
        if (path.EndsWith(".csv", StringComparison.OrdinalIgnoreCase))
        {
            var lines = new List<string> { string.Join(",", csvColumns.Select(c => c.Name)) };
            lines.AddRange(runs.Select(r => string.Join(",", csvColumns.Select(c => Csv(c.Value(r))))));
            File.WriteAllLines(path, lines);
        }
        else
            File.WriteAllText(path, JsonSerializer.Serialize(file, Json));
        if (!quiet) Console.WriteLine($"Per-run results written to {path}.");
    }

    /// <summary>Reads a JSON results file, naming it when it does not parse.</summary>
    public static TFile Read<TFile>(string path, string option) where TFile : class
    {
        try
        {
            return JsonSerializer.Deserialize<TFile>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{option} {path} holds no results.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{option} {path} is not a results file of this mode: {e.Message}", e);
        }
    }

    private static string Csv(object value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => Quote(value?.ToString() ?? ""),
    };

    private static string Quote(string text) => text.IndexOfAny(new[] { ',', '"', '\n' }) < 0 ? text : "\"" + text.Replace("\"", "\"\"") + "\"";
}

/// <summary>Mean ± standard error and the report's machine header.</summary>
internal static class ReportText
{
    /// <summary>Mean and standard error (sample standard deviation / √n; 0 for one value; NaN for none).</summary>
    public static (double Mean, double Error) MeanAndError(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return (double.NaN, double.NaN);
        double mean = values.Average();
        double se = values.Count > 1 ? Math.Sqrt(values.Sum(a => (a - mean) * (a - mean)) / (values.Count - 1) / values.Count) : 0;
        return (mean, se);
    }

    /// <summary>"mean ± SE" in percentage points, one decimal (the values are fractions).</summary>
    public static string Percent(IReadOnlyList<double> values)
    {
        var (mean, se) = MeanAndError(values);
        return double.IsNaN(mean) ? "—" : $"{100 * mean:F2} ± {100 * se:F2}";
    }

    /// <summary>The 1-, 5- and 15-minute load averages (Linux), or "n/a".</summary>
    public static string LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{parts[0]} {parts[1]} {parts[2]}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "n/a";
        }
    }

    /// <summary>The report file's first lines: title, date, machine, load average at the start, command.</summary>
    public static string Header(string title, string loadAtStart) =>
        $"# {title} — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n\n" +
        $"Machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}, " +
        $"TorchSharp threads {TorchSharp.torch.get_num_threads()}; load average (1/5/15 min) at the start {loadAtStart}, at the end {LoadAverage()}.\n\n" +
        $"Command: `dotnet run -c Release --project benchmarks/FlatMinima.Benchmarks -- {string.Join(' ', Environment.GetCommandLineArgs().Skip(1))}`\n";
}
