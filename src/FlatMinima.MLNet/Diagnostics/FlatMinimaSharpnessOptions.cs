using System;
using FlatMinima.Torch.Diagnostics;

namespace FlatMinima.MLNet.Diagnostics;

/// <summary>What <see cref="SharpnessCatalog.EvaluateSharpness"/> measures, and how.</summary>
public sealed class FlatMinimaSharpnessOptions
{
    /// <summary>Use at most this many rows of the data (the first ones). Default 500.</summary>
    public int MaxExamples { get; set; } = 500;

    /// <summary>Examples per batch; the loss is the size-weighted mean over batches. Default 250.</summary>
    public int BatchSize { get; set; } = 250;

    /// <summary>
    /// How many batches (the first ones) keep their first-order gradient graph between Hessian-vector products, so a
    /// repeated product costs one double backward instead of a forward, a backward and a double backward (see
    /// <c>LossObjective.CachedGraphBatches</c>). Each kept batch holds its activations and gradient graph in memory.
    /// Default 2: every batch at the default <see cref="MaxExamples"/> and <see cref="BatchSize"/>; 0 keeps none.
    /// </summary>
    public int CachedGraphBatches { get; set; } = 2;

    /// <summary>How many top Hessian eigenvalues to compute (0 skips them). Default 1.</summary>
    public int TopEigenvalues { get; set; } = 1;

    /// <summary>Use Lanczos (largest algebraic) instead of power iteration with deflation (largest magnitude). Default true.</summary>
    public bool UseLanczos { get; set; } = true;

    /// <summary>Relative tolerance of the eigensolver (<see cref="EigenOptions.Tolerance"/>). Default <see cref="EigenOptions.DefaultTolerance"/> (1e-3).</summary>
    public double EigenTolerance { get; set; } = EigenOptions.DefaultTolerance;

    /// <summary>
    /// Lanczos (<see cref="UseLanczos"/>): the largest Krylov dimension, i.e. the most Hessian-vector products for all
    /// eigenvalues together (<see cref="EigenOptions.KrylovDimension"/>). Default 100.
    /// </summary>
    public int KrylovDimension { get; set; } = EigenOptions.DefaultKrylovDimension;

    /// <summary>
    /// Power iteration (without <see cref="UseLanczos"/>, and the per-layer breakdown): the most iterations per eigenvalue
    /// (<see cref="EigenOptions.MaxIterationsPerEigenvalue"/>). Default 100.
    /// </summary>
    public int MaxIterationsPerEigenvalue { get; set; } = EigenOptions.DefaultMaxIterationsPerEigenvalue;

    /// <summary>Hutchinson probes for the trace (0 skips it); the report gives the standard error. Default 30.</summary>
    public int TraceProbes { get; set; } = 30;

    /// <summary>Probe distribution of the trace estimate. Default Rademacher.</summary>
    public ProbeDistribution TraceDistribution { get; set; } = ProbeDistribution.Rademacher;

    /// <summary>Radius ρ of the SAM-style worst-case ℓ₂ sharpness (0 skips it). Default 0.05.</summary>
    public double WorstCaseRho { get; set; } = 0.05;

    /// <summary>Keskar et al.'s ε (box half-width ε(|wᵢ| + 1)) for ε-sharpness (0 skips it). Default 1e-3.</summary>
    public double KeskarEpsilon { get; set; } = 1e-3;

    /// <summary>Radius ρ of the adaptive (c = |w|) worst-case ℓ₂ and average-case sharpness (0 skips them). Default 0.5.</summary>
    public double AdaptiveRho { get; set; } = 0.5;

    /// <summary>Monte-Carlo samples of the average-case adaptive sharpness; the report gives the standard error. Default 20.</summary>
    public int AverageCaseSamples { get; set; } = 20;

    /// <summary>Projected ascent steps per start of the worst-case searches (worst-case ℓ₂, ε-sharpness, adaptive worst case). Default 5.</summary>
    public int AscentSteps { get; set; } = 5;

