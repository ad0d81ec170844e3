using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using FlatMinima.Benchmarks;
using FlatMinima.Plotting;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class ComparisonPlotsTests
{
    private static readonly LabelledPointSeries[] TwoRates =
    {
        new("noise r = 0", new[] { new LabelledPoint("SGD", 10, 90.5, 0.3), new LabelledPoint("SAM", 21, 91.2, 0.2) }),
        new("noise r = 0.4", new[] { new LabelledPoint("SGD", 11, 70.1, 1.5), new LabelledPoint("SAM", 22, 75.0, 0) }),
    };

    [TestMethod]
    public void LabelledPointsAreWrittenAsAPngOfTheAskedSize()
    {
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-comparison-{Guid.NewGuid():N}.png");
        try
        {
            ComparisonPlots.SaveLabelledPointsPng(TwoRates, path, "accuracy vs time", "seconds", "accuracy (%)", width: 640, height: 420);
            var bytes = File.ReadAllBytes(path);
            CollectionAssert.AreEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, bytes.Take(4).ToArray(), "a PNG file");
            // IHDR: width and height, big-endian, at bytes 16–23.
            Assert.AreEqual(640, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16, 4)));
            Assert.AreEqual(420, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20, 4)));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void PointsThatCannotBeDrawnAreRejectedByName()
    {
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-comparison-{Guid.NewGuid():N}.png");
        var bad = new[] { new LabelledPointSeries("r", new[] { new LabelledPoint("ASAM", double.NaN, 80, 1) }) };
        var e = Assert.ThrowsExactly<ArgumentException>(() => ComparisonPlots.SaveLabelledPointsPng(bad, path, "", "", ""));
        StringAssert.Contains(e.Message, "ASAM");
        var negative = new[] { new LabelledPointSeries("r", new[] { new LabelledPoint("SAM", 1, 80, -1) }) };
        Assert.ThrowsExactly<ArgumentException>(() => ComparisonPlots.SaveLabelledPointsPng(negative, path, "", "", ""));
        var empty = new[] { new LabelledPointSeries("r", Array.Empty<LabelledPoint>()) };
        Assert.ThrowsExactly<ArgumentException>(() => ComparisonPlots.SaveLabelledPointsPng(empty, path, "", "", ""));
        Assert.IsFalse(File.Exists(path), "nothing written");
    }

    private static EpochReport Epoch(long steps, long sharpnessAware) =>
        new(1, 1, 0.5, 0.8, null, null, 0.1, TimeSpan.FromSeconds(1)) { Steps = steps, SharpnessAwareSteps = sharpnessAware };

    [TestMethod]
    public void PassesPerStepCountOneForEveryStepAndOneMoreForEverySharpnessAwareStep()
    {
        Assert.AreEqual(1.0, MethodCost.PassesPerStep(new[] { Epoch(40, 0), Epoch(40, 0) }), 1e-12);
        Assert.AreEqual(2.0, MethodCost.PassesPerStep(new[] { Epoch(40, 40), Epoch(40, 40) }), 1e-12);
        Assert.AreEqual(1.25, MethodCost.PassesPerStep(new[] { Epoch(40, 20), Epoch(40, 0) }), 1e-12);
        Assert.IsTrue(double.IsNaN(MethodCost.PassesPerStep(Array.Empty<EpochReport>())));
    }

    [TestMethod]
    public void GainPerExtraSecondDividesThePointsByTheExtraTimeOrSaysNotApplicable()
    {
        Assert.AreEqual("+0.1000", MethodCost.GainPerExtraSecond(2.0, 30, 10));
        Assert.AreEqual("-0.0500", MethodCost.GainPerExtraSecond(-1.0, 30, 10));
        Assert.AreEqual("n/a", MethodCost.GainPerExtraSecond(2.0, 10, 10), "not slower than SGD");
        Assert.AreEqual("n/a", MethodCost.GainPerExtraSecond(2.0, 8, 10), "faster than SGD");
        Assert.AreEqual("n/a", MethodCost.GainPerExtraSecond(2.0, 30, null), "no SGD run");
        Assert.AreEqual("n/a", MethodCost.GainPerExtraSecond(double.NaN, 30, 10), "no paired gap");
    }

    private sealed record Run(string Method, int Seed, double Accuracy, double Memorized);

    private sealed record File1(string Mode, Run[] Runs);

    [TestMethod]
    public void ResultFilesRoundTripJsonWithNaNAndWriteInvariantCsv()
    {
        var runs = new[] { new Run("sgd", 1, 0.8125, double.NaN), new Run("sam, bf16", 2, 0.5, 0.25) };
        (string, Func<Run, object>)[] columns = { ("method", r => r.Method), ("seed", r => r.Seed), ("accuracy", r => r.Accuracy), ("memorized", r => r.Memorized) };
        string json = Path.Combine(Path.GetTempPath(), $"flatminima-results-{Guid.NewGuid():N}.json");
        string csv = Path.ChangeExtension(json, ".csv");
        try
        {
            ResultFiles.Write(json, new File1("label-noise", runs), runs, columns);
            var back = ResultFiles.Read<File1>(json, "--noise-from");
            Assert.AreEqual("label-noise", back.Mode);
            Assert.AreEqual(0.8125, back.Runs[0].Accuracy);
            Assert.IsTrue(double.IsNaN(back.Runs[0].Memorized));
            Assert.AreEqual("sam, bf16", back.Runs[1].Method);

            ResultFiles.Write(csv, new File1("label-noise", runs), runs, columns);
            var lines = File.ReadAllLines(csv);
            CollectionAssert.AreEqual(new[] { "method,seed,accuracy,memorized", "sgd,1,0.8125,NaN", "\"sam, bf16\",2,0.5,0.25" }, lines);
        }
        finally
        {
            File.Delete(json);
            File.Delete(csv);
        }
    }

    [TestMethod]
    public void OutputFileOptionsAreCheckedByExtension()
    {
        BenchmarkPlots.CheckPng(null, "--noise-plot");
        BenchmarkPlots.CheckPng("a.PNG", "--noise-plot");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => BenchmarkPlots.CheckPng("a.jpg", "--noise-plot")).Message, "--noise-plot");
        ResultFiles.CheckResults("r.csv", "--budget-results");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ResultFiles.CheckResults("r.txt", "--budget-results")).Message, "--budget-results");
        Assert.ThrowsExactly<FileNotFoundException>(() => ResultFiles.CheckSource(Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.json"), "--noise-from"));
    }
}
