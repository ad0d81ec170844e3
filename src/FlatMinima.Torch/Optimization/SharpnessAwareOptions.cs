using System;
using FlatMinima.Torch.Training;

namespace FlatMinima.Torch.Optimization;

/// <summary>Which parameters the adaptive (ASAM) normalization <c>T = |w| + η</c> applies to.</summary>
public enum AdaptiveScope
{
    /// <summary>
    /// Only parameters whose name contains <c>weight</c> (convolution, linear and normalization weights, and LSTM/GRU
    /// <c>weight_ih</c>/<c>weight_hh</c>, weight-norm <c>weight_g</c>/<c>weight_v</c>); biases keep <c>T = 1</c>. This is
    /// the test of the official ASAM code (SamsungLabs/ASAM's <c>asam.py</c>: <c>'weight' in n</c>).
    /// </summary>
    WeightsOnly,

    /// <summary>Every trainable parameter, biases included (davda54/sam's <c>adaptive=True</c>, used there with η = 0).</summary>
    AllParameters,
}

/// <summary>
/// Settings of a sharpness-aware step: SAM (<c>ε = ρ·g/‖g‖₂</c>), ASAM (<c>ε = ρ·T²g/‖Tg‖₂</c>, <c>T = |w| + η</c>) and
/// SA-GD (several projected ascent steps inside the ρ-ball; one step is SAM).
/// </summary>
public sealed record SharpnessAwareOptions : GradientStepOptions
{
    /// <summary>SAM's default radius ρ (Foret et al.; also SA-GD's).</summary>
    public const double DefaultRho = 0.05;

    /// <summary>ASAM's default radius ρ in the adaptive geometry (Kwon et al.).</summary>
    public const double DefaultAdaptiveRho = 0.5;

    /// <summary>ASAM's default η in <c>T = |w| + η</c>.</summary>
    public const double DefaultEta = 0.01;

    /// <summary>Radius ρ of the neighbourhood (in the adaptive geometry for ASAM). Must be ≥ 0; 0 gives plain gradients
    /// (and skips the perturbed pass).</summary>
    public double Rho { get; init; } = DefaultRho;

    /// <summary>Use the adaptive (scale-invariant) neighbourhood of ASAM.</summary>
    public bool Adaptive { get; init; }

    /// <summary>The η of <c>T = |w| + η</c> in adaptive mode (ASAM default 0.01; davda54's convention is 0).</summary>
    public double Eta { get; init; } = DefaultEta;

    /// <summary>Which parameters the adaptive normalization applies to.</summary>
    public AdaptiveScope AdaptiveScope { get; init; } = AdaptiveScope.WeightsOnly;

    /// <summary>Number of projected ascent steps k of SA-GD. 1 (the default) is SAM / ASAM.</summary>
    public int AscentSteps { get; init; } = 1;

    /// <summary>
    /// Length of each normalized ascent step (in the adaptive geometry); <c>null</c> means ρ, which makes k = 1
    /// exactly SAM and lets k &gt; 1 walk along the sphere of radius ρ towards the inner maximum.
    /// </summary>
    public double? AscentStepSize { get; init; }

    /// <summary>Added to the gradient norm before dividing (a zero gradient gives ε = 0).</summary>
    public double Epsilon { get; init; } = 1e-12;

    /// <summary>
    /// Keep BatchNorm running statistics unchanged during the perturbed passes, so they move only on the clean pass
    /// (google-research/sam semantics). The perturbed passes still normalize with batch statistics.
    /// </summary>
    public bool FreezeBatchNormOnPerturbedPass { get; init; } = true;

    /// <summary>
    /// m-sharpness: split each batch into this many shards, perturb each separately and <b>average</b> the shard
    /// gradients (1 = the whole batch). At most the batch size. Used by the training loop's step; with
    /// <see cref="SharpnessAwareMinimizer"/> directly, pass one closure per shard to <c>ComputeGradient</c>.
    /// </summary>
    public int ShardCount { get; init; } = 1;

    /// <summary>
    /// Take the sharpness-aware gradient only on some steps, and the plain gradient (one pass) on the others:
    /// <see cref="LookSamSchedule"/> (every k-th step, reusing the stored sharpness direction in between),
    /// <see cref="RandomizedSamSchedule"/> (a Bernoulli draw per step, RST / SS-SAM) or <see cref="AdaptiveSamSchedule"/>
    /// (AE-SAM: when the squared gradient norm is high relative to its moving statistics). Null (the default) takes it on
    /// every step. The sharpness-aware steps use every other setting here (ρ, ASAM's adaptive radius, SA-GD's ascent
    /// steps). Not combined with m-sharpness (<see cref="ShardCount"/> &gt; 1). See <c>docs/efficient-sam.md</c>.
    /// </summary>
    public SamSchedule? Efficiency { get; init; }

    /// <summary>SAM of Foret et al. with radius ρ.</summary>
    public static SharpnessAwareOptions Sam(double rho = DefaultRho) => new() { Rho = rho };

