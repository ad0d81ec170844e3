using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Cli.Tests;

/// <summary>train → info → evaluate → predict on 3 classes × 30 images of the embedded subset (2 epochs, 28×28).</summary>
[TestClass]
public sealed class TrainInfoEvaluatePredictTests
{
    private static readonly string[] Classes = ["Bag", "Sneaker", "Trouser"];
    private static string _folder = "";
    private static string _model = "";
    private static string _report = "";
    private static CliResult _train = null!;

    [ClassInitialize]
    public static void TrainOnce(TestContext _)
    {
        _folder = Cli.ImageFolder("three-classes", 30, Classes);
        _model = Cli.TempPath("three-out/model.zip");
        _report = Cli.TempPath("three-out/report");
        _train = Cli.Run("train", _folder, "--epochs", "2", "--seed", "3", "--out", _model, "--report", _report, "--json");
    }

    [TestMethod]
    public void TrainWritesTheModelTheReportAndOneJsonDocument()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        Assert.IsTrue(File.Exists(_model), _train.ToString());
        Assert.IsFalse(File.Exists(_model + ".checkpoint"), "a completed run deletes its checkpoint");
        var json = _train.Json();
        Assert.AreEqual(Path.GetFullPath(_model), json.GetProperty("model").GetString());
        CollectionAssert.AreEqual(Classes, json.GetProperty("classes").EnumerateArray().Select(c => c.GetString()).ToArray());
        Assert.AreEqual(2, json.GetProperty("epochs").GetArrayLength());
        // 20 % of each class of 30 held out: 6 per class.
        var test = json.GetProperty("test");
        Assert.AreEqual(18, test.GetProperty("rows").GetInt64());
        double confusionTotal = test.GetProperty("confusion").EnumerateArray().SelectMany(r => r.EnumerateArray()).Sum(v => v.GetDouble());
        Assert.AreEqual(18, confusionTotal);
        double accuracy = test.GetProperty("microAccuracy").GetDouble();
        double diagonal = Enumerable.Range(0, 3).Sum(i => test.GetProperty("confusion")[i][i].GetDouble());
        Assert.AreEqual(diagonal / 18, accuracy, 1e-9, "micro-accuracy is the confusion matrix's diagonal share");
    }

    [TestMethod]
    public void ReportHasThePlotsAndTheHtmlEmbedsEveryImage()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        foreach (string png in new[] { "loss.png", "accuracy.png", "confusion-matrix.png", "per-class.png" })
        {
            string path = Path.Combine(_report, png);
            Assert.IsTrue(File.Exists(path), path);
            var header = File.ReadAllBytes(path).Take(8).ToArray();
            CollectionAssert.AreEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, header, $"{png} is a PNG");
        }
        string html = File.ReadAllText(Path.Combine(_report, "report.html"));
        var sources = Regex.Matches(html, "(?:src|href)\\s*=\\s*\"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.AreEqual(4, sources.Count, "one embedded image per plot");
        Assert.IsTrue(sources.All(s => s.StartsWith("data:image/png;base64,", StringComparison.Ordinal)), string.Join("\n", sources.Select(s => s[..Math.Min(60, s.Length)])));
        foreach (string source in sources) Convert.FromBase64String(source["data:image/png;base64,".Length..]);
        StringAssert.Contains(html, "Trouser");
        Assert.IsFalse(Regex.IsMatch(html, "url\\(|<link|<script"), "no external resources");
    }

    [TestMethod]
    public void InfoReadsTheClassesGeometryAndRunRecordFromTheZip()
    {
        var info = Cli.Run("info", "--model", _model, "--json");
        Assert.AreEqual(ExitCodes.Success, info.ExitCode, info.ToString());
        var json = info.Json();
        Assert.AreEqual("SmallCnn", json.GetProperty("architecture").GetString());
        CollectionAssert.AreEqual(Classes, json.GetProperty("classes").EnumerateArray().Select(c => c.GetString()).ToArray());
        Assert.AreEqual(1, json.GetProperty("channels").GetInt32(), "Fashion-MNIST is gray");
        Assert.AreEqual(28, json.GetProperty("height").GetInt32());
        var run = json.GetProperty("run");
        Assert.AreEqual(2, run.GetProperty("epochsCompleted").GetInt32());
        Assert.AreEqual(72, run.GetProperty("trainImages").GetInt64());
        Assert.AreEqual(_train.Json().GetProperty("test").GetProperty("microAccuracy").GetDouble(), run.GetProperty("test").GetProperty("microAccuracy").GetDouble());
        Assert.AreEqual("3", run.GetProperty("options").GetProperty("seed").GetString());

        var text = Cli.Run("info", "--model", _model);
        StringAssert.Contains(text.Output, "Classes:      3: Bag, Sneaker, Trouser");
    }

    [TestMethod]
    public void EvaluateScoresEveryImageOfTheFolderAndWritesAReport()
    {
        string report = Cli.TempPath("three-out/evaluate-report");
        var result = Cli.Run("evaluate", "--model", _model, _folder, "--report", report, "--json");
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        var metrics = result.Json().GetProperty("metrics");
        Assert.AreEqual(90, metrics.GetProperty("rows").GetInt64());
        Assert.AreEqual(0, metrics.GetProperty("skipped").GetInt64());
        var rowTotals = metrics.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray().Sum(v => v.GetDouble())).ToArray();
        CollectionAssert.AreEqual(new double[] { 30, 30, 30 }, rowTotals);
        Assert.IsTrue(File.Exists(Path.Combine(report, "confusion-matrix.png")));
        Assert.IsTrue(File.Exists(Path.Combine(report, "report.html")));
    }

    [TestMethod]
    public void EvaluateLeavesOutAnUndecodableImageAndCountsIt()
    {
        string folder = Cli.ImageFolder("three-with-bad", 5, Classes);
        File.WriteAllBytes(Path.Combine(folder, "Bag", "broken.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var result = Cli.Run("evaluate", "--model", _model, folder, "--json");
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        var metrics = result.Json().GetProperty("metrics");
        Assert.AreEqual(15, metrics.GetProperty("rows").GetInt64());
        Assert.AreEqual(1, metrics.GetProperty("skipped").GetInt64());
    }

    [TestMethod]
    public void PredictGivesTheTopClassesOfEachImageInScoreOrder()
    {
        string[] files = Classes.Select(c => Directory.GetFiles(Path.Combine(_folder, c)).Order(StringComparer.Ordinal).First()).ToArray();
        var result = Cli.Run(["predict", "--model", _model, .. files, "--top", "2", "--json"]);
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        var predictions = result.Json().GetProperty("predictions").EnumerateArray().ToArray();
        Assert.AreEqual(3, predictions.Length);
        for (int i = 0; i < 3; i++)
        {
            Assert.AreEqual(Path.GetFullPath(files[i]), predictions[i].GetProperty("file").GetString());
            var top = predictions[i].GetProperty("top").EnumerateArray().Select(t => (Label: t.GetProperty("label").GetString(), P: t.GetProperty("probability").GetDouble())).ToArray();
            Assert.AreEqual(2, top.Length);
            Assert.IsTrue(top[0].P >= top[1].P && top.Sum(t => t.P) <= 1 + 1e-6 && top.All(t => t.P >= 0));
            Assert.AreEqual(top[0].Label, predictions[i].GetProperty("predictedLabel").GetString());
            CollectionAssert.Contains(Classes, top[0].Label);
        }
        // Text mode: one line per file, with the predicted class.
        var text = Cli.Run("predict", "--model", _model, files[0]);
        Assert.AreEqual(ExitCodes.Success, text.ExitCode, text.ToString());
        StringAssert.StartsWith(text.Output, Path.GetFullPath(files[0]) + "\t" + predictions[0].GetProperty("predictedLabel").GetString());
    }

    [TestMethod]
    public void PredictReportsAnUndecodableFileWithADataErrorExitCode()
    {
        string bad = Cli.TempPath("three-out/not-an-image.jpg");
        File.WriteAllText(bad, "not an image");
        var result = Cli.Run("predict", "--model", _model, bad, "--json");
        Assert.AreEqual(ExitCodes.DataError, result.ExitCode, result.ToString());
        var prediction = result.Json().GetProperty("predictions")[0];
        Assert.AreEqual(JsonValueKind.Null, prediction.GetProperty("predictedLabel").ValueKind);
        StringAssert.Contains(prediction.GetProperty("error").GetString(), "not a decodable image");
    }

    [TestMethod]
    public void SharpnessReportsTheMeasuresAndPlotsALandscape()
    {
        string report = Cli.TempPath("three-out/sharpness");
        var result = Cli.Run("sharpness", "--model", _model, _folder, "--max-examples", "12", "--quick", "--report", report, "--json");
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        var json = result.Json();
        Assert.AreEqual(12, json.GetProperty("examples").GetInt32());
        Assert.IsTrue(double.IsFinite(json.GetProperty("loss").GetDouble()) && json.GetProperty("loss").GetDouble() > 0);
        Assert.AreEqual(1, json.GetProperty("topEigenvalues").GetArrayLength());
        string png = json.GetProperty("landscape").GetString()!;
        Assert.AreEqual(Path.Combine(Path.GetFullPath(report), "landscape-1d.png"), png);
        Assert.IsTrue(File.Exists(png));
        string html = File.ReadAllText(Path.Combine(report, "report.html"));
        StringAssert.Contains(html, "Hessian trace (Hutchinson)");
        Assert.AreEqual(1, Regex.Matches(html, "src=\"data:image/png;base64,").Count);
    }

    [TestMethod]
    public void AModelThatIsNotAZipIsADataError()
    {
        string bad = Cli.TempPath("three-out/bad.zip");
        File.WriteAllText(bad, "not a zip");
        var result = Cli.Run("info", "--model", bad);
        Assert.AreEqual(ExitCodes.DataError, result.ExitCode, result.ToString());
        StringAssert.StartsWith(result.Error, "error: --model");
        StringAssert.Contains(result.Error, "hint:");
    }
}
