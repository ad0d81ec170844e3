using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// <c>Precision = BFloat16</c> through <c>Fit</c>: the reports and the log say so, the trained and saved weights are
/// float32, the model file has the same entries as a float32 model's and scores the same after loading.
/// </summary>
[TestClass]
public sealed class MixedPrecisionPipelineTests
{
    private static FlatMinimaImageClassificationTransformer Classifier(ITransformer model) =>
        ((IEnumerable<ITransformer>)model).OfType<FlatMinimaImageClassificationTransformer>().Single();

    private static (ITransformer Model, List<EpochReport> Reports, List<string> Log, byte[] Zip) Train(MLContext ml, IDataView data, ComputePrecision precision)
    {
        var reports = new List<EpochReport>();
        var log = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("precision", StringComparison.OrdinalIgnoreCase)) lock (log) log.Add(e.Message); };
        var model = TestData.Pipeline(ml, TestData.FastOptions(epochs: 2, batchSize: 16, o => { o.Precision = precision; o.Progress = reports.Add; })).Fit(data);
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        return (model, reports, log, stream.ToArray());
    }

    private static string[] Entries(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        return archive.Entries.Select(e => e.FullName).OrderBy(n => n, StringComparer.Ordinal).ToArray();
    }

    [TestMethod]
    public void BFloat16TrainingSavesAFloat32ModelInTheSameFormat()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 12));
        var (mixed, reports, log, zip) = Train(ml, data, ComputePrecision.BFloat16);
        var (plain, plainReports, plainLog, plainZip) = Train(new MLContext(seed: 1), data, ComputePrecision.Float32);

        Assert.IsTrue(reports.Count == 2 && reports.All(r => r.Precision == ComputePrecision.BFloat16), "every epoch ran in bfloat16");
        Assert.IsTrue(plainReports.All(r => r.Precision == ComputePrecision.Float32));
        Assert.IsTrue(log.Any(m => m.Contains("bfloat16")), "the choice (or the emulation warning) is logged: " + string.Join(" | ", log));
        Assert.AreEqual(0, plainLog.Count, "Float32 logs nothing new");

        var network = Classifier(mixed).Model.Network;
        Assert.IsTrue(network.state_dict().Values.Where(t => t.is_floating_point()).All(t => t.dtype == ScalarType.Float32), "trained weights are float32");
        CollectionAssert.AreEqual(Entries(plainZip), Entries(zip), "the model file has the same entries");
        var plainKeys = Classifier(plain).Model.Network.state_dict().Select(p => $"{p.Key}:{p.Value.dtype}[{string.Join(",", p.Value.shape)}]").ToArray();
        CollectionAssert.AreEqual(plainKeys, network.state_dict().Select(p => $"{p.Key}:{p.Value.dtype}[{string.Join(",", p.Value.shape)}]").ToArray(),
            "same tensors, dtypes and shapes as a float32-trained model");

        var scores = TestData.Scores(mixed.Transform(data));
        Assert.IsFalse(scores.Zip(TestData.Scores(plain.Transform(data))).All(p => p.First.SequenceEqual(p.Second)), "bfloat16 training changes the model");
        var loaded = new MLContext(seed: 2).Model.Load(new MemoryStream(zip), out _);
        var reloaded = TestData.Scores(loaded.Transform(data));
        Assert.IsTrue(scores.Zip(reloaded).All(p => p.First.SequenceEqual(p.Second)), "the loaded model scores exactly as the trained one (float32 scoring)");
        Classifier(loaded).Dispose();
        Classifier(mixed).Dispose();
        Classifier(plain).Dispose();
    }
}
