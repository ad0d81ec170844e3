using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static FlatMinima.Torch.Tests.TinyTraining;

namespace FlatMinima.Torch.Tests;

/// <summary>The efficient sharpness-aware schedules (LookSAM, RST, AE-SAM) and MESA: hand-computed updates, the limits
/// that equal SAM or plain training bit for bit, the decision rules, and bit-identical resumption.</summary>
[TestClass]
public sealed class EfficientSamTests
{
    private static float[] Weights(nn.Module model) => model.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();

    private static readonly ClassifierTrainingOptions Run = new() { Epochs = 2, BatchSize = 8, LearningRate = 0.05, TuneGlibcMalloc = false };

    private static (float[] Weights, IReadOnlyList<EpochReport> Reports) Train(ClassifierTrainingOptions options, int rows = 40)
    {
        var model = Net();
        var reports = new ClassifierTrainer(options, CPU).Train(model, Blobs(rows, 3));
        return (Weights(model), reports);
    }

    [TestMethod]
    public void LookSamWithIntervalOneAndRstWithProbabilityOneTrainBitIdenticallyToSam()
    {
        foreach (var sam in new[] { SharpnessAwareOptions.Sam(0.1), SharpnessAwareOptions.Asam(0.5) })
        {
            var (reference, samReports) = Train(Run with { GradientStep = sam });
            var (look, lookReports) = Train(Run with { GradientStep = sam with { Efficiency = new LookSamSchedule { Interval = 1, Alpha = 0.7 } } });
            var (rst, _) = Train(Run with { GradientStep = sam with { Efficiency = new RandomizedSamSchedule { Probability = 1 } } });
            var (rstLinear, _) = Train(Run with { GradientStep = sam with { Efficiency = RandomizedSamSchedule.Linear(1, 1) } });
            CollectionAssert.AreEqual(reference, look, $"LookSAM k = 1 is SAM ({(sam.Adaptive ? "ASAM" : "SAM")})");
            CollectionAssert.AreEqual(reference, rst, "RST p = 1 is SAM");
            CollectionAssert.AreEqual(reference, rstLinear, "RST with p 1 → 1 is SAM");
            Assert.AreEqual(samReports[^1].TrainLoss, lookReports[^1].TrainLoss, "same reported loss");
            Assert.AreEqual(5, samReports[0].Steps);
            Assert.AreEqual(5, samReports[0].SharpnessAwareSteps, "SAM: every step is sharpness-aware");
            Assert.AreEqual(5, lookReports[0].SharpnessAwareSteps);
        }
    }

    [TestMethod]
    public void RstWithProbabilityZeroTrainsBitIdenticallyToPlainSgd()
    {
        var (plain, plainReports) = Train(Run);
        var (rst, rstReports) = Train(Run with { GradientStep = SharpnessAwareOptions.RandomizedSam(probability: 0) });
        CollectionAssert.AreEqual(plain, rst);
        Assert.AreEqual(0, plainReports[0].SharpnessAwareSteps);
        Assert.AreEqual(0, rstReports[0].SharpnessAwareSteps);
        var (samEveryFifth, reports) = Train(Run with { GradientStep = SharpnessAwareOptions.LookSam(interval: 5) });
        Assert.IsFalse(samEveryFifth.SequenceEqual(plain));
        Assert.AreEqual(1, reports[0].SharpnessAwareSteps, "LookSAM k = 5: one sharpness-aware step of the epoch's 5");
        StringAssert.Contains(reports[0].ToString(), "sharpness-aware steps 1/5");
    }

    // A float64 linear classifier without bias; the loss is cross-entropy.
    private static (Linear Model, SGD Optimizer, GradientStepContext Context) LinearSetup(double[] weights, double lr, int seed = 1, TrainingPlan? plan = null)
    {
        var model = nn.Linear(3, 2, hasBias: false, dtype: ScalarType.Float64);
        using (no_grad()) model.weight!.copy_(tensor(weights, ScalarType.Float64).view(2, 3));
        var sgd = optim.SGD(model.parameters(), lr);
        var context = new GradientStepContext(model, sgd, (logits, y) => nn.functional.cross_entropy(logits, y), seed) { Plan = plan };
        return (model, sgd, context);
    }

