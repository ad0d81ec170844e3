using System;
using System.Collections.Generic;
using FlatMinima.Torch.Training;
using TorchSharp.Modules;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// Which steps of a sharpness-aware run take the sharpness-aware gradient (two or more passes) and what the others
/// take (one pass): <see cref="LookSamSchedule"/>, <see cref="RandomizedSamSchedule"/> or <see cref="AdaptiveSamSchedule"/>,
/// set as <see cref="SharpnessAwareOptions.Efficiency"/>. How many steps were sharpness-aware is reported per epoch
/// (<see cref="EpochReport.SharpnessAwareSteps"/>).
/// </summary>
public abstract record SamSchedule
{
    private protected SamSchedule()
    {
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public abstract void Validate();

    /// <summary>The method's short name (LookSAM, RST, AE-SAM), for messages.</summary>
    internal abstract string Name { get; }

    /// <summary>The per-run decision state.</summary>
    internal abstract SamSchedulePolicy CreatePolicy(GradientStepContext context, IReadOnlyList<Parameter> parameters);
}

/// <summary>
/// LookSAM (Liu et al., "Towards Efficient and Scalable Sharpness-Aware Minimization", CVPR 2022, arXiv 2203.02714).
/// On every <see cref="Interval"/>-th step (step index t with t mod k = 0) a full sharpness-aware step, after which the
/// part of its gradient g_s orthogonal to the clean gradient g is stored: <c>g_v = g_s − (g_s·g/‖g‖²)·g</c>. On the
/// other steps one pass: <c>g + α·(‖g‖/‖g_v‖)·g_v</c> with the stored g_v. The decomposition is over the whole
/// gradient vector (all trainable parameters together, global dot products and norms) as in the paper's Algorithm 1;
/// some public re-implementations decompose each parameter tensor separately. k = 1 is SAM.
/// </summary>
public sealed record LookSamSchedule : SamSchedule
{
    /// <summary>The paper's k = 5 (its main ImageNet setting).</summary>
    public const int DefaultInterval = 5;

    /// <summary>
    /// α = 0.1, this library's default, not the 0.7 of the unofficial reference implementation's README. Measured on a small
    /// CNN with SGD momentum (docs/efficient-sam.md): at 0.7 the stored direction, added at 0.7‖g‖ on four of every five
    /// steps and carried on by momentum, underfit (−7.4 points against SGD on clean data, where SAM lost 1.0); at 0.1
    /// LookSAM matched SAM's accuracy on clean data and its gain under 40 % label noise, at 1.1–1.2× SGD's time. Set
    /// <see cref="Alpha"/> = 0.7 for the reference implementation's setting.
    /// </summary>
    public const double DefaultAlpha = 0.1;

    /// <summary>k: a sharpness-aware step every k steps (≥ 1; 1 is SAM).</summary>
    public int Interval { get; init; } = DefaultInterval;

    /// <summary>α: the weight of the stored direction on the steps in between (≥ 0; 0 is "SAM every k steps").</summary>
    public double Alpha { get; init; } = DefaultAlpha;

    internal override string Name => "LookSAM";

    /// <inheritdoc />
    public override void Validate()
    {
        if (Interval < 1) throw new ArgumentOutOfRangeException(nameof(Interval), Interval, $"Interval (LookSAM's k) must be ≥ 1 (1 is SAM); the paper uses {DefaultInterval}.");
        if (!(Alpha >= 0) || double.IsInfinity(Alpha))
            throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, $"Alpha (LookSAM's α) must be a finite number ≥ 0; the default is {DefaultAlpha}; the reference implementation's README uses 0.7.");
    }

    internal override SamSchedulePolicy CreatePolicy(GradientStepContext context, IReadOnlyList<Parameter> parameters) => new LookSamPolicy(this, parameters);
}

/// <summary>
/// Randomized sharpness-aware training (RST, Zhao et al., arXiv 2203.09962; SS-SAM is the same rule): each step is
/// sharpness-aware with probability p(t), else plain. With <see cref="FinalProbability"/> null, p is constant; otherwise it
/// moves linearly from <see cref="Probability"/> at the first step to <see cref="FinalProbability"/> at the last step of
/// the run (<see cref="Linear"/>: a linearly increasing schedule, 0 → 1 by default, on average half the steps). The Bernoulli draws come from a
/// generator of the step's own, seeded from the run's seed and saved in checkpoints. p = 1 is SAM, p = 0 plain training.
/// </summary>
public sealed record RandomizedSamSchedule : SamSchedule
{
    /// <summary>The default p = 0.5 (half the steps, on average).</summary>
    public const double DefaultProbability = 0.5;

    /// <summary>p at the first step (and at every step when <see cref="FinalProbability"/> is null), in [0, 1].</summary>
    public double Probability { get; init; } = DefaultProbability;

    /// <summary>p at the last step of the run, in [0, 1], reached linearly; null keeps <see cref="Probability"/>.</summary>
    public double? FinalProbability { get; init; }

    /// <summary>RST's linearly increasing schedule from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static RandomizedSamSchedule Linear(double from = 0, double to = 1) => new() { Probability = from, FinalProbability = to };

