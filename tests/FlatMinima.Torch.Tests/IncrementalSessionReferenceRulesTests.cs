using System;
using System.Linq;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

/// <summary>The reference code's session rules: gradient rounding with the step-count rule, and refreshed prototypes of
/// earlier sessions' classes.</summary>
[TestClass]
public sealed class IncrementalSessionReferenceRulesTests
{
    private const double Bound = 0.01;
    private const double Quantum = Bound / 4;

    private static SmallImageResNet TinyResNet() => new(1, 4, new[] { 4, 8 }, new[] { 1, 1 }, "TinyResNet");

    private static IncrementalLearner BaseLearner(int seed)
    {
        manual_seed(seed);
        var x = randn(48, 1, 12, 12).mul(2).add(3);
        var y = arange(48).remainder(4).to_type(ScalarType.Int64);
        return IncrementalLearner.FromBaseSession(TinyResNet(), TinyResNet, x, y,
            new FlatRegionOptions { RangeLayerCount = 2, Bound = Bound }, batchSize: 16);
    }

    private static (Tensor Inputs, Tensor Labels) Shots(int seed, int shots, params long[] classes)
    {
        manual_seed(seed);
        return (randn(shots * classes.Length, 1, 12, 12).mul(2).add(3), tensor(classes.SelectMany(c => Enumerable.Repeat(c, shots)).ToArray()));
    }

    private static double[] Values(Tensor t) => t.to_type(ScalarType.Float64).data<double>().ToArray();

    [TestMethod]
    public void RoundingIsToTheNearestMultipleOfTheQuantum()
    {
        // value/quantum = 0.48, −0.52, 1.6, 1.496, 2.5 → 0, −1, 2, 1, 2 (half to even).
        using var value = tensor(new[] { 0.0012, -0.0013, 0.004, 0.00374, 0.00625 });
        CollectionAssert.AreEqual(new[] { 0, -0.0025, 0.005, 0.0025, 0.005 }, Values(SessionRounding.Round(value, Quantum)).Select(v => Math.Round(v, 10)).ToArray());
    }

    [TestMethod]
    public void StepCountIsRaisedOnlyWhileEverythingRoundsToZero()
    {
        // value/quantum = 0.16, −0.08: zero at n = 1 and n = 2 (0.32), non-zero at n = 4 (0.64 → 1; −0.32 → 0).
        using var value = tensor(new[] { 0.0004, -0.0002 });
        CollectionAssert.AreEqual(new[] { 0.0, 0.0 }, Values(SessionRounding.Round(value, Quantum)), "no raise: both round to 0");
        CollectionAssert.AreEqual(new[] { 0.0, 0.0 }, Values(SessionRounding.Round(value, Quantum, stepIncrease: 1)), "n = 2: 0.32 still rounds to 0");
        CollectionAssert.AreEqual(new[] { 0.0, 0.0 }, Values(SessionRounding.Round(value, Quantum, stepIncrease: 2)), "n = 3: 0.48 still rounds to 0");
        CollectionAssert.AreEqual(new[] { Quantum, 0.0 }, Values(SessionRounding.Round(value, Quantum, stepIncrease: 3)).Select(v => Math.Round(v, 10)).ToArray(), "n = 4: 0.64 → 1");
        CollectionAssert.AreEqual(new[] { Quantum, 0.0 }, Values(SessionRounding.Round(value, Quantum, stepIncrease: 9)).Select(v => Math.Round(v, 10)).ToArray(),
            "the raise stops at the first non-zero step count");
        using var large = tensor(new[] { 0.0013, 0.0002 });
        CollectionAssert.AreEqual(new[] { Quantum, 0.0 }, Values(SessionRounding.Round(large, Quantum, stepIncrease: 5)).Select(v => Math.Round(v, 10)).ToArray(),
            "a value that already has a non-zero element is not scaled");
    }

