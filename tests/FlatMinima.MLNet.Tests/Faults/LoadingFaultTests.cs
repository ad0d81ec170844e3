using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Security.Cryptography;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests.Faults;

/// <summary>
/// Damaged model files fail with an <see cref="InvalidDataException"/> naming the zip entry, before any large
/// allocation; a model saved with <c>Device = Cuda</c> loads and scores on the CPU. Offsets are relative to the start of
/// the model data in the transformer's <c>Model.key</c> (columns: 4 string ids, input kind +16, vector shape; then
/// architecture id +32, channels +36, height +40, width +44, classes +48, mean/std (1 channel) +52…+64, device +68,
/// CUDA index +72, scoring batch size +76).
/// </summary>
[TestClass]
public sealed class LoadingFaultTests
{
    private const string Image = "image-classifier";
    private const string FewShot = "incremental-few-shot";
    private static byte[] _imageNew = null!, _fewShotNew = null!;
    private static ImageRow[] _rows = null!;
    private static float[][] _expected = null!;

    [ClassInitialize]
    public static void Init(TestContext _)
    {
        _imageNew = FaultModels.NewFormat(Image);
        _fewShotNew = FaultModels.NewFormat(FewShot);
        (_rows, _expected) = FaultModels.Rows(Image, 4);
    }

    public TestContext TestContext { get; set; } = null!;

    private static ModelZip Zip(string name, bool newFormat) => ModelZip.Read(newFormat ? (name == Image ? _imageNew : _fewShotNew) : FaultModels.OldFormat(name));

