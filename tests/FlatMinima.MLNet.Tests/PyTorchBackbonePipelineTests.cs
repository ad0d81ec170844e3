using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// The image classifier on a PyTorch checkpoint (<c>Backbone = PretrainedBackbone.FromPyTorch(…)</c>): a TorchVision-layout
/// ResNet-18 state_dict with seeded weights and BatchNorm statistics, written by TorchSharp.PyBridge as a torch.save file in
/// a temporary folder, fine-tuned head-only at 32×32 on 12 Fashion-MNIST images for one epoch. The checkpoint is deleted
/// after training, so loading the saved zip cannot read it.
/// </summary>
[TestClass]
public sealed class PyTorchBackbonePipelineTests
{
    private const int Size = 32;
    private static MLContext _ml = null!;
    private static IDataView _train = null!;
    private static ITransformer _model = null!;
    private static string _folder = null!;
    private static string _checkpoint = null!;
    private static string _zip = null!;
    private static Dictionary<string, Tensor> _checkpointState = null!;
    private static readonly List<EpochReport> Reports = new();

    private static FlatMinimaImageClassificationTrainer.Options HeadOnlyOptions(PretrainedBackbone backbone, List<EpochReport>? reports = null) =>
        TestData.FastOptions(epochs: 1, batchSize: 4, change: o =>
        {
            o.Backbone = backbone;
            o.FineTuning = FineTuningOptions.HeadOnly();
            (o.ImageHeight, o.ImageWidth) = (Size, Size);
            o.LearningRate = 0.01;
            if (reports is not null) o.Progress = reports.Add;
        });

