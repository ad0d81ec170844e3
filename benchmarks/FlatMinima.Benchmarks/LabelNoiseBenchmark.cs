using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using FlatMinima.Torch.Data;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Robustness to symmetric label noise on Fashion-MNIST (mode <c>label-noise</c>). Per seed, N training images are drawn
/// from the 60,000; their labels get symmetric noise at each rate r (<see cref="SymmetricLabelNoise"/>, seeded, nested across
/// rates); a fraction is held out as a validation split with its noisy labels. SGD, SAM, ASAM, SAM+SWA and SAM+EMA train
/// with one recipe on the noisy labels; the clean test set is evaluated after every epoch. Reported per (r, method): final
/// clean test accuracy, the test accuracy at the epoch of best noisy-validation accuracy (early stopping without clean
/// labels) and the best over epochs (an oracle), the final training accuracy on the noisy and on the clean labels of the
/// same images, the fraction of corrupted images fit to their wrong label (memorization), wall time, and every method's
/// paired gap to SGD at each rate.
/// </summary>
internal static class LabelNoiseBenchmark
{
    private const int Classes = 10;

    private sealed record RunResult(double Rate, string Method, int Seed, double RealizedRate, double TestAccuracy, int BestValidationEpoch,
        double TestAtBestValidation, double OracleTestAccuracy, int OracleEpoch, double TrainNoisyAccuracy, double TrainCleanAccuracy,
        double Memorized, double Corrected, double TrainSeconds, double EvaluationSeconds, double ImagesPerSecond, double[] ValidationPerEpoch,
        double[] TestPerEpoch, string Averaging, double PassesPerStep);

    // The -results JSON file: enough to print the report and draw the plot again (-from).
    private sealed record ResultsFile(string Mode, string Preset, string Recipe, double[] Rates, int[] Seeds, string[] Methods, int Epochs,
        double TotalMinutes, RunResult[] Runs);

    private const string ModeName = "label-noise";

    /// <summary>The seed of the noise draws of a run seed (another stream than the image draw's).</summary>
    public static int NoiseSeed(int seed) => unchecked(seed * 7919 + 104729);

