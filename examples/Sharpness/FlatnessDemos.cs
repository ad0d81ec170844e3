using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Diagnostics;
using FlatMinima.Torch.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Examples.Sharpness;

/// <summary>
/// The two exact demonstrations of Schliserman, Vansover-Hager &amp; Koren, "Flat Minima and Generalization: Insights
/// from Stochastic Convex Optimization" (arXiv 2511.03548): SAM can stay at a sharp point where SA-GD with the exact
/// inner maximum reaches a flat region, and a flat empirical minimum can have a bad population risk. They run on the
/// library's public API; <c>Program.cs</c> prints them and the Torch test project checks their numbers.
/// </summary>
public static class FlatnessDemos
{
    /// <summary>Outcome of <see cref="SamVersusExactSaGd"/>.</summary>
    /// <param name="SamWeights">SAM's iterates w₁…w_T (w₁ = 0).</param>
    /// <param name="SaGdWeights">SA-GD's iterates with the exact inner maximum.</param>
    /// <param name="SamSharpnessAwareRisk">max over |v| ≤ r of f(w_T + v) for SAM's last iterate.</param>
    /// <param name="SaGdSharpnessAwareRisk">The same for SA-GD's last iterate.</param>
    public sealed record SamVersusSaGdResult(double[] SamWeights, double[] SaGdWeights, double SamSharpnessAwareRisk, double SaGdSharpnessAwareRisk);

    /// <summary>
    /// f(w) = ½·max(0, w)², from w₁ = 0 with radius r and step η, <paramref name="steps"/> steps. SAM (this library's
    /// <see cref="SharpnessAwareMinimizer"/>, normalized-gradient ascent) sees g = 0 at the kink, takes ε = 0 and never
    /// moves: it stays at a sharp point (risk r²/2). SA-GD with the exact inner maximum v = argmax_{|v|≤r} f(w + v)
    /// walks into the flat region: w_T = −r + r(1 − η)^{T−1}.
    /// </summary>
    public static SamVersusSaGdResult SamVersusExactSaGd(double r = 0.2, double eta = 0.5, int steps = 9)
    {
        static Tensor F(Tensor w) => clamp_min(w, 0).square().sum().mul(0.5);
        static double FValue(double w) => 0.5 * Math.Pow(Math.Max(0, w), 2);
        double Risk(double w) => Math.Max(FValue(w - r), FValue(w + r)); // f is convex: the max over an interval is at an end

        var sam = new List<double> { 0 };
        using (var scope = NewDisposeScope())
        {
            var w = new Parameter(zeros(1, ScalarType.Float64));
            using var sgd = optim.SGD(new[] { w }, eta);
            using var minimizer = new SharpnessAwareMinimizer(new[] { ("weight", w) }, sgd, SharpnessAwareOptions.Sam(r));
            for (int t = 0; t < steps; t++)
            {
                minimizer.Step(() => { var l = F(w); l.backward(); return l; });
                sam.Add(w.ToDouble());
            }
        }

        var sagd = new List<double> { 0 };
        for (int t = 0; t < steps; t++)
        {
            double w = sagd[^1];
            double v = FValue(w + r) >= FValue(w - r) ? r : -r; // exact inner maximum (ties: +r)
            sagd.Add(w - eta * Math.Max(0, w + v));             // f'(u) = max(0, u)
        }
        return new SamVersusSaGdResult(sam.ToArray(), sagd.ToArray(), Risk(sam[^1]), Risk(sagd[^1]));
    }