    private static readonly double[] W0 = { 0.3, -0.2, 0.5, -0.4, 0.1, 0.2 };

    private static (Tensor X, Tensor Y) LinearData() =>
        (tensor(new[] { 1.0, 2.0, -1.0, 0.5, -1.5, 2.0, -2.0, 0.3, 1.0, 1.2, 1.1, -0.7 }, ScalarType.Float64).view(4, 3), tensor(new long[] { 0, 1, 1, 0 }));

    // The plain gradient of the mean cross-entropy at w (flat, 6 values), by autograd on a fresh leaf tensor.
    private static Tensor Gradient(Tensor w, Tensor x, Tensor y)
    {
        var leaf = w.detach().clone().requires_grad_(true);
        nn.functional.cross_entropy(x.matmul(leaf.view(2, 3).t()), y).backward();
        return leaf.grad!.detach().clone();
    }

    [TestMethod]
    public void LookSamStepsMatchTheHandComputedUpdates()
    {
        const double rho = 0.2, alpha = 0.7, lr = 0.5;
        var (x, y) = LinearData();
        var (model, sgd, context) = LinearSetup(W0, lr);
        using var step = (ScheduledSharpnessAwareGradientStep)SharpnessAwareOptions.LookSam(interval: 2, alpha: alpha, rho: rho).CreateStep(context);

        // Step 0 is sharpness-aware: g_s at w + ρ g/‖g‖; g_v is g_s minus its projection on g.
        var w0 = tensor(W0, ScalarType.Float64);
        var g0 = Gradient(w0, x, y);
        var gs = Gradient(w0 + rho * g0 / g0.norm(), x, y);
        var gv = gs - gs.dot(g0) / g0.dot(g0) * g0;
        var w1 = w0 - lr * gs;
        Assert.IsTrue(step.Compute(x, y, 0).SharpnessAware);
        sgd.step();
        AssertClose(w1, model.weight!, "after the sharpness-aware step");

        // Step 1 reuses g_v: g + α ‖g‖/‖g_v‖ g_v (one pass).
        var g1 = Gradient(w1, x, y);
        var w2 = w1 - lr * (g1 + alpha * g1.norm() / gv.norm() * gv);
        Assert.IsFalse(step.Compute(x, y, 1).SharpnessAware);
        sgd.step();
        AssertClose(w2, model.weight!, "after the reusing step");
        Assert.AreEqual(1, step.SharpnessAwareSteps);
        Assert.AreEqual(2, step.Steps);
        Assert.IsTrue(step.Compute(x, y, 2).SharpnessAware, "t mod k = 0 again");
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        var (e, a) = (expected.detach().flatten().data<double>().ToArray(), actual.detach().flatten().data<double>().ToArray());
        for (int i = 0; i < e.Length; i++) Assert.AreEqual(e[i], a[i], 1e-10, $"{what}: [{i}]");
    }

    [TestMethod]
    public void RstDrawsItsBernoulliTrialsFromItsOwnSeededGeneratorWithTheLinearSchedule()
    {
        var schedule = RandomizedSamSchedule.Linear(0.2, 0.8);
        Assert.AreEqual(0.2, schedule.ProbabilityAt(0, 11), 1e-15);
        Assert.AreEqual(0.5, schedule.ProbabilityAt(5, 11), 1e-15);
        Assert.AreEqual(0.8, schedule.ProbabilityAt(10, 11), 1e-15);
        Assert.AreEqual(0.3, new RandomizedSamSchedule { Probability = 0.3 }.ProbabilityAt(7, 11), "constant without FinalProbability");

        var (x, y) = LinearData();
        var (_, sgd, context) = LinearSetup(W0, 0.1, seed: 42, plan: new TrainingPlan(11, 1));
        using var gradientStep = (SharpnessAwareOptions.Sam(0.1) with { Efficiency = schedule }).CreateStep(context);
        using var draws = new Generator(42 + RandomizedSamPolicy.SeedOffset, CPU);
        int taken = 0;
        for (int t = 0; t < 11; t++)
        {
            bool expected = rand(1, generator: draws).item<float>() < schedule.ProbabilityAt(t, 11);
            Assert.AreEqual(expected, gradientStep.Compute(x, y, t).SharpnessAware, $"step {t}");
            sgd.step();
            if (expected) taken++;
        }
        Assert.IsTrue(taken is > 0 and < 11, $"a mixture of steps ({taken} of 11)");
    }

