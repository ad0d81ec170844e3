using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;
using static FlatMinima.Torch.Tests.TinyTraining;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// Gradient accumulation (<see cref="ClassifierTrainingOptions.AccumulationSteps"/>): without BatchNorm, n micro-batches
/// take the step of one batch of their rows, for plain SGD, SAM (ε from the whole accumulated gradient), an efficient
/// schedule and MESA.
/// </summary>
[TestClass]
public sealed class GradientAccumulationTests
{
    private static float[] Weights(nn.Module model) => model.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();

    // No BatchNorm: the loss of a batch is the mean of its rows' losses.
    private static nn.Module<Tensor, Tensor> Mlp()
    {
        manual_seed(13);
        return nn.Sequential(("flat", nn.Flatten()), ("fc1", nn.Linear(16, 8)), ("relu", nn.ReLU()), ("fc2", nn.Linear(8, 2)));
    }

    private static (float[] Weights, IReadOnlyList<EpochReport> Reports) Train(ClassifierTrainingOptions options)
    {
        var model = Mlp();
        var reports = new ClassifierTrainer(options, CPU).Train(model, Blobs(48, 4));
        return (Weights(model), reports);
    }

    public static IEnumerable<object?[]> Steps() => new[]
    {
        new object?[] { "SGD", null },
        new object?[] { "SAM", SharpnessAwareOptions.Sam(0.1) },
        new object?[] { "ASAM", SharpnessAwareOptions.Asam(0.5) },
        new object?[] { "LookSAM", SharpnessAwareOptions.LookSam(interval: 2, rho: 0.1) },
        new object?[] { "MESA", MesaOptions.Default() with { WarmupEpochs = 1, Decay = 0.5 } },
    };

    [TestMethod]
    [DynamicData(nameof(Steps))]
    public void MicroBatchesTakeTheStepOfOneBatchOfTheirRows(string name, GradientStepOptions? step)
    {
        var options = new ClassifierTrainingOptions { Epochs = 3, LearningRate = 0.1, TuneGlibcMalloc = false, GradientStep = step };
        // 48 rows: batches of 10 (4 × 10 + 8) against micro-batches of 5 in pairs (the last pair 5 + 3): the same rows per step.
        var (whole, wholeReports) = Train(options with { BatchSize = 10 });
        var (accumulated, reports) = Train(options with { BatchSize = 5, AccumulationSteps = 2 });
        Assert.AreEqual(5, reports[0].Steps, $"{name}: optimizer steps, not micro-batches");
        Assert.AreEqual(wholeReports[0].SharpnessAwareSteps, reports[0].SharpnessAwareSteps, name);
        for (int i = 0; i < whole.Length; i++) Assert.AreEqual(whole[i], accumulated[i], 2e-5f, $"{name}: weight {i}");
        Assert.IsFalse(whole.SequenceEqual(Train(options with { BatchSize = 5 }).Weights), $"{name}: without accumulation, batches of 5 train differently");
        for (int e = 0; e < reports.Count; e++)
        {
            Assert.AreEqual(wholeReports[e].TrainLoss, reports[e].TrainLoss, 2e-5, $"{name}: the reported loss is the mean over the step's rows (epoch {e + 1})");
            Assert.AreEqual(wholeReports[e].TrainAccuracy, reports[e].TrainAccuracy, 1e-9, $"{name}: accuracy (epoch {e + 1})");
        }
    }

    [TestMethod]
    public void SamComputesEpsilonOnceFromTheWholeAccumulatedGradient()
    {
        // Each micro-batch perturbed with its own ε (m-sharpness over the step's rows) trains differently from one ε for the step.
        var options = new ClassifierTrainingOptions { Epochs = 2, LearningRate = 0.1, TuneGlibcMalloc = false, BatchSize = 12 };
        var (oneEpsilon, _) = Train(options with { BatchSize = 6, AccumulationSteps = 2, GradientStep = SharpnessAwareOptions.Sam(0.1) });
        var (perShard, _) = Train(options with { GradientStep = SharpnessAwareOptions.Sam(0.1) with { ShardCount = 2 } });
        var (whole, _) = Train(options with { GradientStep = SharpnessAwareOptions.Sam(0.1) });
        for (int i = 0; i < whole.Length; i++) Assert.AreEqual(whole[i], oneEpsilon[i], 2e-5f, $"weight {i}");
        Assert.IsTrue(whole.Zip(perShard).Max(p => System.Math.Abs(p.First - p.Second)) > 1e-4, "m-sharpness perturbs each half separately");
    }

    [TestMethod]
    public void TheRowsOfAStepDoNotDependOnTheLoaderWorkers()
    {
        var data = Blobs(48, 4);
        var lazy = new LazyExampleSet(data.Labels, data.Inputs.shape.Skip(1).ToArray(), rows => data.Inputs.index_select(0, tensor(rows)), "blobs-48-4");
        float[] Run(IExampleSet set, int workers)
        {
            var model = Mlp();
            new ClassifierTrainer(new ClassifierTrainingOptions
            {
                Epochs = 2, BatchSize = 5, AccumulationSteps = 3, LoaderWorkers = workers, TuneGlibcMalloc = false, GradientStep = SharpnessAwareOptions.Sam(),
            }, CPU).Train(model, set);
            return Weights(model);
        }
        var inMemory = Run(data, 0);
        CollectionAssert.AreEqual(inMemory, Run(lazy, 0), "streamed on the training thread");
        CollectionAssert.AreEqual(inMemory, Run(lazy, 2), "streamed by two workers");
    }
}
