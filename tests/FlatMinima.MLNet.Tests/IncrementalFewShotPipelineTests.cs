using FlatMinima.Torch.IncrementalFewShot;
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests;

[TestClass]
public sealed class IncrementalFewShotPipelineTests
{
    private static readonly string[] BaseClasses = { "Trouser", "Bag", "Sneaker", "Dress" };
    private static readonly string[] Session1 = { "Sandal" };
    private static readonly string[] Session2 = { "Ankle_boot", "Shirt" };

    private static MLContext _ml = null!;
    private static FlatMinimaIncrementalFewShotTransformer _base = null!;

    private static FlatMinimaIncrementalFewShotTrainer.Options FastOptions(Action<FlatMinimaIncrementalFewShotTrainer.Options>? change = null)
    {
        var o = new FlatMinimaIncrementalFewShotTrainer.Options
        {
            ImageColumnName = "ImageSource",
            Architecture = ImageClassifierArchitecture.SmallCnn,
            FlatRegion = new FlatRegionOptions { RangeLayerCount = 2 },
            Epochs = 3,
            BatchSize = 32,
            LearningRate = 0.05,
            Device = DeviceKind.Cpu,
            ScoringBatchSize = 16,
        };
        change?.Invoke(o);
        return o;
    }

    private static FlatMinimaIncrementalFewShotTrainer Trainer(Action<FlatMinimaIncrementalFewShotTrainer.Options>? change = null) =>
        _ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(FastOptions(change));

