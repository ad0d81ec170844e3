using System;
using System.IO;
using System.Linq;
using System.Threading;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;
using static FlatMinima.Torch.Tests.TinyTraining;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class WeightAveragingTests
{
    // §5(a) of ../shared/specs/algorithms.md, continued upwards so that the valley dies.
    private static readonly double[] ValleyLosses = { 2.0, 1.5, 1.2, 1.0, 0.9, 0.85, 0.8, 0.82, 0.9, 1.0, 1.05, 1.1, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45 };

    private static nn.Module<Tensor, Tensor> Tiny()
    {
        manual_seed(3);
        return nn.Linear(3, 2);
    }

    private static double[] Flat(nn.Module model) =>
        model.parameters().SelectMany(p => p.detach().cpu().to_type(ScalarType.Float64).data<double>().ToArray()).ToArray();

    // Sets every parameter element of the model to value + its flat index · 0.01 (distinct, scripted weights).
    private static void SetWeights(nn.Module model, double value)
    {
        using var noGrad = no_grad();
        long offset = 0;
        foreach (var p in model.parameters())
        {
            p.copy_(arange(offset, offset + p.numel(), ScalarType.Float32).mul(0.01).add(value).view(p.shape));
            offset += p.numel();
        }
    }

    private static double[] Expected(nn.Module model, double value) =>
        Enumerable.Range(0, Flat(model).Length).Select(i => value + i * 0.01).ToArray();

    private static void AssertClose(double[] expected, double[] actual, double tolerance, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], actual[i], tolerance, $"{what}[{i}]");
    }

    [TestMethod]
    public void RunningAverageIsTheArithmeticMean()
    {
        var model = Tiny();
        using var average = new RunningAverage(new ModelTensors(model, includeBuffers: false));
        double[] samples = { 1.5, -2.0, 4.25, 0.5 };
        var originals = samples.Select(v => { SetWeights(model, v); average.Add(); return Flat(model); }).ToArray();
        average.CopyToModel();
        var mean = Enumerable.Range(0, originals[0].Length).Select(i => originals.Average(o => o[i])).ToArray();
        Assert.AreEqual(4, average.Count);
        AssertClose(mean, Flat(model), 1e-6, "mean");
        Assert.IsFalse(mean.SequenceEqual(originals[^1]), "the mean differs from the last sample");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void EmaFollowsItsRecursion(bool warmup)
    {
        var model = Tiny();
        using var ema = new ExponentialMovingAverager(model, new EmaOptions { Decay = 0.9, Warmup = warmup });
        double[] samples = { 1.0, 3.0, -2.0, 0.5, 2.5 };
        double[]? expected = null;
        for (int n = 0; n < samples.Length; n++)
        {
            SetWeights(model, samples[n]);
            ema.AfterStep(n + 1);
            var w = Expected(model, samples[n]);
            double d = warmup ? Math.Min(0.9, (1.0 + n) / (10.0 + n)) : 0.9;
            expected = expected is null ? w : expected.Zip(w, (a, b) => d * a + (1 - d) * b).ToArray();
        }
        var report = ema.Finish();
        AssertClose(expected!, Flat(model), 1e-6, "EMA");
        Assert.AreEqual(5, report.AveragedSteps);
        Assert.AreEqual(warmup ? 0.1 : 0.9, ema.DecayAt(0), 1e-12);
    }

    [TestMethod]
    public void EmaAveragesBuffersOnlyWhenAsked()
    {
        foreach (bool buffers in new[] { false, true })
        {
            manual_seed(1);
            var model = nn.Sequential(("bn", nn.BatchNorm1d(2)));
            var mean = model.buffers().First();
            using var ema = new ExponentialMovingAverager(model, new EmaOptions { Decay = 0.5, AverageBuffers = buffers });
            using (no_grad()) mean.fill_(2);
            ema.AfterStep(1);
            using (no_grad()) mean.fill_(4);
            ema.AfterStep(2);
            ema.Finish();
            Assert.AreEqual(buffers ? 3f : 4f, mean[0].item<float>(), 1e-6f, $"AverageBuffers = {buffers}");
        }
    }

    [TestMethod]
    public void BatchNormRecomputeEqualsTheCumulativeStatisticsOfOnePass()
    {
        manual_seed(5);
        var model = nn.Sequential(("bn", nn.BatchNorm1d(3)));
        var batches = new[] { randn(4, 3) * 2 + 1, randn(6, 3) - 3, randn(5, 3) * 0.5, randn(7, 3) + 10 };
        using (no_grad()) model.buffers().First().fill_(100);   // stale statistics must be reset
        model.eval();
        int used = BatchNormRecompute.Run(model, batches, maxBatches: 3);
        Assert.AreEqual(3, used);
        Assert.IsFalse(model.training, "the eval mode is restored");
        var bn = (TorchSharp.Modules.BatchNorm1d)model.children().First();
        Assert.AreEqual(0.1, bn.momentum!.Value, 1e-12, "momentum restored");
        // update_bn: momentum None = cumulative average of the per-batch statistics (unbiased variance), over the first 3 batches.
        var expectedMean = stack(batches.Take(3).Select(b => b.mean(new long[] { 0 })).ToArray()).mean(new long[] { 0 });
        var expectedVar = stack(batches.Take(3).Select(b => b.var(0)).ToArray()).mean(new long[] { 0 });
        Assert.IsTrue(bn.running_mean!.allclose(expectedMean, 1e-5, 1e-6), "running mean");
        Assert.IsTrue(bn.running_var!.allclose(expectedVar, 1e-5, 1e-6), "running variance");
        Assert.AreEqual(0, BatchNormRecompute.Run(nn.Linear(3, 2), batches), "no BatchNorm: nothing to do");
    }

    [TestMethod]
    public void LossValleyGivesThePapersWindowOnTheSpecSequence()
    {
        var valley = new LossValley(3, 6, 0.3);
        var confirmed = new System.Collections.Generic.List<int>();
        int deadAt = -1;
        for (int i = 0; i < ValleyLosses.Length && !valley.IsDead; i++)
        {
            var (from, to) = valley.Observe(ValleyLosses[i]);
            for (int k = from; k <= to; k++) confirmed.Add(k);
            if (valley.IsDead) deadAt = i;
        }
        Assert.AreEqual(6, valley.Start);
        Assert.AreEqual(10, valley.End);
        Assert.AreEqual((0.8 + 0.82 + 0.9) / 3 * 1.3, valley.Threshold!.Value, 1e-12);
        Assert.AreEqual(16, deadAt, "dead when the last 6 losses (11…16) all exceed 1.092");
        CollectionAssert.AreEqual(new[] { 6, 7, 8, 9, 10 }, confirmed, "each segment of [t_s, t_e] once; not the reference's {4, 5, 6, 6, 7, 8, 9, 10}");
        Assert.ThrowsExactly<InvalidOperationException>(() => valley.Observe(1.0));
    }

    [TestMethod]
    public void LossValleyWithoutDeathEndsAtTheLastSegmentAndWithoutConvergenceHasNoWindow()
    {
        var valley = new LossValley(3, 6, 0.3);
        foreach (var l in ValleyLosses.Take(12)) valley.Observe(l);
        var (from, to) = valley.Finish();
        Assert.AreEqual((6, 11), (valley.Start, valley.End));
        Assert.AreEqual((7, 11), (from, to), "segment 6 was confirmed at i = 11 (t_e ≥ 11 + 1 − 6); Finish confirms the rest");
        Assert.IsFalse(valley.IsDead);

        var falling = new LossValley(3, 6, 0.3);
        foreach (var l in new[] { 5.0, 4, 3, 2, 1 }) falling.Observe(l);
        falling.Finish();
        Assert.IsNull(falling.Start);
        Assert.IsNull(falling.End);
    }

    private static (double[] Weights, AveragingReport Report) RunSwad(SwadOptions options, int steps,
        Func<SwadAverager, int, (SwadAverager, nn.Module<Tensor, Tensor>)?>? afterStep = null)
    {
        var model = Tiny();
        var swad = new SwadAverager(model, options, options.EvaluationFrequency!.Value);
        try
        {
            for (int s = 1; s <= steps && !swad.StopRequested; s++)
            {
                SetWeights(model, s);
                swad.AfterStep(s);
                if (s % swad.EvaluationFrequency == 0) swad.AfterEvaluation(ValleyLosses[s / swad.EvaluationFrequency - 1]);
                if (afterStep?.Invoke(swad, s) is var (resumed, resumedModel)) (swad, model) = (resumed, resumedModel);
            }
            var report = swad.Finish();
            return (Flat(model), report);
        }
        finally
        {
            swad.Dispose();
        }
    }

    [TestMethod]
    public void SwadAveragesEveryIterateOfTheWindowOnceAndStopsEarly()
    {
        var options = WeightAveragingOptions.Swad(evaluationFrequency: 2);
        var (weights, report) = RunSwad(options, ValleyLosses.Length * 2);
        // Segments 6…10 with 2 steps each are steps 13…22; the weights at step s are s + 0.01·index.
        AssertClose(Expected(Tiny(), 17.5), weights, 1e-5, "SWAD average");
        Assert.AreEqual(13L, report.StartStep);
        Assert.AreEqual(22L, report.EndStep);
        Assert.AreEqual(10L, report.AveragedSteps);
        Assert.IsTrue(report.EarlyStopped);
        Assert.AreEqual(1.092, report.Threshold!.Value, 1e-12);
        StringAssert.Contains(report.Detail, "segments 7–11 of", "segments numbered from 1, like steps: steps 13…22 are segments 7…11 of 2 steps");
    }

    [TestMethod]
    public void SwadResumedFromASavedStateGivesTheSameAverage()
    {
        var options = WeightAveragingOptions.Swad(evaluationFrequency: 2);
        var (uninterrupted, expected) = RunSwad(options, ValleyLosses.Length * 2);
        foreach (int saveAt in new[] { 5, 19, 23 })   // before convergence, inside the window with queued segments, mid-segment
        {
            var (resumed, report) = RunSwad(options, ValleyLosses.Length * 2, (swad, s) =>
            {
                if (s != saveAt) return null;
                using var stream = new MemoryStream();
                using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) swad.Save(writer);
                swad.Dispose();
                var freshModel = Tiny();   // as in a new process: a new model object and a new averager
                var fresh = new SwadAverager(freshModel, options, options.EvaluationFrequency!.Value);
                stream.Position = 0;
                using var reader = new BinaryReader(stream);
                fresh.Load(reader);
                return (fresh, freshModel);
            });
            CollectionAssert.AreEqual(uninterrupted, resumed, $"saved after step {saveAt}");
            Assert.AreEqual(expected, report, $"saved after step {saveAt}");
        }
    }

    [TestMethod]
    public void SwaAveragesFromTheStartEveryKStepsAndResumes()
    {
        var model = Tiny();
        var options = new SwaOptions { StartStep = 4, EverySteps = 3 };
        double[] Run(int? saveAt)
        {
            var swa = new StochasticWeightAverager(model, options, new TrainingPlan(5, 3));
            for (int s = 1; s <= 15; s++)
            {
                SetWeights(model, s);
                swa.AfterStep(s);
                if (s % 5 == 0) swa.AfterEpoch(s / 5);
                if (s == saveAt)
                {
                    using var stream = new MemoryStream();
                    using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) swa.Save(writer);
                    swa.Dispose();
                    swa = new StochasticWeightAverager(model, options, new TrainingPlan(5, 3));
                    stream.Position = 0;
                    using var reader = new BinaryReader(stream);
                    swa.Load(reader);
                }
            }
            var report = swa.Finish();
            swa.Dispose();
            Assert.AreEqual((7L, 13L, 3L), (report.StartStep!.Value, report.EndStep!.Value, report.AveragedSteps));
            return Flat(model);
        }
        var once = Run(null);
        AssertClose(Expected(model, 10), once, 1e-5, "mean of steps 7, 10, 13");
        CollectionAssert.AreEqual(once, Run(8));
    }

    [TestMethod]
    public void SwaLearningRateAnnealsOrCycles()
    {
        var model = Tiny();
        var plan = new TrainingPlan(10, 4);
        using var linear = new StochasticWeightAverager(model, new SwaOptions { StartStep = 10, LearningRate = 0.01, AnnealSteps = 4, AnnealStrategy = AnnealStrategy.Linear }, plan);
        Assert.AreEqual(0.5, linear.LearningRate(9, 0.5), "before the start: the trainer's rate");
        double[] expected = { 0.5 - 0.49 * 0.25, 0.5 - 0.49 * 0.5, 0.5 - 0.49 * 0.75, 0.01, 0.01 };
        for (int t = 0; t < expected.Length; t++) Assert.AreEqual(expected[t], linear.LearningRate(10 + t, 0.5 - t * 0.001), 1e-12, $"t = {t}");

        using var cyclic = new StochasticWeightAverager(model, new SwaOptions { StartStep = 0, LearningRate = 0.01, CycleSteps = 4 }, plan);
        var rates = Enumerable.Range(0, 8).Select(s => cyclic.LearningRate(s, 0.05)).ToArray();
        Assert.AreEqual(0.01, rates[3], 1e-12, "end of a cycle: the SWA rate");
        Assert.AreEqual(rates[0], rates[4], 1e-12, "the next cycle starts over");
        Assert.IsTrue(rates[0] > rates[1] && rates[1] > rates[2], "decreasing within a cycle");
        for (int s = 1; s <= 8; s++) { SetWeights(model, s); cyclic.AfterStep(s); }
        Assert.AreEqual((4L, 8L, 2L), (cyclic.Finish().StartStep!.Value, cyclic.Finish().EndStep!.Value, cyclic.Average.Count), "averaged at each cycle end");
    }

    [TestMethod]
    public void BadAveragingOptionsNameTheSetting()
    {
        void Expect(WeightAveragingOptions options, string name)
        {
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(options.Validate);
            Assert.AreEqual(name, e.ParamName);
            StringAssert.Contains(e.Message, name);
        }
        Expect(WeightAveragingOptions.Swad(optimumPatience: 4, overfitPatience: 3), nameof(SwadOptions.OverfitPatience));
        Expect(WeightAveragingOptions.Swad(toleranceRatio: -0.1), nameof(SwadOptions.ToleranceRatio));
        Expect(WeightAveragingOptions.Swad(evaluationFrequency: 0), nameof(SwadOptions.EvaluationFrequency));
        Expect(WeightAveragingOptions.Ema(decay: 1.0), nameof(EmaOptions.Decay));
        Expect(new SwaOptions { CycleSteps = 5 }, nameof(SwaOptions.CycleSteps));
        Expect(new SwaOptions { EverySteps = 0 }, nameof(SwaOptions.EverySteps));
        var late = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new StochasticWeightAverager(Tiny(), new SwaOptions { StartEpoch = 5 }, new TrainingPlan(10, 4)));
        Assert.AreEqual(nameof(SwaOptions.StartEpoch), late.ParamName);
    }

    [TestMethod]
    public void TrainerWithSamAndSwadReportsTheWindowAndRecomputesBatchNorm()
    {
        var options = new ClassifierTrainingOptions
        {
            Epochs = 6, BatchSize = 8, LearningRate = 0.05, GradientStep = Optimization.SharpnessAwareOptions.Sam(0.05),
            Averaging = WeightAveragingOptions.Swad(evaluationFrequency: 2, optimumPatience: 2, overfitPatience: 3), TuneGlibcMalloc = false,
        };
        var model = Net();
        var reports = new ClassifierTrainer(options, CPU).Train(model, Blobs(96, 1, domains: true), Blobs(30, 2, domains: true));
        var last = reports[^1].Averaging;
        Assert.IsNotNull(last, "the last report carries the averaging window");
        Assert.IsTrue(reports.Take(reports.Count - 1).All(r => r.Averaging is null));
        Assert.AreEqual("SWAD", last!.Method);
        Assert.IsTrue(last.AveragedSteps > 0);
        Assert.IsTrue(last.BatchNormBatches > 0, "the model has BatchNorm: statistics recomputed");
        StringAssert.Contains(reports[^1].ToString(), "SWAD");
        Assert.IsTrue(reports[^1].ValidationAccuracy > 0.5, $"the averaged model still classifies: {reports[^1]}");
    }

    [TestMethod]
    public void TrainerResumedFromACheckpointGivesTheSameAveragedModel()
    {
        var cases = new (string Name, ClassifierTrainingOptions Options, bool Domains, int InterruptAfter)[]
        {
            ("SAM + SWAD, SGD momentum, domain batches", new ClassifierTrainingOptions
            {
                Epochs = 5, BatchSize = 8, LearningRate = 0.05, GradientStep = Optimization.SharpnessAwareOptions.Sam(0.05),
                Averaging = WeightAveragingOptions.Swad(evaluationFrequency: 2, optimumPatience: 2, overfitPatience: 6), TuneGlibcMalloc = false,
            }, true, 2),
            ("EMA, AdamW, shuffled batches", new ClassifierTrainingOptions
            {
                Epochs = 3, BatchSize = 8, LearningRate = 0.01, Optimizer = BaseOptimizerKind.AdamW, Averaging = WeightAveragingOptions.Ema(decay: 0.9),
                TuneGlibcMalloc = false,
            }, false, 1),
            ("F2M flat-region search (noise generator resumed), SWA", new ClassifierTrainingOptions
            {
                Epochs = 3, BatchSize = 8, LearningRate = 0.05, GradientStep = new IncrementalFewShot.FlatRegionOptions { Bound = 0.05 },
                Averaging = WeightAveragingOptions.Swa(startEpoch: 2), TuneGlibcMalloc = false,
            }, false, 1),
        };
        foreach (var (name, options, domains, interruptAfter) in cases)
        {
            string path = Path.Combine(Path.GetTempPath(), $"flatminima-checkpoint-{Guid.NewGuid():N}.bin");
            try
            {
                var uninterrupted = Net();
                var expected = new ClassifierTrainer(options, CPU).Train(uninterrupted, Blobs(96, 1, domains), Blobs(30, 2, domains));

                using var cancel = new CancellationTokenSource();
                var interrupted = options with
                {
                    CheckpointPath = path, CancellationToken = cancel.Token,
                    Progress = r => { if (r.Epoch == interruptAfter) cancel.Cancel(); },
                };
                Assert.ThrowsExactly<OperationCanceledException>(() => new ClassifierTrainer(interrupted, CPU).Train(Net(), Blobs(96, 1, domains), Blobs(30, 2, domains)));
                Assert.IsTrue(File.Exists(path), $"{name}: a checkpoint was written");

                var resumed = Net();   // as in a new process: a new model (its weights are replaced by the checkpoint's)
                using (no_grad()) foreach (var p in resumed.parameters()) p.add_(1);
                var reports = new ClassifierTrainer(options, CPU).Train(resumed, Blobs(96, 1, domains), Blobs(30, 2, domains), resumeFrom: path);

                Assert.AreEqual(expected.Count - interruptAfter, reports.Count, $"{name}: only the remaining epochs run");
                Assert.AreEqual(expected[^1].Averaging, reports[^1].Averaging, $"{name}: same averaging window");
                var a = uninterrupted.state_dict();
                var b = resumed.state_dict();
                foreach (var (key, value) in a)
                    Assert.IsTrue(value.equal(b[key]).all().item<bool>(), $"{name}: '{key}' is bit-identical to the uninterrupted run");
            }
            finally
            {
                File.Delete(path);
            }
        }
        var wrong = new ClassifierTrainingOptions { Epochs = 2, BatchSize = 8, TuneGlibcMalloc = false };
        string other = Path.Combine(Path.GetTempPath(), $"flatminima-checkpoint-{Guid.NewGuid():N}.bin");
        try
        {
            new ClassifierTrainer(wrong with { CheckpointPath = other }, CPU).Train(Net(), Blobs(32, 1, false));
            var e = Assert.ThrowsExactly<InvalidDataException>(() => new ClassifierTrainer(wrong with { BatchSize = 4 }, CPU).Train(Net(), Blobs(32, 1, false), resumeFrom: other));
            StringAssert.Contains(e.Message, "different run");
        }
        finally
        {
            File.Delete(other);
        }
    }

    [TestMethod]
    public void SwadWithoutValidationDataIsRejected()
    {
        var options = new ClassifierTrainingOptions { Epochs = 1, BatchSize = 8, Averaging = WeightAveragingOptions.Swad(), TuneGlibcMalloc = false };
        var e = Assert.ThrowsExactly<ArgumentException>(() => new ClassifierTrainer(options, CPU).Train(Net(), Blobs(16, 1, false)));
        StringAssert.Contains(e.Message, "Averaging");
        StringAssert.Contains(e.Message, "validation");
    }

    [TestMethod]
    public void DomainBatchesTakeTheSameNumberFromEachDomain()
    {
        var data = Blobs(30, 1, domains: true);
        using var generator = new Generator(1, CPU);
        using var sampler = new BatchSampler(data, 4, generator);
        Assert.AreEqual(3, sampler.StepsPerEpoch, "⌈30 / (4 · 3)⌉");
        foreach (var index in sampler.Epoch().Concat(sampler.Epoch()))
        {
            var counts = data.Domains!.index_select(0, index).bincount(null, 0).data<long>().ToArray();
            CollectionAssert.AreEqual(new long[] { 4, 4, 4 }, counts);
        }
    }
}
