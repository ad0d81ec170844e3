using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// Fine-tuning the imported ResNet-18 (<see cref="PretrainedBackbone"/>) with <see cref="FineTuningOptions"/>: frozen
/// parts stay bit-identical under SAM and every averager, the backbone learning-rate factor scales the backbone's
/// steps, and the network's state (mean image included) rebuilds without the ONNX files. Inputs are 32×32 to stay fast.
/// </summary>
[TestClass]
public sealed class PretrainedFineTuningTests
{
    private const int Size = 32;

    private static TensorDataset Images(int n = 8, int classes = 4)
    {
        using var generator = new Generator(5, CPU);
        var x = rand(new long[] { n, 3, Size, Size }, generator: generator);
        var y = arange(n, ScalarType.Int64).remainder(classes);
        return new TensorDataset(x, y);
    }

    private static PretrainedImageNetwork Network(int classes = 4) => PretrainedBackbone.ResNet18ImageNet().CreateNetwork(classes, Size, Size, headSeed: 3);

    private static Dictionary<string, Tensor> Snapshot(nn.Module model) =>
        model.state_dict().ToDictionary(e => e.Key, e => e.Value.detach().clone());

    private static ClassifierTrainingOptions Options(FineTuningOptions fineTuning, GradientStepOptions? step = null, WeightAveragingOptions? averaging = null) => new()
    {
        Epochs = 2, BatchSize = 4, LearningRate = 0.05, FineTuning = fineTuning, GradientStep = step, Averaging = averaging, TuneGlibcMalloc = false,
    };

