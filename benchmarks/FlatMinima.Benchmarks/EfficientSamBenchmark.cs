using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.ML;

namespace FlatMinima.Benchmarks;

/// <summary>
/// The cheaper sharpness-aware steps against SGD and SAM: SmallCnn on the embedded Fashion-MNIST subset (6,000 training /
/// 1,000 test PNG images), the same epochs, seeds and batch for every method. Reports test micro-accuracy, Fit wall
/// time, the fraction of sharpness-aware steps and the forward-backward passes per optimizer step (MESA: one backward
/// pass plus the teacher's forward pass after its warm-up, which this count leaves out).
/// </summary>
internal static class EfficientSamBenchmark
{
    private sealed class ImageRow
    {
        public string Label { get; set; } = "";
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    }

    public static void Run(BenchmarkOptions options)
    {
        string subset = Path.Combine(options.RepoRoot, "data", "fashion-mnist-subset");
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Load(subset, "train"));
        var test = ml.Data.LoadFromEnumerable(Load(subset, "test"));
        int epochs = options.EfficientSamEpochs;
        var methods = new (string Name, SharpnessAwareOptions? Sam, MesaOptions? Mesa)[]
        {
            ("SGD", null, null),
            ("SAM", SharpnessAwareOptions.Sam(), null),
            ("LookSAM k = 5", SharpnessAwareOptions.LookSam(), null),
            ("RST p = 0.5", SharpnessAwareOptions.RandomizedSam(0.5), null),
            ("RST p 0 → 1", SharpnessAwareOptions.RandomizedSam(0, 1), null),
            ("AE-SAM", SharpnessAwareOptions.AeSam(), null),
            ("MESA", null, MesaOptions.Default() with { WarmupEpochs = Math.Max(1, epochs / 4) }),
        };
        Console.WriteLine($"\n## Efficient SAM steps, SmallCnn, embedded subset (6,000 train / 1,000 test), {epochs} epochs, batch 64, lr 0.05\n");
        Console.WriteLine("| method | seed | test micro-accuracy | SAM steps | passes per step | Fit s |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var accuracies = new Dictionary<string, List<double>>();
        foreach (int seed in options.EfficientSamSeeds)
            foreach (var (name, sam, mesa) in methods)
            {
                long steps = 0, samSteps = 0;
                var trainerOptions = new FlatMinimaImageClassificationTrainer.Options
                {
                    ImageColumnName = "ImageSource", SharpnessAware = sam, Epochs = epochs, BatchSize = 64, LearningRate = 0.05, Seed = seed,
                    Device = DeviceKind.Cpu, Progress = r => { steps += r.Steps; samSteps += r.SharpnessAwareSteps; },
                };
                if (mesa is not null) trainerOptions.Mesa = mesa;
                var trainer = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(trainerOptions);
                var clock = Stopwatch.StartNew();
                var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(trainer).Fit(train);
                double seconds = clock.Elapsed.TotalSeconds;
                double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
                (accuracies.TryGetValue(name, out var list) ? list : accuracies[name] = new List<double>()).Add(accuracy);
                double fraction = steps == 0 ? 0 : (double)samSteps / steps;
                Console.WriteLine($"| {name} | {seed} | {accuracy:P2} | {fraction:P0} | {1 + fraction:F2} | {seconds:F0} |");
            }
        Console.WriteLine();
        foreach (var (name, list) in accuracies)
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
}
