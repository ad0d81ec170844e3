using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>ML.NET Transform + reading the Score column vs a raw TorchSharp batched forward on the same images.</summary>
internal static class ScoringBenchmark
{
    public static void Run(BenchmarkOptions options)
    {
        var ml = new MLContext(seed: 1);
        var trainRows = BenchmarkData.Rows(BenchmarkData.Load(options, train: true, 2000));
        var testRows = BenchmarkData.Rows(BenchmarkData.Load(options, train: false, 10000));
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(trainRows));
        var train = keys.Transform(ml.Data.LoadFromEnumerable(trainRows));
        var test = ml.Data.Cache(keys.Transform(ml.Data.LoadFromEnumerable(testRows)));
        test.GetColumn<uint>("Label").Count(); // fill the cache
        var model = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(new FlatMinimaImageClassificationTrainer.Options
        {
            ImageColumnName = "Pixels", Epochs = 1, BatchSize = 128, Device = DeviceKind.Cpu, ScoringBatchSize = 256,
        }).Fit(train);

        // Raw: the same images as one normalized tensor, forward in batches of 256, probabilities copied to managed memory.
        var raw = tensor(testRows.SelectMany(r => r.Pixels).ToArray()).reshape(testRows.Length, 1, 28, 28);
        var normalized = model.Model.Normalize(raw);
        var output = new float[testRows.Length * model.Model.ClassCount];
        double RawForward() => Timing.Ms(() =>
        {
            for (long start = 0; start < testRows.Length; start += 256)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(256, testRows.Length - start);
                using var noGrad = no_grad();
                var p = nn.functional.softmax(model.Model.Network.call(normalized.narrow(0, start, n)), 1).cpu();
                p.data<float>().CopyTo(output.AsSpan((int)(start * model.Model.ClassCount), (int)(n * model.Model.ClassCount)));
            }
        });
        double MlNet() => Timing.Ms(() =>
        {
            var scored = model.Transform(test);
            using var cursor = scored.GetRowCursor(new[] { scored.Schema["Score"] });
            var getter = cursor.GetGetter<VBuffer<float>>(scored.Schema["Score"]);
            VBuffer<float> value = default;
            while (cursor.MoveNext()) getter(ref value);
        });
        double ReadOnly() => Timing.Ms(() =>
        {
            using var cursor = test.GetRowCursor(new[] { test.Schema["Pixels"] });
            var getter = cursor.GetGetter<VBuffer<float>>(test.Schema["Pixels"]);
            VBuffer<float> value = default;
            while (cursor.MoveNext()) getter(ref value);
        });
        RawForward(); MlNet(); ReadOnly(); // warm-up
        var rawTimes = new List<double>();
        var mlTimes = new List<double>();
        var readTimes = new List<double>();
        for (int i = 0; i < 7; i++)
        {
            rawTimes.Add(RawForward());
            mlTimes.Add(MlNet());
            readTimes.Add(ReadOnly());
        }
        double rawMs = Timing.Median(rawTimes), mlMs = Timing.Median(mlTimes), readMs = Timing.Median(readTimes);
        Console.WriteLine();
        Console.WriteLine($"## Scoring {testRows.Length:N0} Fashion-MNIST test images, SmallCnn, batches of 256 (median of 7 interleaved runs)");
        Console.WriteLine();
        Console.WriteLine("| path | ms | images/s | relative to raw |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| raw TorchSharp batched forward (pre-built normalized tensor) | {rawMs:F0} | {testRows.Length / rawMs * 1000:N0} | 1.00 |");
        Console.WriteLine($"| ML.NET `Transform` + reading `Score` (pixel-vector IDataView) | {mlMs:F0} | {testRows.Length / mlMs * 1000:N0} | **{rawMs / mlMs:F2}** |");
        Console.WriteLine($"| (for reference) reading the input pixel column alone, no model | {readMs:F0} | {testRows.Length / readMs * 1000:N0} | |");
    }
}