    private static void AssertFrozen(Dictionary<string, Tensor> before, nn.Module model, Func<string, bool> frozen, Func<string, bool> mustChange)
    {
        var after = model.state_dict();
        int checkedFrozen = 0, changed = 0;
        foreach (var (name, value) in before)
        {
            if (frozen(name))
            {
                Assert.IsTrue(Same(value, after[name]), $"{name} changed although frozen");
                checkedFrozen++;
            }
            else if (mustChange(name) && !Same(value, after[name])) changed++;
        }
        Assert.IsTrue(checkedFrozen > 100, $"only {checkedFrozen} frozen entries checked");
        Assert.IsTrue(changed > 0, "nothing trainable changed");
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static bool IsHead(string name) => name.StartsWith("backbone.fc.", StringComparison.Ordinal);

    [TestMethod]
    [DataRow("sam")]
    [DataRow("swa")]
    [DataRow("sam+ema-buffers")]
    [DataRow("asam+swad")]
    [DataRow("sagd+ema")]
    public void HeadOnlyLeavesEveryBackboneParameterAndBufferBitIdentical(string method)
    {
        var data = Images();
        using var network = Network();
        var before = Snapshot(network);
        var (step, averaging) = method switch
        {
            "sam" => ((GradientStepOptions?)SharpnessAwareOptions.Sam(), (WeightAveragingOptions?)null),
            "swa" => (null, WeightAveragingOptions.Swa(startEpoch: 1)),
            "sam+ema-buffers" => (SharpnessAwareOptions.Sam(), WeightAveragingOptions.Ema(0.9, averageBuffers: true)),
            "sagd+ema" => (SharpnessAwareOptions.SaGd(2), WeightAveragingOptions.Ema(0.9)),
            _ => (SharpnessAwareOptions.Asam(), WeightAveragingOptions.Swad(evaluationFrequency: 1, optimumPatience: 1)),
        };
        var reports = new ClassifierTrainer(Options(FineTuningOptions.HeadOnly(), step, averaging), CPU).Train(network, data, averaging is SwadOptions ? data : null);
        Assert.AreEqual(2, reports.Count);
        AssertFrozen(before, network, name => !IsHead(name), IsHead);
        Assert.IsTrue(network.parameters().All(p => p.requires_grad), "requires_grad is restored after training");
        foreach (var t in before.Values) t.Dispose();
    }

    [TestMethod]
    public void LastStageWithFrozenBatchNormTrainsLayer4OnlyAndKeepsEveryRunningStatisticThroughSwa()
    {
        var data = Images();
        using var network = Network();
        var before = Snapshot(network);
        var options = Options(FineTuningOptions.LastStages(1, freezeBatchNorm: true), SharpnessAwareOptions.Sam(), WeightAveragingOptions.Swa(startEpoch: 1));
        new ClassifierTrainer(options, CPU).Train(network, data);
        bool IsStatistic(string name) => name.EndsWith("running_mean") || name.EndsWith("running_var") || name.EndsWith("num_batches_tracked");
        AssertFrozen(before, network, name => IsStatistic(name) || (!IsHead(name) && !name.StartsWith("backbone.layer4.", StringComparison.Ordinal)),
            name => name.StartsWith("backbone.layer4.", StringComparison.Ordinal) && name.EndsWith("weight"));
        foreach (var t in before.Values) t.Dispose();
    }

    [TestMethod]
    public void FullTrainingWithoutFreezeUpdatesBatchNormStatistics()
    {
        var data = Images();
        using var network = Network();
        using var before = network.state_dict()["backbone.bn1.running_mean"].clone();
        new ClassifierTrainer(Options(FineTuningOptions.Full()) with { Epochs = 1 }, CPU).Train(network, data);
        Assert.IsFalse(Same(before, network.state_dict()["backbone.bn1.running_mean"]), "without a freeze the stem's statistics train");
    }

    [TestMethod]
    [DataRow(BaseOptimizerKind.Sgd)]
    [DataRow(BaseOptimizerKind.AdamW)]
    public void BackboneLearningRateFactorScalesTheBackboneStepOnly(BaseOptimizerKind optimizer)
    {
        var data = Images(4);
        Dictionary<string, Tensor> Delta(double factor)
        {
            using var network = Network();
            var before = Snapshot(network);
            var options = Options(FineTuningOptions.Full(factor, freezeBatchNorm: true)) with
            {
                Epochs = 1, Momentum = 0, WeightDecay = 0, Schedule = LearningRateSchedule.Constant(), Optimizer = optimizer,
                LearningRate = optimizer == BaseOptimizerKind.AdamW ? 1e-3 : 0.05,
            };
            new ClassifierTrainer(options, CPU).Train(network, data);
            var after = network.state_dict();
            return before.ToDictionary(e => e.Key, e => after[e.Key].sub(e.Value));
        }
        var full = Delta(1);
        var tenth = Delta(0.1);
        foreach (var name in new[] { "backbone.fc.weight", "backbone.layer4.2.conv2.weight", "backbone.conv1.weight" })
        {
            double expected = IsHead(name) ? 1 : 0.1;
            double ratio = tenth[name].norm().item<float>() / full[name].norm().item<float>();
            Assert.AreEqual(expected, ratio, 1e-3, $"{name}: step ratio");
            Assert.IsTrue(full[name].norm().item<float>() > 0, $"{name} moved");
        }
    }

    [TestMethod]
    public void ResumingAFineTuningRunWithTwoParameterGroupsFromItsCheckpointGivesTheUninterruptedResult()
    {
        var data = Images();
        var options = Options(FineTuningOptions.LastStages(1, backboneLearningRateFactor: 0.1), SharpnessAwareOptions.Sam());
        using var uninterrupted = Network();
        new ClassifierTrainer(options, CPU).Train(uninterrupted, data);

        string folder = Path.Combine(Path.GetTempPath(), $"flatminima-finetune-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            string path = Path.Combine(folder, "run.checkpoint");
            using var cancel = new System.Threading.CancellationTokenSource();
            using (var first = Network())
            {
                var run = options with { CheckpointPath = path, CancellationToken = cancel.Token, Progress = _ => cancel.Cancel() };
                Assert.ThrowsExactly<OperationCanceledException>(() => new ClassifierTrainer(run, CPU).Train(first, data));
            }
            Assert.IsTrue(File.Exists(path));
            using var resumed = Network();
            new ClassifierTrainer(options with { CheckpointPath = path }, CPU).Train(resumed, data, resumeFrom: path);
            var expected = uninterrupted.state_dict();
            foreach (var (name, value) in resumed.state_dict())
                Assert.IsTrue(Same(expected[name], value), $"{name} differs after resuming");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void FineTuningANetworkWithoutBackboneNamesTheOption()
    {
        var data = Images();
        using var network = ImageClassifierModels.Create(ImageClassifierArchitecture.SmallCnn, 3, 4, Size, Size);
        var e = Assert.ThrowsExactly<ArgumentException>(() => new ClassifierTrainer(Options(FineTuningOptions.HeadOnly()), CPU).Train(network, data));
        Assert.AreEqual("FineTuning", e.ParamName);
        var stages = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassifierTrainer(Options(FineTuningOptions.LastStages(0)), CPU));
        Assert.AreEqual("FineTuning.TrainableStages", stages.ParamName);
        using var resnet = Network();
        var tooMany = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassifierTrainer(Options(FineTuningOptions.LastStages(6)), CPU).Train(resnet, data));
        Assert.AreEqual("FineTuning.TrainableStages", tooMany.ParamName);
    }

    [TestMethod]
    public void NetworkStateRebuildsFromTheSkeletonWithoutTheFilesAndMatchesTheImportedPreprocessing()
    {
        using var network = Network();
        network.eval();
        using var stream = new MemoryStream();
        network.save(new BinaryWriter(stream));
        stream.Position = 0;
        using var skeleton = PretrainedBackbone.CreateSkeleton(PretrainedBackbone.ResNet18ImageNetName, 4, Size, Size);
        skeleton.load(new BinaryReader(stream));
        skeleton.eval();
        var data = Images(2);
        using var a = network.call(data.Inputs);
        using var b = skeleton.call(data.Inputs);
        Assert.IsTrue(Same(a, b), "the loaded network computes the same logits");

        // At 224 the module equals the preprocessing graph's output (RGB 0–255 → BGR minus the mean image).
        using var full = PretrainedBackbone.ResNet18ImageNet().CreateNetwork(2, 224, 224);
        using var preprocessing = ResNetPreprocessing.Read();
        using var rgb = rand(1, 3, 224, 224);
        using var ours = full.Preprocessing.call(rgb);
        using var theirs = preprocessing.Apply(rgb.mul(255));
        Assert.IsTrue(ours.allclose(theirs, 1e-4, 1e-3));
        // Gray input is replicated.
        using var gray = rand(1, 1, Size, Size);
        using var fromGray = network.Preprocessing.call(gray);
        using var fromRgb = network.Preprocessing.call(gray.expand(-1, 3, -1, -1));
        Assert.IsTrue(Same(fromGray, fromRgb));
    }

    [TestMethod]
    public void FromNetworkKeepsTheTrainedBackboneWithANewHeadAndResizesTheMeanImage()
    {
        using var trained = Network();
        var backbone = PretrainedBackbone.FromNetwork(PretrainedBackbone.ResNet18ImageNetName, trained);
        Assert.AreEqual((PretrainedBackbone.ResNet18ImageNetName, Size, Size), (backbone.Name, backbone.DefaultInputHeight, backbone.DefaultInputWidth));
        backbone.CheckFiles();   // reads no file
        using var same = backbone.CreateNetwork(2, Size, Size, headSeed: 7);
        Assert.IsFalse(same.training, "eval mode");
        var state = same.state_dict();
        int compared = 0;
        foreach (var (name, value) in trained.state_dict())
        {
            if (name.StartsWith("backbone.fc.", StringComparison.Ordinal)) continue;
            Assert.IsTrue(Same(value, state[name]), $"{name} is not the trained network's");
            compared++;
        }
        Assert.AreEqual(state.Count - 2, compared);
        CollectionAssert.AreEqual(new long[] { 2, 512 }, state["backbone.fc.weight"].shape, "a new head sized to the new classes");
        using var larger = backbone.CreateNetwork(2, 48, 40);
        Assert.AreEqual((48L, 40L), (larger.Preprocessing.Height, larger.Preprocessing.Width), "the mean image is resized");
        var layout = Assert.ThrowsExactly<ArgumentException>(() => PretrainedBackbone.FromNetwork(PretrainedBackbone.TorchVisionResNet18Name, trained));
        StringAssert.Contains(layout.Message, "does not have the layout of the backbone TorchVisionResNet18");
    }

    [TestMethod]
    public void MissingOnnxFileNamesThePackage()
    {
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => PretrainedBackbone.ResNet18ImageNet(Path.Combine(Path.GetTempPath(), "absent", "ResNet18.onnx")).CreateNetwork(2, Size, Size));
        StringAssert.Contains(e.Message, DnnImageModelFiles.PackageId);
    }
}