    public static void Run(BenchmarkOptions options)
    {
        var o = options.LabelNoise;
        o.Validate();
        if (o.From is string from)
        {
            Replay(options, from);
            return;
        }
        var methods = FlatMinimumMethods.Check(o.Methods, "--noise-methods");
        var recipe = o.Recipe;
        string loadAtStart = ReportText.LoadAverage();
        var all = BenchmarkData.Load(options, train: true, 60_000);
        var testImages = BenchmarkData.Load(options, train: false, o.TestImages);
        int validationCount = (int)Math.Round(o.ValidationFraction * o.Images, MidpointRounding.AwayFromZero);
        int trainCount = o.Images - validationCount;

        var header = new StringBuilder();
        header.AppendLine();
        header.AppendLine($"## Symmetric label noise, Fashion-MNIST: {o.Images:N0} training images ({trainCount:N0} train + {validationCount:N0} noisy validation), " +
                          $"{testImages.Count:N0} clean test images — preset {o.PresetText}");
        header.AppendLine();
        header.AppendLine($"* **Data.** Per seed, a seeded shuffle of the 60,000 training images gives the first {o.Images:N0}; the last {validationCount:N0} of them are the " +
                          $"validation split. The test set is the first {testImages.Count:N0} images of the test split, with their clean labels.");
        header.AppendLine("* **Noise.** Symmetric: each training (and validation) label is, with probability r, replaced by a class drawn uniformly from the 9 *other* " +
                          "classes (never itself), so the expected fraction of wrong labels is r (papers that draw from all 10 classes wrong only 0.9 r). Seeded per run seed and " +
                          "nested across rates (the images wrong at r = 0.2 are also wrong at 0.4, with the same wrong label). The noisy labels are the only labels training and " +
                          "validation see; the clean labels of the training images are used only to measure memorization.");
        header.AppendLine($"* **Rates** {string.Join(", ", o.NoiseRates.Select(r => r.ToString("0.##", CultureInfo.InvariantCulture)))}; **seeds** {string.Join(", ", o.Seeds)} " +
                          "(a seed draws the images, the noise, the initialization — the same for every method —, the shuffling and the augmentation); " +
                          $"**methods** {string.Join(", ", methods.Select(FlatMinimumMethods.Title))}, trained by the Torch layer's `ClassifierTrainer` on in-memory tensors.");
        header.AppendLine($"* **Recipe.** {recipe.Describe()}");
        header.AppendLine("* **Early stopping.** After every epoch the trainer reports the noisy-validation accuracy (`EpochReport.ValidationAccuracy`) and the benchmark " +
                          "evaluates the clean test set; \"at best val\" is the test accuracy at the first epoch of highest noisy-validation accuracy (selectable without clean " +
                          "labels), \"oracle\" the best test accuracy over epochs (not selectable, an upper bound). For SWA/EMA the epochs before the last evaluate the online " +
                          "weights, the last the average.");
        header.AppendLine("* **Columns.** Test accuracy: final model, clean labels. Train acc. noisy / clean: the final model (eval mode, no augmentation) on the training split " +
                          "scored against its noisy and its clean labels. Memorized: the share of corrupted training images the final model predicts as their *wrong* label " +
                          "(0 % = the noise is ignored, 100 % = it is memorized). Train s: wall time of training, the per-epoch test " +
                          "evaluations excluded (noisy validation included); images/s = epochs × training images ÷ train s (a SAM step counted once). One untimed warm-up epoch of SGD and SAM on 256 training images precedes the table.");
        header.AppendLine($"* **Estimate.** {Estimate(o, methods, trainCount, validationCount, testImages.Count)}");
        header.AppendLine();
        Console.Write(header.ToString());
        if (options.PlanOnly)
        {
            Console.WriteLine("(--plan-only: nothing trained.)");
            return;
        }
        Console.WriteLine("Runs as they finish:");
        Console.WriteLine();

        FlatMinimumMethods.WarmUp(all, recipe, methods);
        var testSet = testImages.ToTensorDataset(FlatMinimumMethods.PixelMean, FlatMinimumMethods.PixelStd);
        var results = new List<RunResult>();
        var clock = Stopwatch.StartNew();
        foreach (int seed in o.Seeds)
        {
            var order = Enumerable.Range(0, all.Count).ToArray();
            new Random(seed).Shuffle(order);
            var subset = all.Subset(order.Take(o.Images).ToArray());
            int[] clean = subset.Labels.Select(b => (int)b).ToArray();
            var data = subset.ToTensorDataset(FlatMinimumMethods.PixelMean, FlatMinimumMethods.PixelStd);
            data.Labels.Dispose();
            foreach (double rate in o.NoiseRates)
            {
                int[] noisy = SymmetricLabelNoise.Apply(clean, Classes, rate, NoiseSeed(seed));
                using var rateScope = NewDisposeScope();
                var train = new TensorDataset(data.Inputs.narrow(0, 0, trainCount), Labels(noisy, 0, trainCount));
                var validation = validationCount > 0 ? new TensorDataset(data.Inputs.narrow(0, trainCount, validationCount), Labels(noisy, trainCount, validationCount)) : null;
                var cleanTrain = Labels(clean, 0, trainCount);
                var corrupted = cleanTrain.ne(train.Labels);
                double realized = SymmetricLabelNoise.RealizedRate(clean.Take(trainCount).ToArray(), noisy.Take(trainCount).ToArray());
                foreach (var method in methods)
                {
                    var result = RunOne(method, recipe, seed, rate, realized, train, validation, testSet, cleanTrain, corrupted);
                    results.Add(result);
                    Console.WriteLine($"r={rate:0.##} {FlatMinimumMethods.Title(method)} seed {seed}: test {result.TestAccuracy:P2}, at best val (epoch {result.BestValidationEpoch}) " +
                                      $"{result.TestAtBestValidation:P2}, oracle {result.OracleTestAccuracy:P2} (epoch {result.OracleEpoch}); train noisy {result.TrainNoisyAccuracy:P2}, " +
                                      $"clean {result.TrainCleanAccuracy:P2}, memorized {(double.IsNaN(result.Memorized) ? "—" : result.Memorized.ToString("P1"))}; {result.TrainSeconds:F0} s + {result.EvaluationSeconds:F0} s test evaluations, " +
                                      $"{result.ImagesPerSecond:N0} images/s{(result.Averaging.Length > 0 ? "; " + result.Averaging : "")}   [{clock.Elapsed.TotalMinutes:F1} min]");
                    Console.Out.Flush();
                }
            }
            data.Inputs.Dispose();
        }
        testSet.Inputs.Dispose();
        testSet.Labels.Dispose();

        string report = Report(results, o, methods, clock.Elapsed);
        Console.Write(report);
        if (o.Output is string file)
        {
            File.WriteAllText(file, ReportText.Header("FlatMinima label-noise benchmark", loadAtStart) + header + report);
            Console.WriteLine($"Written to {file}.");
        }
        if (o.Results is string resultsFile)
            ResultFiles.Write(resultsFile, new ResultsFile(ModeName, o.PresetText, recipe.Describe(), o.NoiseRates, o.Seeds, methods, o.Epochs, clock.Elapsed.TotalMinutes, results.ToArray()),
                results, CsvColumns);
        if (o.Plot is string plot) BenchmarkPlots.Save(PlotRequest(results, o, methods), plot, options.RepoRoot);
    }

