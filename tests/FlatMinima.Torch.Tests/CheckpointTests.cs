using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;
using static FlatMinima.Torch.Tests.TinyTraining;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// Checkpoint files are written safely (unique flushed temporary files, stale ones removed), verified before anything is
/// applied (SHA-256, bounded reads), and resume only the run that wrote them (fingerprint); a diverged or cancelled run
/// can return its last good epoch.
/// </summary>
[TestClass]
public sealed class CheckpointTests
{
    private static readonly ClassifierTrainingOptions Options = new() { Epochs = 3, BatchSize = 8, TuneGlibcMalloc = false };

    private static float[] State(nn.Module model) =>
        model.state_dict().Values.Where(t => t.is_floating_point()).SelectMany(t => t.detach().data<float>().ToArray()).ToArray();

    private static string NewPath() => Path.Combine(Path.GetTempPath(), $"flatminima-ckpt-{Guid.NewGuid():N}", "run.ckpt");

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

    private static void CleanUp(string path)
    {
        var folder = Path.GetDirectoryName(path)!;
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    // Runs Options until the checkpoint after epoch 1 exists, then cancels.
    private static void WriteCheckpoint(string path, TensorDataset data, ClassifierTrainingOptions? options = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var cancel = new CancellationTokenSource();
        var run = (options ?? Options) with { CheckpointPath = path, CancellationToken = cancel.Token, Progress = r => cancel.Cancel() };
        Assert.ThrowsExactly<OperationCanceledException>(() => new ClassifierTrainer(run, CPU).Train(Net(), data));
        Assert.IsTrue(File.Exists(path));
    }

    [TestMethod]
    [DataRow("garbage")]
    [DataRow("truncated")]
    [DataRow("flipped byte in the weights")]
    [DataRow("flipped byte in the length")]
    [DataRow("appended bytes")]
    [DataRow("empty")]
    public void ADamagedCheckpointIsRejectedBeforeAnythingIsApplied(string damage)
    {
        WithCheckpointPath(path =>
        {
            var data = Blobs(40, 1);
            WriteCheckpoint(path, data);
            var bytes = File.ReadAllBytes(path);
            switch (damage)
            {
                case "garbage": bytes = new byte[4096]; new Random(5).NextBytes(bytes); break;
                case "truncated": bytes = bytes[..(bytes.Length / 2)]; break;
                case "flipped byte in the weights": bytes[bytes.Length * 3 / 4] ^= 0x40; break;
                case "flipped byte in the length": bytes[9] ^= 0x01; break;
                case "appended bytes": bytes = bytes.Concat(new byte[16]).ToArray(); break;
                case "empty": bytes = Array.Empty<byte>(); break;
            }
            File.WriteAllBytes(path, bytes);

            var model = Net();
            using (no_grad()) foreach (var p in model.parameters()) p.add_(1);
            var before = State(model);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => new ClassifierTrainer(Options, CPU).Train(model, data, resumeFrom: path), damage);
            StringAssert.Contains(e.Message, path, "the message names the file");
            StringAssert.Contains(e.Message, "Delete it");
            CollectionAssert.AreEqual(before, State(model), $"{damage}: nothing was applied");
        });
    }

