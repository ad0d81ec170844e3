using System;
using System.Collections.Generic;
using FlatMinima.Torch.Models;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>The trainer's per-batch data path (shuffled index_select from the in-memory training tensor) vs an SGD step.</summary>
internal static class DataPathBenchmark
{
    public static void Run(BenchmarkOptions options)
    {
        manual_seed(0);
        var all = randn(60000, 1, 28, 28);
        var labels = randint(0, 10, new long[] { 60000 });
        var model = new SmallCnn(1, 10);
        var opt = optim.SGD(model.parameters(), 0.01, momentum: 0.9, weight_decay: 5e-4);
        var order = randperm(60000);
        var data = new List<double>();
        var steps = new List<double>();
        for (int r = 0; r < 20 + options.CnnSteps; r++)
        {
            Tensor x = null!, y = null!;
            using var scope = NewDisposeScope();
            double d = Timing.Ms(() =>
            {
                var index = order.narrow(0, (r * 128) % (60000 - 128), 128);
                x = all.index_select(0, index).to(CPU);
                y = labels.index_select(0, index).to(CPU);
            });
            double s = Timing.Ms(() =>
            {
                opt.zero_grad();
                var loss = nn.functional.cross_entropy(model.call(x), y);
                loss.backward();
                opt.step();
                loss.item<float>();
            });
            if (r < 20) continue;
            data.Add(d);
            steps.Add(s);
        }
        double dm = Timing.Median(data), sm = Timing.Median(steps);
        Console.WriteLine();
        Console.WriteLine("## Data path, SmallCnn, batch 128 (median over interleaved rounds)");
        Console.WriteLine();
        Console.WriteLine("| batch assembly (index_select of 128 images + labels) | SGD step | data / step |");
        Console.WriteLine("|---|---|---|");
        Console.WriteLine($"| {dm * 1000:F0} µs | {sm:F1} ms | **{dm / sm:P2}** |");
    }
}
