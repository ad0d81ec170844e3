using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.Diagnostics;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// The image classifier on ML.NET's pretrained ResNet-18 (<c>Backbone</c>, <c>FineTuning</c>) and the embedding
/// featurizer, at 32×32 on 12 gray Fashion-MNIST images (replicated to RGB). The backbone is read from copies of the
/// package's ONNX files that are deleted after training, so loading the saved zip cannot read them.
/// </summary>
[TestClass]
public sealed class PretrainedBackbonePipelineTests
{
    private const int Size = 32;
    private static MLContext _ml = null!;
    private static IDataView _train = null!;
    private static ITransformer _model = null!;
    private static string _zip = null!;
    private static string _copies = null!;
    private static readonly List<EpochReport> Reports = new();

    private static FlatMinimaImageClassificationTrainer.Options HeadOnlyOptions(PretrainedBackbone backbone) => TestData.FastOptions(epochs: 2, batchSize: 4, change: o =>
    {
        o.Backbone = backbone;
        o.FineTuning = FineTuningOptions.HeadOnly();
        o.ImageHeight = Size;
        o.ImageWidth = Size;
        o.SharpnessAware = SharpnessAwareOptions.Sam();
        o.Averaging = WeightAveragingOptions.Swa(startEpoch: 1);
        o.LearningRate = 0.01;
        o.Progress = Reports.Add;
    });

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _copies = Path.Combine(Path.GetTempPath(), $"flatminima-backbone-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_copies);
        string onnx = Path.Combine(_copies, "ResNet18.onnx"), preprocess = Path.Combine(_copies, "ResNetPreprocess.onnx");
        File.Copy(DnnImageModelFiles.ResNet18(), onnx);
        File.Copy(DnnImageModelFiles.ResNetPreprocess(), preprocess);
        _ml = new MLContext(seed: 1);
        _train = _ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 4));
        _model = TestData.Pipeline(_ml, HeadOnlyOptions(PretrainedBackbone.ResNet18ImageNet(onnx, preprocess))).Fit(_train);
        _zip = Path.Combine(Path.GetTempPath(), $"flatminima-backbone-{Guid.NewGuid():N}.zip");
        _ml.Model.Save(_model, _train.Schema, _zip);
        Directory.Delete(_copies, recursive: true);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        if (File.Exists(_zip)) File.Delete(_zip);
        if (Directory.Exists(_copies)) Directory.Delete(_copies, recursive: true);
    }

    private static FlatMinimaImageClassificationTransformer Classifier(ITransformer model) =>
        ((IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();

    [TestMethod]
    public void HeadOnlyWithSamAndSwaLeavesEveryBackboneParameterAndBufferBitIdentical()
    {
        Assert.AreEqual(2, Reports.Count);
        Assert.IsNotNull(Reports[^1].Averaging, "SWA ran");
        var model = Classifier(_model).Model;
        using var fresh = PretrainedBackbone.ResNet18ImageNet().CreateNetwork(3, Size, Size, headSeed: 1);
        var trained = model.Network.state_dict();
        var initial = fresh.state_dict();
        CollectionAssert.AreEquivalent(initial.Keys.ToArray(), trained.Keys.ToArray());
        int compared = 0;
        foreach (var (name, value) in initial)
        {
            if (name.StartsWith("backbone.fc.", StringComparison.Ordinal)) continue;
            Assert.IsTrue(value.eq(trained[name].cpu()).all().item<bool>(), $"{name} changed although the backbone was frozen");
            compared++;
        }
        Assert.IsTrue(compared > 120, $"{compared} backbone entries compared");
        Assert.IsFalse(initial["backbone.fc.weight"].eq(trained["backbone.fc.weight"].cpu()).all().item<bool>(), "the head trained");
        Assert.IsTrue(model.Network.parameters().All(p => p.requires_grad), "requires_grad restored");
    }

    [TestMethod]
    public void LastStageWithFrozenBatchNormAsamAndSwadOnHeldOutRowsKeepsEarlierStagesAndStatistics()
    {
        var options = TestData.FastOptions(epochs: 2, batchSize: 4, change: o =>
        {
            o.Backbone = PretrainedBackbone.ResNet18ImageNet();
            o.FineTuning = FineTuningOptions.LastStages(1, backboneLearningRateFactor: 0.1, freezeBatchNorm: true);
            (o.ImageHeight, o.ImageWidth) = (Size, Size);
            o.SharpnessAware = SharpnessAwareOptions.Asam();
            o.Averaging = WeightAveragingOptions.Swad(evaluationFrequency: 1, optimumPatience: 1);
            o.ValidationFraction = 0.25;
            o.LearningRate = 0.01;
        });
        var model = TestData.Pipeline(_ml, options).Fit(_train);
        using var fresh = PretrainedBackbone.ResNet18ImageNet().CreateNetwork(3, Size, Size, headSeed: 1);
        var trained = Classifier(model).Model.Network.state_dict();
        int kept = 0, moved = 0;
        foreach (var (name, value) in fresh.state_dict())
        {
            bool same = value.eq(trained[name]).all().item<bool>();
            bool statistic = name.EndsWith("running_mean") || name.EndsWith("running_var") || name.EndsWith("num_batches_tracked");
            if (statistic || !(name.StartsWith("backbone.layer4.", StringComparison.Ordinal) || name.StartsWith("backbone.fc.", StringComparison.Ordinal)))
            {
                Assert.IsTrue(same, $"{name} changed");
                kept++;
            }
            else if (!same) moved++;
        }
        Assert.IsTrue(kept > 100 && moved > 0, $"{kept} kept, {moved} trained");
        var scores = TestData.Scores(model.Transform(_train));
        Assert.IsTrue(scores.All(row => row.All(float.IsFinite)));
    }

    [TestMethod]
    public void TheModelRecordsTheBackboneGeometryAndNoDataStandardization()
    {
        var model = Classifier(_model).Model;
        Assert.AreEqual(PretrainedBackbone.ResNet18ImageNetName, model.Architecture);
        Assert.AreEqual(3, model.Channels, "gray images are replicated to the backbone's 3 channels");
        Assert.AreEqual((Size, Size), (model.Height, model.Width));
        CollectionAssert.AreEqual(new[] { 0f, 0f, 0f }, model.Mean.ToArray());
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f }, model.Std.ToArray());
        var network = (PretrainedImageNetwork)model.Network;
        Assert.AreEqual((long)Size, network.Preprocessing.Height);
        Assert.IsTrue(network.Preprocessing.Bgr);
    }

    [TestMethod]
    public void ZipLoadsAndScoresIdenticallyAfterTheOnnxFilesAreGone()
    {
        Assert.IsFalse(Directory.Exists(_copies), "the files the backbone was read from are deleted");
        var loaded = _ml.Model.Load(_zip, out _);
        var test = _ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 3));
        var expected = TestData.Scores(_model.Transform(test));
        var actual = TestData.Scores(loaded.Transform(test));
        Assert.AreEqual(9, expected.Length);
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"row {i}");
        Assert.AreEqual(PretrainedBackbone.ResNet18ImageNetName, Classifier(loaded).Model.Architecture);
    }

    [TestMethod]
    public void ZipLoadsInAChildProcessWithoutThePackageInAnotherWorkingDirectory()
    {
        var images = TestData.Load("test", TestData.ThreeClasses, 2, skip: 10);
        string configuration = Path.GetFileName(Path.GetDirectoryName(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)))!;
        string folder = Path.Combine(TestData.RepoRoot, "tests", "FlatMinima.LoadCheck", "bin", configuration, "net10.0");
        string exe = Path.Combine(folder, "FlatMinima.LoadCheck.dll");
        Assert.IsTrue(File.Exists(exe), exe);
        Assert.IsFalse(File.Exists(Path.Combine(folder, DnnImageModelFiles.ResNet18RelativePath)), "the loader's folder has no ResNet-18 files");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetTempPath() };
        start.ArgumentList.Add(exe);
        start.ArgumentList.Add(_zip);
        foreach (var i in images) start.ArgumentList.Add(i.ImagePath);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd(), error = process.StandardError.ReadToEnd();
        Assert.IsTrue(process.WaitForExit(120_000));
        Assert.AreEqual(0, process.ExitCode, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var engine = _ml.Model.CreatePredictionEngine<ImageRow, Prediction>(_model);
        for (int i = 0; i < images.Count; i++)
        {
            var p = engine.Predict(images[i]);
            Assert.AreEqual(p.PredictedLabel + " " + string.Join(" ", p.Score.Select(s => s.ToString("R"))), lines[i + 1].Trim(), $"image {i}");
        }
    }

    [TestMethod]
    public void FeaturizerGivesTheFrozenBackbonesEmbeddingsInBatchesAndFeedsAnMLNetTrainer()
    {
        var rows = TestData.Load("test", TestData.ThreeClasses, 4);
        var data = _ml.Data.LoadFromEnumerable(rows);
        var fromBackbone = _ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", PretrainedBackbone.ResNet18ImageNet(), Size, Size, batchSize: 5).Fit(data);
        var features = TestData.Scores(fromBackbone.Transform(data), "Features");
        Assert.AreEqual(12, features.Length);
        Assert.IsTrue(features.All(f => f.Length == 512 && f.All(float.IsFinite)));
        Assert.IsTrue(features[0].Zip(features[11]).Any(p => p.First != p.Second), "different images give different embeddings");

        // Row by row (PredictionEngine's mapper) gives the batch's values (up to the convolutions' batch-size-dependent rounding).
        var engine = _ml.Model.CreatePredictionEngine<ImageRow, FeatureRow>(fromBackbone);
        var single = engine.Predict(rows[7]).Features;
        Assert.AreEqual(512, single.Length);
        for (int j = 0; j < single.Length; j++) Assert.AreEqual(features[7][j], single[j], 1e-4f * (1 + Math.Abs(single[j])), $"feature {j}");

        // The head-only model's backbone is the imported one, so its embeddings are the same.
        var fromModel = _ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", Classifier(_model), batchSize: 4).Fit(data);
        var modelFeatures = TestData.Scores(fromModel.Transform(data), "Features");
        for (int i = 0; i < features.Length; i++)
            for (int j = 0; j < features[i].Length; j++)
                Assert.AreEqual(features[i][j], modelFeatures[i][j], 1e-4f * (1 + Math.Abs(features[i][j])), $"row {i}, feature {j}");

        var pipeline = _ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(_ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", PretrainedBackbone.ResNet18ImageNet(), Size, Size))
            .Append(_ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy());
        var trained = pipeline.Fit(data);
        var metrics = _ml.MulticlassClassification.Evaluate(trained.Transform(data));
        Assert.IsTrue(metrics.MicroAccuracy > 0.5, $"an ML.NET trainer learns from the embeddings (training accuracy {metrics.MicroAccuracy})");
    }

    [TestMethod]
    public void FeaturizerSavesAndLoadsWithoutTheOnnxFiles()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"flatminima-featurizer-{Guid.NewGuid():N}");
        string zip = folder + ".zip";
        Directory.CreateDirectory(folder);
        try
        {
            string onnx = Path.Combine(folder, "a.onnx"), preprocess = Path.Combine(folder, "b.onnx");
            File.Copy(DnnImageModelFiles.ResNet18(), onnx);
            File.Copy(DnnImageModelFiles.ResNetPreprocess(), preprocess);
            var data = _ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 2));
            var featurizer = _ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", PretrainedBackbone.ResNet18ImageNet(onnx, preprocess), 48, 40, batchSize: 3).Fit(data);
            Directory.Delete(folder, recursive: true);
            _ml.Model.Save(featurizer, data.Schema, zip);
            var loaded = _ml.Model.Load(zip, out _);
            var expected = TestData.Scores(featurizer.Transform(data), "Features");
            var actual = TestData.Scores(loaded.Transform(data), "Features");
            Assert.AreEqual(6, actual.Length);
            for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"row {i}");
            var reloaded = (FlatMinimaImageFeaturizer)loaded;
            Assert.AreEqual((48, 40, 512, 3), (reloaded.Source.Height, reloaded.Source.Width, reloaded.EmbeddingSize, reloaded.BatchSize));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            if (File.Exists(zip)) File.Delete(zip);
        }
    }

    [TestMethod]
    public void EvaluateSharpnessWorksOnTheFineTunedModel()
    {
        var data = _ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 4));
        var report = _ml.MulticlassClassification.EvaluateSharpness(_model, data, new FlatMinimaSharpnessOptions
        {
            MaxExamples = 8, BatchSize = 8, TopEigenvalues = 0, TraceProbes = 2, KrylovDimension = 5, MaxIterationsPerEigenvalue = 5,
            WorstCaseRho = 0, KeskarEpsilon = 0, AdaptiveRho = 0, AverageCaseSamples = 2,
        });
        Assert.IsTrue(double.IsFinite(report.Loss) && report.Loss > 0, $"loss {report.Loss}");
        Assert.IsNotNull(report.Trace, "the Hessian trace was estimated");
        Assert.AreEqual(Classifier(_model).Model.ParameterCount, report.Parameters, "every parameter is measured (requires_grad restored after training)");
    }

    [TestMethod]
    public void MissingFilesAndConflictingOptionsAreNamed()
    {
        string absent = Path.Combine(Path.GetTempPath(), "flatminima-absent", "ResNet18.onnx");
        var missing = Assert.ThrowsExactly<FileNotFoundException>(() =>
            _ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(HeadOnlyOptions(PretrainedBackbone.ResNet18ImageNet(absent))));
        StringAssert.Contains(missing.Message, DnnImageModelFiles.PackageId);
        var featurizer = Assert.ThrowsExactly<FileNotFoundException>(() =>
            _ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", PretrainedBackbone.ResNet18ImageNet(absent)));
        StringAssert.Contains(featurizer.Message, DnnImageModelFiles.PackageId);

        void Expect<TException>(string option, Action<FlatMinimaImageClassificationTrainer.Options> change) where TException : ArgumentException
        {
            var options = HeadOnlyOptions(PretrainedBackbone.ResNet18ImageNet());
            change(options);
            var e = Assert.ThrowsExactly<TException>(() => _ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options));
            Assert.AreEqual(option, e.ParamName, e.Message);
        }
        Expect<ArgumentOutOfRangeException>("ImageChannels", o => o.ImageChannels = 1);
        Expect<ArgumentOutOfRangeException>("ImageHeight", o => (o.ImageHeight, o.ImageWidth) = (16, 16));
        Expect<ArgumentException>("Backbone", o => { o.CustomModelFactory = (c, k) => nn.Linear(c, k); o.CustomModelName = "Probe"; });
        Expect<ArgumentException>("FineTuning", o => o.Backbone = null);
        Expect<ArgumentOutOfRangeException>("FineTuning.TrainableStages", o => o.FineTuning = FineTuningOptions.LastStages(0));
        var fewShot = Assert.ThrowsExactly<ArgumentException>(() => _ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(
            new IncrementalFewShot.FlatMinimaIncrementalFewShotTrainer.Options { FineTuning = FineTuningOptions.HeadOnly() }));
        Assert.AreEqual("FineTuning", fewShot.ParamName);
        Assert.ThrowsExactly<ArgumentException>(() => FlatMinimaModelRegistry.Register(PretrainedBackbone.ResNet18ImageNetName, (c, k) => nn.Linear(c, k)));
    }

    [TestMethod]
    public void BackboneDefaultsToThreeChannelsAt224()
    {
        var options = new FlatMinimaImageClassificationTrainer.Options { Backbone = PretrainedBackbone.ResNet18ImageNet() };
        var snapshot = options.Snapshot();
        Assert.AreEqual((3, 224, 224), (snapshot.ImageChannels, snapshot.ImageHeight, snapshot.ImageWidth));
        Assert.IsNull(options.ImageHeight, "the user's options are not changed");
        var sized = new FlatMinimaImageClassificationTrainer.Options { Backbone = PretrainedBackbone.ResNet18ImageNet(), ImageHeight = 128, ImageWidth = 160 }.Snapshot();
        Assert.AreEqual((3, 128, 160), (sized.ImageChannels, sized.ImageHeight, sized.ImageWidth));
        var plain = new FlatMinimaImageClassificationTrainer.Options().Snapshot();
        Assert.AreEqual((null, null, null), (plain.ImageChannels, plain.ImageHeight, plain.ImageWidth));
    }

    private sealed class FeatureRow
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }
}
