using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Data;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Rotated Fashion-MNIST under the DomainBed protocol (../shared/specs/algorithms.md §5(c)): the 70,000 images (train +
/// test) are shuffled with the trial seed and split into six domains by striding (i::6), rotated by 0, 15, 30, 45, 60
/// and 75° (bilinear, zero fill); each domain is split 80 % "in" / 20 % "out" with the seed. Leave one domain out: train
/// on the other five "in" splits with one batch per domain per step, validate on their "out" splits (mean over domains:
/// SWAD's loss), test on the held-out domain's "in" split. Adam, constant learning rate, no weight decay, a GroupNorm
/// CNN shaped like DomainBed's MNIST_CNN. Methods ERM, ERM+SWA, ERM+SWAD, SAM, SAM+SWAD with the same step budget;
/// ERM and SAM report the last iterate (DomainBed's "last" row), not a validation-selected checkpoint.
/// </summary>
internal static class DomainGeneralizationBenchmark
{
    private static readonly int[] Angles = DomainGeneralizationResults.Angles;
    private static readonly string[] AllMethods = DomainGeneralizationResults.AllMethods;

    public static void Run(BenchmarkOptions options)
    {
        var dg = options.DomainGeneralization;
        dg.Validate();
        if (dg.From is string[] from)
        {
            var merged = DomainGeneralizationResults.Merge(from);
            Write(dg, merged, Heading(merged.Configuration, merged.SeedList(), merged.TestDomainList()) + $" — merged from {string.Join(", ", from.Select(Path.GetFileName))}");
            return;
        }
        var methods = dg.Methods ?? AllMethods;
        if (!Directory.Exists(options.FashionMnist))
            throw new DirectoryNotFoundException(
                $"Fashion-MNIST was not found in '{options.FashionMnist}'. The domain-generalization benchmark needs the full data set: " +
                "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu, installs to /usr/share/datasets/fashion-mnist) or pass --fashion-mnist DIR with the four idx files.");
        string heading = Heading(Configuration(dg), dg.Seeds, dg.TestDomains);
        Console.WriteLine();
        Console.WriteLine(heading);
        Console.WriteLine();
        if (options.PlanOnly)
        {
            DomainGeneralizationPlan.Print(dg, methods, TrainingOptions, CreateModel);
            Console.WriteLine("(--plan-only: nothing trained.)");
            return;
        }
        var train = IdxImageSet.LoadSplit(options.FashionMnist, train: true);
        var test = IdxImageSet.LoadSplit(options.FashionMnist, train: false);
        var pixels = cat(new[] { train.ToTensorDataset().Inputs, test.ToTensorDataset().Inputs }, 0);
        var labels = cat(new[] { train.ToTensorDataset().Labels, test.ToTensorDataset().Labels }, 0);
        var results = new List<DomainGeneralizationRun>();
        var clock = Stopwatch.StartNew();
        DomainGeneralizationResults Done() =>
            new(DomainGeneralizationResults.ModeName, Configuration(dg), dg.EvaluationFrequency, methods, clock.Elapsed.TotalMinutes, results.ToArray());
        foreach (int seed in dg.Seeds)
        {
            var domains = MakeDomains(pixels, labels, seed, dg.ImagesPerDomain, dg.Pretrained ? dg.Size : null);
            foreach (int testDomain in dg.TestDomains)
                foreach (var method in methods)
                {
                    var result = RunOne(method, domains, testDomain, seed, dg);
                    results.Add(result);
                    Console.WriteLine($"seed {seed}, test {Angles[testDomain]}°, {method}: test acc {result.TestAccuracy:P2}, validation acc {result.ValidationAccuracy:P2}, " +
                                      $"budget {result.Steps} steps, {result.Seconds:F0} s{(result.Window is null ? "" : $"; {result.Window}")}   [{clock.Elapsed.TotalMinutes:F1} min]");
                    // The runs so far, rewritten after each one: a long run that stops early keeps what it finished (merge it with --dg-from).
                    if (dg.Results is string partial) ResultFiles.Write(partial, Done(), results, DomainGeneralizationResults.CsvColumns, quiet: true);
                }
            foreach (var d in domains) { d.In.Inputs.Dispose(); d.In.Labels.Dispose(); d.Out.Inputs.Dispose(); d.Out.Labels.Dispose(); }
        }
        Write(dg, Done(), heading);
    }

    // Prints the report under its heading and writes the outputs the options name (--dg-out: heading and report; --dg-results: the runs).
    private static void Write(DomainGeneralizationOptions dg, DomainGeneralizationResults file, string heading)
    {
        string report = file.Report();
        Console.WriteLine();
        Console.WriteLine(heading);
        Console.WriteLine();
        Console.WriteLine(report);
        if (dg.Output is string path)
        {
            File.WriteAllText(path, heading + "\n\n" + report);
            Console.WriteLine($"(written to {path})");
        }
        if (dg.Results is string results) ResultFiles.Write(results, file, file.Runs, DomainGeneralizationResults.CsvColumns);
    }

    // The report's heading: the configuration, the seeds and the held-out domains.
    private static string Heading(string configuration, IEnumerable<int> seeds, IEnumerable<int> testDomains) =>
        $"## Rotated Fashion-MNIST, DomainBed protocol: {configuration}, seeds {string.Join(",", seeds)}, test domains {DomainGeneralizationResults.DomainText(testDomains)}";

    /// <summary>Everything that makes runs comparable, except the seeds and test domains (which parts of a run may split).</summary>
    internal static string Configuration(DomainGeneralizationOptions dg) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{dg.Steps} steps, batch {dg.BatchPerDomain} per domain, Adam lr {dg.LearningRate}, SWAD every {dg.EvaluationFrequency} steps, SAM ρ {dg.Rho}, " +
        $"{NetworkText(dg)}, {dg.ImagesPerDomain?.ToString() ?? "all"} images per domain");

    private sealed record Domain(TensorDataset In, TensorDataset Out);

    // DomainBed's RotatedMNIST construction with Fashion-MNIST: seeded shuffle, stride into six domains, rotate, 80/20 split.
    // With `size`, the rotated images are resized to size × size (bilinear) for the pretrained network; they stay gray,
    // the network's input preparation replicates them to RGB.
    private static Domain[] MakeDomains(Tensor pixels, Tensor labels, int seed, int? imagesPerDomain, int? size)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)seed, CPU);
        var order = randperm(pixels.shape[0], generator: generator);
        var domains = new Domain[Angles.Length];
        for (int d = 0; d < Angles.Length; d++)
        {
            var index = order.narrow(0, d, order.shape[0] - d).slice(0, 0, order.shape[0] - d, Angles.Length);
            if (imagesPerDomain is int cap && cap < index.shape[0]) index = index.narrow(0, 0, cap);
            var x = Rotate(pixels.index_select(0, index), Angles[d]);
            if (size is int side && side != x.shape[2])
                x = nn.functional.interpolate(x, new long[] { side, side }, mode: InterpolationMode.Bilinear, align_corners: false).clamp_(0, 1);
            var y = labels.index_select(0, index);
            var split = randperm(index.shape[0], generator: generator);
            long outCount = (long)(0.2 * index.shape[0]);
            var outIndex = split.narrow(0, 0, outCount);
            var inIndex = split.narrow(0, outCount, index.shape[0] - outCount);
            domains[d] = new Domain(
                new TensorDataset(x.index_select(0, inIndex).MoveToOuterDisposeScope(), y.index_select(0, inIndex).MoveToOuterDisposeScope()),
                new TensorDataset(x.index_select(0, outIndex).MoveToOuterDisposeScope(), y.index_select(0, outIndex).MoveToOuterDisposeScope()));
        }
        return domains;
    }

    private static Tensor Rotate(Tensor images, double degrees)
    {
        double a = degrees * Math.PI / 180;
        var theta = tensor(new float[] { (float)Math.Cos(a), (float)-Math.Sin(a), 0, (float)Math.Sin(a), (float)Math.Cos(a), 0 }).view(1, 2, 3).expand(images.shape[0], 2, 3);
        var grid = nn.functional.affine_grid(theta, images.shape, align_corners: false);
        return nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: false);
    }

    private static TensorDataset Concat(IEnumerable<(TensorDataset Data, long Domain)> parts)
    {
        var list = parts.ToArray();
        return new TensorDataset(cat(list.Select(p => p.Data.Inputs).ToArray(), 0), cat(list.Select(p => p.Data.Labels).ToArray(), 0))
        {
            Domains = cat(list.Select(p => full(p.Data.Count, p.Domain, ScalarType.Int64)).ToArray(), 0),
        };
    }

    private static DomainGeneralizationRun RunOne(string method, Domain[] domains, int testDomain, int seed, DomainGeneralizationOptions dg)
    {
        using var scope = NewDisposeScope();
        var trainDomains = Enumerable.Range(0, domains.Length).Where(d => d != testDomain).ToArray();
        var train = Concat(trainDomains.Select((d, k) => (domains[d].In, (long)k)));
        var validation = Concat(trainDomains.Select((d, k) => (domains[d].Out, (long)k)));
        int stepsPerEpoch = (int)((train.Count + (long)dg.BatchPerDomain * trainDomains.Length - 1) / ((long)dg.BatchPerDomain * trainDomains.Length));
        int epochs = (int)Math.Ceiling((double)dg.Steps / stepsPerEpoch);
        var options = TrainingOptions(method, dg, epochs, seed);
        using var model = CreateModel(dg, seed);
        var clock = Stopwatch.StartNew();
        var reports = new ClassifierTrainer(options, CPU).Train(model, train, validation);
        double seconds = clock.Elapsed.TotalSeconds;
        var (_, testAccuracy) = ClassifierEvaluation.Evaluate(model, domains[testDomain].In, 512, CPU);
        var last = reports[^1];
        return new DomainGeneralizationRun(method, seed, testDomain, testAccuracy, last.ValidationAccuracy ?? double.NaN, (long)epochs * stepsPerEpoch, seconds, last.Averaging);
    }

    /// <summary>
    /// The trainer options of <paramref name="method"/>: Adam (AdamW with weight decay 0 is Adam), constant learning rate,
    /// one batch per domain per step; with the pretrained network every weight trains at one rate and the backbone's
    /// BatchNorm layers stay in eval mode (SWAD's <c>freeze_bn</c>: the ImageNet running statistics are used and kept, the
    /// affine weights train; the BatchNorm recompute after averaging leaves them alone, as SWAD skips its BN update).
    /// </summary>
    internal static ClassifierTrainingOptions TrainingOptions(string method, DomainGeneralizationOptions dg, int epochs, int seed) => new()
    {
        Epochs = epochs,
        BatchSize = dg.BatchPerDomain,
        Optimizer = BaseOptimizerKind.AdamW,
        LearningRate = dg.LearningRate,
        WeightDecay = 0,
        Schedule = new LearningRateSchedule { Kind = LearningRateScheduleKind.Constant },
        Seed = seed,
        GradientStep = method.StartsWith("SAM") ? SharpnessAwareOptions.Sam(dg.Rho) : null,
        Averaging = method switch
        {
            "ERM+SWA" => new SwaOptions { StartStep = dg.Steps / 2, EverySteps = dg.EvaluationFrequency },
            "ERM+SWAD" or "SAM+SWAD" => WeightAveragingOptions.Swad(dg.EvaluationFrequency),
            "ERM" or "SAM" => null,
            _ => throw new ArgumentException($"Unknown method '{method}'; use {string.Join(", ", AllMethods)}."),
        },
        FineTuning = dg.Pretrained ? FineTuningOptions.Full(1, freezeBatchNorm: true) : null,
    };

    /// <summary>The network of a run, initialized from <paramref name="seed"/>: the CNN, or the ImageNet ResNet-18 with a new 10-class head.</summary>
    internal static nn.Module<Tensor, Tensor> CreateModel(DomainGeneralizationOptions dg, int seed)
    {
        manual_seed(seed);
        return dg.Pretrained
            ? PretrainedBackbone.ResNet18ImageNet().CreateNetwork(10, dg.Size, dg.Size, headSeed: seed)
            : new MnistCnn(1, 10, dg.Width);
    }

    internal static string NetworkText(DomainGeneralizationOptions dg) => dg.Pretrained
        ? $"ImageNet ResNet-18 (ML.NET's ResNet18 package) at {dg.Size}×{dg.Size}, all weights fine-tuned, BatchNorm frozen"
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"CNN width {dg.Width}");
}
