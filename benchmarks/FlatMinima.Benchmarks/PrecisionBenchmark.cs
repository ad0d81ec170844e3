using System;
using System.Diagnostics;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.MixedPrecision;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Step time in float32 vs bfloat16 mixed precision (<see cref="BFloat16Autocast"/>, float32 master weights), SGD and SAM,
/// interleaved per round so every variant sees the same machine state; plus an SGD step of the whole network cast to
/// bfloat16 (BatchNorm and weights too, no master weights) as the reference for what the casts cost.
/// </summary>
internal static class PrecisionBenchmark
{
    /// <summary>Every model the mode can run.</summary>
    public static readonly string[] AllModels = { "smallcnn", "resnet20", "resnet18-112", "resnet18-224" };

    public static void Run(BenchmarkOptions options)
    {
        PrintHeader($"## Mixed precision: float32 vs bfloat16 step time (median ms over {options.PrecisionRounds} interleaved rounds after {options.PrecisionWarmup} warm-up rounds)");
        Console.WriteLine("| model | batch | SGD fp32 | SGD bf16 | SGD fp32/bf16 | SAM fp32 | SAM bf16 | SAM fp32/bf16 | SGD all-bf16 (reference) | fp32/all-bf16 |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
        int resnet18Batch = options.ResNet18Batch;
        foreach (var name in options.PrecisionModels)
        {
            switch (name)
            {
                case "smallcnn": Measure("SmallCnn 1×28×28", () => new SmallCnn(1, 10), new long[] { 1, 28, 28 }, 128, options); break;
                case "resnet20": Measure("ResNet-20 3×32×32", () => SmallImageResNet.ResNet20(3, 10), new long[] { 3, 32, 32 }, 128, options); break;
                case "resnet18-112": Measure("ResNet-18 3×112×112", () => ImageNetResNet.ResNet18(10), new long[] { 3, 112, 112 }, resnet18Batch, options); break;
                case "resnet18-224": Measure("ResNet-18 3×224×224", () => ImageNetResNet.ResNet18(10), new long[] { 3, 224, 224 }, resnet18Batch, options); break;
                default: throw new ArgumentException($"Unknown --precision-models entry '{name}'; use {string.Join(", ", AllModels)}.");
            }
        }
        Console.WriteLine();
        Console.WriteLine("bf16 = Precision.BFloat16 as ClassifierTrainer runs it: convolutions and linear layers in bfloat16 on casts of the float32 " +
                          "weights, BatchNorm, loss, optimizer and SAM's perturbation in float32. all-bf16 = the network and input converted to bfloat16 " +
                          "(no float32 master weights, BatchNorm in bfloat16): not a training mode of the library, only the bound on what the casts cost. " +
                          "SGD lr 0.01, momentum 0.9, weight decay 5e-4; SAM ρ = 0.05; random data in memory.");
    }

    private static void Measure(string name, Func<nn.Module<Tensor, Tensor>> create, long[] shape, int batch, BenchmarkOptions options)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var x = randn(new[] { (long)batch }.Concat(shape).ToArray());
        var y = randint(0, 10, new long[] { batch });
        var xb = x.to(ScalarType.BFloat16);

        var variants = new List<(string Name, Action Step, IDisposable Owned)>();
        foreach (var bf16 in new[] { false, true })
        {
            var (model, opt) = Setup(create);
            var autocast = bf16 ? BFloat16Autocast.Attach(model) : null;
            variants.Add(($"SGD {(bf16 ? "bf16" : "fp32")}", () =>
            {
                using (autocast?.Enable()) StepBenchmark.PlainStep(model, opt, x, y);
            }, new Owner(autocast, opt, model)));
        }
        foreach (var bf16 in new[] { false, true })
        {
            var (model, opt) = Setup(create);
            var sam = new SharpnessAwareMinimizer(model, opt, SharpnessAwareOptions.Sam(0.05));
            var autocast = bf16 ? BFloat16Autocast.Attach(model) : null;
            variants.Add(($"SAM {(bf16 ? "bf16" : "fp32")}", () =>
            {
                using var step = NewDisposeScope();
                Tensor loss;
                using (autocast?.Enable())
                    loss = sam.ComputeGradient(() => { var l = nn.functional.cross_entropy(model.call(x), y); l.backward(); return l; });
                sam.BaseOptimizer.step();
                loss.item<float>();
            }, new Owner(autocast, sam, opt, model)));
        }
        {
            var (model, opt) = Setup(create);
            model.to(ScalarType.BFloat16);
            opt.Dispose();
            var bfOpt = optim.SGD(model.parameters(), 0.01, momentum: 0.9, weight_decay: 5e-4);
            variants.Add(("SGD all-bf16", () =>
            {
                using var step = NewDisposeScope();
                bfOpt.zero_grad();
                var loss = nn.functional.cross_entropy(model.call(xb).to(ScalarType.Float32), y);
                loss.backward();
                bfOpt.step();
                loss.item<float>();
            }, new Owner(bfOpt, model)));
        }

        var times = variants.Select(_ => new List<double>()).ToArray();
        for (int r = 0; r < options.PrecisionWarmup + options.PrecisionRounds; r++)
        {
            for (int v = 0; v < variants.Count; v++)
            {
                double ms = Timing.Ms(variants[v].Step);
                if (r >= options.PrecisionWarmup) times[v].Add(ms);
            }
        }
        var m = times.Select(Timing.Median).ToArray();
        Console.WriteLine($"| {name} | {batch} | {m[0]:F1} | {m[1]:F1} | **{m[0] / m[1]:F2}** | {m[2]:F1} | {m[3]:F1} | **{m[2] / m[3]:F2}** | {m[4]:F1} | {m[0] / m[4]:F2} |");
        foreach (var variant in variants) variant.Owned.Dispose();
    }

