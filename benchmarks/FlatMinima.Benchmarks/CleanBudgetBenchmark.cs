using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Clean Fashion-MNIST at a fixed budget (mode <c>clean-budget</c>): all 60,000 training images, Standard augmentation,
/// SGD vs SAM vs SAM+SWA (any of <see cref="FlatMinimumMethods.All"/>) with one recipe and the same epochs, several seeds,
/// tested on the 10,000 test images. Reports test accuracy mean ± SE, the paired gap to SGD, the wall time and its ratio
/// to SGD's.
/// </summary>
internal static class CleanBudgetBenchmark
{
    private sealed record RunResult(string Method, int Seed, double TestAccuracy, double LastEpochTrainAccuracy, double TrainSeconds, double ImagesPerSecond, string Averaging,
        double PassesPerStep);

    // The -results JSON file: enough to print the report and draw the plot again (-from).
    private sealed record ResultsFile(string Mode, string Preset, string Recipe, int TrainImages, int TestImages, int[] Seeds, string[] Methods, int Epochs,
        double TotalMinutes, RunResult[] Runs);

    private const string ModeName = "clean-budget";

    public static void Run(BenchmarkOptions options)
    {
        var o = options.CleanBudget;
        o.Validate();
        if (o.From is string from)
        {
            Replay(options, from);
            return;
        }
        var methods = FlatMinimumMethods.Check(o.Methods, "--budget-methods");
        var recipe = o.Recipe;
        string loadAtStart = ReportText.LoadAverage();
        var trainImages = BenchmarkData.Load(options, train: true, o.TrainImages);
        var testImages = BenchmarkData.Load(options, train: false, o.TestImages);

        var header = new StringBuilder();
        header.AppendLine();
        header.AppendLine($"## Clean Fashion-MNIST at a fixed budget: {trainImages.Count:N0} training images, {testImages.Count:N0} test images — preset {o.PresetText}");
        header.AppendLine();
        header.AppendLine($"* **Methods** {string.Join(", ", methods.Select(FlatMinimumMethods.Title))}, the same epochs and seeds ({string.Join(", ", o.Seeds)}; a seed sets the " +
                          "initialization — the same for every method —, the shuffling and the augmentation), trained by the Torch layer's `ClassifierTrainer` on in-memory tensors. " +
                          $"Data: the first {trainImages.Count:N0} training and the first {testImages.Count:N0} test images.");
        header.AppendLine($"* **Recipe.** {recipe.Describe()}");
        header.AppendLine($"* **Budget.** {Budget(o, methods, trainImages.Count)}");
        header.AppendLine("* **Columns.** Test accuracy of the final model (averaged weights for SWA/EMA). Last-epoch train acc.: the running accuracy of the last epoch's " +
                          "clean passes (train mode, augmented, online weights). Train s: wall time of training; × SGD: its ratio to SGD's mean; images/s = epochs × training " +
                          "images ÷ train s (a SAM step counted once). One untimed warm-up epoch of SGD and SAM on 256 training images precedes the table.");
        header.AppendLine();
        Console.Write(header.ToString());
        if (options.PlanOnly)
        {
            Console.WriteLine("(--plan-only: nothing trained.)");
            return;
        }
        Console.WriteLine("Runs as they finish:");
        Console.WriteLine();

        FlatMinimumMethods.WarmUp(trainImages, recipe, methods);
        var train = trainImages.ToTensorDataset(FlatMinimumMethods.PixelMean, FlatMinimumMethods.PixelStd);
        var test = testImages.ToTensorDataset(FlatMinimumMethods.PixelMean, FlatMinimumMethods.PixelStd);
        var results = new List<RunResult>();
        var clock = Stopwatch.StartNew();
        foreach (int seed in o.Seeds)
            foreach (var method in methods)
            {
                RunResult result;
                using (var scope = NewDisposeScope())
                {
                    var outcome = FlatMinimumMethods.Train(method, recipe, seed, train, validation: null, perEpochTest: null);
                    using var model = outcome.Model;
                    var predictions = FlatMinimumMethods.Predict(model, test.Inputs);
                    result = new RunResult(method, seed, FlatMinimumMethods.Accuracy(predictions, test.Labels), outcome.Reports[^1].TrainAccuracy, outcome.TrainSeconds,
                        (double)outcome.Reports.Count * train.Count / outcome.TrainSeconds, outcome.Reports[^1].Averaging?.ToString() ?? "", MethodCost.PassesPerStep(outcome.Reports));
                }
                results.Add(result);
                Console.WriteLine($"{FlatMinimumMethods.Title(method)} seed {seed}: test {result.TestAccuracy:P2}, last-epoch train {result.LastEpochTrainAccuracy:P2}, " +
                                  $"{result.TrainSeconds:F0} s, {result.ImagesPerSecond:N0} images/s{(result.Averaging.Length > 0 ? "; " + result.Averaging : "")}   [{clock.Elapsed.TotalMinutes:F1} min]");
                Console.Out.Flush();
            }
        foreach (var t in new[] { train.Inputs, train.Labels, test.Inputs, test.Labels }) t.Dispose();

        string report = Report(results, o, methods, clock.Elapsed);
        Console.Write(report);
        if (o.Output is string file)
        {
            File.WriteAllText(file, ReportText.Header("FlatMinima clean-budget benchmark", loadAtStart) + header + report);
            Console.WriteLine($"Written to {file}.");
        }
        if (o.Results is string resultsFile)
            ResultFiles.Write(resultsFile, new ResultsFile(ModeName, o.PresetText, recipe.Describe(), trainImages.Count, testImages.Count, o.Seeds, methods, o.Epochs,
                clock.Elapsed.TotalMinutes, results.ToArray()), results, CsvColumns);
        if (o.Plot is string plot) BenchmarkPlots.Save(PlotRequest(results, o, methods), plot, options.RepoRoot);
    }

