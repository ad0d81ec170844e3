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