    /// <summary>The methods of <c>precision-runs</c> by default: fp32 SGD (the reference) and each one-pass-leaning step in both precisions.</summary>
    public static readonly string[] DefaultRunMethods = { "sgd", "sgd-bf16", "sam", "sam-bf16", "looksam-a0.1-bf16", "rst-bf16", "aesam-bf16", "mesa-bf16" };

    /// <summary>
    /// Whole training runs of ResNet-18 (TorchVision layout, from scratch) on synthetic 3×size×size images, one per method,
    /// with the real <see cref="ClassifierTrainer"/> and the methods' options of the label-noise and clean-budget modes:
    /// wall time of <c>Train</c> for the same epochs, data and seed, and its ratio to fp32 SGD's. Random labels, so the
    /// accuracies mean nothing and are not reported; what is measured is what a step schedule and bfloat16 cost end to end
    /// (data batching, schedule decisions, MESA's teacher pass, the trainer's bookkeeping included).
    /// </summary>
    public static void RunWholeRuns(BenchmarkOptions options)
    {
        int size = options.PrecisionRunSize, images = options.PrecisionRunImages, epochs = options.PrecisionRunEpochs, batch = options.ResNet18Batch;
        var methods = FlatMinimumMethods.Check(options.PrecisionRunMethods, "--precision-run-methods");
        if (batch < 1) throw new ArgumentException($"--resnet18-batch {batch} must be ≥ 1.");
        if (size < 32 || size > 224) throw new ArgumentException($"--precision-run-size {size} must be in [32, 224].");
        if (epochs < 1) throw new ArgumentException($"--precision-run-epochs {epochs} must be ≥ 1.");
        if (images < batch) throw new ArgumentException($"--precision-run-images {images} must be at least one batch (--resnet18-batch {batch}).");
        var recipe = new TrainingRecipe(ImageClassifierArchitecture.ResNet18, false, epochs, batch, 0.05, 0.05, 0.5, null);
        PrintHeader($"## Whole runs, ResNet-18 (TorchVision layout) 3×{size}×{size} from scratch, {images} synthetic images, {epochs} epochs of {(images + batch - 1) / batch} steps (batch {batch}), seed 1");
        // Standard-normal images and uniform labels, generated once with a fixed seed.
        using var generator = new Generator(7, CPU);
        using var inputs = randn(new long[] { images, 3, size, size }, generator: generator);
        using var labels = randint(0, 10, new long[] { images }, generator: generator);
        var data = new TensorDataset(inputs, labels);
        // An untimed short run of each precision first (JIT, native loading, the allocator's first growth).
        int warmRows = Math.Min(images, 2 * batch);
        using (var warmInputs = inputs.narrow(0, 0, warmRows))
        using (var warmLabels = labels.narrow(0, 0, warmRows))
            foreach (var warm in new[] { "sgd", "sgd-bf16" })
                Time(warm, recipe with { Epochs = 1 }, new TensorDataset(warmInputs, warmLabels));
        Console.WriteLine("| method | passes per step | train s | × fp32 SGD |");
        Console.WriteLine("|---|---|---|---|");
        double? reference = null;
        foreach (var method in methods)
        {
            var (seconds, steps, samSteps) = Time(method, recipe, data);
            reference ??= method == "sgd" ? seconds : null;
            string ratio = reference is double r ? $"{seconds / r:F2}" : "— (run sgd first)";
            Console.WriteLine($"| {FlatMinimumMethods.Title(method)} | {(steps + samSteps) / (double)steps:F2} | {seconds:F1} | {ratio} |");
        }
        Console.WriteLine();
        Console.WriteLine($"Recipe as in the label-noise and clean-budget modes (SGD momentum 0.9, weight decay 5e-4, lr 0.05 cosine, SAM ρ = 0.05; " +
                          "MESA's KL term after ⌊epochs / 4⌋ epochs), no augmentation. Passes per step counts MESA's teacher forward pass as 0.");
    }

