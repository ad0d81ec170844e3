using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests;

[TestClass]
public sealed class TrainerBehaviourTests
{
    private static IDataView Small(MLContext ml, int perClass = 16) =>
        ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, perClass));

    private static FlatMinimaImageClassificationTrainer.Options OneEpoch(Action<FlatMinimaImageClassificationTrainer.Options>? change = null) =>
        TestData.FastOptions(epochs: 1, batchSize: 16, change);

    [TestMethod]
    public void SameSeedGivesBitIdenticalModelsAndMetrics()
    {
        float[][] Run(int seed)
        {
            var ml = new MLContext(seed: 5);
            var data = Small(ml);
            var model = TestData.Pipeline(ml, OneEpoch(o => { o.Epochs = 2; o.Seed = seed; })).Fit(data);
            return TestData.Scores(model.Transform(data));
        }
        var a = Run(7);
        var b = Run(7);
        for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i], $"row {i}");
        var c = Run(8);
        Assert.IsFalse(a.Zip(c).All(p => p.First.SequenceEqual(p.Second)), "another seed gives another model");
    }

    [TestMethod]
    [DataRow("None")]
    [DataRow("Asam")]
    [DataRow("SaGd")]
    public void EveryMethodTrainsWithResNet20(string method)
    {
        var ml = new MLContext(seed: 1);
        var data = Small(ml, 8);
        var model = TestData.Pipeline(ml, OneEpoch(o =>
        {
            o.SharpnessAware = method switch { "Asam" => SharpnessAwareOptions.Asam(), "SaGd" => SharpnessAwareOptions.SaGd(ascentSteps: 2), _ => null };
            o.Architecture = FlatMinima.Torch.Models.ImageClassifierArchitecture.ResNet20;
        })).Fit(data);
        Assert.IsTrue(TestData.Scores(model.Transform(data)).All(s => s.All(float.IsFinite)));
    }

    [TestMethod]
    public void MSharpnessShardsTrain()
    {
        var ml = new MLContext(seed: 1);
        var data = Small(ml);
        var model = TestData.Pipeline(ml, OneEpoch(o => o.SharpnessAware = SharpnessAwareOptions.Sam() with { ShardCount = 4 })).Fit(data);
        Assert.IsTrue(TestData.Scores(model.Transform(data)).All(s => s.All(float.IsFinite)));
    }

    [TestMethod]
    public void ProgressReachesTheCallbackAndTheLog()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { if (e.Source.Contains("FlatMinima")) lock (messages) messages.Add(e.Message); };
        var reports = new List<EpochReport>();
        var validation = Small(ml, 6);
        var data = Small(ml);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data);
        var trainer = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(OneEpoch(o =>
        {
            o.Epochs = 2;
            o.Progress = reports.Add;
            o.ValidationSet = keys.Transform(validation);
        }));
        trainer.Fit(keys.Transform(data));
        Assert.AreEqual(2, reports.Count);
        Assert.IsTrue(reports.All(r => r.ValidationAccuracy is double && r.ValidationLoss is double && r.TrainLoss > 0));
        Assert.IsTrue(messages.Any(m => m.Contains("epoch 2/2")), string.Join("\n", messages));
    }

    [TestMethod]
    public void CancellationStopsTraining()
    {
        var ml = new MLContext(seed: 1);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsExactly<OperationCanceledException>(() => TestData.Pipeline(ml, OneEpoch(o => o.CancellationToken = cts.Token)).Fit(Small(ml)));
    }

    [TestMethod]
    public void CustomNetworkTrainsSavesAndLoadsByName()
    {
        var ml = new MLContext(seed: 1);
        var data = Small(ml);
        var model = TestData.Pipeline(ml, OneEpoch(o =>
        {
            o.CustomModelName = "TinyLinear";
            o.CustomModelFactory = (channels, classes) => nn.Sequential(nn.Flatten(), nn.Linear(channels * 28 * 28, classes));
        })).Fit(data);
        using var stream = new System.IO.MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out _);
        var a = TestData.Scores(model.Transform(data));
        var b = TestData.Scores(loaded.Transform(data));
        for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i]);
    }
}

[TestClass]
public sealed class BadInputTests
{
    private static MLContext Ml() => new(seed: 1);

