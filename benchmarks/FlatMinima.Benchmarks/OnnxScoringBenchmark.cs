using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Scoring throughput of the same trained model on the same Fashion-MNIST test images: our TorchSharp batched
/// <c>Transform</c> (reading <c>Score</c>) vs the model exported with <c>mlContext.Model.ConvertToOnnx</c> run in ONNX
/// Runtime through <c>ApplyOnnxModel</c>, and directly with <c>InferenceSession.Run</c> on batches of 256. Interleaved
/// rounds, medians; also prints the largest score difference between the paths.
/// </summary>
internal static class OnnxScoringBenchmark
{
    private const int Batch = 256;

    public static void Run(BenchmarkOptions options)
    {
        var ml = new MLContext(seed: 1);
        var trainRows = BenchmarkData.Rows(BenchmarkData.Load(options, train: true, 2000));
        var testRows = BenchmarkData.Rows(BenchmarkData.Load(options, train: false, options.OnnxImages));
        var train = ml.Data.LoadFromEnumerable(trainRows);
        var test = ml.Data.Cache(ml.Data.LoadFromEnumerable(testRows));
        test.GetColumn<string>("Label").Count(); // fill the cache
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(new FlatMinimaImageClassificationTrainer.Options
            {
                ImageColumnName = "Pixels", Architecture = options.OnnxArchitecture, Epochs = 1, BatchSize = 128,
                Device = DeviceKind.Cpu, ScoringBatchSize = Batch,
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
            .Fit(train);
        string file = Path.Combine(Path.GetTempPath(), $"flatminima-onnx-scoring-{Guid.NewGuid():N}.onnx");
        try
        {
            using (var stream = File.Create(file)) ml.Model.ConvertToOnnx(model, test, stream);
            Compare(ml, options, model, test, testRows, file);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static void Compare(MLContext ml, BenchmarkOptions options, ITransformer model, IDataView test, PixelRow[] testRows, string file)
    {
        int n = testRows.Length;
        // The same thread count as the other two paths (ApplyOnnxModel's default lets ONNX Runtime use every core).
        var applyOnnx = ml.Transforms.ApplyOnnxModel(new Microsoft.ML.Transforms.Onnx.OnnxOptions
        {
            ModelFile = file,
            InputColumns = new[] { "Label", "Pixels" },
            OutputColumns = new[] { "Score.output" },
            GpuDeviceId = null,
            FallbackToCpu = false,
            IntraOpNumThreads = options.Threads,
            InterOpNumThreads = 1,
        }).Fit(test);
        using var sessionOptions = new SessionOptions { IntraOpNumThreads = options.Threads, InterOpNumThreads = 1 };
        using var session = new InferenceSession(file, sessionOptions);
        var pixels = testRows.SelectMany(r => r.Pixels).ToArray();
        var labels = testRows.Select(r => r.Label).ToArray();
        int classes = 10;
        var direct = new float[n * classes];

        double Ours(out float[][] scores)
        {
            float[][] read = Array.Empty<float[]>();
            double ms = Timing.Ms(() => read = model.Transform(test).GetColumn<float[]>("Score").ToArray());
            scores = read;
            return ms;
        }
        double ThroughApplyOnnx(out float[][] scores)
        {
            float[][] read = Array.Empty<float[]>();
            double ms = Timing.Ms(() => read = applyOnnx.Transform(test).GetColumn<float[]>("Score").ToArray());
            scores = read;
            return ms;
        }
        double Direct() => Timing.Ms(() =>
        {
            for (int start = 0; start < n; start += Batch)
            {
                int count = Math.Min(Batch, n - start);
                var inputs = new List<NamedOnnxValue>
                {
                    NamedOnnxValue.CreateFromTensor("Pixels", new DenseTensor<float>(pixels.AsMemory(start * 784, count * 784), new[] { count, 1, 28, 28 })),
                    NamedOnnxValue.CreateFromTensor("Label", new DenseTensor<string>(labels.AsMemory(start, count), new[] { count, 1 })),
                };
                using var results = session.Run(inputs, new[] { "Score.output" });
                var scores = (DenseTensor<float>)results.Single().AsTensor<float>();
                scores.Buffer.Span.CopyTo(direct.AsSpan(start * classes, count * classes));
            }
        });

        Ours(out var oursScores); ThroughApplyOnnx(out var onnxScores); Direct(); // warm-up
        double maxApply = MaxAbs(oursScores, onnxScores), maxDirect = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < classes; k++) maxDirect = Math.Max(maxDirect, Math.Abs(oursScores[i][k] - direct[i * classes + k]));
        var ours = new List<double>();
        var apply = new List<double>();
        var raw = new List<double>();
        for (int round = 0; round < options.OnnxRounds; round++)
        {
            ours.Add(Ours(out _));
            apply.Add(ThroughApplyOnnx(out _));
            raw.Add(Direct());
        }
        double oursMs = Timing.Median(ours), applyMs = Timing.Median(apply), rawMs = Timing.Median(raw);
        Console.WriteLine();
        Console.WriteLine($"## Scoring {n:N0} Fashion-MNIST test images, {options.OnnxArchitecture} (1 epoch), TorchSharp vs the exported ONNX model " +
                          $"(median of {options.OnnxRounds} interleaved rounds, {options.Threads} threads each)");
        Console.WriteLine();
        Console.WriteLine("| path | ms | images/s | relative to our Transform |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| ML.NET `Transform` + reading `Score` (TorchSharp, batches of {Batch}) | {oursMs:F0} | {n / oursMs * 1000:N0} | 1.00 |");
        Console.WriteLine($"| ML.NET `ApplyOnnxModel` + reading `Score` (ONNX Runtime, row by row) | {applyMs:F0} | {n / applyMs * 1000:N0} | **{oursMs / applyMs:F2}** |");
        Console.WriteLine($"| ONNX Runtime `InferenceSession.Run`, batches of {Batch} (pre-built arrays) | {rawMs:F0} | {n / rawMs * 1000:N0} | **{oursMs / rawMs:F2}** |");
        Console.WriteLine();
        Console.WriteLine($"Largest score difference from our Transform: ApplyOnnxModel {maxApply:E2}, InferenceSession {maxDirect:E2}.");
    }

    private static double MaxAbs(float[][] a, float[][] b)
    {
        double max = 0;
        for (int i = 0; i < a.Length; i++)
            for (int k = 0; k < a[i].Length; k++) max = Math.Max(max, Math.Abs(a[i][k] - b[i][k]));
        return max;
    }
}