    /// <summary>
    /// Random starts of the worst-case searches besides the start along the gradient (SAM's direction); the largest
    /// loss over all starts is kept. Each start costs <see cref="AscentSteps"/> gradient evaluations. The searches give
    /// lower bounds of the true maxima; more starts and steps tighten them. Default 0.
    /// </summary>
    public int AscentRandomStarts { get; set; }

    /// <summary>Per-module breakdown of λ_max and trace (costly for large models). Default false.</summary>
    public bool PerLayer { get; set; }

    /// <summary>Hutchinson probes per module in the per-layer breakdown. Default 20.</summary>
    public int PerLayerTraceProbes { get; set; } = 20;

    /// <summary>
    /// Measure in train mode (BatchNorm with batch statistics; running statistics left unchanged) instead of eval
    /// mode (the default, as PyHessian: BatchNorm is then a fixed affine map).
    /// </summary>
    public bool TrainMode { get; set; }

    /// <summary>Compute in float64 (the measurement's copy of the network is converted; the model is not).</summary>
    public bool Float64 { get; set; }

    /// <summary>Seed of every random start and probe. Default 0.</summary>
    public int Seed { get; set; }

    internal void Validate()
    {
        if (MaxExamples < 1) throw new ArgumentOutOfRangeException(nameof(MaxExamples), MaxExamples, "MaxExamples must be ≥ 1.");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be ≥ 1.");
        if (TopEigenvalues < 0) throw new ArgumentOutOfRangeException(nameof(TopEigenvalues), TopEigenvalues, "TopEigenvalues must be ≥ 0.");
        if (!(EigenTolerance > 0)) throw new ArgumentOutOfRangeException(nameof(EigenTolerance), EigenTolerance, "EigenTolerance must be > 0.");
        if (KrylovDimension < 1) throw new ArgumentOutOfRangeException(nameof(KrylovDimension), KrylovDimension, "KrylovDimension must be ≥ 1.");
        if (MaxIterationsPerEigenvalue < 1) throw new ArgumentOutOfRangeException(nameof(MaxIterationsPerEigenvalue), MaxIterationsPerEigenvalue, "MaxIterationsPerEigenvalue must be ≥ 1.");
        if (TraceProbes is < 0 or 1) throw new ArgumentOutOfRangeException(nameof(TraceProbes), TraceProbes, "TraceProbes must be 0 (skip) or ≥ 2.");
        if (!(WorstCaseRho >= 0)) throw new ArgumentOutOfRangeException(nameof(WorstCaseRho), WorstCaseRho, "WorstCaseRho must be ≥ 0 (0 skips it).");
        if (!(KeskarEpsilon >= 0)) throw new ArgumentOutOfRangeException(nameof(KeskarEpsilon), KeskarEpsilon, "KeskarEpsilon must be ≥ 0 (0 skips it).");
        if (!(AdaptiveRho >= 0)) throw new ArgumentOutOfRangeException(nameof(AdaptiveRho), AdaptiveRho, "AdaptiveRho must be ≥ 0 (0 skips it).");
        if (AverageCaseSamples < 2) throw new ArgumentOutOfRangeException(nameof(AverageCaseSamples), AverageCaseSamples, "AverageCaseSamples must be ≥ 2.");
        if (AscentRandomStarts < 0) throw new ArgumentOutOfRangeException(nameof(AscentRandomStarts), AscentRandomStarts, "AscentRandomStarts must be ≥ 0.");
        if (CachedGraphBatches < 0) throw new ArgumentOutOfRangeException(nameof(CachedGraphBatches), CachedGraphBatches, "CachedGraphBatches must be ≥ 0.");
        if (AscentSteps < 1) throw new ArgumentOutOfRangeException(nameof(AscentSteps), AscentSteps, "AscentSteps must be ≥ 1.");
        if (PerLayerTraceProbes < 2) throw new ArgumentOutOfRangeException(nameof(PerLayerTraceProbes), PerLayerTraceProbes, "PerLayerTraceProbes must be ≥ 2.");
    }
}