    [ClassInitialize]
    public static void TrainOnce(TestContext context)
    {
        _folder = Directory.CreateTempSubdirectory("flatminima-pytorch-backbone").FullName;
        _checkpoint = Path.Combine(_folder, "resnet18.pth");
        using (var source = Randomized(ImageNetResNet.ResNet18(1000), seed: 3))
        {
            source.save_py(_checkpoint);
            _checkpointState = source.state_dict().ToDictionary(e => e.Key, e => e.Value.detach().clone());
        }
        _ml = new MLContext(seed: 1);
        _train = _ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 4));
        _model = TestData.Pipeline(_ml, HeadOnlyOptions(PretrainedBackbone.FromPyTorch(_checkpoint, TorchVisionResNet.ResNet18), Reports)).Fit(_train);
        _zip = Path.Combine(_folder, "model.zip");
        _ml.Model.Save(_model, _train.Schema, _zip);
        File.Delete(_checkpoint);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
        foreach (var tensor in _checkpointState?.Values ?? Enumerable.Empty<Tensor>()) tensor.Dispose();
    }

    private static FlatMinimaImageClassificationTransformer Classifier(ITransformer model) =>
        ((IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();

    [TestMethod]
    public void FitTrainsTheHeadAndHeadOnlyLeavesEveryBackboneEntryBitIdenticalToTheCheckpoint()
    {
        Assert.AreEqual(1, Reports.Count, "one epoch");
        Assert.IsTrue(double.IsFinite(Reports[0].TrainLoss), $"train loss {Reports[0].TrainLoss}");
        var model = Classifier(_model).Model;
        Assert.AreEqual(PretrainedBackbone.TorchVisionResNet18Name, model.Architecture);
        Assert.AreEqual((3, Size, Size), (model.Channels, model.Height, model.Width));
        CollectionAssert.AreEqual(new[] { 0f, 0f, 0f }, model.Mean.ToArray(), "no data standardization: the backbone's is in the network");
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f }, model.Std.ToArray());
        var trained = model.Network.state_dict();
        int compared = 0;
        foreach (var (name, value) in _checkpointState)
        {
            if (name.StartsWith("fc.", StringComparison.Ordinal)) continue;
            Assert.IsTrue(Identical(value, trained["backbone." + name]), $"{name} differs from the checkpoint although the backbone was frozen");
            compared++;
        }
        Assert.AreEqual(trained.Count - 4, compared, "every backbone entry but the head (2) and the preprocessing buffers (2)");
        CollectionAssert.AreEqual(new long[] { 3, 512 }, trained["backbone.fc.weight"].shape, "a new head sized to the classes");
        Assert.IsTrue(model.Network.parameters().All(p => p.requires_grad), "requires_grad restored");
        var scores = TestData.Scores(_model.Transform(_train));
        Assert.AreEqual(12, scores.Length);
        Assert.IsTrue(scores.All(row => row.Length == 3 && row.All(float.IsFinite)));
    }

    [TestMethod]
    public void ThePreprocessingInsideTheNetworkIsTorchVisionsImageNetNormalization()
    {
        var network = (PretrainedImageNetwork)Classifier(_model).Model.Network;
        var preprocessing = network.Preprocessing;
        Assert.IsFalse(preprocessing.Bgr, "RGB");
        Assert.AreEqual(1.0, preprocessing.PixelScale);
        Assert.IsTrue(preprocessing.DividesByStd && preprocessing.AcceptsAnySize);
        using var generator = new Generator(5, CPU);
        using var rgb = rand(new long[] { 2, 3, Size, Size }, generator: generator);
        using var torchVision = ResNetPreprocessing.TorchVisionImageNet();
        using var expected = torchVision.Apply(rgb);
        using var actual = preprocessing.call(rgb.to(Classifier(_model).Model.Device));
        Assert.IsTrue(Identical(expected, actual), "(x − mean) / std with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)");
        var backbone = PretrainedBackbone.FromPyTorch("any.pth", TorchVisionResNet.ResNet50);
        Assert.AreEqual((PretrainedBackbone.TorchVisionResNet50Name, 2048, false, 1.0), (backbone.Name, backbone.EmbeddingSize, backbone.Bgr, backbone.PixelScale));
        CollectionAssert.AreEqual(new[] { 0.485f, 0.456f, 0.406f }, backbone.ChannelMeans!.ToArray());
        CollectionAssert.AreEqual(new[] { 0.229f, 0.224f, 0.225f }, backbone.ChannelStds.ToArray());
    }

    [TestMethod]
    public void ZipLoadsAndScoresIdenticallyAfterTheCheckpointIsDeleted()
    {
        Assert.IsFalse(File.Exists(_checkpoint), "the checkpoint the backbone was read from is deleted");
        var loaded = _ml.Model.Load(_zip, out _);
        var test = _ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 3));
        var expected = TestData.Scores(_model.Transform(test));
        var actual = TestData.Scores(loaded.Transform(test));
        Assert.AreEqual(9, expected.Length);
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"row {i}");
        Assert.AreEqual(PretrainedBackbone.TorchVisionResNet18Name, Classifier(loaded).Model.Architecture);
        Assert.ThrowsExactly<ArgumentException>(() => FlatMinimaModelRegistry.Register(PretrainedBackbone.TorchVisionResNet18Name, (c, k) => nn.Linear(c, k)));
    }

    [TestMethod]
    public void AKeyThatDoesNotFitFailsAtFitStartNamingTheKeyAndTheFile()
    {
        string path = Path.Combine(_folder, "bad-keys.safetensors");
        var state = _checkpointState.Where(e => e.Key != "layer2.1.bn2.running_var").ToDictionary(e => e.Key, e => e.Value);
        using var extra = zeros(3, 4);
        state["layer5.0.conv1.weight"] = extra;
        Safetensors.SaveStateDict(path, state);
        try
        {
            // The file exists: creating the trainer succeeds; Fit reads the checkpoint before any image is decoded.
            var estimator = TestData.Pipeline(_ml, HeadOnlyOptions(PretrainedBackbone.FromPyTorch(path, TorchVisionResNet.ResNet18)));
            var e = Assert.ThrowsExactly<InvalidDataException>(() => estimator.Fit(_train));
            StringAssert.Contains(e.Message, path);
            StringAssert.Contains(e.Message, "missing key 'layer2.1.bn2.running_var' (shape [128])");
            StringAssert.Contains(e.Message, "unexpected key 'layer5.0.conv1.weight' (shape [3, 4])");

            var wrong = Assert.ThrowsExactly<InvalidDataException>(() =>
                TestData.Pipeline(_ml, HeadOnlyOptions(PretrainedBackbone.FromPyTorch(path, TorchVisionResNet.ResNet50))).Fit(_train));
            StringAssert.Contains(wrong.Message, "bottleneck-block ResNet [3, 4, 6, 3]");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AMissingCheckpointFailsWhenTheTrainerIsCreatedNamingThePath()
    {
        string absent = Path.Combine(_folder, "absent", "resnet18.pth");
        var e = Assert.ThrowsExactly<FileNotFoundException>(() =>
            _ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(HeadOnlyOptions(PretrainedBackbone.FromPyTorch(absent, TorchVisionResNet.ResNet18))));
        StringAssert.Contains(e.Message, absent);
        Assert.AreEqual(absent, e.FileName);
        var featurizer = Assert.ThrowsExactly<FileNotFoundException>(() =>
            _ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", PretrainedBackbone.FromPyTorch(absent, TorchVisionResNet.ResNet18)));
        StringAssert.Contains(featurizer.Message, absent);
    }

    [TestMethod]
    public void FromModelStartsANewTaskFromTheTrainedBackboneAndItsZip()
    {
        var twoClasses = _ml.Data.LoadFromEnumerable(TestData.Load("train", new[] { "Trouser", "Sneaker" }, 4, skip: 4));
        var fromModel = PretrainedBackbone.FromModel(Classifier(_model));
        Assert.AreEqual(PretrainedBackbone.TorchVisionResNet18Name, fromModel.Name);
        Assert.AreEqual((Size, Size), (fromModel.DefaultInputHeight, fromModel.DefaultInputWidth), "the trained model's size");
        var options = HeadOnlyOptions(fromModel);
        (options.ImageHeight, options.ImageWidth) = (null, null);
        var model = TestData.Pipeline(_ml, options).Fit(twoClasses);
        var classifier = Classifier(model).Model;
        Assert.AreEqual((PretrainedBackbone.TorchVisionResNet18Name, 2, Size, Size), (classifier.Architecture, classifier.ClassCount, classifier.Height, classifier.Width));
        var trained = classifier.Network.state_dict();
        foreach (var (name, value) in Classifier(_model).Model.Network.state_dict())
            if (!name.StartsWith("backbone.fc.", StringComparison.Ordinal))
                Assert.IsTrue(Identical(value, trained[name]), $"{name} is not the trained model's");

        // From the saved zip (which reads no checkpoint): the same backbone.
        using var fromZip = PretrainedBackbone.FromModel(_ml, _zip).CreateNetwork(2, Size, Size, headSeed: 1);
        using var fromTransformer = fromModel.CreateNetwork(2, Size, Size, headSeed: 1);
        var a = fromZip.state_dict();
        foreach (var (name, value) in fromTransformer.state_dict()) Assert.IsTrue(Identical(value, a[name]), name);

        // As the featurizer's backbone: the trained model's embeddings, at its size by default.
        var featurizer = _ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", fromModel, batchSize: 4).Fit(_train);
        Assert.AreEqual((Size, Size, 512), (featurizer.Source.Height, featurizer.Source.Width, featurizer.EmbeddingSize));
        var features = TestData.Scores(featurizer.Transform(_train), "Features");
        var expected = TestData.Scores(_ml.Transforms.FlatMinimaFeaturizeImage("Features", "ImageSource", Classifier(_model), batchSize: 4).Fit(_train).Transform(_train), "Features");
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], features[i], $"row {i}");

        // A model trained from random weights has no pretrained backbone to take.
        var plain = TestData.Pipeline(_ml, TestData.FastOptions(epochs: 1, batchSize: 4, change: o => (o.ImageHeight, o.ImageWidth) = (Size, Size))).Fit(twoClasses);
        var e = Assert.ThrowsExactly<ArgumentException>(() => PretrainedBackbone.FromModel(Classifier(plain)));
        StringAssert.Contains(e.Message, "not one built on a pretrained Backbone");
    }

    // Seeded weights and non-trivial BatchNorm statistics, so a load that skipped or mixed up an entry would show.
    private static ImageNetResNet Randomized(ImageNetResNet network, long seed)
    {
        ParameterInitialization.Reset(network, seed);
        using var generator = new Generator((ulong)seed + 1000, CPU);
        using var noGrad = no_grad();
        long count = 1;
        foreach (var norm in network.modules().OfType<BatchNorm2d>())
        {
            long c = norm.weight!.shape[0];
            using (var w = rand(new[] { c }, generator: generator).add_(0.5)) norm.weight.copy_(w);
            using (var b = randn(new[] { c }, generator: generator).mul_(0.1)) norm.bias!.copy_(b);
            using (var m = randn(new[] { c }, generator: generator).mul_(0.1)) norm.running_mean!.copy_(m);
            using (var v = rand(new[] { c }, generator: generator).add_(0.5)) norm.running_var!.copy_(v);
            norm.num_batches_tracked!.fill_(count++);
        }
        network.eval();
        return network;
    }

    // Same dtype, shape and bytes.
    private static bool Identical(Tensor a, Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using var x = a.detach().contiguous().cpu();
        using var y = b.detach().contiguous().cpu();
        return x.bytes.SequenceEqual(y.bytes);
    }
}
