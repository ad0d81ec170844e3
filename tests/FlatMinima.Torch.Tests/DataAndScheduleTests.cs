using System;
using System.IO;
using System.IO.Compression;
using System.Linq;
using FlatMinima.Torch.Data;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class DataAndScheduleTests
{
    private static byte[] Idx(int magic, int[] dims, byte[] data)
    {
        using var s = new MemoryStream();
        void Int(int v) => s.Write(new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v });
        Int(magic);
        foreach (int d in dims) Int(d);
        s.Write(data);
        return s.ToArray();
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void IdxFilesLoadGzippedOrNot(bool gzip)
    {
        string dir = Path.Combine(Path.GetTempPath(), "flatminima-idx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var pixels = Enumerable.Range(0, 3 * 2 * 4).Select(i => (byte)(i * 10)).ToArray();
            void Write(string name, byte[] bytes)
            {
                if (!gzip) { File.WriteAllBytes(Path.Combine(dir, name), bytes); return; }
                using var file = File.Create(Path.Combine(dir, name + ".gz"));
                using var z = new GZipStream(file, CompressionLevel.Fastest);
                z.Write(bytes);
            }
            Write("t10k-images-idx3-ubyte", Idx(0x803, new[] { 3, 2, 4 }, pixels));
            Write("t10k-labels-idx1-ubyte", Idx(0x801, new[] { 3 }, new byte[] { 7, 0, 9 }));
            var set = IdxImageSet.LoadSplit(dir, train: false);
            Assert.AreEqual((3, 2, 4), (set.Count, set.Height, set.Width));
            CollectionAssert.AreEqual(pixels, set.Pixels);
            CollectionAssert.AreEqual(new byte[] { 7, 0, 9 }, set.Labels);
            var data = set.Subset(new[] { 2, 0 }).ToTensorDataset();
            CollectionAssert.AreEqual(new long[] { 2, 1, 2, 4 }, data.Inputs.shape);
            Assert.AreEqual(16 * 10 / 255f, data.Inputs[0, 0, 0, 0].item<float>(), 1e-6);
            CollectionAssert.AreEqual(new long[] { 9, 7 }, data.Labels.data<long>().ToArray());
            var missing = Assert.ThrowsExactly<FileNotFoundException>(() => IdxImageSet.LoadSplit(dir, train: true));
            StringAssert.Contains(missing.Message, "apt-get install dataset-fashion-mnist");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [TestMethod]
    public void SchedulesFollowTheirFormulas()
    {
        var cosine = new LearningRateSchedule { Kind = LearningRateScheduleKind.Cosine, WarmupEpochs = 1 };
        Assert.AreEqual(0.1 * 1 / 10.0, cosine.At(0.1, 0, 10, 5), 1e-12, "warm-up, first step");
        Assert.AreEqual(0.1, cosine.At(0.1, 10, 10, 5), 1e-12, "end of warm-up");
        Assert.AreEqual(0.05, cosine.At(0.1, 30, 10, 5), 1e-12, "half-way through the cosine");
        var step = new LearningRateSchedule { Kind = LearningRateScheduleKind.Step, StepEpochs = new[] { 2, 4 }, StepFactor = 0.5 };
        Assert.AreEqual(0.1, step.At(0.1, 19, 10, 6), 1e-12);
        Assert.AreEqual(0.05, step.At(0.1, 20, 10, 6), 1e-12);
        Assert.AreEqual(0.025, step.At(0.1, 45, 10, 6), 1e-12);
        Assert.AreEqual(0.1, new LearningRateSchedule { Kind = LearningRateScheduleKind.Constant }.At(0.1, 99, 10, 10));
    }
}

[TestClass]
public sealed class ModelTests
{
    [TestMethod]
    public void ArchitecturesHaveTheExpectedSizesAndNames()
    {
        using var cnn = new FlatMinima.Torch.Models.SmallCnn(1, 10);
        Assert.AreEqual(34_826L, cnn.parameters().Sum(p => p.numel()));
        using var resnet20 = FlatMinima.Torch.Models.SmallImageResNet.ResNet20(3, 10);
        Assert.AreEqual(272_474L, resnet20.parameters().Sum(p => p.numel()), "the peer benchmark's ResNet-20");
        using var resnet18 = FlatMinima.Torch.Models.SmallImageResNet.ResNet18(3, 10);
        var names = resnet18.named_parameters().Select(p => p.name).ToHashSet();
        foreach (var name in new[] { "conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias", "fc.weight" })
            Assert.IsTrue(names.Contains(name), $"TorchVision-style name {name}; have {string.Join(", ", names.Take(8))}…");
        using var x = TorchSharp.torch.randn(2, 3, 32, 32);
        CollectionAssert.AreEqual(new long[] { 2, 10 }, resnet18.call(x).shape);
    }
}
