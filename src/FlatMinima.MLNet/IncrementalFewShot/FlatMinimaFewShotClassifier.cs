using System;
using System.Collections.Generic;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.IncrementalFewShot;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.IncrementalFewShot;

/// <summary>
/// An F2M incremental few-shot classifier: the backbone network (trained on the base session, its range parameters
/// fine-tuned inside the flat region by later sessions), one prototype per class seen so far, the flat region (θ_base and
/// the bound b) and the exemplars kept for later sessions. Classifies by the nearest prototype; the probabilities are a
/// softmax over <c>−ω·‖f(x) − p_k‖²</c>. This is the <c>Model</c> of <see cref="FlatMinimaIncrementalFewShotTransformer"/>.
/// </summary>
public sealed class FlatMinimaFewShotClassifier : IDisposable
{
    internal FlatMinimaFewShotClassifier(FlatMinimaImageClassifier backbone, FlatRegionBounds region, Tensor prototypes, int baseClassCount,
        int sessionCount, PrototypeNormalization normalization, double distanceScale, Tensor exemplarImages, Tensor exemplarLabels)
    {
        Backbone = backbone;
        FlatRegion = region;
        Prototypes = prototypes;
        BaseClassCount = baseClassCount;
        SessionCount = sessionCount;
        Normalization = normalization;
        DistanceScale = distanceScale;
        ExemplarImages = exemplarImages;
        ExemplarLabels = exemplarLabels;
    }

    /// <summary>The network with its input geometry and normalization. Its softmax head covers the base classes only
    /// and is not used for prediction; the embedding (the head's input) is.</summary>
    public FlatMinimaImageClassifier Backbone { get; }

    /// <summary>θ_base of the range parameters and the bound b; sessions keep the range parameters within ±b/2 of θ_base.</summary>
    public FlatRegionBounds FlatRegion { get; }

    /// <summary>The class prototypes <c>[K, D]</c> on the model's device, in class (score-slot) order. Read-only: do not modify.</summary>
    public Tensor Prototypes { get; }

    /// <summary>Number of classes seen so far (K).</summary>
    public int ClassCount => (int)Prototypes.shape[0];

    /// <summary>Number of classes of the base session.</summary>
    public int BaseClassCount { get; }

    /// <summary>Number of incremental sessions applied after the base session.</summary>
    public int SessionCount { get; }

    /// <summary>Prototype normalisation used in sessions and prediction.</summary>
    public PrototypeNormalization Normalization { get; }

    /// <summary>ω in the logits <c>−ω·‖f − p‖²</c>.</summary>
    public double DistanceScale { get; }

    /// <summary>Number of stored exemplars (rows of earlier few-shot classes replayed in later sessions).</summary>
    public long ExemplarCount => ExemplarLabels.shape[0];

    /// <summary>Exemplar images, raw (not normalized) <c>[E, C, H, W]</c> on the CPU.</summary>
    internal Tensor ExemplarImages { get; }

    /// <summary>Exemplar class indices <c>[E]</c> (int64, CPU).</summary>
    internal Tensor ExemplarLabels { get; }

    /// <summary>Softmax probabilities <c>[N, K]</c> (CPU) for a raw batch <c>[N, C, H, W]</c>.</summary>
    public Tensor PredictProbabilities(Tensor rawBatch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var embed = Torch.IncrementalFewShot.Prototypes.AsEmbedding(Backbone.Network);
        var features = embed.Embed(Backbone.Normalize(rawBatch.to(Backbone.Device)));
        var logits = Torch.IncrementalFewShot.Prototypes.Logits(features, Prototypes, Normalization, DistanceScale);
        return nn.functional.softmax(logits, 1).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Releases the network, prototypes, flat region and exemplars.</summary>
    public void Dispose()
    {
        Backbone.Dispose();
        FlatRegion.Dispose();
        foreach (var t in new[] { Prototypes, ExemplarImages, ExemplarLabels }) t.Dispose();
    }
}