    // -from: the report and plot of a -results JSON file, without training.
    private static void Replay(BenchmarkOptions options, string from)
    {
        var file = ResultFiles.Read<ResultsFile>(from, "--budget-from");
        if (file.Mode != ModeName || file.Runs is null || file.Seeds is null || file.Methods is null)
            throw new InvalidDataException($"--budget-from {from} is not a {ModeName} results file (mode '{file.Mode}').");
        var o = options.CleanBudget with { Seeds = file.Seeds, Epochs = file.Epochs };
        var methods = FlatMinimumMethods.Check(file.Methods, "--budget-from methods");
        var results = file.Runs.ToList();
        Console.WriteLine();
        Console.WriteLine($"## Clean Fashion-MNIST at a fixed budget: {file.TrainImages:N0} training images, {file.TestImages:N0} test images — regenerated from {from} " +
                          $"(preset {file.Preset}, {results.Count} runs)");
        string report = Report(results, o, methods, TimeSpan.FromMinutes(file.TotalMinutes));
        o.WriteReplay("FlatMinima clean-budget benchmark", from, file.Recipe, report, file, results, CsvColumns, () => PlotRequest(results, o, methods), options.RepoRoot);
    }

    private static readonly (string Name, Func<RunResult, object> Value)[] CsvColumns =
    {
        ("method", r => r.Method), ("seed", r => r.Seed), ("test_accuracy", r => r.TestAccuracy), ("last_epoch_train_accuracy", r => r.LastEpochTrainAccuracy),
        ("train_seconds", r => r.TrainSeconds), ("images_per_second", r => r.ImagesPerSecond), ("passes_per_step", r => r.PassesPerStep), ("averaging", r => r.Averaging),
    };

    // Test accuracy (mean ± SE over seeds, %) against mean training seconds, one point per method.
    private static PlotRequest PlotRequest(List<RunResult> results, CleanBudgetOptions o, string[] methods)
    {
        var points = methods.Select(m => results.Where(r => r.Method == m).ToList()).Where(runs => runs.Count > 0).Select(runs =>
        {
            var (mean, error) = ReportText.MeanAndError(runs.Select(r => r.TestAccuracy).ToList());
            return new PlotPoint(FlatMinimumMethods.Title(runs[0].Method), runs.Average(r => r.TrainSeconds), 100 * mean, 100 * error);
        }).ToArray();
        return new PlotRequest($"Clean Fashion-MNIST, {o.Epochs} epoch{(o.Epochs == 1 ? "" : "s")}: test accuracy vs training time ({o.Seeds.Length} seed{(o.Seeds.Length == 1 ? "" : "s")}, mean ± SE)",
            "training wall time per run (s, mean over seeds)", "test accuracy, final model (%)", new[] { new PlotSeries("", points) });
    }

