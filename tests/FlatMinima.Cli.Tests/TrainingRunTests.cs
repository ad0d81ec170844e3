using System;
using System.IO;
using System.Linq;
using System.Threading;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Cli.Tests;

/// <summary>Training runs with something to watch: an unreadable image, Ctrl+C and --resume.</summary>
[TestClass]
public sealed class TrainingRunTests
{
    [TestMethod]
    public void AnUndecodableTrainingImageIsSkippedAndCounted()
    {
        string folder = Cli.ImageFolder("skip", 12, "Bag", "Trouser");
        File.WriteAllBytes(Path.Combine(folder, "Bag", "zz-truncated.png"), File.ReadAllBytes(Directory.GetFiles(Path.Combine(folder, "Bag"))[0])[..40]);
        File.WriteAllText(Path.Combine(folder, "Bag", "notes.txt"), "not an image, ignored by extension");
        string model = Cli.TempPath("skip-out/model.zip");
        var result = Cli.Run("train", folder, "--test", folder, "--epochs", "1", "--method", "sgd", "--out", model, "--json");
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        var run = result.Json().GetProperty("run");
        // 25 training images, one undecodable: 24 trained; the same folder as test: the broken one left out there too.
        Assert.AreEqual(24, run.GetProperty("trainImages").GetInt64());
        Assert.AreEqual(2, run.GetProperty("skippedImages").GetInt64());
        Assert.AreEqual(24, result.Json().GetProperty("test").GetProperty("rows").GetInt64());
        StringAssert.Contains(result.Error, "warning: BadImagePolicy.Skip: left out 1 of 25 rows");
    }

    [TestMethod]
    public void TimeBudgetFitsAnEpochCountAndRecordsIt()
    {
        string folder = Cli.ImageFolder("time", 12, "Bag", "Trouser");
        string model = Cli.TempPath("time-out/model.zip");
        var result = Cli.Run("train", folder, "--time", "5s", "--method", "sgd", "--out", model, "--json");
        Assert.AreEqual(ExitCodes.Success, result.ExitCode, result.ToString());
        var json = result.Json();
        var run = json.GetProperty("run");
        int epochs = run.GetProperty("epochsCompleted").GetInt32();
        Assert.IsTrue(epochs >= 1, result.ToString());
        Assert.AreEqual(epochs, json.GetProperty("epochs").GetArrayLength());
        StringAssert.Contains(run.GetProperty("options").GetProperty("epochs").GetString(), $"{epochs} (--time 5s: one epoch ≈ ");
        StringAssert.Contains(result.Error, "timing two epochs on 20 of 20 training images", "--json sends the notes to standard error");
    }

    [TestMethod]
    public void CtrlCKeepsTheLastEpochAndResumeFinishesTheRun()
    {
        string folder = Cli.ImageFolder("resume", 20, "Bag", "Trouser", "Sneaker");
        string model = Cli.TempPath("resume-out/model.zip");
        if (File.Exists(model + ".checkpoint")) File.Delete(model + ".checkpoint");
        using var cancel = new CancellationTokenSource();
        // Ctrl+C as soon as the first epoch is reported (plain progress lines: output is not a terminal).
        var stopped = Cli.Run(cancel.Token, line => { if (line.StartsWith("epoch 1/3", StringComparison.Ordinal)) cancel.Cancel(); },
            "train", folder, "--epochs", "3", "--batch-size", "16", "--out", model);
        Assert.AreEqual(ExitCodes.Cancelled, stopped.ExitCode, stopped.ToString());
        Assert.IsTrue(File.Exists(model), "the model of the last completed epoch is written");
        Assert.IsTrue(File.Exists(model + ".checkpoint"), stopped.ToString());
        StringAssert.Contains(stopped.Output, "the model holds epoch 1");
        string resumeLine = stopped.Output.Split('\n').Single(l => l.StartsWith("Resume with: flatminima ", StringComparison.Ordinal));
        StringAssert.EndsWith(resumeLine.TrimEnd(), "--resume");

        var info = Cli.Run("info", "--model", model, "--json");
        Assert.AreEqual(1, info.Json().GetProperty("run").GetProperty("epochsCompleted").GetInt32());
        StringAssert.Contains(info.Json().GetProperty("run").GetProperty("interruption").GetString(), "cancelled");

        // A new run without --resume refuses to overwrite the checkpoint's run.
        var refused = Cli.Run("train", folder, "--epochs", "3", "--batch-size", "16", "--out", model);
        Assert.AreEqual(ExitCodes.UsageError, refused.ExitCode, refused.ToString());
        StringAssert.Contains(refused.Error, "--resume");

        string[] resumeArgs = resumeLine["Resume with: flatminima ".Length..].Trim().Split(' ');
        var resumed = Cli.Run(resumeArgs);
        Assert.AreEqual(ExitCodes.Success, resumed.ExitCode, resumed.ToString());
        Assert.IsFalse(File.Exists(model + ".checkpoint"), "a completed run deletes the checkpoint");
        Assert.IsFalse(resumed.Output.Contains("epoch 1/3", StringComparison.Ordinal), "epoch 1 came from the checkpoint:\n" + resumed.Output);
        StringAssert.Contains(resumed.Output, "epoch 3/3");
        Assert.AreEqual(3, Cli.Run("info", "--model", model, "--json").Json().GetProperty("run").GetProperty("epochsCompleted").GetInt32());
    }
}
