using System;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

[TestClass]
public sealed class ImageColumnKindTests
{
    private static (IDataView Train, IDataView Test) PathData(MLContext ml)
    {
        var train = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 40).Select(r => new { r.Label, r.ImagePath }));
        var test = ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 20).Select(r => new { r.Label, r.ImagePath }));
        return (train, test);
    }

    private static void FitEvaluateRoundTrip(MLContext ml, IEstimator<ITransformer> prefix, string imageColumn, IDataView train, IDataView test)
    {
        var options = TestData.FastOptions();
        options.ImageColumnName = imageColumn;
        var model = prefix.Append(TestData.Pipeline(ml, options)).Fit(train);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Assert.IsTrue(metrics.MicroAccuracy > 0.7, $"micro-accuracy {metrics.MicroAccuracy}");
        using var stream = new MemoryStream();
        ml.Model.Save(model, train.Schema, stream);
        stream.Position = 0;
        var loaded = new MLContext().Model.Load(stream, out _);
        var before = TestData.Scores(model.Transform(test));
        var after = TestData.Scores(loaded.Transform(test));
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i], $"row {i}");
    }

    [TestMethod]
    public void MLImageColumnFromLoadImages()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = PathData(ml);
        FitEvaluateRoundTrip(ml, ml.Transforms.LoadImages("Image", null, "ImagePath"), "Image", train, test);
    }

    [TestMethod]
    public void PixelVectorColumnFromExtractPixels()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = PathData(ml);
        var prefix = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 28, 28))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image"));
        FitEvaluateRoundTrip(ml, prefix, "Pixels", train, test);
    }

    [TestMethod]
    public void ColorImagesOfOtherSizesAreResizedAndKeptInColor()
    {
        var ml = new MLContext(seed: 1);
        string dir = Path.Combine(Path.GetTempPath(), "flatminima-color-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            // Two classes that differ only in colour: a gray model could not separate them.
            var rows = Enumerable.Range(0, 48).Select(i =>
            {
                bool red = i % 2 == 0;
                int size = 20 + (i % 3) * 6; // 20, 26 or 32 pixels
                var rgba = new byte[size * size * 4];
                var random = new Random(i);
                for (int p = 0; p < size * size; p++)
                {
                    byte v = (byte)(120 + random.Next(60));
                    rgba[4 * p] = red ? v : (byte)40;
                    rgba[4 * p + 1] = 40;
                    rgba[4 * p + 2] = red ? (byte)40 : v;
                    rgba[4 * p + 3] = 255;
                }
                string path = Path.Combine(dir, $"{i}.{(i % 4 == 1 ? "jpg" : "png")}");
                using (var image = MLImage.CreateFromPixels(size, size, MLPixelFormat.Rgba32, rgba)) image.Save(path);
                return new ImageRow { Label = red ? "red" : "blue", ImageSource = File.ReadAllBytes(path), ImagePath = path };
            }).ToList();
            var data = ml.Data.LoadFromEnumerable(rows);
            var options = TestData.FastOptions();
            options.ImageHeight = 16;
            options.ImageWidth = 16;
            options.Epochs = 4;
            options.BatchSize = 8;
            var model = TestData.Pipeline(ml, options).Fit(data);
            var xf = ((System.Collections.Generic.IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();
            Assert.AreEqual(3, xf.Model.Channels, "colour detected");
            Assert.AreEqual((16, 16), (xf.Model.Height, xf.Model.Width));
            var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data));
            Assert.IsTrue(metrics.MicroAccuracy > 0.9, $"micro-accuracy {metrics.MicroAccuracy}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void GrayscaleDataGivesAOneChannelModel()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 10));
        var options = TestData.FastOptions();
        options.Epochs = 1;
        var model = TestData.Pipeline(ml, options).Fit(data);
        var xf = ((System.Collections.Generic.IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();
        Assert.AreEqual((1, 28, 28), (xf.Model.Channels, xf.Model.Height, xf.Model.Width));
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Byte), xf.FeatureColumnType);
    }
}
