using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Training;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>How F2M's flat-region search draws its weight noise (every element lies in [−b/2, +b/2]).</summary>
public enum FlatRegionNoiseKind
{
    /// <summary>The reference sampler: α, β drawn from {0.3, 0.5, 1, 2, 3, 4, 5} per tensor, u ~ Beta(α, β) per element,
    /// quantised into <c>ReductionFactor + 1</c> bins mapped to multiples of b/ReductionFactor in [−b/2, +b/2].</summary>
    DiscreteBeta,

    /// <summary>Uniform on [−b/2, +b/2] per element.</summary>
    Uniform,
}

/// <summary>
/// F2M's flat-region search for base training (Shi et al., NeurIPS 2021): each step evaluates the loss at M noisy copies
/// θ + ε_j of the "range" parameters and minimises <c>mean_j L(θ+ε_j) + StdWeight · std_j L(θ+ε_j)</c>. Defaults are the
/// reference code's CIFAR configuration.
/// </summary>
public sealed record FlatRegionOptions : GradientStepOptions
{
    /// <summary>The bound b: noise (and, in sessions, the clamp) stays within ±b/2 of the base weights. Reference: 0.01 (CIFAR), 0.016 (miniImageNet).</summary>
    public double Bound { get; init; } = 0.01;

    /// <summary>M, the noise samples per step (reference: 2).</summary>
    public int NoiseSamples { get; init; } = 2;

    /// <summary>Weight of the standard deviation (unbiased, over the M sample losses) in the objective (reference: 2.0; 0 drops it).</summary>
    public double StdWeight { get; init; } = 2.0;

    /// <summary>The noise sampler.</summary>
    public FlatRegionNoiseKind Noise { get; init; } = FlatRegionNoiseKind.DiscreteBeta;

    /// <summary>The discrete-Beta sampler's quantisation (noise in steps of b/ReductionFactor; reference: 4). Even, ≥ 2.</summary>
    public int ReductionFactor { get; init; } = 4;

    /// <summary>L: the range parameters are the weights of the last L convolutions, shortcut (<c>downsample</c>/<c>shortcut</c>)
    /// convolutions excluded (reference: 4 on ResNet-20, 8 on ResNet-18). On a pretrained ResNet-18 the default 4 are the
    /// two 3×3 convolutions of each of its last two blocks (<c>backbone.layer4.*</c>). Ignored when <see cref="RangeParameterNames"/> is set.</summary>
    public int RangeLayerCount { get; init; } = 4;

    /// <summary>Explicit range parameters by <c>named_parameters</c> name (e.g. <c>layer3.2.conv2.weight</c>; on a pretrained
    /// backbone <c>backbone.layer4.1.conv2.weight</c>); null selects by <see cref="RangeLayerCount"/>.</summary>
    public IReadOnlyList<string>? RangeParameterNames { get; init; }

    /// <summary>Prints the settings, the range parameter names by content (the text identifies a run in checkpoints and logs).</summary>
    protected override bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"Bound = {Bound}, NoiseSamples = {NoiseSamples}, StdWeight = {StdWeight}, Noise = {Noise}, ReductionFactor = {ReductionFactor}, ");
        builder.Append(RangeParameterNames is null ? $"RangeLayerCount = {RangeLayerCount}" : $"RangeParameterNames = [{string.Join(", ", RangeParameterNames)}]");
        return true;
    }

    /// <inheritdoc />
    protected internal override string DivergenceAdvice => " or the flat region's Bound, or set GradientClipNorm.";

    /// <inheritdoc />
    public override IGradientStep CreateStep(GradientStepContext context) => new FlatRegionGradientStep(context, this);

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public override void Validate()
    {
        if (!(Bound > 0) || double.IsInfinity(Bound)) throw new ArgumentOutOfRangeException(nameof(Bound), Bound, "Bound must be a finite number > 0.");
        if (NoiseSamples < 1) throw new ArgumentOutOfRangeException(nameof(NoiseSamples), NoiseSamples, "NoiseSamples must be ≥ 1.");
        if (!(StdWeight >= 0) || double.IsInfinity(StdWeight)) throw new ArgumentOutOfRangeException(nameof(StdWeight), StdWeight, "StdWeight must be a finite number ≥ 0.");
        if (StdWeight > 0 && NoiseSamples < 2)
            throw new ArgumentOutOfRangeException(nameof(NoiseSamples), NoiseSamples, "The standard-deviation term needs NoiseSamples ≥ 2 (or set StdWeight = 0).");
        if (!Enum.IsDefined(Noise)) throw new ArgumentOutOfRangeException(nameof(Noise), Noise, "Unknown noise sampler.");
        if (ReductionFactor < 2 || ReductionFactor % 2 != 0)
            throw new ArgumentOutOfRangeException(nameof(ReductionFactor), ReductionFactor, "ReductionFactor must be even and ≥ 2 (the noise grid must contain 0 and ±b/2).");
        if (RangeParameterNames is null && RangeLayerCount < 1)
            throw new ArgumentOutOfRangeException(nameof(RangeLayerCount), RangeLayerCount, "RangeLayerCount must be ≥ 1.");
        if (RangeParameterNames is { } names && (names.Count == 0 || names.Any(string.IsNullOrWhiteSpace)))
            throw new ArgumentException("RangeParameterNames must list at least one non-empty parameter name, or be null.", nameof(RangeParameterNames));
    }
}
