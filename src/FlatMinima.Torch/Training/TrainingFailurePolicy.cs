using System;

namespace FlatMinima.Torch.Training;

/// <summary>What <see cref="ClassifierTrainer"/> does when the loss diverges or training is cancelled.</summary>
public enum TrainingFailurePolicy
{
    /// <summary>Throw: <see cref="TrainingDivergedException"/> or <see cref="OperationCanceledException"/>; the model's
    /// weights are those of the failed step.</summary>
    Throw,

    /// <summary>
    /// Restore the weights and buffers the model had at the end of the last completed epoch and return normally; the
    /// last <see cref="EpochReport"/> carries <see cref="EpochReport.Interruption"/>. With no completed epoch (a failure in
    /// the first epoch of a fresh run) the exception is thrown as with <see cref="Throw"/>.
    /// </summary>
    ReturnLastGoodEpoch,
}

/// <summary>Why a run with <see cref="TrainingFailurePolicy.ReturnLastGoodEpoch"/> stopped early, and which epoch's weights it returned.</summary>
/// <param name="Reason">Divergence or cancellation.</param>
/// <param name="Epoch">The 1-based epoch that did not complete.</param>
/// <param name="Batch">The 1-based batch of that epoch where training stopped.</param>
/// <param name="ReturnedEpoch">The 1-based epoch whose end-of-epoch weights the model holds now.</param>
/// <param name="Message">The message of the exception that stopped training.</param>
public sealed record TrainingInterruption(TrainingInterruptionReason Reason, int Epoch, int Batch, int ReturnedEpoch, string Message)
{
    /// <summary>A one-line summary.</summary>
    public override string ToString() =>
        $"{(Reason == TrainingInterruptionReason.Diverged ? "diverged" : "cancelled")} at epoch {Epoch}, batch {Batch}; returned the weights of epoch {ReturnedEpoch} (OnFailure = ReturnLastGoodEpoch): {Message}";
}

/// <summary>What stopped a run early.</summary>
public enum TrainingInterruptionReason
{
    /// <summary>The loss became non-finite (<see cref="TrainingDivergedException"/>).</summary>
    Diverged,

    /// <summary>The cancellation token was cancelled (<see cref="OperationCanceledException"/>).</summary>
    Cancelled,
}
