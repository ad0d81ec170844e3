using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using FlatMinima.MLNet.ImageClassification;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using SkiaSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// The model's size and channels chosen from a sample of rows (no ImageHeight/ImageWidth), how many times Fit reads the
/// training data, and the streaming channel statistics.
/// </summary>
[TestClass]
public sealed class GeometryTests
{
    private static readonly MLContext Ml = new(seed: 1);

    // ---- size from a sample -----------------------------------------------------------------------------------------

    [TestMethod]
    public void OneHugeFirstImageAmongSmallOnesIsResizedToTheSampledSizeAndTrainingRuns()
    {
        var ml = new MLContext(seed: 1);
        var infos = Messages(ml, ChannelMessageKind.Info);
        var rows = TestData.Load("train", TestData.ThreeClasses, 7);
        rows[0].ImageSource = SolidPng(2000, 2000, new SKColor(90, 140, 200));
        long peakBefore = TestData.PeakResidentBytes();
        var model = TestData.Pipeline(ml, TestData.FastOptions(epochs: 1, batchSize: 8)).Fit(ml.Data.LoadFromEnumerable(rows));
        long growth = TestData.PeakResidentBytes() - peakBefore;

        var classifier = ((IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single().Model;
        Assert.AreEqual((3, 28, 28), (classifier.Channels, classifier.Height, classifier.Width), "28×28 from the sample; 3 channels (one image is in color)");
        StringAssert.EndsWith(infos.Single(m => m.Contains("ImageHeight/ImageWidth not set")),
            "] ImageHeight/ImageWidth not set: 28×28 chosen from 21 sampled rows (every row; median height and width; sizes seen: 28×28 ×20, 2000×2000 ×1); " +
            "3 channels (a sampled image is in color).");
        Assert.IsTrue(TestData.Scores(model.Transform(ml.Data.LoadFromEnumerable(rows))).All(s => s.All(float.IsFinite)));
        // A size taken from the first image would have held 21 × 3 × 2000×2000 floats (1 GB); the huge image now costs its own decode.
        if (peakBefore > 0) Assert.IsTrue(growth < 300L << 20, $"peak memory grew by {growth >> 20} MB");
    }

    [TestMethod]
    public void SizeIsTheLowerMedianHeightAndWidthOfTheSample()
    {
        Assert.AreEqual(3, ImageGeometrySample.LowerMedian(new[] { 9, 3, 1 }));
        Assert.AreEqual(2, ImageGeometrySample.LowerMedian(new[] { 4, 1, 3, 2 }), "even count: the lower of the two middle values");

        // Heights 8, 10, 16, 16, 40, 50 → 16; widths 12, 16, 20, 30, 40, 50 → 20: a size no image has, taken per side.
        var sizes = new[] { (8, 20), (16, 12), (40, 40), (16, 16), (10, 30), (50, 50) };
        var rows = sizes.Select((s, i) => new ImageRow { Label = i % 2 == 0 ? "a" : "b", ImageSource = SolidPng(s.Item2, s.Item1, new SKColor(200, 100, 50)) });
        var examples = Read(Keyed(rows));
        using var images = examples.Images;
        CollectionAssert.AreEqual(new long[] { 6, 3, 16, 20 }, images.shape);
        Assert.AreEqual(6, examples.Geometry!.UsableRows);
        StringAssert.StartsWith(examples.Geometry.Describe(), "ImageHeight/ImageWidth not set: 16×20 chosen from 6 sampled rows (every row; median height and width; sizes seen: 50×50 ×1, 40×40 ×1, ");
    }

    [TestMethod]
    public void SampleIsEveryKthRowUpToAThousandWhetherOrNotTheRowCountIsKnown()
    {
        // 2,500 rows whose size depends on row % 8: the sample is rows 0, 4, 8, … (k = 4, 625 rows), so only the sizes of
        // rows ≡ 0 and 4 (mod 8) are seen. Without a row count the pass doubles k as it goes (reading 1,000 + 500 + 125
        // values); with one it reads the 625 sampled values only. Same rows, same sizes, one cursor each.
        var color = Enumerable.Range(0, 8).Select(r => SolidPng(6, 4 + r, new SKColor(200, 100, 50))).ToArray();
        var rows = Enumerable.Range(0, 2500).Select(i => new ImageRow { Label = i % 2 == 0 ? "a" : "b", ImageSource = color[i % 8] }).ToList();
        var keyed = Keyed(rows);
        var input = ImageInput.FromColumn(keyed.Schema["ImageSource"], null, null, null);
        foreach (bool knowsCount in new[] { false, true })
        {
            var counted = new CountingDataView(keyed, "ImageSource", knowsCount ? 2500 : null);
            var sample = ImageGeometrySample.Take(counted, input, "ImageSource", chooseChannels: true);
            Assert.AreEqual((4L, 625, 2500L), (sample.Stride, sample.SampledRows, sample.Rows), $"count known: {knowsCount}");
            CollectionAssert.AreEqual(new[] { (4, 6, 313), (8, 6, 312) }, sample.Sizes.ToArray(), "rows ≡ 0 (mod 8) are 4×6, rows ≡ 4 are 8×6");
            Assert.AreEqual((4, 6, 3), (sample.Height, sample.Width, sample.Channels!.Value), "heights: 313 × 4 then 312 × 8; the element at 312 is 4");
            Assert.AreEqual(knowsCount ? 625 : 1625, sample.ValuesRead);
            Assert.AreEqual(1, counted.Cursors);
            Assert.AreEqual(2500, counted.RowsMoved);
        }
    }

    // ---- channels from the sample -----------------------------------------------------------------------------------

    [TestMethod]
    public void AllGraySampleGivesOneChannelAndOneColorImageGivesThree()
    {
        var gray = TestData.Load("train", TestData.ThreeClasses, 3);
        var grayRead = Read(Keyed(gray));
        using (grayRead.Images)
        {
            Assert.AreEqual((1, 1), (grayRead.Channels, grayRead.Geometry!.Channels));
            CollectionAssert.AreEqual(new long[] { 9, 1, 28, 28 }, grayRead.Images.shape);
        }
        gray[4].ImageSource = SolidPng(28, 28, new SKColor(200, 100, 50));
        var colorRead = Read(Keyed(gray));
        using (colorRead.Images)
        {
            Assert.AreEqual((3, 3), (colorRead.Channels, colorRead.Geometry!.Channels));
            CollectionAssert.AreEqual(new long[] { 9, 3, 28, 28 }, colorRead.Images.shape);
            StringAssert.EndsWith(colorRead.Geometry.Describe(), "; 3 channels (a sampled image is in color).");
        }
    }

    [TestMethod]
    public void AColorRowOutsideTheSampleIsConvertedToGrayByLuminance()
    {
        // 1,002 rows, no row count: rows 0–999 are read at k = 1, then k = 2, so row 1,001 is never sampled. It is the one
        // color row; the model has one channel and that row becomes 0.299 R + 0.587 G + 0.114 B.
        var grayPng = SolidPng(4, 4, new SKColor(30, 30, 30));
        var rows = Enumerable.Range(0, 1002).Select(i => new ImageRow { Label = i % 2 == 0 ? "a" : "b", ImageSource = grayPng }).ToList();
        rows[1001].ImageSource = SolidPng(4, 4, new SKColor(200, 100, 50));
        var examples = Read(new CountingDataView(Keyed(rows), "ImageSource", null));
        using var images = examples.Images;
        Assert.AreEqual(1, examples.Channels);
        StringAssert.Contains(examples.Geometry!.Describe(), "1 channel (every sampled image is gray; a later color row is converted to gray by luminance)");
        Assert.AreEqual((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, images[1001, 0, 2, 2].item<float>(), 1e-5);
        Assert.AreEqual(30 / 255f, images[1000, 0, 2, 2].item<float>(), 1e-7);
    }

    [TestMethod]
    public void NoUsableImageInTheSampleFailsAtTheFirstUsableRowAskingForASize()
    {
        // 1,002 rows, no row count: rows 0–1,000 are not images (skipped), row 1,001 is, but it is not in the sample
        // (k = 2 from row 1,000 on): there is no size to resize it to.
        var rows = Enumerable.Range(0, 1002).Select(i => new ImageRow { Label = i % 2 == 0 ? "a" : "b", ImageSource = new byte[] { 1, 2, 3 } }).ToList();
        rows[1001].ImageSource = SolidPng(4, 4, new SKColor(30, 30, 30));
        var data = new CountingDataView(Keyed(rows), "ImageSource", null);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ImageDataReader.Read(data, ImageInput.FromColumn(data.Schema["ImageSource"], null, null, null),
            "ImageSource", "Label", null, null, null, badImages: BadImagePolicy.Skip));
        Assert.AreEqual("Image column 'ImageSource', row 1001: ImageHeight and ImageWidth are not set and none of the 501 sampled rows had a usable image, " +
                        "so no size could be chosen from the data. Set ImageHeight and ImageWidth (e.g. 224 and 224): images are resized to that size.", e.Message);
    }

    // ---- how many times Fit reads the data --------------------------------------------------------------------------

    [TestMethod]
    public void FitReadsALazyViewABoundedNumberOfTimes()
    {
        var rows = TestData.Load("train", TestData.ThreeClasses, 8);
        var keyed = Keyed(rows);
        int n = rows.Count;
        (int Cursors, long Rows, long Images) Count(Action<FlatMinimaImageClassificationTrainer.Options> change)
        {
            var counted = new CountingDataView(keyed, "ImageSource", null);
            var trainer = Ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(TestData.FastOptions(epochs: 1, batchSize: 8, change));
            trainer.Fit(counted).Dispose();
            return (counted.Cursors, counted.RowsMoved, counted.ImageValuesRead);
        }

        // No size: a one-row emptiness probe (no column), the sampling pass (counts every row, reads the sample's images:
        // all of them up to 1,000 rows) and the decoding pass.
        Assert.AreEqual((3, 1 + 2L * n, 2L * n), Count(_ => { }));
        // ImageHeight/ImageWidth given (channels from the data or given): no sampling pass, but DataLoading Automatic
        // counts the rows (a cursor that reads no image) to choose between memory and streaming; InMemory does not.
        Assert.AreEqual((3, 1L + 2 * n, (long)n), Count(o => { o.ImageHeight = 28; o.ImageWidth = 28; }));
        Assert.AreEqual((2, 1L + n, (long)n), Count(o => { o.ImageChannels = 1; o.ImageHeight = 28; o.ImageWidth = 28; o.DataLoading = ImageDataLoading.InMemory; }));
        // Streaming: the same passes as in memory (the decoding pass keeps the bytes), then every epoch decodes from the kept bytes.
        Assert.AreEqual((3, 1 + 2L * n, 2L * n), Count(o => o.DataLoading = ImageDataLoading.Streaming));
    }

    [TestMethod]
    public void ExplicitSizeGivesTheSameModelAsTheSampledSizeWhenAllImagesHaveIt()
    {
        // Fashion-MNIST is 28×28 gray throughout: sampling picks 1×28×28, so the model is bit-identical to one trained with
        // ImageHeight/ImageWidth = 28 (and with ImageChannels unset, channels from every row).
        var data = Ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 6));
        float[] Weights(Action<FlatMinimaImageClassificationTrainer.Options> change)
        {
            var model = TestData.Pipeline(Ml, TestData.FastOptions(epochs: 1, batchSize: 8, change)).Fit(data);
            var classifier = ((IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();
            var weights = classifier.Model.Network.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray();
            classifier.Dispose();
            return weights;
        }
        CollectionAssert.AreEqual(Weights(_ => { }), Weights(o => { o.ImageHeight = 28; o.ImageWidth = 28; }));
    }

    // ---- channel statistics -----------------------------------------------------------------------------------------

    [TestMethod]
    public void StreamingChannelStatisticsEqualTheWholeTensorOnes()
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(7);
        var images = rand(new long[] { 37, 3, 5, 7 }, generator: generator).mul(tensor(new[] { 1f, 0.2f, 3f }).view(1, 3, 1, 1)).add(tensor(new[] { 0f, 0.7f, -1f }).view(1, 3, 1, 1));
        var dims = new long[] { 0, 2, 3 };
        var wholeMean = images.mean(dims).data<float>().ToArray();
        var wholeStd = images.std(dims, unbiased: false).data<float>().ToArray();

        var (mean, std) = ImageTrainingData.ChannelStatistics(new[] { 1L, 7, 13, 16 }.Select((b, i) => images.narrow(0, new long[] { 0, 1, 8, 21 }[i], b)));
        for (int c = 0; c < 3; c++)
        {
            Assert.AreEqual(wholeMean[c], mean[c], 1e-6, $"mean of channel {c}");
            Assert.AreEqual(wholeStd[c], std[c], 1e-6, $"std of channel {c}");
        }
        var (oneMean, oneStd) = ImageTrainingData.ChannelStatistics(images);
        CollectionAssert.AreEqual(wholeMean, oneMean, "one batch: exactly the whole-tensor mean");
        CollectionAssert.AreEqual(wholeStd, oneStd, "one batch: exactly the whole-tensor standard deviation");
        var (_, flatStd) = ImageTrainingData.ChannelStatistics(new[] { zeros(2, 1, 3, 3), zeros(3, 1, 3, 3) });
        Assert.AreEqual(1e-6f, flatStd[0], "a constant channel's deviation is clamped to 1e-6");
    }

    // ---- helpers ----------------------------------------------------------------------------------------------------

    private static ImageExamples Read(IDataView data) =>
        ImageDataReader.Read(data, ImageInput.FromColumn(data.Schema["ImageSource"], null, null, null), "ImageSource", "Label", null, null, null);

    private static IDataView Keyed(IEnumerable<ImageRow> rows)
    {
        var view = Ml.Data.LoadFromEnumerable(rows.ToList());
        return Ml.Transforms.Conversion.MapValueToKey("Label").Fit(view).Transform(view);
    }

    private static byte[] SolidPng(int width, int height, SKColor color)
    {
        using var bitmap = new SKBitmap(width, height);
        bitmap.Erase(color);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 90);
        return data.ToArray();
    }

