using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>
/// The per-step cost of weight averaging on ResNet-20: an SGD step alone vs the same step followed by the averager's
/// update (SWA's running mean every step, EMA, SWAD's segment mean), interleaved per round on one model.
/// </summary>
internal static class AveragingBenchmark
{
    public static void Run(BenchmarkOptions options)
    {
        Console.WriteLine();
        Console.WriteLine("## Weight-averaging update vs an SGD step, ResNet-20 3×32×32, batch 128 (median ms over interleaved rounds)");
        Console.WriteLine();
        manual_seed(0);
        var model = SmallImageResNet.ResNet20(3, 10);
        model.train();
        var x = randn(128, 3, 32, 32);
        var y = randint(0, 10, new long[] { 128 });
        var opt = optim.SGD(model.parameters(), 0.01, momentum: 0.9, weight_decay: 5e-4);
        var plan = new TrainingPlan(1000, 10);
        var averagers = new (string Name, IWeightAverager Averager)[]
        {
            ("SWA running mean", new SwaOptions { StartStep = 0, EverySteps = 1 }.CreateAverager(model, plan)),
            ("EMA", WeightAveragingOptions.Ema().CreateAverager(model, plan)),
            ("SWAD segment mean", WeightAveragingOptions.Swad().CreateAverager(model, plan)),
        };
        long parameters = model.parameters().Sum(p => p.numel());
        var sgd = new List<double>();
        var update = averagers.Select(_ => new List<double>()).ToArray();
        int warmup = 4, rounds = Math.Max(options.ResNetSteps, 10);
        long step = 0;
        for (int r = 0; r < warmup + rounds; r++)
        {
            double s = Timing.Ms(() => StepBenchmark.PlainStep(model, opt, x, y));
            // Each update is timed many times (it is ~1000× shorter than a step) on the weights of this round's step.
            var u = averagers.Select(a => Timing.Ms(() => { for (int k = 0; k < 20; k++) a.Averager.AfterStep(++step); }) / 20).ToArray();
            if (r < warmup) continue;
            sgd.Add(s);
            for (int i = 0; i < u.Length; i++) update[i].Add(u[i]);
        }
        double sgdMs = Timing.Median(sgd);
        Console.WriteLine($"ResNet-20: {parameters:N0} parameters, SGD step {sgdMs:F1} ms, {rounds} rounds");
        Console.WriteLine();
        Console.WriteLine("| update | ms per step | % of an SGD step |");
        Console.WriteLine("|---|---|---|");
        for (int i = 0; i < averagers.Length; i++)
        {
            double m = Timing.Median(update[i]);
            Console.WriteLine($"| {averagers[i].Name} | {m:F3} | **{100 * m / sgdMs:F2} %** |");
            averagers[i].Averager.Dispose();
        }
        CompareUpdateKernels(model, rounds);
    }

    // The same running-mean update done three ways on the same weights, interleaved: one lerp_ per tensor (what the
    // averagers do), torch.cat of cached flat views into a temporary + one lerp_, and a single lerp_ on a flat copy
    // (the lower bound a persistent flat parameter layout could reach, without the copy it would need to stay in sync).
    private static void CompareUpdateKernels(nn.Module model, int rounds)
    {
        var tensors = new ModelTensors(model, includeBuffers: false);
        using var perTensor = tensors.NewBuffer();
        using var viaCat = tensors.NewBuffer();
        using var flatOnly = tensors.NewBuffer();
        perTensor.CopyFromModel(); viaCat.CopyFromModel(); flatOnly.CopyFromModel();
        var flatViews = model.parameters().Select(p => p.detach().view(-1)).ToArray();
        using var weight = tensor(0.01f);
        using var modelFlat = cat(flatViews);
        var times = new[] { new List<double>(), new List<double>(), new List<double>() };
        using var noGrad = no_grad();
        for (int r = 0; r < 4 + rounds * 5; r++)
        {
            var t = new[]
            {
                Timing.Ms(() => { for (int k = 0; k < 20; k++) perTensor.LerpTowardsModel(0.01); }) / 20,
                Timing.Ms(() => { for (int k = 0; k < 20; k++) { using var c = cat(flatViews); viaCat.Flat.lerp_(c, weight); } }) / 20,
                Timing.Ms(() => { for (int k = 0; k < 20; k++) flatOnly.Flat.lerp_(modelFlat, weight); }) / 20,
            };
            if (r < 4) continue;
            for (int i = 0; i < 3; i++) times[i].Add(t[i]);
        }
        Console.WriteLine();
        Console.WriteLine("Update kernels side by side (same weights, interleaved, median ms per update):");
        Console.WriteLine();
        Console.WriteLine("| kernel | ms per update | relative to per-tensor lerp_ |");
        Console.WriteLine("|---|---|---|");
        double baseMs = Timing.Median(times[0]);
        string[] names = { "one lerp_ per tensor (65 calls, current)", "torch.cat of flat views + one lerp_", "one lerp_ on an already-flat copy (lower bound)" };
        for (int i = 0; i < 3; i++)
            Console.WriteLine($"| {names[i]} | {Timing.Median(times[i]):F3} | {Timing.Median(times[i]) / baseMs:F2} |");
        foreach (var v in flatViews) v.Dispose();
    }
}
