using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Data;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>An image file as an ML.NET row: a text label and the file's path (read with LoadRawImageBytes).</summary>
internal sealed class FileRow
{
    public string Label { get; set; } = "";

    public string Path { get; set; } = "";
}

/// <summary>
/// The streaming data path (DataLoading = Streaming): step time with streaming + Standard augmentation vs in memory
/// without it, decode + augment throughput per loader thread, and (mode streaming-memory) peak resident memory of Fit
/// as the data grows 10×, each configuration in a child process of its own.
/// </summary>
internal static class StreamingBenchmark
{
    private static string Folder => Path.Combine(Path.GetTempPath(), "flatminima-streaming-benchmark");

    // ---- step time and throughput ------------------------------------------------------------------------------------

    public static void Run(BenchmarkOptions options)
    {
        var ml = new MLContext(seed: 1);
        var fmnist = FashionMnistFiles(options, Math.Min(options.Images, 60_000));
        var photos = GeneratedJpegs(options.StreamingPhotos);
        Console.WriteLine();
        Console.WriteLine("## Streaming data path: epoch time of each data path vs in memory without augmentation");
        Console.WriteLine();
        Console.WriteLine($"Encoded files read with LoadRawImageBytes; SGD (no SAM), epoch time from the Progress reports (reading the data excluded); " +
                          $"configurations alternate, {options.StreamingRounds} rounds, median. Loader threads: {ClassifierTrainingOptions.DefaultLoaderWorkers} (the default on this machine), prefetch 4.");
        Console.WriteLine();
        Console.WriteLine("| model, data | data path | s/epoch | ratio to in memory, no augmentation | training images/s |");
        Console.WriteLine("|---|---|---|---|---|");
        CompareEpochs(ml, fmnist, $"SmallCnn 1×28×28, {fmnist.Count:N0} Fashion-MNIST PNGs, batch 128, 2 epochs", options, AllPaths,
            o => { o.BatchSize = 128; o.Epochs = 2; o.ImageHeight = 28; o.ImageWidth = 28; });
        CompareEpochs(ml, photos, $"ResNet-18 (ImageNet layout) 3×224×224, {photos.Count:N0} generated JPEGs, batch 32, 1 epoch", options,
            new[] { AllPaths[0], AllPaths[3] },
            o =>
            {
                o.BatchSize = 32; o.Epochs = 1; o.ImageHeight = 224; o.ImageWidth = 224; o.ImageChannels = 3;
                o.CustomModelName = "ResNet18ImageNetLayout";
                o.CustomModelFactory = (channels, classes) => ImageNetResNet.ResNet18(classes);
            });
        Console.WriteLine();
        Console.WriteLine("The data path's parts on one thread, images/s (batches of the model's batch size):");
        Console.WriteLine();
        Console.WriteLine("| data | read + decode (loader thread) | resize + channels + normalize (training thread) | Standard augmentation (training thread) |");
        Console.WriteLine("|---|---|---|---|");
        LoaderThroughput(ml, fmnist, "Fashion-MNIST PNG → 1×28×28", 28, 128);
        LoaderThroughput(ml, photos, "generated JPEG 256×256 → 3×224×224", 224, 32);
    }

    /// <summary>A data-path configuration: streaming or in memory, Standard augmentation or none, loader threads (null: the default).</summary>
    private sealed record DataPath(string Name, bool Streaming, bool Augment, int? Workers = null);

    private static readonly DataPath[] AllPaths =
    {
        new("in memory, no augmentation", false, false), new("in memory + Standard", false, true), new("streaming, no augmentation", true, false),
        new("streaming + Standard", true, true), new("streaming + Standard, decoded on the training thread", true, true, 0),
    };

