using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.ML;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Quickstart-style accuracy with and without augmentation: SmallCnn + SAM (ρ = 0.05) on the embedded Fashion-MNIST subset
/// (6,000 training / 1,000 test PNG images), the same epochs and seeds, <c>Standard</c> augmentation (pad-4 crop + flip)
/// vs none. Reports test micro-accuracy, the last epoch's training accuracy and the wall time per run.
/// </summary>
internal static class AugmentationAccuracy
{
    private sealed class ImageRow
    {
        public string Label { get; set; } = "";
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    }

    public static void Run(BenchmarkOptions options)
    {
        string subset = Path.Combine(FindRepoRoot(), "data", "fashion-mnist-subset");
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Load(subset, "train"));
        var test = ml.Data.LoadFromEnumerable(Load(subset, "test"));
        Console.WriteLine($"\n## Augmentation vs none, SmallCnn + SAM ρ = 0.05, embedded subset (6,000 train / 1,000 test), {options.AugmentationEpochs} epochs, batch 64\n");
        Console.WriteLine("| augmentation | seed | test micro-accuracy | last-epoch train accuracy | Fit s |");
        Console.WriteLine("|---|---|---|---|---|");
        var results = new Dictionary<string, List<double>>();
        foreach (int seed in options.AugmentationSeeds)
            foreach (var (name, augmentation) in new[] { ("none", (AugmentationOptions?)null), ("Standard", AugmentationOptions.Standard(flip: true)) })
            {
                double trainAccuracy = 0;
                var trainer = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(new FlatMinimaImageClassificationTrainer.Options
                {
                    ImageColumnName = "ImageSource", SharpnessAware = SharpnessAwareOptions.Sam(0.05), Epochs = options.AugmentationEpochs,
                    BatchSize = 64, LearningRate = 0.05, Seed = seed, Device = DeviceKind.Cpu, Augmentation = augmentation,
                    Progress = r => trainAccuracy = r.TrainAccuracy,
                });
                var clock = Stopwatch.StartNew();
                var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(trainer).Fit(train);
                double seconds = clock.Elapsed.TotalSeconds;
                double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
                (results.TryGetValue(name, out var list) ? list : results[name] = new List<double>()).Add(accuracy);
                Console.WriteLine($"| {name} | {seed} | {accuracy:P2} | {trainAccuracy:P2} | {seconds:F0} |");
            }
        Console.WriteLine();
        foreach (var (name, list) in results)
        {
            double mean = list.Average();
            double se = list.Count > 1 ? Math.Sqrt(list.Sum(a => (a - mean) * (a - mean)) / (list.Count - 1) / list.Count) : 0;
            Console.WriteLine($"{name}: mean test accuracy {mean:P2} ± {se:P2} (SE over {list.Count} seeds)");
        }
    }

    private static IEnumerable<ImageRow> Load(string subset, string split) =>
        Directory.GetDirectories(Path.Combine(subset, split)).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(folder => Directory.GetFiles(folder, "*.png").OrderBy(f => f, StringComparer.Ordinal)
                .Select(file => new ImageRow { Label = Path.GetFileName(folder), ImageSource = File.ReadAllBytes(file) }))
            .ToList();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FlatMinima.MLNet.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("The repository root (FlatMinima.MLNet.sln) was not found above " + AppContext.BaseDirectory);
    }
}
