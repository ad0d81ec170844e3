using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using FlatMinima.Torch.Averaging;

namespace FlatMinima.Benchmarks;

/// <summary>One training of the domain-generalization benchmark: a method, a seed and a held-out domain (index into
/// <see cref="DomainGeneralizationResults.Angles"/>), with its out-of-domain test accuracy and SWAD's window.</summary>
internal sealed record DomainGeneralizationRun(string Method, int Seed, int TestDomain, double TestAccuracy, double ValidationAccuracy, long Steps,
    double Seconds, AveragingReport? Window);

/// <summary>
/// The runs of one domain-generalization configuration (the <c>--dg-results</c> JSON file): enough to print the report
/// again and to merge parts run separately (other test domains or seeds, <c>--dg-from A.json,B.json</c>).
/// </summary>
internal sealed record DomainGeneralizationResults(string Mode, string Configuration, int EvaluationFrequency, string[] Methods, double TotalMinutes,
    DomainGeneralizationRun[] Runs)
{
    /// <summary>The mode name these files carry.</summary>
    public const string ModeName = "domain-generalization";

    /// <summary>The six domains' rotations in degrees (domain index → angle).</summary>
    public static readonly int[] Angles = { 0, 15, 30, 45, 60, 75 };

    /// <summary>The methods, in the report's order.</summary>
    public static readonly string[] AllMethods = { "ERM", "ERM+SWA", "ERM+SWAD", "SAM", "SAM+SWAD" };

    /// <summary>Whether the method averages with SWAD (and so has a window and validates every evaluation period).</summary>
    public static bool UsesSwad(string method) => method.EndsWith("SWAD", StringComparison.Ordinal);

    /// <summary>The CSV form of <c>--dg-results FILE.csv</c>: one row per run.</summary>
    public static readonly (string Name, Func<DomainGeneralizationRun, object> Value)[] CsvColumns =
    {
        ("method", r => r.Method), ("seed", r => r.Seed), ("test_domain_degrees", r => Angles[r.TestDomain]), ("test_accuracy", r => r.TestAccuracy),
        ("validation_accuracy", r => r.ValidationAccuracy), ("steps", r => r.Steps), ("train_seconds", r => r.Seconds),
        ("window_start", r => r.Window?.StartStep?.ToString(CultureInfo.InvariantCulture) ?? ""),
        ("window_end", r => r.Window?.EndStep?.ToString(CultureInfo.InvariantCulture) ?? ""),
        ("averaged_steps", r => r.Window?.AveragedSteps.ToString(CultureInfo.InvariantCulture) ?? ""),
        ("loss_threshold", r => r.Window?.Threshold?.ToString("R", CultureInfo.InvariantCulture) ?? ""),
        ("early_stopped", r => r.Window is null ? "" : r.Window.EarlyStopped ? "yes" : "no"),
    };

    /// <summary>The seeds of the runs, ascending.</summary>
    public int[] SeedList() => Runs.Select(r => r.Seed).Distinct().Order().ToArray();

    /// <summary>The held-out domains of the runs, ascending.</summary>
    public int[] TestDomainList() => Runs.Select(r => r.TestDomain).Distinct().Order().ToArray();

    /// <summary>"0°,15°": domains as angles.</summary>
    public static string DomainText(IEnumerable<int> domains) => string.Join(",", domains.Select(d => Angles[d] + "°"));

    /// <summary>
    /// Reads <c>--dg-from</c>'s files and merges their runs into one set. Throws naming the file when one is not a results
    /// file of this mode, holds a run it cannot report or its configuration differs from the first's; naming the run when
    /// a (method, seed, test domain) appears twice or is missing (every method × seed × test domain must be covered).
    /// </summary>
    public static DomainGeneralizationResults Merge(IReadOnlyList<string> paths)
    {
        var files = paths.Select(path =>
        {
            var file = ResultFiles.Read<DomainGeneralizationResults>(path, "--dg-from");
            if (file.Mode != ModeName || file.Runs is null || file.Methods is null || file.Configuration is null)
                throw new InvalidDataException($"--dg-from {path} is not a {ModeName} results file (mode '{file.Mode}').");
            if (file.Runs.Length == 0) throw new InvalidDataException($"--dg-from {path} holds no runs.");
            foreach (var (run, row) in file.Runs.Select((r, i) => (r, i + 1)))
            {
                string problem = run.Method is null || !AllMethods.Contains(run.Method) || !file.Methods.Contains(run.Method) ? $"method '{run.Method}' is not one of the file's methods ({string.Join(",", file.Methods)})"
                    : run.TestDomain is < 0 or > 5 ? $"test domain {run.TestDomain} is not a domain index 0–5"
                    : UsesSwad(run.Method) && run.Window is null ? "the SWAD run has no window"
                    : "";
                if (problem.Length > 0) throw new InvalidDataException($"--dg-from {path}, run {row}: {problem}.");
            }
            return (Path: path, File: file);
        }).ToArray();
        var first = files[0];
        foreach (var (path, file) in files.Skip(1))
            if (file.Configuration != first.File.Configuration || file.EvaluationFrequency != first.File.EvaluationFrequency)
                throw new InvalidDataException($"--dg-from {path}: its configuration ({file.Configuration}) differs from {first.Path}'s ({first.File.Configuration}); " +
                                               "merge only parts of one configuration (other test domains or seeds).");
        var runs = files.SelectMany(f => f.File.Runs.Select(r => (f.Path, Run: r))).ToArray();
        foreach (var twice in runs.GroupBy(r => (r.Run.Method, r.Run.Seed, r.Run.TestDomain)).Where(g => g.Count() > 1))
            throw new InvalidDataException($"--dg-from: {twice.Key.Method}, seed {twice.Key.Seed}, test domain {Angles[twice.Key.TestDomain]}° appears {twice.Count()} times " +
                                           $"(in {string.Join(", ", twice.Select(r => r.Path))}); merge each run once.");
        var methods = AllMethods.Where(m => files.Any(f => f.File.Methods.Contains(m))).ToArray();
        var merged = new DomainGeneralizationResults(ModeName, first.File.Configuration, first.File.EvaluationFrequency, methods,
            files.Sum(f => f.File.TotalMinutes), runs.Select(r => r.Run).ToArray());
        merged.CheckCoverage();
        return merged;
    }

    /// <summary>Throws naming the first (method, seed, test domain) without a run: every cell of the report must come
    /// from the same seeds, every average from the same domains.</summary>
    public void CheckCoverage()
    {
        int[] seeds = SeedList(), domains = TestDomainList();
        foreach (var method in Methods)
            foreach (int seed in seeds)
                foreach (int domain in domains)
                    if (!Runs.Any(r => r.Method == method && r.Seed == seed && r.TestDomain == domain))
                        throw new InvalidDataException($"No {method} run with seed {seed} and test domain {Angles[domain]}°: the runs must cover every method × seed × test domain " +
                                                       "(with --dg-from, the files together).");
    }

    // DomainBed's collect_results: mean ± standard error (population std / √n) over trial seeds.
    private static (double Mean, double Error) PopulationMeanAndError(IReadOnlyList<double> values)
    {
        double mean = values.Average();
        double std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Count);
        return (mean, std / Math.Sqrt(values.Count));
    }

    /// <summary>
    /// The report: accuracy per method and test domain, the average over domains, the gap to ERM paired by seed, the
    /// (seed, domain) pairs above ERM, the mean training time with its ratio to ERM's, and SWAD's windows
    /// (<see cref="CheckCoverage"/> first).
    /// </summary>
    public string Report()
    {
        CheckCoverage();
        int[] seeds = SeedList(), domains = TestDomainList();
        DomainGeneralizationRun Find(string method, int seed, int domain) => Runs.First(r => r.Method == method && r.Seed == seed && r.TestDomain == domain);
        double SeedAverage(string method, int seed) => domains.Average(d => 100 * Find(method, seed, d).TestAccuracy);
        bool hasErm = Methods.Contains("ERM");
        double ermSeconds = hasErm ? Runs.Where(r => r.Method == "ERM").Average(r => r.Seconds) : double.NaN;

        var s = new StringBuilder();
        s.AppendLine($"Out-of-domain test accuracy % (test domain's \"in\" split), mean ± standard error over {seeds.Length} seeds; {TotalMinutes:F1} min in total.");
        s.AppendLine();
        s.AppendLine("| method | " + string.Join(" | ", domains.Select(d => Angles[d] + "°")) + " | average | − ERM (paired by seed) | above ERM (seed × domain) | training s per run |");
        s.AppendLine("|---|" + string.Concat(domains.Select(_ => "---|")) + "---|---|---|---|");
        foreach (var method in Methods)
        {
            var cells = domains.Select(d =>
            {
                var (m, e) = PopulationMeanAndError(seeds.Select(seed => 100 * Find(method, seed, d).TestAccuracy).ToArray());
                return $"{m:F1} ± {e:F1}";
            });
            var (am, ae) = PopulationMeanAndError(seeds.Select(seed => SeedAverage(method, seed)).ToArray());
            string gap = "—", above = "—";
            if (hasErm && method != "ERM")
            {
                var (gm, ge) = ReportText.MeanAndError(seeds.Select(seed => SeedAverage(method, seed) - SeedAverage("ERM", seed)).ToArray());
                gap = seeds.Length > 1 ? $"{gm:+0.0;-0.0} ± {ge:F1}" : $"{gm:+0.0;-0.0} (one seed)";
                int wins = seeds.Sum(seed => domains.Count(d => Find(method, seed, d).TestAccuracy > Find("ERM", seed, d).TestAccuracy));
                above = $"{wins} of {seeds.Length * domains.Length}";
            }
            double seconds = Runs.Where(r => r.Method == method).Average(r => r.Seconds);
            string time = hasErm && method != "ERM" ? $"{seconds:F0} ({seconds / ermSeconds:F2}×)" : $"{seconds:F0}";
            s.AppendLine($"| {method} | {string.Join(" | ", cells)} | **{am:F1} ± {ae:F1}** | {gap} | {above} | {time} |");
        }
        s.AppendLine();
        s.AppendLine("Cells and average: mean ± DomainBed's standard error (population standard deviation / √seeds) of each seed's accuracy, or of each seed's " +
                     "average over the test domains. − ERM: each seed's average minus ERM's on the same seed, mean ± the sample standard error (sample " +
                     "standard deviation / √seeds). Above ERM: the (seed, test domain) pairs where the method's accuracy is higher than ERM's. Training s: the " +
                     "mean wall time of one training, with its ratio to ERM's.");
        var swadRuns = Runs.Where(r => UsesSwad(r.Method))
            .OrderBy(r => Array.IndexOf(AllMethods, r.Method)).ThenBy(r => r.Seed).ThenBy(r => r.TestDomain).ToArray();
        if (swadRuns.Length == 0) return s.ToString();
        s.AppendLine();
        s.AppendLine("SWAD windows (steps, 1-based; segments of " + EvaluationFrequency + " steps):");
        s.AppendLine();
        s.AppendLine("| method | seed | test domain | window | averaged | threshold | early stop | test acc % |");
        s.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in swadRuns)
        {
            var w = r.Window!;
            s.AppendLine($"| {r.Method} | {r.Seed} | {Angles[r.TestDomain]}° | {w.StartStep}–{w.EndStep} | {w.AveragedSteps} | {w.Threshold?.ToString("F4") ?? "not converged"} | " +
                         $"{(w.EarlyStopped ? "yes" : "no")} | {100 * r.TestAccuracy:F1} |");
        }
        return s.ToString();
    }
}