    // -from: the report and plot of a -results JSON file, without training.
    private static void Replay(BenchmarkOptions options, string from)
    {
        var file = ResultFiles.Read<ResultsFile>(from, "--noise-from");
        if (file.Mode != ModeName || file.Runs is null || file.Rates is null || file.Seeds is null || file.Methods is null)
            throw new System.IO.InvalidDataException($"--noise-from {from} is not a {ModeName} results file (mode '{file.Mode}').");
        var o = options.LabelNoise with { NoiseRates = file.Rates, Seeds = file.Seeds, Epochs = file.Epochs };
        var methods = FlatMinimumMethods.Check(file.Methods, "--noise-from methods");
        var results = file.Runs.ToList();
        Console.WriteLine();
        Console.WriteLine($"## Symmetric label noise, Fashion-MNIST — regenerated from {from} (preset {file.Preset}, {results.Count} runs)");
        string report = Report(results, o, methods, TimeSpan.FromMinutes(file.TotalMinutes));
        o.WriteReplay("FlatMinima label-noise benchmark", from, file.Recipe, report, file, results, CsvColumns, () => PlotRequest(results, o, methods), options.RepoRoot);
    }

    private static readonly (string Name, Func<RunResult, object> Value)[] CsvColumns =
    {
        ("rate", r => r.Rate), ("method", r => r.Method), ("seed", r => r.Seed), ("realized_rate", r => r.RealizedRate), ("test_accuracy", r => r.TestAccuracy),
        ("best_validation_epoch", r => r.BestValidationEpoch), ("test_at_best_validation", r => r.TestAtBestValidation), ("oracle_test_accuracy", r => r.OracleTestAccuracy),
        ("oracle_epoch", r => r.OracleEpoch), ("train_noisy_accuracy", r => r.TrainNoisyAccuracy), ("train_clean_accuracy", r => r.TrainCleanAccuracy),
        ("memorized", r => r.Memorized), ("corrected", r => r.Corrected), ("train_seconds", r => r.TrainSeconds), ("evaluation_seconds", r => r.EvaluationSeconds),
        ("images_per_second", r => r.ImagesPerSecond), ("passes_per_step", r => r.PassesPerStep), ("averaging", r => r.Averaging),
    };

    // Final clean test accuracy (mean ± SE over seeds, %) against mean training seconds: one point per method, one series per rate.
    private static PlotRequest PlotRequest(List<RunResult> results, LabelNoiseOptions o, string[] methods)
    {
        var series = o.NoiseRates.Select(rate => new PlotSeries(o.NoiseRates.Length > 1 ? $"noise r = {rate.ToString("0.##", CultureInfo.InvariantCulture)}" : "",
            methods.Select(m => results.Where(r => r.Rate == rate && r.Method == m).ToList()).Where(runs => runs.Count > 0).Select(runs =>
            {
                var (mean, error) = ReportText.MeanAndError(runs.Select(r => r.TestAccuracy).ToList());
                return new PlotPoint(FlatMinimumMethods.Title(runs[0].Method), runs.Average(r => r.TrainSeconds), 100 * mean, 100 * error);
            }).ToArray())).Where(s => s.Points.Length > 0).ToArray();
        string rates = o.NoiseRates.Length == 1 ? $" at noise r = {o.NoiseRates[0].ToString("0.##", CultureInfo.InvariantCulture)}" : "";
        return new PlotRequest($"Label noise{rates}: clean test accuracy vs training time ({o.Seeds.Length} seed{(o.Seeds.Length == 1 ? "" : "s")}, mean ± SE)",
            "training wall time per run (s, mean over seeds)", "clean test accuracy, final model (%)", series);
    }

