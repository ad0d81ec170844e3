using FlatMinima.Torch.Optimization;
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.Diagnostics;
using FlatMinima.Torch.Training;
using Microsoft.ML;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Trains SGD, SAM, ASAM and SWAD models (same SmallCnn, same budget, several seeds) on Fashion-MNIST and reports test accuracy,
/// the train–test gap and every sharpness measure side by side, with the correlation of each measure with the gap.
/// </summary>
internal static class SharpnessExperiment
{
    public static void Run(BenchmarkOptions options)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(BenchmarkData.Rows(BenchmarkData.Load(options, train: true, options.Images)));
        var test = ml.Data.LoadFromEnumerable(BenchmarkData.Rows(BenchmarkData.Load(options, train: false, 10000)));
        var methods = new (string Name, SharpnessAwareOptions? Method, bool Swad)[]
        {
            ("SGD", null, false), ("SAM ρ=0.05", SharpnessAwareOptions.Sam(), false),
            ("ASAM ρ=0.5", SharpnessAwareOptions.Asam(), false), ("SWAD (SGD, eval every 10 steps, 20 % held out)", null, true),
        };
        var seeds = new[] { 1, 2 };
        const int epochs = 4;
        var sharpness = new FlatMinimaSharpnessOptions { MaxExamples = 500, BatchSize = 250, TraceProbes = 30, KrylovDimension = 60, MaxIterationsPerEigenvalue = 60, AscentSteps = 5, AverageCaseSamples = 10 };
        Console.WriteLine();
        Console.WriteLine($"## Sharpness vs generalization: SmallCnn, {options.Images:N0} Fashion-MNIST training images, {epochs} epochs, batch 128, SGD momentum 0.9, LR 0.05 cosine, WD 5e-4");
        Console.WriteLine($"Sharpness on the first 500 training images, eval mode: λ_max by Lanczos (tol 1e-3), trace by 30 Rademacher probes, worst-case ℓ₂ (ρ = 0.05), ε-sharpness (ε = 1e-3) and adaptive worst-case ℓ₂ (ρ = 0.5) by 5 ascent steps from 4 starts, adaptive average-case (ρ = 0.5, 10 draws).");
        Console.WriteLine();
        Console.WriteLine("| method | seed | train acc | test acc | gap (train − test acc) | train loss | λ_max | trace ± SE | worst-case ℓ₂ | ε-sharpness (%) | adaptive worst ℓ₂ | adaptive average | train s | sharpness s |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        var rows = new List<(string Method, double Gap, double[] Measures)>();
        foreach (var (name, method, swad) in methods)
            foreach (int seed in seeds)
            {
                var clock = Stopwatch.StartNew();
                var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(
                    new FlatMinimaImageClassificationTrainer.Options
                    {
                        ImageColumnName = "Pixels", Epochs = epochs, BatchSize = 128, LearningRate = 0.05, SharpnessAware = method, Seed = seed, Device = DeviceKind.Cpu,
                        Averaging = swad ? FlatMinima.Torch.Averaging.WeightAveragingOptions.Swad(evaluationFrequency: 10) : null,
                    })).Fit(train);
                double seconds = clock.Elapsed.TotalSeconds;
                double trainAcc = ml.MulticlassClassification.Evaluate(model.Transform(train)).MicroAccuracy;
                double testAcc = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
                var r = ml.MulticlassClassification.EvaluateSharpness(model, train, sharpness);
                double sharpnessSeconds = r.Elapsed.TotalSeconds;
                var measures = new[] { r.TopEigenvalues!.Values[0], r.Trace!.Trace, r.WorstCase!.Value, r.EpsilonSharpness!.Value, r.AdaptiveWorstCase!.Value, r.AdaptiveAverageCase!.Value };
                rows.Add((name, trainAcc - testAcc, measures));
                Console.WriteLine($"| {name} | {seed} | {trainAcc:P2} | {testAcc:P2} | {trainAcc - testAcc:P2} | {r.Loss:F4} | {measures[0]:G4} | {measures[1]:G4} ± {r.Trace.StandardError:G2} | " +
                                  $"{measures[2]:G3} | {measures[3]:G3} | {measures[4]:G3} | {measures[5]:G3} ± {r.AdaptiveAverageCase.StandardError:G2} | {seconds:F0} | {sharpnessSeconds:F0} |");
            }
        Console.WriteLine();
        Console.WriteLine($"Correlation of each measure with the generalization gap over the {rows.Count} models (Pearson / Spearman):");
        Console.WriteLine();
        Console.WriteLine("| measure | Pearson | Spearman |");
        Console.WriteLine("|---|---|---|");
        var names = new[] { "λ_max", "trace", "worst-case ℓ₂", "ε-sharpness", "adaptive worst ℓ₂", "adaptive average" };
        var gaps = rows.Select(r => r.Gap).ToArray();
        for (int m = 0; m < names.Length; m++)
        {
            var values = rows.Select(r => r.Measures[m]).ToArray();
            Console.WriteLine($"| {names[m]} | {Pearson(values, gaps):F2} | {Pearson(Ranks(values), Ranks(gaps)):F2} |");
        }
    }

    private static double Pearson(double[] a, double[] b)
    {
        double ma = a.Average(), mb = b.Average();
        double cov = a.Zip(b).Sum(p => (p.First - ma) * (p.Second - mb));
        return cov / Math.Sqrt(a.Sum(x => (x - ma) * (x - ma)) * b.Sum(x => (x - mb) * (x - mb)));
    }

    private static double[] Ranks(double[] values)
    {
        var order = values.Select((v, i) => (v, i)).OrderBy(p => p.v).ToArray();
        var ranks = new double[values.Length];
        for (int r = 0; r < order.Length; r++) ranks[order[r].i] = r + 1;
        return ranks;
    }
}
