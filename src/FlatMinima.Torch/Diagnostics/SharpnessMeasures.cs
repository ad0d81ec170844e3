using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>The norm of a sharpness neighbourhood.</summary>
public enum PerturbationNorm
{
    /// <summary>‖δ ⊘ c‖₂ ≤ ρ.</summary>
    L2,

    /// <summary>|δᵢ / cᵢ| ≤ ρ for every i (a box).</summary>
    LInfinity,
}

/// <summary>Settings of the worst-case sharpness searches (projected gradient ascent).</summary>
public sealed record AscentOptions
{
    /// <summary>Projected ascent steps per start.</summary>
    public int Steps { get; init; } = 20;

    /// <summary>Extra random starts besides the gradient-direction start (the best value over all starts is kept).</summary>
    public int RandomStarts { get; init; } = 3;

    /// <summary>Seed of the random starts.</summary>
    public int Seed { get; init; }

    internal void Validate()
    {
        if (Steps < 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "Steps must be ≥ 1.");
        if (RandomStarts < 0) throw new ArgumentOutOfRangeException(nameof(RandomStarts), RandomStarts, "RandomStarts must be ≥ 0.");
    }
}

/// <summary>A sharpness value: how much the loss rises in a neighbourhood of w.</summary>
/// <param name="Value">The sharpness (its definition depends on the measure).</param>
/// <param name="Loss">L(w).</param>
/// <param name="PerturbedLoss">The loss at the worst (or mean) perturbation found.</param>
/// <param name="StandardError">For the average case: the Monte-Carlo standard error; 0 for worst-case searches.</param>
public sealed record SharpnessValue(double Value, double Loss, double PerturbedLoss, double StandardError = 0);

/// <summary>
/// Sharpness measures at the current weights: SAM's worst-case ℓ₂ sharpness (Foret et al., 2021),
/// Keskar et al.'s ε-sharpness and the adaptive worst- and average-case sharpness of Andriushchenko et al.; each also
/// as m-sharpness (per batch, averaged). Worst cases are found by projected gradient ascent from the gradient
/// direction and random starts; they are lower bounds of the true maximum.
/// </summary>
public static class SharpnessMeasures
{
    /// <summary>
    /// max over ‖δ ⊘ c‖ ≤ ρ of L(w + δ) − L(w), with c = 1 (standard; ℓ₂ is SAM's) or c = |w| (<paramref name="adaptive"/>).
    /// </summary>
    public static SharpnessValue WorstCase(LossObjective objective, double rho, PerturbationNorm norm = PerturbationNorm.L2,
        bool adaptive = false, AscentOptions? options = null)
    {
        CheckRadius(rho, nameof(rho));
        using var scope = NewDisposeScope();
        var scale = adaptive ? objective.GetWeights().abs() : null;
        var (loss, best) = Ascend(objective, rho, norm, scale, options ?? new AscentOptions());
        return new SharpnessValue(best - loss, loss, best);
    }

    /// <summary>
    /// Keskar et al.'s ε-sharpness (full space, A = I): 100·(max over |δᵢ| ≤ ε(|wᵢ| + 1) of L(w + δ) − L(w)) / (1 + L(w)).
    /// </summary>
    public static SharpnessValue EpsilonSharpness(LossObjective objective, double epsilon = 1e-3, AscentOptions? options = null)
    {
        CheckRadius(epsilon, nameof(epsilon));
        using var scope = NewDisposeScope();
        var box = objective.GetWeights().abs().add_(1);
        var (loss, best) = Ascend(objective, epsilon, PerturbationNorm.LInfinity, box, options ?? new AscentOptions());
        return new SharpnessValue(100 * (best - loss) / (1 + loss), loss, best);
    }

