using System;
using System.IO;
using System.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Cli.Tests;

/// <summary>Bad folders and bad command lines give one error line, a hint and the documented exit code, before any training.</summary>
[TestClass]
public sealed class BadInputTests
{
    private static void AssertError(CliResult result, int exitCode, string messagePart)
    {
        Assert.AreEqual(exitCode, result.ExitCode, result.ToString());
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.IsTrue(lines.Length >= 1 && lines[0].StartsWith("error: ", StringComparison.Ordinal), result.ToString());
        StringAssert.Contains(lines[0], messagePart);
        Assert.IsFalse(result.Error.Contains("   at ", StringComparison.Ordinal), "no stack without --verbose");
    }

    [TestMethod]
    public void AMissingFolderIsADataError()
    {
        string missing = Cli.TempPath("does-not-exist");
        var result = Cli.Run("train", missing, "--out", Cli.TempPath("missing.zip"));
        AssertError(result, ExitCodes.DataError, "does not exist");
        StringAssert.Contains(result.Error, "hint: Put each class's images in a sub-folder");
    }

    [TestMethod]
    public void AnEmptyFolderIsADataError()
    {
        string empty = Cli.TempPath("empty");
        Directory.CreateDirectory(Path.Combine(empty, "cat"));
        var result = Cli.Run("train", empty, "--out", Cli.TempPath("empty.zip"));
        AssertError(result, ExitCodes.DataError, "has no class sub-folder with images");
    }

    [TestMethod]
    public void ImagesWithoutClassSubFoldersAreADataErrorThatSaysSo()
    {
        string flat = Cli.TempPath("flat");
        Directory.CreateDirectory(flat);
        foreach (string file in Directory.GetFiles(Path.Combine(Cli.Subset, "train", "Bag")).Take(3)) File.Copy(file, Path.Combine(flat, Path.GetFileName(file)), true);
        var result = Cli.Run("train", flat, "--out", Cli.TempPath("flat.zip"));
        AssertError(result, ExitCodes.DataError, "3 images lie directly in it");
    }

    [TestMethod]
    public void OneClassIsADataError()
    {
        string folder = Cli.ImageFolder("one-class", 5, "Bag");
        var result = Cli.Run("train", folder, "--out", Cli.TempPath("one.zip"), "--json");
        AssertError(result, ExitCodes.DataError, "has 1 class ('Bag')");
        var json = result.Json();
        Assert.AreEqual(ExitCodes.DataError, json.GetProperty("exitCode").GetInt32());
        StringAssert.Contains(json.GetProperty("hint").GetString(), "sub-folder");
    }

    [TestMethod]
    public void ATestFolderWithAnUnknownClassIsADataError()
    {
        string train = Cli.ImageFolder("known", 3, "Bag", "Coat");
        string test = Cli.ImageFolder("unknown", 3, "Bag", "Dress");
        var result = Cli.Run("train", train, "--test", test, "--out", Cli.TempPath("unknown.zip"));
        AssertError(result, ExitCodes.DataError, "'Dress'");
    }

    [TestMethod]
    public void CommandLineMistakesAreUsageErrors()
    {
        string folder = Cli.ImageFolder("usage", 3, "Bag", "Coat");
        AssertError(Cli.Run("train", folder), ExitCodes.UsageError, "--out");
        AssertError(Cli.Run("train", folder, "--out", "m.zip", "--method", "adam"), ExitCodes.UsageError, "adam");
        AssertError(Cli.Run("train", folder, "--out", "m.zip", "--epochs", "3", "--time", "1m"), ExitCodes.UsageError, "--epochs and --time");
        AssertError(Cli.Run("train", folder, "--out", "m.zip", "--time", "soon"), ExitCodes.UsageError, "--time 'soon'");
        AssertError(Cli.Run("train", folder, "--out", "m.zip", "--test", folder, "--test-fraction", "0.3"), ExitCodes.UsageError, "exclude each other");
        AssertError(Cli.Run("train", folder, "--out", "m.zip", "--test-fraction", "1.5"), ExitCodes.UsageError, "--test-fraction");
        AssertError(Cli.Run("train", folder, "--out", "m.zip", "--resume"), ExitCodes.UsageError, "no checkpoint");
        AssertError(Cli.Run("frobnicate"), ExitCodes.UsageError, "frobnicate");
        var none = Cli.Run();
        Assert.AreEqual(ExitCodes.UsageError, none.ExitCode);
        StringAssert.Contains(none.Output, "Commands:", "no command shows the overview");
        var result = Cli.Run("train", folder, "--out", "m.zip", "--method", "adam");
        StringAssert.Contains(result.Error, "hint: See flatminima train --help.");
    }

    [TestMethod]
    public void AModelInsideTheTrainingFolderIsRefused()
    {
        string folder = Cli.ImageFolder("inside", 3, "Bag", "Coat");
        AssertError(Cli.Run("train", folder, "--out", Path.Combine(folder, "model.zip")), ExitCodes.UsageError, "inside the training folder");
    }

    [TestMethod]
    public void VerbosePrintsTheStackOfAnError()
    {
        string bad = Cli.TempPath("verbose/bad.zip");
        File.WriteAllText(bad, "not a zip");
        var quiet = Cli.Run("info", "--model", bad);
        var verbose = Cli.Run("info", "--model", bad, "--verbose");
        Assert.AreEqual(ExitCodes.DataError, verbose.ExitCode);
        Assert.IsFalse(quiet.Error.Contains("   at ", StringComparison.Ordinal), quiet.Error);
        StringAssert.Contains(verbose.Error, "   at ");
        StringAssert.StartsWith(verbose.Error, quiet.Error.Split('\n')[0]);
    }

    [TestMethod]
    public void DurationsParseAsTheDocsSay()
    {
        Assert.AreEqual(TimeSpan.FromSeconds(90), FlatMinimaApp.ParseDuration("90s"));
        Assert.AreEqual(TimeSpan.FromMinutes(10), FlatMinimaApp.ParseDuration("10m"));
        Assert.AreEqual(TimeSpan.FromMinutes(90), FlatMinimaApp.ParseDuration("1h30m"));
        Assert.AreEqual(TimeSpan.FromMinutes(90), FlatMinimaApp.ParseDuration("1.5h"));
        Assert.AreEqual(TimeSpan.FromMinutes(10), FlatMinimaApp.ParseDuration("00:10:00"));
        Assert.ThrowsExactly<CliException>(() => FlatMinimaApp.ParseDuration(""));
        Assert.ThrowsExactly<CliException>(() => FlatMinimaApp.ParseDuration("10 minutes"));
    }
}
