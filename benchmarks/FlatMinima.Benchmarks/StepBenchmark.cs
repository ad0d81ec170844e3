using System;
using System.Collections.Generic;
using System.Linq;

using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>SGD vs SAM vs ASAM step time, interleaved per round so all three see the same machine state.</summary>
internal static class StepBenchmark
{
    public static void Run(BenchmarkOptions options)
    {
        Console.WriteLine();
        Console.WriteLine("## Step time, batch 128 (median ms over interleaved rounds)");
        Console.WriteLine();
        Console.WriteLine("| model | parameters | SGD | SAM | ASAM | SAM/SGD | ASAM/SGD | rounds |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        Measure("SmallCnn 1×28×28", () => new SmallCnn(1, 10), new long[] { 1, 28, 28 }, 20, options.CnnSteps);
        Measure("ResNet-20 3×32×32", () => SmallImageResNet.ResNet20(3, 10), new long[] { 3, 32, 32 }, 4, options.ResNetSteps);
    }

    /// <summary>
    /// ResNet-18 (TorchVision layout) at <c>--resnet18-size</c>, batch <c>--resnet18-batch</c>: our SGD and SAM steps, then
    /// TorchVision's resnet18 doing the same work in Debian's PyTorch (benchmarks/peer/resnet18_step.py) in the same run.
    /// </summary>
    public static void RunResNet18(BenchmarkOptions options)
    {
        int size = options.ResNet18Size, batch = options.ResNet18Batch, rounds = options.ResNet18Rounds;
        Console.WriteLine();
        Console.WriteLine($"## ResNet-18 step time, 3×{size}×{size}, batch {batch} (median ms over {rounds} interleaved rounds after 2 warm-up rounds)");
        Console.WriteLine();
        manual_seed(0);
        var x = randn(batch, 3, size, size);
        var y = randint(0, 10, new long[] { batch });
        var (sgdModel, sgd, _) = Setup(() => ImageNetResNet.ResNet18(10), null);
        var (samModel, samOpt, sam) = Setup(() => ImageNetResNet.ResNet18(10), SharpnessAwareOptions.Sam(0.05));
        var times = new List<double>[] { new(), new() };
        for (int r = 0; r < 2 + rounds; r++)
        {
            double a = Timing.Ms(() => PlainStep(sgdModel, sgd, x, y));
            double b = Timing.Ms(() => SharpStep(samModel, sam!, x, y));
            if (r < 2) continue;
            times[0].Add(a); times[1].Add(b);
        }
        double ours = Timing.Median(times[0]), oursSam = Timing.Median(times[1]);
        string script = System.IO.Path.Combine(options.RepoRoot, "benchmarks", "peer", "resnet18_step.py");
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { script, "--threads", options.Threads.ToString(), "--size", size.ToString(), "--batch", batch.ToString(), "--rounds", rounds.ToString() })
            start.ArgumentList.Add(a);
        string? peer = null;
        try
        {
            using var process = System.Diagnostics.Process.Start(start)!;
            string output = process.StandardOutput.ReadToEnd(), error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            peer = process.ExitCode == 0 ? output.Trim().Split('\n').Last() : throw new InvalidOperationException(error);
        }
        catch (Exception e)
        {
            Console.WriteLine($"PyTorch side not run: {e.Message.Split('\n').Last(l => l.Length > 0)}");
        }
        Console.WriteLine("| | SGD ms | SAM ms | SAM/SGD |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| ours (TorchSharp 0.107, `ImageNetResNet.ResNet18`) | {ours:F0} | {oursSam:F0} | **{oursSam / ours:F2}** |");
        if (peer is null) return;
        using var json = System.Text.Json.JsonDocument.Parse(peer);
        var root = json.RootElement;
        double torchSgd = root.GetProperty("sgd_ms").GetDouble(), torchSam = root.GetProperty("sam_ms").GetDouble();
        Console.WriteLine($"| PyTorch {root.GetProperty("torch").GetString()}, torchvision {root.GetProperty("torchvision").GetString()} `resnet18` | {torchSgd:F0} | {torchSam:F0} | {torchSam / torchSgd:F2} |");
        Console.WriteLine($"| ours / PyTorch | **{ours / torchSgd:F2}** | **{oursSam / torchSam:F2}** | |");
        Console.WriteLine();
        Console.WriteLine($"PyTorch side: `/usr/bin/python3 {string.Join(' ', start.ArgumentList.Skip(1).Prepend(System.IO.Path.GetRelativePath(options.RepoRoot, script)))}`, " +
                          "run after ours in the same process tree (2 threads, interop 1, random data in memory).");
    }

