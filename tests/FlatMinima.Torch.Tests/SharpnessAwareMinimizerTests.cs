using System;
using System.Linq;
using FlatMinima.Torch.Optimization;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class SharpnessAwareMinimizerTests
{
    // ../shared/specs/sharpness.md §4.5: L(w) = 0.25 + ½(w−w*)ᵀA(w−w*).
    private static readonly double[,] A = { { 3, 1, 0 }, { 1, 2, 0.5 }, { 0, 0.5, 1 } };
    private static readonly double[] WStar = { 0.5, -1, 2 };

    private static Tensor QuadraticLoss(Tensor w)
    {
        var a = tensor(A, ScalarType.Float64);
        var d = w - tensor(WStar, ScalarType.Float64);
        return 0.25 + 0.5 * d.matmul(a.matmul(d));
    }

    private static double[] OneStep(SharpnessAwareOptions options)
    {
        var w = new Parameter(tensor(new[] { 1.5, -1.5, 2.25 }, ScalarType.Float64));
        using var sgd = optim.SGD(new[] { w }, 0.1);
        using var sam = new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, options);
        sam.Step(() => { var l = QuadraticLoss(w); l.backward(); return l; });
        return w.data<double>().ToArray();
    }

    [TestMethod]
    public void SamStepMatchesTheExactValues()
    {
        var w1 = OneStep(SharpnessAwareOptions.Sam(0.1));
        double[] expected = { 1.21953805366, -1.52348627573, 2.24975031192 };
        for (int i = 0; i < 3; i++) Assert.AreEqual(expected[i], w1[i], 1e-10, $"w1[{i}]");
    }

    [TestMethod]
    public void AsamStepMatchesTheExactValues()
    {
        var w1 = OneStep(SharpnessAwareOptions.Asam(rho: 0.1, eta: 0.01));
        double[] expected = { 1.20400246103, -1.52908927635, 2.24962297099 };
        for (int i = 0; i < 3; i++) Assert.AreEqual(expected[i], w1[i], 1e-10, $"w1[{i}]");
    }

    [TestMethod]
    public void AsamPerturbationMatchesTheExactValues()
    {
        var w = new Parameter(tensor(new[] { 1.5, -1.5, 2.25 }, ScalarType.Float64));
        using var sgd = optim.SGD(new[] { w }, 0.1);
        using var sam = new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.Asam(0.1, 0.01));
        QuadraticLoss(w).backward();
        sam.FirstStep();
        var e = (w.detach() - tensor(new[] { 1.5, -1.5, 2.25 }, ScalarType.Float64)).data<double>().ToArray();
        double[] expected = { 0.1508116032, 0.0075405802, 0 };
        for (int i = 0; i < 3; i++) Assert.AreEqual(expected[i], e[i], 1e-10, $"e[{i}]");
        sam.RestoreWeights();
        CollectionAssert.AreEqual(new[] { 1.5, -1.5, 2.25 }, w.data<double>().ToArray(), "weights restored exactly");
    }

    [TestMethod]
    public void AdaptiveScopeWeightsOnlyLeavesBiasesUnscaled()
    {
        // With T = |w|+η only for "weight", a parameter named "bias" is perturbed like SAM's ε (relative to the global norm).
        var weight = new Parameter(tensor(new[] { 2.0 }, ScalarType.Float64));
        var bias = new Parameter(tensor(new[] { 3.0 }, ScalarType.Float64));
        using var sgd = optim.SGD(new[] { weight, bias }, 0.1);
        using var sam = new SharpnessAwareMinimizer(new[] { ("weight", weight), ("bias", bias) }, sgd, SharpnessAwareOptions.Asam(0.5, 0.0));
        (weight.sum() + bias.sum()).backward(); // g = (1, 1)
        sam.FirstStep();
        // T = (2, 1): Tg = (2, 1), ‖Tg‖ = √5, ε = ρ·T²g/‖Tg‖ = 0.5·(4, 1)/√5
        Assert.AreEqual(2.0 + 0.5 * 4 / Math.Sqrt(5), weight.item<double>(), 1e-12);
        Assert.AreEqual(3.0 + 0.5 * 1 / Math.Sqrt(5), bias.item<double>(), 1e-12);
    }

    [TestMethod]
    [DataRow("weight_ih_l0", true)]
    [DataRow("rnn.weight_hh_l1", true)]
    [DataRow("conv.weight_g", true)]
    [DataRow("conv.weight_v", true)]
    [DataRow("layer1.0.bn1.weight", true)]
    [DataRow("bias_ih_l0", false)]
    [DataRow("fc.bias", false)]
    public void AdaptiveScopeWeightsOnlyScalesEveryNameContainingWeight(string name, bool adaptive)
    {
        // SamsungLabs/ASAM's asam.py scales a parameter when 'weight' in its name: LSTM/GRU and weight-norm parameters too.
        var p = new Parameter(tensor(new[] { 2.0 }, ScalarType.Float64));
        var other = new Parameter(tensor(new[] { 3.0 }, ScalarType.Float64));
        using var sgd = optim.SGD(new[] { p, other }, 0.1);
        using var sam = new SharpnessAwareMinimizer(new[] { (name, p), ("other.bias", other) }, sgd, SharpnessAwareOptions.Asam(0.5, 0.0));
        (p.sum() + other.sum()).backward(); // g = (1, 1)
        sam.FirstStep();
        // T = (2, 1) if adaptive, else (1, 1): ε = ρ·T²g/‖Tg‖
        double t = adaptive ? 2 : 1, norm = Math.Sqrt(t * t + 1);
        Assert.AreEqual(2.0 + 0.5 * t * t / norm, p.item<double>(), 1e-12, name);
        Assert.AreEqual(3.0 + 0.5 / norm, other.item<double>(), 1e-12, name);
    }

    [TestMethod]
    public void AdaptiveScopeCoversTheWeightsOfAnLstm()
    {
        using var lstm = nn.LSTM(3, 2);
        var names = lstm.named_parameters().Select(p => p.name).ToArray();
        var perturbed = names.Where(n => n.Contains("weight", StringComparison.Ordinal)).ToArray();
        CollectionAssert.IsSubsetOf(new[] { "weight_ih_l0", "weight_hh_l0" }, perturbed, string.Join(", ", names));
        // One ASAM ascent with η = 0 moves a parameter by ρ·|w|²g/‖|w|g‖: zero entries of a weight stay exactly put, biases (T = 1) do not.
        using (no_grad())
            foreach (var (n, p) in lstm.named_parameters())
                p.copy_(n.Contains("weight") ? zeros_like(p) : ones_like(p));
        using var sgd = optim.SGD(lstm.parameters(), 0.1);
        using var sam = new SharpnessAwareMinimizer(lstm, sgd, SharpnessAwareOptions.Asam(0.5, 0.0));
        var before = lstm.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var (output, _, _) = lstm.call(ones(4, 1, 3));
        output.sum().backward();
        sam.FirstStep();
        foreach (var (n, p) in lstm.named_parameters())
        {
            bool moved = !p.detach().eq(before[n]).all().item<bool>();
            Assert.AreEqual(!n.Contains("weight"), moved, $"{n}: a weight with T = |w| = 0 stays put; a bias moves");
        }
    }

    [TestMethod]
    public void ShardCountNeedsOneClosurePerShard()
    {
        var w = new Parameter(tensor(new[] { 1.5, -1.5, 2.25 }, ScalarType.Float64));
        using var sgd = optim.SGD(new[] { w }, 0.1);
        using var sam = new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.Sam(0.1) with { ShardCount = 2 });
        Func<Tensor> closure = () => { var l = QuadraticLoss(w); l.backward(); return l; };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => sam.ComputeGradient(closure)).Message, "ShardCount = 2");
        sam.ComputeGradient(new[] { closure, closure });
    }

    [TestMethod]
    public void SaGdWithOneAscentStepEqualsSam()
    {
        var sam = OneStep(SharpnessAwareOptions.Sam(0.1));
        var sagd = OneStep(SharpnessAwareOptions.SaGd(1, 0.1));
        CollectionAssert.AreEqual(sam, sagd);
    }

    [TestMethod]
    public void SaGdStaysInsideTheBallAndClimbsHigherThanOneStep()
    {
        var w0 = new[] { 1.5, -1.5, 2.25 };
        double Ascend(int k, out double radius)
        {
            var w = new Parameter(tensor(w0, ScalarType.Float64));
            using var sgd = optim.SGD(new[] { w }, 0.1);
            using var sam = new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.SaGd(k, 0.5));
            for (int a = 0; a < k; a++)
            {
                QuadraticLoss(w).backward();
                sam.FirstStep();
            }
            radius = (w.detach() - tensor(w0, ScalarType.Float64)).norm().item<double>();
            return QuadraticLoss(w.detach()).item<double>();
        }
        double one = Ascend(1, out double r1), five = Ascend(5, out double r5);
        Assert.AreEqual(0.5, r1, 1e-12);
        Assert.IsTrue(r5 <= 0.5 + 1e-12, $"radius {r5}");
        Assert.IsTrue(five >= one - 1e-12, $"5-step ascent reached {five}, 1-step {one}");
    }

    [TestMethod]
    public void ZeroGradientGivesNoPerturbation()
    {
        // §3 of sharpness.md: at the kink of ½max(0,w)² the normalized ascent is 0/0 → ε = 0, SAM does not move.
        var w = new Parameter(tensor(new[] { 0.0 }, ScalarType.Float64));
        using var sgd = optim.SGD(new[] { w }, 0.5);
        using var sam = new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.Sam(0.2));
        for (int t = 0; t < 9; t++)
            sam.Step(() => { var l = 0.5 * clamp_min(w, 0).square().sum(); l.backward(); return l; });
        Assert.AreEqual(0.0, w.item<double>());
    }

    [TestMethod]
    public void PerturbedPassLeavesBatchNormStatisticsAsTheCleanPassLeftThem()
    {
        static Sequential Model()
        {
            manual_seed(7);
            return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3));
        }
        manual_seed(3);
        var x = randn(6, 2, 6, 6);
        var y = tensor(new long[] { 0, 1, 2, 0, 1, 2 });

        var reference = Model();
        reference.train();
        reference.call(x); // one clean pass
        var bnRef = (BatchNorm2d)reference.children().ElementAt(1);

        var model = Model();
        model.train();
        using var sgd = optim.SGD(model.parameters(), 0.1);
        using var sam = new SharpnessAwareMinimizer(model, sgd, SharpnessAwareOptions.Sam(0.5));
        sam.ComputeGradient(() => { var l = nn.functional.cross_entropy(model.call(x), y); l.backward(); return l; });
        var bn = (BatchNorm2d)model.children().ElementAt(1);

        CollectionAssert.AreEqual(bnRef.running_mean!.data<float>().ToArray(), bn.running_mean!.data<float>().ToArray());
        CollectionAssert.AreEqual(bnRef.running_var!.data<float>().ToArray(), bn.running_var!.data<float>().ToArray());
        Assert.AreEqual(1L, bn.num_batches_tracked!.item<long>());
        Assert.AreEqual(0.1, bn.momentum!.Value, "momentum restored");
    }

    [TestMethod]
    public void MSharpnessAveragesTheShardGradients()
    {
        manual_seed(11);
        var model = nn.Linear(5, 3);
        var x = randn(8, 5);
        var y = tensor(new long[] { 0, 1, 2, 0, 1, 2, 0, 1 });
        using var sgd = optim.SGD(model.parameters(), 0.1);
        using var sam = new SharpnessAwareMinimizer(model, sgd, SharpnessAwareOptions.Sam(0.3));
        Func<Tensor> Closure(Tensor xs, Tensor ys) => () => { var l = nn.functional.cross_entropy(model.call(xs), ys); l.backward(); return l; };

        var shardGradients = new[] { (0, 4), (4, 4) }.Select(s =>
        {
            sam.ComputeGradient(Closure(x.narrow(0, s.Item1, s.Item2), y.narrow(0, s.Item1, s.Item2)));
            return model.parameters().Select(p => p.grad!.clone()).ToArray();
        }).ToArray();
        sam.ComputeGradient(new[] { Closure(x.narrow(0, 0, 4), y.narrow(0, 0, 4)), Closure(x.narrow(0, 4, 4), y.narrow(0, 4, 4)) });
        var combined = model.parameters().Select(p => p.grad!.clone()).ToArray();
        for (int i = 0; i < combined.Length; i++)
        {
            var mean = (shardGradients[0][i] + shardGradients[1][i]) / 2;
            Assert.IsTrue(allclose(mean, combined[i], rtol: 1e-6, atol: 1e-7), $"parameter {i}: average, not sum");
        }
        // The average differs from the plain full-batch SAM gradient (the perturbation is per shard).
        sam.ComputeGradient(Closure(x, y));
        Assert.IsFalse(allclose(combined[0], model.parameters().First().grad!, rtol: 1e-6, atol: 1e-7));
    }

    [TestMethod]
    public void InvalidOptionsAreRejectedAtConstruction()
    {
        var w = new Parameter(zeros(2));
        using var sgd = optim.SGD(new[] { w }, 0.1);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.Sam(-0.1)));
        StringAssert.Contains(e.Message, "Rho");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.SaGd(0)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.Asam() with { Eta = -1 }));
    }

    [TestMethod]
    public void StateSavesAndLoads()
    {
        var w = new Parameter(tensor(new[] { 1.5, -1.5, 2.25 }, ScalarType.Float64));
        using var sgd = optim.SGD(new[] { w }, 0.1, momentum: 0.9);
        using var sam = new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.Sam(0.1));
        sam.Step(() => { var l = QuadraticLoss(w); l.backward(); return l; });
        using var stream = new System.IO.MemoryStream();
        sam.SaveState(new System.IO.BinaryWriter(stream));
        stream.Position = 0;
        var w2 = new Parameter(w.detach().clone());
        using var sgd2 = optim.SGD(new[] { w2 }, 0.1, momentum: 0.9);
        using var sam2 = new SharpnessAwareMinimizer(new[] { ("weight", w2) }, sgd2, SharpnessAwareOptions.Sam(0.1));
        sam2.LoadState(new System.IO.BinaryReader(stream));
        sam.Step(() => { var l = QuadraticLoss(w); l.backward(); return l; });
        sam2.Step(() => { var l = QuadraticLoss(w2); l.backward(); return l; });
        CollectionAssert.AreEqual(w.data<double>().ToArray(), w2.data<double>().ToArray(), "momentum buffer carried over");
        stream.Position = 0;
        using var sam3 = new SharpnessAwareMinimizer(new[] { ("weight", w2) }, sgd2, SharpnessAwareOptions.Sam(0.2));
        Assert.ThrowsExactly<System.IO.InvalidDataException>(() => sam3.LoadState(new System.IO.BinaryReader(stream)));
    }
}