    internal override string Name => "RST";

    /// <summary>p(t) for step <paramref name="step"/> of <paramref name="totalSteps"/>.</summary>
    public double ProbabilityAt(long step, long totalSteps) =>
        FinalProbability is double end && totalSteps > 1
            ? Probability + (end - Probability) * Math.Clamp((double)step / (totalSteps - 1), 0, 1)
            : Probability;

    /// <inheritdoc />
    public override void Validate()
    {
        if (!(Probability >= 0 && Probability <= 1))
            throw new ArgumentOutOfRangeException(nameof(Probability), Probability, "Probability (RST's p) must be in [0, 1] (1 is SAM, 0 plain training).");
        if (FinalProbability is double end && !(end >= 0 && end <= 1))
            throw new ArgumentOutOfRangeException(nameof(FinalProbability), end, "FinalProbability must be in [0, 1], or null for a constant probability.");
    }

    internal override SamSchedulePolicy CreatePolicy(GradientStepContext context, IReadOnlyList<Parameter> parameters)
    {
        if (FinalProbability is not null && context.Plan is null)
            throw new ArgumentException("A RandomizedSamSchedule with FinalProbability needs the run's length (GradientStepContext.Plan).", nameof(context));
        return new RandomizedSamPolicy(this, context);
    }
}

/// <summary>
/// AE-SAM (Jiang, Yang, Zhang and Kwok, "An Adaptive Policy to Employ Sharpness-Aware Minimization", ICLR 2023, arXiv
/// 2304.14647). After the clean pass of step t the squared gradient norm ‖g_t‖² updates exponential moving estimates of
/// its mean and variance, <c>μ_t = δ·μ_{t−1} + (1 − δ)·‖g_t‖²</c> and
/// <c>σ²_t = δ·σ²_{t−1} + (1 − δ)·(‖g_t‖² − μ_t)²</c> (both start at 0), and the step is sharpness-aware when
/// <c>‖g_t‖² ≥ μ_t + c_t·σ_t</c>, else plain. The threshold moves linearly over the run,
/// <c>c_t = λ₁ + (λ₂ − λ₁)·t/T</c>. The clean pass is shared: the decision costs no extra pass. The defaults
/// (δ = 0.9, λ₁ = −1, λ₂ = 1: for normally distributed norms a sharpness-aware fraction falling from about 84 % to 16 %,
/// half the steps on average) are this library's; the paper tunes λ₁, λ₂ per task — set them from its tables when
/// reproducing its numbers.
/// </summary>
public sealed record AdaptiveSamSchedule : SamSchedule
{
    /// <summary>δ = 0.9.</summary>
    public const double DefaultDecay = 0.9;

    /// <summary>λ₁ = −1 (about 84 % sharpness-aware steps for normally distributed norms).</summary>
    public const double DefaultInitialThreshold = -1;

    /// <summary>λ₂ = 1 (about 16 %).</summary>
    public const double DefaultFinalThreshold = 1;

    /// <summary>δ, the forgetting rate of the moving mean and variance, in [0, 1).</summary>
    public double Decay { get; init; } = DefaultDecay;

    /// <summary>λ₁: c_t at the first step.</summary>
    public double InitialThreshold { get; init; } = DefaultInitialThreshold;

    /// <summary>λ₂: the end of c_t's linear schedule, c_t = λ₁ + (λ₂ − λ₁) t / T over the T steps of the run (the last step, t = T − 1, is just below it).</summary>
    public double FinalThreshold { get; init; } = DefaultFinalThreshold;

    internal override string Name => "AE-SAM";

    /// <summary>c_t for step <paramref name="step"/> of <paramref name="totalSteps"/>.</summary>
    public double ThresholdAt(long step, long totalSteps) =>
        totalSteps > 0 ? InitialThreshold + (FinalThreshold - InitialThreshold) * Math.Clamp((double)step / totalSteps, 0, 1) : InitialThreshold;

    /// <inheritdoc />
    public override void Validate()
    {
        if (!(Decay >= 0 && Decay < 1)) throw new ArgumentOutOfRangeException(nameof(Decay), Decay, $"Decay (AE-SAM's δ) must be in [0, 1); the default is {DefaultDecay}.");
        if (!double.IsFinite(InitialThreshold)) throw new ArgumentOutOfRangeException(nameof(InitialThreshold), InitialThreshold, "InitialThreshold (λ₁) must be a finite number.");
        if (!double.IsFinite(FinalThreshold)) throw new ArgumentOutOfRangeException(nameof(FinalThreshold), FinalThreshold, "FinalThreshold (λ₂) must be a finite number.");
    }

    internal override SamSchedulePolicy CreatePolicy(GradientStepContext context, IReadOnlyList<Parameter> parameters)
    {
        if (InitialThreshold != FinalThreshold && context.Plan is null)
            throw new ArgumentException("An AdaptiveSamSchedule whose threshold moves needs the run's length (GradientStepContext.Plan).", nameof(context));
        return new AdaptiveSamPolicy(this, context, parameters);
    }
}