    private static IDataView Rows(MLContext ml, IEnumerable<ImageRow> rows) => ml.Data.LoadFromEnumerable(rows);

    private static List<ImageRow> Good(int perClass = 4) => TestData.Load("train", TestData.ThreeClasses, perClass);

    private static FlatMinimaImageClassificationTrainer.Options Options(Action<FlatMinimaImageClassificationTrainer.Options>? change = null) =>
        TestData.FastOptions(epochs: 1, batchSize: 4, change);

    private static TException FitThrows<TException>(MLContext ml, IDataView data, FlatMinimaImageClassificationTrainer.Options options) where TException : Exception =>
        Assert.ThrowsExactly<TException>(() => TestData.Pipeline(ml, options).Fit(data));

    [TestMethod]
    public void StringLabelSaysToAddMapValueToKey()
    {
        var ml = Ml();
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(Options()).Fit(Rows(ml, Good())));
        StringAssert.Contains(e.Message, "Label column 'Label'");
        StringAssert.Contains(e.Message, "MapValueToKey");
    }

    [TestMethod]
    public void UnsupportedImageColumnTypeIsNamed()
    {
        var ml = Ml();
        var data = ml.Data.LoadFromEnumerable(new[] { new { Label = "a", Picture = 1f }, new { Label = "b", Picture = 2f } });
        var e = FitThrows<ArgumentOutOfRangeException>(ml, data, Options(o => o.ImageColumnName = "Picture"));
        StringAssert.Contains(e.Message, "Image column 'Picture'");
    }

    [TestMethod]
    public void UndecodableBytesNameTheRow()
    {
        var ml = Ml();
        var rows = Good();
        rows[3].ImageSource = new byte[] { 0x89, 0x50, 0x4E, 0x47, 1, 2, 3 };
        var e = FitThrows<InvalidOperationException>(ml, Rows(ml, rows), Options());
        StringAssert.Contains(e.Message, "'ImageSource', row 3");
        StringAssert.Contains(e.Message, "decoded");
    }

    private sealed class VectorRow
    {
        public string Label { get; set; } = "";
        public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    private sealed class FixedVectorRow
    {
        public string Label { get; set; } = "";
        [VectorType(100)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void PixelVectorOfUnknownSizeIsRejected()
    {
        var ml = Ml();
        var data = ml.Data.LoadFromEnumerable(new[] { new VectorRow { Label = "a", Pixels = new float[4] }, new VectorRow { Label = "b", Pixels = new float[4] } });
        var e = FitThrows<ArgumentOutOfRangeException>(ml, data, Options(o => o.ImageColumnName = "Pixels"));
        StringAssert.Contains(e.Message, "unknown size");
    }

    [TestMethod]
    public void PixelVectorShapeMismatchIsRejected()
    {
        var ml = Ml();
        var data = ml.Data.LoadFromEnumerable(new[] { new FixedVectorRow { Label = "a", Pixels = new float[100] }, new FixedVectorRow { Label = "b", Pixels = new float[100] } });
        var e = FitThrows<ArgumentOutOfRangeException>(ml, data, Options(o => { o.ImageColumnName = "Pixels"; o.ImageChannels = 1; o.ImageHeight = 28; o.ImageWidth = 28; }));
        StringAssert.Contains(e.Message, "100 values");
        var e2 = FitThrows<ArgumentOutOfRangeException>(ml, data, Options(o => o.ImageColumnName = "Pixels"));
        StringAssert.Contains(e2.Message, "set ImageHeight and ImageWidth");
        var e3 = FitThrows<ArgumentOutOfRangeException>(ml, data, Options(o => { o.ImageColumnName = "Pixels"; o.ImageHeight = 7; o.ImageWidth = 7; }));
        StringAssert.Contains(e3.Message, "100 values");
    }

    [TestMethod]
    public void PixelVectorChannelsFollowFromHeightAndWidth()
    {
        var ml = Ml();
        var rows = Enumerable.Range(0, 8).Select(i => new FixedVectorRow { Label = i % 2 == 0 ? "a" : "b", Pixels = Enumerable.Range(0, 100).Select(p => (p + i) % 7 / 7f).ToArray() });
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = TestData.Pipeline(ml, Options(o => { o.ImageColumnName = "Pixels"; o.ImageHeight = 10; o.ImageWidth = 10; o.Epochs = 1; })).Fit(data);
        var classifier = ((System.Collections.Generic.IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single().Model;
        Assert.AreEqual((1, 10, 10), (classifier.Channels, classifier.Height, classifier.Width), "100 values at 10×10 are one channel");
    }

    [TestMethod]
    public void NaNPixelsNameTheRow()
    {
        var ml = Ml();
        var rows = Enumerable.Range(0, 6).Select(i => new FixedVectorRow { Label = i % 2 == 0 ? "a" : "b", Pixels = Enumerable.Repeat(0.5f, 100).ToArray() }).ToArray();
        rows[2].Pixels[17] = float.NaN;
        var e = FitThrows<InvalidOperationException>(ml, ml.Data.LoadFromEnumerable(rows),
            Options(o => { o.ImageColumnName = "Pixels"; o.ImageChannels = 1; o.ImageHeight = 10; o.ImageWidth = 10; o.Architecture = FlatMinima.Torch.Models.ImageClassifierArchitecture.ResNet20; }));
        StringAssert.Contains(e.Message, "row 2");
        StringAssert.Contains(e.Message, "NaN");
    }

    [TestMethod]
    public void EmptyTrainingDataIsRejected()
    {
        var ml = Ml();
        var e = FitThrows<InvalidOperationException>(ml, Rows(ml, Array.Empty<ImageRow>()), Options());
        StringAssert.Contains(e.Message, "empty");
    }

    [TestMethod]
    public void SingleClassIsRejected()
    {
        var ml = Ml();
        var rows = TestData.Load("train", new[] { "Bag" }, 6);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TestData.Pipeline(ml, Options()).Fit(Rows(ml, rows)));
        StringAssert.Contains(e.Message, "at least two classes");
    }

    [TestMethod]
    public void ValidationLabelsUnseenInTrainingAreRejected()
    {
        var ml = Ml();
        var all = Rows(ml, Good());
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(all);
        var train = keys.Transform(Rows(ml, Good().Where(r => r.Label != "Sneaker")));
        var validation = keys.Transform(Rows(ml, Good().Where(r => r.Label == "Sneaker")));
        var trainer = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(Options(o => o.ValidationSet = validation));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(train));
        StringAssert.Contains(e.Message, "ValidationSet: row 0");
        StringAssert.Contains(e.Message, "Sneaker");
    }

    [TestMethod]
    public void DivergingLossStopsAndNamesEpochAndBatch()
    {
        var ml = Ml();
        var e = FitThrows<TrainingDivergedException>(ml, Rows(ml, Good(8)), Options(o => { o.LearningRate = 1e12; o.WeightDecay = 0; o.Epochs = 3; }));
        StringAssert.Contains(e.Message, "epoch");
        StringAssert.Contains(e.Message, "batch");
        StringAssert.Contains(e.Message, "Lower LearningRate or the sharpness radius Rho");
    }

    [TestMethod]
    public void InvalidOptionsAreRejectedAtConstruction()
    {
        var ml = Ml();
        var trainers = ml.MulticlassClassification.Trainers;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => o.SharpnessAware = SharpnessAwareOptions.Sam(-0.1)))).Message, "SharpnessAware.Rho");
        Assert.AreEqual("BatchSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => o.BatchSize = 0))).ParamName);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => o.Epochs = 0))).Message, "Epochs");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => o.LearningRate = double.NaN))).Message, "LearningRate");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => o.ImageChannels = 2))).Message, "ImageChannels");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => o.SharpnessAware = SharpnessAwareOptions.Sam() with { ShardCount = 1000 }))).Message, "SharpnessAware.ShardCount");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => trainers.FlatMinimaImageClassification(Options(o => o.CustomModelFactory = (c, k) => nn.Linear(1, k)))).Message, "CustomModelName");
    }

    [TestMethod]
    public void CudaWithoutAGpuFailsClearly()
    {
        if (cuda.is_available()) return; // this machine has a GPU: nothing to check
        var ml = Ml();
        var e = FitThrows<InvalidOperationException>(ml, Rows(ml, Good()), Options(o => o.Device = DeviceKind.Cuda));
        StringAssert.Contains(e.Message, "TorchSharp-cuda");
    }
}
