using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>λ_max and trace of one diagonal block of the Hessian (the parameters of one module).</summary>
/// <param name="Name">The module (parameter-name prefix), e.g. <c>layer1.0.conv1</c>.</param>
/// <param name="Parameters">Number of scalar parameters in the block.</param>
/// <param name="LambdaMax">Largest-magnitude eigenvalue of the block (power iteration).</param>
/// <param name="Trace">Hutchinson estimate of the block's trace.</param>
public sealed record LayerSharpnessValue(string Name, long Parameters, double LambdaMax, TraceEstimate Trace);

/// <summary>Per-layer (per-module) breakdown of the Hessian: each module's diagonal block.</summary>
public static class LayerSharpness
{
    /// <summary>
    /// Groups <paramref name="namedParameters"/> by module (the name up to its last '.') and measures each block's λ_max
    /// and trace. The blocks' traces add up to the full trace; their λ_max values do not bound the full λ_max.
    /// </summary>
    public static IReadOnlyList<LayerSharpnessValue> PerModule(LossObjective objective, IEnumerable<(string Name, Parameter Parameter)> namedParameters,
        EigenOptions? eigenOptions = null, int traceProbes = 20, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(namedParameters);
        var groups = namedParameters.Where(p => p.Parameter.requires_grad)
            .GroupBy(p => p.Name.Contains('.') ? p.Name[..p.Name.LastIndexOf('.')] : p.Name)
            .ToArray();
        var results = new List<LayerSharpnessValue>();
        foreach (var group in groups)
        {
            using var block = objective.Restrict(group.Select(p => p.Parameter).ToArray());
            var lambda = HessianEigenvalues.PowerIteration(block, 1, eigenOptions ?? new EigenOptions { Seed = seed });
            var trace = HutchinsonTrace.Estimate(block, traceProbes, seed: seed);
            results.Add(new LayerSharpnessValue(group.Key, block.Dimension, lambda.Values[0], trace));
        }
        return results;
    }
}
