using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using Tensor = TorchSharp.torch.Tensor;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// TorchVision-layout ResNet-18 and ResNet-50 state_dicts written in PyTorch's formats (torch.save zip archives and
/// safetensors, by TorchSharp.PyBridge in a temporary folder) load back bit for bit; wrong keys, shapes and files are
/// named and leave the network unchanged. Inputs are small (64×64) to keep the tests fast.
/// </summary>
[TestClass]
public sealed class PyTorchCheckpointTests
{
    private string folder = null!;

    [TestInitialize]
    public void CreateFolder() => folder = Directory.CreateTempSubdirectory("flatminima-pytorch").FullName;

    [TestCleanup]
    public void DeleteFolder() => Directory.Delete(folder, recursive: true);

    [TestMethod]
    public void FilesWrittenByPyTorchAreRead()
    {
        // Fixtures/pytorch-stem.pth: torch.save(stem.state_dict()) by PyTorch 1.13 (an OrderedDict with _metadata, in an
        // archive named after the file); pytorch-training-checkpoint.pth wraps it with the "module." prefix next to an
        // epoch, an SGD state (momentum buffers under integer keys) and an argparse.Namespace.
        using var scope = NewDisposeScope();
        foreach (var file in new[] { "pytorch-stem.pth", "pytorch-training-checkpoint.pth" })
        {
            var state = PyTorchCheckpoint.ReadStateDict(Path.Combine(AppContext.BaseDirectory, "Fixtures", file));
            CollectionAssert.AreEquivalent(
                new[] { "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked" },
                state.Keys.ToArray(), file);
            using var conv = arange(108, dtype: float32).reshape(4, 3, 3, 3).div_(100).sub_(0.5);
            Assert.IsTrue(Identical(conv, state["conv1.weight"]), $"{file}: conv1.weight");
            using var weight = tensor(new[] { 1f, 1.5f, 2f, 2.5f });
            using var bias = tensor(new[] { -0.25f, 0f, 0.25f, 0.5f });
            using var mean = tensor(new[] { 0.1f, 0.2f, 0.3f, 0.4f });
            using var variance = tensor(new[] { 1f, 2f, 3f, 4f });
            Assert.IsTrue(Identical(weight, state["bn1.weight"]), $"{file}: bn1.weight");
            Assert.IsTrue(Identical(bias, state["bn1.bias"]), $"{file}: bn1.bias");
            Assert.IsTrue(Identical(mean, state["bn1.running_mean"]), $"{file}: bn1.running_mean");
            Assert.IsTrue(Identical(variance, state["bn1.running_var"]), $"{file}: bn1.running_var");
            var count = state["bn1.num_batches_tracked"];
            Assert.AreEqual(ScalarType.Int64, count.dtype);
            Assert.AreEqual(0, count.Dimensions, "a 0-d tensor");
            Assert.AreEqual(7L, count.item<long>());
        }
    }

    [TestMethod]
    public void ResNet18TorchSaveRoundTripIsBitIdenticalWithAndWithoutTheCheckpointHead()
    {
        using var source = Randomized(ImageNetResNet.ResNet18(10), seed: 1);
        string path = Path.Combine(folder, "resnet18.pth");
        source.save_py(path);

        using var loaded = TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet18, numClasses: 10, useCheckpointHead: true);
        Assert.IsFalse(loaded.training, "loaded in eval mode");
        AssertStatesEqual(source, loaded);
        using var input = Input(2, 64, seed: 2);
        using (var expected = source.call(input))
        using (var actual = loaded.call(input))
        {
            CollectionAssert.AreEqual(new long[] { 2, 10 }, actual.shape);
            Assert.IsTrue(Identical(expected, actual), "identical logits");
        }