    /// <summary>The budget line: epochs × images × seeds per method and the estimated minutes (measured step rates).</summary>
    private static string Budget(CleanBudgetOptions o, string[] methods, int trainCount)
    {
        string steps = $"{o.Epochs} epochs × {trainCount:N0} images × {o.Seeds.Length} seeds per method";
        var arch = o.Architecture;
        if (FlatMinimumMethods.EstimatedImagesPerSecond("sgd", arch) is not double sgd || FlatMinimumMethods.EstimatedImagesPerSecond("sam", arch) is not double sam)
            return $"{steps}; no time estimate for {arch}.";
        var perMethod = methods.Select(m => (Method: m, Seconds: (double)o.Epochs * trainCount * o.Seeds.Length / (FlatMinimumMethods.EstimatedImagesPerSecond(m, arch) ?? sam))).ToArray();
        return $"{steps}. At {arch}'s measured SGD ≈ {sgd:N0} and SAM ≈ {sam:N0} training images/s (batch 128, 2 idle cores; ASAM counted as SAM): " +
               string.Join(" + ", perMethod.Select(p => $"{FlatMinimumMethods.Title(p.Method)} {p.Seconds / 60:F1} min")) +
               $" ≈ {perMethod.Sum(p => p.Seconds) / 60:F0} min, plus loading and {methods.Length * o.Seeds.Length} test evaluations (seconds)." +
               (arch == Torch.Models.ImageClassifierArchitecture.SmallCnn ? $" SmallCnn rather than ResNet-20, whose measured step rates (SGD ≈ " +
                $"{FlatMinimumMethods.ResNet20SgdImagesPerSecond:N0}, SAM ≈ {FlatMinimumMethods.ResNet20SamImagesPerSecond:N0} images/s at 3×32×32) would make the same table " +
                $"≈ {methods.Sum(m => (double)o.Epochs * trainCount * o.Seeds.Length / (m == "sgd" ? FlatMinimumMethods.ResNet20SgdImagesPerSecond : FlatMinimumMethods.ResNet20SamImagesPerSecond)) / 3600:F1} h." : "");
    }

    private static string Report(List<RunResult> results, CleanBudgetOptions o, string[] methods, TimeSpan elapsed)
    {
        static string Points((double Mean, double Error) g) => double.IsNaN(g.Mean) ? "—" : string.Create(CultureInfo.InvariantCulture, $"{100 * g.Mean:+0.00;-0.00} ± {100 * g.Error:F2}");
        var sgd = results.Where(r => r.Method == "sgd").ToList();
        double? sgdSeconds = sgd.Count > 0 ? sgd.Average(r => r.TrainSeconds) : null;
        var s = new StringBuilder();
        s.AppendLine();
        s.AppendLine($"### Per method (mean ± standard error over {o.Seeds.Length} seeds; accuracies in %)");
        s.AppendLine();
        s.AppendLine("| method | test acc. | − SGD (points, paired by seed) | last-epoch train acc. | train s (mean) | × SGD | images/s | passes/step | gain over SGD per extra s (points/s) |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var method in methods)
        {
            var runs = results.Where(r => r.Method == method).ToList();
            if (runs.Count == 0) continue;
            var paired = runs.Select(r => (r, b: sgd.FirstOrDefault(x => x.Seed == r.Seed))).Where(p => p.b is not null).ToList();
            var differences = paired.Select(p => p.r.TestAccuracy - p.b!.TestAccuracy).ToList();
            var gapValue = ReportText.MeanAndError(differences);
            string gap = method == "sgd" ? "—" : Points(gapValue);
            double seconds = runs.Average(r => r.TrainSeconds);
            // The extra seconds over the same seed pairs as the accuracy gap.
            string gain = method == "sgd" ? "—"
                : MethodCost.GainPerExtraSecond(100 * gapValue.Mean, paired.Count > 0 ? paired.Average(p => p.r.TrainSeconds) : seconds,
                    paired.Count > 0 ? paired.Average(p => p.b!.TrainSeconds) : null);
            s.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {FlatMinimumMethods.Title(method)} | {ReportText.Percent(runs.Select(r => r.TestAccuracy).ToList())} | {gap} | " +
                $"{ReportText.Percent(runs.Select(r => r.LastEpochTrainAccuracy).ToList())} | {seconds:F0} | {(sgdSeconds is double b ? (seconds / b).ToString("F2", CultureInfo.InvariantCulture) : "—")} | " +
                $"{runs.Average(r => r.ImagesPerSecond):N0} | {MethodCost.Passes(runs.Select(r => r.PassesPerStep))} | {gain} |"));
        }
        s.AppendLine();
        s.AppendLine("Passes/step: forward-backward passes per optimizer step, measured from the trainer's epoch reports (1 + sharpness-aware steps ÷ steps; " +
                     "MESA's teacher forward not counted). Gain over SGD per extra s: the paired gap to SGD (points) ÷ (the method's mean train s − SGD's, over the same seeds), " +
                     "n/a when the method was not slower than SGD or SGD was not run.");
        s.AppendLine();
        s.AppendLine("### Per run");
        s.AppendLine();
        s.AppendLine("| method | seed | test acc. % | last-epoch train acc. % | train s | images/s | averaging |");
        s.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in results)
            s.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {FlatMinimumMethods.Title(r.Method)} | {r.Seed} | {100 * r.TestAccuracy:F2} | {100 * r.LastEpochTrainAccuracy:F2} | {r.TrainSeconds:F1} | {r.ImagesPerSecond:N0} | " +
                $"{(r.Averaging.Length > 0 ? r.Averaging : "—")} |"));
        s.AppendLine();
        s.AppendLine($"Total {elapsed.TotalMinutes:F1} min.");
        return s.ToString();
    }
}
