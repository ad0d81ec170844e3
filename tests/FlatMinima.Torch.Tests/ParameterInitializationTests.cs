using System;
using System.Linq;
using FlatMinima.Torch.Models;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class ParameterInitializationTests
{
    [TestMethod]
    public void ConvolutionAndLinearParametersAreUniformWithinOneOverSqrtFanIn()
    {
        using var model = SmallImageResNet.ResNet20(3, 10);
        using var generator = new Generator(4, CPU);
        Assert.AreEqual(0, ParameterInitialization.Reset(model, generator).Count, "every ResNet-20 parameter has a scheme");
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);

        // conv1 [16, 3, 3, 3]: fan-in 27; fc [10, 64] and its bias: fan-in 64 (kaiming_uniform_(a = √5) = U(±1/√fan_in)).
        AssertUniform(parameters["conv1.weight"], 1 / Math.Sqrt(27));
        AssertUniform(parameters["layer3.2.conv2.weight"], 1 / Math.Sqrt(64 * 9));
        AssertUniform(parameters["layer2.0.downsample.0.weight"], 1 / Math.Sqrt(16));
        AssertUniform(parameters["fc.weight"], 1 / Math.Sqrt(64));
        AssertUniform(parameters["fc.bias"], 1 / Math.Sqrt(64), checkSpread: false);
        foreach (var (name, p) in parameters.Where(p => p.Key.Contains("bn")))
            Assert.IsTrue(p.eq(name.EndsWith("weight") ? 1 : 0).all().ToBoolean(), $"{name}: BatchNorm weight 1, bias 0");
    }

    [TestMethod]
    public void NormalizationLayersAndTransposedConvolutionsAreCovered()
    {
        using var model = nn.Sequential(
            ("conv", nn.Conv2d(2, 4, 3)), ("group", nn.GroupNorm(2, 4)), ("layer", nn.LayerNorm(4)),
            ("up", nn.ConvTranspose2d(4, 6, 3)), ("bn", nn.BatchNorm2d(6)));
        var bn = (BatchNorm2d)model.named_modules().Single(m => m.name == "bn").module;
        using (no_grad()) bn.running_mean!.fill_(5);
        Assert.AreEqual(0, ParameterInitialization.Reset(model, 1).Count);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var norm in new[] { "group", "layer", "bn" })
        {
            Assert.IsTrue(parameters[$"{norm}.weight"].eq(1).all().ToBoolean(), $"{norm}.weight = 1 (TorchSharp leaves GroupNorm's uninitialized)");
            Assert.IsTrue(parameters[$"{norm}.bias"].eq(0).all().ToBoolean(), $"{norm}.bias = 0");
        }
        Assert.IsTrue(bn.running_mean!.eq(0).all().ToBoolean(), "BatchNorm running statistics reset");
        // ConvTranspose2d(4, 6, 3) weight [4, 6, 3, 3]: PyTorch's fan-in is size(1) × 3 × 3 = 54.
        AssertUniform(parameters["up.weight"], 1 / Math.Sqrt(54), checkSpread: false);
        AssertUniform(parameters["up.bias"], 1 / Math.Sqrt(54), checkSpread: false);
    }

    [TestMethod]
    public void SameGeneratorStateGivesBitIdenticalWeightsWhateverTheGlobalGeneratorDoes()
    {
        using var a = new SmallCnn(1, 10);
        using var b = new SmallCnn(1, 10);
        using var c = new SmallCnn(1, 10);
        manual_seed(1);
        using var before = get_rng_state();
        ParameterInitialization.Reset(a, 7);
        using var after = get_rng_state();
        Assert.IsTrue(Same(before, after), "Reset draws nothing from the global generator");

        manual_seed(99);
        rand(1000).Dispose();
        ParameterInitialization.Reset(b, 7);
        ParameterInitialization.Reset(c, 8);
        foreach (var ((name, pa), (_, pb), (_, pc)) in a.named_parameters().Zip(b.named_parameters(), c.named_parameters()))
        {
            Assert.IsTrue(Same(pa, pb), $"{name}: same seed, bit-identical");
            if (name.EndsWith("weight")) Assert.IsFalse(Same(pa, pc), $"{name}: another seed, other weights");
        }
    }

    [TestMethod]
    public void ParametersOfUnknownLayerTypesAreReportedAndKept()
    {
        using var model = nn.Sequential(("fc", nn.Linear(3, 2)), ("scale", new Scale()));
        using var kept = model.named_parameters().Single(p => p.name == "scale.gain").parameter.detach().clone();
        var uncovered = ParameterInitialization.Reset(model, 3);
        CollectionAssert.AreEqual(new[] { "scale.gain" }, uncovered.ToArray());
        Assert.IsTrue(Same(kept, model.named_parameters().Single(p => p.name == "scale.gain").parameter));
    }

    [TestMethod]
    public void SeededGlobalGeneratorSeedsTheCallAndRestoresTheGlobalState()
    {
        manual_seed(12);
        using var before = get_rng_state();
        using var drawn = SeededGlobalGenerator.Run(5, () => rand(8));
        using var after = get_rng_state();
        Assert.IsTrue(Same(before, after), "the global generator's state is restored");
        manual_seed(5);
        using var expected = rand(8);
        Assert.IsTrue(Same(expected, drawn), "the call ran with the global generator seeded");
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().ToBoolean();

    // All values within ±bound and (for large tensors) spread over most of it with a mean near 0.
    private static void AssertUniform(Tensor values, double bound, bool checkSpread = true)
    {
        double max = values.abs().max().ToDouble();
        Assert.IsTrue(max <= bound, $"max |value| {max} ≤ {bound}");
        if (!checkSpread) return;
        Assert.IsTrue(max > 0.95 * bound, $"max |value| {max} close to {bound}");
        double std = values.std().ToDouble(), mean = values.mean().ToDouble();
        Assert.AreEqual(bound / Math.Sqrt(3), std, 0.1 * bound, "standard deviation of U(±b) is b/√3");
        Assert.AreEqual(0, mean, 4 * std / Math.Sqrt(values.numel()), "mean near 0");
    }

    private sealed class Scale : nn.Module<Tensor, Tensor>
    {
        private readonly Parameter gain = nn.Parameter(ones(1));

        public Scale() : base(nameof(Scale)) => RegisterComponents();

        public override Tensor forward(Tensor input) => input.mul(gain);
    }
}
