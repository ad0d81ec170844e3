using System;
using System.IO;
using System.Linq;
using System.Text.Json;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Cli.Tests;

/// <summary>
/// train --incremental → add-classes → info → evaluate → predict on the embedded subset: a ResNet-20 F2M base model on 3
/// classes × 15 images (2 epochs, 28×28), then a session adding 2 classes from 5 shots each; and the documented errors.
/// </summary>
[TestClass]
public sealed class IncrementalTests
{
    private static readonly string[] BaseClasses = ["Bag", "Sneaker", "Trouser"];
    private static readonly string[] NewClasses = ["Sandal", "Shirt"];
    private static string _base = "";
    private static string _session = "";
    private static string _test = "";
    private static string _next = "";
    private static string _nextReport = "";
    private static CliResult _train = null!;
    private static CliResult _add = null!;

    [ClassInitialize]
    public static void TrainAndAddOnce(TestContext _)
    {
        string folder = Cli.ImageFolder("incremental-base", 15, BaseClasses);
        _session = Cli.ImageFolder("incremental-session", 7, NewClasses);
        _test = TestFolder("incremental-test", 4, [.. BaseClasses, .. NewClasses]);
        _base = Cli.TempPath("incremental-out/base.zip");
        _next = Cli.TempPath("incremental-out/next.zip");
        _nextReport = Cli.TempPath("incremental-out/next-report");
        _train = Cli.Run("train", folder, "--incremental", "--epochs", "2", "--seed", "3", "--out", _base, "--json");
        _add = Cli.Run("add-classes", "--model", _base, _session, "--test", _test, "--out", _next, "--report", _nextReport, "--json");
    }

    // The first images of each class of the embedded test split.
    private static string TestFolder(string name, int perClass, string[] classes)
    {
        string root = Cli.TempPath(name);
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        foreach (string c in classes)
        {
            Directory.CreateDirectory(Path.Combine(root, c));
            foreach (string file in Directory.GetFiles(Path.Combine(Cli.Subset, "test", c)).Order(StringComparer.Ordinal).Take(perClass))
                File.Copy(file, Path.Combine(root, c, Path.GetFileName(file)));
        }
        return root;
    }

    private static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();

    private static void AssertError(CliResult result, int exitCode, string messagePart)
    {
        Assert.AreEqual(exitCode, result.ExitCode, result.ToString());
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.IsTrue(lines.Length >= 2 && lines[0].StartsWith("error: ", StringComparison.Ordinal) && lines[1].StartsWith("hint: ", StringComparison.Ordinal), result.ToString());
        StringAssert.Contains(lines[0], messagePart);
    }

    [TestMethod]
    public void TrainIncrementalWritesAnF2MBaseModel()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        Assert.IsTrue(File.Exists(_base));
        var json = _train.Json();
        CollectionAssert.AreEqual(BaseClasses, Strings(json.GetProperty("classes")));
        var run = json.GetProperty("run");
        CollectionAssert.AreEqual(BaseClasses, Strings(run.GetProperty("incremental").GetProperty("baseClasses")));
        Assert.AreEqual(0, run.GetProperty("incremental").GetProperty("sessions").GetArrayLength());
        StringAssert.Contains(run.GetProperty("options").GetProperty("method").GetString(), "flat-region search");
        Assert.AreEqual(9, json.GetProperty("test").GetProperty("rows").GetInt64(), "20 % of 15 per class held out");
        Assert.IsTrue(File.Exists(Path.Combine(TrainCommand.DefaultReportFolder(_base), "report.html")));