    /// <summary>Rows of <paramref name="classes"/> with the label mapped to a key by a MapValueToKey fitted on those rows.</summary>
    private static IDataView Keyed(IEnumerable<string> classes, int perClass, int skip = 0, string split = "train")
    {
        var rows = _ml.Data.LoadFromEnumerable(TestData.Load(split, classes, perClass, skip));
        return _ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows);
    }

    /// <summary>Test rows of <paramref name="classes"/> keyed in the model's class order (the Evaluate shape).</summary>
    private static IDataView TestSet(FlatMinimaIncrementalFewShotTransformer model, IEnumerable<string> classes, int perClass = 30)
    {
        var rows = _ml.Data.LoadFromEnumerable(TestData.Load("test", classes, perClass));
        return model.MapLabelToKey(_ml, "Label").Fit(rows).Transform(rows);
    }

    private static double Accuracy(FlatMinimaIncrementalFewShotTransformer model, IEnumerable<string> classes) =>
        _ml.MulticlassClassification.Evaluate(model.Transform(TestSet(model, classes))).MicroAccuracy;

    [ClassInitialize]
    public static void TrainBase(TestContext _)
    {
        _ml = new MLContext(seed: 1);
        _base = Trainer().Fit(Keyed(BaseClasses, 60));
    }

    [ClassCleanup]
    public static void Cleanup() => _base?.Dispose();

    [TestMethod]
    public void BaseSessionSessionsSaveLoadAndEvaluateWithGrowingClasses()
    {
        CollectionAssert.AreEqual(BaseClasses.OrderBy(c => Array.IndexOf(BaseClasses, c)).ToArray(), _base.ClassNames.ToArray(),
            "base classes in the base data's key order");
        double baseAccuracy = Accuracy(_base, BaseClasses);
        Assert.IsTrue(baseAccuracy > 0.7, $"nearest-prototype accuracy on 4 base classes: {baseAccuracy:P1}");

        var baseScores = TestData.Scores(_base.Transform(TestSet(_base, BaseClasses)));
        using var first = Trainer().Fit(Keyed(Session1, 5), _base);
        CollectionAssert.AreEqual(BaseClasses.Concat(Session1).ToArray(), first.ClassNames.ToArray());
        Assert.AreEqual(4, _base.ClassCount, "the previous model keeps its classes");
        var baseScoresAfter = TestData.Scores(_base.Transform(TestSet(_base, BaseClasses)));
        for (int i = 0; i < baseScores.Length; i++) CollectionAssert.AreEqual(baseScores[i], baseScoresAfter[i], "the previous model is untouched");

        var seen1 = BaseClasses.Concat(Session1).ToArray();
        var scored = first.Transform(TestSet(first, seen1));
        var slotNames = default(VBuffer<ReadOnlyMemory<char>>);
        scored.Schema["Score"].GetSlotNames(ref slotNames);
        CollectionAssert.AreEqual(seen1, slotNames.DenseValues().Select(v => v.ToString()).ToArray(), "score slot names list every class seen");
        var metrics = _ml.MulticlassClassification.Evaluate(scored);
        Assert.AreEqual(5, metrics.PerClassLogLoss.Count);
        Assert.IsTrue(metrics.MicroAccuracy > 0.6, $"5 classes after one session: {metrics.MicroAccuracy:P1}");
        Assert.IsTrue(double.IsFinite(metrics.LogLoss), "log-loss is defined (scores are a softmax over −distances)");
        Assert.IsTrue(metrics.PerClassLogLoss[4] < Math.Log(5), $"the new class is learned from 5 shots (log-loss {metrics.PerClassLogLoss[4]:F3} < ln 5)");

        // Save, load, and continue from the loaded model: same result as continuing from the in-memory one.
        var path = Path.Combine(Path.GetTempPath(), $"f2m-{Guid.NewGuid():N}.zip");
        try
        {
            _ml.Model.Save(first, null, path);
            var loaded = (FlatMinimaIncrementalFewShotTransformer)_ml.Model.Load(path, out _);
            Assert.AreEqual(1, loaded.Model.SessionCount);
            Assert.AreEqual(5, loaded.Model.ExemplarCount, "the session's shots are kept as exemplars");
            var a = TestData.Scores(first.Transform(TestSet(first, seen1)));
            var b = TestData.Scores(loaded.Transform(TestSet(loaded, seen1)));
            for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i], "the loaded model scores identically");

            using var second = Trainer().Fit(Keyed(Session2, 5), first);
            using var secondFromLoaded = Trainer().Fit(Keyed(Session2, 5), loaded);
            var seen2 = seen1.Concat(Session2).ToArray();
            CollectionAssert.AreEqual(seen2, secondFromLoaded.ClassNames.ToArray());
            var s1 = TestData.Scores(second.Transform(TestSet(second, seen2)));
            var s2 = TestData.Scores(secondFromLoaded.Transform(TestSet(secondFromLoaded, seen2)));
            for (int i = 0; i < s1.Length; i++) CollectionAssert.AreEqual(s1[i], s2[i], "a session after save/load equals one without");
            double accuracy = Accuracy(secondFromLoaded, seen2);
            Assert.IsTrue(accuracy > 0.45, $"7 classes after two sessions: {accuracy:P1}");
            Assert.IsTrue(secondFromLoaded.Model.FlatRegion.MaxDeviation(secondFromLoaded.Model.Backbone.Network) <= secondFromLoaded.Model.FlatRegion.Bound / 2 + 1e-7,
                "after two sessions the range parameters are still within b/2 of the base weights (θ_base survived the reload)");
            loaded.Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void PredictionEngineReturnsClassNamesFromImageBytes()
    {
        using var first = Trainer().Fit(Keyed(Session1, 5), _base);
        var pipeline = _ml.Transforms.Conversion.MapValueToKey("Label").Append(_ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var rows = _ml.Data.LoadFromEnumerable(TestData.Load("test", Session1, 1));
        var full = new TransformerChain<ITransformer>(first, _ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(first.Transform(rows)));
        var engine = _ml.Model.CreatePredictionEngine<ImageRow, Prediction>(full);
        var predictions = TestData.Load("test", BaseClasses.Concat(Session1), 5).Select(r => (r.Label, engine.Predict(r))).ToArray();
        Assert.IsTrue(predictions.All(p => p.Item2.Score.Length == 5 && Math.Abs(p.Item2.Score.Sum() - 1) < 1e-4));
        Assert.IsTrue(predictions.Count(p => p.Label == p.Item2.PredictedLabel) >= 15, "most of 25 test images are classified correctly by name");
    }

    [TestMethod]
    public void MergePolicyUsesRepeatedClassesAsExamplesWithoutChangingTheirPrototypes()
    {
        var mixed = _ml.Data.LoadFromEnumerable(TestData.Load("train", new[] { "Bag" }, 3, skip: 100).Concat(TestData.Load("train", Session1, 5)));
        var keyed = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(mixed).Transform(mixed);
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => Trainer().Fit(keyed, _base));
        StringAssert.Contains(ex.Message, "class 'Bag' was already learned");
        StringAssert.Contains(ex.Message, "RepeatedClasses = Merge");

        using var merged = Trainer(o => o.RepeatedClasses = RepeatedClassPolicy.Merge).Fit(keyed, _base);
        CollectionAssert.AreEqual(BaseClasses.Concat(Session1).ToArray(), merged.ClassNames.ToArray());
        Assert.IsTrue(merged.Model.Prototypes.narrow(0, 0, 4).eq(_base.Model.Prototypes).all().item<bool>(), "old prototypes are bit-identical");
    }

    [TestMethod]
    public void ReferenceSessionRulesRefreshEarlierSessionPrototypesAndKeepTheBase()
    {
        static void Reference(FlatMinimaIncrementalFewShotTrainer.Options o) => o.Session = o.Session with
        {
            LearningRate = 0.05, RoundingReduction = 4, Rounding = SessionRoundingMode.Gradient, RoundingStepIncrease = 1, RefreshNovelPrototypes = true,
        };
        using var one = Trainer(Reference).Fit(Keyed(Session1, 5), _base);
        using var two = Trainer(Reference).Fit(Keyed(Session2, 5), one);
        CollectionAssert.AreEqual(BaseClasses.Concat(Session1).Concat(Session2).ToArray(), two.ClassNames.ToArray());
        Assert.IsTrue(two.Model.Prototypes.narrow(0, 0, 4).eq(_base.Model.Prototypes).all().item<bool>(), "the base prototypes stay bit-identical");
        Assert.IsTrue(two.Model.Learner.FlatRegion.MaxDeviation(two.Model.Learner.Network) <= two.Model.Learner.FlatRegion.Bound / 2 + 1e-7, "inside the flat region");
        bool moved = two.Model.Learner.FlatRegion.MaxDeviation(two.Model.Learner.Network) > 0;
        bool refreshed = !two.Model.Prototypes.narrow(0, 4, 1).eq(one.Model.Prototypes.narrow(0, 4, 1)).all().item<bool>();
        Assert.AreEqual(moved, refreshed, "Sandal's prototype is re-estimated from its exemplars exactly when the network moved");
        Assert.IsTrue(Accuracy(two, BaseClasses.Concat(Session1).Concat(Session2)) > 1.0 / 7, "better than chance over the 7 classes");
    }

    [TestMethod]
    public void BadSessionsGiveClearErrors()
    {
        var tooMany = Assert.ThrowsExactly<InvalidOperationException>(() => Trainer().Fit(Keyed(Session1, 6), _base));
        StringAssert.Contains(tooMany.Message, "'Sandal' has 6 rows");
        StringAssert.Contains(tooMany.Message, "MaxShotsPerClass = 5");

        var empty = _ml.Data.LoadFromEnumerable(new List<ImageRow>());
        var emptyKeyed = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(_ml.Data.LoadFromEnumerable(TestData.Load("train", Session1, 1))).Transform(empty);
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => Trainer().Fit(emptyKeyed, _base)).Message, "session data is empty");

        var noPrevious = Assert.ThrowsExactly<ArgumentNullException>(() => Trainer().Fit(Keyed(Session1, 5), null!));
        StringAssert.Contains(noPrevious.Message, "train the base session first");

        // Images of another size (the subset's 28×28 PNGs resized to 32×32 before the trainer) are resized back to the
        // base model's 28×28, as the base images and scoring are.
        var resized = _ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(_ml.Transforms.LoadImages("Image", null, "ImagePath"))
            .Append(_ml.Transforms.ResizeImages("Image", 32, 32));
        var rows = _ml.Data.LoadFromEnumerable(TestData.Load("train", Session1, 5));
        var big = resized.Fit(rows).Transform(rows);
        using (var fromBig = Trainer(o => o.ImageColumnName = "Image").Fit(big, _base))
            CollectionAssert.AreEqual(BaseClasses.Concat(Session1).ToArray(), fromBig.ClassNames.ToArray());

        var unkeyed = _ml.Data.LoadFromEnumerable(TestData.Load("train", Session1, 5));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer().Fit(unkeyed, _base)).Message, "must be a key type");
    }

    [TestMethod]
    public void BadOptionsGiveClearErrors()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(o => o.FlatRegion = o.FlatRegion with { Bound = -1 })).Message, "FlatRegion.Bound");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(o => o.MaxShotsPerClass = 0)).Message, "MaxShotsPerClass");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(o => o.Session = o.Session with { LearningRate = 0 })).Message, "Session.LearningRate");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(o => o.FlatRegion = o.FlatRegion with { NoiseSamples = 1 })).Message, "FlatRegion.NoiseSamples");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(o => o.Session = o.Session with { RoundingStepIncrease = 1 })).Message, "Session.RoundingStepIncrease");
    }
}
