using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>A loss landscape slice: losses on a 1-D line (<see cref="Betas"/> empty) or a 2-D grid around w.</summary>
/// <param name="Alphas">Coordinates along the first direction.</param>
/// <param name="Betas">Coordinates along the second direction (empty for a 1-D slice).</param>
/// <param name="Losses">Loss at (α_i, β_j): [alphas, 1] for 1-D, [alphas, betas] for 2-D.</param>
public sealed record LandscapeGrid(double[] Alphas, double[] Betas, double[,] Losses);

/// <summary>
/// Loss-landscape slices along filter-normalized random directions (Li et al., NeurIPS 2018): each filter (output
/// slice) of a weight tensor gets a Gaussian direction rescaled to that filter's norm; biases and normalization
/// parameters (1-D tensors) get no direction.
/// </summary>
public static class LossLandscape
{
    /// <summary>A filter-normalized random direction as a flat vector over <paramref name="objective"/>'s parameters.</summary>
    public static Tensor FilterNormalizedDirection(LossObjective objective, int seed)
    {
        ArgumentNullException.ThrowIfNull(objective);
        var generator = new Generator((ulong)seed, CPU);
        var parts = new List<Tensor>();
        using (no_grad())
            foreach (var p in objective.Parameters)
            {
                if (p.dim() <= 1)
                {
                    parts.Add(zeros(p.numel(), p.dtype, p.device));
                    continue;
                }
                var d = randn(p.shape, dtype: ScalarType.Float64, generator: generator).to(p.dtype).to(p.device);
                var dims = Enumerable.Range(1, (int)p.dim() - 1).Select(i => (long)i).ToArray();
                var scale = linalg.vector_norm(p.detach(), dims: dims, keepdim: true).div(linalg.vector_norm(d, dims: dims, keepdim: true).add(1e-10));
                parts.Add(d.mul(scale).reshape(-1));
            }
        return cat(parts.ToArray());
    }

    /// <summary>L(w + α·d) for α in [−span, span] at <paramref name="points"/> evenly spaced points.</summary>
    public static LandscapeGrid Slice1D(LossObjective objective, Tensor direction, double span = 1.0, int points = 21)
    {
        var alphas = Grid(span, points);
        var losses = new double[points, 1];
        for (int i = 0; i < points; i++)
        {
            using var scope = NewDisposeScope();
            losses[i, 0] = objective.LossAt(direction.mul(alphas[i]));
        }
        return new LandscapeGrid(alphas, Array.Empty<double>(), losses);
    }

    /// <summary>L(w + α·d₁ + β·d₂) on a <paramref name="points"/>×<paramref name="points"/> grid over [−span, span]².</summary>
    public static LandscapeGrid Slice2D(LossObjective objective, Tensor first, Tensor second, double span = 1.0, int points = 11)
    {
        var axis = Grid(span, points);
        var losses = new double[points, points];
        for (int i = 0; i < points; i++)
            for (int j = 0; j < points; j++)
            {
                using var scope = NewDisposeScope();
                losses[i, j] = objective.LossAt(first.mul(axis[i]).add_(second.mul(axis[j])));
            }
        return new LandscapeGrid(axis, axis.ToArray(), losses);
    }

    private static double[] Grid(double span, int points)
    {
        if (!(span > 0)) throw new ArgumentOutOfRangeException(nameof(span), span, "span must be > 0.");
        if (points < 2) throw new ArgumentOutOfRangeException(nameof(points), points, "points must be ≥ 2.");
        return Enumerable.Range(0, points).Select(i => -span + 2 * span * i / (points - 1)).ToArray();
    }
}