    /// <summary>ASAM of Kwon et al. in the official form: ρ = 0.5, η = 0.01, weights only.</summary>
    public static SharpnessAwareOptions Asam(double rho = DefaultAdaptiveRho, double eta = DefaultEta) =>
        new() { Rho = rho, Adaptive = true, Eta = eta, AdaptiveScope = AdaptiveScope.WeightsOnly };

    /// <summary>SA-GD: <paramref name="ascentSteps"/> projected ascent steps inside the ρ-ball (1 is SAM).</summary>
    public static SharpnessAwareOptions SaGd(int ascentSteps = 3, double rho = DefaultRho) => new() { Rho = rho, AscentSteps = ascentSteps };

    /// <summary>LookSAM (Liu et al., CVPR 2022): SAM every <paramref name="interval"/>-th step, and in between the clean
    /// gradient plus the stored sharpness direction (see <see cref="LookSamSchedule"/>).</summary>
    public static SharpnessAwareOptions LookSam(int interval = LookSamSchedule.DefaultInterval, double alpha = LookSamSchedule.DefaultAlpha, double rho = DefaultRho) =>
        new() { Rho = rho, Efficiency = new LookSamSchedule { Interval = interval, Alpha = alpha } };

    /// <summary>Randomized SAM (RST, Zhao et al. 2022; SS-SAM): SAM with probability <paramref name="probability"/> on each
    /// step, else the plain gradient; <paramref name="finalProbability"/> makes the probability grow (or shrink) linearly
    /// to that value at the last step (see <see cref="RandomizedSamSchedule"/>).</summary>
    public static SharpnessAwareOptions RandomizedSam(double probability = RandomizedSamSchedule.DefaultProbability, double? finalProbability = null, double rho = DefaultRho) =>
        new() { Rho = rho, Efficiency = new RandomizedSamSchedule { Probability = probability, FinalProbability = finalProbability } };

    /// <summary>AE-SAM (Jiang et al., ICLR 2023): SAM when the squared gradient norm is above its moving mean plus c_t moving
    /// standard deviations (see <see cref="AdaptiveSamSchedule"/>).</summary>
    public static SharpnessAwareOptions AeSam(double rho = DefaultRho) => new() { Rho = rho, Efficiency = new AdaptiveSamSchedule() };

    /// <inheritdoc />
    protected internal override bool SupportsAccumulation => true;

    /// <inheritdoc />
    protected internal override string DivergenceAdvice => " or the sharpness radius Rho, or set GradientClipNorm.";

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public override void Validate()
    {
        if (!(Rho >= 0) || double.IsInfinity(Rho))
            throw new ArgumentOutOfRangeException(nameof(Rho), Rho, $"Rho (the SAM radius ρ) must be a finite number ≥ 0; the SAM default is {DefaultRho}, ASAM's {DefaultAdaptiveRho}.");
        if (!(Eta >= 0) || double.IsInfinity(Eta))
            throw new ArgumentOutOfRangeException(nameof(Eta), Eta, $"Eta (ASAM's η in T = |w| + η) must be a finite number ≥ 0; the default is {DefaultEta}.");
        if (AscentSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(AscentSteps), AscentSteps, "AscentSteps must be ≥ 1 (1 is SAM; k > 1 is SA-GD).");
        if (AscentStepSize is double s && (!(s > 0) || double.IsInfinity(s)))
            throw new ArgumentOutOfRangeException(nameof(AscentStepSize), s, "AscentStepSize must be a finite number > 0, or null for ρ.");
        if (!(Epsilon > 0))
            throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must be > 0.");
        if (ShardCount < 1) throw new ArgumentOutOfRangeException(nameof(ShardCount), ShardCount, "ShardCount must be ≥ 1.");
        if (Efficiency is not null)
        {
            NestedOption.Validate(nameof(Efficiency), Efficiency.Validate);
            if (ShardCount > 1)
                throw new ArgumentException($"Efficiency ({Efficiency.Name}) is not combined with m-sharpness; set ShardCount = 1 or Efficiency = null.", nameof(Efficiency));
        }
    }

    /// <summary>Checks that <see cref="ShardCount"/> does not exceed the batch size and is not combined with gradient accumulation.</summary>
    public override void ValidateFor(ClassifierTrainingOptions training)
    {
        ArgumentNullException.ThrowIfNull(training);
        if (ShardCount > training.BatchSize)
            throw new ArgumentOutOfRangeException(nameof(ShardCount), ShardCount, $"ShardCount ({ShardCount}) cannot exceed BatchSize ({training.BatchSize}).");
        if (ShardCount > 1 && training.AccumulationSteps > 1)
            throw new ArgumentException($"ShardCount (m-sharpness, {ShardCount}) is not combined with gradient accumulation (AccumulationSteps = {training.AccumulationSteps}); " +
                "set one of them to 1.", nameof(ShardCount));
    }

    /// <inheritdoc />
    public override IGradientStep CreateStep(GradientStepContext context) =>
        Efficiency is null ? new SharpnessAwareGradientStep(context, this) : new ScheduledSharpnessAwareGradientStep(context, this);
}
