using FlatMinima.Torch.Optimization;
using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;

namespace FlatMinima.Benchmarks;

/// <summary>End-to-end training images/s from an IDataView (ML.NET Fit), SGD and SAM, SmallCnn, batch 128; optionally vs PyTorch.</summary>
internal static class ThroughputBenchmark
{
    public static void Run(BenchmarkOptions options)
    {
        var ml = new MLContext(seed: 1);
        var rows = BenchmarkData.Rows(BenchmarkData.Load(options, train: true, options.Images));
        var data = ml.Data.LoadFromEnumerable(rows);
        const int epochs = 2;
        Console.WriteLine();
        Console.WriteLine($"## Training throughput, SmallCnn, batch 128, {rows.Length:N0} Fashion-MNIST images × {epochs} epochs, end to end from an IDataView");
        Console.WriteLine();
        Console.WriteLine("| method | Fit wall time (s) | images/s, whole Fit | images/s, epochs only | PyTorch images/s (same run): as installed / malloc-tuned | ours / PyTorch (whole Fit): as installed / malloc-tuned |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var peer = options.PeerBench is null ? null : RunPeer(options, tunedMalloc: false);
        var peerTuned = options.PeerBench is null ? null : RunPeer(options, tunedMalloc: true);
        foreach (var method in new[] { null, SharpnessAwareOptions.Sam() })
        {
            double epochSeconds = 0;
            var pipeline = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(
                new FlatMinimaImageClassificationTrainer.Options
                {
                    ImageColumnName = "Pixels", Epochs = epochs, BatchSize = 128, LearningRate = 0.01, SharpnessAware = method,
                    Device = DeviceKind.Cpu, TuneGlibcMalloc = options.Mallopt, Progress = r => epochSeconds += r.Elapsed.TotalSeconds,
                }));
            var clock = Stopwatch.StartNew();
            pipeline.Fit(data);
            double seconds = clock.Elapsed.TotalSeconds;
            double images = rows.Length * (double)epochs;
            double ours = images / seconds;
            string name = method is null ? "SGD" : "SAM (ρ = 0.05)";
            double? torch = peer is null ? null : 128 / (method is null ? peer.Value.SgdMs : peer.Value.SamMs) * 1000;
            double? torchTuned = peerTuned is null ? null : 128 / (method is null ? peerTuned.Value.SgdMs : peerTuned.Value.SamMs) * 1000;
            Console.WriteLine($"| {name} | {seconds:F1} | {ours:N0} | {images / epochSeconds:N0} | {(torch is double t ? t.ToString("N0") : "not run")} / {(torchTuned is double tt ? tt.ToString("N0") : "not run")} | " +
                              $"{(torch is double t2 ? $"**{ours / t2:F2}** / {ours / torchTuned!.Value:F2}" : "")} |");
        }
        if (peer is not null)
            Console.WriteLine($"\nPyTorch side: `{peer.Value.Command}`, run twice: as installed (median step of {peer.Value.Version}: SGD {peer.Value.SgdMs:F1} ms, " +
                              $"SAM {peer.Value.SamMs:F1} ms) and with `{TunedMallocEnvironment}` (SGD {peerTuned!.Value.SgdMs:F1} ms, SAM {peerTuned.Value.SamMs:F1} ms); random data already in memory, so PyTorch's figure has no data path.");
    }

    private const string TunedMallocEnvironment = "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=268435456";

    private static (double SgdMs, double SamMs, string Version, string Command)? RunPeer(BenchmarkOptions options, bool tunedMalloc)
    {
        string script = Path.Combine(options.PeerBench!, "python", "bench.py");
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (tunedMalloc)
            foreach (var pair in TunedMallocEnvironment.Split(' ')) start.Environment[pair.Split('=')[0]] = pair.Split('=')[1];
        foreach (var a in new[] { script, "--only", "cnn", "--threads", options.Threads.ToString(CultureInfo.InvariantCulture), "--cnn-steps", options.CnnSteps.ToString(CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"The PyTorch peer benchmark failed: {error}");
        double sgd = double.NaN, sam = double.NaN;
        string version = "PyTorch";
        foreach (var line in output.Split('\n').Where(l => l.StartsWith('{')))
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            if (root.TryGetProperty("info", out var info) && info.TryGetProperty("torch", out var v)) version = "PyTorch " + v.GetString();
            if (!root.TryGetProperty("metric", out var metric) || root.GetProperty("bench").GetString()?.StartsWith("cnn", StringComparison.Ordinal) != true) continue;
            if (metric.GetString() == "sgd_step") sgd = root.GetProperty("median_ms").GetDouble();
            if (metric.GetString() == "sam_step") sam = root.GetProperty("median_ms").GetDouble();
        }
        return (sgd, sam, version, "/usr/bin/python3 " + string.Join(' ', start.ArgumentList));
    }
}
