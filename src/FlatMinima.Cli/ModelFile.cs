using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text.Json;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using Microsoft.ML;

namespace FlatMinima.Cli;

/// <summary>What <c>flatminima train</c> records about a run, stored as a JSON entry in the model zip (read by <c>info</c>).</summary>
public sealed record RunRecord
{
    /// <summary>The tool version that trained the model.</summary>
    public string ToolVersion { get; init; } = "";

    /// <summary>When training finished (UTC).</summary>
    public DateTimeOffset Created { get; init; }

    /// <summary>The options of the run, as given or resolved (method, averaging, epochs, image size, …).</summary>
    public Dictionary<string, string> Options { get; init; } = new();

    /// <summary>Images used for training (after skipped ones).</summary>
    public long TrainImages { get; init; }

    /// <summary>Images of the test part.</summary>
    public long TestImages { get; init; }

    /// <summary>Images left out because they could not be read or decoded (training and test).</summary>
    public long SkippedImages { get; init; }

    /// <summary>Completed epochs.</summary>
    public int EpochsCompleted { get; init; }

    /// <summary>Training stopped early (Ctrl+C or divergence); the model holds the last completed epoch.</summary>
    public string? Interruption { get; init; }

    /// <summary>The weight averager's summary (SWAD's window, …), when averaging was used.</summary>
    public string? Averaging { get; init; }

    /// <summary>Wall time of training in seconds.</summary>
    public double TrainingSeconds { get; init; }

    /// <summary>The test metrics, when a test part was evaluated.</summary>
    public MetricsSummary? Test { get; init; }

    /// <summary>For an incremental (F2M) model: its base classes and the sessions <c>add-classes</c> ran; null otherwise.</summary>
    public IncrementalRecord? Incremental { get; init; }
}

/// <summary>The headline metrics of an evaluation.</summary>
/// <param name="MicroAccuracy">Accuracy over all rows.</param>
/// <param name="MacroAccuracy">Mean per-class accuracy (recall).</param>
/// <param name="LogLoss">ML.NET's log-loss.</param>
/// <param name="Rows">Rows evaluated.</param>
public sealed record MetricsSummary(double MicroAccuracy, double MacroAccuracy, double LogLoss, long Rows);