    private static Tensor Labels(int[] labels, int start, int count) =>
        tensor(labels.Skip(start).Take(count).Select(l => (long)l).ToArray());

    private static RunResult RunOne(string method, TrainingRecipe recipe, int seed, double rate, double realized, TensorDataset train, TensorDataset? validation,
        TensorDataset test, Tensor cleanTrain, Tensor corrupted)
    {
        using var scope = NewDisposeScope();
        var outcome = FlatMinimumMethods.Train(method, recipe, seed, train, validation, test);
        using var model = outcome.Model;
        var predictions = FlatMinimumMethods.Predict(model, train.Inputs);
        double[] testCurve = outcome.TestAccuracyPerEpoch;
        double[] validationCurve = outcome.Reports.Select(r => r.ValidationAccuracy ?? double.NaN).ToArray();
        int best = validation is null ? testCurve.Length - 1 : FirstMax(validationCurve);
        int oracle = FirstMax(testCurve);
        return new RunResult(rate, method, seed, realized, testCurve[^1], best + 1, testCurve[best], testCurve[oracle], oracle + 1,
            FlatMinimumMethods.Accuracy(predictions, train.Labels), FlatMinimumMethods.Accuracy(predictions, cleanTrain),
            FlatMinimumMethods.Accuracy(predictions, train.Labels, corrupted), FlatMinimumMethods.Accuracy(predictions, cleanTrain, corrupted),
            outcome.TrainSeconds, outcome.EvaluationSeconds, (double)outcome.Reports.Count * train.Count / outcome.TrainSeconds,
            validationCurve, testCurve, outcome.Reports[^1].Averaging?.ToString() ?? "", MethodCost.PassesPerStep(outcome.Reports));
    }

    private static int FirstMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    private static string Estimate(LabelNoiseOptions o, string[] methods, int trainCount, int validationCount, int testCount)
    {
        double runs = (double)o.Seeds.Length * o.NoiseRates.Length;
        var arch = o.Architecture;
        if (FlatMinimumMethods.EstimatedImagesPerSecond("sgd", arch) is not double sgd || FlatMinimumMethods.EstimatedImagesPerSecond("sam", arch) is not double sam
            || FlatMinimumMethods.EstimatedEvaluationImagesPerSecond(arch) is not double eval)
            return $"none for {arch}.";
        double train = runs * methods.Sum(m => o.Epochs * (double)trainCount / (FlatMinimumMethods.EstimatedImagesPerSecond(m, arch) ?? sam));
        double evaluation = runs * methods.Length * ((double)o.Epochs * (testCount + validationCount) + trainCount) / eval;
        return $"≈ {(train + evaluation) / 60:F0} min on 2 idle cores: training {train / 60:F0} min ({runs:0} rate × seed pairs × Σ over methods of " +
               $"{o.Epochs} epochs × {trainCount:N0} images ÷ SGD ≈ {sgd:N0} or SAM/ASAM ≈ {sam:N0} images/s, {arch} batch 128, measured step rates) + " +
               $"evaluations {evaluation / 60:F0} min ({o.Epochs} × {testCount + validationCount:N0} test and validation images per run at an assumed {eval:N0} images/s).";
    }

