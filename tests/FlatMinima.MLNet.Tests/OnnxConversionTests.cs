using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// <c>mlContext.Model.ConvertToOnnx</c> on whole pipelines (MapValueToKey → the trainer's transformer → MapKeyToValue)
/// over a pixel-vector column: the exported model, run through <c>ApplyOnnxModel</c> and directly in ONNX Runtime, gives
/// the transformer's scores (≤ 1e-5, max abs) and the same predicted labels; what cannot be exported fails saying why.
/// Images are small and training is one short epoch, so the suite stays fast.
/// </summary>
[TestClass]
public sealed class OnnxConversionTests
{
    private const double Tolerance = 1e-5;
    private static readonly string[] Classes = { "circle", "square", "cross" };

    [TestMethod]
    public void SmallCnnPipeline() =>
        AssertExportMatches(ImageClassifierArchitecture.SmallCnn, channels: 1, height: 12, width: 12);

    [TestMethod]
    public void ResNet20Pipeline() =>
        AssertExportMatches(ImageClassifierArchitecture.ResNet20, channels: 3, height: 10, width: 10);

    [TestMethod]
    public void ResNet18Pipeline() =>
        AssertExportMatches(ImageClassifierArchitecture.ResNet18, channels: 1, height: 8, width: 8);

    [TestMethod]
    public void PretrainedResNet18Pipeline() =>
        AssertExportMatches(ImageClassifierArchitecture.SmallCnn, channels: 3, height: 32, width: 32, o =>
        {
            o.Backbone = PretrainedBackbone.ResNet18ImageNet();
            o.FineTuning = FineTuningOptions.HeadOnly();
            (o.ImageHeight, o.ImageWidth) = (32, 32);
        });

