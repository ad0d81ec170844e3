using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using FlatMinima.Torch.MixedPrecision;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

/// <summary>bfloat16 mixed precision: the autocast hooks, the hardware decision and the training loop's option.</summary>
[TestClass]
public sealed class MixedPrecisionTests
{
    // bfloat16 keeps 8 significant bits (relative rounding 2⁻⁹ ≈ 0.2 %); through up to 20 layers the logits of a random
    // network stay within a few percent of float32's. 5 % of the logits' norm is the tolerance stated in the docs.
    private const double ForwardTolerance = 0.05;

    private static nn.Module<Tensor, Tensor> Network(string name) => name switch
    {
        "SmallCnn" => new SmallCnn(1, 10),
        "ResNet20" => SmallImageResNet.ResNet20(3, 10),
        "ResNet18" => SmallImageResNet.ResNet18(3, 10),
        "ImageNetResNet18" => ImageNetResNet.ResNet18(10),
        "PretrainedImageNetwork" => new PretrainedImageNetwork(
            new ImagePreprocessingModule(tensor(new[] { 0.485f, 0.456f, 0.406f }).reshape(3, 1, 1), 1, false, tensor(new[] { 0.229f, 0.224f, 0.225f })),
            ImageNetResNet.ResNet18(10)),
        _ => throw new ArgumentException(name),
    };

    private static long[] InputShape(string name) => name switch
    {
        "SmallCnn" => new long[] { 4, 1, 28, 28 },
        "ResNet20" or "ResNet18" => new long[] { 4, 3, 32, 32 },
        _ => new long[] { 2, 3, 64, 64 },
    };

    private static double RelativeDifference(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.sub(b).norm().item<float>() / b.norm().item<float>();
    }

