using System;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using Onnx;
using TorchSharp;
using Tensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// The ImageNet ResNet-18 imported from ML.NET's <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package (referenced by
/// this project only, so the .onnx files are in the output folder) against ONNX Runtime running the same files.
/// </summary>
[TestClass]
public sealed class PretrainedResNet18Tests
{
    private const double Tolerance = 1e-4;
    private static ImageNetResNet network = null!;
    private static ResNetPreprocessing preprocessing = null!;

    [ClassInitialize]
    public static void Import(TestContext _)
    {
        network = ResNet18OnnxImporter.Import(numClasses: 10);
        preprocessing = ResNetPreprocessing.Read();
    }

    [ClassCleanup]
    public static void Release()
    {
        network.Dispose();
        preprocessing.Dispose();
    }

    [TestMethod]
    public void FeaturesEqualOnnxRuntimeThroughBothFilesAt224()
    {
        using var rgb = Images(2, 224, seed: 1);
        using var ortPreprocess = Session(File.ReadAllBytes(DnnImageModelFiles.ResNetPreprocess()));
        using var ortNetwork = Session(File.ReadAllBytes(DnnImageModelFiles.ResNet18()));
        for (int i = 0; i < 2; i++)
        {
            using var image = rgb.narrow(0, i, 1);
            float[] prepared = Run(ortPreprocess, "OriginalInput", image);
            float[] expected = Run(ortNetwork, "Input247", tensor(prepared, image.shape));
            using var ours = network.Embed(preprocessing.Apply(image));
            AssertClose(expected, ours, $"image {i} at 224");
        }
    }

    [TestMethod]
    public void FeaturesEqualOnnxRuntimeAtOtherSizesIncludingAnOddOne()
    {
        // The file fixes its input at 1×3×224×224 and pools with a 7×7 AveragePool; with the dims freed and the pool made
        // global (what ImageNetResNet does), ONNX Runtime runs the same weights and CNTK pads at any size.
        using var ortNetwork = Session(AnySizeGraph());
        // 160: every stride-2 layer sees an even size (begin-heavy = symmetric). 193: the stem sees an odd size, so CNTK's
        // [3,3,2,2] pads give 96×96 where symmetric padding gives 97×97 (and the sizes entering stages 2–4 stay even,
        // so the graph still runs).
        foreach (int size in new[] { 160, 193 })
        {
            using var input = Prepared(Images(2, size, seed: size));
            float[] expected = Run(ortNetwork, "Input247", input);
            using var ours = network.Embed(input);
            AssertClose(expected, ours, $"size {size}");
        }
    }

    [TestMethod]
    public void BeginHeavyPaddingEqualsSymmetricAtEvenSizesOnly()
    {
        using var symmetric = new ImageNetResNet(network.BlocksPerStage, 10, StridedPadding.Symmetric);
        symmetric.load_state_dict(network.state_dict());
        symmetric.eval();
        using var even = Prepared(Images(1, 224, seed: 3));
        using (var a = network.Embed(even))
        using (var b = symmetric.Embed(even))
            Assert.AreEqual(0.0, a.sub(b).abs().max().ToDouble(), "224: identical windows, identical features");
        using var odd = Prepared(Images(1, 193, seed: 3));
        using (var a = network.Embed(odd))
        using (var b = symmetric.Embed(odd))
        {
            double difference = RelativeError(b, a);
            Console.WriteLine($"193: symmetric vs begin-heavy relative difference {difference:E2}");
            Assert.IsGreaterThan(1e-2, difference, "193: the padding differs, and so do the features");
        }
    }

    [TestMethod]
    public void PreprocessingReproducesTheOnnxGraph()
    {
        Assert.IsTrue(preprocessing.IsBgr);
        CollectionAssert.AreEqual(new[] { 2, 1, 0 }, preprocessing.ChannelOrder.ToArray());
        CollectionAssert.AreEqual(new long[] { 3, 224, 224 }, preprocessing.MeanImage.shape);
        float[] means = preprocessing.ChannelMeans.ToArray();
        Assert.AreEqual(103.06, means[0], 0.01, "B");
        Assert.AreEqual(115.90, means[1], 0.01, "G");
        Assert.AreEqual(123.15, means[2], 0.01, "R");

        using var session = Session(File.ReadAllBytes(DnnImageModelFiles.ResNetPreprocess()));
        using var image = Images(1, 224, seed: 5);
        float[] expected = Run(session, "OriginalInput", image);
        using var ours = preprocessing.Apply(image);
        CollectionAssert.AreEqual(expected, ours.data<float>().ToArray(), "the same float subtraction, bit for bit");
    }

    [TestMethod]
    public void ImportedNetworkIsInEvalModeWithTorchVisionNamesAndANewHead()
    {
        Assert.IsFalse(network.training);
        Assert.AreEqual(StridedPadding.BeginHeavy, network.Padding);
        var names = network.named_parameters().Select(p => p.name).ToList();
        CollectionAssert.Contains(names, "layer4.0.downsample.0.weight");
        CollectionAssert.Contains(names, "fc.weight");
        // ML.NET's file has 3 blocks in stage 4 (22 Conv, 9 Add): TorchVision's ResNet-18 backbone (11,176,512
        // parameters) plus one 512-wide block (2 × 512·512·9 + 2 × 2·512 = 4,720,640).
        CollectionAssert.AreEqual(new[] { 2, 2, 2, 3 }, network.BlocksPerStage.ToArray());
        CollectionAssert.AreEqual(ImageNetResNet.MLNetResNet18Blocks.ToArray(), network.BlocksPerStage.ToArray());
        long backbone = network.parameters().Sum(p => p.numel()) - (512 * 10 + 10);
        Assert.AreEqual(11_176_512 + 4_720_640, backbone);
        using var torchVision = ImageNetResNet.ResNet18(1000);
        Assert.AreEqual(11_689_512, torchVision.parameters().Sum(p => p.numel()), "TorchVision's resnet18 count");

        using var copy = ResNet18OnnxImporter.Import(numClasses: 3);
        using var old = copy.ReplaceHead(nn.Linear(ImageNetResNet.EmbeddingSize, 5));
        using var input = Prepared(Images(1, 64, seed: 2));
        using var logits = copy.call(input);
        CollectionAssert.AreEqual(new long[] { 1, 5 }, logits.shape);
        Assert.AreEqual(1, copy.named_parameters().Count(p => p.name == "fc.weight"));
    }

