using System;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>Settings of an F2M incremental few-shot session (<see cref="IncrementalSession"/>). Defaults are the reference's CIFAR configuration.</summary>
public sealed record IncrementalSessionOptions
{
    /// <summary>Passes over the session data; the whole session (new shots plus exemplars) is one batch. 0 = prototype-only (no fine-tuning).</summary>
    public int Epochs { get; init; } = 6;

    /// <summary>SGD learning rate.</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>SGD momentum.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Weight decay (L2 term).</summary>
    public double WeightDecay { get; init; } = 5e-4;

    /// <summary>Round each step to multiples of b/RoundingReduction (the reference's <c>rounding</c> with reduction factor 4;
    /// <see cref="Rounding"/> says what is rounded); null (default) leaves updates as they are.</summary>
    public int? RoundingReduction { get; init; }

    /// <summary>What is rounded when <see cref="RoundingReduction"/> is set: the whole update (default) or, as in the
    /// reference code, the scaled gradient before the optimizer step.</summary>
    public SessionRoundingMode Rounding { get; init; } = SessionRoundingMode.Update;

    /// <summary>The reference's step-count rule (its <c>max_steps</c>, 1 in its configurations): when every element of a
    /// range parameter's rounded value is 0, the value is rounded again as if n = 2, 3, … consecutive steps were taken at
    /// once, up to n = 1 + RoundingStepIncrease, until some element is non-zero. 0 (default) never raises the step count.
    /// Needs <see cref="RoundingReduction"/>.</summary>
    public int RoundingStepIncrease { get; init; }

    /// <summary>Re-estimate the prototypes of earlier sessions' classes (never the base classes') from their exemplars: in
    /// the session loss they are computed from the batch like the new classes' prototypes, and after the session from the
    /// exemplars under the fine-tuned network, as the reference code does. False (default) keeps every earlier prototype
    /// fixed; exemplar rows are then extra examples against their class's fixed prototype. Classes without exemplars in the
    /// session keep their prototype either way.</summary>
    public bool RefreshNovelPrototypes { get; init; }

    /// <summary>Prototype normalisation, the same in the session loss and in prediction (see docs/results-incremental.md on
    /// raw prototypes in the loss).</summary>
    public PrototypeNormalization Normalization { get; init; } = PrototypeNormalization.Prototypes;

    /// <summary>Prototype normalisation in the session loss only, when it should differ from <see cref="Normalization"/>
    /// (which scoring uses): the reference code's loss compares raw prototypes and embeddings
    /// (<see cref="PrototypeNormalization.None"/>) while its prediction L2-normalises the prototypes. Null (default) uses
    /// <see cref="Normalization"/> in the loss too. Raw distances of a ResNet-20 embedding are large: without rounding,
    /// lower the LearningRate.</summary>
    public PrototypeNormalization? LossNormalization { get; init; }

    /// <summary>ω in the logits <c>−ω·‖f − p‖²</c> (reference: 1).</summary>
    public double DistanceScale { get; init; } = 1.0;

    /// <summary>Clamp the range parameters into the flat region after every step (F2M). False only for ablations.</summary>
    public bool ClampToRegion { get; init; } = true;

    /// <summary>Train every parameter instead of the range parameters only — the naive fine-tuning baseline, which forgets. False for F2M.</summary>
    public bool TrainAllParameters { get; init; }

    /// <summary>Called after every step (after rounding and clamping) with the 1-based epoch and its loss.</summary>
    public Action<int, double>? AfterStep { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Epochs < 0) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Session Epochs must be ≥ 0 (0 = prototypes only).");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "Session LearningRate must be a finite number > 0.");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Session Momentum must be in [0, 1).");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "Session WeightDecay must be ≥ 0.");
        if (RoundingReduction is int r && r < 1) throw new ArgumentOutOfRangeException(nameof(RoundingReduction), r, "RoundingReduction must be ≥ 1, or null to disable rounding.");
        if (!Enum.IsDefined(Rounding)) throw new ArgumentOutOfRangeException(nameof(Rounding), Rounding, "Unknown session rounding mode.");
        if (Rounding != SessionRoundingMode.Update && RoundingReduction is null)
            throw new ArgumentOutOfRangeException(nameof(Rounding), Rounding, $"Rounding = {Rounding} needs RoundingReduction (without it no step is rounded).");
        if (RoundingStepIncrease < 0) throw new ArgumentOutOfRangeException(nameof(RoundingStepIncrease), RoundingStepIncrease, "RoundingStepIncrease must be ≥ 0.");
        if (RoundingStepIncrease > 0 && RoundingReduction is null)
            throw new ArgumentOutOfRangeException(nameof(RoundingStepIncrease), RoundingStepIncrease, "RoundingStepIncrease needs RoundingReduction (it only acts when a step rounds to zero).");
        if (!Enum.IsDefined(Normalization)) throw new ArgumentOutOfRangeException(nameof(Normalization), Normalization, "Unknown prototype normalisation.");
        if (LossNormalization is PrototypeNormalization loss && !Enum.IsDefined(loss))
            throw new ArgumentOutOfRangeException(nameof(LossNormalization), loss, "Unknown prototype normalisation for the session loss.");
        if (!(DistanceScale > 0) || double.IsInfinity(DistanceScale))
            throw new ArgumentOutOfRangeException(nameof(DistanceScale), DistanceScale, "DistanceScale must be a finite number > 0.");
    }
}