    [TestMethod]
    public void AeSamDecidesByTheMovingMeanAndVarianceOfTheSquaredNorm()
    {
        var schedule = new AdaptiveSamSchedule { Decay = 0.5, InitialThreshold = -1, FinalThreshold = 1 };
        var (_, _, context) = LinearSetup(W0, 0.1, plan: new TrainingPlan(4, 1));
        var policy = new AdaptiveSamPolicy(schedule, context, context.Model.parameters().ToArray());
        // c_t = −1 + 2t/4. By hand: μ = 2, 1.5, 5.25, 3.125; σ² = 2, 1.125, 7.59375, 6.0546875.
        double[] norms = { 4, 1, 9, 1 }, means = { 2, 1.5, 5.25, 3.125 }, variances = { 2, 1.125, 7.59375, 6.0546875 };
        bool[] expected = { true, true, true, false };   // 4 ≥ 2 − √2; 1 ≥ 1.5 − 0.5·√1.125; 9 ≥ 5.25; 1 < 3.125 + 0.5·√6.05
        for (int t = 0; t < 4; t++)
        {
            Assert.AreEqual(expected[t], policy.Observe(norms[t], t), $"step {t}");
            Assert.AreEqual(means[t], policy.Mean, 1e-12, $"μ at {t}");
            Assert.AreEqual(variances[t], policy.Variance, 1e-12, $"σ² at {t}");
        }
        Assert.AreEqual(-0.5, schedule.ThresholdAt(1, 4), 1e-15);
    }

    [TestMethod]
    public void AeSamInTheLoopTakesSamOrThePlainGradientByItsThreshold()
    {
        // A threshold every squared norm passes (c = −10⁶) is SAM; one none passes (c = +10⁶) is plain training.
        AdaptiveSamSchedule Constant(double c) => new() { InitialThreshold = c, FinalThreshold = c };
        var (sam, _) = Train(Run with { GradientStep = SharpnessAwareOptions.Sam(0.1) });
        var (always, alwaysReports) = Train(Run with { GradientStep = SharpnessAwareOptions.AeSam(0.1) with { Efficiency = Constant(-1e6) } });
        CollectionAssert.AreEqual(sam, always);
        Assert.AreEqual(5, alwaysReports[0].SharpnessAwareSteps);
        var (plain, _) = Train(Run);
        var (never, neverReports) = Train(Run with { GradientStep = SharpnessAwareOptions.AeSam(0.1) with { Efficiency = Constant(1e6) } });
        CollectionAssert.AreEqual(plain, never);
        Assert.AreEqual(0, neverReports.Sum(r => r.SharpnessAwareSteps));
        var (_, defaults) = Train(Run with { Epochs = 4, GradientStep = SharpnessAwareOptions.AeSam(0.1) });
        long taken = defaults.Sum(r => r.SharpnessAwareSteps);
        Assert.IsTrue(taken is > 0 and < 20, $"the default schedule mixes the two ({taken} of 20)");
    }