    // The title, then the CPU model, its bfloat16 support, what Precision = Auto picks, and the CPU flags.
    private static void PrintHeader(string title)
    {
        string? cpuInfo = BFloat16Hardware.ReadCpuInfo();
        Console.WriteLine();
        Console.WriteLine(title);
        Console.WriteLine();
        Console.WriteLine($"CPU: {BFloat16Hardware.CpuModel(cpuInfo) ?? "unknown"}; native bfloat16: {BFloat16Hardware.Probe(CPU).Description}; " +
                          $"Precision = Auto would use: {PrecisionChoice.For(ComputePrecision.Auto, CPU)}");
        Console.WriteLine($"flags: {BFloat16Hardware.FlagsLine(cpuInfo) ?? "unknown"}");
        Console.WriteLine();
    }

    private static (double Seconds, long Steps, long SharpnessAwareSteps) Time(string method, TrainingRecipe recipe, TensorDataset data)
    {
        manual_seed(1);
        using var model = ImageNetResNet.ResNet18(10);
        long steps = 0, samSteps = 0;
        var trainer = new ClassifierTrainer(FlatMinimumMethods.Options(method, recipe, 1, r => { steps += r.Steps; samSteps += r.SharpnessAwareSteps; }), CPU);
        var clock = Stopwatch.StartNew();
        trainer.Train(model, data);
        return (clock.Elapsed.TotalSeconds, steps, samSteps);
    }

    private static (nn.Module<Tensor, Tensor>, optim.Optimizer) Setup(Func<nn.Module<Tensor, Tensor>> create)
    {
        var model = create();
        model.train();
        return (model, optim.SGD(model.parameters(), 0.01, momentum: 0.9, weight_decay: 5e-4));
    }

    private sealed class Owner : IDisposable
    {
        private readonly IDisposable?[] _owned;

        public Owner(params IDisposable?[] owned) => _owned = owned;

        public void Dispose()
        {
            foreach (var item in _owned) item?.Dispose();
        }
    }
}