        var info = Cli.Run("info", "--model", _base, "--json");
        Assert.AreEqual(ExitCodes.Success, info.ExitCode, info.ToString());
        var i = info.Json();
        Assert.AreEqual("ResNet20", i.GetProperty("architecture").GetString(), "--incremental trains F2M's reference network unless --architecture says otherwise");
        Assert.AreEqual(0, i.GetProperty("incremental").GetProperty("sessions").GetInt32());
    }

    [TestMethod]
    public void AddClassesAppendsTheNewClassesAndReportsOldAndNewAccuracy()
    {
        Assert.AreEqual(ExitCodes.Success, _add.ExitCode, _add.ToString());
        Assert.IsTrue(File.Exists(_next));
        var json = _add.Json();
        CollectionAssert.AreEqual(BaseClasses.Concat(NewClasses).ToArray(), Strings(json.GetProperty("classes")), "old classes first, then the session's");
        CollectionAssert.AreEqual(NewClasses, Strings(json.GetProperty("newClasses")));
        var session = json.GetProperty("session");
        Assert.AreEqual(1, session.GetProperty("session").GetInt32());
        Assert.AreEqual(10, session.GetProperty("shots").GetInt64(), "5 of the 7 images of each new class");
        var test = json.GetProperty("test");
        Assert.AreEqual(20, test.GetProperty("rows").GetInt64());
        var confusion = test.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        double Share(int from, int to) => Enumerable.Range(from, to - from).Sum(k => confusion[k][k]) / Enumerable.Range(from, to - from).Sum(k => confusion[k].Sum());
        Assert.AreEqual(12, session.GetProperty("old").GetProperty("images").GetInt64());
        Assert.AreEqual(8, session.GetProperty("new").GetProperty("images").GetInt64());
        Assert.AreEqual(Share(0, 3), session.GetProperty("old").GetProperty("accuracy").GetDouble(), 1e-9, "old-class accuracy is the old rows' diagonal share");
        Assert.AreEqual(Share(3, 5), session.GetProperty("new").GetProperty("accuracy").GetDouble(), 1e-9, "new-class accuracy is the new rows' diagonal share");
        Assert.AreEqual(12, session.GetProperty("oldBefore").GetProperty("images").GetInt64(), "the base model is scored on the same old-class images");

        string html = File.ReadAllText(Path.Combine(_nextReport, "report.html"));
        StringAssert.Contains(html, "Old and new classes");
        StringAssert.Contains(html, "before the session");
        Assert.IsTrue(File.Exists(Path.Combine(_nextReport, "confusion-matrix.png")));
        Assert.IsTrue(File.Exists(_base), "the base model is kept");
    }

    [TestMethod]
    public void InfoEvaluatePredictAndCodegenWorkOnTheNextModel()
    {
        Assert.AreEqual(ExitCodes.Success, _add.ExitCode, _add.ToString());
        string[] all = [.. BaseClasses, .. NewClasses];

        var info = Cli.Run("info", "--model", _next, "--json");
        Assert.AreEqual(ExitCodes.Success, info.ExitCode, info.ToString());
        var i = info.Json();
        CollectionAssert.AreEqual(all, Strings(i.GetProperty("classes")));
        Assert.AreEqual(1, i.GetProperty("incremental").GetProperty("sessions").GetInt32());
        CollectionAssert.AreEqual(BaseClasses, Strings(i.GetProperty("incremental").GetProperty("baseClasses")));
        var sessions = i.GetProperty("run").GetProperty("incremental").GetProperty("sessions");
        Assert.AreEqual(1, sessions.GetArrayLength());
        CollectionAssert.AreEqual(NewClasses, Strings(sessions[0].GetProperty("newClasses")));
        var text = Cli.Run("info", "--model", _next);
        StringAssert.Contains(text.Output, "session 1: +Sandal, Shirt from 10 shots");

        var evaluate = Cli.Run("evaluate", "--model", _next, _test, "--json");
        Assert.AreEqual(ExitCodes.Success, evaluate.ExitCode, evaluate.ToString());
        var metrics = evaluate.Json().GetProperty("metrics");
        Assert.AreEqual(20, metrics.GetProperty("rows").GetInt64());
        Assert.AreEqual(_add.Json().GetProperty("test").GetProperty("microAccuracy").GetDouble(), metrics.GetProperty("microAccuracy").GetDouble(), 1e-9,
            "evaluate on the reloaded zip gives add-classes' numbers");

        string sandal = Directory.GetFiles(Path.Combine(_test, "Sandal")).Order(StringComparer.Ordinal).First();
        var predict = Cli.Run("predict", "--model", _next, sandal, "--top", "5", "--json");
        Assert.AreEqual(ExitCodes.Success, predict.ExitCode, predict.ToString());
        var prediction = predict.Json().GetProperty("predictions")[0];
        var top = prediction.GetProperty("top").EnumerateArray().Select(t => (Label: t.GetProperty("label").GetString()!, P: t.GetProperty("probability").GetDouble())).ToArray();
        CollectionAssert.AreEquivalent(all, top.Select(t => t.Label).ToArray(), "every class, old and new, has a score");
        Assert.AreEqual(1, top.Sum(t => t.P), 1e-4);
        Assert.AreEqual(top[0].Label, prediction.GetProperty("predictedLabel").GetString());

        string project = Cli.TempPath("incremental-out/NextApp");
        var codegen = Cli.Run("codegen", "--model", _next, "--name", "NextApp", "--out", project);
        Assert.AreEqual(ExitCodes.Success, codegen.ExitCode, codegen.ToString());
        StringAssert.Contains(File.ReadAllText(Path.Combine(project, "ModelOutput.cs")), "Score");
        Assert.IsTrue(File.Exists(Path.Combine(project, "model.zip")));
    }

    [TestMethod]
    public void WithoutTestTheImagesBeyondTheShotsAreTheNewClassesTestImages()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        var result = Cli.Run("add-classes", "--model", _base, _session, "--out", Cli.TempPath("incremental-out/beyond.zip"), "--shots", "4", "--session-epochs", "0", "--json");
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        var session = result.Json().GetProperty("session");
        Assert.AreEqual(8, session.GetProperty("shots").GetInt64());
        Assert.AreEqual(6, session.GetProperty("new").GetProperty("images").GetInt64(), "3 images beyond 4 shots in each of 2 classes");
        Assert.AreEqual(JsonValueKind.Null, session.GetProperty("old").ValueKind, "no old-class images without --test");
    }

    [TestMethod]
    public void SessionImagesOfAnotherSizeAreResizedToTheModelsInputSize()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        // 40×40 gray PNGs (the base model takes 28×28): horizontal stripes and a checkerboard, shifted per image.
        string folder = Cli.TempPath("incremental-resized");
        for (int i = 0; i < 3; i++)
        {
            Directory.CreateDirectory(Path.Combine(folder, "Stripes"));
            Directory.CreateDirectory(Path.Combine(folder, "Checks"));
            File.WriteAllBytes(Path.Combine(folder, "Stripes", $"{i}.png"), GrayPng.Encode(40, 40, (x, y) => (byte)((y + i) / 4 % 2 * 255)));
            File.WriteAllBytes(Path.Combine(folder, "Checks", $"{i}.png"), GrayPng.Encode(40, 40, (x, y) => (byte)(((x + i) / 5 + y / 5) % 2 * 255)));
        }
        string next = Cli.TempPath("incremental-out/resized.zip");
        var result = Cli.Run("add-classes", "--model", _base, folder, "--out", next, "--session-epochs", "1", "--json");
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        CollectionAssert.AreEqual(new[] { "Checks", "Stripes" }, Strings(result.Json().GetProperty("newClasses")));
        var predict = Cli.Run("predict", "--model", next, Path.Combine(folder, "Checks", "0.png"), "--json");
        Assert.AreEqual(ExitCodes.Success, predict.ExitCode, predict.ToString());
    }

    [TestMethod]
    public void AClassTheModelAlreadyKnowsIsADataErrorNamingIt()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        string folder = Cli.ImageFolder("incremental-known", 5, "Bag", "Sandal");
        var result = Cli.Run("add-classes", "--model", _base, folder, "--out", Cli.TempPath("incremental-out/known.zip"));
        AssertError(result, ExitCodes.DataError, "class 'Bag' is already known to the model");
        Assert.IsFalse(File.Exists(Cli.TempPath("incremental-out/known.zip")));
    }

    [TestMethod]
    public void AnEmptySessionFolderIsADataError()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        string empty = Cli.TempPath("incremental-empty");
        Directory.CreateDirectory(Path.Combine(empty, "Sandal"));
        var result = Cli.Run("add-classes", "--model", _base, empty, "--out", Cli.TempPath("incremental-out/empty.zip"));
        AssertError(result, ExitCodes.DataError, "has no class sub-folder with images");
    }

    [TestMethod]
    public void AModelTrainedWithoutIncrementalIsADataError()
    {
        string folder = Cli.ImageFolder("incremental-plain", 4, "Bag", "Trouser");
        string plain = Cli.TempPath("incremental-out/plain.zip");
        var train = Cli.Run("train", folder, "--epochs", "1", "--method", "sgd", "--out", plain);
        Assert.AreEqual(ExitCodes.Success, train.ExitCode, train.ToString());
        var result = Cli.Run("add-classes", "--model", plain, _session, "--out", Cli.TempPath("incremental-out/plain-next.zip"));
        AssertError(result, ExitCodes.DataError, "is an image classifier, not an incremental model");
        StringAssert.Contains(result.Error, "train <folder> --incremental");
    }

    [TestMethod]
    public void CommandsThatDoNotApplySayWhy()
    {
        Assert.AreEqual(ExitCodes.Success, _train.ExitCode, _train.ToString());
        AssertError(Cli.Run("sharpness", "--model", _base, _test), ExitCodes.DataError, "is an incremental (F2M) model");
        AssertError(Cli.Run("add-classes", "--model", _base, _session, "--out", _base), ExitCodes.UsageError, "is the --model file");
        string folder = Cli.ImageFolder("incremental-usage", 2, "Bag", "Trouser");
        AssertError(Cli.Run("train", folder, "--incremental", "--method", "asam", "--out", Cli.TempPath("incremental-out/u.zip")), ExitCodes.UsageError,
            "--method does not apply to --incremental");
        AssertError(Cli.Run("train", folder, "--bound", "0.02", "--out", Cli.TempPath("incremental-out/u.zip")), ExitCodes.UsageError, "--bound applies to train --incremental");
    }
}

/// <summary>A minimal PNG encoder for 8-bit gray test images.</summary>
internal static class GrayPng
{
    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static byte[] Encode(int width, int height, Func<int, int, byte> pixel)
    {
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0);   // filter: none
            for (int x = 0; x < width; x++) raw.WriteByte(pixel(x, y));
        }
        var compressed = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            raw.WriteTo(zlib);
        var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(png, "IHDR", [.. BigEndian(width), .. BigEndian(height), 8, 0, 0, 0, 0]);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static byte[] BigEndian(int value) => [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];

    private static void Chunk(Stream png, string type, byte[] data)
    {
        png.Write(BigEndian(data.Length));
        byte[] typed = [.. System.Text.Encoding.ASCII.GetBytes(type), .. data];
        png.Write(typed);
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in typed) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        png.Write(BigEndian((int)(crc ^ 0xFFFFFFFFu)));
    }
}
