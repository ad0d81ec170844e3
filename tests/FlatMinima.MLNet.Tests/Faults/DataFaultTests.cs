using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using SkiaSharp;

namespace FlatMinima.MLNet.Tests.Faults;

/// <summary>
/// Bad data in, exact behaviour out: wrong-length pixel vectors, truncated and damaged image bytes, the bad-row policy,
/// image-size options and the automatic-size memory budget, and non-finite or unusable inputs at scoring time.
/// </summary>
[TestClass]
public sealed class DataFaultTests
{
    private sealed class PixelRow
    {
        public string Label { get; set; } = "";
        [VectorType(1, 10, 10)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    private sealed class KeyedScore
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    private static MLContext _ml = null!;
    private static ITransformer _pixelModel = null!;
    private static ITransformer _bytesModel = null!;

    [ClassInitialize]
    public static void TrainModels(TestContext _)
    {
        _ml = new MLContext(seed: 1);
        _pixelModel = KeyedPipeline(_ml, PixelOptions()).Fit(_ml.Data.LoadFromEnumerable(PixelRows(8)));
        _bytesModel = KeyedPipeline(_ml, Options()).Fit(_ml.Data.LoadFromEnumerable(Good()));
    }

    private static FlatMinimaImageClassificationTrainer.Options Options(Action<FlatMinimaImageClassificationTrainer.Options>? change = null) =>
        TestData.FastOptions(epochs: 1, batchSize: 4, o =>
        {
            o.Architecture = ImageClassifierArchitecture.SmallCnn;
            change?.Invoke(o);
        });

    private static FlatMinimaImageClassificationTrainer.Options PixelOptions(Action<FlatMinimaImageClassificationTrainer.Options>? change = null) =>
        Options(o =>
        {
            o.ImageColumnName = "Pixels";
            change?.Invoke(o);
        });

    /// <summary>MapValueToKey + trainer, without MapKeyToValue: <c>PredictedLabel</c> stays a key (0 = missing).</summary>
    private static IEstimator<ITransformer> KeyedPipeline(MLContext ml, FlatMinimaImageClassificationTrainer.Options options) =>
        ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options));

    private static PixelRow[] PixelRows(int count) =>
        Enumerable.Range(0, count).Select(i => new PixelRow
        {
            Label = i % 2 == 0 ? "a" : "b",
            Pixels = Enumerable.Range(0, 100).Select(p => (p * (i % 2 + 1) + i) % 11 / 11f).ToArray(),
        }).ToArray();

    private static List<ImageRow> Good(int perClass = 4) => TestData.Load("train", TestData.ThreeClasses, perClass);

    private static TException FitThrows<TException>(IDataView data, FlatMinimaImageClassificationTrainer.Options options) where TException : Exception =>
        Assert.ThrowsExactly<TException>(() => TestData.Pipeline(_ml, options).Fit(data));