    // Alternates the configurations for the rounds; prints each one's median epoch time and its ratio to the first.
    private static void CompareEpochs(MLContext ml, List<FileRow> files, string title, BenchmarkOptions options, DataPath[] paths,
        Action<FlatMinimaImageClassificationTrainer.Options> setup)
    {
        var data = Load(ml, files);
        var times = paths.ToDictionary(p => p, _ => new List<double>());
        for (int round = 0; round < options.StreamingRounds; round++)
            foreach (var path in paths)
            {
                var epochs = new List<double>();
                var o = new FlatMinimaImageClassificationTrainer.Options
                {
                    ImageColumnName = "Image", SharpnessAware = null, LearningRate = 0.01, Device = DeviceKind.Cpu, TuneGlibcMalloc = options.Mallopt,
                    DataLoading = path.Streaming ? ImageDataLoading.Streaming : ImageDataLoading.InMemory,
                    Augmentation = path.Augment ? AugmentationOptions.Standard() : null,
                    Progress = r => epochs.Add(r.Elapsed.TotalSeconds),
                };
                if (path.Workers is int workers) o.LoaderWorkers = workers;
                setup(o);
                using var model = (IDisposable)Pipeline(ml, o).Fit(data);
                times[path].Add(epochs.Average());
            }
        double baseline = Timing.Median(times[paths[0]]);
        foreach (var path in paths)
        {
            double t = Timing.Median(times[path]);
            Console.WriteLine($"| {title} | {path.Name} | {t:F2} | {(path == paths[0] ? "1" : $"**{t / baseline:F3}**")} | {files.Count / t:N0} |");
        }
    }

    private static void LoaderThroughput(MLContext ml, List<FileRow> files, string title, int size, int batch)
    {
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(Load(ml, files)).Transform(Load(ml, files));
        using var images = EncodedImages.Read(data, "Image", "Label", size == 28 ? 1 : 3, size, size, null, BadImagePolicy.Error, workers: 1);
        var (mean, std) = images.ChannelStatistics(null);
        var standardization = new FlatMinima.Torch.IncrementalFewShot.ChannelStandardization(mean, std);
        var augmentation = AugmentationOptions.Standard();
        using var generator = new Generator(1, CPU);
        int n = Math.Min(images.Labels.Length, batch * 20);
        double decodeSeconds = 0, assembleSeconds = 0, augmentSeconds = 0;
        for (int start = 0; start + batch <= n; start += batch)
        {
            var rows = Enumerable.Range(start, batch).Select(i => (long)i).ToArray();
            var clock = Stopwatch.StartNew();
            var decoded = images.DecodeRows(rows);
            decodeSeconds += clock.Elapsed.TotalSeconds;
            clock.Restart();
            using var x = images.Assemble(decoded, standardization);
            assembleSeconds += clock.Elapsed.TotalSeconds;
            clock.Restart();
            augmentation.Apply(x, generator).Dispose();
            augmentSeconds += clock.Elapsed.TotalSeconds;
        }
        int used = n / batch * batch;
        Console.WriteLine($"| {title} | {used / decodeSeconds:N0} | {used / assembleSeconds:N0} | {used / augmentSeconds:N0} |");
    }

    // ---- peak memory, one child process per configuration --------------------------------------------------------------

