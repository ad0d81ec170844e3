// FlatMinima.MLNet quickstart: a Model Builder-shaped image-classification pipeline trained with SAM.
//   folder of images (one sub-folder per class) → LoadRawImageBytes → MapValueToKey → FlatMinimaImageClassification (SAM)
//   → MapKeyToValue; then ML.NET's metrics and confusion table, save the .zip, reload it and predict a few images.
// Usage: dotnet run --project examples/Quickstart [-- <dataset folder with train/ and test/> [epochs]]
using FlatMinima.Torch.Optimization;
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;

string dataset = args.Length > 0 ? args[0] : FindEmbeddedDataset();
int epochs = args.Length > 1 ? int.Parse(args[1]) : 12;
var ml = new MLContext(seed: 1);

// 1. Load images the way Model Builder does: a label and the raw bytes of each file.
IDataView Load(string split)
{
    var files = Directory.GetDirectories(Path.Combine(dataset, split)).OrderBy(d => d, StringComparer.Ordinal)
        .SelectMany(dir => Directory.GetFiles(dir).OrderBy(f => f, StringComparer.Ordinal)
            .Select(f => new ImageFile { Label = Path.GetFileName(dir), ImagePath = f }));
    var list = ml.Data.LoadFromEnumerable(files);
    return ml.Transforms.LoadRawImageBytes("ImageSource", imageFolder: null, inputColumnName: nameof(ImageFile.ImagePath)).Fit(list).Transform(list);
}
var train = ml.Data.ShuffleRows(Load("train"), seed: 1);
var test = Load("test");
Console.WriteLine($"Dataset: {dataset} ({train.GetRowCount() ?? train.GetColumn<string>("Label").Count()} training / {test.GetColumn<string>("Label").Count()} test images)");

// 2. The pipeline: text label → key, our SAM trainer on the encoded bytes, key → text label.
var trainer = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(new FlatMinimaImageClassificationTrainer.Options
{
    LabelColumnName = "Label",
    ImageColumnName = "ImageSource",
    SharpnessAware = SharpnessAwareOptions.Sam(rho: 0.05),
    Architecture = FlatMinima.Torch.Models.ImageClassifierArchitecture.SmallCnn,
    Epochs = epochs,
    BatchSize = 64,
    LearningRate = 0.05,
    WeightDecay = 5e-4,
    Schedule = LearningRateSchedule.CosineDecay(),
    Seed = 1,
    Progress = report => Console.WriteLine("  " + report),
});
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(trainer)
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

var clock = Stopwatch.StartNew();
Console.WriteLine("Training (SmallCnn + SAM) …");
var model = pipeline.Fit(train);
Console.WriteLine($"Trained in {clock.Elapsed.TotalSeconds:F1} s.");

// 3. Evaluate with ML.NET's standard evaluator.
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test), topKPredictionCount: 2);
Console.WriteLine($"Micro-accuracy {metrics.MicroAccuracy:P2}, macro-accuracy {metrics.MacroAccuracy:P2}, top-2 {metrics.TopKAccuracy:P2}, log-loss {metrics.LogLoss:F4}");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

// 4. Save, reload as a Model Builder app would, and predict a few test images.
string zip = Path.Combine(Path.GetTempPath(), "FlatMinimaQuickstart.zip");
ml.Model.Save(model, train.Schema, zip);
Console.WriteLine($"Saved {zip} ({new FileInfo(zip).Length / 1024} KB).");
var loaded = new MLContext().Model.Load(zip, out var schema);
var engine = ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(loaded, inputSchema: schema);
VBuffer<ReadOnlyMemory<char>> labels = default;
engine.OutputSchema["Label"].GetKeyValues(ref labels);
var names = labels.DenseValues().Select(l => l.ToString()).ToArray();
foreach (var dir in Directory.GetDirectories(Path.Combine(dataset, "test")).OrderBy(d => d, StringComparer.Ordinal).Take(5))
{
    string file = Directory.GetFiles(dir).OrderBy(f => f, StringComparer.Ordinal).First();
    var output = engine.Predict(new ModelInput { ImageSource = File.ReadAllBytes(file) });
    var top = output.Score.Select((s, i) => (s, i)).OrderByDescending(t => t.s).Take(2).Select(t => $"{names[t.i]} {t.s:P1}");
    Console.WriteLine($"  {Path.GetFileName(dir)}/{Path.GetFileName(file)} → {output.PredictedLabel} ({string.Join(", ", top)})");
}
Console.WriteLine($"MicroAccuracy={metrics.MicroAccuracy:F4}");
return 0;

static string FindEmbeddedDataset()
{
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "data", "fashion-mnist-subset");
            if (Directory.Exists(Path.Combine(candidate, "train"))) return candidate;
        }
    throw new DirectoryNotFoundException("data/fashion-mnist-subset was not found; pass the dataset folder (with train/ and test/) as the first argument.");
}

/// <summary>A file of the dataset folder.</summary>
public sealed class ImageFile
{
    public string Label { get; set; } = "";
    public string ImagePath { get; set; } = "";
}

/// <summary>Model Builder's input shape.</summary>
public sealed class ModelInput
{
    public string Label { get; set; } = "";
    public string ImagePath { get; set; } = "";
    public byte[] ImageSource { get; set; } = Array.Empty<byte>();
}

/// <summary>Model Builder's output shape.</summary>
public sealed class ModelOutput
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = Array.Empty<float>();
}
