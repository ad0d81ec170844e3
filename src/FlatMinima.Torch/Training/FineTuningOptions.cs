using System;

namespace FlatMinima.Torch.Training;

/// <summary>Which parts of a network with a backbone (<see cref="Models.IFineTunableNetwork"/>) training updates.</summary>
public enum FineTuningMode
{
    /// <summary>Every parameter trains (the backbone at <see cref="FineTuningOptions.BackboneLearningRateFactor"/> × the rate).</summary>
    Full,

    /// <summary>The head and the last <see cref="FineTuningOptions.TrainableStages"/> backbone stages train; the earlier stages are frozen.</summary>
    LastStages,

    /// <summary>Only the head trains; the whole backbone is frozen (what ML.NET's own image classification trainer does).</summary>
    HeadOnly,
}

/// <summary>
/// How a network with a pretrained backbone (<see cref="Models.IFineTunableNetwork"/>) is fine-tuned: which stages
/// train, the backbone's learning-rate multiplier and whether its BatchNorm statistics are frozen. A frozen stage's
/// parameters get <c>requires_grad = false</c> during training (so no optimizer, sharpness-aware step or weight
/// averager touches them), its BatchNorm layers stay in eval mode (running statistics neither used from the batch nor
/// updated), and the BatchNorm recompute after weight averaging leaves them alone: a frozen stage ends bit-identical.
/// <see cref="ClassifierTrainer.Train"/> restores <c>requires_grad</c> when it returns.
/// </summary>
public sealed record FineTuningOptions
{
    /// <summary>Which parts train.</summary>
    public FineTuningMode Mode { get; init; } = FineTuningMode.Full;

    /// <summary>
    /// With <see cref="FineTuningMode.LastStages"/>: how many of the backbone's stages, counted from the output, train
    /// (1 to the network's stage count; for a ResNet the stem counts as the first stage, so 4 trains every residual stage
    /// and 5 is <see cref="FineTuningMode.Full"/>).
    /// </summary>
    public int TrainableStages { get; init; } = 1;

    /// <summary>
    /// The trainable backbone parameters' learning rate as a multiple of the head's (the schedule's rate): e.g. 0.1 moves
    /// the pretrained weights ten times slower than the new head. 1 (the default) uses one rate for all.
    /// </summary>
    public double BackboneLearningRateFactor { get; init; } = 1;

    /// <summary>
    /// Keep every BatchNorm layer of the backbone in eval mode (the pretrained running statistics are used and kept;
    /// the BatchNorm recompute after weight averaging skips them); the affine weights of trainable stages still train.
    /// Recommended for small batches. Frozen stages' BatchNorm layers are always in eval mode.
    /// </summary>
    public bool FreezeBatchNorm { get; init; }

    /// <summary>Every parameter trains; the backbone at <paramref name="backboneLearningRateFactor"/> × the rate.</summary>
    public static FineTuningOptions Full(double backboneLearningRateFactor = 1, bool freezeBatchNorm = false) =>
        new() { Mode = FineTuningMode.Full, BackboneLearningRateFactor = backboneLearningRateFactor, FreezeBatchNorm = freezeBatchNorm };

    /// <summary>The head and the last <paramref name="stages"/> backbone stages train.</summary>
    public static FineTuningOptions LastStages(int stages, double backboneLearningRateFactor = 1, bool freezeBatchNorm = false) =>
        new() { Mode = FineTuningMode.LastStages, TrainableStages = stages, BackboneLearningRateFactor = backboneLearningRateFactor, FreezeBatchNorm = freezeBatchNorm };

    /// <summary>Only the head trains (a linear probe on the frozen backbone's features).</summary>
    public static FineTuningOptions HeadOnly() => new() { Mode = FineTuningMode.HeadOnly };

    /// <summary>Whether these options change anything compared with plain training of every parameter.</summary>
    internal bool IsPlain => Mode == FineTuningMode.Full && BackboneLearningRateFactor == 1 && !FreezeBatchNorm;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Mode)) throw new ArgumentOutOfRangeException(nameof(Mode), Mode, "Unknown fine-tuning mode.");
        if (Mode == FineTuningMode.LastStages && TrainableStages < 1)
            throw new ArgumentOutOfRangeException(nameof(TrainableStages), TrainableStages, "TrainableStages must be ≥ 1 with FineTuningMode.LastStages.");
        if (!(BackboneLearningRateFactor > 0) || double.IsInfinity(BackboneLearningRateFactor))
            throw new ArgumentOutOfRangeException(nameof(BackboneLearningRateFactor), BackboneLearningRateFactor,
                "BackboneLearningRateFactor must be a finite number > 0 (use FineTuningMode.HeadOnly or LastStages to freeze parts).");
        if (Mode == FineTuningMode.HeadOnly && BackboneLearningRateFactor != 1)
            throw new ArgumentOutOfRangeException(nameof(BackboneLearningRateFactor), BackboneLearningRateFactor,
                "BackboneLearningRateFactor has no effect with FineTuningMode.HeadOnly (the backbone is frozen); leave it at 1.");
    }
}