    // The session loss's gradient on the range parameters at the learner's current weights, computed here from its
    // definition: CE over −‖f − p̂‖² against [fixed prototypes ∥ batch means of the classes from `batchFrom` on].
    private static Tensor[] SessionGradient(IncrementalLearner learner, Tensor x, Tensor y, long batchFrom, out double loss, bool rawPrototypes = false)
    {
        var range = learner.FlatRegion.ParametersOf(learner.Network);
        var embed = (IEmbeddingNetwork)learner.Network;
        foreach (var p in learner.Network.parameters()) p.grad?.zero_();
        learner.Network.eval();
        var f = embed.Embed(x);
        var rows = y.ge(batchFrom).nonzero().flatten();
        var means = Prototypes.ClassMeans(f.index_select(0, rows), y.index_select(0, rows).sub(batchFrom), y.max().item<long>() + 1 - batchFrom);
        var all = cat(new[] { learner.Prototypes.narrow(0, 0, batchFrom), means }, 0);
        var p̂ = rawPrototypes ? all : nn.functional.normalize(all, 2.0, 1);
        var distances = f.unsqueeze(1).sub(p̂.unsqueeze(0)).pow(2).sum(2);
        var value = nn.functional.cross_entropy(distances.neg(), y);
        loss = value.ToDouble();
        value.backward();
        var gradients = range.Select(p => p.grad!.detach().clone()).ToArray();
        foreach (var p in learner.Network.parameters()) p.grad?.zero_();
        return gradients;
    }

    [TestMethod]
    public void GradientRoundingMovesEachRangeParameterByTheRoundedScaledGradient()
    {
        using var learner = BaseLearner(41);
        var (x, y) = Shots(42, 5, 4, 5);
        var before = learner.FlatRegion.ParametersOf(learner.Network).Select(p => p.detach().clone()).ToArray();
        var g = SessionGradient(learner, x, y, 4, out double loss);
        double maxGradient = g.Max(t => t.abs().max().ToDouble());
        double lr = 3 * Quantum / maxGradient; // the largest |lr·g| is 3 quanta, most elements are far below half a quantum
        var result = learner.AddSession(x, y, new IncrementalSessionOptions
        {
            Epochs = 1, LearningRate = lr, Momentum = 0, WeightDecay = 0, RoundingReduction = 4, Rounding = SessionRoundingMode.Gradient,
            ClampToRegion = false, // 3 quanta exceed b/2: without the clamp the whole rounded step shows
        });
        Assert.AreEqual(loss, result.Losses[0], 1e-5, "the session loss is the cross-entropy against [fixed ∥ batch] prototypes");
        var after = learner.FlatRegion.ParametersOf(learner.Network);
        long moved = 0, total = 0;
        for (int i = 0; i < after.Length; i++)
        {
            var step = after[i].detach().sub(before[i]);
            var expected = SessionRounding.Round(g[i].mul(lr), Quantum).neg();
            Assert.IsTrue(step.sub(expected).abs().max().ToDouble() < 1e-6, $"{learner.FlatRegion.Names[i]}: θ moved by −round(lr·g)");
            moved += step.ne(0).sum().item<long>();
            total += step.numel();
        }
        Assert.IsTrue(moved > 0 && moved < total / 2, $"the update is sparse: {moved} of {total} elements moved");
        Assert.AreEqual(3 * Quantum, result.MaxDeviation, 1e-6, "the largest step is 3 quanta");
    }

