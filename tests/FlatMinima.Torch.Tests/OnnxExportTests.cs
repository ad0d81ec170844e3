using System;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Export;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using Tensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// <see cref="OnnxExporter"/>: every built-in architecture exported and run in ONNX Runtime gives TorchSharp's
/// probabilities (≤ 1e-5, max abs) and predicted classes on a batch. BatchNorm statistics and affine parameters are
/// randomized so that BatchNorm is not the identity, and the heads are scaled so the probabilities are far from uniform.
/// Inputs are small to keep the suite fast.
/// </summary>
[TestClass]
public sealed class OnnxExportTests
{
    private const double ProbabilityTolerance = 1e-5;

    [TestMethod]
    public void SmallCnnWithStandardizationInTheGraph()
    {
        using var network = new SmallCnn(inChannels: 2, numClasses: 5, height: 12, width: 14);
        var options = new OnnxExportOptions(2, 12, 14) { Mean = new[] { 0.3f, 0.6f }, Std = new[] { 0.2f, 0.5f } };
        using var images = Images(6, 2, 12, 14, seed: 1);
        using var standardized = images.sub(tensor(new[] { 0.3f, 0.6f }).view(1, 2, 1, 1)).div_(tensor(new[] { 0.2f, 0.5f }).view(1, 2, 1, 1));
        AssertSameAsTorch(network, options, images, standardized);
    }

    [TestMethod]
    public void ResNet20AtAnOddSize()
    {
        using var network = SmallImageResNet.ResNet20(inChannels: 3, numClasses: 4);
        // One BatchNorm with a large epsilon and running variances of its size, so the graph must carry each layer's epsilon.
        RandomizeNorms(network, seed: 11);
        var stemNorm = network.modules().OfType<BatchNorm2d>().First();
        stemNorm.eps = 1e-2;
        using (no_grad()) stemNorm.running_var!.mul_(0.02);   // 0.01–0.03
        using var images = Images(4, 3, 11, 9, seed: 2);
        AssertSameAsTorch(network, new OnnxExportOptions(3, 11, 9), images, images, randomizeNorms: false);
    }

    [TestMethod]
    public void ResNet18ForSmallImages()
    {
        using var network = SmallImageResNet.ResNet18(inChannels: 1, numClasses: 3);
        using var images = Images(3, 1, 8, 8, seed: 3);
        AssertSameAsTorch(network, new OnnxExportOptions(1, 8, 8), images, images);
    }

    [TestMethod]
    public void PretrainedMLNetResNet18WithBeginHeavyPaddingAtOddStageSizes()
    {
        // 40×42: the stem gives 20×21, the max pool 10×10, stage 2 5×5, so stage 3's stride-2 shortcut crops an odd size.
        using var network = PretrainedBackbone.ResNet18ImageNet().CreateNetwork(4, 40, 42, headSeed: 4);
        using var rgb = Images(3, 3, 40, 42, seed: 4);
        AssertSameAsTorch(network, new OnnxExportOptions(3, 40, 42), rgb, rgb, randomizeNorms: false, headScale: 0.3);
        // Gray input is replicated to RGB inside the graph, as the network does.
        using var gray = Images(2, 1, 40, 42, seed: 5);
        AssertSameAsTorch(network, new OnnxExportOptions(1, 40, 42), gray, gray, randomizeNorms: false, headScale: 0.3);
    }

    [TestMethod]
    public void TorchVisionResNet18And50WithChannelDeviations()
    {
        using var resNet18 = PretrainedBackbone.CreateSkeleton(PretrainedBackbone.TorchVisionResNet18Name, 3, 33, 35);
        using var images = Images(2, 3, 33, 35, seed: 6);
        AssertSameAsTorch(resNet18, new OnnxExportOptions(3, 33, 35), images, images);
        using var resNet50 = PretrainedBackbone.CreateSkeleton(PretrainedBackbone.TorchVisionResNet50Name, 3, 32, 32);
        using var small = Images(2, 3, 32, 32, seed: 7);
        AssertSameAsTorch(resNet50, new OnnxExportOptions(3, 32, 32), small, small);
    }

