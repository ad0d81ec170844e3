// Usage: FlatMinima.LoadCheck <model.zip> <image.png>...
// Prints "loaded-before=<bool>" (whether FlatMinima.MLNet was loaded before Model.Load) and one line per image:
// "<predicted label> <score0> <score1> …" with scores in round-trip format.
using System;
using System.IO;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;

var ml = new MLContext();
bool loadedBefore = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name == "FlatMinima.MLNet");
var model = ml.Model.Load(args[0], out var schema);
Console.WriteLine($"loaded-before={loadedBefore}");
var engine = ml.Model.CreatePredictionEngine<Input, Output>(model, inputSchema: schema);
foreach (var path in args.Skip(1))
{
    var output = engine.Predict(new Input { ImageSource = File.ReadAllBytes(path), Label = "" });
    Console.WriteLine(output.PredictedLabel + " " + string.Join(" ", output.Score.Select(s => s.ToString("R"))));
}

public sealed class Input
{
    public string Label { get; set; } = "";
    public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    public string ImagePath { get; set; } = "";
}

public sealed class Output
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = Array.Empty<float>();
}