    [TestMethod]
    public void ConcurrentWritersOfOnePathDoNotCollideAndLeaveNoTemporaryFiles()
    {
        WithCheckpointPath(path =>
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, writer =>
            {
                for (int round = 0; round < 25; round++)
                    CheckpointFile.Write(path, w => { w.Write(writer); w.Write(round); w.Write(new byte[10_000 + writer * 100]); });
            });
            using (var reader = CheckpointFile.OpenVerified(path))
            {
                int writer = reader.ReadInt32();
                Assert.AreEqual(24, reader.ReadInt32(), "the file is one writer's complete last checkpoint");
                Assert.AreEqual(10_000 + writer * 100, reader.BaseStream.Length - reader.BaseStream.Position);
            }
            CollectionAssert.AreEqual(new[] { "run.ckpt" }, Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName).ToArray());
        });
    }

    [TestMethod]
    public void StaleTemporaryFilesAreRemovedAndAFailedWriteLeavesNone()
    {
        WithCheckpointPath(path =>
        {
            var folder = Path.GetDirectoryName(path)!;
            Directory.CreateDirectory(folder);
            string Temporary() => $"{path}.{Guid.NewGuid():N}.tmp";
            string stale = Temporary(), fresh = Temporary(), open = Temporary(), other = path + ".backup.tmp";
            foreach (var file in new[] { stale, fresh, open, other }) File.WriteAllBytes(file, new byte[] { 1, 2, 3 });
            foreach (var file in new[] { stale, open, other }) File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddHours(-1));
            using (new FileStream(open, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                CheckpointFile.Write(path, w => w.Write(1));
            Assert.IsFalse(File.Exists(stale), "a killed run's temporary file is removed");
            Assert.IsTrue(File.Exists(fresh), "a temporary file written in the last minute may belong to a live run: kept");
            Assert.IsTrue(File.Exists(open), "a temporary file a writer holds open is kept");
            Assert.IsTrue(File.Exists(other), "files that are not this checkpoint's temporary files are kept");

            var good = File.ReadAllBytes(path);
            Assert.ThrowsExactly<IOException>(() => CheckpointFile.Write(path, w => { w.Write(2); throw new IOException("disk full"); }));
            CollectionAssert.AreEqual(good, File.ReadAllBytes(path), "a failed write leaves the previous checkpoint");
            Assert.AreEqual(4, Directory.GetFiles(folder).Length, "and no temporary file of its own (checkpoint, fresh, open, other)");
        });
    }

    [TestMethod]
    [DataRow("LearningRate", "LearningRate: checkpoint 0.05, this run 0.1")]
    [DataRow("Schedule", "Schedule: checkpoint LearningRateSchedule { Kind = Cosine")]
    [DataRow("Rho", "GradientStep: checkpoint SharpnessAwareOptions { Rho = 0.05")]
    [DataRow("Data", "TrainingData: checkpoint inputs Float32[40,1,4,4]")]
    [DataRow("Model", "Model: checkpoint has conv.weight:Float32[4,1,3,3], this run conv.weight:Float32[5,1,3,3]")]
    public void AFingerprintMismatchNamesWhatDiffers(string change, string expected)
    {
        WithCheckpointPath(path =>
        {
            var sam = Options with { GradientStep = SharpnessAwareOptions.Sam() };
            WriteCheckpoint(path, Blobs(40, 1), sam);
            var (options, data, model) = change switch
            {
                "LearningRate" => (sam with { LearningRate = 0.1 }, Blobs(40, 1), Net()),
                "Schedule" => (sam with { Schedule = LearningRateSchedule.Constant() }, Blobs(40, 1), Net()),
                "Rho" => (sam with { GradientStep = SharpnessAwareOptions.Sam(0.1) }, Blobs(40, 1), Net()),
                "Data" => (sam, Blobs(40, 2), Net()),
                _ => (sam, Blobs(40, 1), Net(hidden: 5)),
            };
            var e = Assert.ThrowsExactly<InvalidDataException>(() => new ClassifierTrainer(options, CPU).Train(model, data, resumeFrom: path));
            StringAssert.Contains(e.Message, "different run");
            StringAssert.Contains(e.Message, expected);
            Assert.IsFalse(e.Message.Contains("Epochs:") || e.Message.Contains("Seed:"), "settings that did not change are not listed");
        });
    }

    [TestMethod]
    public void EverySettingThatChangesTheResultIsInTheFingerprint()
    {
        var data = Blobs(16, 1);
        var model = Net();
        string Entry(ClassifierTrainingOptions o, string name) => RunFingerprint.Of(o, 2, model, data, null).Entries.Single(e => e.Key == name).Value;
        object Other(PropertyInfo p) => p.PropertyType switch
        {
            var t when t == typeof(int) => (int)p.GetValue(Options)! + 1,
            var t when t == typeof(double) => (double)p.GetValue(Options)! / 2 + 0.01,
            var t when t == typeof(double?) => 0.5,
            var t when t == typeof(bool) => !(bool)p.GetValue(Options)!,
            var t when t == typeof(BaseOptimizerKind) => BaseOptimizerKind.AdamW,
            var t when t == typeof(LearningRateSchedule) => LearningRateSchedule.StepDecay(new[] { 1 }),
            var t when t == typeof(GradientStepOptions) => SharpnessAwareOptions.Sam(),
            var t when t == typeof(WeightAveragingOptions) => WeightAveragingOptions.Ema(),
            var t when t == typeof(AugmentationOptions) => AugmentationOptions.Standard(),
            var t when t == typeof(FineTuningOptions) => FineTuningOptions.HeadOnly(),
            var t when t == typeof(ComputePrecision) => ComputePrecision.BFloat16,
            _ => throw new AssertFailedException($"{p.Name} ({p.PropertyType.Name}): add a changed value here, or to RunFingerprint.NotInFingerprint if it cannot change the result."),
        };
        var settings = typeof(ClassifierTrainingOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.Name != "EqualityContract" && !RunFingerprint.NotInFingerprint.Contains(p.Name)).ToArray();
        Assert.IsTrue(settings.Length >= 15, $"{settings.Length} settings");
        foreach (var setting in settings)
        {
            var changed = Options with { };
            setting.SetValue(changed, Other(setting));
            Assert.AreNotEqual(Entry(Options, setting.Name), Entry(changed, setting.Name), setting.Name);
        }
        Assert.AreNotEqual(Entry(Options with { Schedule = LearningRateSchedule.StepDecay(new[] { 2 }) }, "Schedule"),
            Entry(Options with { Schedule = LearningRateSchedule.StepDecay(new[] { 3 }) }, "Schedule"), "collections are described by their contents");
        string Digest(TensorDataset d) => RunFingerprint.Of(Options, 2, model, d, null).Entries.Single(e => e.Key == "TrainingData").Value;
        Assert.AreEqual(Digest(data), Digest(Blobs(16, 1)), "the same data gives the same digest");
        var changedPixel = Blobs(16, 1);
        using (no_grad()) changedPixel.Inputs[3, 0, 1, 1].fill_(0.5f);
        Assert.AreNotEqual(Digest(data), Digest(changedPixel), "one changed pixel changes the data digest");
        Assert.AreNotEqual(Digest(data), Digest(data with { Labels = data.Labels.flip(0) }), "so do reordered labels");
    }

    [TestMethod]
    public void TheDataDigestDoesNotDependOnHowTheBytesAreSliced()
    {
        var data = Blobs(10, 1, domains: true);
        string whole = RunFingerprint.DataDigest(data);
        StringAssert.Matches(whole, new System.Text.RegularExpressions.Regex(
            "^inputs Float32\\[10,1,4,4\\] sha256 [0-9a-f]{64}, labels Int64\\[10\\] sha256 [0-9a-f]{64}, domains Int64\\[10\\] sha256 [0-9a-f]{64}$"));
        Assert.AreEqual(whole, RunFingerprint.DataDigest(data, sliceBytes: 12), "slices of 3 floats");
        Assert.AreEqual(whole, RunFingerprint.DataDigest(data, sliceBytes: 1), "one element at a time");
        Assert.AreEqual(whole, RunFingerprint.DataDigest(data with { Inputs = data.Inputs.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2) }),
            "a non-contiguous view of the same values");
    }

    [TestMethod]
    public void DamagedCountsAreRejectedBeforeAllocating()
    {
        var data = Blobs(12, 1, domains: true);
        using var generator = new Generator(1, CPU);
        using var sampler = new BatchSampler(data, 2, generator);
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) { w.Write(3); w.Write(int.MaxValue); w.Write(0L); }
        stream.Position = 0;
        var e = Assert.ThrowsExactly<InvalidDataException>(() => sampler.Load(new BinaryReader(stream)));
        StringAssert.Contains(e.Message, "2147483647 elements");

        stream.SetLength(0);
        using (var w = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) { w.Write(-5); }
        stream.Position = 0;
        Assert.ThrowsExactly<InvalidDataException>(() => GeneratorState.Read(new BinaryReader(stream), generator));
    }

    [TestMethod]
    public void ADivergedRunReturnsTheLastGoodEpochBitIdenticalToAShorterRun()
    {
        var data = Blobs(40, 1);
        var blowUp = Options with { Schedule = LearningRateSchedule.StepDecay(new[] { 2 }, factor: 1e30), OnFailure = TrainingFailurePolicy.ReturnLastGoodEpoch };
        var twoEpochs = Net();
        new ClassifierTrainer(blowUp with { Epochs = 2, OnFailure = TrainingFailurePolicy.Throw }, CPU).Train(twoEpochs, data);

        var seen = new List<EpochReport>();
        var diverged = Net();
        var reports = new ClassifierTrainer(blowUp with { Progress = seen.Add }, CPU).Train(diverged, data);
        Assert.AreEqual(3, reports.Count);
        var interruption = reports[^1].Interruption;
        Assert.IsNotNull(interruption, "the last report says training stopped early");
        Assert.AreEqual(TrainingInterruptionReason.Diverged, interruption!.Reason);
        Assert.AreEqual(3, interruption.Epoch);
        Assert.AreEqual(2, interruption.ReturnedEpoch);
        StringAssert.Contains(reports[^1].ToString(), "returned the weights of epoch 2");
        Assert.AreSame(reports[^1], seen[^1], "Progress got the interruption report too");
        CollectionAssert.AreEqual(State(twoEpochs), State(diverged), "the epoch-2 weights and buffers, bit for bit");
        Assert.IsFalse(diverged.training, "the returned model is in eval mode");

        Assert.ThrowsExactly<TrainingDivergedException>(() => new ClassifierTrainer(blowUp with { OnFailure = TrainingFailurePolicy.Throw }, CPU).Train(Net(), data),
            "the default policy throws");
        var first = blowUp with { Schedule = LearningRateSchedule.StepDecay(new[] { 0 }, factor: 1e30) };
        Assert.ThrowsExactly<TrainingDivergedException>(() => new ClassifierTrainer(first, CPU).Train(Net(), data), "no completed epoch: nothing to return");
    }

    [TestMethod]
    public void ACancelledRunReturnsTheLastGoodEpochAndItsCheckpointResumes()
    {
        WithCheckpointPath(path =>
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var data = Blobs(40, 1);
            var constant = Options with { Schedule = LearningRateSchedule.Constant() };
            var full = Net();
            new ClassifierTrainer(constant, CPU).Train(full, data);
            var oneEpoch = Net();
            new ClassifierTrainer(constant with { Epochs = 1 }, CPU).Train(oneEpoch, data);

            using var cancel = new CancellationTokenSource();
            var cancelled = Net();
            var reports = new ClassifierTrainer(constant with
            {
                CheckpointPath = path, OnFailure = TrainingFailurePolicy.ReturnLastGoodEpoch, CancellationToken = cancel.Token,
                Progress = r => { if (r.Epoch == 1) cancel.Cancel(); },
            }, CPU).Train(cancelled, data);
            Assert.AreEqual(TrainingInterruptionReason.Cancelled, reports[^1].Interruption?.Reason);
            Assert.AreEqual(1, reports[^1].Interruption!.ReturnedEpoch);
            CollectionAssert.AreEqual(State(oneEpoch), State(cancelled), "the epoch-1 model");

            var resumed = Net();
            new ClassifierTrainer(constant, CPU).Train(resumed, data, resumeFrom: path);
            CollectionAssert.AreEqual(State(full), State(resumed), "resuming the kept checkpoint = the uninterrupted run");
        });
    }
}