    private static string Report(List<RunResult> results, LabelNoiseOptions o, string[] methods, TimeSpan elapsed)
    {
        static string P(double v) => double.IsNaN(v) ? "—" : (100 * v).ToString("F2", CultureInfo.InvariantCulture);
        static string Points((double Mean, double Error) g) => double.IsNaN(g.Mean) ? "n/a" : string.Create(CultureInfo.InvariantCulture, $"{100 * g.Mean:+0.00;-0.00} ± {100 * g.Error:F2}");
        var s = new StringBuilder();
        s.AppendLine();
        s.AppendLine($"### Per noise rate and method (mean ± standard error over {o.Seeds.Length} seeds; accuracies in %)");
        s.AppendLine();
        s.AppendLine("| noise r | realized (train split) | method | test acc. (final) | test acc. at best noisy val | best-val epoch (mean) | oracle best test acc. | " +
                     "train acc. noisy labels | train acc. clean labels | memorized (corrupted → wrong label) | train s (mean) | images/s | passes/step | " +
                     "gain over SGD per extra s (points/s) |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        (double Mean, double Error) Gap(double rate, string method, Func<RunResult, double> f)
        {
            var differences = o.Seeds.Select(seed =>
            {
                var a = results.FirstOrDefault(r => r.Rate == rate && r.Method == method && r.Seed == seed);
                var b = results.FirstOrDefault(r => r.Rate == rate && r.Method == "sgd" && r.Seed == seed);
                return a is null || b is null ? double.NaN : f(a) - f(b);
            }).Where(d => !double.IsNaN(d)).ToList();
            return ReportText.MeanAndError(differences);
        }
        // A method's runs with SGD's run of the same seed, where both ran: the pairs behind the time comparisons.
        List<(RunResult Run, RunResult Sgd)> PairedWithSgd(double rate, string method) =>
            results.Where(r => r.Rate == rate && r.Method == method)
                .Select(r => (r, b: results.FirstOrDefault(x => x.Rate == rate && x.Method == "sgd" && x.Seed == r.Seed)))
                .Where(p => p.b is not null).Select(p => (p.r, p.b!)).ToList();
        foreach (double rate in o.NoiseRates)
            foreach (var method in methods)
            {
                var runs = results.Where(r => r.Rate == rate && r.Method == method).ToList();
                if (runs.Count == 0) continue;
                string Cell(Func<RunResult, double> f) => ReportText.Percent(runs.Select(f).ToList());
                double seconds = runs.Average(r => r.TrainSeconds);
                // The extra seconds over the same seed pairs as the accuracy gap.
                var paired = PairedWithSgd(rate, method);
                string gain = method == "sgd" ? "—" : MethodCost.GainPerExtraSecond(100 * Gap(rate, method, r => r.TestAccuracy).Mean,
                    paired.Count > 0 ? paired.Average(p => p.Run.TrainSeconds) : seconds, paired.Count > 0 ? paired.Average(p => p.Sgd.TrainSeconds) : null);
                s.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {rate:0.##} | {Cell(r => r.RealizedRate)} | {FlatMinimumMethods.Title(method)} | {Cell(r => r.TestAccuracy)} | {Cell(r => r.TestAtBestValidation)} | " +
                    $"{runs.Average(r => r.BestValidationEpoch):0.#} | {Cell(r => r.OracleTestAccuracy)} | {Cell(r => r.TrainNoisyAccuracy)} | {Cell(r => r.TrainCleanAccuracy)} | " +
                    $"{(rate == 0 ? "—" : Cell(r => r.Memorized))} | {seconds:F0} | {runs.Average(r => r.ImagesPerSecond):N0} | {MethodCost.Passes(runs.Select(r => r.PassesPerStep))} | {gain} |"));
            }
        s.AppendLine();
        s.AppendLine("Passes/step: forward-backward passes per optimizer step, measured from the trainer's epoch reports (1 + sharpness-aware steps ÷ steps; " +
                     "MESA's teacher forward not counted). Gain over SGD per extra s: the paired final-accuracy gap to SGD (points, next table) ÷ (the method's mean " +
                     "train s − SGD's, over the same seeds), n/a when the method was not slower than SGD or SGD was not run.");

        s.AppendLine();
        s.AppendLine("### Gap to SGD (percentage points; paired by seed: same images, noise and initialization; mean ± SE of the per-seed differences)");
        s.AppendLine();
        s.AppendLine("| noise r | method | − SGD, final | − SGD, at best noisy val | share of SAM's final gain | train time ÷ SGD's |");
        s.AppendLine("|---|---|---|---|---|---|");
        foreach (double rate in o.NoiseRates)
            foreach (var method in methods.Where(m => m != "sgd"))
            {
                var final = Gap(rate, method, r => r.TestAccuracy);
                var samFinal = Gap(rate, "sam", r => r.TestAccuracy);
                string share = method == "sam" ? "—"
                    : double.IsNaN(final.Mean) || double.IsNaN(samFinal.Mean) || samFinal.Mean <= 0 ? "n/a"
                    : string.Create(CultureInfo.InvariantCulture, $"{100 * final.Mean / samFinal.Mean:F0} %");
                var times = PairedWithSgd(rate, method);
                string ratio = times.Count == 0 ? "n/a"
                    : string.Create(CultureInfo.InvariantCulture, $"{times.Average(p => p.Run.TrainSeconds) / times.Average(p => p.Sgd.TrainSeconds):F2}×");
                s.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {rate:0.##} | {FlatMinimumMethods.Title(method)} | {Points(final)} | {Points(Gap(rate, method, r => r.TestAtBestValidation))} | {share} | {ratio} |"));
            }
        s.AppendLine();
        s.AppendLine("Share of SAM's final gain: the method's final gap ÷ SAM's at the same rate (n/a unless SAM ran and gained). " +
                     "Train time ÷ SGD's: mean train s over the seeds both ran.");
        s.AppendLine();
        const double goalRate = 0.4;
        var goal = Gap(goalRate, "sam", r => r.TestAccuracy);
        var goalStopped = Gap(goalRate, "sam", r => r.TestAtBestValidation);
        s.AppendLine(double.IsNaN(goal.Mean)
            ? "**Goal line** (SAM ≥ 5 points above SGD at 40 % noise): n/a — run rate 0.4 with both sgd and sam."
            : $"**Goal line** (SAM ≥ 5 points above SGD at 40 % noise, final models): SAM − SGD = {Points(goal)} points → " +
              $"{(goal.Mean >= 0.05 ? "met" : "not met")}; at the best noisy-validation epoch {Points(goalStopped)} points.");
        s.AppendLine();

        s.AppendLine("### Per run");
        s.AppendLine();
        s.AppendLine("| noise r | method | seed | realized | test acc. | best-val epoch | test at best val | oracle (epoch) | train noisy | train clean | memorized | corrected | train s | test-eval s | averaging |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
            s.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Rate:0.##} | {FlatMinimumMethods.Title(r.Method)} | {r.Seed} | {P(r.RealizedRate)} | {P(r.TestAccuracy)} | {r.BestValidationEpoch} | {P(r.TestAtBestValidation)} | " +
                $"{P(r.OracleTestAccuracy)} ({r.OracleEpoch}) | {P(r.TrainNoisyAccuracy)} | {P(r.TrainCleanAccuracy)} | {P(r.Memorized)} | {P(r.Corrected)} | " +
                $"{r.TrainSeconds:F1} | {r.EvaluationSeconds:F1} | {(r.Averaging.Length > 0 ? r.Averaging : "—")} |"));
        s.AppendLine();
        s.AppendLine("Corrected: the corrupted training images the final model predicts as their clean label.");
        s.AppendLine();

        s.AppendLine("### Per-epoch curves (mean over seeds, %): clean test accuracy and noisy-validation accuracy");
        s.AppendLine();
        s.AppendLine("| noise r | method | curve | " + string.Join(" | ", Enumerable.Range(1, o.Epochs)) + " |");
        s.AppendLine("|---|---|---|" + string.Concat(Enumerable.Repeat("---|", o.Epochs)));
        foreach (double rate in o.NoiseRates)
            foreach (var method in methods)
            {
                var runs = results.Where(r => r.Rate == rate && r.Method == method).ToList();
                if (runs.Count == 0) continue;
                foreach (var (name, curve) in new (string, Func<RunResult, double[]>)[] { ("test", r => r.TestPerEpoch), ("noisy val", r => r.ValidationPerEpoch) })
                {
                    var means = Enumerable.Range(0, o.Epochs).Select(e => runs.Select(r => e < curve(r).Length ? curve(r)[e] : double.NaN).Average());
                    s.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {rate:0.##} | {FlatMinimumMethods.Title(method)} | {name} | {string.Join(" | ", means.Select(P))} |"));
                }
            }
        s.AppendLine();
        s.AppendLine($"Total {elapsed.TotalMinutes:F1} min: training {results.Sum(r => r.TrainSeconds) / 60:F1} min, per-epoch test evaluations {results.Sum(r => r.EvaluationSeconds) / 60:F1} min.");
        return s.ToString();
    }
}
