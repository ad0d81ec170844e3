using System;
using System.Globalization;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.IncrementalFewShot;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

/// <summary>Model zips saved by an earlier version (tests/…/Fixtures) still load and score exactly as when they were saved.</summary>
[TestClass]
public sealed class SavedModelCompatibilityTests
{
    private static string Fixture(string name) => Path.Combine(TestData.RepoRoot, "tests", "FlatMinima.MLNet.Tests", "Fixtures", name);

    [TestMethod]
    [DataRow("image-classifier", "")]
    [DataRow("incremental-few-shot", "")]
    [DataRow("image-classifier", ".v2")]
    [DataRow("incremental-few-shot", ".v2")]
    public void EarlierModelFileLoadsAndScoresAsSaved(string name, string format)
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Model.Load(Fixture(name + format + ".zip"), out var schema);
        Assert.IsNotNull(schema);
        var backbone = model is FlatMinimaIncrementalFewShotTransformer f2m ? f2m.Model.Backbone
            : ((System.Collections.Generic.IEnumerable<ITransformer>)model).OfType<FlatMinima.MLNet.ImageClassification.FlatMinimaImageClassificationTransformer>().Single().Model;
        Assert.IsNull(backbone.Augmentation, "formats before 0x00010003 did not record the augmentation");
        var expected = File.ReadAllLines(Fixture(name + ".scores.csv")).Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(','))
            .Select(p => (File: p[0], Scores: p[1].Split(' ').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray()))
            .ToArray();
        var rows = expected.Select(e => new ImageRow
        {
            Label = e.File.Split('/')[1],
            ImageSource = File.ReadAllBytes(Path.Combine(TestData.Subset, e.File)),
        }).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);
        if (model is FlatMinimaIncrementalFewShotTransformer fewShot)
            data = fewShot.MapLabelToKey(ml, "Label").Fit(data).Transform(data);
        var scores = TestData.Scores(model.Transform(data));
        Assert.AreEqual(expected.Length, scores.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.AreEqual(expected[i].Scores.Length, scores[i].Length, $"{expected[i].File}: number of classes");
            for (int k = 0; k < scores[i].Length; k++)
                Assert.AreEqual(expected[i].Scores[k], scores[i][k], 1e-6f, $"{expected[i].File}, class {k}");
        }
    }

    [TestMethod]
    public void AnEarlierIncrementalModelContinuesWithANewSession()
    {
        var ml = new MLContext(seed: 1);
        var previous = (FlatMinimaIncrementalFewShotTransformer)ml.Model.Load(Fixture("incremental-few-shot.zip"), out _);
        var before = TestData.Scores(previous.Transform(Keyed(ml, previous, "Trouser", "Bag")));
        var shots = ml.Data.LoadFromEnumerable(TestData.Load("train", new[] { "Dress" }, 3));
        var trainer = ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(new FlatMinimaIncrementalFewShotTrainer.Options
        {
            ImageColumnName = "ImageSource", Device = FlatMinima.Torch.Training.DeviceKind.Cpu,
        });
        using var next = trainer.Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(shots).Transform(shots), previous);
        CollectionAssert.AreEqual(new[] { "Trouser", "Bag", "Sneaker", "Sandal", "Dress" }, next.ClassNames.ToArray());
        Assert.AreEqual(previous.Model.SessionCount + 1, next.Model.SessionCount);
        Assert.AreEqual(previous.Model.ExemplarCount + 3, next.Model.ExemplarCount, "the saved exemplars are kept and the new shots added");
        var scores = TestData.Scores(next.Transform(Keyed(ml, next, "Trouser", "Bag", "Dress")));
        Assert.IsTrue(scores.All(r => r.Length == 5 && r.All(float.IsFinite) && Math.Abs(r.Sum() - 1) < 1e-4));
        var after = TestData.Scores(previous.Transform(Keyed(ml, previous, "Trouser", "Bag")));
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i], $"the loaded model is unchanged by the session (row {i})");
    }

    private static IDataView Keyed(MLContext ml, FlatMinimaIncrementalFewShotTransformer model, params string[] classes)
    {
        var rows = ml.Data.LoadFromEnumerable(TestData.Load("test", classes, 4));
        return model.MapLabelToKey(ml, "Label").Fit(rows).Transform(rows);
    }
}
