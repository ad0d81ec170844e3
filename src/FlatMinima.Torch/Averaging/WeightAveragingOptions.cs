using System;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Averaging;

/// <summary>How the learning rate moves towards <see cref="SwaOptions.LearningRate"/> (like <c>SWALR</c>'s <c>anneal_strategy</c>).</summary>
public enum AnnealStrategy
{
    /// <summary>Cosine annealing.</summary>
    Cosine,

    /// <summary>Linear annealing.</summary>
    Linear,
}

/// <summary>The length of a training run, which averaging schedules in epochs are resolved against.</summary>
/// <param name="StepsPerEpoch">Optimizer steps per epoch.</param>
/// <param name="Epochs">Total epochs.</param>
public sealed record TrainingPlan(int StepsPerEpoch, int Epochs)
{
    /// <summary>Total optimizer steps.</summary>
    public long TotalSteps => (long)StepsPerEpoch * Epochs;
}

/// <summary>
/// Weight averaging during training: <see cref="Swa"/>, <see cref="Ema"/> or <see cref="Swad"/>. After training the
/// model holds the averaged weights and, if it has BatchNorm layers, running statistics recomputed for them.
/// </summary>
public abstract record WeightAveragingOptions
{
    /// <summary>Recompute BatchNorm running statistics for the averaged weights (one pass, <c>update_bn</c> semantics).
    /// Skipped when the buffers themselves were averaged.</summary>
    public bool RecomputeBatchNorm { get; init; } = true;

    /// <summary>At most this many training batches for the BatchNorm recompute (SWAD uses 500).</summary>
    public int BatchNormBatches { get; init; } = 500;

    /// <summary>Whether this method needs a validation loss during training (SWAD).</summary>
    public virtual bool NeedsValidation => false;

    /// <summary>Stochastic weight averaging (Izmailov et al., 2018).</summary>
    public static SwaOptions Swa(int? startEpoch = null, int? everySteps = null, double? learningRate = null) =>
        new() { StartEpoch = startEpoch, EverySteps = everySteps, LearningRate = learningRate };

    /// <summary>Exponential moving average of the weights.</summary>
    public static EmaOptions Ema(double decay = EmaOptions.DefaultDecay, bool warmup = false, bool averageBuffers = false) =>
        new() { Decay = decay, Warmup = warmup, AverageBuffers = averageBuffers };

    /// <summary>SWAD (Cha et al., 2021): dense averaging inside the validation-loss valley. A null
    /// <paramref name="evaluationFrequency"/> sizes the segments from the run's length (<see cref="SwadOptions.EvaluationFrequency"/>).</summary>
    public static SwadOptions Swad(int? evaluationFrequency = null, int optimumPatience = SwadOptions.DefaultOptimumPatience,
        int overfitPatience = SwadOptions.DefaultOverfitPatience, double toleranceRatio = SwadOptions.DefaultToleranceRatio) =>
        new() { EvaluationFrequency = evaluationFrequency, OptimumPatience = optimumPatience, OverfitPatience = overfitPatience, ToleranceRatio = toleranceRatio };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public virtual void Validate()
    {
        if (BatchNormBatches < 1)
            throw new ArgumentOutOfRangeException(nameof(BatchNormBatches), BatchNormBatches, "BatchNormBatches must be ≥ 1.");
    }

    /// <summary>Creates the averager for <paramref name="model"/> (its tensors stay where they are; the averages live on the same device).</summary>
    public abstract IWeightAverager CreateAverager(nn.Module model, TrainingPlan plan);
}

/// <summary>SWA settings: an equal average from a start point, every k steps or once per epoch, with an optional SWA learning rate.</summary>
public sealed record SwaOptions : WeightAveragingOptions
{
    /// <summary>1-based epoch from which weights are averaged; null = the epoch at 75 % of training (rounded up).</summary>
    public int? StartEpoch { get; init; }

    /// <summary>Start after this many optimizer steps instead (overrides <see cref="StartEpoch"/>).</summary>
    public long? StartStep { get; init; }

    /// <summary>Average every this many steps after the start; null = at the end of each epoch (or each cycle).</summary>
    public int? EverySteps { get; init; }

    /// <summary>The SWA learning rate from the start on; null keeps the trainer's schedule.</summary>
    public double? LearningRate { get; init; }

    /// <summary>Steps over which the rate anneals from its value at the start to <see cref="LearningRate"/> (0 = switch at once).</summary>
    public int AnnealSteps { get; init; }

    /// <summary>The anneal shape.</summary>
    public AnnealStrategy AnnealStrategy { get; init; } = AnnealStrategy.Cosine;

    /// <summary>Cyclic SWA: in each cycle of this many steps the rate goes linearly from its value at the start down to
    /// <see cref="LearningRate"/>, and weights are averaged at the end of each cycle. Null = constant (annealed) rate.</summary>
    public int? CycleSteps { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (StartEpoch is int e && e < 1) throw new ArgumentOutOfRangeException(nameof(StartEpoch), e, "StartEpoch must be ≥ 1.");
        if (StartStep is long s && s < 0) throw new ArgumentOutOfRangeException(nameof(StartStep), s, "StartStep must be ≥ 0.");
        if (EverySteps is int k && k < 1) throw new ArgumentOutOfRangeException(nameof(EverySteps), k, "EverySteps must be ≥ 1.");
        if (LearningRate is double r && !(r > 0 && double.IsFinite(r)))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), r, "The SWA LearningRate must be a finite number > 0.");
        if (AnnealSteps < 0) throw new ArgumentOutOfRangeException(nameof(AnnealSteps), AnnealSteps, "AnnealSteps must be ≥ 0.");
        if (CycleSteps is int c)
        {
            if (c < 1) throw new ArgumentOutOfRangeException(nameof(CycleSteps), c, "CycleSteps must be ≥ 1.");
            if (LearningRate is null) throw new ArgumentOutOfRangeException(nameof(CycleSteps), c, "Cyclic SWA (CycleSteps) needs the SWA LearningRate at the end of each cycle.");
            if (EverySteps is int every && every != c)
                throw new ArgumentOutOfRangeException(nameof(EverySteps), every, $"Cyclic SWA averages at the end of each cycle; leave EverySteps null or equal to CycleSteps ({c}).");
        }
    }

    /// <inheritdoc />
    public override IWeightAverager CreateAverager(nn.Module model, TrainingPlan plan) => new StochasticWeightAverager(model, this, plan);
}