    [TestMethod]
    public void FeaturizerWithAnMLNetTrainerPipeline()
    {
        var ml = new MLContext(seed: 1);
        var data = PixelData(ml, 16, 1, 12, 12, seed: 1);
        var options = TestData.FastOptions(epochs: 1, batchSize: 8, change: o =>
        {
            o.ImageColumnName = "Pixels";
            o.Architecture = ImageClassifierArchitecture.SmallCnn;
            o.SharpnessAware = null;
        });
        var classifier = TestData.Pipeline(ml, options).Fit(data);
        var trained = ((IEnumerable<ITransformer>)classifier).OfType<FlatMinimaImageClassificationTransformer>().Single();
        // The featurizer's embedding feeds an ML.NET trainer; the whole pipeline exports as one graph.
        var model = ml.Transforms.FlatMinimaFeaturizeImage("Features", "Pixels", trained)
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("Label", "Features"))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
            .Fit(data);
        var test = PixelData(ml, 10, 1, 12, 12, seed: 2);
        string file = Export(ml, model, data);
        try
        {
            AssertSameScores(ml, model, test, file, "Pixels", checkSlotNames: false);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [TestMethod]
    public void ExtractPixelsPipelineExportsFromThePixelColumn()
    {
        var ml = new MLContext(seed: 1);
        var raw = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 8).Select(r => new { r.Label, r.ImagePath }));
        var imagePreparation = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 28, 28))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", scaleImage: 1f / 255))
            .Append(ml.Transforms.SelectColumns("Label", "Pixels"));
        // The graph starts where the data view passed to ConvertToOnnx starts: a cache of the prepared data starts at the pixels.
        var pixels = ml.Data.Cache(imagePreparation.Fit(raw).Transform(raw));
        var options = TestData.FastOptions(epochs: 1, batchSize: 8, change: o => { o.ImageColumnName = "Pixels"; o.SharpnessAware = null; });
        var model = TestData.Pipeline(ml, options).Fit(pixels);
        string file = Export(ml, model, pixels);
        try
        {
            AssertSameScores(ml, model, pixels, file, "Pixels");
            // The whole chain from the image paths cannot be exported: the error says which column and why.
            var whole = imagePreparation.Append(TestData.Pipeline(ml, options)).Fit(raw);
            var e = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.ConvertToOnnx(whole, raw, Stream.Null));
            StringAssert.Contains(e.Message, "'Pixels' is not available in the ONNX graph");
            StringAssert.Contains(e.Message, "image loading, resizing and pixel extraction are not ONNX operations");
            // An opset below the one the graph is written for is refused, naming it.
            var opset = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.ConvertToOnnx(model, pixels, 11, Stream.Null));
            StringAssert.Contains(opset.Message, "opset 12");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [TestMethod]
    public void EncodedImageBytesAreRefusedSayingWhy()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 4));
        var model = TestData.Pipeline(ml, TestData.FastOptions(epochs: 1, batchSize: 4, change: o => o.SharpnessAware = null)).Fit(data);
        var e = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.ConvertToOnnx(model, data, Stream.Null));
        StringAssert.Contains(e.Message, "the image column 'ImageSource' holds encoded image bytes");
        StringAssert.Contains(e.Message, "Image decoding and resizing are not part of the ONNX graph");
        StringAssert.Contains(e.Message, "ExtractPixels");
    }

    [TestMethod]
    public void CustomNetworkIsRefusedNamingItsModules()
    {
        var ml = new MLContext(seed: 1);
        var data = PixelData(ml, 12, 1, 10, 10, seed: 3);
        var options = TestData.FastOptions(epochs: 1, batchSize: 4, change: o =>
        {
            o.ImageColumnName = "Pixels";
            o.SharpnessAware = null;
            o.CustomModelName = "OnnxTestMlp";
            o.CustomModelFactory = (c, k) => TorchSharp.torch.nn.Sequential(TorchSharp.torch.nn.Flatten(), TorchSharp.torch.nn.Linear(c * 100, 16),
                TorchSharp.torch.nn.SiLU(), TorchSharp.torch.nn.Linear(16, k));
        });
        var model = TestData.Pipeline(ml, options).Fit(data);
        var e = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.ConvertToOnnx(model, data, Stream.Null));
        StringAssert.Contains(e.Message, "not one of the built-in architectures");
        StringAssert.Contains(e.Message, "SiLU");
    }

    [TestMethod]
    [DataRow(PrototypeNormalization.Prototypes)]
    [DataRow(PrototypeNormalization.Cosine)]
    [DataRow(PrototypeNormalization.None)]
    public void IncrementalFewShotClassifierAfterASession(PrototypeNormalization normalization)
    {
        var ml = new MLContext(seed: 1);
        FlatMinimaIncrementalFewShotTrainer Trainer() => ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(new FlatMinimaIncrementalFewShotTrainer.Options
        {
            ImageColumnName = "Pixels",
            Architecture = ImageClassifierArchitecture.SmallCnn,
            FlatRegion = new FlatRegionOptions { RangeLayerCount = 1 },
            Session = new IncrementalSessionOptions { Normalization = normalization, Epochs = 2 },
            Epochs = 1,
            BatchSize = 8,
            LearningRate = 0.01,
            Device = DeviceKind.Cpu,
        });
        var baseRows = PixelData(ml, 18, 1, 12, 12, seed: 7);
        using var baseModel = Trainer().Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(baseRows).Transform(baseRows));
        var sessionRows = PixelData(ml, 3, 1, 12, 12, seed: 8, label: "ring");
        using var model = Trainer().Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(sessionRows).Transform(sessionRows), baseModel);
        Assert.AreEqual(4, model.ClassCount);
        // The exported graph starts at the text label and the pixels: MapValueToKey (in the model's class order) is part of it.
        var test = PixelData(ml, 8, 1, 12, 12, seed: 9);
        var keyed = model.MapLabelToKey(ml, "Label").Fit(test).Transform(test);
        string file = Export(ml, model, keyed);
        try
        {
            var scored = model.Transform(keyed);
            var expected = scored.GetColumn<float[]>("Score").ToArray();
            var onnx = ml.Transforms.ApplyOnnxModel(new[] { "Score.output", "PredictedLabel.output" }, new[] { "Label", "Pixels" }, file).Fit(test).Transform(test);
            double maxAbs = MaxAbs(expected, onnx.GetColumn<float[]>("Score").ToArray());
            Console.WriteLine($"F2M ({normalization}): max |score_ONNX − score_ML.NET| = {maxAbs:E2}; largest score {expected.Max(s => s.Max()):F3}");
            Assert.IsLessThanOrEqualTo(Tolerance, maxAbs, "F2M scores");
            CollectionAssert.AreEqual(scored.GetColumn<uint>("PredictedLabel").ToArray(), onnx.GetColumn<uint[]>("PredictedLabel").Select(k => k.Single()).ToArray(),
                "F2M predicted keys");
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static void AssertExportMatches(ImageClassifierArchitecture architecture, int channels, int height, int width,
        Action<FlatMinimaImageClassificationTrainer.Options>? change = null)
    {
        var ml = new MLContext(seed: 1);
        var data = PixelData(ml, 16, channels, height, width, seed: 1);
        var options = TestData.FastOptions(epochs: 1, batchSize: 8, change: o =>
        {
            o.ImageColumnName = "Pixels";
            o.Architecture = architecture;
            o.SharpnessAware = null;
            o.LearningRate = 0.002;   // a short, gentle run keeps the scores away from 0 and 1, where differences would hide
            change?.Invoke(o);
        });
        var model = TestData.Pipeline(ml, options).Fit(data);
        var test = PixelData(ml, 10, channels, height, width, seed: 2);
        string file = Export(ml, model, data);
        try
        {
            AssertSameScores(ml, model, test, file, "Pixels");
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string Export(MLContext ml, ITransformer model, IDataView data)
    {
        string file = Path.Combine(Path.GetTempPath(), $"flatminima-onnx-{Guid.NewGuid():N}.onnx");
        using (var stream = File.Create(file)) ml.Model.ConvertToOnnx(model, data, stream);
        return file;
    }

    // The ML.NET model's Score and PredictedLabel against the ONNX model's, through ApplyOnnxModel and directly in ONNX Runtime.
    private static void AssertSameScores(MLContext ml, ITransformer model, IDataView test, string file, string pixelColumn, bool checkSlotNames = true)
    {
        var scored = model.Transform(test);
        var expectedScores = scored.GetColumn<float[]>("Score").ToArray();
        var expectedLabels = scored.GetColumn<string>("PredictedLabel").ToArray();

        // Outside ML.NET: the graph's inputs are the pipeline's input columns (the label is read by the exported MapValueToKey).
        using var session = new InferenceSession(file);
        var onnx = ml.Transforms.ApplyOnnxModel(new[] { "Score.output", "PredictedLabel.output" }, new[] { "Label", pixelColumn }, file).Fit(test).Transform(test);
        // ApplyOnnxModel names the columns without ML.NET's ".output" suffix and restores the score slot names from the graph.
        var scores = onnx.GetColumn<float[]>("Score").ToArray();
        var labels = onnx.GetColumn<string[]>("PredictedLabel").Select(l => l.Single()).ToArray();
        if (checkSlotNames)
        {
            VBuffer<ReadOnlyMemory<char>> slotNames = default, onnxSlotNames = default;
            scored.Schema["Score"].GetSlotNames(ref slotNames);
            onnx.Schema["Score"].GetSlotNames(ref onnxSlotNames);
            CollectionAssert.AreEqual(slotNames.DenseValues().Select(n => n.ToString()).ToArray(), onnxSlotNames.DenseValues().Select(n => n.ToString()).ToArray(), "score slot names");
        }
        double maxAbs = MaxAbs(expectedScores, scores);
        Console.WriteLine($"ApplyOnnxModel: max |score_ONNX − score_ML.NET| = {maxAbs:E2} over {scores.Length} rows; largest score {expectedScores.Max(s => s.Max()):F3}");
        Assert.IsLessThanOrEqualTo(Tolerance, maxAbs, "ApplyOnnxModel scores");
        CollectionAssert.AreEqual(expectedLabels, labels, "ApplyOnnxModel predicted labels");

        var pixels = test.GetColumn<float[]>(pixelColumn).ToArray();
        var shape = session.InputMetadata[pixelColumn].Dimensions.Skip(1).Prepend(pixels.Length).ToArray();
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor(pixelColumn, new DenseTensor<float>(pixels.SelectMany(p => p).ToArray(), shape)),
            NamedOnnxValue.CreateFromTensor("Label", new DenseTensor<string>(test.GetColumn<string>("Label").ToArray(), new[] { pixels.Length, 1 })),
        };
        using var results = session.Run(inputs);
        var direct = results.Single(r => r.Name == "Score.output").AsTensor<float>().ToArray();
        var directScores = Enumerable.Range(0, pixels.Length).Select(i => direct.Skip(i * expectedScores[0].Length).Take(expectedScores[0].Length).ToArray()).ToArray();
        Assert.IsLessThanOrEqualTo(Tolerance, MaxAbs(expectedScores, directScores), "ONNX Runtime scores");
        CollectionAssert.AreEqual(expectedLabels, results.Single(r => r.Name == "PredictedLabel.output").AsTensor<string>().ToArray(), "ONNX Runtime predicted labels");
    }

    private static double MaxAbs(float[][] expected, float[][] actual)
    {
        Assert.AreEqual(expected.Length, actual.Length, "rows");
        double max = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.AreEqual(expected[i].Length, actual[i].Length, $"row {i}: score slots");
            for (int k = 0; k < expected[i].Length; k++) max = Math.Max(max, Math.Abs(expected[i][k] - actual[i][k]));
        }
        return max;
    }

    /// <summary>
    /// <paramref name="n"/> rows of random C×H×W pixel vectors (a <c>Vector&lt;Single, C, H, W&gt;</c> column 'Pixels', values in
    /// 0–1) whose brightness depends on the class, with a text label.
    /// </summary>
    private static IDataView PixelData(MLContext ml, int n, int channels, int height, int width, int seed, string? label = null)
    {
        var random = new Random(seed);
        var rows = Enumerable.Range(0, n).Select(i => new PixelRow
        {
            Label = label ?? Classes[i % Classes.Length],
            Pixels = Enumerable.Range(0, channels * height * width).Select(_ => (float)(0.25 * (i % Classes.Length) + 0.5 * random.NextDouble())).ToArray(),
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(PixelRow));
        schema["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, channels, height, width);
        return ml.Data.LoadFromEnumerable(rows, schema);
    }

    private sealed class PixelRow
    {
        public string Label { get; set; } = "";
        public float[] Pixels { get; set; } = Array.Empty<float>();
    }
}
