using System;
using System.IO;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// A weight average maintained during training. The training loop calls <see cref="AfterStep"/> after every optimizer
/// step and <see cref="AfterEpoch"/> after every epoch; <see cref="Finish"/> writes the average into the model.
/// Averagers whose window depends on a validation loss (SWAD) also implement <see cref="IValidationDrivenAverager"/>.
/// </summary>
public interface IWeightAverager : IDisposable
{
    /// <summary>Whether the buffers (BatchNorm statistics) are averaged too, so they need no recompute.</summary>
    bool AveragesBuffers => false;

    /// <summary>The learning rate for 0-based <paramref name="step"/>, given the trainer's <paramref name="scheduled"/> rate
    /// (SWA's own rate; by default the scheduled one).</summary>
    double LearningRate(long step, double scheduled) => scheduled;

    /// <summary>After an optimizer step; <paramref name="completedSteps"/> counts steps so far (1-based).</summary>
    void AfterStep(long completedSteps);

    /// <summary>After the 1-based <paramref name="epoch"/>.</summary>
    void AfterEpoch(int epoch)
    {
    }

    /// <summary>Writes the averaged weights into the model (keeps the online weights if nothing was averaged) and reports what was averaged.</summary>
    AveragingReport Finish();

    /// <summary>Writes the averaging state (averages, counts, valley state).</summary>
    void Save(BinaryWriter writer);

    /// <summary>Reads a state written by <see cref="Save"/> of an averager with the same options and model shape.</summary>
    void Load(BinaryReader reader);
}

/// <summary>
/// An averager whose window is decided by the online model's validation loss (SWAD): the loop evaluates every
/// <see cref="EvaluationFrequency"/> steps and passes the loss to <see cref="AfterEvaluation"/>, stops when
/// <see cref="StopRequested"/>, and evaluates once more before <see cref="IWeightAverager.Finish"/> when
/// <see cref="HasOpenSegment"/>.
/// </summary>
public interface IValidationDrivenAverager : IWeightAverager
{
    /// <summary>Evaluate the online model every this many optimizer steps.</summary>
    int EvaluationFrequency { get; }

    /// <summary>The online model's validation loss after the last step.</summary>
    void AfterEvaluation(double validationLoss);

    /// <summary>Whether the method asks training to stop now (SWAD's dead valley).</summary>
    bool StopRequested { get; }

    /// <summary>Whether steps were taken since the last evaluation (SWAD's open segment): evaluate once more before finishing.</summary>
    bool HasOpenSegment { get; }
}

/// <summary>What an averager averaged.</summary>
/// <param name="Method">SWA, EMA or SWAD.</param>
/// <param name="StartStep">First averaged step (1-based), if any.</param>
/// <param name="EndStep">Last averaged step (1-based), if any.</param>
/// <param name="AveragedSteps">Number of weight samples in the average (0: the online weights were kept).</param>
/// <param name="Threshold">SWAD's loss threshold, once converged.</param>
/// <param name="EarlyStopped">SWAD stopped training because the valley died.</param>
/// <param name="Detail">Method-specific detail (segments, decay, …).</param>
public sealed record AveragingReport(string Method, long? StartStep, long? EndStep, long AveragedSteps, double? Threshold, bool EarlyStopped, string Detail)
{
    /// <summary>Number of BatchNorm batches used to recompute running statistics (0 if none).</summary>
    public int BatchNormBatches { get; init; }

    /// <summary>A one-line summary.</summary>
    public override string ToString() =>
        $"{Method}: " + (AveragedSteps == 0 ? "nothing averaged, online weights kept" : $"averaged {AveragedSteps} weight samples from step {StartStep} to {EndStep}") +
        (Threshold is double t ? $", loss threshold {t:F4}" : "") + (EarlyStopped ? ", stopped early (dead valley)" : "") +
        (Detail.Length > 0 ? $"; {Detail}" : "") + (BatchNormBatches > 0 ? $"; BatchNorm statistics recomputed over {BatchNormBatches} batches" : "");
}