    [TestMethod]
    [DataRow(false, DisplayName = "fixed decay")]
    [DataRow(true, DisplayName = "decay warm-up")]
    public void MesaLossAndGradientMatchTheHandComputation(bool decayWarmup)
    {
        const double lambda = 0.5, tau = 2, decay = 0.9, lr = 0.5;
        // The teacher's first update (n = 1) uses d = 0.9, or min(0.9, (1 + 1)/(10 + 1)) = 2/11 with the warm-up.
        double d1 = decayWarmup ? 2.0 / 11 : decay;
        var model = nn.Linear(3, 2, hasBias: false);
        var w0 = tensor(W0.Select(v => (float)v).ToArray()).view(2, 3);
        using (no_grad()) model.weight!.copy_(w0);
        var sgd = optim.SGD(model.parameters(), lr);
        var context = new GradientStepContext(model, sgd, (logits, y) => nn.functional.cross_entropy(logits, y), 1) { Plan = new TrainingPlan(2, 3) };
        using var step = new MesaGradientStep(context, new MesaOptions { Weight = lambda, Temperature = tau, Decay = decay, DecayWarmup = decayWarmup, WarmupEpochs = 0 });
        var (x64, y) = LinearData();
        var x = x64.to_type(ScalarType.Float32);

        // Step 0: the teacher is a copy of w0, so the KL term is 0 and the gradient is cross-entropy's.
        var r0 = step.Compute(x, y, 0);
        Assert.AreEqual(0, step.LastDivergence, 1e-7);
        Assert.AreEqual(nn.functional.cross_entropy(x.matmul(w0.t()), y).item<float>(), r0.Loss.item<float>(), 1e-6);
        Assert.IsFalse(r0.SharpnessAware);
        sgd.step();
        var w1 = model.weight!.detach().clone();

        // Step 1: teacher θ̄ = d·w0 + (1 − d)·w1; loss = CE + λ τ² KL(softmax(x θ̄ᵀ/τ) ‖ softmax(x w1ᵀ/τ)).
        var teacher = w0 * d1 + w1 * (1 - d1);
        var pt = nn.functional.softmax(x.matmul(teacher.t()) / tau, 1);
        var leaf = w1.clone().requires_grad_(true);
        var logits = x.matmul(leaf.t());
        var ce = nn.functional.cross_entropy(logits, y);
        var kl = (pt * (pt.log() - nn.functional.log_softmax(logits / tau, 1))).sum(1).mean();
        (ce + lambda * tau * tau * kl).backward();
        var r1 = step.Compute(x, y, 1);
        Assert.AreEqual(kl.item<float>(), step.LastDivergence, 1e-6, "the KL term");
        Assert.IsTrue(step.LastDivergence > 1e-6, "the teacher differs from the student");
        Assert.AreEqual(ce.item<float>(), r1.Loss.item<float>(), 1e-6, "the reported loss is the cross-entropy");
        var (e, a) = (leaf.grad!.data<float>().ToArray(), model.weight!.grad!.data<float>().ToArray());
        for (int i = 0; i < e.Length; i++) Assert.AreEqual(e[i], a[i], 1e-6, $"gradient [{i}]");
        CollectionAssert.AreEqual(w1.data<float>().ToArray(), model.weight!.detach().data<float>().ToArray(), "the weights are put back after the teacher's pass");
    }

    [TestMethod]
    public void MesaWaitsForItsWarmupEpochs()
    {
        var model = nn.Linear(3, 2, hasBias: false);
        var sgd = optim.SGD(model.parameters(), 0.5);
        var context = new GradientStepContext(model, sgd, (logits, y) => nn.functional.cross_entropy(logits, y), 1) { Plan = new TrainingPlan(2, 3) };
        using var step = new MesaGradientStep(context, new MesaOptions { Decay = 0.5, WarmupEpochs = 1 });
        var (x64, y) = LinearData();
        var x = x64.to_type(ScalarType.Float32);
        for (int t = 0; t < 3; t++)
        {
            step.Compute(x, y, t);
            sgd.step();
            if (t < 2) Assert.AreEqual(0, step.LastDivergence, $"warm-up step {t}");
        }
        Assert.IsTrue(step.LastDivergence > 0, "the term applies from the second epoch (step 2)");
    }

    public static IEnumerable<object[]> ResumableSteps() => new[]
    {
        new object[] { "LookSAM", SharpnessAwareOptions.LookSam(interval: 3), 1 },
        new object[] { "RST", SharpnessAwareOptions.RandomizedSam(0.2, 0.9), 1 },
        new object[] { "AE-SAM", SharpnessAwareOptions.AeSam(), 1 },
        new object[] { "ASAM + LookSAM", SharpnessAwareOptions.Asam() with { Efficiency = new LookSamSchedule { Interval = 2 } }, 1 },
        new object[] { "MESA", MesaOptions.Default() with { WarmupEpochs = 1, Decay = 0.9 }, 1 },
        new object[] { "SAM, accumulated", SharpnessAwareOptions.Sam(), 2 },
        new object[] { "LookSAM, accumulated", SharpnessAwareOptions.LookSam(interval: 2), 2 },
        new object[] { "MESA, accumulated", MesaOptions.Default() with { WarmupEpochs = 1, Decay = 0.9 }, 2 },
    };

