using System;
using System.Threading;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;

namespace FlatMinima.Torch.Training;

/// <summary>The base optimizer.</summary>
public enum BaseOptimizerKind
{
    /// <summary>SGD with (optionally Nesterov) momentum; weight decay as an L2 gradient term.</summary>
    Sgd,

    /// <summary>AdamW (decoupled weight decay).</summary>
    AdamW,
}

/// <summary>Settings of <see cref="ClassifierTrainer"/>: base optimization, the gradient step and optional weight averaging.</summary>
public sealed record ClassifierTrainingOptions
{
    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Examples per forward pass (per optimizer step without gradient accumulation; per micro-batch with it).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>
    /// Gradient accumulation: each optimizer step accumulates the gradient over this many consecutive batches
    /// (micro-batches of <see cref="BatchSize"/> rows), so the effective batch is <see cref="BatchSize"/> × n while
    /// memory for activations stays that of one micro-batch; the learning-rate schedule, averaging and checkpoints count
    /// optimizer steps. The gradient is that of the mean loss over all rows of the step. A sharpness-aware step
    /// accumulates the clean gradient over the micro-batches, computes ε once from the whole accumulated gradient, then
    /// accumulates the perturbed gradient over the same micro-batches. BatchNorm layers still normalize with each
    /// micro-batch's own statistics, so a network with BatchNorm does not train exactly as with one batch of
    /// BatchSize × n. Must be ≥ 1; 1 (the default) is no accumulation. Not supported by F2M's flat-region step or
    /// with m-sharpness.
    /// </summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>Base learning rate (peak rate after warm-up).</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>Weight decay (L2 term for SGD, decoupled for AdamW), applied at w.</summary>
    public double WeightDecay { get; init; } = 5e-4;

    /// <summary>The base optimizer.</summary>
    public BaseOptimizerKind Optimizer { get; init; } = BaseOptimizerKind.Sgd;

    /// <summary>SGD momentum.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Use Nesterov momentum with SGD.</summary>
    public bool Nesterov { get; init; }

    /// <summary>AdamW β₁.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW β₂.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>The learning-rate schedule.</summary>
    public LearningRateSchedule Schedule { get; init; } = new();

    /// <summary>Label smoothing of the cross-entropy loss, in [0, 1).</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>Clip the (sharpness-aware) gradient to this global 2-norm before each step; null disables.</summary>
    public double? GradientClipNorm { get; init; }

    /// <summary>
    /// How each batch's gradient is computed: <c>SharpnessAwareOptions.Sam(…)</c> / <c>.Asam(…)</c> / <c>.SaGd(…)</c>,
    /// F2M's <c>FlatRegionOptions</c>, or null for the plain gradient (<see cref="PlainGradientStep"/>).
    /// </summary>
    public GradientStepOptions? GradientStep { get; init; }

    /// <summary>Weight averaging (SWA, EMA or SWAD); null trains without. Combines with every gradient step.</summary>
    public WeightAveragingOptions? Averaging { get; init; }

    /// <summary>
    /// Data augmentation of each training batch (<c>AugmentationOptions.Standard()</c>, <c>.Strong()</c>, or your own
    /// record); null (the default, <see cref="AugmentationOptions.None"/>) trains on the data as given. Applied after the
    /// batch is assembled and moved to the device, before the gradient step; never to validation data, BatchNorm
    /// recomputation or evaluation. Its random draws come from a generator of its own seeded with
    /// <see cref="Seed"/> + <see cref="ClassifierTrainer.AugmentationSeedOffset"/>, saved in checkpoints.
    /// </summary>
    public AugmentationOptions? Augmentation { get; init; }

    /// <summary>
    /// Background threads that prepare batches of sets not held in memory (<see cref="LazyExampleSet"/>: reading and
    /// decoding) ahead of the step; 0 prepares them on the training thread. The batches do not depend on this number
    /// (bit-identical weights on the CPU whatever it is). Default (<see cref="DefaultLoaderWorkers"/>): 0 on machines
    /// with at most 2 processors, where the step already keeps every core busy and a loader thread slows it more than
    /// decoding on the training thread does (measured, see the streaming benchmark); otherwise a quarter of the processors,
    /// 1 to 4. In-memory sets are always sliced on the training thread.
    /// </summary>
    public int LoaderWorkers { get; init; } = DefaultLoaderWorkers;

    /// <summary>The default <see cref="LoaderWorkers"/>: 0 with at most 2 processors, else a quarter of them, 1 to 4.</summary>
    public static int DefaultLoaderWorkers => Environment.ProcessorCount <= 2 ? 0 : Math.Clamp(Environment.ProcessorCount / 4, 1, 4);

    /// <summary>
    /// How many batches of a set not held in memory may be loaded or waiting ahead of the step (PyTorch's
    /// <c>prefetch_factor</c> × workers): memory for inputs is bounded by <see cref="BatchSize"/> × this number.
    /// </summary>
    public int PrefetchBatches { get; init; } = 4;

    /// <summary>
    /// How a network with a pretrained backbone (<see cref="Models.IFineTunableNetwork"/>) is fine-tuned:
    /// <c>FineTuningOptions.HeadOnly()</c>, <c>.LastStages(n)</c> or <c>.Full(backboneLearningRateFactor)</c>, each with an
    /// optional BatchNorm freeze. Null (the default) trains every parameter at one rate, as does <c>Full()</c>.
    /// Frozen parts stay bit-identical under every gradient step and weight averaging.
    /// </summary>
    public FineTuningOptions? FineTuning { get; init; }

