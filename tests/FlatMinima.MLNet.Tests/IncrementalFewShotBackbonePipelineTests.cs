using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// F2M on ML.NET's pretrained ResNet-18 (<c>Backbone</c>): base session at 32×32 on a few gray Fashion-MNIST images
/// (replicated to RGB), sessions, the flat region on the pretrained network's last convolutions, and save → load → next
/// session without the ONNX files (the base trainer reads copies that are deleted right after base training).
/// </summary>
[TestClass]
public sealed class IncrementalFewShotBackbonePipelineTests
{
    private const int Size = 32;
    private static readonly string[] BaseClasses = { "Trouser", "Bag", "Sneaker", "Dress" };
    private static readonly string[] Session1 = { "Sandal" };
    private static readonly string[] Session2 = { "Shirt" };

    private static MLContext _ml = null!;
    private static FlatMinimaIncrementalFewShotTransformer _base = null!;
    private static string _copies = null!;
    private static readonly List<EpochReport> Reports = new();

    private static FlatMinimaIncrementalFewShotTrainer.Options Options(PretrainedBackbone? backbone, Action<FlatMinimaIncrementalFewShotTrainer.Options>? change = null)
    {
        var o = new FlatMinimaIncrementalFewShotTrainer.Options
        {
            ImageColumnName = "ImageSource",
            Backbone = backbone,
            ImageHeight = backbone is null ? null : Size,
            ImageWidth = backbone is null ? null : Size,
            Epochs = 1,
            BatchSize = 8,
            LearningRate = 0.01,
            // The default b = 0.01 lets a session move these pretrained layer4 weights by up to ±0.005; here that left 33 %
            // accuracy on 5 classes after one session, b = 0.002 about 73 %.
            FlatRegion = new FlatRegionOptions { Bound = 0.002 },
            Device = DeviceKind.Cpu,
            ScoringBatchSize = 16,
        };
        change?.Invoke(o);
        return o;
    }

    /// <summary>A trainer for sessions: no Backbone (the previous model holds the network), so no backbone file is needed.</summary>
    private static FlatMinimaIncrementalFewShotTrainer SessionTrainer() =>
        _ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(Options(null));