    /// <summary>Outcome of <see cref="FlatEmpiricalMinimumWithBadPopulationRisk"/>.</summary>
    /// <param name="FlatEmpiricalRisk">F_S at the flat minimum e_I (0).</param>
    /// <param name="SharpEmpiricalRisk">F_S at the sharp minimum ρ·e_d (0).</param>
    /// <param name="FlatSharpnessAwareRisk">SAER at e_I, exact: ½(r − ρ)².</param>
    /// <param name="SharpSharpnessAwareRisk">SAER at ρ·e_d, exact: ½r².</param>
    /// <param name="FlatSharpnessAwareRiskSearched">SAER at e_I found by <see cref="SharpnessMeasures.WorstCase"/>.</param>
    /// <param name="SharpSharpnessAwareRiskSearched">SAER at ρ·e_d found by <see cref="SharpnessMeasures.WorstCase"/>.</param>
    /// <param name="FlatPopulationRisk">F(e_I) = E_z f(e_I, z), exact by enumerating all z: (1 − ρ)²/4.</param>
    /// <param name="SharpPopulationRisk">F(ρ·e_d) (0).</param>
    public sealed record FlatBadMinimumResult(double FlatEmpiricalRisk, double SharpEmpiricalRisk, double FlatSharpnessAwareRisk,
        double SharpSharpnessAwareRisk, double FlatSharpnessAwareRiskSearched, double SharpSharpnessAwareRiskSearched,
        double FlatPopulationRisk, double SharpPopulationRisk);

    /// <summary>The three samples z ∈ {0,1}⁸ of the instance; coordinate I = 4 is 0 in all of them.</summary>
    public static readonly IReadOnlyList<int[]> Samples = new[]
    {
        new[] { 1, 0, 1, 1, 0, 0, 1, 0 },
        new[] { 0, 1, 1, 0, 0, 1, 0, 1 },
        new[] { 1, 1, 0, 1, 0, 1, 0, 0 },
    };

    /// <summary>
    /// f(w, z) = ½·[√(Σᵢ zᵢwᵢ² + w_d²) − ρ]₊², z uniform on {0,1}⁸, d = 9, ρ = 0.25, r = 0.5, three samples in which the
    /// spurious coordinate I = 4 is always 0. Both e_I and ρ·e_d are empirical minimizers; e_I is the flat one (it minimizes
    /// the sharpness-aware risk) yet its population risk is (1 − ρ)²/4 = 0.140625, while the sharp ρ·e_d has 0.
    /// Flatness is a diagnostic, not a guarantee of generalization.
    /// </summary>
    public static FlatBadMinimumResult FlatEmpiricalMinimumWithBadPopulationRisk(double rho = 0.25, double r = 0.5)
    {
        const int d = 9, spurious = 4;
        using var scope = NewDisposeScope();
        var flat = zeros(d, ScalarType.Float64); flat[spurious] = 1.0;
        var sharp = zeros(d, ScalarType.Float64); sharp[d - 1] = rho;

        Tensor Loss(Tensor w, IReadOnlyList<int[]> zs)
        {
            var z = tensor(zs.SelectMany(x => x.Select(v => (double)v)).ToArray()).reshape(zs.Count, 8);
            var inner = z.mul(w.narrow(0, 0, 8).square()).sum(1).add(w[d - 1].square()).add(1e-30); // keeps √ differentiable at 0
            return inner.sqrt().sub(rho).clamp_min(0).square().mul(0.5).mean();
        }
        var population = Enumerable.Range(0, 256).Select(bits => Enumerable.Range(0, 8).Select(i => (bits >> i) & 1).ToArray()).ToArray();

        double Searched(Tensor at)
        {
            var w = new Parameter(at.clone());
            using var objective = new LossObjective(new[] { w }, new Func<Tensor>[] { () => Loss(w, Samples) });
            return SharpnessMeasures.WorstCase(objective, r, PerturbationNorm.L2, options: new AscentOptions { Steps = 100, RandomStarts = 8, Seed = 1 }).PerturbedLoss;
        }

        return new FlatBadMinimumResult(
            Loss(flat, Samples).ToDouble(), Loss(sharp, Samples).ToDouble(),
            0.5 * (r - rho) * (r - rho), 0.5 * r * r,
            Searched(flat), Searched(sharp),
            Loss(flat, population).ToDouble(), Loss(sharp, population).ToDouble());
    }
}
