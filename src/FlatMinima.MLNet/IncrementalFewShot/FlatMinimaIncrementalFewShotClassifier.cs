using System;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.IncrementalFewShot;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.IncrementalFewShot;

/// <summary>
/// An F2M incremental few-shot classifier: the backbone network (trained on the base session, its range parameters
/// fine-tuned inside the flat region by later sessions), one prototype per class seen so far, the flat region (θ_base and
/// the bound b) and the exemplars kept for later sessions. Classifies by the nearest prototype; the probabilities are a
/// softmax over <c>−ω·‖f(x) − p_k‖²</c>. This is the <c>Model</c> of <see cref="FlatMinimaIncrementalFewShotTransformer"/>;
/// the state and the sessions are those of a TorchSharp <see cref="IncrementalLearner"/> that takes raw images.
/// </summary>
public sealed class FlatMinimaIncrementalFewShotClassifier : IDisposable
{
    private FlatMinimaIncrementalFewShotClassifier(FlatMinimaImageClassifier backbone, IncrementalLearner learner)
    {
        if (!ReferenceEquals(backbone.Network, learner.Network))
            throw new ArgumentException("The backbone must wrap the learner's network.", nameof(learner));
        Backbone = backbone;
        Learner = learner;
    }

    /// <summary>The network with its input geometry and normalization. Its softmax head covers the base classes only
    /// and is not used for prediction; the embedding (the head's input) is.</summary>
    public FlatMinimaImageClassifier Backbone { get; }

    /// <summary>θ_base of the range parameters and the bound b; sessions keep the range parameters within ±b/2 of θ_base.</summary>
    public FlatRegionBounds FlatRegion => Learner.FlatRegion;

    /// <summary>The class prototypes <c>[K, D]</c> on the model's device, in class (score-slot) order. Read-only: do not modify.</summary>
    public Tensor Prototypes => Learner.Prototypes;

    /// <summary>Number of classes seen so far (K).</summary>
    public int ClassCount => Learner.ClassCount;

    /// <summary>Number of classes of the base session.</summary>
    public int BaseClassCount => Learner.BaseClassCount;

    /// <summary>Number of incremental sessions applied after the base session.</summary>
    public int SessionCount => Learner.SessionCount;

    /// <summary>Prototype normalisation used in sessions and prediction.</summary>
    public PrototypeNormalization Normalization => Learner.Normalization;

    /// <summary>ω in the logits <c>−ω·‖f − p‖²</c>.</summary>
    public double DistanceScale => Learner.DistanceScale;

    /// <summary>Number of stored exemplars (rows of earlier few-shot classes replayed in later sessions).</summary>
    public long ExemplarCount => Learner.Exemplars.Count;

    /// <summary>The learner holding the state (its inputs are raw images, standardized with the backbone's normalization).
    /// Sessions run on a clone of it, so this one is never changed.</summary>
    internal IncrementalLearner Learner { get; }

    /// <summary>Softmax probabilities <c>[N, K]</c> (CPU) for a raw batch <c>[N, C, H, W]</c>.</summary>
    public Tensor PredictProbabilities(Tensor rawBatch)
    {
        using var scope = NewDisposeScope();
        return Learner.PredictProbabilities(rawBatch).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Releases the network, prototypes, flat region and exemplars.</summary>
    public void Dispose() => Learner.Dispose();

    /// <summary>The classifier after the base session: a learner over <paramref name="backbone"/>'s network (which it
    /// owns from then on), with prototypes of the raw base images <paramref name="images"/> labelled <paramref name="labels"/>.</summary>
    internal static FlatMinimaIncrementalFewShotClassifier FromBaseSession(FlatMinimaImageClassifier backbone, Tensor images, Tensor labels,
        FlatRegionOptions flatRegion, PrototypeNormalization normalization, double distanceScale, int batchSize) =>
        new(backbone, IncrementalLearner.FromBaseSession(backbone.Network, NetworkFactory(backbone), images, labels, flatRegion, normalization,
            distanceScale, backbone.Standardization, batchSize));

    /// <summary>The classifier of a loaded model, taking ownership of the parts.</summary>
    internal static FlatMinimaIncrementalFewShotClassifier FromParts(FlatMinimaImageClassifier backbone, FlatRegionBounds region, Tensor prototypes,
        ExemplarMemory exemplars, int baseClassCount, int sessionCount, PrototypeNormalization normalization, double distanceScale) =>
        new(backbone, new IncrementalLearner(backbone.Network, NetworkFactory(backbone), region, prototypes, exemplars, baseClassCount,
            sessionCount, normalization, distanceScale, backbone.Standardization));

    /// <summary>A classifier with this one's backbone description (architecture, geometry, normalization, augmentation) over
    /// <paramref name="learner"/>, a session's result on a clone of <see cref="Learner"/>; it owns the learner.</summary>
    internal FlatMinimaIncrementalFewShotClassifier WithLearner(IncrementalLearner learner) =>
        new(new FlatMinimaImageClassifier(learner.Network, Backbone.Architecture, Backbone.Channels, Backbone.Height, Backbone.Width,
            Backbone.ClassCount, Backbone.Mean.ToArray(), Backbone.Std.ToArray(), Backbone.Device, Backbone.Augmentation), learner);

    private static Func<nn.Module<Tensor, Tensor>> NetworkFactory(FlatMinimaImageClassifier backbone)
    {
        var (architecture, channels, classes, height, width) = (backbone.Architecture, backbone.Channels, backbone.ClassCount, backbone.Height, backbone.Width);
        return () => FlatMinimaModelRegistry.CreateNetwork(architecture, channels, classes, height, width);
    }

}
