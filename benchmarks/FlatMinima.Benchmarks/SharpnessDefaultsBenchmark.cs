using FlatMinima.Torch.Optimization;
using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.Diagnostics;
using FlatMinima.Torch.Training;
using Microsoft.ML;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Wall time of <c>EvaluateSharpness</c> on a SmallCnn and 500 Fashion-MNIST training images: the previous default
/// options (set explicitly) against the current defaults, whole report and each measure alone, in one process.
/// </summary>
internal static class SharpnessDefaultsBenchmark
{
    // The defaults of FlatMinimaSharpnessOptions before they were made cheaper (2026-11-28).
    private static FlatMinimaSharpnessOptions Previous() => new()
    {
        MaxExamples = 1000, BatchSize = 250, TopEigenvalues = 1, UseLanczos = true, EigenTolerance = 1e-3, KrylovDimension = 100, MaxIterationsPerEigenvalue = 100,
        TraceProbes = 100, WorstCaseRho = 0.05, KeskarEpsilon = 1e-3, AdaptiveRho = 0.5, AverageCaseSamples = 50, AscentSteps = 10,
        AscentRandomStarts = 3, CachedGraphBatches = 0,
    };

    public static void Run(BenchmarkOptions options)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(BenchmarkData.Rows(BenchmarkData.Load(options, train: true, 3000)));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(
            new FlatMinimaImageClassificationTrainer.Options
            {
                ImageColumnName = "Pixels", Epochs = 4, BatchSize = 128, LearningRate = 0.05, SharpnessAware = null, Seed = 1, Device = DeviceKind.Cpu,
            })).Fit(train);
        var data = ml.Data.TakeRows(train, 500);
        Console.WriteLine();
        Console.WriteLine("## EvaluateSharpness wall time, SmallCnn (SGD, 3,000 Fashion-MNIST images, 4 epochs), 500 training images, eval mode");
        Console.WriteLine();
        Console.WriteLine("| measure | previous defaults: s | value | current defaults: s | value |");
        Console.WriteLine("|---|---|---|---|---|");
        var parts = new (string Name, Action<FlatMinimaSharpnessOptions> Only, Func<SharpnessReport, string> Value)[]
        {
            ("whole report", _ => { }, r => $"loss {r.Loss:F4}"),
            ("setup + loss/accuracy only", o => Keep(o), r => $"loss {r.Loss:F4}"),
            ("top-1 eigenvalue", o => Keep(o, eigen: true), r => $"{r.TopEigenvalues!.Values[0]:G5} ({r.TopEigenvalues.HessianVectorProducts} HVPs)"),
            ("trace", o => Keep(o, trace: true), r => $"{r.Trace!.Trace:G5} ± {r.Trace.StandardError:G2} ({r.Trace.Probes} probes)"),
            ("worst-case ℓ₂ (ρ 0.05)", o => Keep(o, worst: true), r => $"{r.WorstCase!.Value:G4}"),
            ("ε-sharpness (ε 1e-3)", o => Keep(o, epsilon: true), r => $"{r.EpsilonSharpness!.Value:G4}"),
            ("adaptive worst-case + average-case (ρ 0.5)", o => Keep(o, adaptive: true), r => $"{r.AdaptiveWorstCase!.Value:G4}; {r.AdaptiveAverageCase!.Value:G4} ± {r.AdaptiveAverageCase.StandardError:G2}"),
        };
        foreach (var (name, only, value) in parts)
        {
            var previous = Previous(); only(previous);
            var current = new FlatMinimaSharpnessOptions(); only(current);
            var a = ml.MulticlassClassification.EvaluateSharpness(model, data, previous);
            var b = ml.MulticlassClassification.EvaluateSharpness(model, data, current);
            Console.WriteLine($"| {name} | {a.Elapsed.TotalSeconds:F1} | {value(a)} | {b.Elapsed.TotalSeconds:F1} | {value(b)} |");
        }
    }

    private static void Keep(FlatMinimaSharpnessOptions o, bool eigen = false, bool trace = false, bool worst = false, bool epsilon = false, bool adaptive = false)
    {
        if (!eigen) o.TopEigenvalues = 0;
        if (!trace) o.TraceProbes = 0;
        if (!worst) o.WorstCaseRho = 0;
        if (!epsilon) o.KeskarEpsilon = 0;
        if (!adaptive) o.AdaptiveRho = 0;
    }
}