    [TestMethod]
    [DynamicData(nameof(ResumableSteps))]
    public void AResumedRunIsBitIdenticalToTheUninterruptedOne(string name, GradientStepOptions gradientStep, int accumulation)
    {
        var data = Blobs(40, 5);
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-efficient-{Guid.NewGuid():N}.ckpt");
        try
        {
            var options = new ClassifierTrainingOptions
            {
                Epochs = 3, BatchSize = 8 / accumulation, AccumulationSteps = accumulation, TuneGlibcMalloc = false, GradientStep = gradientStep,
                Averaging = WeightAveragingOptions.Ema(0.9), CheckpointPath = path,
            };
            var full = Net();
            var fullReports = new ClassifierTrainer(options, CPU).Train(full, data);

            var interrupted = Net();
            var stopping = new ClassifierTrainer(options with { Progress = r => { if (r.Epoch == 2) throw new OperationCanceledException(); } }, CPU);
            Assert.ThrowsExactly<OperationCanceledException>(() => stopping.Train(interrupted, data));
            var resumed = Net();
            var resumedReports = new ClassifierTrainer(options with { CheckpointPath = null }, CPU).Train(resumed, data, resumeFrom: path);
            CollectionAssert.AreEqual(Weights(full), Weights(resumed), $"{name}: resumed = uninterrupted, bit for bit");
            Assert.AreEqual(fullReports[^1].SharpnessAwareSteps, resumedReports[^1].SharpnessAwareSteps, $"{name}: same decisions in the last epoch");
            Assert.AreEqual(fullReports[^1].TrainLoss, resumedReports[^1].TrainLoss, name);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void BadSettingsAreRejectedNamingTheSetting()
    {
        string Fails<T>(ClassifierTrainingOptions options) where T : ArgumentException =>
            Assert.ThrowsExactly<T>(() => new ClassifierTrainer(options, CPU)).ParamName!;
        Assert.AreEqual("Efficiency.Interval", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = SharpnessAwareOptions.LookSam(interval: 0) }));
        Assert.AreEqual("Efficiency.Alpha", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = SharpnessAwareOptions.LookSam(alpha: -1) }));
        Assert.AreEqual("Efficiency.Probability", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = SharpnessAwareOptions.RandomizedSam(1.5) }));
        Assert.AreEqual("Efficiency.FinalProbability", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = SharpnessAwareOptions.RandomizedSam(0, -0.1) }));
        Assert.AreEqual("Efficiency.Decay", Fails<ArgumentOutOfRangeException>(Run with
        {
            GradientStep = SharpnessAwareOptions.AeSam() with { Efficiency = new AdaptiveSamSchedule { Decay = 1 } },
        }));
        Assert.AreEqual("Efficiency", Fails<ArgumentException>(Run with { GradientStep = SharpnessAwareOptions.LookSam() with { ShardCount = 2 } }));
        Assert.AreEqual("Weight", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = new MesaOptions { Weight = -1 } }));
        Assert.AreEqual("Temperature", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = new MesaOptions { Temperature = 0 } }));
        Assert.AreEqual("Decay", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = new MesaOptions { Decay = 1 } }));
        Assert.AreEqual("WarmupEpochs", Fails<ArgumentOutOfRangeException>(Run with { GradientStep = new MesaOptions { WarmupEpochs = 2 } }), "Epochs = 2");
        Assert.AreEqual("AccumulationSteps", Fails<ArgumentOutOfRangeException>(Run with { AccumulationSteps = 0 }));
        Assert.AreEqual("AccumulationSteps", Fails<ArgumentException>(Run with { AccumulationSteps = 2, GradientStep = new FlatRegionOptions() }));
        Assert.AreEqual("ShardCount", Fails<ArgumentException>(Run with { AccumulationSteps = 2, GradientStep = SharpnessAwareOptions.Sam() with { ShardCount = 2 } }));
    }
}
