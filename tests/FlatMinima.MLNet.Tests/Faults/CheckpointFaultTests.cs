using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests.Faults;

/// <summary>
/// Checkpoints and failures through the ML.NET trainer: <c>CheckpointPath</c> makes an interrupted <c>Fit</c> resumable
/// (bit-identical result), a checkpoint of another run or a damaged one is refused with the file and the difference
/// named, and <c>OnFailure = ReturnLastGoodEpoch</c> turns a divergence or cancellation into the last good epoch's model.
/// </summary>
[TestClass]
public sealed class CheckpointFaultTests
{
    private static IDataView Data(MLContext ml) => ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 8));

    private static FlatMinimaImageClassificationTrainer.Options Options(Action<FlatMinimaImageClassificationTrainer.Options>? change = null) =>
        TestData.FastOptions(epochs: 3, batchSize: 8, o =>
        {
            o.TuneGlibcMalloc = false;
            change?.Invoke(o);
        });

    private static float[][] FitAndScore(FlatMinimaImageClassificationTrainer.Options options)
    {
        var ml = new MLContext(seed: 1);
        var data = Data(ml);
        return TestData.Scores(TestData.Pipeline(ml, options).Fit(data).Transform(data));
    }

    private static void AssertSameScores(float[][] expected, float[][] actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        for (int i = 0; i < expected.Length; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"{what}: row {i}");
    }

    private static string NewPath()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"flatminima-fit-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        return Path.Combine(folder, "fit.ckpt");
    }

    // Runs test with a checkpoint path in a new temporary folder, and deletes the folder afterwards.
    private static void WithCheckpointPath(Action<string> test)
    {
        string path = NewPath();
        try
        {
            test(path);
        }
        finally
        {
            CleanUp(path);
        }
    }

    private static void CleanUp(string path) => Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);

    // Fit with CheckpointPath, cancelled by the token after epoch 1 (its checkpoint is written by then).
    private static void FitCancelledAfterEpochOne(FlatMinimaImageClassificationTrainer.Options options)
    {
        using var cancel = new CancellationTokenSource();
        options.CancellationToken = cancel.Token;
        options.Progress = r => { if (r.Epoch == 1) cancel.Cancel(); };
        Assert.ThrowsExactly<OperationCanceledException>(() => FitAndScore(options));
        options.CancellationToken = CancellationToken.None;
        options.Progress = null;
        Assert.IsTrue(File.Exists(options.CheckpointPath), "the checkpoint of epoch 1 exists");
    }

    [TestMethod]
    public void AFitInterruptedAfterEpochOneResumesToTheUninterruptedModel()
    {
        WithCheckpointPath(path =>
        {
            var uninterrupted = FitAndScore(Options());
            var options = Options(o => o.CheckpointPath = path);
            FitCancelledAfterEpochOne(options);

            var epochs = new List<int>();
            options.Progress = r => epochs.Add(r.Epoch);
            var resumed = FitAndScore(options);
            CollectionAssert.AreEqual(new[] { 2, 3 }, epochs, "the second Fit resumed after epoch 1");
            AssertSameScores(uninterrupted, resumed, "resumed = uninterrupted, bit for bit");
            Assert.IsFalse(File.Exists(path), "a completed Fit removes its checkpoint");
        });
    }

    [TestMethod]
    public void ACheckpointOfAnotherRunIsRefusedNamingTheDifference()
    {
        WithCheckpointPath(path =>
        {
            FitCancelledAfterEpochOne(Options(o => o.CheckpointPath = path));
            var e = Assert.ThrowsExactly<InvalidDataException>(() => FitAndScore(Options(o => { o.CheckpointPath = path; o.LearningRate = 0.02; })));
            StringAssert.Contains(e.Message, path);
            StringAssert.Contains(e.Message, "LearningRate: checkpoint 0.05, this run 0.02");
            Assert.IsTrue(File.Exists(path), "the other run's checkpoint is left alone");
        });
    }

    [TestMethod]
    public void ADamagedCheckpointMakesFitFailNamingTheFile()
    {
        WithCheckpointPath(path =>
        {
            FitCancelledAfterEpochOne(Options(o => o.CheckpointPath = path));
            var bytes = File.ReadAllBytes(path);
            bytes[bytes.Length / 2] ^= 0x10;
            File.WriteAllBytes(path, bytes);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => FitAndScore(Options(o => o.CheckpointPath = path)));
            StringAssert.Contains(e.Message, path);
            StringAssert.Contains(e.Message, "checksum");
        });
    }

    [TestMethod]
    public void ADivergedFitReturnsTheLastGoodEpochsModel()
    {
        var blowUp = LearningRateSchedule.StepDecay(new[] { 2 }, factor: 1e30);   // epoch 3 runs at 5e28
        var twoEpochs = FitAndScore(Options(o => { o.Schedule = blowUp; o.Epochs = 2; }));

        var ml = new MLContext(seed: 1);
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("Training stopped early")) lock (warnings) warnings.Add(e.Message); };
        var reports = new List<EpochReport>();
        var data = Data(ml);
        var model = TestData.Pipeline(ml, Options(o =>
        {
            o.Schedule = blowUp;
            o.OnFailure = TrainingFailurePolicy.ReturnLastGoodEpoch;
            o.Progress = reports.Add;
        })).Fit(data);

        AssertSameScores(twoEpochs, TestData.Scores(model.Transform(data)), "the epoch-2 model, bit for bit");
        Assert.AreEqual(TrainingInterruptionReason.Diverged, reports[^1].Interruption?.Reason);
        Assert.AreEqual(2, reports[^1].Interruption!.ReturnedEpoch);
        Assert.AreEqual(1, warnings.Count, "one warning in the log");
        StringAssert.Contains(warnings[0], "returns the model of epoch 2");
        Assert.ThrowsExactly<TrainingDivergedException>(() => FitAndScore(Options(o => o.Schedule = blowUp)), "the default OnFailure = Throw");
    }

    [TestMethod]
    public void ACancelledFitReturnsTheLastGoodEpochAndKeepsItsCheckpointForResuming()
    {
        WithCheckpointPath(path =>
        {
            var oneEpoch = FitAndScore(Options(o => { o.Schedule = LearningRateSchedule.Constant(); o.Epochs = 1; }));
            var uninterrupted = FitAndScore(Options(o => o.Schedule = LearningRateSchedule.Constant()));

            using var cancel = new CancellationTokenSource();
            var options = Options(o =>
            {
                o.Schedule = LearningRateSchedule.Constant();
                o.CheckpointPath = path;
                o.OnFailure = TrainingFailurePolicy.ReturnLastGoodEpoch;
                o.CancellationToken = cancel.Token;
                o.Progress = r => { if (r.Epoch == 1) cancel.Cancel(); };
            });
            AssertSameScores(oneEpoch, FitAndScore(options), "the cancelled Fit returns the epoch-1 model");
            Assert.IsTrue(File.Exists(path), "the checkpoint stays after an early stop");

            options.CancellationToken = CancellationToken.None;
            options.Progress = null;
            AssertSameScores(uninterrupted, FitAndScore(options), "the next Fit resumes to the uninterrupted model");
        });
    }
}