    [TestMethod]
    public void MissingFilesNameThePackage()
    {
        string empty = Directory.CreateTempSubdirectory("flatminima-onnx").FullName;
        try
        {
            var e = Assert.ThrowsExactly<FileNotFoundException>(() =>
                DnnImageModelFiles.Locate(null, DnnImageModelFiles.ResNet18RelativePath, empty));
            StringAssert.Contains(e.Message, "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1");
            StringAssert.Contains(e.Message, "DnnImageModels/ResNet18Onnx/ResNet18.onnx");
            var given = Assert.ThrowsExactly<FileNotFoundException>(() => ResNet18OnnxImporter.Import(2, Path.Combine(empty, "ResNet18.onnx")));
            StringAssert.Contains(given.Message, "Microsoft.ML.DnnImageFeaturizer.ResNet18");
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [TestMethod]
    public void ATamperedGraphNamesTheInitializerOrNode()
    {
        var model = ReadModel();
        var stemWeight = model.Graph.Initializer.Single(t => t.Name == model.Graph.Node[0].Input[1]);
        stemWeight.Dims[3] = 6;
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImportFrom(model));
        StringAssert.Contains(e.Message, $"initializer '{stemWeight.Name}'");
        StringAssert.Contains(e.Message, "expected [64, 3, 7, 7]");

        model = ReadModel();
        var pads = model.Graph.Node.First(n => n.OpType == "MaxPool").Attribute.Single(a => a.Name == "pads");
        pads.Ints[2] = 1;
        e = Assert.ThrowsExactly<InvalidDataException>(() => ImportFrom(model));
        StringAssert.Contains(e.Message, "MaxPool node 'Pooling255' has pads [1, 1, 1, 0]");
    }

    // Seeded smooth "photos" in 0–255: random 8×8 RGB upsampled bilinearly.
    private static Tensor Images(int count, int size, int seed)
    {
        using var generator = new Generator((ulong)seed, CPU);
        using var small = rand(new long[] { count, 3, 8, 8 }, generator: generator);
        using var scaled = small.mul(255);
        return nn.functional.interpolate(scaled, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false).clamp_(0, 255);
    }

    // BGR minus the per-channel means (the mean image is 224×224 only).
    private static Tensor Prepared(Tensor rgb)
    {
        using (rgb)
        using (var means = tensor(preprocessing.ChannelMeans.ToArray()).reshape(1, 3, 1, 1))
            return rgb.flip(1).sub_(means);
    }

    private static InferenceSession Session(byte[] model)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1 };
        return new InferenceSession(model, options);
    }

    private static float[] Run(InferenceSession session, string inputName, Tensor input)
    {
        var values = new DenseTensor(input.contiguous().data<float>().ToArray(), input.shape.Select(d => (int)d).ToArray());
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor(inputName, values) });
        return results.Single().AsTensor<float>().ToArray();
    }

    private static ModelProto ReadModel() => ModelProto.Parser.ParseFrom(File.ReadAllBytes(DnnImageModelFiles.ResNet18()));

    // ResNet18.onnx with batch, height and width free and the 7×7 AveragePool replaced by a GlobalAveragePool.
    private static byte[] AnySizeGraph()
    {
        var model = ReadModel();
        foreach (var value in new[] { model.Graph.Input.Single(i => i.Name == "Input247"), model.Graph.Output.Single() })
        {
            var dims = value.Type.TensorType.Shape.Dim;
            foreach (int d in new[] { 0, 2, 3 }) dims[d] = new TensorShapeProto.Types.Dimension { DimParam = $"d{d}" };
        }
        var pool = model.Graph.Node.Single(n => n.OpType == "AveragePool");
        pool.OpType = "GlobalAveragePool";
        pool.Attribute.Clear();
        return model.ToByteArray();
    }

    private static ImageNetResNet ImportFrom(ModelProto model)
    {
        string file = Path.Combine(Path.GetTempPath(), $"flatminima-tampered-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(file, model.ToByteArray());
        try { return ResNet18OnnxImporter.Import(2, file); }
        finally { File.Delete(file); }
    }

    private static void AssertClose(float[] expected, Tensor ours, string what)
    {
        using var reference = tensor(expected, ours.shape);
        double error = RelativeError(ours, reference);
        Console.WriteLine($"{what}: relative error {error:E2}");
        Assert.IsLessThanOrEqualTo(Tolerance, error, $"{what}: ‖ours − ORT‖ / ‖ORT‖");
    }

    private static double RelativeError(Tensor a, Tensor b)
    {
        using var difference = a.sub(b);
        return difference.norm().ToDouble() / b.norm().ToDouble();
    }
}
