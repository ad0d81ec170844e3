using System;
using System.Collections.Generic;
using System.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// How <see cref="ClassifierTrainer"/> turns a batch into the gradient its optimizer applies: the plain gradient, a
/// sharpness-aware one (SAM, ASAM, SA-GD) or F2M's flat-region objective. A step only fills the parameters'
/// <c>.grad</c>; the loop clips, steps the optimizer, averages and evaluates.
/// </summary>
public interface IGradientStep : IDisposable
{
    /// <summary>
    /// Leaves the gradient for the optimizer in the parameters' <c>.grad</c> (the weights are unchanged afterwards) and
    /// returns the batch's training loss and the number of correct predictions of its clean pass, as tensors in the
    /// caller's dispose scope.
    /// </summary>
    /// <param name="inputs">The batch, on the model's device.</param>
    /// <param name="labels">Its 0-based class indices.</param>
    /// <param name="step">0-based index of the optimizer step this gradient is for.</param>
    GradientStepResult Compute(Tensor inputs, Tensor labels, long step);

    /// <summary>
    /// The gradient of one optimizer step made of several micro-batches (gradient accumulation,
    /// <see cref="ClassifierTrainingOptions.AccumulationSteps"/>): the gradient of the mean loss over all their rows, as if
    /// they were one batch (each micro-batch's loss weighted by its share of the rows). The reported loss is that mean;
    /// correct predictions are summed. By default a single micro-batch goes to
    /// <see cref="Compute(Tensor, Tensor, long)"/> and several are not supported; steps whose options say they
    /// accumulate (<see cref="GradientStepOptions.SupportsAccumulation"/>) implement this.
    /// </summary>
    /// <param name="microBatches">The micro-batches of the step, on the model's device, at least one.</param>
    /// <param name="step">0-based index of the optimizer step this gradient is for.</param>
    GradientStepResult Compute(IReadOnlyList<MicroBatch> microBatches, long step)
    {
        ArgumentNullException.ThrowIfNull(microBatches);
        if (microBatches.Count == 1) return Compute(microBatches[0].Inputs, microBatches[0].Labels, step);
        throw new NotSupportedException($"{GetType().Name} does not accumulate gradients over micro-batches; set AccumulationSteps = 1.");
    }

    /// <summary>Writes the step's own state (random generators, statistics) into a training checkpoint.</summary>
    void Save(BinaryWriter writer);

    /// <summary>Reads a state written by <see cref="Save"/> of a step with the same options.</summary>
    void Load(BinaryReader reader);
}

/// <summary>What a gradient step measured on its batch.</summary>
/// <param name="Loss">The training loss (scalar, detached).</param>
/// <param name="Correct">Correct predictions of the clean pass (int64 scalar).</param>
public readonly record struct GradientStepResult(Tensor Loss, Tensor Correct)
{
    /// <summary>Whether the step took a sharpness-aware (two-pass or more) gradient; counted in
    /// <see cref="EpochReport.SharpnessAwareSteps"/>.</summary>
    public bool SharpnessAware { get; init; }
}

/// <summary>What a gradient step is built from.</summary>
/// <param name="Model">The network being trained.</param>
/// <param name="Optimizer">The base optimizer (its parameters are the trainable ones).</param>
/// <param name="Loss">The training loss of logits and labels (cross-entropy with the run's label smoothing).</param>
/// <param name="Seed">The run's seed, for steps that draw random numbers.</param>
public sealed record GradientStepContext(nn.Module<Tensor, Tensor> Model, optim.Optimizer Optimizer, Func<Tensor, Tensor, Tensor> Loss, int Seed)
{
    /// <summary>The run's length in optimizer steps (for steps with schedules over the run); null when unknown.</summary>
    public Averaging.TrainingPlan? Plan { get; init; }
}

/// <summary>
/// Settings of a gradient step other than the plain one (<see cref="Optimization.SharpnessAwareOptions"/>,
/// <see cref="IncrementalFewShot.FlatRegionOptions"/>): validated with the rest of the training options, and the
/// factory of the step.
/// </summary>
public abstract record GradientStepOptions
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public abstract void Validate();

    /// <summary>Checks the settings against the rest of the run's options (e.g. batch size); by default nothing.</summary>
    public virtual void ValidateFor(ClassifierTrainingOptions training)
    {
    }

    /// <summary>The advice for the plain gradient.</summary>
    internal const string PlainDivergenceAdvice = ", or set GradientClipNorm.";

    /// <summary>
    /// Whether the step accumulates gradients over micro-batches (<see cref="ClassifierTrainingOptions.AccumulationSteps"/>
    /// &gt; 1): its <see cref="IGradientStep"/> implements <see cref="IGradientStep.Compute(IReadOnlyList{MicroBatch}, long)"/>.
    /// False by default.
    /// </summary>
    protected internal virtual bool SupportsAccumulation => false;

    /// <summary>What to lower when the loss diverges with this step (completes "Lower LearningRate…").</summary>
    protected internal virtual string DivergenceAdvice => PlainDivergenceAdvice;

    /// <summary>Creates the step for one training run.</summary>
    public abstract IGradientStep CreateStep(GradientStepContext context);
}

/// <summary>The plain gradient: one forward and backward pass of the batch.</summary>
public sealed class PlainGradientStep : IGradientStep
{
    private readonly GradientStepContext _context;

    /// <summary>Creates the step.</summary>
    public PlainGradientStep(GradientStepContext context) => _context = context ?? throw new ArgumentNullException(nameof(context));

    /// <inheritdoc />
    public GradientStepResult Compute(Tensor inputs, Tensor labels, long step)
    {
        _context.Optimizer.zero_grad();
        var logits = _context.Model.call(inputs);
        var loss = _context.Loss(logits, labels);
        loss.backward();
        return new(loss.detach(), logits.argmax(1).eq(labels).sum());
    }

    /// <inheritdoc />
    public GradientStepResult Compute(IReadOnlyList<MicroBatch> microBatches, long step)
    {
        ArgumentNullException.ThrowIfNull(microBatches);
        if (microBatches.Count == 1) return Compute(microBatches[0].Inputs, microBatches[0].Labels, step);
        _context.Optimizer.zero_grad();
        var correct = zeros(Array.Empty<long>(), ScalarType.Int64, microBatches[0].Inputs.device);
        var loss = MicroBatchPass.Run(_context, microBatches, correct);
        return new(loss, correct);
    }

    /// <inheritdoc />
    public void Save(BinaryWriter writer)
    {
    }

    /// <inheritdoc />
    public void Load(BinaryReader reader)
    {
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }
}
