using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using FlatMinima.MLNet.Diagnostics;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Models;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Tests.Faults;

/// <summary>
/// Determinism and isolation under threads: trainings started together give the weights of sequential ones, also while
/// another thread draws from and seeds TorchSharp's global generator; sharpness diagnostics and loss landscapes leave
/// a model that is being scored untouched.
/// </summary>
[TestClass]
public sealed class ConcurrencyFaultTests
{
    private static readonly List<ImageRow> Rows = TestData.Load("train", TestData.ThreeClasses, 8);

    [TestMethod]
    public void SimultaneousTrainingsAreBitIdenticalToSequentialOnesWhileAnotherThreadUsesTheGlobalGenerator()
    {
        var architectures = new[] { ImageClassifierArchitecture.ResNet20, ImageClassifierArchitecture.SmallCnn };
        var sequential = architectures.Select(a => Weights(Train(a, seed: 3))).ToArray();
        for (int round = 0; round < 3; round++)
        {
            using var done = new CountdownEvent(architectures.Length);
            long globalDraws = 0;
            var noise = Task.Run(() =>
            {
                for (long i = 0; !done.IsSet; i++, globalDraws++)
                {
                    manual_seed(i);
                    rand(64).Dispose();
                }
            });
            using var start = new Barrier(architectures.Length);
            var trainings = architectures.Select(a => Task.Run(() =>
            {
                try
                {
                    start.SignalAndWait();
                    return Weights(Train(a, seed: 3));
                }
                finally
                {
                    done.Signal();
                }
            })).ToArray();
            Task.WaitAll(trainings);
            noise.Wait();
            Assert.IsTrue(globalDraws > 0, "the global generator was used during the trainings");
            for (int i = 0; i < architectures.Length; i++)
                AssertIdentical(sequential[i], trainings[i].Result, $"round {round}, {architectures[i]}: concurrent = sequential");
        }
    }

    [TestMethod]
    public void ScoresStayBitIdenticalWhileSharpnessAndLandscapesRunOnTheSameModel()
    {
        var ml = new MLContext(seed: 1);
        var model = Train(ImageClassifierArchitecture.ResNet20, seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows);
        var weightsBefore = Weights(model);
        var scoresBefore = TestData.Scores(model.Transform(data));

        using var finished = new ManualResetEventSlim();
        using var scoring = new ManualResetEventSlim();
        var wrong = new ConcurrentBag<string>();
        int rounds = 0;
        var scorer = Task.Run(() =>
        {
            do
            {
                var scores = TestData.Scores(model.Transform(data));
                if (!scores.Zip(scoresBefore).All(p => p.First.SequenceEqual(p.Second))) wrong.Add($"round {rounds}: other scores");
                rounds++;
                scoring.Set();
            }
            while (!finished.IsSet);
        });
        try
        {
            scoring.Wait();
            var options = new FlatMinimaSharpnessOptions
            {
                MaxExamples = 24, BatchSize = 12, TraceProbes = 3, KrylovDimension = 5, MaxIterationsPerEigenvalue = 5, AscentSteps = 2, AverageCaseSamples = 2,
            };
            var report = ml.MulticlassClassification.EvaluateSharpness(model, data, options);
            var report64 = ml.MulticlassClassification.EvaluateSharpness(model, data, new FlatMinimaSharpnessOptions
            {
                MaxExamples = 24, BatchSize = 12, TraceProbes = 3, KrylovDimension = 5, MaxIterationsPerEigenvalue = 5, AscentSteps = 2, AverageCaseSamples = 2,
                Float64 = true, TrainMode = true,
            });
            var landscape = ml.MulticlassClassification.LossLandscape(model, data, dimensions: 1, points: 5, maxExamples: 24);
            Assert.IsTrue(double.IsFinite(report.Loss) && double.IsFinite(report64.Loss) && landscape.Losses.Length == 5);
        }
        finally
        {
            finished.Set();
            scorer.Wait();
        }
        Assert.IsTrue(rounds >= 2, $"scoring ran during the diagnostics ({rounds} rounds)");
        Assert.AreEqual(0, wrong.Count, string.Join("; ", wrong));
        AssertIdentical(weightsBefore, Weights(model), "the model's weights and buffers are unchanged");
        var scoresAfter = TestData.Scores(model.Transform(data));
        for (int i = 0; i < scoresBefore.Length; i++) CollectionAssert.AreEqual(scoresBefore[i], scoresAfter[i], $"row {i}");
    }

    [TestMethod]
    public void CustomNetworkWithAnUnknownLayerIsReproducibleWhateverTheGlobalGeneratorHolds()
    {
        Dictionary<string, double[]> Run(long globalSeed)
        {
            manual_seed(globalSeed);
            return Weights(Train(ImageClassifierArchitecture.SmallCnn, seed: 4, o =>
            {
                o.CustomModelName = "ConcurrencyFaultTests.ScaledCnn";
                o.CustomModelFactory = (channels, classes) => new ScaledCnn(channels, classes);
            }));
        }
        var first = Run(1);
        AssertIdentical(first, Run(2), "same Seed, another global generator state");
        Assert.AreEqual(1, first["temperature"].Length);
    }

    // A custom network with a parameter of its own (no initialization scheme: built with the global generator seeded).
    private sealed class ScaledCnn : TorchSharp.torch.nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Conv2d conv;
        private readonly TorchSharp.Modules.Linear fc;
        private readonly TorchSharp.Modules.Parameter temperature = TorchSharp.torch.nn.Parameter(rand(1).add_(0.5));

        public ScaledCnn(int channels, int classes) : base(nameof(ScaledCnn))
        {
            conv = TorchSharp.torch.nn.Conv2d(channels, 4, 3, stride: 2);
            fc = TorchSharp.torch.nn.Linear(4 * 13 * 13, classes);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) =>
            fc.call(TorchSharp.torch.nn.functional.relu(conv.call(input)).flatten(1)).mul(temperature);
    }

    // One epoch on 24 images (own MLContext and data view, so threads share nothing but the rows).
    private static TransformerChain<FlatMinimaImageClassificationTransformer> Train(ImageClassifierArchitecture architecture, int seed,
        Action<FlatMinimaImageClassificationTrainer.Options>? change = null)
    {
        var ml = new MLContext(seed: 1);
        var options = TestData.FastOptions(epochs: 1, batchSize: 16, o => { o.Architecture = architecture; o.Seed = seed; change?.Invoke(o); });
        return ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options))
            .Fit(ml.Data.LoadFromEnumerable(Rows));
    }

    // The network's state dict (parameters and buffers) as exact float64 values.
    private static Dictionary<string, double[]> Weights(TransformerChain<FlatMinimaImageClassificationTransformer> model) =>
        model.LastTransformer.Model.Network.state_dict().ToDictionary(
            p => p.Key, p => { using var values = p.Value.detach().cpu().to(ScalarType.Float64); return values.data<double>().ToArray(); });

    private static void AssertIdentical(Dictionary<string, double[]> expected, Dictionary<string, double[]> actual, string message)
    {
        CollectionAssert.AreEqual(expected.Keys.ToArray(), actual.Keys.ToArray(), message);
        foreach (var (name, values) in expected)
            CollectionAssert.AreEqual(values, actual[name], $"{message}: {name}");
    }
}
