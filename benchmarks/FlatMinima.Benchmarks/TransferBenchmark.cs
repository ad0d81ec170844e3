using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Data;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms.Onnx;
using SkiaSharp;

namespace FlatMinima.Benchmarks;

/// <summary>Settings of the transfer-learning benchmark (mode <c>transfer</c>).</summary>
internal sealed record TransferOptions
{
    /// <summary>The methods, in table order (<c>--transfer-methods</c>).</summary>
    public static readonly string[] AllMethods =
    {
        "mlnet", "smallcnn-sam", "resnet20-sam", "pretrained-head", "pretrained-sgd", "pretrained-sam", "pretrained-sam-swad",
    };

    /// <summary>Training images per class (<c>--transfer-k</c>).</summary>
    public int[] ImagesPerClass { get; init; } = { 10, 50, 200 };

    /// <summary>Seeds; each draws other training images (<c>--transfer-seeds</c>).</summary>
    public int[] Seeds { get; init; } = { 1, 2, 3 };

    /// <summary>Input side of the pretrained backbone (<c>--transfer-size</c>).</summary>
    public int Size { get; init; } = 64;

    /// <summary>The methods to run (<c>--transfer-methods</c>), a subset of <see cref="AllMethods"/>.</summary>
    public string[] Methods { get; init; } = AllMethods;

    /// <summary>The first this many images of the test split are the test set (<c>--transfer-test</c>).</summary>
    public int TestImages { get; init; } = 2000;

    /// <summary>Minimum optimizer steps of a pretrained fine-tune (<c>--transfer-steps</c>).</summary>
    public int PretrainedSteps { get; init; } = 100;

    /// <summary>Minimum optimizer steps of a from-scratch run (<c>--transfer-scratch-steps</c>).</summary>
    public int ScratchSteps { get; init; } = 400;

    /// <summary>Minimum epochs of every FlatMinima run (<c>--transfer-min-epochs</c>).</summary>
    public int MinEpochs { get; init; } = 2;

    /// <summary>Learning rate of the full fine-tunes (<c>--transfer-lr</c>); the head-only probe takes 10×.</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>The backbone's learning rate ÷ the head's in the full fine-tunes (<c>--transfer-backbone-factor</c>).</summary>
    public double BackboneFactor { get; init; } = 1.0;

    /// <summary>
    /// The augmentation of the pretrained runs (<c>--transfer-augment</c>): <c>standard</c> (<see cref="AugmentationOptions.Standard"/>:
    /// pad-4 crop up to 64 px, random-resized crop above) or <c>crop</c> (pad-and-crop at every size, padding ⌈size / 7⌉ — the
    /// 4 of 28 px scaled — and a horizontal flip).
    /// </summary>
    public string Augment { get; init; } = "standard";

    /// <summary>The pretrained runs' augmentation (see <see cref="Augment"/>).</summary>
    public AugmentationOptions PretrainedAugmentation => Augment switch
    {
        "standard" => AugmentationOptions.Standard(),
        "crop" => new AugmentationOptions { Crop = new RandomCrop { Padding = (Size + 6) / 7 }, HorizontalFlip = new RandomHorizontalFlip() },
        _ => throw new ArgumentException($"Unknown --transfer-augment {Augment}; use standard or crop."),
    };

    /// <summary>Also write the markdown report to this file (<c>--transfer-out</c>).</summary>
    public string? Output { get; init; }
}

/// <summary>
/// Transfer learning at low data on Fashion-MNIST: K training images per class (drawn per seed), a fixed test set, and side
/// by side (same draws, same test set) ML.NET's own path (<c>DnnFeaturizeImage</c> ResNet-18 at 224×224 +
/// <c>LbfgsMaximumEntropy</c>), FlatMinima from scratch (SmallCnn, ResNet-20, both with SAM) and FlatMinima fine-tuning the
/// same ImageNet ResNet-18 (head only, full with SGD, SAM, SAM + SWAD). Prints a line per run as it goes, then a markdown
/// table (accuracy mean ± standard error over seeds, Fit wall time, training images/s) and the goal line.
/// </summary>
internal static class TransferBenchmark
{
    private const int BatchSize = 32;
    private const double SwadValidationFraction = 0.2;

