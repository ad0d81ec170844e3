using System;
using FlatMinima.Torch.Averaging;

namespace FlatMinima.Torch.Training;

/// <summary>What one epoch of training measured.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="TrainLoss">Mean clean-pass training loss over the epoch (with label smoothing if set).</param>
/// <param name="TrainAccuracy">Training accuracy of the clean passes (train mode).</param>
/// <param name="ValidationLoss">Mean validation cross-entropy in eval mode, if validation data was given.</param>
/// <param name="ValidationAccuracy">Validation accuracy, if validation data was given.</param>
/// <param name="LearningRate">The learning rate of the epoch's last step.</param>
/// <param name="Elapsed">Wall time of the epoch, validation included.</param>
public sealed record EpochReport(int Epoch, int Epochs, double TrainLoss, double TrainAccuracy, double? ValidationLoss,
    double? ValidationAccuracy, double LearningRate, TimeSpan Elapsed)
{
    /// <summary>On the last report of a run with weight averaging: what was averaged (SWAD's window, early stop, …).
    /// The validation metrics of that report are then the averaged model's.</summary>
    public AveragingReport? Averaging { get; init; }

    /// <summary>Optimizer steps taken in the epoch.</summary>
    public long Steps { get; init; }

    /// <summary>
    /// Steps of the epoch that took a sharpness-aware gradient (two forward-backward passes, more with SA-GD); the others
    /// took one. Equal to <see cref="Steps"/> for SAM and ASAM, a fraction with an efficient schedule
    /// (<c>SharpnessAwareOptions.Efficiency</c>), 0 for plain, MESA and F2M steps.
    /// </summary>
    public long SharpnessAwareSteps { get; init; }

    /// <summary>
    /// On the last report of a run that stopped early under <see cref="TrainingFailurePolicy.ReturnLastGoodEpoch"/>: why,
    /// and which epoch's weights the model holds. That report describes the interrupted epoch (its training loss and
    /// accuracy over the batches that ran, no validation metrics); the returned model's metrics are those of the report of
    /// <see cref="TrainingInterruption.ReturnedEpoch"/>.
    /// </summary>
    public TrainingInterruption? Interruption { get; init; }

    /// <summary>
    /// What the training steps computed in: <see cref="ComputePrecision.Float32"/> or <see cref="ComputePrecision.BFloat16"/>
    /// (<see cref="ClassifierTrainingOptions.Precision"/> resolved for the device).
    /// </summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Float32;

    /// <summary>
    /// Set when the steps ran in bfloat16 on hardware without native bfloat16 arithmetic (emulated, usually slower than
    /// float32): what was found and what to do (<see cref="MixedPrecision.PrecisionChoice.Warning"/>); null otherwise.
    /// </summary>
    public string? PrecisionWarning { get; init; }

    /// <summary>A one-line summary (with ", bfloat16" for bfloat16 steps, ", bfloat16 (emulated)" without native support).</summary>
    public override string ToString() =>
        $"epoch {Epoch}/{Epochs}: train loss {TrainLoss:F4} acc {TrainAccuracy:P2}" +
        (ValidationLoss is double vl ? $", validation loss {vl:F4} acc {ValidationAccuracy:P2}" : "") +
        $", lr {LearningRate:G4}, {Elapsed.TotalSeconds:F1} s" + (Precision == ComputePrecision.BFloat16 ? PrecisionWarning is null ? ", bfloat16" : ", bfloat16 (emulated)" : "") +
        (SharpnessAwareSteps > 0 && SharpnessAwareSteps < Steps ? $", sharpness-aware steps {SharpnessAwareSteps}/{Steps}" : "") + (Averaging is null ? "" : $"; {Averaging}") +
        (Interruption is null ? "" : $"; {Interruption}");
}

/// <summary>Training produced a non-finite loss.</summary>
public sealed class TrainingDivergedException : InvalidOperationException
{
    /// <summary>Creates the exception for the given epoch and batch (both 1-based); <paramref name="advice"/> completes
    /// "Lower LearningRate…" (the gradient step's advice).</summary>
    public TrainingDivergedException(int epoch, int batch, double loss, string advice)
        : base($"The training loss became {loss} at epoch {epoch}, batch {batch}; training stopped. Lower LearningRate{advice}")
    {
        Epoch = epoch;
        Batch = batch;
    }

    /// <summary>1-based epoch where the loss diverged.</summary>
    public int Epoch { get; }

    /// <summary>1-based batch (within the epoch) where the loss diverged.</summary>
    public int Batch { get; }
}
