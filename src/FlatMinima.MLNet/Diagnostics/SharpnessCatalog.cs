using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Diagnostics;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.Diagnostics;

/// <summary>Sharpness diagnostics for trained FlatMinima image classifiers.</summary>
public static class SharpnessCatalog
{
    /// <summary>
    /// Measures how flat <paramref name="model"/> is on <paramref name="data"/> (which must carry the label column the
    /// model was trained with, as a key): loss, accuracy, top Hessian eigenvalues, trace ± SE, worst-case ℓ₂,
    /// ε-sharpness and adaptive sharpness, optionally per layer. <paramref name="model"/> is a
    /// <see cref="FlatMinimaImageClassificationTransformer"/> or a chain containing one; the chain's earlier steps
    /// (e.g. <c>MapValueToKey</c>) are applied to the data first. The measures run on a copy of the network (perturbed
    /// weights, BatchNorm mode, float64), so the model is never changed and can keep scoring on other threads meanwhile.
    /// </summary>
    public static SharpnessReport EvaluateSharpness(this MulticlassClassificationCatalog catalog, ITransformer model, IDataView data,
        FlatMinimaSharpnessOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = options ?? new FlatMinimaSharpnessOptions();
        o.Validate();
        var clock = Stopwatch.StartNew();
        using var session = DiagnosticsSession.Open(model, data, o.MaxExamples, o.BatchSize, o.TrainMode, o.Float64);
        var objective = session.Objective;
        objective.CachedGraphBatches = o.CachedGraphBatches;
        var (loss, accuracy) = ClassifierEvaluation.Evaluate(session.Network, session.Examples, o.BatchSize, session.Device);
        var eigen = new EigenOptions { Tolerance = o.EigenTolerance, KrylovDimension = o.KrylovDimension, MaxIterationsPerEigenvalue = o.MaxIterationsPerEigenvalue, Seed = o.Seed };
        var ascent = new AscentOptions { Steps = o.AscentSteps, RandomStarts = o.AscentRandomStarts, Seed = o.Seed };
        return new SharpnessReport
        {
            Examples = (int)session.Examples.Count,
            Parameters = objective.Dimension,
            Loss = objective.Loss(),
            Accuracy = accuracy,
            TopEigenvalues = o.TopEigenvalues == 0 ? null
                : o.UseLanczos ? HessianEigenvalues.Lanczos(objective, o.TopEigenvalues, eigen) : HessianEigenvalues.PowerIteration(objective, o.TopEigenvalues, eigen),
            Trace = o.TraceProbes == 0 ? null : HutchinsonTrace.Estimate(objective, o.TraceProbes, o.TraceDistribution, o.Seed),
            WorstCase = o.WorstCaseRho == 0 ? null : SharpnessMeasures.WorstCase(objective, o.WorstCaseRho, options: ascent),
            EpsilonSharpness = o.KeskarEpsilon == 0 ? null : SharpnessMeasures.EpsilonSharpness(objective, o.KeskarEpsilon, ascent),
            AdaptiveWorstCase = o.AdaptiveRho == 0 ? null : SharpnessMeasures.WorstCase(objective, o.AdaptiveRho, adaptive: true, options: ascent),
            AdaptiveAverageCase = o.AdaptiveRho == 0 ? null : SharpnessMeasures.AverageCase(objective, o.AdaptiveRho, adaptive: true, o.AverageCaseSamples, o.Seed),
            PerLayer = o.PerLayer ? LayerSharpness.PerModule(objective, session.Network.named_parameters().Select(p => (p.name, p.parameter)),
                eigen with { Order = EigenvalueOrder.LargestMagnitude }, o.PerLayerTraceProbes, o.Seed) : Array.Empty<LayerSharpnessValue>(),
            Options = o,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>
    /// A loss-landscape slice around the model's weights along filter-normalized random directions (Li et al., 2018):
    /// 1-D (<paramref name="dimensions"/> = 1, <paramref name="points"/> values) or 2-D (a points×points grid), over
    /// [−span, span]. Write it as a PNG with <c>FlatMinima.Plotting</c>. The slice is computed on a copy of the network,
    /// so the model is never changed and can keep scoring on other threads meanwhile.
    /// </summary>
    public static LandscapeGrid LossLandscape(this MulticlassClassificationCatalog catalog, ITransformer model, IDataView data,
        int dimensions = 1, double span = 1.0, int points = 21, int maxExamples = 1000, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        if (dimensions is not (1 or 2)) throw new ArgumentOutOfRangeException(nameof(dimensions), dimensions, "dimensions must be 1 or 2.");
        if (maxExamples < 1) throw new ArgumentOutOfRangeException(nameof(maxExamples), maxExamples, "maxExamples must be ≥ 1.");
        using var session = DiagnosticsSession.Open(model, data, maxExamples, 250, trainMode: false, float64: false);
        using var scope = NewDisposeScope();
        var first = FlatMinima.Torch.Diagnostics.LossLandscape.FilterNormalizedDirection(session.Objective, seed);
        if (dimensions == 1) return FlatMinima.Torch.Diagnostics.LossLandscape.Slice1D(session.Objective, first, span, points);
        var second = FlatMinima.Torch.Diagnostics.LossLandscape.FilterNormalizedDirection(session.Objective, seed + 1);
        return FlatMinima.Torch.Diagnostics.LossLandscape.Slice2D(session.Objective, first, second, span, points);
    }
}

/// <summary>
/// The examples of an IDataView as model-ready batches, and a loss objective over the parameters of a copy of the
/// model's network. Diagnostics perturb the copy's weights, switch its mode and dtype; the model itself is only read
/// while the copy is made, so it can keep scoring on other threads.
/// </summary>
internal sealed class DiagnosticsSession : IDisposable
{
    private readonly DisposeScope _scope;

    private DiagnosticsSession(nn.Module<Tensor, Tensor> network, Device device, TensorDataset examples, LossObjective objective, DisposeScope scope)
    {
        Network = network;
        Device = device;
        Examples = examples;
        Objective = objective;
        _scope = scope;
    }

    public TensorDataset Examples { get; }

    public LossObjective Objective { get; }

    /// <summary>The session's own copy of the model's network (float64 when asked for).</summary>
    public nn.Module<Tensor, Tensor> Network { get; }

    public Device Device { get; }

    public static DiagnosticsSession Open(ITransformer model, IDataView data, int maxExamples, int batchSize, bool trainMode, bool float64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var (transformer, view) = Locate(model, data)
            ?? throw new ArgumentException("The model contains no FlatMinimaImageClassificationTransformer to measure.", nameof(model));
        var label = view.Schema.GetColumnOrNull(transformer.LabelColumnName);
        if (label is not { Type: KeyDataViewType key } || key.Count != (ulong)transformer.Model.ClassCount)
            throw new ArgumentException(
                $"Sharpness is measured on the training loss, so the data needs the label column '{transformer.LabelColumnName}' as a key with " +
                $"{transformer.Model.ClassCount} classes (as at training; apply the same MapValueToKey).", nameof(data));
        var m = transformer.Model;
        var read = ImageDataReader.Read(view, transformer.Input, transformer.FeatureColumnName, transformer.LabelColumnName, m.Channels, m.Height, m.Width, maxExamples);
        nn.Module<Tensor, Tensor>? network = null;
        DisposeScope? scope = null;
        try
        {
            network = m.CopyNetwork();
            if (float64) network.to(ScalarType.Float64);
            scope = NewDisposeScope();
            var dtype = float64 ? ScalarType.Float64 : ScalarType.Float32;
            var x = m.Normalize(read.Images).to(dtype).to(m.Device);
            var y = tensor(read.Labels).to(m.Device);
            var batches = new List<(Tensor, Tensor)>();
            for (long start = 0; start < y.shape[0]; start += batchSize)
            {
                long n = Math.Min(batchSize, y.shape[0] - start);
                batches.Add((x.narrow(0, start, n), y.narrow(0, start, n)));
            }
            var objective = LossObjective.ForModel(network, (logits, target) => nn.functional.cross_entropy(logits, target), batches, trainMode);
            return new DiagnosticsSession(network, m.Device, new TensorDataset(x, y), objective, scope);
        }
        catch
        {
            scope?.Dispose();
            network?.Dispose();
            throw;
        }
        finally
        {
            read.Images.Dispose();
        }
    }

    public void Dispose()
    {
        Objective.Dispose();
        Network.Dispose();
        _scope.Dispose();
    }

    private static (FlatMinimaImageClassificationTransformer, IDataView)? Locate(ITransformer model, IDataView data)
    {
        if (model is FlatMinimaImageClassificationTransformer ours) return (ours, data);
        if (model is IEnumerable<ITransformer> chain)
            foreach (var step in chain)
            {
                if (Locate(step, data) is { } found) return found;
                data = step.Transform(data);
            }
        return null;
    }
}
