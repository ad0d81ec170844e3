using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;

namespace FlatMinima.Benchmarks;

internal sealed record BenchmarkOptions(string[] Modes, int Threads, int CnnSteps, int ResNetSteps, int Images, bool Mallopt,
    string FashionMnist, string? PeerBench)
{
    public static BenchmarkOptions Parse(string[] args)
    {
        var o = new BenchmarkOptions(new[] { "steps", "scoring", "data" }, 2, 60, 12, 12800, true, FlatMinima.Torch.Data.IdxImageSet.DebianFashionMnistDirectory, null);
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            o = args[i] switch
            {
                "--threads" => o with { Threads = int.Parse(Next()) },
                "--cnn-steps" => o with { CnnSteps = int.Parse(Next()) },
                "--resnet-steps" => o with { ResNetSteps = int.Parse(Next()) },
                "--images" => o with { Images = int.Parse(Next()) },
                "--no-mallopt" => o with { Mallopt = false },
                "--fashion-mnist" => o with { FashionMnist = Next() },
                "--peer-bench" => o with { PeerBench = Next() },
                var m when !m.StartsWith("--") => o with { Modes = m.Split(',') },
                var other => throw new ArgumentException($"Unknown option {other}"),
            };
        }
        return o;
    }
}

/// <summary>Timing helpers: medians of wall-clock samples.</summary>
internal static class Timing
{
    public static double Ms(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalMilliseconds;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
