using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// <c>DataLoading = Streaming</c>: the encoded bytes are kept and every batch is decoded on loader threads. Same model as
/// in memory when the statistics are the same (one chunk), the same model whatever the number of loader threads, and
/// validation (SWAD's held-out rows, a ValidationSet) in streaming mode.
/// </summary>
[TestClass]
public sealed class StreamingPipelineTests
{
    private static readonly MLContext Ml = new(seed: 1);

    private static (float[][] Scores, FlatMinimaImageClassificationTransformer Classifier, List<EpochReport> Reports) Train(IDataView data, IDataView test,
        Action<FlatMinimaImageClassificationTrainer.Options> change)
    {
        var reports = new List<EpochReport>();
        var model = TestData.Pipeline(Ml, TestData.FastOptions(epochs: 2, batchSize: 32, o =>
        {
            o.Seed = 5;
            o.Augmentation = AugmentationOptions.Standard();
            o.Progress = reports.Add;
            change(o);
        })).Fit(data);
        var classifier = ((IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();
        return (TestData.Scores(model.Transform(test)), classifier, reports);
    }

    private static bool Same(float[][] a, float[][] b) => a.Length == b.Length && a.Zip(b).All(p => p.First.SequenceEqual(p.Second));

    private static IDataView Rows(int perClass, string split = "train") => Ml.Data.LoadFromEnumerable(TestData.Load(split, TestData.ThreeClasses, perClass));

    [TestMethod]
    public void StreamingGivesTheInMemoryModelWhenTheRowsFitOneStatisticsChunk()
    {
        var data = Rows(60);   // 180 rows ≤ 256: one statistics chunk, so the normalization is bit-identical
        var test = Rows(10, "test");
        var (memory, memoryModel, _) = Train(data, test, o => o.DataLoading = ImageDataLoading.InMemory);
        var (streamed, streamedModel, _) = Train(data, test, o => o.DataLoading = ImageDataLoading.Streaming);
        CollectionAssert.AreEqual(memoryModel.Model.Mean.ToArray(), streamedModel.Model.Mean.ToArray());
        CollectionAssert.AreEqual(memoryModel.Model.Std.ToArray(), streamedModel.Model.Std.ToArray());
        Assert.IsTrue(Same(memory, streamed), "streaming (with augmentation) trains bit-identically to in-memory for the same seed");
        memoryModel.Dispose();
        streamedModel.Dispose();
    }

    [TestMethod]
    public void TheNumberOfLoaderThreadsDoesNotChangeTheModel()
    {
        var data = Rows(100);   // 300 rows: two statistics chunks
        var test = Rows(10, "test");
        var results = new[] { 1, 4, 0 }.Select(workers => Train(data, test, o => { o.DataLoading = ImageDataLoading.Streaming; o.LoaderWorkers = workers; o.PrefetchBatches = 3; })).ToArray();
        Assert.IsTrue(Same(results[0].Scores, results[1].Scores), "1 vs 4 loader threads: bit-identical scores");
        Assert.IsTrue(Same(results[0].Scores, results[2].Scores), "1 thread vs loading on the training thread: bit-identical scores");

        // Over two chunks the streamed statistics are accumulated (float64 merge of float32 chunk moments): within 1e-6
        // of the whole-tensor ones, not necessarily equal.
        var (_, memoryModel, _) = Train(data, test, o => o.DataLoading = ImageDataLoading.InMemory);
        for (int c = 0; c < memoryModel.Model.Mean.Count; c++)
        {
            Assert.AreEqual(memoryModel.Model.Mean[c], results[0].Classifier.Model.Mean[c], 1e-6 * Math.Abs(memoryModel.Model.Mean[c]));
            Assert.AreEqual(memoryModel.Model.Std[c], results[0].Classifier.Model.Std[c], 1e-6 * Math.Abs(memoryModel.Model.Std[c]));
        }
        memoryModel.Dispose();
        foreach (var r in results) r.Classifier.Dispose();
    }

    [TestMethod]
    public void SwadHeldOutRowsAndAValidationSetAreStreamedToo()
    {
        var data = Rows(40);
        var test = Rows(10, "test");
        var swad = WeightAveragingOptions.Swad(evaluationFrequency: 2, toleranceRatio: 0.5);
        var (memory, memoryModel, memoryReports) = Train(data, test, o => { o.DataLoading = ImageDataLoading.InMemory; o.Averaging = swad; });
        var (streamed, streamedModel, streamedReports) = Train(data, test, o => { o.DataLoading = ImageDataLoading.Streaming; o.Averaging = swad; });
        Assert.IsNotNull(streamedReports[^1].Averaging, "SWAD ran on streamed held-out rows");
        Assert.IsTrue(streamedReports.All(r => r.ValidationLoss is double loss && double.IsFinite(loss)));
        Assert.AreEqual(memoryReports[^1].ValidationLoss, streamedReports[^1].ValidationLoss, "the same held-out rows, the same validation loss");
        Assert.IsTrue(Same(memory, streamed));

        var (_, withSet, setReports) = Train(data, test, o => { o.DataLoading = ImageDataLoading.Streaming; o.ValidationSet = Ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(test); });
        Assert.IsTrue(setReports.All(r => r.ValidationAccuracy is double a && a > 0), "a streamed ValidationSet is evaluated every epoch");
        foreach (var m in new[] { memoryModel, streamedModel, withSet }) m.Dispose();
    }

    [TestMethod]
    public void StreamingNeedsEncodedBytesAndSaysSo()
    {
        var rows = TestData.Load("train", TestData.ThreeClasses, 4);
        var data = Ml.Transforms.LoadImages("Image", null, nameof(ImageRow.ImagePath)).Fit(Ml.Data.LoadFromEnumerable(rows))
            .Transform(Ml.Data.LoadFromEnumerable(rows));
        var options = TestData.FastOptions(epochs: 1, change: o => { o.ImageColumnName = "Image"; o.DataLoading = ImageDataLoading.Streaming; });
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TestData.Pipeline(Ml, options).Fit(data));
        Assert.AreEqual("DataLoading", e.ParamName);
        StringAssert.Contains(e.Message, "image column 'Image' holds decoded images (MLImage)");
        StringAssert.Contains(e.Message, "LoadRawImageBytes");
    }

    [TestMethod]
    public void TheAutomaticRuleStreamsEncodedImagesAboveOneGibibyte()
    {
        Assert.IsFalse(ImageDataLoadingRule.Streams(ImageDataLoading.Automatic, ImageInputKind.EncodedBytes, 60_000, 1, 28, 28), "Fashion-MNIST: 188 MB in memory");
        Assert.IsTrue(ImageDataLoadingRule.Streams(ImageDataLoading.Automatic, ImageInputKind.EncodedBytes, 10_000, 3, 224, 224), "10,000 photos at 224: 6 GB, streamed");
        Assert.IsFalse(ImageDataLoadingRule.Streams(ImageDataLoading.Automatic, ImageInputKind.Image, 10_000, 3, 224, 224), "MLImage columns cannot stream");
        Assert.IsFalse(ImageDataLoadingRule.Streams(ImageDataLoading.Automatic, ImageInputKind.EncodedBytes, 1_783, 3, 224, 224), "1,783 × 602,112 B ≤ 1 GiB");
        Assert.IsTrue(ImageDataLoadingRule.Streams(ImageDataLoading.Automatic, ImageInputKind.EncodedBytes, 1_784, 3, 224, 224));
        Assert.IsTrue(ImageDataLoadingRule.Streams(ImageDataLoading.Streaming, ImageInputKind.EncodedBytes, 10, 1, 28, 28));
        Assert.IsFalse(ImageDataLoadingRule.Streams(ImageDataLoading.InMemory, ImageInputKind.EncodedBytes, 10_000, 3, 224, 224));
    }
}