    public static void RunMemory(BenchmarkOptions options)
    {
        var fmnist = FashionMnistFiles(options, 60_000);
        GeneratedJpegs(10_000);
        Console.WriteLine();
        Console.WriteLine("## Peak resident memory of Fit (VmHWM of a child process per configuration)");
        Console.WriteLine();
        Console.WriteLine("Each child loads the file list (paths), builds the pipeline (LoadRawImageBytes → MapValueToKey → trainer) and runs Fit for one epoch " +
                          "with SGD; 'before Fit' is the resident memory after TorchSharp is loaded and the data view is built.");
        Console.WriteLine();
        Console.WriteLine("| data | model | DataLoading | rows | resident before Fit (MB) | peak (MB) | peak − before (MB) | Fit (s) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        var results = new Dictionary<string, double>();
        foreach (var (source, loading, rows) in new[]
                 {
                     ("fmnist", "Streaming", 6_000), ("fmnist", "Streaming", 60_000), ("fmnist", "InMemory", 6_000), ("fmnist", "InMemory", 60_000),
                     ("jpeg", "Streaming", 1_000), ("jpeg", "Streaming", 10_000), ("jpeg", "InMemory", 1_000),
                 })
        {
            var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in Environment.GetCommandLineArgs().Take(1).Where(a => a.EndsWith(".dll", StringComparison.Ordinal))) start.ArgumentList.Add(a);
            foreach (var a in new[] { "fit-memory", "--fm-source", source, "--fm-loading", loading, "--fm-rows", rows.ToString(CultureInfo.InvariantCulture),
                         "--threads", options.Threads.ToString(CultureInfo.InvariantCulture), "--fashion-mnist", options.FashionMnist })
                start.ArgumentList.Add(a);
            using var process = Process.Start(start)!;
            string output = process.StandardOutput.ReadToEnd();
            string error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("fit-memory ", StringComparison.Ordinal))
                ?? throw new InvalidOperationException($"The fit-memory child ({source}, {loading}, {rows}) failed: {error}\n{output}");
            var v = line.Split(' ').Skip(1).Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            results[$"{source} {loading} {rows}"] = v[1];
            Console.WriteLine($"| {(source == "fmnist" ? "Fashion-MNIST PNG 28×28" : "generated JPEG → 224×224 RGB")} | {(source == "fmnist" ? "SmallCnn" : "8×8/8 conv, 16 ch")} | " +
                              $"{loading} | {rows:N0} | {v[0]:N0} | {v[1]:N0} | {v[1] - v[0]:N0} | {v[2]:F1} |");
        }
        Console.WriteLine();
        Console.WriteLine($"Streaming, 10× the rows: Fashion-MNIST peak × {results["fmnist Streaming 60000"] / results["fmnist Streaming 6000"]:F3}, " +
                          $"JPEG 224×224 peak × {results["jpeg Streaming 10000"] / results["jpeg Streaming 1000"]:F3}; " +
                          $"in memory, Fashion-MNIST peak × {results["fmnist InMemory 60000"] / results["fmnist InMemory 6000"]:F3}.");
    }

    /// <summary>The child of <see cref="RunMemory"/>: one Fit, then a line "fit-memory before peak seconds".</summary>
    public static void FitMemoryChild(BenchmarkOptions options)
    {
        var m = options.FitMemory ?? throw new ArgumentException("fit-memory needs --fm-source, --fm-loading and --fm-rows.");
        var ml = new MLContext(seed: 1);
        bool photos = m.Source == "jpeg";
        var files = photos ? GeneratedJpegs(m.Rows) : FashionMnistFiles(options, m.Rows);
        var o = new FlatMinimaImageClassificationTrainer.Options
        {
            ImageColumnName = "Image", SharpnessAware = null, LearningRate = 0.01, Device = DeviceKind.Cpu, Epochs = 1,
            BatchSize = photos ? 32 : 128, ImageHeight = photos ? 224 : 28, ImageWidth = photos ? 224 : 28, ImageChannels = photos ? 3 : 1,
            DataLoading = Enum.Parse<ImageDataLoading>(m.Loading),
        };
        if (photos)
        {
            // A cheap network (8×8 stride-8 convolution to 16 channels, global pooling, linear), so that the data path,
            // not the activations of a large model, is what grows.
            o.CustomModelName = "Patchify16";
            o.CustomModelFactory = (channels, classes) => nn.Sequential(nn.Conv2d(channels, 16, 8, stride: 8), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes));
        }
        var data = Load(ml, files);
        using (zeros(1).add(1)) { }   // TorchSharp loaded before the baseline
        double before = ResidentMegabytes("VmRSS:");
        var clock = Stopwatch.StartNew();
        using var model = (IDisposable)Pipeline(ml, o).Fit(data);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fit-memory {before:F1} {ResidentMegabytes("VmHWM:"):F1} {clock.Elapsed.TotalSeconds:F1}"));
    }

    private static double ResidentMegabytes(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }

    // ---- data -----------------------------------------------------------------------------------------------------------

    private static IEstimator<ITransformer> Pipeline(MLContext ml, FlatMinimaImageClassificationTrainer.Options o) =>
        ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(o));

    private static IDataView Load(MLContext ml, List<FileRow> files) =>
        ml.Transforms.LoadRawImageBytes("Image", null, nameof(FileRow.Path)).Fit(ml.Data.LoadFromEnumerable(files)).Transform(ml.Data.LoadFromEnumerable(files));

    /// <summary>The first <paramref name="count"/> Fashion-MNIST training images as PNG files (written once, reused).</summary>
    private static List<FileRow> FashionMnistFiles(BenchmarkOptions options, int count)
    {
        string folder = Path.Combine(Folder, "fashion-mnist");
        Directory.CreateDirectory(folder);
        var set = BenchmarkData.Load(options, train: true, count);
        var rows = new List<FileRow>(set.Count);
        int size = set.Height * set.Width;
        for (int i = 0; i < set.Count; i++)
        {
            string path = Path.Combine(folder, $"{i:D5}.png");
            if (!File.Exists(path))
            {
                using var bitmap = new SKBitmap(new SKImageInfo(set.Width, set.Height, SKColorType.Gray8));
                System.Runtime.InteropServices.Marshal.Copy(set.Pixels, i * size, bitmap.GetPixels(), size);
                using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(path, png.ToArray());
            }
            rows.Add(new FileRow { Label = IdxImageSet.FashionMnistClassNames[set.Labels[i]], Path = path });
        }
        return rows;
    }

    /// <summary>
    /// <paramref name="count"/> generated 256×256 JPEG photos (quality 90, written once, reused): a smooth two-color gradient
    /// with a few ellipses and noise, class = which color pair (10 classes), seeded by the row index.
    /// </summary>
    private static List<FileRow> GeneratedJpegs(int count)
    {
        string folder = Path.Combine(Folder, "jpeg256");
        Directory.CreateDirectory(folder);
        var rows = new List<FileRow>(count);
        for (int i = 0; i < count; i++)
        {
            string path = Path.Combine(folder, $"{i:D5}.jpg");
            int label = i % 10;
            if (!File.Exists(path))
            {
                var random = new Random(i);
                using var bitmap = new SKBitmap(256, 256);
                using var canvas = new SKCanvas(bitmap);
                var a = SKColor.FromHsv(label * 36, 70, 90);
                var b = SKColor.FromHsv((label * 36 + 120 + random.Next(40)) % 360, 60, 40);
                using (var shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(256, random.Next(256)), new[] { a, b }, SKShaderTileMode.Clamp))
                using (var paint = new SKPaint { Shader = shader })
                    canvas.DrawRect(0, 0, 256, 256, paint);
                for (int e = 0; e < 5; e++)
                    using (var paint = new SKPaint { Color = SKColor.FromHsv(random.Next(360), random.Next(100), random.Next(100)), IsAntialias = true })
                        canvas.DrawOval(random.Next(256), random.Next(256), 10 + random.Next(60), 10 + random.Next(60), paint);
                var pixels = bitmap.Bytes;
                for (int p = 0; p < pixels.Length; p += 4)
                    for (int c = 0; c < 3; c++) pixels[p + c] = (byte)Math.Clamp(pixels[p + c] + random.Next(-12, 13), 0, 255);
                System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
                using var jpeg = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90);
                File.WriteAllBytes(path, jpeg.ToArray());
            }
            rows.Add(new FileRow { Label = $"class{label}", Path = path });
        }
        return rows;
    }
}
