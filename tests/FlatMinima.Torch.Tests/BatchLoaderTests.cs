using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;
using static FlatMinima.Torch.Tests.TinyTraining;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// Sets not held in memory (<see cref="LazyExampleSet"/>) are loaded ahead of the step on background threads: the same
/// weights as the in-memory set whatever the number of threads, a bounded number of batches ahead, errors at their batch,
/// and no thread left running when the enumeration stops.
/// </summary>
[TestClass]
public sealed class BatchLoaderTests
{
    private static float[] State(nn.Module model) =>
        model.state_dict().Values.Where(t => t.is_floating_point()).SelectMany(t => t.detach().data<float>().ToArray()).ToArray();

    // The inputs of data as a lazy set whose loader slices them (with a copy, as a decoder would produce them).
    private static LazyExampleSet Lazy(TensorDataset data, Func<long[], Tensor>? load = null) =>
        new(data.Labels, data.ExampleShape, load ?? (rows => { using var index = tensor(rows); return data.Inputs.index_select(0, index).clone(); }), "test")
        {
            Domains = data.Domains,
        };

    [TestMethod]
    public void ALazySetTrainsBitIdenticallyToTheTensorsWhateverTheNumberOfLoaderThreads()
    {
        var data = Blobs(90, 1, domains: true);
        var validation = Blobs(20, 2);
        var options = new ClassifierTrainingOptions
        {
            Epochs = 3, BatchSize = 8, TuneGlibcMalloc = false, Seed = 4,
            GradientStep = SharpnessAwareOptions.Sam(),
            Averaging = WeightAveragingOptions.Swad(evaluationFrequency: 3, toleranceRatio: 0.5),
            Augmentation = AugmentationOptions.Standard(),
        };
        float[] Run(IExampleSet train, IExampleSet valid, int workers, int prefetch)
        {
            var net = Net();
            new ClassifierTrainer(options with { LoaderWorkers = workers, PrefetchBatches = prefetch }, CPU).Train(net, train, valid);
            return State(net);
        }
        var reference = Run(data, validation, 2, 4);
        foreach (var (workers, prefetch) in new[] { (0, 1), (1, 1), (1, 4), (4, 2), (4, 16) })
            CollectionAssert.AreEqual(reference, Run(Lazy(data), Lazy(validation), workers, prefetch), $"{workers} loader threads, {prefetch} batches ahead");
    }

    [TestMethod]
    public void AtMostPrefetchBatchesAreLoadedAheadAndStoppingEarlyStopsTheThreads()
    {
        var data = Blobs(64, 1);
        int loaded = 0, running = 0;
        var lazy = Lazy(data, rows =>
        {
            Interlocked.Increment(ref running);
            Thread.Sleep(2);
            Interlocked.Increment(ref loaded);
            Interlocked.Decrement(ref running);
            using var index = tensor(rows);
            return data.Inputs.index_select(0, index);
        });
        var batches = Enumerable.Range(0, 16).Select(b => arange(b * 4, b * 4 + 4, dtype: ScalarType.Int64)).ToList();
        int consumed = 0, mostAhead = 0;
        foreach (var (rows, inputs) in BatchLoader.Load(lazy, batches, workers: 3, prefetch: 5))
        {
            using (inputs)
            {
                CollectionAssert.AreEqual(data.Inputs.index_select(0, rows).data<float>().ToArray(), inputs.data<float>().ToArray(), "batches come in order");
                consumed++;
                Thread.Sleep(5);
                mostAhead = Math.Max(mostAhead, Volatile.Read(ref loaded) - consumed);
                if (consumed == 6) break;
            }
        }
        Assert.IsTrue(mostAhead <= 5 - 1, $"at most prefetch − 1 batches beyond the one being used were loaded ahead: {mostAhead}");
        Assert.IsTrue(mostAhead >= 1, "loading overlaps with the consumer");
        int afterStop = Volatile.Read(ref loaded);
        Thread.Sleep(50);
        Assert.AreEqual(afterStop, Volatile.Read(ref loaded), "no loader runs after the enumeration stopped");
        Assert.AreEqual(0, Volatile.Read(ref running));
        Assert.IsTrue(afterStop <= 6 + 5, $"{afterStop} batches loaded for 6 used");
    }

    [TestMethod]
    public void ALoaderErrorSurfacesAtItsBatchWithItsOwnException()
    {
        var data = Blobs(40, 1);
        var lazy = Lazy(data, rows => rows.Contains(13) ? throw new InvalidOperationException("row 13 is damaged") : data.Inputs.index_select(0, tensor(rows)));
        var batches = Enumerable.Range(0, 10).Select(b => arange(b * 4, b * 4 + 4, dtype: ScalarType.Int64)).ToList();
        int before = 0;
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
        {
            foreach (var (_, inputs) in BatchLoader.Load(lazy, batches, workers: 2, prefetch: 4))
                using (inputs) before++;
        });
        Assert.AreEqual("row 13 is damaged", e.Message);
        Assert.AreEqual(3, before, "batches 0–2 were used; batch 3 holds row 13");

        var wrongShape = Lazy(data, rows => zeros(rows.Length, 2, 4, 4));
        var shape = Assert.ThrowsExactly<InvalidOperationException>(() =>
            new ClassifierTrainer(new ClassifierTrainingOptions { Epochs = 1, BatchSize = 8, TuneGlibcMalloc = false }, CPU).Train(Net(), wrongShape));
        StringAssert.Contains(shape.Message, "expected [8, 1, 4, 4]");
    }

    [TestMethod]
    public void LoaderSettingsAreValidatedAndNotPartOfTheRunFingerprint()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { LoaderWorkers = -1 }.Validate());
        Assert.AreEqual("LoaderWorkers", e.ParamName);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { PrefetchBatches = 0 }.Validate());
        Assert.AreEqual("PrefetchBatches", e.ParamName);
        CollectionAssert.IsSubsetOf(new[] { "LoaderWorkers", "PrefetchBatches" }, RunFingerprint.NotInFingerprint.ToArray(),
            "a run resumed with another number of loader threads continues bit-identically");
    }
}
