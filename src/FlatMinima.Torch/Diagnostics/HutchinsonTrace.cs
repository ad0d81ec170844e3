using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>The probe distribution of Hutchinson's estimator (both have E[vvᵀ] = I, so the estimate is unbiased).</summary>
public enum ProbeDistribution
{
    /// <summary>Entries ±1 with equal probability (single-probe variance 2Σ_{i≠j}H²ᵢⱼ: lower).</summary>
    Rademacher,

    /// <summary>Standard normal entries (single-probe variance 2‖H‖²_F).</summary>
    Gaussian,
}

/// <summary>A trace estimate with its standard error.</summary>
/// <param name="Trace">The mean of the probes' vᵀHv.</param>
/// <param name="StandardError">Sample standard deviation / √probes.</param>
/// <param name="Probes">Number of probes (Hessian-vector products).</param>
/// <param name="Samples">Every probe's vᵀHv.</param>
public sealed record TraceEstimate(double Trace, double StandardError, int Probes, double[] Samples)
{
    /// <summary>"trace ± SE".</summary>
    public override string ToString() => $"{Trace:G6} ± {StandardError:G3} ({Probes} probes)";
}

/// <summary>Hutchinson's trace estimator tr H ≈ mean of vᵀHv over random probes.</summary>
public static class HutchinsonTrace
{
    /// <summary>Estimates tr ∇²L with <paramref name="probes"/> seeded probes.</summary>
    public static TraceEstimate Estimate(LossObjective objective, int probes = 100, ProbeDistribution distribution = ProbeDistribution.Rademacher, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(objective);
        if (probes < 2) throw new ArgumentOutOfRangeException(nameof(probes), probes, "At least 2 probes are needed for a standard error.");
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)seed, CPU);
        var samples = new double[probes];
        for (int i = 0; i < probes; i++)
        {
            using var probeScope = NewDisposeScope();
            var v = distribution == ProbeDistribution.Gaussian ? RandomVectors.Gaussian(objective, generator) : RandomVectors.Rademacher(objective, generator);
            samples[i] = v.dot(objective.HessianVectorProduct(v)).ToDouble();
        }
        double mean = samples.Average();
        double variance = samples.Sum(s => (s - mean) * (s - mean)) / (probes - 1);
        return new TraceEstimate(mean, Math.Sqrt(variance / probes), probes, samples);
    }
}
