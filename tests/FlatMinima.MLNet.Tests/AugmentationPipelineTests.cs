using System;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// <c>Augmentation</c> in the ML.NET trainers: seeded (same seed, same model), changes training, never applies at
/// scoring, and the trained model records it through save and load.
/// </summary>
[TestClass]
public sealed class AugmentationPipelineTests
{
    private static IDataView Small(MLContext ml, int perClass = 12) =>
        ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, perClass));

    private static (float[][] Scores, ITransformer Model) Train(MLContext ml, IDataView data, AugmentationOptions? augmentation, int seed = 3)
    {
        var model = TestData.Pipeline(ml, TestData.FastOptions(epochs: 2, batchSize: 16, o => { o.Augmentation = augmentation; o.Seed = seed; })).Fit(data);
        return (TestData.Scores(model.Transform(data)), model);
    }

    private static FlatMinimaImageClassificationTransformer Classifier(ITransformer model) =>
        ((System.Collections.Generic.IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();

    private static bool Same(float[][] a, float[][] b) => a.Zip(b).All(p => p.First.SequenceEqual(p.Second));

    [TestMethod]
    public void StandardAugmentationIsSeededChangesTrainingAndIsRecordedWithTheModel()
    {
        var ml = new MLContext(seed: 1);
        var data = Small(ml);
        var standard = AugmentationOptions.Standard(flip: false);
        var (a, model) = Train(ml, data, standard);
        var (b, _) = Train(ml, data, standard);
        var (plain, plainModel) = Train(ml, data, null);
        Assert.IsTrue(Same(a, b), "same seed and augmentation: bit-identical scores");
        Assert.IsFalse(Same(a, plain), "augmentation changes the trained model");
        Assert.IsTrue(Same(a, TestData.Scores(model.Transform(data))), "scoring does not augment: scoring again gives the same scores");

        var classifier = Classifier(model).Model;
        Assert.AreEqual(standard.ToString(), classifier.Augmentation);
        StringAssert.Contains(classifier.Augmentation, "Crop(padding 4, zero)");
        Assert.AreEqual("none", Classifier(plainModel).Model.Augmentation);

        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out _);
        Assert.AreEqual(standard.ToString(), Classifier(loaded).Model.Augmentation, "saved and loaded with the model (format 0x00010003)");
        Assert.IsTrue(Same(a, TestData.Scores(loaded.Transform(data))), "the loaded model scores as the trained one");
        Classifier(loaded).Dispose();
        Classifier(model).Dispose();
        Classifier(plainModel).Dispose();
    }

    [TestMethod]
    public void ModelsSavedBeforeTheAugmentationWasRecordedLoadWithoutIt()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Model.Load(Path.Combine(TestData.RepoRoot, "tests", "FlatMinima.MLNet.Tests", "Fixtures", "image-classifier.zip"), out var schema);
        Assert.IsNull(Classifier(model).Model.Augmentation, "format 0x00010001 did not record it");
        using var stream = new MemoryStream();
        ml.Model.Save(model, schema, stream);
        stream.Position = 0;
        var resaved = ml.Model.Load(stream, out _);
        Assert.IsNull(Classifier(resaved).Model.Augmentation, "re-saved as 0x00010003: still not recorded, and the checksums agree");
        Classifier(resaved).Dispose();
        Classifier(model).Dispose();
    }

    [TestMethod]
    public void TheFewShotBaseSessionRecordsItsAugmentation()
    {
        var ml = new MLContext(seed: 1);
        var rows = ml.Data.LoadFromEnumerable(TestData.Load("train", new[] { "Trouser", "Bag" }, 8));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows);
        var strong = AugmentationOptions.Strong(flip: false);
        var options = new FlatMinimaIncrementalFewShotTrainer.Options
        {
            ImageColumnName = "ImageSource", FlatRegion = new FlatRegionOptions { RangeLayerCount = 2 }, Epochs = 1, BatchSize = 8,
            Device = DeviceKind.Cpu, Augmentation = strong,
        };
        using var model = ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(options).Fit(keyed);
        Assert.AreEqual(strong.ToString(), model.Model.Backbone.Augmentation);
        using var stream = new MemoryStream();
        ml.Model.Save(model, keyed.Schema, stream);
        stream.Position = 0;
        using var loaded = (FlatMinimaIncrementalFewShotTransformer)ml.Model.Load(stream, out _);
        Assert.AreEqual(strong.ToString(), loaded.Model.Backbone.Augmentation);
    }
}
