using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class IncrementalFewShotTests
{
    private static SmallImageResNet TinyResNet(int classes = 4) =>
        new(1, classes, new[] { 4, 8 }, new[] { 1, 1 }, "TinyResNet");

    [TestMethod]
    [DataRow(FlatRegionNoiseKind.DiscreteBeta)]
    [DataRow(FlatRegionNoiseKind.Uniform)]
    public void NoiseStaysWithinHalfTheBound(FlatRegionNoiseKind kind)
    {
        const double b = 0.01;
        using var generator = new Generator(3, CPU);
        var noise = new FlatRegionNoise(new FlatRegionOptions { Bound = b, Noise = kind }, generator);
        using var like = zeros(64, 32);
        var values = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            using var e = noise.Sample(like);
            CollectionAssert.AreEqual(like.shape, e.shape);
            Assert.IsTrue(e.abs().max().ToDouble() <= b / 2 + 1e-9, "every element within ±b/2");
            values.AddRange(e.data<float>().ToArray().Select(v => (double)v));
        }
        if (kind == FlatRegionNoiseKind.DiscreteBeta)
        {
            var grid = values.Select(v => Math.Round(v / (b / 4), 6)).Distinct().OrderBy(v => v).ToArray();
            CollectionAssert.AreEqual(new[] { -2.0, -1, 0, 1, 2 }, grid, "discrete Beta noise lies on the grid {−2…2}·b/4 and uses all of it");
        }
        else
        {
            Assert.IsTrue(values.Min() < -0.45 * b && values.Max() > 0.45 * b, "uniform noise covers the interval");
        }
    }

    [TestMethod]
    public void ObjectiveAndGradientEqualTheirDefinition()
    {
        // A float64 linear softmax model; range parameter = the weight matrix.
        manual_seed(5);
        using var model = nn.Linear(6, 3, dtype: ScalarType.Float64);
        var x = randn(10, 6, ScalarType.Float64);
        var y = randint(3, new long[] { 10 }).to_type(ScalarType.Int64);
        var options = new FlatRegionOptions { Bound = 0.2, NoiseSamples = 3, StdWeight = 2.0, RangeParameterNames = new[] { "weight" } };
        var weight = model.weight!.detach().clone();
        var bias = model.bias!.detach().clone();

        using var generator = new Generator(11, CPU);
        using var search = new FlatRegionSearch(model, options, generator);
        using var losses = search.ComputeGradient(() => nn.functional.cross_entropy(model.call(x), y));
        Assert.IsTrue(model.weight!.eq(weight).all().item<bool>() && model.bias!.eq(bias).all().item<bool>(), "θ is restored exactly");

        using var replay = new Generator(11, CPU);
        var noise = new FlatRegionNoise(options, replay);
        var w = weight.clone().requires_grad_(true);
        var bb = bias.clone().requires_grad_(true);
        var sampleLosses = Enumerable.Range(0, 3)
            .Select(_ => nn.functional.cross_entropy(x.matmul(w.add(noise.Sample(weight)).t()).add(bb), y)).ToArray();
        var stacked = stack(sampleLosses);
        var objective = stacked.mean().add(stacked.std().mul(2.0));
        objective.backward();

        var expectedLosses = stacked.detach().data<double>().ToArray();
        var actualLosses = losses.data<double>().ToArray();
        for (int j = 0; j < 3; j++) Assert.AreEqual(expectedLosses[j], actualLosses[j], 1e-12, $"loss of sample {j}");
        Assert.AreEqual(objective.ToDouble(), FlatRegionSearch.Objective(actualLosses, 2.0), 1e-12, "objective = mean + 2·std (unbiased)");
        Assert.IsTrue(model.weight!.grad!.allclose(w.grad!, rtol: 1e-9, atol: 1e-12), "∇_W of the objective, std term included");
        Assert.IsTrue(model.bias!.grad!.allclose(bb.grad!, rtol: 1e-9, atol: 1e-12), "∇_b (not perturbed, still through every sample)");
    }

    [TestMethod]
    public void RangeParametersAreTheLastConvolutionsWithoutShortcuts()
    {
        using var net = SmallImageResNet.ResNet20(3, 10);
        var four = RangeParameters.Select(net, 4).Select(p => p.Name).ToArray();
        CollectionAssert.AreEqual(new[] { "layer3.1.conv1.weight", "layer3.1.conv2.weight", "layer3.2.conv1.weight", "layer3.2.conv2.weight" }, four);
        var seven = RangeParameters.Select(net, 7).Select(p => p.Name).ToArray();
        Assert.AreEqual(7, seven.Length);
        Assert.IsFalse(seven.Any(n => n.Contains("downsample")), string.Join(", ", seven));
        Assert.AreEqual("layer2.2.conv2.weight", seven[0]);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => RangeParameters.Select(net, 4, new[] { "layer9.conv.weight" }));
        StringAssert.Contains(ex.Message, "layer9.conv.weight");
    }

    [TestMethod]
    public void PrototypesAreClassMeansAndLogitsAreNegativeSquaredDistances()
    {
        var embeddings = tensor(new float[] { 1, 0, 3, 0, 0, 2, 0, 4 }).view(4, 2);
        var labels = tensor(new long[] { 0, 0, 1, 1 });
        var prototypes = Prototypes.ClassMeans(embeddings, labels, 2);
        CollectionAssert.AreEqual(new float[] { 2, 0, 0, 3 }, prototypes.data<float>().ToArray());

        var query = tensor(new float[] { 1, 1 }).view(1, 2);
        var raw = Prototypes.Logits(query, prototypes, PrototypeNormalization.None, 0.5).data<float>().ToArray();
        CollectionAssert.AreEqual(new[] { -0.5f * (1 + 1), -0.5f * (1 + 4) }, raw);
        var normalized = Prototypes.Logits(query, prototypes, PrototypeNormalization.Prototypes, 1).data<float>().ToArray();
        Assert.AreEqual(-1f, normalized[0], 1e-6f, "‖(1,1) − (1,0)‖² with the prototype L2-normalised");
        Assert.AreEqual(-1f, normalized[1], 1e-6f, "‖(1,1) − (0,1)‖²");
        var cosine = Prototypes.Logits(query, prototypes, PrototypeNormalization.Cosine, 1).data<float>().ToArray();
        Assert.AreEqual(-(2 - Math.Sqrt(2)), cosine[0], 1e-6, "2 − 2·cos 45°");

        var ex = Assert.ThrowsExactly<ArgumentException>(() => Prototypes.ClassMeans(embeddings, labels, 3));
        StringAssert.Contains(ex.Message, "Class 2 has no examples");
    }

    [TestMethod]
    public void SessionTrainsOnlyTheRangeParametersInsideTheRegionAndKeepsOldPrototypes()
    {
        manual_seed(7);
        using var net = TinyResNet();
        // Some base training so BatchNorm statistics are not their defaults.
        var baseX = randn(48, 1, 12, 12);
        var baseY = arange(48).remainder(4).to_type(ScalarType.Int64);
        new ClassifierTrainer(new ClassifierTrainingOptions { Epochs = 2, BatchSize = 16, TuneGlibcMalloc = false, GradientStep = new FlatRegionOptions { RangeLayerCount = 2 } }, CPU)
            .Train(net, new Training.TensorDataset(baseX, baseY));
        net.eval();
        const double b = 0.01;
        using var region = new FlatRegionBounds(RangeParameters.Select(net, 2), b);
        var oldPrototypes = Prototypes.Compute(net, baseX, baseY, 4, 16, CPU);
        var oldCopy = oldPrototypes.clone();
        var rangeNames = region.Names.ToHashSet();
        var frozenBefore = net.named_parameters().Where(p => !rangeNames.Contains(p.name)).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var buffersBefore = net.named_buffers().ToDictionary(p => p.name, p => p.buffer.clone());

        // Two new classes (4 and 5), 5 shots each, plus 1 exemplar of old class 0; a large LR so the clamp binds.
        var shots = randn(11, 1, 12, 12).add(1);
        var shotLabels = tensor(new long[] { 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 0 });
        var lower = region.BaseWeights.Select(w => w.sub(b / 2)).ToArray();
        var upper = region.BaseWeights.Select(w => w.add(b / 2)).ToArray();
        int steps = 0;
        var result = IncrementalSession.Run(net, region, oldPrototypes, shots, shotLabels, new IncrementalSessionOptions
        {
            Epochs = 6,
            LearningRate = 0.5,
            AfterStep = (_, _) =>
            {
                steps++;
                var range = region.ParametersOf(net);
                for (int i = 0; i < range.Length; i++)
                    Assert.IsTrue(range[i].ge(lower[i]).all().item<bool>() && range[i].le(upper[i]).all().item<bool>(),
                        $"after step {steps}, {region.Names[i]} lies within θ_base ± b/2");
            },
        });
        Assert.AreEqual(6, steps);
        Assert.AreEqual(6, result.Losses.Count);
        Assert.AreEqual(b / 2, result.MaxDeviation, 1e-6, "the range parameters moved, up to the bound");
        CollectionAssert.AreEqual(new long[] { 2, net.fc_in() }, result.NewPrototypes.shape);
        foreach (var (name, parameter) in net.named_parameters().Where(p => !rangeNames.Contains(p.name)))
            Assert.IsTrue(parameter.eq(frozenBefore[name]).all().item<bool>(), $"non-range parameter {name} is bit-identical");
        foreach (var (name, buffer) in net.named_buffers())
            Assert.IsTrue(buffer.eq(buffersBefore[name]).all().item<bool>(), $"BatchNorm buffer {name} is bit-identical");
        Assert.IsTrue(oldPrototypes.eq(oldCopy).all().item<bool>(), "old prototypes are not modified");
        Assert.IsTrue(net.parameters().All(p => p.requires_grad), "requires_grad is restored");
    }

    [TestMethod]
    public void NaiveFineTuningMovesEveryParameterAndIgnoresTheRegion()
    {
        manual_seed(8);
        using var net = TinyResNet();
        net.eval();
        using var region = new FlatRegionBounds(RangeParameters.Select(net, 2), 0.01);
        var before = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var prototypes = Prototypes.Compute(net, randn(8, 1, 12, 12), arange(8).remainder(4).to_type(ScalarType.Int64), 4, 8, CPU);
        var result = IncrementalSession.Run(net, region, prototypes, randn(5, 1, 12, 12), full(5, 4L, ScalarType.Int64),
            new IncrementalSessionOptions { LearningRate = 0.5, TrainAllParameters = true, ClampToRegion = false });
        Assert.IsTrue(result.MaxDeviation > 0.005, "without the clamp the range parameters leave the region");
        Assert.IsFalse(net.named_parameters().First().parameter.eq(before[net.named_parameters().First().name]).all().item<bool>(), "the stem moved too");
    }

    private const double LearnerBound = 0.01;

    /// <summary>A learner over an untrained tiny network: 4 base classes of 12 random 12×12 images each (row i has class i mod 4).</summary>
    private static IncrementalLearner BaseLearner(int seed, ChannelStandardization? standardization = null, Func<Tensor, Tensor>? rawToInputs = null)
    {
        manual_seed(seed);
        var net = TinyResNet();
        var x = randn(48, 1, 12, 12).mul(2).add(3);
        var y = arange(48).remainder(4).to_type(ScalarType.Int64);
        return IncrementalLearner.FromBaseSession(net, () => TinyResNet(), rawToInputs is null ? x : rawToInputs(x), y,
            new FlatRegionOptions { RangeLayerCount = 2, Bound = LearnerBound }, standardization: standardization, batchSize: 16);
    }

    /// <summary><paramref name="shots"/> random images of each of <paramref name="classes"/>, class by class.</summary>
    private static (Tensor Inputs, Tensor Labels) Session(int seed, int shots, params long[] classes)
    {
        manual_seed(seed);
        return (randn(shots * classes.Length, 1, 12, 12).mul(2).add(3), tensor(classes.SelectMany(c => Enumerable.Repeat(c, shots)).ToArray()));
    }

    private static readonly IncrementalSessionOptions FastSession = new() { Epochs = 3, LearningRate = 0.5 };

    private static void AssertBitIdentical(Tensor expected, Tensor actual, string message)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, message + " (shape)");
        Assert.IsTrue(expected.eq(actual).all().item<bool>(), message);
    }

    [TestMethod]
    public void LearnerSessionsAddClassesKeepOldPrototypesAndStayInTheRegion()
    {
        using var learner = BaseLearner(21);
        Assert.AreEqual((4, 4, 0, 0L), (learner.ClassCount, learner.BaseClassCount, learner.SessionCount, learner.Exemplars.Count));
        CollectionAssert.AreEqual(new[] { "layer2.0.conv1.weight", "layer2.0.conv2.weight" }, learner.FlatRegion.Names.ToArray(), "the last 2 convolutions");
        var range = learner.FlatRegion.ParametersOf(learner.Network);
        for (int i = 0; i < range.Length; i++) AssertBitIdentical(range[i], learner.FlatRegion.BaseWeights[i], "θ_base is a copy of the base weights");
        var basePrototypes = learner.Prototypes.clone();

        // Session 1: classes 4 and 5 (5 shots each) plus 2 rows of the known class 1; keep 3 exemplars per new class.
        var (x, y) = Session(22, 5, 4, 5);
        var (old, oldLabels) = Session(23, 2, 1);
        var result = learner.AddSession(cat(new[] { x, old }, 0), cat(new[] { y, oldLabels }, 0), FastSession, exemplarsPerClass: 3);
        Assert.AreEqual((6, 1), (learner.ClassCount, learner.SessionCount));
        Assert.AreEqual(3, result.Losses.Count);
        Assert.IsTrue(result.MaxDeviation > 0 && result.MaxDeviation <= LearnerBound / 2 + 1e-7, $"moved inside the region: {result.MaxDeviation}");
        AssertBitIdentical(basePrototypes, learner.Prototypes.narrow(0, 0, 4), "the base prototypes are not changed");
        AssertBitIdentical(learner.Prototypes.narrow(0, 4, 2), result.NewPrototypes, "the result's new prototypes are the learner's last rows");
        CollectionAssert.AreEqual(new long[] { 4, 4, 4, 5, 5, 5 }, learner.Exemplars.Labels.data<long>().ToArray(), "3 rows of each new class, none of the known class");
        AssertBitIdentical(cat(new[] { x.narrow(0, 0, 3), x.narrow(0, 5, 3) }, 0), learner.Exemplars.Inputs, "the first rows of each new class");

        // Session 2: class 6 from 2 shots; the exemplars of session 1 are replayed, θ_base stays the base weights.
        var sessionOnePrototypes = learner.Prototypes.clone();
        var (x2, y2) = Session(24, 2, 6);
        learner.AddSession(x2, y2, FastSession, exemplarsPerClass: 3);
        Assert.AreEqual((7, 2, 8L), (learner.ClassCount, learner.SessionCount, learner.Exemplars.Count));
        AssertBitIdentical(sessionOnePrototypes, learner.Prototypes.narrow(0, 0, 6), "earlier prototypes are not changed");
        Assert.IsTrue(learner.FlatRegion.MaxDeviation(learner.Network) <= LearnerBound / 2 + 1e-7, "still within b/2 of the base weights after two sessions");
        using var logits = learner.Logits(x2);
        CollectionAssert.AreEqual(new long[] { 2, 7 }, logits.shape);
        using var probabilities = learner.PredictProbabilities(x2);
        Assert.IsTrue(probabilities.sum(1).sub(1).abs().max().ToDouble() < 1e-5, "probabilities sum to 1");
    }

    [TestMethod]
    public void LearnerKeepsExemplarsClassByClassInTheOrderOfTheirFirstRow()
    {
        using var learner = BaseLearner(25);
        manual_seed(26);
        var x = randn(7, 1, 12, 12);
        var y = tensor(new long[] { 5, 4, 2, 5, 4, 5, 4 });
        learner.AddSession(x, y, new IncrementalSessionOptions { Epochs = 0 }, exemplarsPerClass: 2);
        CollectionAssert.AreEqual(new long[] { 5, 5, 4, 4 }, learner.Exemplars.Labels.data<long>().ToArray());
        AssertBitIdentical(x.index_select(0, tensor(new long[] { 0, 3, 1, 4 })), learner.Exemplars.Inputs, "rows 0, 3 (class 5), then 1, 4 (class 4)");
        learner.AddSession(randn(1, 1, 12, 12), tensor(new long[] { 6 }), new IncrementalSessionOptions { Epochs = 0 }, exemplarsPerClass: 0);
        Assert.AreEqual(4L, learner.Exemplars.Count, "0 exemplars per class keeps none of the new class");
    }

    [TestMethod]
    public void LearnerCloneIsIndependent()
    {
        using var learner = BaseLearner(27);
        var (x, y) = Session(28, 3, 4);
        learner.AddSession(x, y, FastSession);
        var (probe, _) = Session(29, 4, 0);
        using var before = learner.Logits(probe);
        var weightsBefore = learner.Network.parameters().Select(p => p.detach().clone()).ToArray();

        IncrementalLearner clone;
        using (NewDisposeScope()) clone = learner.Clone();
        AssertBitIdentical(before, clone.Logits(probe), "a clone (made inside a dispose scope, used after it) scores like the original");
        Assert.AreEqual((learner.SessionCount, learner.Exemplars.Count), (clone.SessionCount, clone.Exemplars.Count));
        var (x2, y2) = Session(30, 3, 5);
        clone.AddSession(x2, y2, FastSession);
        Assert.AreEqual((6, 5, 2), (clone.ClassCount, learner.ClassCount, clone.SessionCount));
        Assert.IsTrue(clone.FlatRegion.MaxDeviation(clone.Network) > 0);
        clone.Dispose();

        AssertBitIdentical(before, learner.Logits(probe), "the original scores as before, after the clone's session and disposal");
        foreach (var (p, w) in learner.Network.parameters().Zip(weightsBefore)) AssertBitIdentical(w, p, "the original's weights are unchanged");
        Assert.AreEqual((1, 3L), (learner.SessionCount, learner.Exemplars.Count));
        Assert.IsTrue(learner.FlatRegion.MaxDeviation(learner.Network) <= LearnerBound / 2 + 1e-7, "the original's region is intact");
    }

    [TestMethod]
    public void LearnerSaveLoadRoundTripScoresAndContinuesIdentically()
    {
        using var learner = BaseLearner(31, new ChannelStandardization(new[] { 3f }, new[] { 2f }));
        var (x, y) = Session(32, 3, 4, 5);
        learner.AddSession(x, y, FastSession);
        using var stream = new System.IO.MemoryStream();
        learner.Save(new System.IO.BinaryWriter(stream));
        stream.Position = 0;
        using var loaded = IncrementalLearner.Load(new System.IO.BinaryReader(stream), () => TinyResNet());
        Assert.AreEqual(stream.Length, stream.Position, "Load reads exactly what Save wrote");

        Assert.AreEqual((learner.ClassCount, learner.BaseClassCount, learner.SessionCount, learner.Normalization, learner.DistanceScale),
            (loaded.ClassCount, loaded.BaseClassCount, loaded.SessionCount, loaded.Normalization, loaded.DistanceScale));
        CollectionAssert.AreEqual(learner.Standardization!.Std.ToArray(), loaded.Standardization!.Std.ToArray());
        AssertBitIdentical(learner.Exemplars.Inputs, loaded.Exemplars.Inputs, "exemplars");
        for (int i = 0; i < learner.FlatRegion.BaseWeights.Count; i++) AssertBitIdentical(learner.FlatRegion.BaseWeights[i], loaded.FlatRegion.BaseWeights[i], "θ_base");
        var (probe, _) = Session(33, 4, 0);
        AssertBitIdentical(learner.Logits(probe), loaded.Logits(probe), "the loaded learner scores identically");

        var (x2, y2) = Session(34, 2, 6);
        learner.AddSession(x2, y2, FastSession);
        loaded.AddSession(x2, y2, FastSession);
        AssertBitIdentical(learner.Logits(probe), loaded.Logits(probe), "a session after save/load equals one without");
    }

    [TestMethod]
    public void StandardizedLearnerTakesRawImagesAndKeepsThemRaw()
    {
        var standardization = new ChannelStandardization(new[] { 3f }, new[] { 2f });
        using var raw = BaseLearner(35, standardization);
        using var plain = BaseLearner(35, rawToInputs: standardization.Apply);
        AssertBitIdentical(plain.Prototypes, raw.Prototypes, "base prototypes of raw images = those of standardized images");
        var (x, y) = Session(36, 3, 4);
        raw.AddSession(x, y, FastSession);
        plain.AddSession(standardization.Apply(x), y, FastSession);
        AssertBitIdentical(x, raw.Exemplars.Inputs, "the raw learner keeps raw exemplars");
        var (x2, y2) = Session(37, 3, 5);
        raw.AddSession(x2, y2, FastSession);
        plain.AddSession(standardization.Apply(x2), y2, FastSession);
        var (probe, _) = Session(38, 4, 0);
        AssertBitIdentical(plain.Logits(standardization.Apply(probe)), raw.Logits(probe), "the same model, fed raw or standardized images");
    }

    [TestMethod]
    public void LearnerRejectsBadSessionsBeforeChangingAnything()
    {
        using var learner = BaseLearner(39);
        using var before = learner.Prototypes.clone();
        var images = randn(3, 1, 12, 12);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => learner.AddSession(images, tensor(new long[] { 0, 1, 3 }), FastSession)).Message,
            "no new class");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => learner.AddSession(images, tensor(new long[] { 4, 6, 6 }), FastSession)).Message,
            "class 5 has no example");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => learner.AddSession(images, tensor(new long[] { -1, 4, 4 }), FastSession)).Message,
            "≥ 0");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => learner.AddSession(images, tensor(new int[] { 4, 4, 4 }), FastSession)).Message,
            "int64");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => learner.AddSession(randn(3, 1, 10, 10), tensor(new long[] { 4, 4, 4 }), FastSession)).Message,
            "[1, 10, 10]");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => learner.AddSession(images, tensor(new long[] { 4, 4, 4 }),
            FastSession with { Normalization = PrototypeNormalization.Cosine })).Message, "Normalization = Prototypes");
        Assert.AreEqual((4, 0), (learner.ClassCount, learner.SessionCount));
        AssertBitIdentical(before, learner.Prototypes, "prototypes unchanged");
    }

    [TestMethod]
    public void BadOptionsGiveClearErrors()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FlatRegionOptions { NoiseSamples = 1 }.Validate()).Message, "NoiseSamples ≥ 2");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FlatRegionOptions { Bound = 0 }.Validate()).Message, "Bound");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FlatRegionOptions { ReductionFactor = 3 }.Validate()).Message, "ReductionFactor");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new IncrementalSessionOptions { Epochs = -1 }.Validate()).Message, "Epochs");
        var training = new ClassifierTrainingOptions { GradientStep = new FlatRegionOptions { Bound = 0 } };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(training.Validate).Message, "Bound");
        using var cnn = nn.Linear(3, 2);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => RangeParameters.Select(cnn, 4)).Message, "no (non-shortcut) Conv2d");
    }
}

internal static class TinyNetExtensions
{
    /// <summary>The embedding width of a network (the classifier's input features).</summary>
    public static long fc_in(this nn.Module<Tensor, Tensor> net) =>
        net.named_parameters().First(p => p.name == "fc.weight").parameter.shape[1];
}