    private static IDataView Keyed(IEnumerable<string> classes, int perClass, int skip = 0)
    {
        var rows = _ml.Data.LoadFromEnumerable(TestData.Load("train", classes, perClass, skip));
        return _ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows);
    }

    private static IDataView TestSet(FlatMinimaIncrementalFewShotTransformer model, IEnumerable<string> classes, int perClass = 20)
    {
        var rows = _ml.Data.LoadFromEnumerable(TestData.Load("test", classes, perClass));
        return model.MapLabelToKey(_ml, "Label").Fit(rows).Transform(rows);
    }

    [ClassInitialize]
    public static void TrainBase(TestContext _)
    {
        _copies = Path.Combine(Path.GetTempPath(), $"flatminima-f2m-backbone-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_copies);
        string onnx = Path.Combine(_copies, "ResNet18.onnx"), preprocess = Path.Combine(_copies, "ResNetPreprocess.onnx");
        File.Copy(DnnImageModelFiles.ResNet18(), onnx);
        File.Copy(DnnImageModelFiles.ResNetPreprocess(), preprocess);
        _ml = new MLContext(seed: 1);
        var trainer = _ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(
            Options(PretrainedBackbone.ResNet18ImageNet(onnx, preprocess), o => o.Progress = Reports.Add));
        _base = trainer.Fit(Keyed(BaseClasses, 8));
        Directory.Delete(_copies, recursive: true);   // from here on nothing can read the backbone's files
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        _base?.Dispose();
        if (Directory.Exists(_copies)) Directory.Delete(_copies, recursive: true);
    }

    [TestMethod]
    public void BaseSessionOnTheBackboneThenSessionsSaveLoadAndEvaluateWithGrowingClasses()
    {
        Assert.AreEqual(1, Reports.Count, "one base epoch");
        Assert.IsTrue(double.IsFinite(Reports[0].TrainLoss), $"base loss {Reports[0].TrainLoss}");
        var classifier = _base.Model.Backbone;
        Assert.AreEqual(PretrainedBackbone.ResNet18ImageNetName, classifier.Architecture);
        Assert.IsTrue(classifier.Network is PretrainedImageNetwork, classifier.Network.GetType().Name);
        Assert.AreEqual((3, Size, Size), (classifier.Channels, classifier.Height, classifier.Width), "3 channels (gray replicated) at the size set");
        CollectionAssert.AreEqual(new[] { 0f, 0f, 0f }, classifier.Mean.ToArray(), "no data standardization: the backbone's is in the network");
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f }, classifier.Std.ToArray());
        CollectionAssert.AreEqual(new long[] { 4, 512 }, _base.Model.Prototypes.shape, "prototypes of the ResNet-18's 512-d embedding");
        CollectionAssert.AreEquivalent(
            new[] { "backbone.layer4.1.conv1.weight", "backbone.layer4.1.conv2.weight", "backbone.layer4.2.conv1.weight", "backbone.layer4.2.conv2.weight" },
            _base.Model.FlatRegion.Names.ToArray(), "the range parameters are the pretrained network's last 4 convolutions (shortcuts excluded)");

        var baseMetrics = _ml.MulticlassClassification.Evaluate(_base.Transform(TestSet(_base, BaseClasses)));
        Console.WriteLine($"F2M on ResNet18ImageNet, base (4 classes): {baseMetrics.MicroAccuracy:P1}");
        Assert.IsTrue(baseMetrics.MicroAccuracy > 0.45, $"nearest-prototype accuracy on 4 base classes: {baseMetrics.MicroAccuracy:P1}");

        // The session's 28×28 PNGs are resized to the base model's 32×32, as the base images were.
        using var first = SessionTrainer().Fit(Keyed(Session1, 5), _base);
        Assert.AreEqual(5L, first.Model.ExemplarCount, "the session's shots are kept as exemplars");
        var seen1 = BaseClasses.Concat(Session1).ToArray();
        CollectionAssert.AreEqual(seen1, first.ClassNames.ToArray());
        Assert.AreEqual(4, _base.ClassCount, "the previous model keeps its classes");
        var metrics1 = _ml.MulticlassClassification.Evaluate(first.Transform(TestSet(first, seen1)));
        Assert.AreEqual(5, metrics1.PerClassLogLoss.Count);
        Console.WriteLine($"after session 1 (5 classes): {metrics1.MicroAccuracy:P1}");
        Assert.IsTrue(metrics1.MicroAccuracy > 0.35, $"5 classes after one session: {metrics1.MicroAccuracy:P1}");
        Assert.IsTrue(double.IsFinite(metrics1.LogLoss));

        // The session moved only the range parameters, and kept them within θ_base ± b/2 of the base network's weights.
        var region = first.Model.FlatRegion;
        var range = region.Names.ToHashSet();
        var before = _base.Model.Backbone.Network.state_dict();
        var after = first.Model.Backbone.Network.state_dict();
        CollectionAssert.AreEquivalent(before.Keys.ToArray(), after.Keys.ToArray());
        for (int i = 0; i < region.Names.Count; i++)
            Assert.IsTrue(region.BaseWeights[i].eq(before[region.Names[i]]).all().item<bool>(), $"θ_base of {region.Names[i]} is the base network's weight");
        double moved = 0;
        foreach (var name in range)
        {
            double deviation = (after[name] - before[name]).abs().max().item<float>();
            Assert.IsTrue(deviation <= region.Bound / 2 + 1e-7, $"{name} moved {deviation:G4} > b/2 = {region.Bound / 2}");
            moved = Math.Max(moved, deviation);
        }
        Assert.IsTrue(moved > 0, "the session fine-tuned the range parameters");
        int identical = 0;
        foreach (var (name, value) in before.Where(e => !range.Contains(e.Key)))
        {
            Assert.IsTrue(value.eq(after[name]).all().item<bool>(), $"{name} is not a range parameter but changed in the session");
            identical++;
        }
        Assert.IsTrue(identical > 120, $"{identical} non-range parameters and buffers (BatchNorm statistics, the mean image) compared");

        // Save, load without the ONNX files (deleted after base training), continue: same as continuing in memory.
        var path = Path.Combine(Path.GetTempPath(), $"f2m-backbone-{Guid.NewGuid():N}.zip");
        try
        {
            _ml.Model.Save(first, null, path);
            using var loaded = (FlatMinimaIncrementalFewShotTransformer)_ml.Model.Load(path, out _);
            Assert.AreEqual(PretrainedBackbone.ResNet18ImageNetName, loaded.Model.Backbone.Architecture);
            Assert.AreEqual(1, loaded.Model.SessionCount);
            var a = TestData.Scores(first.Transform(TestSet(first, seen1)));
            var b = TestData.Scores(loaded.Transform(TestSet(loaded, seen1)));
            for (int i = 0; i < a.Length; i++) CollectionAssert.AreEqual(a[i], b[i], "the loaded model scores identically");

            using var second = SessionTrainer().Fit(Keyed(Session2, 5), first);
            using var secondFromLoaded = SessionTrainer().Fit(Keyed(Session2, 5), loaded);
            var seen2 = seen1.Concat(Session2).ToArray();
            CollectionAssert.AreEqual(seen2, secondFromLoaded.ClassNames.ToArray());
            var s1 = TestData.Scores(second.Transform(TestSet(second, seen2)));
            var s2 = TestData.Scores(secondFromLoaded.Transform(TestSet(secondFromLoaded, seen2)));
            for (int i = 0; i < s1.Length; i++) CollectionAssert.AreEqual(s1[i], s2[i], "a session after save/load equals one without");
            var metrics2 = _ml.MulticlassClassification.Evaluate(secondFromLoaded.Transform(TestSet(secondFromLoaded, seen2)));
            Assert.AreEqual(6, metrics2.PerClassLogLoss.Count);
            Console.WriteLine($"after session 2 (6 classes): {metrics2.MicroAccuracy:P1}");
            Assert.IsTrue(metrics2.MicroAccuracy > 0.3, $"6 classes after two sessions: {metrics2.MicroAccuracy:P1}");
            Assert.IsTrue(secondFromLoaded.Model.FlatRegion.MaxDeviation(secondFromLoaded.Model.Backbone.Network) <= region.Bound / 2 + 1e-7,
                "after two sessions, one after a reload, the range parameters are still within b/2 of the base weights");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void HeadOnlyFineTuningKeepsThePretrainedEmbeddingForThePrototypes()
    {
        var options = Options(PretrainedBackbone.ResNet18ImageNet(), o => o.FineTuning = FineTuningOptions.HeadOnly());
        using var model = _ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(options).Fit(Keyed(BaseClasses, 8));
        using var fresh = PretrainedBackbone.ResNet18ImageNet().CreateNetwork(4, Size, Size, headSeed: 1);
        var trained = model.Model.Backbone.Network.state_dict();
        int compared = 0;
        foreach (var (name, value) in fresh.state_dict().Where(e => !e.Key.StartsWith("backbone.fc.", StringComparison.Ordinal)))
        {
            Assert.IsTrue(value.eq(trained[name]).all().item<bool>(), $"{name} changed although only the head trains (the flat-region noise only probes it)");
            compared++;
        }
        Assert.IsTrue(compared > 120, $"{compared} backbone entries compared");
        Assert.IsTrue(model.Model.Backbone.Network.parameters().All(p => p.requires_grad), "requires_grad restored");
        double accuracy = _ml.MulticlassClassification.Evaluate(model.Transform(TestSet(model, BaseClasses))).MicroAccuracy;
        Console.WriteLine($"HeadOnly base (4 classes): {accuracy:P1}");
        Assert.IsTrue(accuracy > 0.45, $"prototypes of the pretrained embedding on 4 classes: {accuracy:P1}");
    }

    [TestMethod]
    public void BadOptionCombinationsNameTheOption()
    {
        var trainers = _ml.MulticlassClassification.Trainers;
        void Expect<TException>(string option, Action<FlatMinimaIncrementalFewShotTrainer.Options> change) where TException : ArgumentException
        {
            var options = Options(PretrainedBackbone.ResNet18ImageNet());
            change(options);
            var e = Assert.ThrowsExactly<TException>(() => trainers.FlatMinimaIncrementalFewShot(options));
            Assert.AreEqual(option, e.ParamName, e.Message);
        }
        Expect<ArgumentException>("Backbone", o => { o.CustomModelFactory = (c, k) => nn.Linear(c, k); o.CustomModelName = "F2MProbe"; });
        Expect<ArgumentOutOfRangeException>("ImageChannels", o => o.ImageChannels = 1);
        Expect<ArgumentOutOfRangeException>("ImageHeight", o => (o.ImageHeight, o.ImageWidth) = (16, 16));
        Expect<ArgumentException>("FineTuning", o => { o.Backbone = null; o.FineTuning = FineTuningOptions.HeadOnly(); });

        var missing = Assert.ThrowsExactly<FileNotFoundException>(() =>
            trainers.FlatMinimaIncrementalFewShot(Options(PretrainedBackbone.ResNet18ImageNet(Path.Combine(Path.GetTempPath(), "flatminima-absent", "ResNet18.onnx")))));
        StringAssert.Contains(missing.Message, DnnImageModelFiles.PackageId);

        var snapshot = new FlatMinimaIncrementalFewShotTrainer.Options { Backbone = PretrainedBackbone.ResNet18ImageNet() }.Snapshot();
        Assert.AreEqual((3, 224, 224), (snapshot.ImageChannels, snapshot.ImageHeight, snapshot.ImageWidth), "the backbone's channels and input size by default");

        // Range parameters named for another network (ResNet-20's) are not in the pretrained one: the error lists its names.
        var wrongNames = Options(PretrainedBackbone.ResNet18ImageNet(), o => o.FlatRegion = new FlatRegionOptions { RangeParameterNames = new[] { "layer3.2.conv2.weight" } });
        var unknown = Assert.ThrowsExactly<ArgumentException>(() => trainers.FlatMinimaIncrementalFewShot(wrongNames).Fit(Keyed(BaseClasses, 2)));
        StringAssert.Contains(unknown.Message, "RangeParameterNames");
        StringAssert.Contains(unknown.Message, "backbone.layer4.2.conv2.weight");
    }
}