    private static List<string> Messages(MLContext ml, ChannelMessageKind kind)
    {
        var messages = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == kind) lock (messages) messages.Add(e.Message);
        };
        return messages;
    }
}

/// <summary>
/// A lazy view (no row count unless given) that counts the cursors opened on it, the rows they moved to and the values
/// of one column read through their getters.
/// </summary>
internal sealed class CountingDataView : IDataView
{
    private readonly IDataView _inner;
    private readonly string _countedColumn;
    private readonly long? _rowCount;
    private int _cursors;
    private long _rows, _values;

    public CountingDataView(IDataView inner, string countedColumn, long? rowCount)
    {
        (_inner, _countedColumn, _rowCount) = (inner, countedColumn, rowCount);
    }

    public int Cursors => _cursors;

    public long RowsMoved => Interlocked.Read(ref _rows);

    public long ImageValuesRead => Interlocked.Read(ref _values);

    public bool CanShuffle => false;

    public DataViewSchema Schema => _inner.Schema;

    public long? GetRowCount() => _rowCount;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        Interlocked.Increment(ref _cursors);
        return new Cursor(this, _inner.GetRowCursor(columnsNeeded, rand));
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly CountingDataView _owner;
        private readonly DataViewRowCursor _inner;

        public Cursor(CountingDataView owner, DataViewRowCursor inner) => (_owner, _inner) = (owner, inner);

        public override DataViewSchema Schema => _inner.Schema;

        public override long Position => _inner.Position;

        public override long Batch => _inner.Batch;

        public override bool IsColumnActive(DataViewSchema.Column column) => _inner.IsColumnActive(column);

        public override ValueGetter<DataViewRowId> GetIdGetter() => _inner.GetIdGetter();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            var getter = _inner.GetGetter<TValue>(column);
            if (column.Name != _owner._countedColumn) return getter;
            return (ref TValue value) =>
            {
                Interlocked.Increment(ref _owner._values);
                getter(ref value);
            };
        }

        public override bool MoveNext()
        {
            if (!_inner.MoveNext()) return false;
            Interlocked.Increment(ref _owner._rows);
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
