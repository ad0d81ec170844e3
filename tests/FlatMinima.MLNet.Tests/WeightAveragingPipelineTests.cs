using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

/// <summary>An image row with a domain (environment) column.</summary>
public sealed class DomainImageRow
{
    public string Label { get; set; } = "";
    public byte[] ImageSource { get; set; } = Array.Empty<byte>();
    public string Domain { get; set; } = "";
}

[TestClass]
public sealed class WeightAveragingPipelineTests
{
    private static IDataView Rows(MLContext ml, int perClass, int skip = 0) =>
        ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, perClass, skip)
            .Select((r, i) => new DomainImageRow { Label = r.Label, ImageSource = r.ImageSource, Domain = i % 2 == 0 ? "even" : "odd" }));

    private static FlatMinimaImageClassificationTrainer.Options SamSwad(Action<FlatMinimaImageClassificationTrainer.Options>? change = null)
    {
        var o = FlatMinimaImageClassificationTrainer.Options.SamSwad(rho: 0.05, evaluationFrequency: 2);
        o.ImageColumnName = "ImageSource";
        o.DomainColumnName = "Domain";
        o.Epochs = 4;
        o.BatchSize = 8;
        o.Device = DeviceKind.Cpu;
        o.ScoringBatchSize = 16;
        change?.Invoke(o);
        return o;
    }

    [TestMethod]
    public void SamSwadPipelineFitsSavesLoadsAndEvaluates()
    {
        var ml = new MLContext(seed: 1);
        var reports = new List<EpochReport>();
        var logged = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("SWAD")) logged.Add(e.Message); };
        var options = SamSwad(o => o.Progress = reports.Add);
        var model = TestData.Pipeline(ml, options).Fit(Rows(ml, 40));

        var averaging = reports[^1].Averaging;
        Assert.IsNotNull(averaging, "the last progress report states the averaging window");
        Assert.AreEqual("SWAD", averaging!.Method);
        Assert.IsTrue(averaging.AveragedSteps > 0 && averaging.StartStep <= averaging.EndStep, averaging.ToString());
        Assert.IsTrue(logged.Any(m => m.Contains("averaged")), "the window is in the ML.NET log");

        var test = Rows(ml, 20, skip: 40);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Assert.IsTrue(metrics.MicroAccuracy > 0.6, $"the averaged model classifies unseen images: {metrics.MicroAccuracy:P1}");

        string zip = Path.Combine(Path.GetTempPath(), $"flatminima-samswad-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, Rows(ml, 1).Schema, zip);
            var loaded = new MLContext(seed: 2).Model.Load(zip, out _);
            var before = TestData.Scores(model.Transform(test));
            var after = TestData.Scores(loaded.Transform(test));
            for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i], $"row {i}");
        }
        finally
        {
            File.Delete(zip);
        }
    }

    [TestMethod]
    public void SwaAndEmaTrainThroughTheTrainer()
    {
        foreach (var averaging in new WeightAveragingOptions[] { WeightAveragingOptions.Swa(startEpoch: 2), WeightAveragingOptions.Ema(0.9, warmup: true) })
        {
            var ml = new MLContext(seed: 1);
            AveragingReport? last = null;
            var options = TestData.FastOptions(epochs: 2, batchSize: 16, o =>
            {
                o.Averaging = averaging;
                o.Progress = r => last = r.Averaging ?? last;
            });
            var data = Rows(ml, 12);
            var model = TestData.Pipeline(ml, options).Fit(data);
            Assert.IsNotNull(last, averaging.ToString());
            Assert.IsTrue(last!.AveragedSteps > 0, last.ToString());
            Assert.IsTrue(TestData.Scores(model.Transform(data)).All(s => s.All(float.IsFinite)));
        }
    }

    [TestMethod]
    public void BadAveragingOptionsAreRejectedNamingTheOption()
    {
        var ml = new MLContext(seed: 1);
        void Expect<TException>(Action<FlatMinimaImageClassificationTrainer.Options> change, string name) where TException : ArgumentException
        {
            var e = Assert.ThrowsExactly<TException>(() => ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(SamSwad(change)));
            Assert.AreEqual(name, e.ParamName);
            StringAssert.Contains(e.Message, name);
        }
        Expect<ArgumentOutOfRangeException>(o => o.Averaging = WeightAveragingOptions.Swad(optimumPatience: 3, overfitPatience: 2), "Averaging.OverfitPatience");
        Expect<ArgumentOutOfRangeException>(o => o.Averaging = WeightAveragingOptions.Swad(toleranceRatio: -1), "Averaging.ToleranceRatio");
        Expect<ArgumentOutOfRangeException>(o => o.Averaging = WeightAveragingOptions.Swad(evaluationFrequency: 0), "Averaging.EvaluationFrequency");
        Expect<ArgumentException>(o => o.ValidationFraction = 0, "ValidationFraction");
        Expect<ArgumentOutOfRangeException>(o => o.ValidationFraction = 1, "ValidationFraction");

        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TestData.Pipeline(ml, SamSwad(o => o.DomainColumnName = "Environment")).Fit(Rows(ml, 6)));
        StringAssert.Contains(missing.Message, "'Environment'");
        var tiny = Assert.ThrowsExactly<InvalidOperationException>(() => TestData.Pipeline(ml, SamSwad(o => o.ValidationFraction = 0.01)).Fit(Rows(ml, 6)));
        StringAssert.Contains(tiny.Message, "ValidationFraction");
    }

    [TestMethod]
    public void HeldOutValidationIsStratifiedByLabelAndDomain()
    {
        long[] labels = { 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1 };
        long[] domains = Enumerable.Range(0, 20).Select(i => (long)(i / 10)).ToArray();
        var (train, validation) = ValidationSplit.Stratified(labels, domains, 0.2, seed: 3);
        Assert.AreEqual(20, train.Length + validation.Length);
        Assert.AreEqual(4, validation.Length, "one of each of the four (label, domain) groups of five");
        Assert.AreEqual(4, validation.Select(i => (labels[i], domains[i])).Distinct().Count());
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 20).Select(i => (long)i).ToArray(), train.Concat(validation).ToArray());
        Assert.AreNotEqual(string.Join(",", validation), string.Join(",", ValidationSplit.Stratified(labels, domains, 0.2, seed: 4).Validation), "the seed decides");
    }
}