    [TestMethod]
    [DataRow("SmallCnn")]
    [DataRow("ResNet20")]
    [DataRow("ResNet18")]
    [DataRow("ImageNetResNet18")]
    [DataRow("PretrainedImageNetwork")]
    public void BFloat16ForwardOfEachBuiltInNetworkAgreesWithFloat32(string name)
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var network = Network(name);
        network.eval();
        var input = rand(InputShape(name));
        using var noGrad = no_grad();
        var reference = network.call(input);
        // Convolution and linear weights are the 4-d and 2-d parameters; every one of their layers must be hooked.
        int layers = network.named_parameters().Count(p => p.name.EndsWith("weight") && p.parameter.Dimensions is 4 or 2);
        using (var autocast = BFloat16Autocast.Attach(network))
        {
            Assert.AreEqual(layers, autocast.LayerCount, "every convolution and linear layer is hooked");
            using (autocast.Enable())
            {
                var mixed = network.call(input);
                Assert.AreEqual(ScalarType.Float32, mixed.dtype, "the layers hand float32 on");
                double difference = RelativeDifference(mixed, reference);
                Assert.IsTrue(difference > 0, $"{name}: the bfloat16 pass must differ from float32 (it did not run in bfloat16)");
                Assert.IsTrue(difference < ForwardTolerance, $"{name}: ‖bf16 − fp32‖ / ‖fp32‖ = {difference:G3}");
            }
            Assert.IsTrue(network.call(input).equal(reference).all().item<bool>(), "outside the scope the network computes in float32 again");
        }
        Assert.IsTrue(network.parameters().All(p => p.dtype == ScalarType.Float32), "the parameters stay float32");
        Assert.IsTrue(network.call(input).equal(reference).all().item<bool>(), "after Dispose the hooks are gone");
    }

    // Eval mode (BatchNorm an affine map): the bf16 gradient points where float32's does. Train mode: BatchNorm's backward
    // over batch statistics cancels most of the incoming gradient at initialization and amplifies rounding — rounding only
    // the input to bfloat16, all else float32, already brings the cosine down to about 0.98 for this network — so the
    // bound is looser there (0.95 measured with every layer in bfloat16).
    [TestMethod]
    [DataRow(false, 0.99)]
    [DataRow(true, 0.9)]
    public void GradientsReachTheFloat32ParametersAndMatchFloat32sDirection(bool trainMode, double minimumCosine)
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var network = SmallImageResNet.ResNet20(3, 10);
        if (!trainMode) network.eval();
        var input = randn(8, 3, 32, 32);
        var labels = arange(8, ScalarType.Int64).remainder(10);
        var parameters = network.parameters().ToArray();
        nn.functional.cross_entropy(network.call(input), labels).backward();
        var reference = cat(parameters.Select(p => p.grad!.flatten()).ToArray());
        foreach (var p in parameters) p.grad = null;
        using var autocast = BFloat16Autocast.Attach(network);
        using (autocast.Enable()) nn.functional.cross_entropy(network.call(input), labels).backward();
        for (int i = 0; i < parameters.Length; i++)
        {
            var grad = parameters[i].grad;
            Assert.IsNotNull(grad, $"parameter {i} got a gradient");
            Assert.AreEqual(ScalarType.Float32, grad!.dtype, $"parameter {i}'s gradient is float32");
        }
        var mixed = cat(parameters.Select(p => p.grad!.flatten()).ToArray());
        double cosine = mixed.dot(reference).item<float>() / (mixed.norm().item<float>() * reference.norm().item<float>());
        Assert.IsTrue(cosine > minimumCosine, $"cosine of bf16 and fp32 gradients {cosine:F4}");
        Assert.IsTrue(RelativeDifference(mixed, reference) > 0, "the backward pass ran in bfloat16");
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ParametersOptimizerStateAndBatchNormStatisticsStayFloat32(bool sam)
    {
        using var scope = NewDisposeScope();
        using var model = TinyTraining.Net();
        var train = TinyTraining.Blobs(32, seed: 2);
        var before = model.state_dict().ToDictionary(p => p.Key, p => (p.Value.dtype, string.Join(",", p.Value.shape)));
        var runningMean = ((BatchNorm2d)model.named_modules().Single(m => m.name == "bn").module).running_mean!.clone();
        var options = new ClassifierTrainingOptions
        {
            Epochs = 1, BatchSize = 8, Precision = ComputePrecision.BFloat16, LearningRate = 0.05,
            GradientStep = sam ? SharpnessAwareOptions.Sam(0.05) : null,
        };
        var reports = new ClassifierTrainer(options, CPU).Train(model, train);
        Assert.AreEqual(ComputePrecision.BFloat16, reports[0].Precision);
        Assert.AreEqual(PrecisionChoice.For(ComputePrecision.BFloat16, CPU).Warning, reports[0].PrecisionWarning, "the emulation warning, on this machine's hardware");
        StringAssert.Contains(reports[0].ToString(), ", bfloat16");
        var after = model.state_dict().ToDictionary(p => p.Key, p => (p.Value.dtype, string.Join(",", p.Value.shape)));
        CollectionAssert.AreEquivalent(before.ToList(), after.ToList(), "the state dictionary keeps its keys, dtypes and shapes");
        Assert.IsTrue(model.state_dict().Values.Where(t => t.is_floating_point()).All(t => t.dtype == ScalarType.Float32));
        var bn = (BatchNorm2d)model.named_modules().Single(m => m.name == "bn").module;
        Assert.AreEqual(ScalarType.Float32, bn.running_mean!.dtype);
        Assert.IsFalse(bn.running_mean.equal(runningMean).all().item<bool>(), "BatchNorm's running statistics were updated");

        // The optimizer's state, after one more step driven by hand through the same hooks.
        var parameters = model.parameters().ToArray();
        using var optimizer = optim.SGD(parameters, 0.05, 0.9);
        using var adam = optim.AdamW(parameters, 1e-3);
        using var autocast = BFloat16Autocast.Attach(model);
        foreach (var opt in new optim.Optimizer[] { optimizer, adam })
        {
            opt.zero_grad();
            using (autocast.Enable()) nn.functional.cross_entropy(model.call(train.Inputs), train.Labels).backward();
            opt.step();
        }
        var momentum = optimizer.state_dict().State.Cast<SGD.State>().Select(s => s.momentum_buffer).ToArray();
        Assert.IsTrue(momentum.Length > 0 && momentum.All(m => m is not null && m.dtype == ScalarType.Float32), "SGD momentum is float32");
        var moments = adam.state_dict().State.Cast<AdamW.State>().SelectMany(s => new[] { s.exp_avg, s.exp_avg_sq }).ToArray();
        Assert.IsTrue(moments.All(m => m.dtype == ScalarType.Float32), "AdamW's moments are float32");
        Assert.IsTrue(parameters.All(p => p.dtype == ScalarType.Float32 && p.grad!.dtype == ScalarType.Float32));
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void AFewBFloat16StepsReduceTheLoss(bool sam)
    {
        using var scope = NewDisposeScope();
        using var model = TinyTraining.Net();
        var train = TinyTraining.Blobs(64, seed: 4);
        var loss = (Func<double>)(() =>
        {
            using var s = NewDisposeScope();
            using var noGrad = no_grad();
            model.eval();
            return nn.functional.cross_entropy(model.call(train.Inputs), train.Labels).item<float>();
        });
        double start = loss();
        var options = new ClassifierTrainingOptions
        {
            Epochs = 3, BatchSize = 16, Precision = ComputePrecision.BFloat16, Schedule = LearningRateSchedule.Constant(),
            GradientStep = sam ? SharpnessAwareOptions.Sam(0.05) : null,
        };
        new ClassifierTrainer(options, CPU).Train(model, train);
        double end = loss();
        Assert.IsTrue(end < 0.8 * start, $"loss {start:F4} → {end:F4}");
    }

    [TestMethod]
    public void Float32DefaultIsBitIdenticalToThePlainStep()
    {
        using var scope = NewDisposeScope();
        var train = TinyTraining.Blobs(32, seed: 6);
        var options = new ClassifierTrainingOptions { Epochs = 2, BatchSize = 8, Schedule = LearningRateSchedule.Constant(), LearningRate = 0.1 };
        Assert.AreEqual(ComputePrecision.Float32, options.Precision, "the default");
        using var trained = TinyTraining.Net();
        var reports = new ClassifierTrainer(options, CPU).Train(trained, train);
        Assert.IsTrue(reports.All(r => r.Precision == ComputePrecision.Float32 && !r.ToString().Contains("bfloat16")));

        // The loop written out: the same batches, forward, cross-entropy, backward, SGD step.
        using var reference = TinyTraining.Net();
        var parameters = reference.parameters().ToArray();
        using var optimizer = optim.SGD(parameters, options.LearningRate, options.Momentum, 0, options.WeightDecay, false);
        using var generator = new Generator((ulong)options.Seed, CPU);
        using var sampler = new BatchSampler(train, options.BatchSize, generator);
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            reference.train();
            foreach (var index in sampler.Epoch())
            {
                using var step = NewDisposeScope();
                optimizer.zero_grad();
                nn.functional.cross_entropy(reference.call(train.Inputs.index_select(0, index)), train.Labels.index_select(0, index)).backward();
                optimizer.step();
            }
        }
        var expected = reference.state_dict();
        foreach (var (key, value) in trained.state_dict())
            Assert.IsTrue(value.equal(expected[key]).all().item<bool>(), $"{key} is bit-identical");
    }

    [TestMethod]
    public void ACheckpointResumesOnlyWithTheSamePrecision()
    {
        using var scope = NewDisposeScope();
        var train = TinyTraining.Blobs(16, seed: 8);
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-precision-{Guid.NewGuid():N}.ckpt");
        try
        {
            using var cancel = new System.Threading.CancellationTokenSource();
            var options = new ClassifierTrainingOptions { Epochs = 2, BatchSize = 8, CheckpointPath = path, Precision = ComputePrecision.BFloat16 };
            using (var model = TinyTraining.Net())
                Assert.ThrowsExactly<OperationCanceledException>(() => new ClassifierTrainer(
                    options with { CancellationToken = cancel.Token, Progress = _ => cancel.Cancel() }, CPU).Train(model, train));
            Assert.IsTrue(File.Exists(path));
            using var other = TinyTraining.Net();
            var error = Assert.ThrowsExactly<InvalidDataException>(() =>
                new ClassifierTrainer(options with { Precision = ComputePrecision.Float32 }, CPU).Train(other, train, resumeFrom: path));
            StringAssert.Contains(error.Message, "Precision: checkpoint BFloat16, this run Float32");
            using var same = TinyTraining.Net();
            var resumed = new ClassifierTrainer(options, CPU).Train(same, train, resumeFrom: path);
            Assert.AreEqual(2, resumed.Single().Epoch);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void AForwardPassThatThrowsLeavesTheFloat32ParametersInPlace()
    {
        using var scope = NewDisposeScope();
        using var network = TinyTraining.Net();
        var fc = (Linear)network.named_modules().Single(m => m.name == "fc").module;
        var (weight, bias) = (fc.weight, fc.bias);
        var input = randn(2, 1, 4, 4);
        var reference = network.call(input).detach();
        using var autocast = BFloat16Autocast.Attach(network);
        using (autocast.Enable())
        {
            // The linear layer gets the wrong width: conv's hooks ran (and restored), Linear's pre-hook swapped its weight, its forward threw.
            Assert.ThrowsExactly<ExternalException>(() => network.call(randn(2, 1, 5, 5)));
            Assert.ThrowsExactly<InvalidOperationException>(() => autocast.Enable(), "scopes do not nest");
        }
        Assert.AreSame(weight, fc.weight, "the layer's own float32 weight is back");
        Assert.AreSame(bias, fc.bias, "and its bias");
        Assert.IsTrue(network.parameters().All(p => p.dtype == ScalarType.Float32), "every field holds its float32 parameter again");
        Assert.IsTrue(network.call(input).equal(reference).all().item<bool>(), "the network computes in float32 as before");
        using (autocast.Enable()) Assert.AreEqual(ScalarType.Float32, network.call(input).dtype, "and bfloat16 works again in a new scope");
    }

    [TestMethod]
    public void ACheckpointFingerprintWithoutPrecisionResumesOnlyAFloat32Run()
    {
        using var scope = NewDisposeScope();
        using var model = TinyTraining.Net();
        var train = TinyTraining.Blobs(8, seed: 9);
        RunFingerprint Of(ComputePrecision precision) =>
            RunFingerprint.Of(new ClassifierTrainingOptions { Precision = precision, GradientStep = SharpnessAwareOptions.Sam() }, 1, model, train, null);
        // The fingerprint of a SAM run's checkpoint written before Precision, AccumulationSteps and SharpnessAwareOptions.Efficiency
        // existed: the same entries without the two settings, and the gradient step described without the new property.
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            var entries = Of(ComputePrecision.Float32).Entries.Where(e => e.Key is not ("Precision" or "AccumulationSteps"))
                .Select(e => e.Key == "GradientStep" ? new KeyValuePair<string, string>(e.Key, e.Value.Replace(", Efficiency = null", "", StringComparison.Ordinal)) : e)
                .ToArray();
            Assert.IsTrue(entries.Single(e => e.Key == "GradientStep").Value.StartsWith("SharpnessAwareOptions { ", StringComparison.Ordinal));
            Assert.IsFalse(entries.Single(e => e.Key == "GradientStep").Value.Contains("Efficiency", StringComparison.Ordinal));
            writer.Write(entries.Length);
            foreach (var (name, value) in entries) { writer.Write(name); writer.Write(value); }
        }
        stream.Position = 0;
        using var reader = new BinaryReader(stream);
        var old = RunFingerprint.Read(reader);
        Assert.AreEqual(0, Of(ComputePrecision.Float32).DifferencesFrom(old).Count, "float32 runs resume checkpoints written before the setting existed");
        CollectionAssert.AreEqual(new[] { "Precision: checkpoint (absent), this run BFloat16" }, Of(ComputePrecision.BFloat16).DifferencesFrom(old).ToArray());
        var accumulating = RunFingerprint.Of(new ClassifierTrainingOptions { AccumulationSteps = 2, GradientStep = SharpnessAwareOptions.LookSam() }, 1, model, train, null);
        var differences = accumulating.DifferencesFrom(old);
        Assert.AreEqual(2, differences.Count, string.Join("\n", differences));
        StringAssert.StartsWith(differences[0], "GradientStep: checkpoint SharpnessAwareOptions");
        Assert.AreEqual("AccumulationSteps: checkpoint (absent), this run 2", differences[1]);
    }

    [TestMethod]
    public void InvalidPrecisionIsNamed()
    {
        var error = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { Precision = (ComputePrecision)7 }.Validate());
        Assert.AreEqual("Precision", error.ParamName);
        StringAssert.Contains(error.Message, "Float32, BFloat16, Auto");
    }

    private const string AmdCpuInfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n" +
        "flags\t\t: fpu vme avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n";
    private const string SapphireRapidsCpuInfo = "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: avx512f amx_bf16 amx_tile amx_int8\n";
    private const string OldCpuInfo = "model name\t: Intel(R) Xeon(R) CPU E5-2686 v4\nflags\t\t: fpu avx2 avx512f avx512_bf16x\n";

    [TestMethod]
    public void AutoChoosesBFloat16OnlyWithNativeCpuFlags()
    {
        CollectionAssert.AreEqual(new[] { "avx512_bf16" }, BFloat16Hardware.NativeFlagsIn(AmdCpuInfo).ToArray());
        CollectionAssert.AreEqual(new[] { "amx_bf16" }, BFloat16Hardware.NativeFlagsIn(SapphireRapidsCpuInfo).ToArray());
        Assert.AreEqual(0, BFloat16Hardware.NativeFlagsIn(OldCpuInfo).Count, "flags are whole words");
        Assert.AreEqual(0, BFloat16Hardware.NativeFlagsIn("processor : 0\nFeatures : fp asimd bf16\n").Count, "no x86 flags line: unknown, not native");
        Assert.AreEqual(0, BFloat16Hardware.NativeFlagsIn(null).Count);
        Assert.AreEqual("AMD EPYC 9R14 96-Core Processor", BFloat16Hardware.CpuModel(AmdCpuInfo));

        foreach (var (cpuInfo, native) in new[] { (AmdCpuInfo, true), (SapphireRapidsCpuInfo, true), (OldCpuInfo, false) })
        {
            bool found = BFloat16Hardware.NativeFlagsIn(cpuInfo).Count > 0;
            Assert.AreEqual(native, found);
            var auto = PrecisionChoice.Decide(ComputePrecision.Auto, found, "test");
            Assert.AreEqual(native ? ComputePrecision.BFloat16 : ComputePrecision.Float32, auto.Used);
            Assert.IsNull(auto.Warning, "Auto never warns");
            Assert.AreEqual(ComputePrecision.Float32, PrecisionChoice.Decide(ComputePrecision.Float32, found, "test").Used, "Float32 is kept");
            var forced = PrecisionChoice.Decide(ComputePrecision.BFloat16, found, "test");
            Assert.AreEqual(ComputePrecision.BFloat16, forced.Used, "BFloat16 is kept, emulated if need be");
            Assert.AreEqual(native, forced.Warning is null, "emulated bfloat16 warns");
            var report = new EpochReport(1, 1, 0.5, 0.5, null, null, 0.1, TimeSpan.FromSeconds(1)) { Precision = forced.Used, PrecisionWarning = forced.Warning };
            Assert.AreEqual(native, !report.ToString().Contains("emulated"), "the report says when bfloat16 was emulated");
        }
        Assert.IsTrue(BFloat16Hardware.IsNativeCudaCapability(8) && BFloat16Hardware.IsNativeCudaCapability(9));
        Assert.IsFalse(BFloat16Hardware.IsNativeCudaCapability(7), "Volta/Turing: float32");
    }

    [TestMethod]
    public void ThisMachinesProbeMatchesItsCpuInfo()
    {
        var (native, description) = BFloat16Hardware.Probe(CPU);
        Assert.AreEqual(BFloat16Hardware.NativeFlagsIn(BFloat16Hardware.ReadCpuInfo()).Count > 0, native, description);
        Assert.AreEqual(native ? ComputePrecision.BFloat16 : ComputePrecision.Float32, PrecisionChoice.For(ComputePrecision.Auto, CPU).Used);
    }
}