    /// <summary>Loading <paramref name="zip"/> throws an InvalidDataException naming <paramref name="entry"/> and containing every one of <paramref name="words"/>, with printable text only.</summary>
    private InvalidDataException AssertRejected(ModelZip zip, string entry, params string[] words)
    {
        var bytes = zip.ToBytes();
        var watch = Stopwatch.StartNew();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => FaultModels.LoadAndScore(bytes, _rows));
        watch.Stop();
        TestContext.WriteLine($"{watch.ElapsedMilliseconds} ms: {e.Message}");
        StringAssert.Contains(e.Message, $"'{entry}'");
        foreach (var w in words) StringAssert.Contains(e.Message, w);
        Assert.IsTrue(e.Message.All(c => !char.IsControl(c) && c != '\uFFFD'), "The message holds control or replacement characters: " + e.Message);
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(3), $"Rejected after {watch.Elapsed}.");
        return e;
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void Geometry4000x4000IsRejectedBeforeBuildingTheNetwork(bool newFormat)
    {
        var zip = Zip(Image, newFormat);
        string key = zip.OurModelKey;
        zip.SetModelInt(key, 40, 4000);
        zip.SetModelInt(key, 44, 4000);
        long before = GC.GetTotalAllocatedBytes();
        AssertRejected(zip, key, "4000×4000", "2048");
        Assert.IsTrue(GC.GetTotalAllocatedBytes() - before < 200L << 20, "More than 200 MB were allocated.");
    }

    [TestMethod]
    public void Geometry200000IsRejected()
    {
        var zip = Zip(Image, newFormat: true);
        zip.SetModelInt(zip.OurModelKey, 40, 200_000);
        AssertRejected(zip, zip.OurModelKey, "200000");
    }

    [TestMethod]
    [DataRow(2_000_000_000)]
    [DataRow(0)]
    [DataRow(-5)]
    public void AbsurdClassCountIsRejected(int classes)
    {
        var zip = Zip(Image, newFormat: true);
        zip.SetModelInt(zip.OurModelKey, 48, classes);
        AssertRejected(zip, zip.OurModelKey, $"{classes} classes");
    }

    [TestMethod]
    public void TensorRankOf200MillionIsRejectedWithoutAllocating()
    {
        // The previous format has no checksums, so the tensor header itself must be checked.
        var zip = Zip(FewShot, newFormat: false);
        var prototypes = zip["Prototypes.bin"];
        BitConverter.TryWriteBytes(prototypes.AsSpan(4, 4), 200_000_000);
        long before = GC.GetTotalAllocatedBytes();
        AssertRejected(zip, zip.Name("Prototypes.bin"), "rank 200000000");
        Assert.IsTrue(GC.GetTotalAllocatedBytes() - before < 200L << 20, "More than 200 MB were allocated.");
    }

    [TestMethod]
    public void TensorDimensionBeyondTheDataIsRejected()
    {
        var zip = Zip(FewShot, newFormat: false);
        var exemplars = zip["Exemplars.bin"];
        BitConverter.TryWriteBytes(exemplars.AsSpan(8, 8), 1L << 40);
        AssertRejected(zip, zip.Name("Exemplars.bin"), "limit");
    }

    [TestMethod]
    [DataRow(Image)]
    [DataRow(FewShot)]
    public void FlippedWeightBytesFailTheChecksum(string name)
    {
        var zip = Zip(name, newFormat: true);
        var weights = zip["TorchWeights.bin"];
        weights[weights.Length / 2] ^= 0x5A;
        weights[10] ^= 0xFF;
        AssertRejected(zip, zip.Name("TorchWeights.bin"), "SHA-256");
    }

    [TestMethod]
    public void FlippedBytesInTheFlatRegionFailTheChecksum()
    {
        var zip = Zip(FewShot, newFormat: true);
        zip["FlatRegion.bin"][100] ^= 0x01;
        AssertRejected(zip, zip.Name("FlatRegion.bin"), "SHA-256");
    }

    [TestMethod]
    public void EditedSettingsFailTheHeaderChecksum()
    {
        var zip = Zip(Image, newFormat: true);
        string key = zip.OurModelKey;
        zip.SetModelInt(key, 76, 17); // scoring batch size 256 → 17: in range, so only the checksum can tell
        AssertRejected(zip, key, "settings");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void NaNWeightsAreRejectedNamingTheEntry(bool newFormat)
    {
        var zip = Zip(Image, newFormat);
        var weights = zip["TorchWeights.bin"];
        BitConverter.TryWriteBytes(weights.AsSpan(FirstTensorData(weights), 4), float.NaN);
        if (newFormat) RewriteWeightsChecksum(zip);
        AssertRejected(zip, zip.Name("TorchWeights.bin"), "NaN");
    }

    [TestMethod]
    [DataRow(Image, "TorchWeights.bin")]
    [DataRow(FewShot, "Exemplars.bin")]
    [DataRow(FewShot, "FlatRegion.bin")]
    public void MissingEntryIsNamed(string name, string entry)
    {
        var zip = Zip(name, newFormat: true);
        string full = zip.Name(entry);
        zip.Entries.RemoveAt(zip.IndexOf(entry));
        AssertRejected(zip, full, "missing");
    }

    [TestMethod]
    public void ScoringBatchSizeZeroIsRejected()
    {
        var zip = Zip(Image, newFormat: false);
        zip.SetModelInt(zip.OurModelKey, 76, 0);
        AssertRejected(zip, zip.OurModelKey, "scoring batch size 0");
    }

    [TestMethod]
    public void UnknownInputKindIsRejected()
    {
        var zip = Zip(Image, newFormat: false);
        zip.SetModelInt(zip.OurModelKey, 16, 7);
        AssertRejected(zip, zip.OurModelKey, "input kind 7");
    }

    [TestMethod]
    public void UnknownDeviceKindIsRejected()
    {
        var zip = Zip(Image, newFormat: false);
        zip.SetModelInt(zip.OurModelKey, 68, 9);
        AssertRejected(zip, zip.OurModelKey, "device kind 9");
    }

    [TestMethod]
    public void WeightsOfAnotherShapeAreRejectedBeforeLoading()
    {
        // The previous format: no checksum, so the weights are checked against the network's state.
        var zip = Zip(Image, newFormat: false);
        var weights = zip["TorchWeights.bin"];
        int rankAt = FirstTensorData(weights, stopAtRank: true);
        weights[rankAt + 1] ^= 0x03; // first dimension of the first tensor
        AssertRejected(zip, zip.Name("TorchWeights.bin"), "dimension 0");
    }

    [TestMethod]
    public void MlNetLoadReportsTheEntryInTheInnermostException()
    {
        var zip = Zip(Image, newFormat: true);
        zip["TorchWeights.bin"][20] ^= 0x10;
        var ml = new MLContext(seed: 1);
        var e = Assert.ThrowsExactly<TargetInvocationException>(() => ml.Model.Load(new MemoryStream(zip.ToBytes()), out _));
        var inner = e.GetBaseException();
        Assert.IsInstanceOfType<InvalidDataException>(inner);
        StringAssert.Contains(inner.Message, "TorchWeights.bin");
    }

    [TestMethod]
    public void DamagedZipStructureIsReportedAsTheZip()
    {
        var bytes = _imageNew[..(_imageNew.Length / 2)];
        var ml = new MLContext(seed: 1);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => FlatMinimaModelLoading.Load(ml, new MemoryStream(bytes), out _));
        StringAssert.Contains(e.Message, "model zip");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ModelSavedWithCudaLoadsAndScoresOnTheCpu(bool newFormat)
    {
        // Without CUDA the default (Auto) must load on the CPU; on a machine with CUDA, forcing Cpu is the same deployment.
        FlatMinimaModelLoading.Device = TorchSharp.torch.cuda.is_available() ? DeviceKind.Cpu : null;
        try
        {
            LoadsACudaModelOnTheCpu(newFormat);
        }
        finally
        {
            FlatMinimaModelLoading.Device = null;
        }
    }

    private static void LoadsACudaModelOnTheCpu(bool newFormat)
    {
        byte[] bytes;
        if (newFormat)
        {
            // Saved by a model whose training device was Cuda (the test hook sets the saved metadata).
            var ml = new MLContext(seed: 1);
            var chain = (TransformerChain<ITransformer>)ml.Model.Load(new MemoryStream(_imageNew), out var schema);
            chain.OfType<FlatMinimaImageClassificationTransformer>().Single().DeviceKind = DeviceKind.Cuda;
            using var m = new MemoryStream();
            ml.Model.Save(chain, schema, m);
            bytes = m.ToArray();
        }
        else
        {
            var zip = Zip(Image, newFormat: false);
            zip.SetModelInt(zip.OurModelKey, 68, (int)DeviceKind.Cuda);
            bytes = zip.ToBytes();
        }
        var loaded = (TransformerChain<ITransformer>)FlatMinimaModelLoading.Load(new MLContext(seed: 1), new MemoryStream(bytes), out _);
        var transformer = loaded.OfType<FlatMinimaImageClassificationTransformer>().Single();
        Assert.AreEqual(DeviceKind.Cuda, transformer.DeviceKind, "the trained device is kept as metadata");
        Assert.AreEqual(TorchSharp.DeviceType.CPU, transformer.Model.Device.type);
        var scores = FaultModels.LoadAndScore(bytes, _rows);
        for (int i = 0; i < scores.Length; i++)
            for (int k = 0; k < scores[i].Length; k++)
                Assert.AreEqual(_expected[i][k], scores[i][k], 1e-6f);
    }

    [TestMethod]
    public void ForcingCudaWithoutAGpuFailsClearly()
    {
        try
        {
            FlatMinimaModelLoading.Device = DeviceKind.Cuda;
            if (TorchSharp.torch.cuda.is_available())
            {
                // With a GPU, forcing Cuda loads there (the no-GPU branch below is the one CI runs).
                Assert.AreEqual(_rows.Length, FaultModels.LoadAndScore(_imageNew, _rows).Length);
                return;
            }
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => FaultModels.LoadAndScore(_imageNew, _rows));
            StringAssert.Contains(e.Message, "Cuda");
            FlatMinimaModelLoading.Device = DeviceKind.Cpu;
            Assert.AreEqual(_rows.Length, FaultModels.LoadAndScore(_imageNew, _rows).Length);
        }
        finally
        {
            FlatMinimaModelLoading.Device = null;
        }
    }

    [TestMethod]
    public void DeviceEnvironmentVariableIsRead()
    {
        string? saved = Environment.GetEnvironmentVariable(FlatMinimaModelLoading.DeviceEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(FlatMinimaModelLoading.DeviceEnvironmentVariable, "CPU");
            Assert.AreEqual(DeviceKind.Cpu, FlatMinimaModelLoading.EffectiveDevice);
            Assert.AreEqual(_rows.Length, FaultModels.LoadAndScore(_imageNew, _rows).Length);
            FlatMinimaModelLoading.Device = DeviceKind.Auto;
            Assert.AreEqual(DeviceKind.Auto, FlatMinimaModelLoading.EffectiveDevice, "the static setting wins over the variable");
            FlatMinimaModelLoading.Device = null;
            Environment.SetEnvironmentVariable(FlatMinimaModelLoading.DeviceEnvironmentVariable, "tpu");
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => FaultModels.LoadAndScore(_imageNew, _rows));
            StringAssert.Contains(e.Message, FlatMinimaModelLoading.DeviceEnvironmentVariable);
        }
        finally
        {
            FlatMinimaModelLoading.Device = null;
            Environment.SetEnvironmentVariable(FlatMinimaModelLoading.DeviceEnvironmentVariable, saved);
        }
    }

    [TestMethod]
    public void NewFormatScoresAsTheFixture()
    {
        var scores = FaultModels.LoadAndScore(_imageNew, _rows);
        for (int i = 0; i < scores.Length; i++)
            for (int k = 0; k < scores[i].Length; k++)
                Assert.AreEqual(_expected[i][k], scores[i][k], 1e-6f);
    }

    [TestMethod]
    public void NativeLibraryFailureIsExplained()
    {
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            TorchNativeLibrary.EnsureLoaded(() => throw new TypeInitializationException("TorchSharp.torch", new DllNotFoundException("Unable to load shared library 'LibTorchSharp'"))));
        StringAssert.Contains(e.Message, "LibTorchSharp");
        StringAssert.Contains(e.Message, System.Runtime.InteropServices.RuntimeInformation.OSDescription);
        StringAssert.Contains(e.Message, OperatingSystem.IsWindows() ? "issues/1567" : "GLIBCXX");
        Assert.IsInstanceOfType<TypeInitializationException>(e.InnerException);
        // Other failures pass through unchanged.
        Assert.ThrowsExactly<ArgumentException>(() => TorchNativeLibrary.EnsureLoaded(() => throw new ArgumentException("x")));
    }

    /// <summary>The offset of the first tensor's data in TorchSharp's Module.save format (or, with <paramref name="stopAtRank"/>, of its rank byte).</summary>
    private static int FirstTensorData(byte[] weights, bool stopAtRank = false)
    {
        int p = 0;
        long Decode()
        {
            long v = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte b = weights[p++];
                v |= (long)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return v;
            }
        }
        Decode(); // count
        int nameLength = (int)Decode();
        p += nameLength;
        Decode(); // dtype
        if (stopAtRank) return p;
        long rank = Decode();
        for (int i = 0; i < rank; i++) Decode();
        return p;
    }

    /// <summary>Stores the SHA-256 of the (edited) weights entry in the image transformer's Model.key (the last 32 bytes of its model data).</summary>
    private static void RewriteWeightsChecksum(ModelZip zip)
    {
        var key = zip[zip.OurModelKey];
        long fpModel = BitConverter.ToInt64(key, 16), cbModel = BitConverter.ToInt64(key, 24);
        SHA256.HashData(zip["TorchWeights.bin"]).CopyTo(key, (int)(fpModel + cbModel - 32));
    }
}