    /// <summary>Seed of the weight initialization and the shuffling.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>
    /// Tune glibc's allocator for tensor workloads before training (<see cref="Native.GlibcMalloc"/>; process-wide,
    /// Linux only). Measured 15–20 % faster steps on small models.
    /// </summary>
    public bool TuneGlibcMalloc { get; init; } = true;

    /// <summary>
    /// The number format of the training step's convolutions and linear layers: <see cref="ComputePrecision.Float32"/>
    /// (the default, bit-identical to earlier versions), <see cref="ComputePrecision.BFloat16"/> (mixed precision: bfloat16
    /// compute, float32 weights, optimizer state, BatchNorm and loss; see <see cref="MixedPrecision.BFloat16Autocast"/>)
    /// or <see cref="ComputePrecision.Auto"/> (bfloat16 only where the hardware computes it natively). Validation,
    /// BatchNorm recomputation and the saved model stay float32. It changes the trained weights, so a checkpoint resumes
    /// only with the same resolved precision.
    /// </summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Float32;

    /// <summary>Called after each epoch.</summary>
    public Action<EpochReport>? Progress { get; init; }

    /// <summary>Stops training at the next batch with <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>
    /// When set, the whole training state is written to this file after every epoch except the last: weights and
    /// buffers, optimizer (and SAM) state, averaging state, completed epochs and steps, the sampler's and the augmentation's random states, and
    /// the run's fingerprint (every setting that changes the result, the model's architecture, a SHA-256 of the data).
    /// Each write goes to a unique temporary file in the same folder, is flushed to disk and renamed over the file; the
    /// contents carry a SHA-256 checksum verified before a resume applies anything. Pass the file to
    /// <see cref="ClassifierTrainer.Train"/>'s <c>resumeFrom</c> to continue an interrupted run (the ML.NET trainers
    /// resume from it automatically).
    /// </summary>
    public string? CheckpointPath { get; init; }

    /// <summary>
    /// What happens when the loss diverges or <see cref="CancellationToken"/> is cancelled: <see cref="TrainingFailurePolicy.Throw"/>
    /// (the default) throws; <see cref="TrainingFailurePolicy.ReturnLastGoodEpoch"/> restores the weights of the last
    /// completed epoch and returns normally, with <see cref="EpochReport.Interruption"/> on the last report. Other
    /// exceptions always propagate.
    /// </summary>
    public TrainingFailurePolicy OnFailure { get; init; } = TrainingFailurePolicy.Throw;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Epochs must be ≥ 1.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be ≥ 1.");
        if (AccumulationSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(AccumulationSteps), AccumulationSteps, "AccumulationSteps must be ≥ 1 (1 is no gradient accumulation).");
        if (AccumulationSteps > 1 && GradientStep is { SupportsAccumulation: false })
            throw new ArgumentException($"AccumulationSteps is {AccumulationSteps}, but the gradient step {GradientStep.GetType().Name} does not accumulate gradients " +
                "over micro-batches; set AccumulationSteps = 1.", nameof(AccumulationSteps));
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be a finite number > 0.");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be ≥ 0.");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Momentum must be in [0, 1).");
        if (Nesterov && Momentum == 0) throw new ArgumentOutOfRangeException(nameof(Nesterov), "Nesterov momentum needs Momentum > 0.");
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "Beta1 must be in [0, 1).");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "Beta2 must be in [0, 1).");
        if (!(LabelSmoothing >= 0 && LabelSmoothing < 1))
            throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), LabelSmoothing, "LabelSmoothing must be in [0, 1).");
        if (GradientClipNorm is double c && !(c > 0))
            throw new ArgumentOutOfRangeException(nameof(GradientClipNorm), c, "GradientClipNorm must be > 0, or null to disable clipping.");
        if (LoaderWorkers is < 0 or > 64) throw new ArgumentOutOfRangeException(nameof(LoaderWorkers), LoaderWorkers, "LoaderWorkers must be in [0, 64] (0 loads on the training thread).");
        if (PrefetchBatches is < 1 or > 1024) throw new ArgumentOutOfRangeException(nameof(PrefetchBatches), PrefetchBatches, "PrefetchBatches must be in [1, 1024].");
        MixedPrecision.PrecisionChoice.Check(Precision);
        if (!Enum.IsDefined(OnFailure)) throw new ArgumentOutOfRangeException(nameof(OnFailure), OnFailure, "Unknown failure policy.");
        if (CheckpointPath is not null && string.IsNullOrWhiteSpace(CheckpointPath))
            throw new ArgumentException("CheckpointPath must be a file path, or null for no checkpoints.", nameof(CheckpointPath));
        ArgumentNullException.ThrowIfNull(Schedule, nameof(Schedule));
        Schedule.Validate();
        GradientStep?.Validate();
        GradientStep?.ValidateFor(this);
        Averaging?.Validate();
        Augmentation?.Validate();
        NestedOption.Validate(nameof(FineTuning), FineTuning is null ? null : FineTuning.Validate);
    }
}