        // A new head of 3 classes from a seed: the backbone is the checkpoint's, the head is the seed's.
        using var replaced = TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet18, numClasses: 3, headSeed: 5);
        using (var expected = source.Embed(input))
        using (var actual = replaced.Embed(input))
            Assert.IsTrue(Identical(expected, actual), "identical embeddings");
        using var seededHead = nn.Linear(ImageNetResNet.EmbeddingSize, 3);
        ParameterInitialization.Reset(seededHead, 5);
        var head = (Linear)replaced.Head;
        Assert.IsTrue(Identical(head.weight!, seededHead.weight!), "fc.weight drawn from headSeed");
        Assert.IsTrue(Identical(head.bias!, seededHead.bias!), "fc.bias drawn from headSeed");
    }

    [TestMethod]
    public void ResNet50SafetensorsRoundTripHasTorchVisionNamesAndA2048WideEmbedding()
    {
        using var source = Randomized(ImageNetResNet.ResNet50(4), seed: 3);
        var names = source.state_dict().Keys.ToList();
        // TorchVision's resnet50 state_dict: 320 entries (161 parameters, 159 BatchNorm buffers), 25,557,032 parameters
        // with the 1000-class head, so 23,508,032 in the backbone.
        Assert.AreEqual(320, names.Count);
        foreach (var name in new[] { "layer1.0.downsample.0.weight", "layer1.0.conv3.weight", "layer4.2.bn3.num_batches_tracked", "fc.bias" })
            CollectionAssert.Contains(names, name);
        CollectionAssert.AreEqual(new long[] { 128, 128, 3, 3 }, source.state_dict()["layer2.0.conv2.weight"].shape, "the stride-2 3×3 convolution (v1.5)");
        Assert.AreEqual(23_508_032 + 2048 * 4 + 4, source.parameters().Sum(p => p.numel()));

        string path = Path.Combine(folder, "resnet50.safetensors");
        source.save_safetensors(path);
        using var loaded = TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet50, numClasses: 4, useCheckpointHead: true);
        AssertStatesEqual(source, loaded);
        Assert.AreEqual(ImageNetResNet.BottleneckEmbeddingSize, loaded.EmbeddingWidth);
        using var input = Input(2, 64, seed: 4);
        using var expected = source.Embed(input);
        using var actual = loaded.Embed(input);
        CollectionAssert.AreEqual(new long[] { 2, 2048 }, actual.shape);
        Assert.IsTrue(Identical(expected, actual), "identical embeddings");
        using var logits = loaded.call(input);
        CollectionAssert.AreEqual(new long[] { 2, 4 }, logits.shape);
    }

    [TestMethod]
    public void BottleneckBeginHeavyPaddingEqualsSymmetricAtEvenSizesAndRunsAtOddOnes()
    {
        using var symmetric = Randomized(ImageNetResNet.ResNet50(3), seed: 14);
        using var beginHeavy = ImageNetResNet.ResNet50(3, StridedPadding.BeginHeavy);
        beginHeavy.load_state_dict(symmetric.state_dict());
        beginHeavy.eval();
        using (var even = Input(1, 64, seed: 15))
        using (var a = symmetric.Embed(even))
        using (var b = beginHeavy.Embed(even))
            Assert.IsTrue(Identical(a, b), "64: the same windows");
        // 36 → stem 18 → pool 9, odd entering stage 2: begin-heavy 9 → 4 → 2 → 1, symmetric 9 → 5 → 3 → 2. The stride-2
        // 3×3 convolution and its 1×1 shortcut keep one shape in each bottleneck, and the features differ.
        using var odd = Input(1, 36, seed: 15);
        using var c = symmetric.Embed(odd);
        using var d = beginHeavy.Embed(odd);
        CollectionAssert.AreEqual(new long[] { 1, 2048 }, d.shape);
        Assert.IsFalse(Identical(c, d), "36: different padding, different features");
    }

    [TestMethod]
    public void WrappedStateDictsWithTheDataParallelPrefixLoad()
    {
        using var source = Randomized(ImageNetResNet.ResNet18(10), seed: 6);
        string path = Path.Combine(folder, "checkpoint.pth");
        var prefixed = source.state_dict().ToDictionary(e => "module." + e.Key, e => e.Value);
        Write(path, new Dictionary<string, object> { ["epoch"] = 3, ["state_dict"] = prefixed });
        using var loaded = TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet18, 10, useCheckpointHead: true);
        AssertStatesEqual(source, loaded);

        string model = Path.Combine(folder, "reference.pth");
        Write(model, new Dictionary<string, object> { ["model"] = source.state_dict(), ["args"] = "lr=0.1" });
        using var fromModel = TorchVisionResNetLoader.Load(model, TorchVisionResNet.ResNet18, 10, useCheckpointHead: true);
        AssertStatesEqual(source, fromModel);
    }

    [TestMethod]
    public void HalfPrecisionCheckpointsAreConvertedAndIntegerWeightsRefused()
    {
        using var source = Randomized(ImageNetResNet.ResNet18(10), seed: 13);
        using var scope = NewDisposeScope();
        var half = source.state_dict().ToDictionary(e => e.Key, e => e.Value.is_floating_point() ? e.Value.detach().to(float16) : e.Value);
        string path = Path.Combine(folder, "half.safetensors");
        Safetensors.SaveStateDict(path, half);
        using var loaded = TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet18, 10, useCheckpointHead: true);
        foreach (var (key, value) in loaded.state_dict())
        {
            Assert.AreEqual(source.state_dict()[key].dtype, value.dtype, key);
            Assert.IsTrue(Identical(half[key].to(value.dtype), value), $"'{key}' converted from float16");
        }

        half["layer1.0.conv1.weight"] = half["layer1.0.conv1.weight"].to(int32);
        string integer = Path.Combine(folder, "integer.safetensors");
        Safetensors.SaveStateDict(integer, half);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TorchVisionResNetLoader.Load(integer, TorchVisionResNet.ResNet18, 10));
        StringAssert.Contains(e.Message, "key 'layer1.0.conv1.weight' has dtype Int32 in the checkpoint; the network expects Float32");
    }

    [TestMethod]
    public void MissingUnexpectedAndMisShapedKeysAreNamedAndTheNetworkIsUnchanged()
    {
        using var source = Randomized(ImageNetResNet.ResNet18(10), seed: 7);
        using var target = Randomized(ImageNetResNet.ResNet18(10), seed: 8);
        var before = Snapshot(target);

        var missing = source.state_dict();
        missing.Remove("layer2.1.bn2.running_var");
        var e = LoadFails(target, missing, "missing.safetensors");
        StringAssert.Contains(e.Message, "missing key 'layer2.1.bn2.running_var' (shape [128])");

        var unexpected = source.state_dict();
        using var extra = ones(3, 4);
        unexpected["layer5.0.conv1.weight"] = extra;
        e = LoadFails(target, unexpected, "unexpected.safetensors");
        StringAssert.Contains(e.Message, "unexpected key 'layer5.0.conv1.weight' (shape [3, 4])");

        var misShaped = source.state_dict();
        using var wrong = zeros(256, 128, 1, 1);
        misShaped["layer3.0.conv1.weight"] = wrong;
        e = LoadFails(target, misShaped, "misshaped.safetensors");
        StringAssert.Contains(e.Message, "key 'layer3.0.conv1.weight' has shape [256, 128, 1, 1] in the checkpoint; the network expects [256, 128, 3, 3]");

        var wrongHead = source.state_dict();
        using var headWeight = zeros(7, 512);
        wrongHead["fc.weight"] = headWeight;
        e = LoadFails(target, wrongHead, "head.safetensors", includeHead: true);
        StringAssert.Contains(e.Message, "key 'fc.weight' has shape [7, 512] in the checkpoint; the network expects [10, 512]");

        AssertUnchanged(before, target);
        // The control: the same checks see a successful load change every entry.
        string good = Path.Combine(folder, "good.safetensors");
        source.save_safetensors(good);
        TorchVisionResNetLoader.LoadInto(target, good, includeHead: true);
        AssertStatesEqual(source, target);
    }

    [TestMethod]
    public void TheHeadIsOptionalUnlessKeptAndOldCheckpointsMayLackTheBatchCounts()
    {
        using var source = Randomized(ImageNetResNet.ResNet18(10), seed: 9);
        var backbone = source.state_dict().Where(e => !e.Key.StartsWith("fc.") && !e.Key.EndsWith(".num_batches_tracked"))
            .ToDictionary(e => e.Key, e => e.Value);
        string path = Path.Combine(folder, "backbone.pth");
        Write(path, backbone);
        using var loaded = TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet18, 10);
        Assert.AreEqual(0L, loaded.state_dict()["layer1.0.bn1.num_batches_tracked"].item<long>(), "set to 0, as PyTorch does");
        using var input = Input(1, 64, seed: 10);
        using (var expected = source.Embed(input))
        using (var actual = loaded.Embed(input))
            Assert.IsTrue(Identical(expected, actual));

        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet18, 10, useCheckpointHead: true));
        StringAssert.Contains(e.Message, "missing key 'fc.weight' (shape [10, 512])");
        StringAssert.Contains(e.Message, "missing key 'fc.bias' (shape [10])");
    }

    [TestMethod]
    public void AResNet50CheckpointDoesNotLoadAsAResNet18()
    {
        using var source = ImageNetResNet.ResNet50(2);
        string path = Path.Combine(folder, "resnet50.safetensors");
        source.save_safetensors(path);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TorchVisionResNetLoader.Load(path, TorchVisionResNet.ResNet18, 2));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "basic-block ResNet [2, 2, 2, 2]");
        StringAssert.Contains(e.Message, "key 'layer1.0.conv1.weight' has shape [64, 64, 1, 1] in the checkpoint; the network expects [64, 64, 3, 3]");
        StringAssert.Matches(e.Message, new System.Text.RegularExpressions.Regex(@"and \d+ more\. Nothing was loaded\.$"));
    }

    [TestMethod]
    public void FilesThatAreNotCheckpointsAreNamed()
    {
        string missing = Path.Combine(folder, "absent.pth");
        var notFound = Assert.ThrowsExactly<FileNotFoundException>(() => TorchVisionResNetLoader.Load(missing, TorchVisionResNet.ResNet18, 2));
        StringAssert.Contains(notFound.Message, missing);

        string text = Path.Combine(folder, "notes.pth");
        File.WriteAllText(text, "not a checkpoint");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TorchVisionResNetLoader.Load(text, TorchVisionResNet.ResNet18, 2));
        StringAssert.Contains(e.Message, $"'{text}' is not a PyTorch checkpoint");

        string zip = Path.Combine(folder, "images.pth");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
            using (var writer = new StreamWriter(archive.CreateEntry("a.txt").Open())) writer.Write("hello");
        e = Assert.ThrowsExactly<InvalidDataException>(() => TorchVisionResNetLoader.Load(zip, TorchVisionResNet.ResNet18, 2));
        StringAssert.Contains(e.Message, $"'{zip}' is a zip archive but not a readable torch.save state_dict");

        string legacy = Path.Combine(folder, "legacy.pth");
        File.WriteAllBytes(legacy, new byte[] { 0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 });
        e = Assert.ThrowsExactly<InvalidDataException>(() => TorchVisionResNetLoader.Load(legacy, TorchVisionResNet.ResNet18, 2));
        StringAssert.Contains(e.Message, $"'{legacy}' is a pickle");
        StringAssert.Contains(e.Message, "legacy (pre-1.6) format");

        // A safetensors file cut short: the header promises more bytes than the file has.
        using var network = ImageNetResNet.ResNet18(2);
        string full = Path.Combine(folder, "full.safetensors");
        network.save_safetensors(full);
        byte[] bytes = File.ReadAllBytes(full);
        string truncated = Path.Combine(folder, "truncated.safetensors");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 1000)]);
        e = Assert.ThrowsExactly<InvalidDataException>(() => TorchVisionResNetLoader.Load(truncated, TorchVisionResNet.ResNet18, 2));
        StringAssert.Contains(e.Message, $"'{truncated}' is not a readable safetensors file");
        StringAssert.Contains(e.Message, "truncated file?");
    }

    [TestMethod]
    public void TorchVisionPreprocessingIsToTensorThenNormalize()
    {
        using var preprocessing = ResNetPreprocessing.TorchVisionImageNet();
        Assert.IsFalse(preprocessing.IsBgr);
        Assert.IsTrue(preprocessing.AcceptsAnySize);
        Assert.AreEqual(1f, preprocessing.MaxPixelValue);
        CollectionAssert.AreEqual(new[] { 0, 1, 2 }, preprocessing.ChannelOrder.ToArray());
        CollectionAssert.AreEqual(new[] { 0.485f, 0.456f, 0.406f }, preprocessing.ChannelMeans.ToArray());
        CollectionAssert.AreEqual(new[] { 0.229f, 0.224f, 0.225f }, preprocessing.ChannelStds.ToArray());

        foreach (var shape in new[] { new long[] { 2, 3, 40, 56 }, new long[] { 3, 7, 5 } })
        {
            using var generator = new Generator(11, CPU);
            using var rgb = rand(shape, generator: generator);
            using var ours = preprocessing.Apply(rgb);
            // torchvision.transforms.Normalize: tensor.sub_(mean[:, None, None]).div_(std[:, None, None]).
            using var mean = tensor(new[] { 0.485f, 0.456f, 0.406f }).reshape(3, 1, 1);
            using var std = tensor(new[] { 0.229f, 0.224f, 0.225f }).reshape(3, 1, 1);
            using var expected = rgb.clone().sub_(mean).div_(std);
            Assert.IsTrue(Identical(expected, ours), $"bit-identical at [{string.Join(", ", shape)}]");
        }
        using var gray = zeros(1, 1, 8, 8);
        Assert.ThrowsExactly<ArgumentException>(() => preprocessing.Apply(gray));
    }

    [TestMethod]
    public void MLNetPreprocessingKeepsItsScaleAndDoesNotDivide()
    {
        // The same type describes ML.NET's ResNet-18 featurizer input (read from the package's ResNetPreprocess.onnx).
        using var preprocessing = ResNetPreprocessing.Read();
        Assert.AreEqual(255f, preprocessing.MaxPixelValue);
        Assert.IsFalse(preprocessing.AcceptsAnySize);
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f }, preprocessing.ChannelStds.ToArray());
        using var generator = new Generator(12, CPU);
        using var rgb = rand(new long[] { 1, 3, 224, 224 }, generator: generator).mul_(255);
        using var expected = rgb.flip(1).sub_(preprocessing.MeanImage);
        using var ours = preprocessing.Apply(rgb);
        Assert.IsTrue(Identical(expected, ours), "BGR minus the mean image, no division");
        using var small = zeros(1, 3, 64, 64);
        Assert.ThrowsExactly<ArgumentException>(() => preprocessing.Apply(small), "the mean image fixes the size");
    }

    // Seeded weights and non-trivial BatchNorm affine parameters, running statistics and batch counts, so a load that
    // skipped or mixed up an entry would show.
    private static ImageNetResNet Randomized(ImageNetResNet network, long seed)
    {
        ParameterInitialization.Reset(network, seed);
        using var generator = new Generator((ulong)seed + 1000, CPU);
        using var noGrad = no_grad();
        long count = seed * 1000;
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

    private static Tensor Input(int count, int size, int seed)
    {
        using var generator = new Generator((ulong)seed, CPU);
        return randn(new long[] { count, 3, size, size }, generator: generator);
    }

    private static void Write(string path, IDictionary state) => PyTorchPickler.PickleStateDict(path, state);

    // Key checks do not depend on the format: safetensors is written and read several times faster than torch.save's pickle.
    private InvalidDataException LoadFails(ImageNetResNet target, Dictionary<string, Tensor> state, string name, bool includeHead = false)
    {
        string path = Path.Combine(folder, name);
        Safetensors.SaveStateDict(path, state);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => TorchVisionResNetLoader.LoadInto(target, path, includeHead));
        StringAssert.Contains(e.Message, $"'{path}' does not fit the basic-block ResNet [2, 2, 2, 2]");
        StringAssert.EndsWith(e.Message, "Nothing was loaded.");
        return e;
    }

    // Same dtype, shape and bytes (bit-identical, so −0 ≠ 0 and NaNs compare by their bits).
    private static bool Identical(Tensor a, Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using var x = a.detach().contiguous().cpu();
        using var y = b.detach().contiguous().cpu();
        return x.bytes.SequenceEqual(y.bytes);
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(e => e.Key, e => e.Value.detach().clone());

    private static void AssertUnchanged(Dictionary<string, Tensor> before, nn.Module module)
    {
        var after = module.state_dict();
        Assert.AreEqual(before.Count, after.Count);
        foreach (var (key, value) in before)
        {
            Assert.IsTrue(Identical(value, after[key]), $"'{key}' changed by a failed load");
            value.Dispose();
        }
    }

    private static void AssertStatesEqual(nn.Module expected, nn.Module actual)
    {
        var a = expected.state_dict();
        var b = actual.state_dict();
        CollectionAssert.AreEquivalent(a.Keys.ToList(), b.Keys.ToList());
        foreach (var (key, value) in a)
        {
            Assert.AreEqual(value.dtype, b[key].dtype, key);
            Assert.IsTrue(Identical(value, b[key]), $"'{key}' differs");
        }
    }
}
