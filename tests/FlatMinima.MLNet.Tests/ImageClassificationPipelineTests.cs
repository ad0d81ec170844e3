using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

[TestClass]
public sealed class ImageClassificationPipelineTests
{
    private static MLContext _ml = null!;
    private static ITransformer _model = null!;
    private static IDataView _train = null!;
    private static IDataView _test = null!;
    private static string _zip = null!;

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _ml = new MLContext(seed: 1);
        _train = _ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 60));
        _test = _ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 30));
        _model = TestData.Pipeline(_ml, TestData.FastOptions()).Fit(_train);
        _zip = Path.Combine(Path.GetTempPath(), $"flatminima-test-{Guid.NewGuid():N}.zip");
        _ml.Model.Save(_model, _train.Schema, _zip);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        if (File.Exists(_zip)) File.Delete(_zip);
    }

    [TestMethod]
    public void EvaluateGivesStandardMetricsWithClassNames()
    {
        var metrics = _ml.MulticlassClassification.Evaluate(_model.Transform(_test), topKPredictionCount: 2);
        Assert.IsTrue(metrics.MicroAccuracy > 0.8, $"micro-accuracy {metrics.MicroAccuracy} on three easy classes");
        Assert.AreEqual(2, metrics.TopKAccuracyForAllK.Count);
        Assert.IsTrue(metrics.TopKAccuracy >= metrics.MicroAccuracy);
        Assert.IsTrue(metrics.LogLoss > 0 && double.IsFinite(metrics.LogLoss));
        string table = metrics.ConfusionMatrix.GetFormattedConfusionTable();
        foreach (var name in TestData.ThreeClasses) StringAssert.Contains(table, name);
    }

    [TestMethod]
    public void OutputSchemaHasSlotNamesKeyValuesAndScoreKinds()
    {
        var xf = ((System.Collections.Generic.IEnumerable<ITransformer>)_model).OfType<FlatMinimaImageClassificationTransformer>().Single();
        var keyed = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(_train).Transform(_train);
        var schema = xf.GetOutputSchema(keyed.Schema);
        var score = schema["Score"];
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), score.Type);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        score.GetSlotNames(ref slots);
        CollectionAssert.AreEqual(TestData.ThreeClasses, slots.DenseValues().Select(s => s.ToString()).ToArray());
        var predicted = schema["PredictedLabel"];
        Assert.AreEqual(new KeyDataViewType(typeof(uint), 3), predicted.Type);
        VBuffer<ReadOnlyMemory<char>> keys = default;
        predicted.GetKeyValues(ref keys);
        CollectionAssert.AreEqual(TestData.ThreeClasses, keys.DenseValues().Select(s => s.ToString()).ToArray());
        CollectionAssert.AreEqual(TestData.ThreeClasses, xf.ClassNames.ToArray());
    }

    [TestMethod]
    public void ScoresAreProbabilitiesAndPredictedLabelIsTheArgmax()
    {
        var scored = _model.Transform(_test);
        var scores = TestData.Scores(scored);
        var predicted = scored.GetColumn<string>("PredictedLabel").ToArray();
        Assert.AreEqual(90, scores.Length);
        for (int i = 0; i < scores.Length; i++)
        {
            Assert.AreEqual(1.0, scores[i].Sum(), 1e-4);
            Assert.AreEqual(TestData.ThreeClasses[Array.IndexOf(scores[i], scores[i].Max())], predicted[i]);
        }
    }

    [TestMethod]
    public void SaveLoadInAFreshContextGivesIdenticalScores()
    {
        var fresh = new MLContext(seed: 99);
        var loaded = fresh.Model.Load(_zip, out var schema);
        Assert.IsNotNull(schema.GetColumnOrNull("ImageSource"));
        var before = TestData.Scores(_model.Transform(_test));
        var after = TestData.Scores(loaded.Transform(_test));
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i], $"row {i}");
        var m1 = _ml.MulticlassClassification.Evaluate(_model.Transform(_test));
        var m2 = fresh.MulticlassClassification.Evaluate(loaded.Transform(_test));
        Assert.AreEqual(m1.MicroAccuracy, m2.MicroAccuracy);
        Assert.AreEqual(m1.LogLoss, m2.LogLoss);
        using var zip = System.IO.Compression.ZipFile.OpenRead(_zip);
        Assert.IsTrue(zip.Entries.Any(e => e.FullName.EndsWith("TorchWeights.bin")), "weights are an entry of the model zip");
    }

    [TestMethod]
    public void LoadsInAFreshProcessWithoutRegistration()
    {
        var images = TestData.Load("test", TestData.ThreeClasses, 2, skip: 40);
        string configuration = Path.GetFileName(Path.GetDirectoryName(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)))!;
        string exe = Path.Combine(TestData.RepoRoot, "tests", "FlatMinima.LoadCheck", "bin", configuration, "net10.0", "FlatMinima.LoadCheck.dll");
        Assert.IsTrue(File.Exists(exe), exe);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(exe);
        start.ArgumentList.Add(_zip);
        foreach (var i in images) start.ArgumentList.Add(i.ImagePath);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd(), error = process.StandardError.ReadToEnd();
        Assert.IsTrue(process.WaitForExit(120_000));
        Assert.AreEqual(0, process.ExitCode, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual("loaded-before=False", lines[0]);
        var engine = _ml.Model.CreatePredictionEngine<ImageRow, Prediction>(_model);
        for (int i = 0; i < images.Count; i++)
        {
            var p = engine.Predict(images[i]);
            Assert.AreEqual(p.PredictedLabel + " " + string.Join(" ", p.Score.Select(s => s.ToString("R"))), lines[i + 1].Trim(), $"image {i}");
        }
    }

    [TestMethod]
    public void BatchedTransformEqualsRowByRowPredictionEngine()
    {
        var rows = TestData.Load("test", TestData.ThreeClasses, 30);
        var batched = TestData.Scores(_model.Transform(_ml.Data.LoadFromEnumerable(rows)));
        var batchedLabels = _model.Transform(_ml.Data.LoadFromEnumerable(rows)).GetColumn<string>("PredictedLabel").ToArray();
        var engine = _ml.Model.CreatePredictionEngine<ImageRow, Prediction>(_model);
        for (int i = 0; i < rows.Count; i++)
        {
            var single = engine.Predict(rows[i]);
            Assert.AreEqual(batchedLabels[i], single.PredictedLabel, $"row {i}");
            // A batch of 16 and a batch of 1 run different convolution kernels: equal up to float rounding.
            for (int k = 0; k < single.Score.Length; k++) Assert.AreEqual(batched[i][k], single.Score[k], 1e-6, $"row {i}, class {k}");
        }
    }

    [TestMethod]
    public void TransformIsLazyAndPassesInputColumnsThrough()
    {
        var scored = _model.Transform(_test);
        // Reading only a pass-through column must not need the model: make the image column undecodable.
        var bad = _ml.Data.LoadFromEnumerable(new[] { new ImageRow { Label = "Bag", ImageSource = new byte[] { 1, 2, 3 } } });
        var paths = _model.Transform(bad).GetColumn<string>("ImagePath").ToArray();
        Assert.AreEqual(1, paths.Length);
        Assert.AreEqual(90, scored.GetColumn<string>("ImagePath").Count());
        // Scoring it gives NaN scores (and a missing PredictedLabel), not an exception that would end the whole cursor.
        Assert.IsTrue(_model.Transform(bad).GetColumn<float[]>("Score").Single().All(float.IsNaN));
    }

    [TestMethod]
    public void PredictionEngineGivesLabelsAndSortedScores()
    {
        var engine = _ml.Model.CreatePredictionEngine<ImageRow, Prediction>(_model);
        var rows = TestData.Load("test", TestData.ThreeClasses, 1, skip: 50);
        var predictions = rows.Select(r => engine.Predict(r)).ToArray();
        Assert.AreEqual(3, predictions.Select(p => string.Join(",", p.Score)).Distinct().Count(), "each row scored anew");
        foreach (var p in predictions) CollectionAssert.Contains(TestData.ThreeClasses, p.PredictedLabel);
        // Model Builder's GetLabels(): the label column's key values from the output schema.
        VBuffer<ReadOnlyMemory<char>> keys = default;
        engine.OutputSchema["Label"].GetKeyValues(ref keys);
        CollectionAssert.AreEqual(TestData.ThreeClasses, keys.DenseValues().Select(k => k.ToString()).ToArray());
    }

    [TestMethod]
    public void CrossValidateWorks()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 20));
        var options = TestData.FastOptions();
        options.Epochs = 1;
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var results = ml.MulticlassClassification.CrossValidate(keyed, ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options), numberOfFolds: 2);
        Assert.AreEqual(2, results.Count);
        foreach (var r in results)
        {
            Assert.IsInstanceOfType<FlatMinimaImageClassificationTransformer>(r.Model);
            Assert.IsTrue(r.Metrics.MicroAccuracy > 0);
        }
    }
}