/// <summary>EMA settings: <c>w̄ ← d·w̄ + (1 − d)·w</c> after every step (the first step copies).</summary>
public sealed record EmaOptions : WeightAveragingOptions
{
    /// <summary>The default decay d.</summary>
    public const double DefaultDecay = 0.999;

    /// <summary>The decay d in [0, 1).</summary>
    public double Decay { get; init; } = DefaultDecay;

    /// <summary>Warm-up: use <c>min(d, (1 + n)/(10 + n))</c> at the n-th update (n = 0, 1, …), so early weights fade fast.</summary>
    public bool Warmup { get; init; }

    /// <summary>Average the floating-point buffers (BatchNorm statistics) too; then no BatchNorm recompute is needed.</summary>
    public bool AverageBuffers { get; init; }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (!(Decay >= 0 && Decay < 1)) throw new ArgumentOutOfRangeException(nameof(Decay), Decay, "The EMA Decay must be in [0, 1).");
    }

    /// <inheritdoc />
    public override IWeightAverager CreateAverager(nn.Module model, TrainingPlan plan) => new ExponentialMovingAverager(model, this);
}

/// <summary>SWAD settings (defaults from the paper and khanrc/swad: N_s = 3, N_e = 6, r = 1.3).</summary>
public sealed record SwadOptions : WeightAveragingOptions
{
    /// <summary>N_s of the paper.</summary>
    public const int DefaultOptimumPatience = 3;

    /// <summary>N_e of the paper.</summary>
    public const int DefaultOverfitPatience = 6;

    /// <summary>r − 1 of the paper (0.2 for VLCS).</summary>
    public const double DefaultToleranceRatio = 0.3;

    /// <summary>With an automatic <see cref="EvaluationFrequency"/>, this many evaluations over the whole run (DomainBed's
    /// ratio: 5,000 steps, a checkpoint every 100).</summary>
    public const int AutomaticEvaluations = 50;

    /// <summary>
    /// Steps per segment: every this many steps the online model's validation loss closes a segment (DomainBed's
    /// <c>checkpoint_freq</c>). Null (the default) sizes it from the run: total steps / <see cref="AutomaticEvaluations"/>,
    /// rounded, at least 1 — enough segments for the valley rule on small data as on large (see <see cref="EvaluationFrequencyFor"/>).
    /// </summary>
    public int? EvaluationFrequency { get; init; }

    /// <summary>N_s, the optimum patience.</summary>
    public int OptimumPatience { get; init; } = DefaultOptimumPatience;

    /// <summary>N_e, the overfit patience (≥ N_s).</summary>
    public int OverfitPatience { get; init; } = DefaultOverfitPatience;

    /// <summary>The tolerance ratio r − 1.</summary>
    public double ToleranceRatio { get; init; } = DefaultToleranceRatio;

    /// <summary>Stop training when the valley is dead (the paper's and the reference's behaviour).</summary>
    public bool StopWhenValleyDies { get; init; } = true;

    /// <inheritdoc />
    public override bool NeedsValidation => true;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (EvaluationFrequency is int every && every < 1)
            throw new ArgumentOutOfRangeException(nameof(EvaluationFrequency), every, "SWAD's EvaluationFrequency must be ≥ 1 step, or null to size it from the run.");
        ValidatePatience(OptimumPatience, OverfitPatience, ToleranceRatio);
    }

    internal static void ValidatePatience(int optimumPatience, int overfitPatience, double toleranceRatio)
    {
        if (optimumPatience < 1)
            throw new ArgumentOutOfRangeException(nameof(OptimumPatience), optimumPatience, "SWAD's OptimumPatience (N_s) must be ≥ 1.");
        if (overfitPatience < optimumPatience)
            throw new ArgumentOutOfRangeException(nameof(OverfitPatience), overfitPatience,
                $"SWAD's OverfitPatience (N_e = {overfitPatience}) must be ≥ OptimumPatience (N_s = {optimumPatience}).");
        if (!(toleranceRatio >= 0) || double.IsInfinity(toleranceRatio))
            throw new ArgumentOutOfRangeException(nameof(ToleranceRatio), toleranceRatio, "SWAD's ToleranceRatio must be a finite number ≥ 0.");
    }

    /// <summary>The evaluation frequency of a run of <paramref name="plan"/>'s length: <see cref="EvaluationFrequency"/> if set,
    /// else <c>max(1, round(TotalSteps / AutomaticEvaluations))</c>.</summary>
    public int EvaluationFrequencyFor(TrainingPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return EvaluationFrequency ?? (int)Math.Max(1, Math.Round((double)plan.TotalSteps / AutomaticEvaluations));
    }

    /// <inheritdoc />
    public override IWeightAverager CreateAverager(nn.Module model, TrainingPlan plan) => new SwadAverager(model, this, EvaluationFrequencyFor(plan));
}