    /// <summary>
    /// Average-case sharpness E[L(w + δ)] − L(w) with δ ~ N(0, ρ²·diag(c²)), c = 1 or |w| (<paramref name="adaptive"/>),
    /// over <paramref name="samples"/> seeded draws, with its standard error.
    /// </summary>
    public static SharpnessValue AverageCase(LossObjective objective, double rho, bool adaptive = false, int samples = 100, int seed = 0)
    {
        CheckRadius(rho, nameof(rho));
        if (samples < 2) throw new ArgumentOutOfRangeException(nameof(samples), samples, "At least 2 samples are needed.");
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)seed, CPU);
        var c = adaptive ? objective.GetWeights().abs() : ones(objective.Dimension, objective.DType, objective.Device);
        double loss = objective.Loss();
        var rises = new double[samples];
        for (int i = 0; i < samples; i++)
        {
            using var sampleScope = NewDisposeScope();
            var delta = RandomVectors.Gaussian(objective, generator).mul(c).mul_(rho);
            rises[i] = objective.LossAt(delta) - loss;
        }
        double mean = rises.Average();
        double se = Math.Sqrt(rises.Sum(r => (r - mean) * (r - mean)) / (samples - 1) / samples);
        return new SharpnessValue(mean, loss, loss + mean, se);
    }

    /// <summary>m-sharpness: <paramref name="measure"/> on each batch separately (m = the batch size), averaged over batches.</summary>
    public static SharpnessValue PerBatch(LossObjective objective, Func<LossObjective, SharpnessValue> measure)
    {
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(measure);
        var values = new List<SharpnessValue>();
        foreach (var batch in objective.PerBatch())
            using (batch)
                values.Add(measure(batch));
        double mean = values.Average(v => v.Value);
        double se = values.Count > 1 ? Math.Sqrt(values.Sum(v => (v.Value - mean) * (v.Value - mean)) / (values.Count - 1) / values.Count) : 0;
        return new SharpnessValue(mean, values.Average(v => v.Loss), values.Average(v => v.PerturbedLoss), se);
    }

    // Projected gradient ascent in u = δ ⊘ c over the ball/box of radius ρ. Returns (L(w), best L(w + c⊙u)).
    private static (double Loss, double Best) Ascend(LossObjective objective, double rho, PerturbationNorm norm, Tensor? c, AscentOptions options)
    {
        options.Validate();
        var generator = new Generator((ulong)options.Seed, CPU);
        double loss = objective.Loss();
        double best = loss;
        var scale = c ?? ones(objective.Dimension, objective.DType, objective.Device);
        for (int start = 0; start <= options.RandomStarts; start++)
        {
            using var startScope = NewDisposeScope();
            // Start 0 follows the gradient (SAM's direction); the others start at random points of the boundary.
            var direction = start == 0 ? objective.Gradient().mul(scale) : RandomVectors.Gaussian(objective, generator);
            if (direction.abs().max().ToDouble() == 0) direction = RandomVectors.Gaussian(objective, generator);
            var u = Project(Step(zeros_like(direction), direction, rho, norm), rho, norm);
            for (int step = 0; step < options.Steps; step++)
            {
                using var stepScope = NewDisposeScope();
                var (perturbed, gradient) = objective.LossAndGradientAt(u.mul(scale));   // one pass gives the loss and the ascent direction
                best = Math.Max(best, perturbed);
                var g = gradient.mul(scale);
                if (g.abs().max().ToDouble() == 0) break;
                u.copy_(Project(Step(u, g, rho, norm), rho, norm));
            }
            best = Math.Max(best, objective.LossAt(u.mul(scale)));
        }
        return (loss, best);
    }

    private static Tensor Step(Tensor u, Tensor g, double rho, PerturbationNorm norm) =>
        norm == PerturbationNorm.L2 ? u.add(g.div(g.norm()).mul(rho)) : u.add(g.sign().mul(rho));

    private static Tensor Project(Tensor u, double rho, PerturbationNorm norm)
    {
        if (norm == PerturbationNorm.LInfinity) return u.clamp(-rho, rho);
        double length = u.norm().ToDouble();
        return length > rho ? u.mul(rho / length) : u;
    }

    private static void CheckRadius(double value, string name)
    {
        if (!(value > 0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number > 0.");
    }
}
