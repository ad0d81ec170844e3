using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.MLNet.Tests;

/// <summary>A Model Builder-shaped input row: a text label and the encoded image bytes.</summary>
public sealed class ImageRow
{
    public string Label { get; set; } = "";
    public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    public string ImagePath { get; set; } = "";
}

/// <summary>A Model Builder-shaped output row.</summary>
public sealed class Prediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = Array.Empty<float>();
}

internal static class TestData
{
    public static readonly string[] ThreeClasses = { "Trouser", "Bag", "Sneaker" };

    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Subset => Path.Combine(RepoRoot, "data", "fashion-mnist-subset");

    /// <summary>The first <paramref name="perClass"/> images of each class (sorted by file name) of a split of the embedded subset.</summary>
    public static List<ImageRow> Load(string split, IEnumerable<string> classes, int perClass, int skip = 0) =>
        classes.SelectMany(c => Directory.GetFiles(Path.Combine(Subset, split, c), "*.png").OrderBy(f => f, StringComparer.Ordinal)
            .Skip(skip).Take(perClass)
            .Select(f => new ImageRow { Label = c, ImageSource = File.ReadAllBytes(f), ImagePath = f })).ToList();

    /// <summary>Small, fast CPU options for tests; <paramref name="change"/> adjusts them.</summary>
    public static FlatMinimaImageClassificationTrainer.Options FastOptions(int epochs = 3, int batchSize = 32,
        Action<FlatMinimaImageClassificationTrainer.Options>? change = null)
    {
        var options = new FlatMinimaImageClassificationTrainer.Options
        {
            ImageColumnName = "ImageSource",
            Epochs = epochs,
            BatchSize = batchSize,
            LearningRate = 0.05,
            Device = FlatMinima.Torch.Training.DeviceKind.Cpu,
            ScoringBatchSize = 16,
        };
        change?.Invoke(options);
        return options;
    }

    public static IEstimator<ITransformer> Pipeline(MLContext ml, FlatMinimaImageClassificationTrainer.Options options) =>
        ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

    public static float[][] Scores(IDataView scored, string column = "Score") =>
        scored.GetColumn<float[]>(column).ToArray();

    /// <summary>
    /// Resets the process's peak resident memory (VmHWM) to its current resident memory (Linux ≥ 4.0: writing 5 to
    /// /proc/self/clear_refs), so that a later <see cref="PeakResidentBytes"/> is the peak since now rather than the
    /// peak of whatever ran earlier in the test process; false where that is not possible.
    /// </summary>
    public static bool ResetPeakResident()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The process's peak resident memory (VmHWM) on Linux; 0 elsewhere.</summary>
    public static long PeakResidentBytes()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "FlatMinima.MLNet.sln"))) return dir.FullName;
        throw new InvalidOperationException("Could not find the repository root (FlatMinima.MLNet.sln) above " + AppContext.BaseDirectory);
    }
}
