using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using FlatMinima.Torch.Diagnostics;
using FlatMinima.Torch.Models;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>One Hessian-vector product vs one gradient on ResNet-20, and the wall time of top-1 eigenvalue and trace estimates.</summary>
internal static class HessianBenchmark
{
    public static void Run(BenchmarkOptions options)
    {
        manual_seed(0);
        var model = SmallImageResNet.ResNet20(3, 10);
        var x = randn(128, 3, 32, 32);
        var y = randint(0, 10, new long[] { 128 });
        if (options.HessianParts.Contains("hvp"))
        using (var objective = LossObjective.ForModel(model, (l, t) => nn.functional.cross_entropy(l, t), new[] { (x, y) }))
        {
            var v = randn(objective.Dimension);
            var gradient = new List<double>();
            var hvp = new List<double>();
            var first = new List<double>();
            for (int r = 0; r < 3 + options.ResNetSteps; r++)
            {
                double g = Timing.Ms(() => { using var s = NewDisposeScope(); objective.Gradient(); });
                double h = Timing.Ms(() => { using var s = NewDisposeScope(); objective.HessianVectorProduct(v); });
                double f = Timing.Ms(() =>
                {
                    using var s = NewDisposeScope();
                    using var fresh = LossObjective.ForModel(model, (l, t) => nn.functional.cross_entropy(l, t), new[] { (x, y) });
                    fresh.HessianVectorProduct(v);
                });
                if (r < 3) continue;
                gradient.Add(g);
                hvp.Add(h);
                first.Add(f);
            }
            double gm = Timing.Median(gradient), hm = Timing.Median(hvp), fm = Timing.Median(first);
            Console.WriteLine();
            Console.WriteLine("## Hessian-vector product vs gradient, ResNet-20 (272,474 parameters), batch 128 of 3×32×32, eval mode (median ms, interleaved)");
            Console.WriteLine();
            Console.WriteLine("| gradient (forward + backward) | HVP, repeated (cached first-order graph: one double backward) | HVP / gradient | first HVP (forward + backward with graph + double backward) | first HVP / gradient |");
            Console.WriteLine("|---|---|---|---|---|");
            Console.WriteLine($"| {gm:F0} | {hm:F0} | **{hm / gm:F2}** | {fm:F0} | {fm / gm:F2} |");
        }

        // 1,000 Fashion-MNIST images (ResNet-20 with 1 input channel) as ONE batch, so the first-order graph is kept
        // and every repeated HVP is one double backward (eval mode: the same loss as any split into batches).
        var set = BenchmarkData.Load(options, train: true, 1000).ToTensorDataset(0.2860f, 0.3530f);
        manual_seed(1);
        var net = SmallImageResNet.ResNet20(1, 10);
        long rssBefore = CurrentRss();
        using var data = LossObjective.ForModel(net, (l, t) => nn.functional.cross_entropy(l, t), new[] { (set.Inputs, set.Labels) });
        Console.WriteLine();
        Console.WriteLine("## Eigenvalue and trace wall time, ResNet-20 (untrained, seed 1), 1,000 Fashion-MNIST images as one batch (first-order graph kept), eval mode");
        Console.WriteLine();
        Console.WriteLine("| estimate | result | HVPs | wall time (s) | s per HVP |");
        Console.WriteLine("|---|---|---|---|---|");
        var clock = Stopwatch.StartNew();
        using (var s = NewDisposeScope()) data.HessianVectorProduct(randn(data.Dimension));
        double firstHvp = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"| first HVP (builds and keeps the graph) | | 1 | {firstHvp:F1} | {firstHvp:F1} |");
        Console.WriteLine($"(resident memory: {rssBefore / 1048576.0:F0} MiB before the objective, {CurrentRss() / 1048576.0:F0} MiB with the 1,000-image graph kept)");
        if (options.HessianParts.Contains("lanczos"))
        {
            clock.Restart();
            var lanczos = HessianEigenvalues.Lanczos(data, 1, new EigenOptions { Tolerance = 1e-4, KrylovDimension = 100 });
            Report($"top-1 eigenvalue, Lanczos, tol 1e-4 | {lanczos.Values[0]:G5}{(lanczos.Converged ? "" : " (not converged)")}", lanczos.HessianVectorProducts, clock);
        }
        if (options.HessianParts.Contains("trace"))
        {
            clock.Restart();
            var trace = HutchinsonTrace.Estimate(data, 100);
            Report($"trace, 100 Rademacher probes | {trace.Trace:G5} ± {trace.StandardError:G3}", 100, clock);
        }
        if (options.HessianParts.Contains("power"))
        {
            clock.Restart();
            var power = HessianEigenvalues.PowerIteration(data, 1, new EigenOptions { Tolerance = 1e-4, MaxIterationsPerEigenvalue = 100 });
            Report($"top-1 eigenvalue, power iteration, tol 1e-4 | {power.Values[0]:G5}{(power.Converged ? "" : " (not converged)")}", power.HessianVectorProducts, clock);
        }
        Console.WriteLine($"(peak resident memory of the process: {System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:F0} MiB)");
    }

    private static void Report(string estimateAndResult, int hvps, Stopwatch clock)
    {
        double s = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"| {estimateAndResult} | {hvps} | {s:F1} | {s / Math.Max(1, hvps):F2} |");
    }

    private static long CurrentRss()
    {
        using var p = System.Diagnostics.Process.GetCurrentProcess();
        return p.WorkingSet64;
    }
}
