using System;
using FlatMinima.Torch.Diagnostics;

namespace FlatMinima.MLNet.Sharpness;

/// <summary>What <see cref="SharpnessCatalog.EvaluateSharpness"/> measures, and how.</summary>
public sealed class FlatMinimaSharpnessOptions
{
    /// <summary>Use at most this many rows of the data (the first ones).</summary>
    public int MaxExamples { get; set; } = 1000;

    /// <summary>Examples per batch; the loss is the size-weighted mean over batches.</summary>
    public int BatchSize { get; set; } = 250;

    /// <summary>How many top Hessian eigenvalues to compute (0 skips them).</summary>
    public int TopEigenvalues { get; set; } = 1;

    /// <summary>Use Lanczos (largest algebraic) instead of power iteration with deflation (largest magnitude).</summary>
    public bool UseLanczos { get; set; } = true;

    /// <summary>Relative tolerance of the eigensolver.</summary>
    public double EigenTolerance { get; set; } = 1e-3;

    /// <summary>Iteration cap of the eigensolver (Lanczos: Krylov dimension; power iteration: per eigenvalue).</summary>
    public int EigenMaxIterations { get; set; } = 100;

    /// <summary>Hutchinson probes for the trace (0 skips it).</summary>
    public int TraceProbes { get; set; } = 100;

    /// <summary>Probe distribution of the trace estimate.</summary>
    public ProbeDistribution TraceDistribution { get; set; } = ProbeDistribution.Rademacher;

    /// <summary>Radius ρ of the SAM-style worst-case ℓ₂ sharpness (0 skips it).</summary>
    public double WorstCaseRho { get; set; } = 0.05;

    /// <summary>Keskar et al.'s ε (box half-width ε(|wᵢ| + 1)) for ε-sharpness (0 skips it).</summary>
    public double KeskarEpsilon { get; set; } = 1e-3;

    /// <summary>Radius ρ of the adaptive (c = |w|) worst-case ℓ₂ and average-case sharpness (0 skips them).</summary>
    public double AdaptiveRho { get; set; } = 0.5;

    /// <summary>Monte-Carlo samples of the average-case adaptive sharpness.</summary>
    public int AverageCaseSamples { get; set; } = 50;

    /// <summary>Projected ascent steps of the worst-case searches.</summary>
    public int AscentSteps { get; set; } = 10;

    /// <summary>Per-module breakdown of λ_max and trace (costly for large models).</summary>
    public bool PerLayer { get; set; }

    /// <summary>Hutchinson probes per module in the per-layer breakdown.</summary>
    public int PerLayerTraceProbes { get; set; } = 20;

    /// <summary>
    /// Measure in train mode (BatchNorm with batch statistics; running statistics left unchanged) instead of eval
    /// mode (the default, as PyHessian: BatchNorm is then a fixed affine map).
    /// </summary>
    public bool TrainMode { get; set; }

    /// <summary>Compute in float64 (the network is converted for the measurement and converted back exactly afterwards).</summary>
    public bool Float64 { get; set; }

    /// <summary>Seed of every random start and probe.</summary>
    public int Seed { get; set; }

    internal void Validate()
    {
        if (MaxExamples < 1) throw new ArgumentOutOfRangeException(nameof(MaxExamples), MaxExamples, "MaxExamples must be ≥ 1.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be ≥ 1.");
        if (TopEigenvalues < 0) throw new ArgumentOutOfRangeException(nameof(TopEigenvalues), TopEigenvalues, "TopEigenvalues must be ≥ 0.");
        if (!(EigenTolerance > 0)) throw new ArgumentOutOfRangeException(nameof(EigenTolerance), EigenTolerance, "EigenTolerance must be > 0.");
        if (EigenMaxIterations < 1) throw new ArgumentOutOfRangeException(nameof(EigenMaxIterations), EigenMaxIterations, "EigenMaxIterations must be ≥ 1.");
        if (TraceProbes is < 0 or 1) throw new ArgumentOutOfRangeException(nameof(TraceProbes), TraceProbes, "TraceProbes must be 0 (skip) or ≥ 2.");
        if (!(WorstCaseRho >= 0)) throw new ArgumentOutOfRangeException(nameof(WorstCaseRho), WorstCaseRho, "WorstCaseRho must be ≥ 0 (0 skips it).");
        if (!(KeskarEpsilon >= 0)) throw new ArgumentOutOfRangeException(nameof(KeskarEpsilon), KeskarEpsilon, "KeskarEpsilon must be ≥ 0 (0 skips it).");
        if (!(AdaptiveRho >= 0)) throw new ArgumentOutOfRangeException(nameof(AdaptiveRho), AdaptiveRho, "AdaptiveRho must be ≥ 0 (0 skips it).");
        if (AverageCaseSamples < 2) throw new ArgumentOutOfRangeException(nameof(AverageCaseSamples), AverageCaseSamples, "AverageCaseSamples must be ≥ 2.");
        if (AscentSteps < 1) throw new ArgumentOutOfRangeException(nameof(AscentSteps), AscentSteps, "AscentSteps must be ≥ 1.");
        if (PerLayerTraceProbes < 2) throw new ArgumentOutOfRangeException(nameof(PerLayerTraceProbes), PerLayerTraceProbes, "PerLayerTraceProbes must be ≥ 2.");
    }
}