    [TestMethod]
    public void LossNormalizationChangesTheLossButNotTheScoring()
    {
        using var learner = BaseLearner(58);
        using var same = learner.Clone();
        var (x, y) = Shots(59, 5, 4, 5);
        SessionGradient(learner, x, y, 4, out double rawLoss, rawPrototypes: true);
        var options = new IncrementalSessionOptions { Epochs = 1, LearningRate = 1e-4 };
        var raw = learner.AddSession(x, y, options with { LossNormalization = PrototypeNormalization.None });
        Assert.AreEqual(rawLoss, raw.Losses[0], 1e-4 * Math.Max(1, rawLoss), "the loss compares raw prototypes and embeddings");
        var normalised = same.AddSession(x, y, options);
        Assert.AreNotEqual(raw.Losses[0], normalised.Losses[0], 1e-6, "the default loss normalises the prototypes");
        Assert.AreEqual(PrototypeNormalization.Prototypes, learner.Normalization, "scoring keeps the learner's normalisation");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (options with { LossNormalization = (PrototypeNormalization)9 }).Validate()).Message,
            "LossNormalization");
    }

    [TestMethod]
    public void StepCountRuleMovesATensorWhoseRoundedGradientIsZero()
    {
        using var a = BaseLearner(43);
        using var b = a.Clone();
        var (x, y) = Shots(44, 5, 4);
        var g = SessionGradient(a, x, y, 4, out _);
        double maxGradient = g.Max(t => t.abs().max().ToDouble());
        double lr = 0.4 * (Quantum / 2) / maxGradient; // n = 1: 0.4, n = 2: 0.8 of half a quantum → 0; n = 3: 1.2 → the largest moves
        var options = new IncrementalSessionOptions
        {
            Epochs = 1, LearningRate = lr, Momentum = 0, WeightDecay = 0, RoundingReduction = 4, Rounding = SessionRoundingMode.Gradient, RoundingStepIncrease = 1,
        };
        Assert.AreEqual(0, a.AddSession(x, y, options).MaxDeviation, "with one raise (n = 2) every element still rounds to 0");
        var before = b.FlatRegion.ParametersOf(b.Network).Select(p => p.detach().clone()).ToArray();
        var result = b.AddSession(x, y, options with { RoundingStepIncrease = 2 });
        Assert.AreEqual(Quantum, result.MaxDeviation, 1e-7, "with two raises (n = 3) the largest element moves by one quantum");
        var after = b.FlatRegion.ParametersOf(b.Network);
        for (int i = 0; i < after.Length; i++)
        {
            var expected = SessionRounding.Round(g[i].mul(lr), Quantum, 2).neg();
            Assert.IsTrue(after[i].detach().sub(before[i]).sub(expected).abs().max().ToDouble() < 1e-7, $"{b.FlatRegion.Names[i]}: the rule acts per tensor");
        }
    }

    [TestMethod]
    public void UpdateRoundingKeepsItsBehaviourAndTakesTheStepCountRule()
    {
        using var a = BaseLearner(45);
        var (x, y) = Shots(46, 5, 4);
        var g = SessionGradient(a, x, y, 4, out _);
        double lr = 0.4 * (Quantum / 2) / g.Max(t => t.abs().max().ToDouble());
        var options = new IncrementalSessionOptions { Epochs = 1, LearningRate = lr, Momentum = 0, WeightDecay = 0, RoundingReduction = 4 };
        Assert.AreEqual(SessionRoundingMode.Update, options.Rounding, "the default mode rounds the whole update");
        using var b = a.Clone();
        Assert.AreEqual(0, a.AddSession(x, y, options).MaxDeviation, "an update below half a quantum rounds to 0");
        Assert.AreEqual(Quantum, b.AddSession(x, y, options with { RoundingStepIncrease = 2 }).MaxDeviation, 1e-7, "raised to 3 steps it moves one quantum");
    }

    [TestMethod]
    public void RefreshedPrototypesComeFromTheBatchInTheLossAndFromTheExemplarsAfterwards()
    {
        using var learner = BaseLearner(47);
        var (x1, y1) = Shots(48, 5, 4, 5);
        learner.AddSession(x1, y1, new IncrementalSessionOptions { Epochs = 2, LearningRate = 0.5 }, exemplarsPerClass: 5);
        using var basePrototypes = learner.Prototypes.narrow(0, 0, 4).clone();
        using var sessionOne = learner.Prototypes.narrow(0, 4, 2).clone();

        var (x2, y2) = Shots(49, 5, 6);
        using var xAll = cat(new[] { x2, learner.Exemplars.Inputs }, 0);
        using var yAll = cat(new[] { y2, learner.Exemplars.Labels }, 0);
        SessionGradient(learner, xAll, yAll, 4, out double expectedLoss);
        var options = new IncrementalSessionOptions { Epochs = 3, LearningRate = 0.5, RefreshNovelPrototypes = true };
        using var reference = learner.Clone();
        var result = learner.AddSession(x2, y2, options);

        Assert.AreEqual(expectedLoss, result.Losses[0], 1e-5, "classes 4 and 5 take batch prototypes in the loss, like the new class 6");
        Assert.AreEqual(7, learner.ClassCount);
        Assert.IsTrue(basePrototypes.eq(learner.Prototypes.narrow(0, 0, 4)).all().item<bool>(), "the base prototypes stay fixed");
        using var recomputed = Prototypes.Compute(learner.Network, learner.Exemplars.Inputs.narrow(0, 0, 10), learner.Exemplars.Labels.narrow(0, 0, 10).sub(4), 2, 256, CPU);
        Assert.IsTrue(recomputed.sub(learner.Prototypes.narrow(0, 4, 2)).abs().max().ToDouble() < 1e-5, "classes 4 and 5 are re-estimated under the fine-tuned network");
        Assert.IsTrue(result.RefreshedPrototypes!.sub(recomputed).abs().max().ToDouble() < 1e-5, "the result reports them");
        Assert.IsTrue(sessionOne.sub(learner.Prototypes.narrow(0, 4, 2)).abs().max().ToDouble() > 1e-4, "and they changed");

        // Without refreshing, the earlier prototypes stay bit-identical; the weights follow a different loss.
        var fixedResult = reference.AddSession(x2, y2, options with { RefreshNovelPrototypes = false });
        Assert.IsNull(fixedResult.RefreshedPrototypes);
        Assert.IsTrue(sessionOne.eq(reference.Prototypes.narrow(0, 4, 2)).all().item<bool>(), "fixed prototypes without RefreshNovelPrototypes");
        Assert.AreEqual(result.Losses[0], fixedResult.Losses[0], 1e-6, "at the first step the batch prototypes of 4 and 5 equal the stored ones (same shots, same weights)");
        Assert.AreNotEqual(result.Losses[^1], fixedResult.Losses[^1], "after the weights moved the losses differ: batch vs fixed prototypes of classes 4 and 5");
    }

    [TestMethod]
    public void RefreshKeepsPrototypesOfClassesWithoutExemplars()
    {
        using var learner = BaseLearner(50);
        var (x1, y1) = Shots(51, 3, 4);
        learner.AddSession(x1, y1, new IncrementalSessionOptions { Epochs = 0 }, exemplarsPerClass: 0);
        using var four = learner.Prototypes.narrow(0, 4, 1).clone();
        var (x2, y2) = Shots(52, 3, 5);
        learner.AddSession(x2, y2, new IncrementalSessionOptions { Epochs = 2, LearningRate = 0.5, RefreshNovelPrototypes = true });
        Assert.IsTrue(four.eq(learner.Prototypes.narrow(0, 4, 1)).all().item<bool>(), "class 4 has no rows in the session: its prototype is kept");
    }

    [TestMethod]
    public void ReferenceSessionsAreDeterministic()
    {
        var options = new IncrementalSessionOptions
        {
            RoundingReduction = 4, Rounding = SessionRoundingMode.Gradient, RoundingStepIncrease = 1, RefreshNovelPrototypes = true, LearningRate = 0.2,
        };
        double[] Run()
        {
            using var learner = BaseLearner(53);
            var (x1, y1) = Shots(54, 5, 4, 5);
            learner.AddSession(x1, y1, options);
            var (x2, y2) = Shots(55, 5, 6, 7);
            learner.AddSession(x2, y2, options);
            return Values(learner.Prototypes.flatten()).Concat(learner.Network.parameters().SelectMany(p => Values(p.detach().flatten()))).ToArray();
        }
        CollectionAssert.AreEqual(Run(), Run(), "the same seed gives bit-identical prototypes and weights");
    }

    [TestMethod]
    public void BadReferenceOptionsNameTheOption()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new IncrementalSessionOptions { RoundingStepIncrease = 1 }.Validate()).Message,
            "RoundingStepIncrease needs RoundingReduction");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new IncrementalSessionOptions { RoundingReduction = 4, RoundingStepIncrease = -1 }.Validate()).Message,
            "RoundingStepIncrease");
        var noReduction = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new IncrementalSessionOptions { Rounding = SessionRoundingMode.Gradient }.Validate());
        Assert.AreEqual("Rounding", noReduction.ParamName);
        StringAssert.Contains(noReduction.Message, "needs RoundingReduction");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new IncrementalSessionOptions { Rounding = (SessionRoundingMode)7 }.Validate()).Message,
            "Rounding");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SessionRounding.Round(zeros(2), 0)).Message, "quantum");
        using var learner = BaseLearner(56);
        var (x, y) = Shots(57, 2, 4);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => IncrementalSession.Run(learner.Network, learner.FlatRegion, learner.Prototypes, x, y,
            new IncrementalSessionOptions { RefreshNovelPrototypes = true })).Message, "RefreshNovelPrototypes needs the base class count");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => IncrementalSession.Run(learner.Network, learner.FlatRegion, learner.Prototypes, x,
            tensor(new long[] { 5, 5 }), new IncrementalSessionOptions())).Message, "New class 4 has no example");
    }
}