    /// <summary>F2M's flat-region step (M noisy forward/backward passes) vs an SGD step on ResNet-20 1×28×28, batch 128.</summary>
    public static void RunFlatRegion(BenchmarkOptions options)
    {
        Console.WriteLine();
        Console.WriteLine("## F2M flat-region step vs SGD step, ResNet-20 1×28×28, batch 128, M = 2, last 4 convs (median ms over interleaved rounds)");
        Console.WriteLine();
        Console.WriteLine("| SGD | F2M discrete Beta | F2M uniform | discrete Beta/SGD | uniform/SGD | rounds |");
        Console.WriteLine("|---|---|---|---|---|---|");
        manual_seed(0);
        var x = randn(128, 1, 28, 28);
        var y = randint(0, 10, new long[] { 128 });
        var (sgdModel, sgd, _) = Setup(() => SmallImageResNet.ResNet20(1, 10), null);
        var flat = new[] { FlatMinima.Torch.IncrementalFewShot.FlatRegionNoiseKind.DiscreteBeta, FlatMinima.Torch.IncrementalFewShot.FlatRegionNoiseKind.Uniform }.Select(kind =>
        {
            var (model, opt, _) = Setup(() => SmallImageResNet.ResNet20(1, 10), null);
            var search = new FlatMinima.Torch.IncrementalFewShot.FlatRegionSearch(model, new FlatMinima.Torch.IncrementalFewShot.FlatRegionOptions { Noise = kind }, new Generator(1, CPU));
            return (model, opt, search);
        }).ToArray();
        var times = new List<double>[] { new(), new(), new() };
        int warmup = 3;
        for (int r = 0; r < warmup + options.ResNetSteps; r++)
        {
            var t = new double[3];
            t[0] = Timing.Ms(() => PlainStep(sgdModel, sgd, x, y));
            for (int k = 0; k < 2; k++)
            {
                var (model, opt, search) = flat[k];
                t[k + 1] = Timing.Ms(() =>
                {
                    using var scope = NewDisposeScope();
                    opt.zero_grad();
                    var losses = search.ComputeGradient(() => nn.functional.cross_entropy(model.call(x), y));
                    opt.step();
                    _ = losses.mean().ToDouble();
                });
            }
            if (r < warmup) continue;
            for (int k = 0; k < 3; k++) times[k].Add(t[k]);
        }
        var m = times.Select(Timing.Median).ToArray();
        Console.WriteLine($"| {m[0]:F1} | {m[1]:F1} | {m[2]:F1} | **{m[1] / m[0]:F2}** | {m[2] / m[0]:F2} | {options.ResNetSteps} |");
    }

    private static void Measure(string name, Func<nn.Module<Tensor, Tensor>> create, long[] shape, int warmup, int rounds)
    {
        manual_seed(0);
        var x = randn(new[] { 128L }.Concat(shape).ToArray());
        var y = randint(0, 10, new long[] { 128 });
        var (sgdModel, sgd, _) = Setup(create, null);
        var (samModel, samOpt, sam) = Setup(create, SharpnessAwareOptions.Sam(0.05));
        var (asamModel, asamOpt, asam) = Setup(create, SharpnessAwareOptions.Asam());
        var times = new List<double>[] { new(), new(), new() };
        for (int r = 0; r < warmup + rounds; r++)
        {
            double a = Timing.Ms(() => PlainStep(sgdModel, sgd, x, y));
            double b = Timing.Ms(() => SharpStep(samModel, sam!, x, y));
            double c = Timing.Ms(() => SharpStep(asamModel, asam!, x, y));
            if (r < warmup) continue;
            times[0].Add(a); times[1].Add(b); times[2].Add(c);
        }
        var m = times.Select(Timing.Median).ToArray();
        long parameters = sgdModel.parameters().Sum(p => p.numel());
        Console.WriteLine($"| {name} | {parameters:N0} | {m[0]:F1} | {m[1]:F1} | {m[2]:F1} | **{m[1] / m[0]:F2}** | {m[2] / m[0]:F2} | {rounds} |");
    }

    private static (nn.Module<Tensor, Tensor>, optim.Optimizer, SharpnessAwareMinimizer?) Setup(Func<nn.Module<Tensor, Tensor>> create, SharpnessAwareOptions? sam)
    {
        var model = create();
        model.train();
        var opt = optim.SGD(model.parameters(), 0.01, momentum: 0.9, weight_decay: 5e-4);
        return (model, opt, sam is null ? null : new SharpnessAwareMinimizer(model, opt, sam));
    }

    // The same per-batch work as ClassifierTrainer: loss, backward, step, and reading the loss value.
    internal static void PlainStep(nn.Module<Tensor, Tensor> model, optim.Optimizer opt, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        var loss = nn.functional.cross_entropy(model.call(x), y);
        loss.backward();
        opt.step();
        loss.item<float>();
    }

    private static void SharpStep(nn.Module<Tensor, Tensor> model, SharpnessAwareMinimizer sam, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        var loss = sam.ComputeGradient(() => { var l = nn.functional.cross_entropy(model.call(x), y); l.backward(); return l; });
        sam.BaseOptimizer.step();
        loss.item<float>();
    }
}