/// <summary>
/// A loaded model zip: the ML.NET model, its FlatMinima scorer — an image classifier (<c>train</c>) or an F2M incremental
/// few-shot classifier (<c>train --incremental</c>, <c>add-classes</c>) — and the run record when the tool wrote one.
/// </summary>
public sealed class ModelFile : IDisposable
{
    /// <summary>The zip entry holding the <see cref="RunRecord"/> (ML.NET's loader reads only its own entries).</summary>
    public const string RunEntry = "FlatMinimaCli/run.json";

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,   // readable quotes and non-ASCII; never embedded in HTML
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,   // NaN precision of a class never predicted
    };

    private ModelFile(string path, ITransformer model, DataViewSchema inputSchema, FlatMinimaImageClassificationTransformer? classifier,
        FlatMinimaIncrementalFewShotTransformer? incremental, RunRecord? run)
    {
        Path = path;
        Model = model;
        InputSchema = inputSchema;
        Classifier = classifier;
        Incremental = incremental;
        Run = run;
    }

    /// <summary>The zip's path.</summary>
    public string Path { get; }

    /// <summary>The whole ML.NET model (label mapping, classifier, predicted-label mapping).</summary>
    public ITransformer Model { get; }

    /// <summary>The input schema saved with the model.</summary>
    public DataViewSchema InputSchema { get; }

    /// <summary>The FlatMinima image classifier inside <see cref="Model"/>, or null for an incremental model.</summary>
    public FlatMinimaImageClassificationTransformer? Classifier { get; }

    /// <summary>The F2M incremental few-shot classifier inside <see cref="Model"/>, or null for an image classifier.</summary>
    public FlatMinimaIncrementalFewShotTransformer? Incremental { get; }

    /// <summary>The model is an F2M incremental few-shot classifier (<c>train --incremental</c>, <c>add-classes</c>).</summary>
    public bool IsIncremental => Incremental is not null;

    /// <summary>The network with its architecture, input geometry and normalization (an incremental model's backbone).</summary>
    public FlatMinimaImageClassifier Network => Classifier?.Model ?? Incremental!.Model.Backbone;

    /// <summary>The record the tool stored, or null for a model saved by other code.</summary>
    public RunRecord? Run { get; }

    /// <summary>The classes, in the model's score order.</summary>
    public IReadOnlyList<string> Classes => Classifier?.ClassNames ?? Incremental!.ClassNames;

    /// <summary>The name of the image column the model reads.</summary>
    public string ImageColumn => Classifier?.FeatureColumnName ?? Incremental!.FeatureColumnName;

    /// <summary>The output column of the class probabilities.</summary>
    public string ScoreColumn => Classifier?.ScoreColumnName ?? Incremental!.ScoreColumnName;

    /// <summary>The output column of the predicted class.</summary>
    public string PredictedLabelColumn => Classifier?.PredictedLabelColumnName ?? Incremental!.PredictedLabelColumnName;

    /// <summary>"F2M incremental" or "image classifier", for messages.</summary>
    public string Kind => IsIncremental ? "an incremental (F2M) model" : "an image classifier";

    /// <summary>Saves <paramref name="model"/> with <c>mlContext.Model.Save</c> and adds <paramref name="run"/> as <see cref="RunEntry"/>;
    /// written to a temporary file first and moved over <paramref name="path"/>.</summary>
    public static void Save(MLContext ml, ITransformer model, DataViewSchema inputSchema, string path, RunRecord run)
    {
        string full = System.IO.Path.GetFullPath(path);
        string? folder = System.IO.Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        string temporary = full + ".tmp";
        ml.Model.Save(model, inputSchema, temporary);
        using (var zip = ZipFile.Open(temporary, ZipArchiveMode.Update))
        {
            var entry = zip.CreateEntry(RunEntry, CompressionLevel.Optimal);
            using var stream = entry.Open();
            JsonSerializer.Serialize(stream, run, Json);
        }
        File.Move(temporary, full, overwrite: true);
    }

    /// <summary>Loads a model zip; a missing, damaged or non-FlatMinima file is a <see cref="CliException"/> (data error).</summary>
    public static ModelFile Load(MLContext ml, string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw CliException.Usage("--model: no file given.", "Pass --model model.zip (written by flatminima train).");
        if (!File.Exists(path)) throw CliException.DataError($"--model '{path}' does not exist.", "Pass the zip written by flatminima train --out.");
        ITransformer model;
        DataViewSchema schema;
        try
        {
            model = FlatMinimaModelLoading.Load(ml, path, out schema);
        }
        catch (InvalidDataException e)
        {
            throw CliException.DataError($"--model '{path}': {e.Message}", "Is it a model zip written by flatminima train or mlContext.Model.Save?", e);
        }
        var parts = Flatten(model).ToList();
        var classifier = parts.OfType<FlatMinimaImageClassificationTransformer>().FirstOrDefault();
        var incremental = classifier is null ? parts.OfType<FlatMinimaIncrementalFewShotTransformer>().FirstOrDefault() : null;
        if (classifier is null && incremental is null)
        {
            (model as IDisposable)?.Dispose();
            throw CliException.DataError($"--model '{path}' is an ML.NET model without a FlatMinima image classifier.",
                "flatminima reads models trained with FlatMinimaImageClassification or FlatMinimaIncrementalFewShot (flatminima train, add-classes).");
        }
        return new ModelFile(path, model, schema, classifier, incremental, ReadRun(path));
    }

    private static RunRecord? ReadRun(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            var entry = zip.GetEntry(RunEntry);
            if (entry is null) return null;
            using var stream = entry.Open();
            return JsonSerializer.Deserialize<RunRecord>(stream, Json);
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or IOException)
        {
            return null;   // the model itself loaded; a damaged record only loses the run's description
        }
    }

    private static IEnumerable<ITransformer> Flatten(ITransformer transformer)
    {
        if (transformer is IEnumerable<ITransformer> chain)
        {
            foreach (var part in chain)
                foreach (var inner in Flatten(part)) yield return inner;
        }
        else yield return transformer;
    }

    /// <summary>Releases the classifier's network.</summary>
    public void Dispose() => (Model as IDisposable)?.Dispose();
}