    /// <summary>A training or test image for the FlatMinima trainers: text label and PNG bytes (1×28×28 gray).</summary>
    private sealed class EncodedRow
    {
        public string Label { get; set; } = "";
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    }

    /// <summary>A training or test image for ML.NET's image transforms: text label and an in-memory 28×28 BGRA image.</summary>
    private sealed class BitmapRow
    {
        public string Label { get; set; } = "";

        [ImageType(28, 28)]
        public MLImage Image { get; set; } = null!;
    }

    /// <summary>A test image's ResNet-18 features from ML.NET's featurizer (computed once for all runs).</summary>
    private sealed class FeatureRow
    {
        public string Label { get; set; } = "";

        [VectorType(512)]
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    private sealed record Method(string Name, string Title, bool Pretrained);

    private sealed record RunResult(string Method, int K, int Seed, double Accuracy, double Seconds, double ImagesPerSecond, int Epochs, int Steps, string Note);

    private static readonly Dictionary<string, string> Titles = new()
    {
        ["mlnet"] = "ML.NET: DnnFeaturizeImage ResNet-18 (224×224) + LbfgsMaximumEntropy",
        ["smallcnn-sam"] = "FlatMinima from scratch: SmallCnn 1×28×28, SAM, Standard aug.",
        ["resnet20-sam"] = "FlatMinima from scratch: ResNet-20 1×28×28, SAM, Standard aug.",
        ["pretrained-head"] = "FlatMinima pretrained ResNet-18: head only (SGD)",
        ["pretrained-sgd"] = "FlatMinima pretrained ResNet-18: full fine-tune, SGD",
        ["pretrained-sam"] = "FlatMinima pretrained ResNet-18: full fine-tune, SAM",
        ["pretrained-sam-swad"] = "FlatMinima pretrained ResNet-18: full fine-tune, SAM + SWAD",
    };

