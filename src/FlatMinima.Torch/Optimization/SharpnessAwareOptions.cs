using System;

namespace FlatMinima.Torch.Optimization;

/// <summary>Which parameters the adaptive (ASAM) normalization <c>T = |w| + η</c> applies to.</summary>
public enum AdaptiveScope
{
    /// <summary>
    /// Only parameters whose name ends in <c>weight</c> (convolution, linear and normalization weights); biases keep
    /// <c>T = 1</c>. This is the official ASAM code (SamsungLabs/ASAM).
    /// </summary>
    WeightsOnly,

    /// <summary>Every trainable parameter, biases included (davda54/sam's <c>adaptive=True</c>, used there with η = 0).</summary>
    AllParameters,
}

/// <summary>
/// Settings of a sharpness-aware step: SAM (<c>ε = ρ·g/‖g‖₂</c>), ASAM (<c>ε = ρ·T²g/‖Tg‖₂</c>, <c>T = |w| + η</c>) and
/// SA-GD (several projected ascent steps inside the ρ-ball; one step is SAM).
/// </summary>
public sealed record SharpnessAwareOptions
{
    /// <summary>Radius ρ of the neighbourhood (in the adaptive geometry for ASAM). Must be ≥ 0; 0 gives plain gradients.</summary>
    public double Rho { get; init; } = 0.05;

    /// <summary>Use the adaptive (scale-invariant) neighbourhood of ASAM.</summary>
    public bool Adaptive { get; init; }

    /// <summary>The η of <c>T = |w| + η</c> in adaptive mode (ASAM default 0.01; davda54's convention is 0).</summary>
    public double Eta { get; init; } = 0.01;

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

    /// <summary>SAM of Foret et al. with radius ρ (default 0.05).</summary>
    public static SharpnessAwareOptions Sam(double rho = 0.05) => new() { Rho = rho };

    /// <summary>ASAM of Kwon et al. in the official form: ρ = 0.5, η = 0.01, weights only.</summary>
    public static SharpnessAwareOptions Asam(double rho = 0.5, double eta = 0.01) =>
        new() { Rho = rho, Adaptive = true, Eta = eta, AdaptiveScope = AdaptiveScope.WeightsOnly };

    /// <summary>SA-GD: <paramref name="ascentSteps"/> projected ascent steps inside the ρ-ball.</summary>
    public static SharpnessAwareOptions SaGd(int ascentSteps, double rho = 0.05) => new() { Rho = rho, AscentSteps = ascentSteps };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!(Rho >= 0) || double.IsInfinity(Rho))
            throw new ArgumentOutOfRangeException(nameof(Rho), Rho, "Rho (the SAM radius ρ) must be a finite number ≥ 0; the SAM default is 0.05, ASAM's 0.5.");
        if (!(Eta >= 0) || double.IsInfinity(Eta))
            throw new ArgumentOutOfRangeException(nameof(Eta), Eta, "Eta (ASAM's η in T = |w| + η) must be a finite number ≥ 0; the default is 0.01.");
        if (AscentSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(AscentSteps), AscentSteps, "AscentSteps must be ≥ 1 (1 is SAM; k > 1 is SA-GD).");
        if (AscentStepSize is double s && (!(s > 0) || double.IsInfinity(s)))
            throw new ArgumentOutOfRangeException(nameof(AscentStepSize), s, "AscentStepSize must be a finite number > 0, or null for ρ.");
        if (!(Epsilon > 0))
            throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must be > 0.");
    }
}
