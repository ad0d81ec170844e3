using System;
using System.Linq;
using FlatMinima.MLNet;
using Microsoft.ML;
using Microsoft.ML.TorchSharp;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.CoInstall.Tests;

/// <summary>
/// Microsoft.ML.TorchSharp 0.23.1 (compiled against TorchSharp 0.102) installed next to FlatMinima.MLNet
/// (TorchSharp 0.107): one process builds one of its estimators and fits ours, without assembly conflicts.
/// </summary>
[TestClass]
public sealed class CoInstallationTests
{
    public sealed class Row
    {
        public string Label { get; set; } = "";
        public byte[] ImageSource { get; set; } = Array.Empty<byte>();
        public string Sentence { get; set; } = "";
    }

    [TestMethod]
    public void BothLibrariesWorkInOneProcess()
    {
        var ml = new MLContext(seed: 1);
        // Microsoft.ML.TorchSharp's text classifier: constructing it resolves its TorchSharp references.
        var textEstimator = ml.MulticlassClassification.Trainers.TextClassification(labelColumnName: "Label", sentence1ColumnName: "Sentence");
        Assert.IsNotNull(textEstimator);

        string root = RepoRoot.Path;
        var rows = new[] { "Trouser", "Bag" }.SelectMany(c => System.IO.Directory.GetFiles(System.IO.Path.Combine(root, "data", "fashion-mnist-subset", "train", c))
            .OrderBy(f => f, StringComparer.Ordinal).Take(12)
            .Select(f => new Row { Label = c, ImageSource = System.IO.File.ReadAllBytes(f), Sentence = c })).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(labelColumnName: "Label", imageColumnName: "ImageSource", epochs: 1, batchSize: 8))
            .Fit(data);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data));
        Assert.IsTrue(metrics.MicroAccuracy > 0.5, $"micro-accuracy {metrics.MicroAccuracy}");

        var torchSharp = AppDomain.CurrentDomain.GetAssemblies().Where(a => a.GetName().Name == "TorchSharp").Select(a => a.GetName().Version).ToArray();
        Assert.AreEqual(1, torchSharp.Length, "one TorchSharp assembly in the process");
        Assert.AreEqual(new Version(0, 107, 0, 0), torchSharp[0]);
        Assert.IsTrue(AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name == "Microsoft.ML.TorchSharp"));
    }
}