    public static void Run(BenchmarkOptions options)
    {
        var t = options.Transfer;
        var unknown = t.Methods.Except(TransferOptions.AllMethods).ToArray();
        if (unknown.Length > 0)
            throw new ArgumentException($"Unknown --transfer-methods {string.Join(",", unknown)}; use {string.Join(",", TransferOptions.AllMethods)}.");
        var methods = TransferOptions.AllMethods.Where(t.Methods.Contains).Select(m => new Method(m, Titles[m], m.StartsWith("pretrained", StringComparison.Ordinal))).ToArray();

        var train = BenchmarkData.Load(options, train: true, 60_000);
        var test = BenchmarkData.Load(options, train: false, t.TestImages);
        var png = new Dictionary<int, byte[]>();   // training-set index → PNG, encoded once
        var testRows = Enumerable.Range(0, test.Count).Select(i => new EncodedRow { Label = ClassName(test, i), ImageSource = Png(test, i) }).ToList();

        var header = new StringBuilder();
        header.AppendLine();
        header.AppendLine($"## Transfer learning at low data: Fashion-MNIST, K training images per class, {test.Count:N0} test images");
        header.AppendLine();
        header.AppendLine($"Per seed, K images per class are drawn from the 60,000 training images (a seeded shuffle of each class; the K = {string.Join(", ", t.ImagesPerClass)} " +
                          $"draws of a seed are nested); the test set is the first {test.Count:N0} images of the test split. Every method sees the same draws and the same test set. " +
                          $"Seeds {string.Join(", ", t.Seeds)}; accuracy is the test micro-accuracy, mean ± standard error over seeds.");
        header.AppendLine();
        header.AppendLine("* **mlnet**: `LoadFromEnumerable` of in-memory 28×28 images (`MLImage`) → `ResizeImages` 224×224 → `ExtractPixels` (defaults: planar RGB, 0–255, " +
                          "what `ResNetPreprocess.onnx` expects) → `DnnFeaturizeImage` ResNet-18 (ONNX Runtime) → `SelectColumns` → `AppendCacheCheckpoint` → " +
                          "`LbfgsMaximumEntropy()` (defaults). The test set's features are computed once with the same featurizer (it has no trained state) and scored by each run's trained mapping and trainer.");
        header.AppendLine($"* **FlatMinima** (PNG bytes in memory): batch {BatchSize}, SGD momentum 0.9, weight decay 5e-4, cosine schedule, `AugmentationOptions.Standard()` " +
                          "(pad-4 crop ≤ 64 px, else random-resized crop; horizontal flip). Epochs = max(" + t.MinEpochs + ", ⌈S / steps per epoch⌉) with S = " +
                          $"{t.ScratchSteps} minimum steps from scratch (LR 0.05) and S = {t.PretrainedSteps} when fine-tuning, so every K gets about the same number of steps.");
        header.AppendLine($"* **pretrained**: `PretrainedBackbone.ResNet18ImageNet()` (the same network as mlnet) at {t.Size}×{t.Size}, gray replicated to RGB, augmentation {t.PretrainedAugmentation}. " +
                          $"Head only: `FineTuningOptions.HeadOnly()`, LR {10 * t.LearningRate:G3} (a linear probe), no SAM. Full fine-tunes: `FineTuningOptions.Full({t.BackboneFactor:G3})`, " +
                          $"LR {t.LearningRate:G3}; SGD (`SharpnessAware = null`), SAM (ρ = 0.05), SAM + SWAD (`WeightAveragingOptions.Swad()`, automatic evaluation frequency; " +
                          $"ValidationFraction {SwadValidationFraction} of the training rows held out stratified by class — round(0.2 K) per class, 2 at K = 10 — so SWAD trains on 80% of the images).");
        header.AppendLine("* Fit s: wall time of `Fit` (mlnet: featurizing the training images + L-BFGS; FlatMinima: decoding + training, importing the backbone included). " +
                          "Training images/s: images passed through the network in Fit ÷ Fit s (mlnet: training rows; FlatMinima: epochs run × training rows, a SAM step counted once).");
        header.AppendLine();
        Console.Write(header.ToString());
        Console.WriteLine("Runs as they finish:");
        Console.WriteLine();

        var results = new List<RunResult>();
        List<FeatureRow>? testFeatures = null;
        foreach (int k in t.ImagesPerClass)
            foreach (int seed in t.Seeds)
            {
                var indices = Draw(train, seed, t.ImagesPerClass.Max()).SelectMany((perClass, c) => perClass.Take(k).Select((index, rank) => (index, rank, c)))
                    .OrderBy(r => r.rank).ThenBy(r => r.c).Select(r => r.index).ToArray();   // classes interleaved
                foreach (var method in methods)
                {
                    RunResult result;
                    if (method.Name == "mlnet")
                    {
                        testFeatures ??= FeaturizeTestSet(test);
                        result = RunMlNet(train, indices, testFeatures, k, seed);
                    }
                    else
                    {
                        var rows = indices.Select(i => new EncodedRow
                        {
                            Label = ClassName(train, i),
                            ImageSource = png.TryGetValue(i, out var bytes) ? bytes : png[i] = Png(train, i),
                        }).ToList();
                        result = RunFlatMinima(options, method, rows, testRows, k, seed);
                    }
                    results.Add(result);
                    Console.WriteLine($"run {result.Method} K={k} seed={seed}: accuracy {result.Accuracy:P2}, Fit {result.Seconds:F1} s, " +
                                      $"{result.ImagesPerSecond:N0} training images/s, {result.Epochs} epochs, {result.Steps} steps{(result.Note.Length > 0 ? "; " + result.Note : "")}");
                    Console.Out.Flush();
                }
            }

        var report = new StringBuilder();
        report.AppendLine();
        report.AppendLine("| method | K | training images | accuracy (mean ± SE) | seeds | Fit s (mean) | training images/s | epochs (steps) |");
        report.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var method in methods)
            foreach (int k in t.ImagesPerClass)
            {
                var runs = results.Where(r => r.Method == method.Name && r.K == k).ToList();
                if (runs.Count == 0) continue;
                var (mean, se) = ReportText.MeanAndError(runs.Select(r => r.Accuracy).ToList());
                string schedule = method.Name == "mlnet" ? "—" : $"{runs.Average(r => r.Epochs):0.#} ({runs.Average(r => r.Steps):0})";
                report.AppendLine($"| {method.Title} | {k} | {10 * k:N0} | {mean:P2} ± {se:P2} | {runs.Count} | {runs.Average(r => r.Seconds):F1} | " +
                                  $"{runs.Average(r => r.ImagesPerSecond):N0} | {schedule} |");
            }
        report.AppendLine();
        report.AppendLine(GoalLine(results, t.ImagesPerClass));
        Console.Write(report.ToString());
        if (t.Output is string file)
        {
            File.WriteAllText(file, $"# FlatMinima transfer benchmark — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, " +
                                    $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}\n" +
                                    $"# command: dotnet run -c Release --project benchmarks/FlatMinima.Benchmarks -- {string.Join(' ', Environment.GetCommandLineArgs().Skip(1))}\n" +
                                    header + report);
            Console.WriteLine($"Written to {file}.");
        }
    }

    // ---- the methods ------------------------------------------------------------------------------------------------

    /// <summary>ML.NET's featurizer: resize to 224×224, planar RGB pixels in 0–255, ResNet-18 through ONNX Runtime.</summary>
    private static IEstimator<ITransformer> Featurizer(MLContext ml) =>
        ml.Transforms.ResizeImages("Resized", imageWidth: 224, imageHeight: 224, inputColumnName: nameof(BitmapRow.Image))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Resized"))
            .Append(ml.Transforms.DnnFeaturizeImage("Features", m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), "Pixels"));

    /// <summary>The test set's ML.NET ResNet-18 features, computed once (the featurizer has no trained state).</summary>
    private static List<FeatureRow> FeaturizeTestSet(IdxImageSet test)
    {
        var ml = new MLContext(seed: 1);
        var images = Bitmaps(test, Enumerable.Range(0, test.Count).ToArray());
        try
        {
            var data = ml.Data.LoadFromEnumerable(images);
            var clock = Stopwatch.StartNew();
            var featurizer = Featurizer(ml).Fit(data);
            try
            {
                var features = ml.Data.CreateEnumerable<FeatureRow>(featurizer.Transform(data), reuseRowObject: false).ToList();
                Console.WriteLine($"(ML.NET featurizer: {test.Count:N0} test images in {clock.Elapsed.TotalSeconds:F1} s, {test.Count / clock.Elapsed.TotalSeconds:F1} images/s)");
                return features;
            }
            finally
            {
                (featurizer as IDisposable)?.Dispose();
            }
        }
        finally
        {
            foreach (var row in images) row.Image.Dispose();
        }
    }

    private static RunResult RunMlNet(IdxImageSet train, int[] indices, List<FeatureRow> testFeatures, int k, int seed)
    {
        var ml = new MLContext(seed: seed);
        var images = Bitmaps(train, indices);
        try
        {
            var data = ml.Data.LoadFromEnumerable(images);
            var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
                .Append(Featurizer(ml))
                .Append(ml.Transforms.SelectColumns("Label", "Features"))
                .AppendCacheCheckpoint(ml)
                .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy());
            var clock = Stopwatch.StartNew();
            var model = pipeline.Fit(data);
            double seconds = clock.Elapsed.TotalSeconds;
            try
            {
                // The chain's first transformer maps the text labels to keys; the last one is the trained classifier.
                var keyed = model.First().Transform(ml.Data.LoadFromEnumerable(testFeatures));
                double accuracy = ml.MulticlassClassification.Evaluate(model.LastTransformer.Transform(keyed)).MicroAccuracy;
                return new RunResult("mlnet", k, seed, accuracy, seconds, indices.Length / seconds, 0, 0, "");
            }
            finally
            {
                (model as IDisposable)?.Dispose();
            }
        }
        finally
        {
            foreach (var row in images) row.Image.Dispose();
        }
    }

    private static RunResult RunFlatMinima(BenchmarkOptions options, Method method, List<EncodedRow> rows, List<EncodedRow> testRows, int k, int seed)
    {
        var t = options.Transfer;
        var ml = new MLContext(seed: seed);
        bool swad = method.Name == "pretrained-sam-swad";
        // Rows SWAD keeps for training: each class gives round(0.2 K) to validation (ValidationSplit.Stratified).
        int trainRows = swad ? rows.Count - 10 * (int)Math.Round(SwadValidationFraction * k, MidpointRounding.AwayFromZero) : rows.Count;
        int stepsPerEpoch = (trainRows + BatchSize - 1) / BatchSize;
        int minSteps = method.Pretrained ? t.PretrainedSteps : t.ScratchSteps;
        int epochs = Math.Max(t.MinEpochs, (minSteps + stepsPerEpoch - 1) / stepsPerEpoch);
        var reports = new List<EpochReport>();
        var o = new FlatMinimaImageClassificationTrainer.Options
        {
            ImageColumnName = nameof(EncodedRow.ImageSource), Epochs = epochs, BatchSize = BatchSize, Seed = seed, Device = DeviceKind.Cpu,
            TuneGlibcMalloc = options.Mallopt, Augmentation = AugmentationOptions.Standard(), Progress = reports.Add,
        };
        switch (method.Name)
        {
            case "smallcnn-sam":
            case "resnet20-sam":
                o.Architecture = method.Name == "smallcnn-sam" ? ImageClassifierArchitecture.SmallCnn : ImageClassifierArchitecture.ResNet20;
                o.ImageHeight = 28; o.ImageWidth = 28; o.ImageChannels = 1;
                o.SharpnessAware = SharpnessAwareOptions.Sam();
                o.LearningRate = 0.05;
                break;
            default:
                o.Backbone = PretrainedBackbone.ResNet18ImageNet();
                o.Augmentation = t.PretrainedAugmentation;
                o.ImageHeight = t.Size; o.ImageWidth = t.Size;
                o.LearningRate = t.LearningRate;
                o.FineTuning = FineTuningOptions.Full(t.BackboneFactor);
                switch (method.Name)
                {
                    case "pretrained-head":
                        o.FineTuning = FineTuningOptions.HeadOnly();
                        o.LearningRate = 10 * t.LearningRate;
                        o.SharpnessAware = null;
                        break;
                    case "pretrained-sgd":
                        o.SharpnessAware = null;
                        break;
                    case "pretrained-sam":
                        o.SharpnessAware = SharpnessAwareOptions.Sam();
                        break;
                    case "pretrained-sam-swad":
                        o.SharpnessAware = SharpnessAwareOptions.Sam();
                        o.Averaging = WeightAveragingOptions.Swad();
                        o.ValidationFraction = SwadValidationFraction;
                        break;
                }
                break;
        }

        var train = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(o));
        var clock = Stopwatch.StartNew();
        using var model = pipeline.Fit(train);
        double seconds = clock.Elapsed.TotalSeconds;
        double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(ml.Data.LoadFromEnumerable(testRows))).MicroAccuracy;
        int epochsRun = reports.Count;
        string note = reports.LastOrDefault()?.Averaging is AveragingReport averaging ? averaging.ToString() : "";
        return new RunResult(method.Name, k, seed, accuracy, seconds, (double)epochsRun * trainRows / seconds, epochsRun, epochsRun * stepsPerEpoch, note);
    }

    // ---- summary ----------------------------------------------------------------------------------------------------

    /// <summary>"pretrained + SAM (or SAM+SWAD) vs ML.NET's path at K=50: +X points; vs best from-scratch at every K".</summary>
    private static string GoalLine(List<RunResult> results, int[] ks)
    {
        double? Mean(string method, int k)
        {
            var runs = results.Where(r => r.Method == method && r.K == k).ToList();
            return runs.Count == 0 ? null : runs.Average(r => r.Accuracy);
        }

        (string Name, double Accuracy)? Best(int k, params string[] methods) =>
            methods.Select(m => (Name: m, Accuracy: Mean(m, k))).Where(x => x.Accuracy is not null)
                .Select(x => ((string Name, double Accuracy)?)(x.Name, x.Accuracy!.Value)).OrderByDescending(x => x!.Value.Accuracy).FirstOrDefault();

        static string Points(double a, double b) => string.Create(CultureInfo.InvariantCulture, $"{100 * (a - b):+0.0;-0.0} points");

        var line = new StringBuilder("**Goal line:** pretrained + SAM (or SAM+SWAD) ");
        int goalK = ks.Contains(50) ? 50 : ks[ks.Length / 2];
        var ours = Best(goalK, "pretrained-sam", "pretrained-sam-swad");
        double? mlnet = Mean("mlnet", goalK);
        line.Append($"vs ML.NET's path at K={goalK}: ");
        line.Append(ours is { } o && mlnet is double m ? $"{Points(o.Accuracy, m)} ({o.Name} {o.Accuracy:P2} vs {m:P2})" : "n/a (a method was not run)");
        line.Append("; vs best from scratch: ");
        line.Append(string.Join(", ", ks.Select(k =>
        {
            var best = Best(k, "pretrained-sam", "pretrained-sam-swad");
            var scratch = Best(k, "smallcnn-sam", "resnet20-sam");
            return best is { } b && scratch is { } s ? $"K={k} {Points(b.Accuracy, s.Accuracy)} ({b.Name} {b.Accuracy:P2} vs {s.Name} {s.Accuracy:P2})" : $"K={k} n/a";
        })));
        line.Append('.');
        return line.ToString();
    }

    // ---- data ---------------------------------------------------------------------------------------------------------

    private static string ClassName(IdxImageSet set, int i) => IdxImageSet.FashionMnistClassNames[set.Labels[i]];

    /// <summary>Per class, the first <paramref name="perClass"/> training indices of a shuffle seeded by <paramref name="seed"/>.</summary>
    private static List<int[]> Draw(IdxImageSet train, int seed, int perClass)
    {
        var random = new Random(seed);
        var draws = new List<int[]>();
        for (int c = 0; c < IdxImageSet.FashionMnistClassNames.Count; c++)
        {
            int[] members = Enumerable.Range(0, train.Count).Where(i => train.Labels[i] == c).ToArray();
            random.Shuffle(members);
            if (members.Length < perClass) throw new ArgumentException($"Class {c} has only {members.Length} training images; K = {perClass} is too large.");
            draws.Add(members.Take(perClass).ToArray());
        }
        return draws;
    }

    /// <summary>Image <paramref name="i"/> of <paramref name="set"/> as a gray PNG (as StreamingBenchmark writes them).</summary>
    private static byte[] Png(IdxImageSet set, int i)
    {
        int size = set.Height * set.Width;
        using var bitmap = new SKBitmap(new SKImageInfo(set.Width, set.Height, SKColorType.Gray8));
        System.Runtime.InteropServices.Marshal.Copy(set.Pixels, i * size, bitmap.GetPixels(), size);
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }

    /// <summary>The images at <paramref name="indices"/> as in-memory BGRA <see cref="MLImage"/>s (gray in B, G and R); dispose them.</summary>
    private static List<BitmapRow> Bitmaps(IdxImageSet set, int[] indices)
    {
        int size = set.Height * set.Width;
        return indices.Select(i =>
        {
            var bgra = new byte[4 * size];
            for (int p = 0; p < size; p++)
            {
                byte v = set.Pixels[i * size + p];
                bgra[4 * p] = v; bgra[4 * p + 1] = v; bgra[4 * p + 2] = v; bgra[4 * p + 3] = 255;
            }
            return new BitmapRow { Label = ClassName(set, i), Image = MLImage.CreateFromPixels(set.Width, set.Height, MLPixelFormat.Bgra32, bgra) };
        }).ToList();
    }
}