    [TestMethod]
    public void BatchDimensionIsFreeAndOpsetIs12()
    {
        using var network = new SmallCnn(1, 3, 10, 10);
        var model = OnnxExporter.ToModel(network, new OnnxExportOptions(1, 10, 10));
        Assert.AreEqual(OnnxExporter.OpsetVersion, (int)model.OpsetImport.Single().Version);
        Assert.AreEqual(12, OnnxExporter.OpsetVersion);
        var input = model.Graph.Input.Single();
        Assert.AreEqual("input", input.Name);
        Assert.AreEqual("batch", input.Type.TensorType.Shape.Dim[0].DimParam);
        CollectionAssert.AreEqual(new[] { "logits", "probabilities" }, model.Graph.Output.Select(o => o.Name).ToArray());
        using var session = new InferenceSession(model.ToByteArray());
        foreach (int batch in new[] { 1, 7 })
        {
            using var images = Images(batch, 1, 10, 10, seed: batch);
            Assert.AreEqual(batch * 3, RunOrt(session, images).Probabilities.Length);
        }
    }

    [TestMethod]
    public void CustomNetworkIsRefusedNamingItsModules()
    {
        using var network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3));
        var e = Assert.ThrowsExactly<NotSupportedException>(() => OnnxExporter.ToModel(network, new OnnxExportOptions(1, 10, 10)));
        StringAssert.Contains(e.Message, "not one of the built-in architectures");
        StringAssert.Contains(e.Message, "GELU");
        StringAssert.Contains(e.Message, "cannot tell what a custom module's forward computes");
        Assert.IsFalse(OnnxNetworkEmitter.IsSupported(network, out string reason));
        StringAssert.Contains(reason, "Sequential");
    }

    [TestMethod]
    public void CustomHeadIsRefusedNamingIt()
    {
        using var network = new ImageNetResNet(ImageNetResNet.ResNet18Blocks, nn.Sequential(nn.Linear(512, 8), nn.ReLU(), nn.Linear(8, 2)));
        var e = Assert.ThrowsExactly<NotSupportedException>(() => OnnxExporter.ToModel(network, new OnnxExportOptions(3, 32, 32)));
        StringAssert.Contains(e.Message, "classification head is a 'Sequential'");
    }

    [TestMethod]
    public void MismatchedNormalizationIsRefused()
    {
        using var network = new SmallCnn(2, 3, 10, 10);
        var e = Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.ToModel(network, new OnnxExportOptions(2, 10, 10) { Mean = new[] { 0f }, Std = new[] { 1f } }));
        StringAssert.Contains(e.Message, "need 2 values");
    }

    [TestMethod]
    public void RequestedNamesAreKeptOrRefusedNamingTheOption()
    {
        using var network = new SmallCnn(1, 3, 10, 10);
        // 'fc' and 'conv1' are the network's own module names: the graph's values must not take them over.
        var model = OnnxExporter.ToModel(network, new OnnxExportOptions(1, 10, 10) { InputName = "conv1", LogitsName = "fc", ProbabilitiesName = "p" });
        Assert.AreEqual("conv1", model.Graph.Input.Single().Name);
        CollectionAssert.AreEqual(new[] { "fc", "p" }, model.Graph.Output.Select(o => o.Name).ToArray());
        using (var session = new InferenceSession(model.ToByteArray()))
            CollectionAssert.AreEquivalent(new[] { "fc", "p" }, session.OutputMetadata.Keys.ToArray());

        var same = Assert.ThrowsExactly<ArgumentException>(() =>
            OnnxExporter.ToModel(network, new OnnxExportOptions(1, 10, 10) { LogitsName = "out", ProbabilitiesName = "out" }));
        StringAssert.Contains(same.Message, "LogitsName");
        StringAssert.Contains(same.Message, "ProbabilitiesName");
        var input = Assert.ThrowsExactly<ArgumentException>(() =>
            OnnxExporter.ToModel(network, new OnnxExportOptions(1, 10, 10) { InputName = "logits" }));
        StringAssert.Contains(input.Message, "InputName");
        var empty = Assert.ThrowsExactly<ArgumentException>(() =>
            OnnxExporter.ToModel(network, new OnnxExportOptions(1, 10, 10) { ProbabilitiesName = "" }));
        StringAssert.Contains(empty.Message, "ProbabilitiesName");
    }

    [TestMethod]
    public void InputGeometryTheNetworkCannotReadIsRefusedNamingTheOption()
    {
        using var cnn = new SmallCnn(inChannels: 2, numClasses: 3, height: 12, width: 14);
        var channels = Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.ToModel(cnn, new OnnxExportOptions(3, 12, 14)));
        StringAssert.Contains(channels.Message, "OnnxExportOptions.Channels");
        var size = Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.ToModel(cnn, new OnnxExportOptions(2, 16, 14)));
        StringAssert.Contains(size.Message, "OnnxExportOptions.Height");
        using var resNet = SmallImageResNet.ResNet20(inChannels: 1, numClasses: 2);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.ToModel(resNet, new OnnxExportOptions(3, 8, 8))).Message, "OnnxExportOptions.Channels");
        using var imageNet = new ImageNetResNet(ImageNetResNet.ResNet18Blocks, nn.Linear(512, 2));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.ToModel(imageNet, new OnnxExportOptions(3, 31, 40))).Message, "at least 32");
    }

    [TestMethod]
    public void SavesAFileThatOnnxRuntimeLoads()
    {
        using var network = SmallImageResNet.ResNet20(1, 2);
        network.eval();
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-export-{Guid.NewGuid():N}.onnx");
        try
        {
            OnnxExporter.Save(network, new OnnxExportOptions(1, 8, 8), path);
            using var session = new InferenceSession(path);
            Assert.AreEqual("input", session.InputMetadata.Keys.Single());
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Exports <paramref name="network"/> (eval mode), runs <paramref name="images"/> in ONNX Runtime and compares with the
    /// network's softmax on <paramref name="networkInput"/> (the images as the network receives them).
    /// </summary>
    internal static void AssertSameAsTorch(nn.Module<Tensor, Tensor> network, OnnxExportOptions options, Tensor images, Tensor networkInput, bool randomizeNorms = true, double headScale = 8)
    {
        if (randomizeNorms) RandomizeNorms(network, seed: 11);
        ScaleHead(network, headScale);
        network.eval();
        using var scope = NewDisposeScope();
        Tensor expectedLogits;
        using (no_grad()) expectedLogits = network.call(networkInput);
        var expected = nn.functional.softmax(expectedLogits, 1);
        var model = OnnxExporter.ToModel(network, options);
        using var session = new InferenceSession(model.ToByteArray());
        var (logits, probabilities) = RunOrt(session, images);
        var ours = tensor(probabilities, expected.shape);
        double maxAbs = ours.sub(expected).abs().max().item<float>();
        Console.WriteLine($"{network.GetType().Name} {options.Channels}×{options.Height}×{options.Width}: max |p_ORT − p_Torch| = {maxAbs:E2}, " +
                          $"largest probability {expected.max().item<float>():F3}");
        Assert.IsLessThanOrEqualTo(ProbabilityTolerance, maxAbs, "max abs difference of the probabilities");
        CollectionAssert.AreEqual(expected.argmax(1).data<long>().ToArray(), ours.argmax(1).data<long>().ToArray(), "predicted classes");
        double logitError = tensor(logits, expected.shape).sub(expectedLogits).abs().max().item<float>();
        double logitScale = Math.Max(1, expectedLogits.abs().max().item<float>());
        Console.WriteLine($"  max |logit_ORT − logit_Torch| = {logitError:E2} (largest |logit| {logitScale:F2})");
        Assert.IsLessThanOrEqualTo(1e-5 * logitScale, logitError, "max abs difference of the logits, relative to the largest logit");
    }

    internal static (float[] Logits, float[] Probabilities) RunOrt(InferenceSession session, Tensor images)
    {
        var values = new DenseTensor(images.contiguous().data<float>().ToArray(), images.shape.Select(d => (int)d).ToArray());
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.Single(), values) });
        return (results.Single(r => r.Name == "logits").AsTensor<float>().ToArray(), results.Single(r => r.Name == "probabilities").AsTensor<float>().ToArray());
    }

    internal static Tensor Images(int n, int channels, int height, int width, int seed)
    {
        using var generator = new Generator((ulong)seed, CPU);
        return rand(new long[] { n, channels, height, width }, generator: generator);
    }

    // Running statistics and affine parameters away from their initial values, so BatchNorm is not the identity.
    internal static void RandomizeNorms(nn.Module network, int seed)
    {
        using var generator = new Generator((ulong)seed, CPU);
        using var noGrad = no_grad();
        foreach (var norm in network.modules().OfType<BatchNorm2d>())
        {
            long c = norm.running_mean!.shape[0];
            norm.running_mean.copy_(randn(new long[] { c }, generator: generator).mul_(0.1));
            norm.running_var!.copy_(rand(new long[] { c }, generator: generator).add_(0.5));
            norm.weight!.copy_(rand(new long[] { c }, generator: generator).add_(0.5));
            norm.bias!.copy_(randn(new long[] { c }, generator: generator).mul_(0.1));
        }
    }

    // Scaled head weights set the spread of the logits, so the probabilities differ clearly between classes without saturating.
    private static void ScaleHead(nn.Module network, double scale)
    {
        using var noGrad = no_grad();
        var head = network.modules().OfType<Linear>().Last();
        head.weight!.mul_(scale);
    }
}
