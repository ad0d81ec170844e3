// Sharpness diagnostics, end to end:
//  1. the two exact demonstrations of Schliserman, Vansover-Hager & Koren (flatness is a diagnostic, not a guarantee);
//  2. SGD vs SAM on the embedded Fashion-MNIST subset, each model's sharpness report and a 1-D / 2-D loss landscape (PNG).
// Usage: dotnet run -c Release --project examples/Sharpness [-- <output folder for the PNG files>]
using FlatMinima.Torch.Optimization;
using System;
using System.IO;
using System.Linq;
using FlatMinima.Examples.Sharpness;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.Diagnostics;
using FlatMinima.Plotting;
using Microsoft.ML;

string output = args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), "flatminima-sharpness");
Directory.CreateDirectory(output);

Console.WriteLine("1a. f(w) = ½max(0, w)², w₁ = 0, r = 0.2, η = 0.5, 9 steps");
var demo = FlatnessDemos.SamVersusExactSaGd();
Console.WriteLine($"   SAM  : w = {string.Join(", ", demo.SamWeights.Select(w => w.ToString("G6")))}  → sharpness-aware risk {demo.SamSharpnessAwareRisk:G6} (sharp point: g = 0, ε = 0, never moves)");
Console.WriteLine($"   SA-GD: w = {string.Join(", ", demo.SaGdWeights.Select(w => w.ToString("G6")))}  → sharpness-aware risk {demo.SaGdSharpnessAwareRisk:G3} (flat region)");
Console.WriteLine();
Console.WriteLine("1b. Flat empirical minimum with bad population risk (d = 9, ρ = 0.25, r = 0.5, 3 samples)");
var bad = FlatnessDemos.FlatEmpiricalMinimumWithBadPopulationRisk();
Console.WriteLine($"   flat  e_I : F_S = {bad.FlatEmpiricalRisk:G3}, SAER = {bad.FlatSharpnessAwareRisk} (search: {bad.FlatSharpnessAwareRiskSearched:G6}), population risk = {bad.FlatPopulationRisk}");
Console.WriteLine($"   sharp ρe_d: F_S = {bad.SharpEmpiricalRisk:G3}, SAER = {bad.SharpSharpnessAwareRisk} (search: {bad.SharpSharpnessAwareRiskSearched:G6}), population risk = {bad.SharpPopulationRisk}");
Console.WriteLine("   → the flatter minimum generalizes worse: flatness is a diagnostic, not a guarantee.");
Console.WriteLine();

string dataset = FindDataset();
var ml = new MLContext(seed: 1);
IDataView Load(string split, int perClass) => ml.Data.LoadFromEnumerable(Directory.GetDirectories(Path.Combine(dataset, split))
    .OrderBy(d => d, StringComparer.Ordinal)
    .SelectMany(d => Directory.GetFiles(d).OrderBy(f => f, StringComparer.Ordinal).Take(perClass)
        .Select(f => new Row { Label = Path.GetFileName(d), Image = File.ReadAllBytes(f) })));
var train = ml.Data.ShuffleRows(Load("train", 300), seed: 1);
var test = Load("test", 100);
foreach (var method in new[] { null, SharpnessAwareOptions.Sam() })
{
    var model = ml.Transforms.Conversion.MapValueToKey("Label")
        .Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(new FlatMinimaImageClassificationTrainer.Options
        {
            SharpnessAware = method, Epochs = 8, BatchSize = 64, Seed = 1, LearningRate = 0.05,
        }))
        .Fit(train);
    var accuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
    var report = ml.MulticlassClassification.EvaluateSharpness(model, train, new FlatMinimaSharpnessOptions { MaxExamples = 500, TraceProbes = 30, AscentSteps = 5, PerLayer = true, PerLayerTraceProbes = 10 });
    string name = method is null ? "SGD" : "SAM";
    Console.WriteLine($"2. {name}: test micro-accuracy {accuracy:P2}; sharpness on 500 training images:");
    Console.WriteLine(report);
    LandscapePlots.SavePng(ml.MulticlassClassification.LossLandscape(model, train, dimensions: 1, span: 1, points: 21), Path.Combine(output, $"{name}-1d.png"), $"{name}: 1-D loss landscape");
    LandscapePlots.SavePng(ml.MulticlassClassification.LossLandscape(model, train, dimensions: 2, span: 1, points: 11, maxExamples: 500), Path.Combine(output, $"{name}-2d.png"), $"{name}: 2-D loss landscape");
}
Console.WriteLine($"Loss-landscape plots written to {output}");

static string FindDataset()
{
    for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
    {
        string candidate = Path.Combine(dir.FullName, "data", "fashion-mnist-subset");
        if (Directory.Exists(candidate)) return candidate;
    }
    throw new DirectoryNotFoundException("Run from the repository: data/fashion-mnist-subset was not found.");
}

/// <summary>A labelled image.</summary>
public sealed class Row
{
    public string Label { get; set; } = "";
    public byte[] Image { get; set; } = Array.Empty<byte>();
}