    private static byte[] Encode(SKBitmap bitmap, SKEncodedImageFormat format)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 90);
        return data.ToArray();
    }

    /// <summary>A Fashion-MNIST training image re-encoded as <paramref name="format"/>.</summary>
    private static byte[] Reencoded(byte[] png, SKEncodedImageFormat format)
    {
        using var bitmap = SKBitmap.Decode(png);
        return Encode(bitmap, format);
    }

    private static byte[] Truncated(byte[] encoded, double keep = 0.5) => encoded.Take((int)(encoded.Length * keep)).ToArray();

    /// <summary>Error messages (and warnings) logged to <paramref name="ml"/>.</summary>
    private static List<string> Warnings(MLContext ml)
    {
        var warnings = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message);
        };
        return warnings;
    }

    // ---- wrong-length pixel vectors -------------------------------------------------------------------------------

    [TestMethod]
    [DataRow(3, 37, DisplayName = "short row: never uninitialized memory")]
    [DataRow(1, 1000, DisplayName = "long row: never writes into its neighbour")]
    public void WrongLengthPixelRowInTrainingFailsNamingColumnRowAndShape(int row, int length)
    {
        var rows = PixelRows(6);
        rows[row].Pixels = new float[length];
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), PixelOptions());
        StringAssert.StartsWith(e.Message, $"Image column 'Pixels', row {row}: {length} values, expected 1×10×10 = 100.");
    }

    [TestMethod]
    public void WrongLengthPixelRowInValidationSetNamesTheRow()
    {
        var keys = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(_ml.Data.LoadFromEnumerable(PixelRows(8)));
        var validationRows = PixelRows(4);
        validationRows[2].Pixels = new float[99];
        var validation = keys.Transform(_ml.Data.LoadFromEnumerable(validationRows));
        var trainer = _ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(PixelOptions(o => o.ValidationSet = validation));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(keys.Transform(_ml.Data.LoadFromEnumerable(PixelRows(8)))));
        StringAssert.StartsWith(e.Message, "Image column 'Pixels', row 2: 99 values, expected 1×10×10 = 100.");
    }

    [TestMethod]
    public void WrongLengthPixelRowAtScoringThrowsNamingTheRowInTransformAndPredictionEngine()
    {
        var rows = PixelRows(5);
        rows[4].Pixels = new float[100 + 1];
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => _pixelModel.Transform(_ml.Data.LoadFromEnumerable(rows)).GetColumn<float[]>("Score").ToArray());
        StringAssert.StartsWith(e.Message, "Image column 'Pixels', row 4: 101 values, expected 1×10×10 = 100.");

        var engine = _ml.Model.CreatePredictionEngine<PixelRow, KeyedScore>(_pixelModel);
        var e2 = Assert.ThrowsExactly<InvalidOperationException>(() => engine.Predict(new PixelRow { Label = "a", Pixels = new float[100 - 1] }));
        StringAssert.Contains(e2.Message, "Image column 'Pixels', row ");
        StringAssert.Contains(e2.Message, "99 values, expected 1×10×10 = 100.");
    }

    // ---- damaged image bytes and the bad-row policy ---------------------------------------------------------------

    [TestMethod]
    public void TruncatedPngFailsNamingColumnRowAndPolicy()
    {
        var rows = Good();
        rows[2].ImageSource = Truncated(rows[2].ImageSource);
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options());
        StringAssert.StartsWith(e.Message, "Image column 'ImageSource', row 2: the value is a truncated PNG image");
        StringAssert.Contains(e.Message, "BadImagePolicy = BadImagePolicy.Skip");
    }

    [TestMethod]
    public void TruncatedJpegFailsNamingColumnAndRow()
    {
        var rows = Good();
        foreach (var row in rows) row.ImageSource = Reencoded(row.ImageSource, SKEncodedImageFormat.Jpeg);
        rows[5].ImageSource = Truncated(rows[5].ImageSource, 0.6);
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options());
        StringAssert.StartsWith(e.Message, "Image column 'ImageSource', row 5: the value is a truncated JPEG image");
    }

    [TestMethod]
    public void DamagedPngDataFailsNamingTheRow()
    {
        var rows = Good();
        var bytes = rows[1].ImageSource.ToArray();
        int idat = IndexOf(bytes, "IDAT"u8.ToArray());
        for (int i = idat + 8; i < idat + 40 && i < bytes.Length - 12; i++) bytes[i] ^= 0x5A; // scramble the compressed pixels
        rows[1].ImageSource = bytes;
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options());
        StringAssert.StartsWith(e.Message, "Image column 'ImageSource', row 1: the value is a damaged PNG image (the decoder found invalid data).");
    }

    [TestMethod]
    public void UndecodableAndEmptyBytesNameTheRow()
    {
        var rows = Good();
        rows[3].ImageSource = new byte[] { 0x89, 0x50, 0x4E, 0x47, 1, 2, 3 };
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options());
        StringAssert.StartsWith(e.Message, "Image column 'ImageSource', row 3: the value could not be decoded as an image");
        rows = Good();
        rows[0].ImageSource = Array.Empty<byte>();
        var e2 = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options());
        StringAssert.StartsWith(e2.Message, "Image column 'ImageSource', row 0: the value is empty (no image bytes).");
    }

    [TestMethod]
    public void SkipPolicyLeavesBadRowsOutAndLogsTheCount()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Warnings(ml);
        var rows = Good();
        rows[2].ImageSource = Truncated(rows[2].ImageSource);
        rows[7].ImageSource = new byte[] { 1, 2, 3 };
        var model = TestData.Pipeline(ml, Options(o => o.BadImagePolicy = BadImagePolicy.Skip)).Fit(ml.Data.LoadFromEnumerable(rows));
        var note = warnings.Single(w => w.Contains("BadImagePolicy.Skip"));
        StringAssert.Contains(note, "left out 2 of 12 rows of the training data");
        StringAssert.Contains(note, "Image column 'ImageSource', row 2: the value is a truncated PNG image");
        StringAssert.Contains(note, "Image column 'ImageSource', row 7: the value could not be decoded");
        var scores = TestData.Scores(model.Transform(ml.Data.LoadFromEnumerable(Good(1))));
        Assert.IsTrue(scores.All(s => s.All(float.IsFinite)), "the model trained on the 10 good rows scores good rows");
    }

    [TestMethod]
    public void SkipPolicyWithNoUsableRowFails()
    {
        var rows = Good(1);
        foreach (var row in rows) row.ImageSource = Truncated(row.ImageSource);
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options(o => o.BadImagePolicy = BadImagePolicy.Skip));
        StringAssert.StartsWith(e.Message, "Every one of the 3 rows was skipped (BadImagePolicy.Skip): no usable image in column 'ImageSource'.");
    }

    [TestMethod]
    public void SkipPolicyAppliesToTheValidationSet()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Warnings(ml);
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(Good()));
        var validationRows = TestData.Load("test", TestData.ThreeClasses, 2);
        validationRows[4].ImageSource = Truncated(validationRows[4].ImageSource);
        var validation = keys.Transform(ml.Data.LoadFromEnumerable(validationRows));
        var train = keys.Transform(ml.Data.LoadFromEnumerable(Good()));
        var strict = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(Options(o => o.ValidationSet = validation));
        StringAssert.StartsWith(Assert.ThrowsExactly<InvalidOperationException>(() => strict.Fit(train)).Message,
            "Image column 'ImageSource', row 4: the value is a truncated PNG image");
        var lenient = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(Options(o => { o.ValidationSet = validation; o.BadImagePolicy = BadImagePolicy.Skip; }));
        lenient.Fit(train).Dispose();
        StringAssert.Contains(warnings.Single(w => w.Contains("BadImagePolicy.Skip")), "left out 1 of 6 rows of the ValidationSet");
    }

    [TestMethod]
    public void SessionDataFollowsThePolicy()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Warnings(ml);
        FlatMinimaIncrementalFewShotTrainer Trainer(BadImagePolicy policy) => ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(
            new FlatMinimaIncrementalFewShotTrainer.Options
            {
                ImageColumnName = "ImageSource",
                Architecture = ImageClassifierArchitecture.SmallCnn,
                FlatRegion = new FlatRegionOptions { RangeLayerCount = 2 },
                Epochs = 1,
                BatchSize = 8,
                Device = DeviceKind.Cpu,
                BadImagePolicy = policy,
            });
        IDataView Keyed(List<ImageRow> rows)
        {
            var view = ml.Data.LoadFromEnumerable(rows);
            return ml.Transforms.Conversion.MapValueToKey("Label").Fit(view).Transform(view);
        }
        using var baseModel = Trainer(BadImagePolicy.Error).Fit(Keyed(Good(6)));
        var session = TestData.Load("train", new[] { "Sandal" }, 3);
        session[1].ImageSource = Truncated(session[1].ImageSource);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Trainer(BadImagePolicy.Error).Fit(Keyed(session), baseModel));
        StringAssert.StartsWith(e.Message, "Image column 'ImageSource', row 1: the value is a truncated PNG image");
        using var next = Trainer(BadImagePolicy.Skip).Fit(Keyed(session), baseModel);
        Assert.AreEqual(4, next.ClassCount);
        StringAssert.Contains(warnings.Single(w => w.Contains("BadImagePolicy.Skip")), "left out 1 of 3 rows of the session data");
    }

    [TestMethod]
    public void NonFinitePixelsInTrainingFailWhateverThePolicy()
    {
        foreach (var policy in new[] { BadImagePolicy.Error, BadImagePolicy.Skip })
        {
            var rows = PixelRows(6);
            rows[4].Pixels[17] = float.PositiveInfinity;
            var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), PixelOptions(o => o.BadImagePolicy = policy));
            StringAssert.StartsWith(e.Message, "Image column 'Pixels', row 4: the pixel vector contains NaN or infinity.", policy.ToString());
        }
    }

    // ---- geometry options and the automatic-size budget -----------------------------------------------------------

    [TestMethod]
    public void ImageHeightAndImageWidthMustBeSetTogether()
    {
        var trainers = _ml.MulticlassClassification.Trainers;
        var e = Assert.ThrowsExactly<ArgumentException>(() => trainers.FlatMinimaImageClassification(Options(o => o.ImageWidth = 32)));
        Assert.AreEqual("ImageHeight", e.ParamName);
        StringAssert.StartsWith(e.Message, "ImageHeight is not set but ImageWidth is 32; set both");
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => trainers.FlatMinimaIncrementalFewShot(new FlatMinimaIncrementalFewShotTrainer.Options { ImageHeight = 32 }));
        Assert.AreEqual("ImageWidth", e2.ParamName);
        StringAssert.StartsWith(e2.Message, "ImageWidth is not set but ImageHeight is 32; set both");
    }

    [TestMethod]
    public void ImageSizeAboveTheBoundIsRejectedByValidation()
    {
        var trainers = _ml.MulticlassClassification.Trainers;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => { o.ImageHeight = 100_000; o.ImageWidth = 28; })));
        Assert.AreEqual("ImageHeight", e.ParamName);
        StringAssert.StartsWith(e.Message, $"ImageHeight must be 1 to {ModelLimits.MaxImageSide} pixels");
        var e2 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(Options(o => { o.ImageHeight = 28; o.ImageWidth = 4097; })));
        Assert.AreEqual("ImageWidth", e2.ParamName);
        Assert.AreEqual(2048, ModelLimits.MaxImageSide);
    }

    [TestMethod]
    public void AChosenSizeBeyondTheModelLimitsAsksForAnExplicitSize()
    {
        // Small in memory (2,100 × 8 pixels, 4 rows) but wider than a saved model may be: the median of the sample is
        // 8×2100, and the trainer refuses it before training rather than producing a model that cannot be loaded.
        using var bitmap = new SKBitmap(2100, 8);
        bitmap.Erase(new SKColor(90, 140, 200));
        var wide = Encode(bitmap, SKEncodedImageFormat.Png);
        var rows = new[] { new ImageRow { Label = "a", ImageSource = wide }, new ImageRow { Label = "b", ImageSource = wide },
                           new ImageRow { Label = "a", ImageSource = wide }, new ImageRow { Label = "b", ImageSource = wide } };
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TestData.Pipeline(_ml, Options()).Fit(_ml.Data.LoadFromEnumerable(rows)));
        StringAssert.StartsWith(e.Message,
            "Image column 'ImageSource': ImageHeight and ImageWidth are not set, so the model's input size is the median size of 4 sampled rows, 8×2100, beyond what a model may have");
        StringAssert.Contains(e.Message, "Set ImageHeight and ImageWidth");
        StringAssert.Contains(e.Message, $"sides up to {ModelLimits.MaxImageSide} pixels");
    }

    [TestMethod]
    public void HugeImagesInMostRowsWithoutASizeFailFastNamingImageHeightAndImageWidth()
    {
        // 19 of 36 rows are 2000×2000 (one encoded image, shared), so the median of the sample is 2000×2000: the budget
        // check fails after the sampling pass (headers only, one image decoded to see that it is in color), before any
        // image is decoded for training. (One huge image among small ones is resized: GeometryTests.)
        using var huge = new SKBitmap(2000, 2000);
        huge.Erase(new SKColor(90, 140, 200));
        var rows = Good(12);
        var hugePng = Encode(huge, SKEncodedImageFormat.Png);
        for (int i = 0; i < 19; i++) rows[i * 36 / 19].ImageSource = hugePng;
        long peakBefore = TestData.PeakResidentBytes();
        var clock = Stopwatch.StartNew();
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options());
        clock.Stop();
        StringAssert.StartsWith(e.Message,
            "Image column 'ImageSource': ImageHeight and ImageWidth are not set, so the model's input size is the median size of 36 sampled rows, 2000×2000; " +
            "36 rows × 3 channels × 2000×2000 × 4 bytes = 1.61 GiB of decoded images, more than the 1 GiB allowed");
        StringAssert.Contains(e.Message, "Set ImageHeight and ImageWidth");
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(10), $"failed after {clock.Elapsed.TotalSeconds:F1} s");
        if (peakBefore > 0)
            Assert.IsTrue(TestData.PeakResidentBytes() - peakBefore < 400L << 20, $"peak memory grew by {(TestData.PeakResidentBytes() - peakBefore) >> 20} MB");
    }

    [TestMethod]
    public void OversizedImageHeaderIsRejectedBeforeDecoding()
    {
        var rows = Good();
        rows[4].ImageSource = WithPngSize(rows[4].ImageSource, 20_000, 20_000);
        var e = FitThrows<InvalidOperationException>(_ml.Data.LoadFromEnumerable(rows), Options(o => { o.ImageHeight = 28; o.ImageWidth = 28; }));
        StringAssert.StartsWith(e.Message, "Image column 'ImageSource', row 4: the value is a 20000×20000 PNG image; at most 100,000,000 pixels are decoded per image.");
    }

    // ---- scoring: never a confident label from an unusable input --------------------------------------------------

    [TestMethod]
    public void NonFinitePixelsAtScoringGiveNaNScoresAndAMissingLabel()
    {
        var rows = PixelRows(5);
        var clean = _pixelModel.Transform(_ml.Data.LoadFromEnumerable(rows));
        var cleanScores = clean.GetColumn<float[]>("Score").ToArray();
        rows[1].Pixels[5] = float.NaN;
        rows[3].Pixels[0] = float.NegativeInfinity;
        var scored = _pixelModel.Transform(_ml.Data.LoadFromEnumerable(rows));
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        var labels = scored.GetColumn<uint>("PredictedLabel").ToArray();
        foreach (int bad in new[] { 1, 3 })
        {
            Assert.IsTrue(scores[bad].All(float.IsNaN), $"row {bad}: NaN scores");
            Assert.AreEqual(0u, labels[bad], $"row {bad}: missing PredictedLabel");
        }
        foreach (int good in new[] { 0, 2, 4 })
        {
            CollectionAssert.AreEqual(cleanScores[good], scores[good], $"row {good} scores as without its bad neighbours");
            Assert.AreNotEqual(0u, labels[good]);
        }

        var engine = _ml.Model.CreatePredictionEngine<PixelRow, KeyedScore>(_pixelModel);
        var single = engine.Predict(rows[1]);
        Assert.IsTrue(single.Score.All(float.IsNaN));
        Assert.AreEqual(0u, single.PredictedLabel);
        Assert.AreNotEqual(0u, engine.Predict(rows[0]).PredictedLabel, "the engine scores the next good row normally");
    }

    [TestMethod]
    public void UnusableImagesAtScoringGiveNaNScoresAndAMissingLabel()
    {
        var rows = TestData.Load("test", TestData.ThreeClasses, 2);
        rows[0].ImageSource = Truncated(rows[0].ImageSource);
        rows[2].ImageSource = new byte[] { 1, 2, 3 };
        rows[5].ImageSource = Array.Empty<byte>();
        var scored = _bytesModel.Transform(_ml.Data.LoadFromEnumerable(rows));
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        var labels = scored.GetColumn<uint>("PredictedLabel").ToArray();
        for (int i = 0; i < rows.Count; i++)
        {
            bool bad = i is 0 or 2 or 5;
            Assert.AreEqual(bad, scores[i].All(float.IsNaN), $"row {i}");
            Assert.AreEqual(bad, labels[i] == 0, $"row {i}");
        }
        var engine = _ml.Model.CreatePredictionEngine<ImageRow, KeyedScore>(_bytesModel);
        var single = engine.Predict(rows[2]);
        Assert.IsTrue(single.Score.All(float.IsNaN));
        Assert.AreEqual(0u, single.PredictedLabel);
    }

    private sealed class PictureRow
    {
        public string Label { get; set; } = "";
        [ImageType(28, 28)] public MLImage? Picture { get; set; }
    }

    [TestMethod]
    public void NullMLImageFailsOrIsSkippedAndScoresAsMissing()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Warnings(ml);
        var rows = Good().Select(r => new PictureRow { Label = r.Label, Picture = MLImage.CreateFromStream(new MemoryStream(r.ImageSource)) }).ToList();
        rows[5].Picture = null;
        var data = ml.Data.LoadFromEnumerable(rows);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => KeyedPipeline(ml, Options(o => o.ImageColumnName = "Picture")).Fit(data));
        StringAssert.StartsWith(e.Message, "Image column 'Picture', row 5: the value is missing (null image).");
        var model = KeyedPipeline(ml, Options(o => { o.ImageColumnName = "Picture"; o.BadImagePolicy = BadImagePolicy.Skip; })).Fit(data);
        StringAssert.Contains(warnings.Single(w => w.Contains("BadImagePolicy.Skip")), "left out 1 of 12 rows of the training data");
        var scored = model.Transform(data);
        var labels = scored.GetColumn<uint>("PredictedLabel").ToArray();
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        Assert.AreEqual(0u, labels[5]);
        Assert.IsTrue(scores[5].All(float.IsNaN));
        Assert.IsTrue(labels.Where((_, i) => i != 5).All(l => l != 0), "every other row gets a label");
    }

    [TestMethod]
    public void NonFiniteWeightsNeverGiveAConfidentLabel()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(PixelRows(4));
        var model = KeyedPipeline(ml, PixelOptions()).Fit(data);
        var classifier = ((IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();
        using (TorchSharp.torch.no_grad())
            classifier.Model.Network.parameters().First().fill_(float.NaN);
        var scored = model.Transform(data);
        Assert.IsTrue(scored.GetColumn<float[]>("Score").All(s => s.All(float.IsNaN)));
        Assert.IsTrue(scored.GetColumn<uint>("PredictedLabel").All(l => l == 0), "no argmax over NaN scores");
        classifier.Dispose();
    }

    // ---- helpers --------------------------------------------------------------------------------------------------

    private static int IndexOf(byte[] bytes, byte[] pattern)
    {
        for (int i = 0; i + pattern.Length <= bytes.Length; i++)
            if (bytes.AsSpan(i, pattern.Length).SequenceEqual(pattern)) return i;
        throw new InvalidOperationException("pattern not found");
    }

    /// <summary>The PNG with its IHDR width and height replaced (and the chunk's CRC fixed), pixel data unchanged.</summary>
    private static byte[] WithPngSize(byte[] png, int width, int height)
    {
        var bytes = png.ToArray();
        int type = IndexOf(bytes, "IHDR"u8.ToArray());
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(type + 4), width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(type + 8), height);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(type + 17), Crc32(bytes.AsSpan(type, 17)));
        return bytes;
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }
}
