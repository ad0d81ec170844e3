using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>Which eigenvalues an eigensolver returns.</summary>
public enum EigenvalueOrder
{
    /// <summary>The largest algebraic values (the sharpest directions; at a minimum all eigenvalues are ≥ 0 and this equals <see cref="LargestMagnitude"/>).</summary>
    LargestAlgebraic,

    /// <summary>The largest |λ| (what power iteration and PyHessian return; can be negative away from minima).</summary>
    LargestMagnitude,
}

/// <summary>Settings of the Hessian eigensolvers.</summary>
public sealed record EigenOptions
{
    /// <summary>
    /// The default relative <see cref="Tolerance"/>, 1e-3, shared by every eigensolver entry point (including the ML.NET
    /// sharpness report). Both solvers stop on a residual test, ‖Hv − λv‖ ≤ tol·|λ|, so an eigenvalue is within
    /// tol·|λ| of a true eigenvalue (and, for an eigenvalue separated from the others by a gap δ, within about
    /// (tol·λ)²/δ). A test on the change of λ alone, as in PyHessian, can stop early on a plateau; the residual test does
    /// not. A tighter 1e-4 mostly costs Hessian-vector products: power iteration then often reaches its iteration cap
    /// on networks whose top eigenvalues are close.
    /// </summary>
    public const double DefaultTolerance = 1e-3;

    /// <summary>The default <see cref="MaxIterationsPerEigenvalue"/>, 100.</summary>
    public const int DefaultMaxIterationsPerEigenvalue = 100;

    /// <summary>The default <see cref="KrylovDimension"/>, 100.</summary>
    public const int DefaultKrylovDimension = 100;

    /// <summary>
    /// Power iteration: the most iterations (Hessian-vector products) spent on each eigenvalue; k eigenvalues cost at
    /// most k times this. Default <see cref="DefaultMaxIterationsPerEigenvalue"/>.
    /// </summary>
    public int MaxIterationsPerEigenvalue { get; init; } = DefaultMaxIterationsPerEigenvalue;

    /// <summary>
    /// Lanczos: the largest Krylov subspace built, i.e. the most Hessian-vector products for all k eigenvalues together
    /// (capped at the number of parameters); it must be at least k. Default <see cref="DefaultKrylovDimension"/>.
    /// </summary>
    public int KrylovDimension { get; init; } = DefaultKrylovDimension;

    /// <summary>
    /// Relative tolerance: power iteration stops when both the change of λ and the residual ‖Hv − λv‖ are ≤ tol·|λ|;
    /// Lanczos when every wanted Ritz residual is. Default <see cref="DefaultTolerance"/>.
    /// </summary>
    public double Tolerance { get; init; } = DefaultTolerance;

    /// <summary>Seed of the random start vector.</summary>
    public int Seed { get; init; }

    /// <summary>Which eigenvalues Lanczos returns (power iteration always finds the largest magnitude).</summary>
    public EigenvalueOrder Order { get; init; } = EigenvalueOrder.LargestAlgebraic;

    internal void ValidateForPowerIteration(int k, long dimension)
    {
        Validate(k, dimension);
        if (MaxIterationsPerEigenvalue < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxIterationsPerEigenvalue), MaxIterationsPerEigenvalue, "MaxIterationsPerEigenvalue must be ≥ 1.");
    }

    internal void ValidateForLanczos(int k, long dimension)
    {
        Validate(k, dimension);
        if (KrylovDimension < k)
            throw new ArgumentOutOfRangeException(nameof(KrylovDimension), KrylovDimension, $"KrylovDimension must be ≥ k = {k} (the number of eigenvalues wanted).");
    }

    private void Validate(int k, long dimension)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "The number of eigenvalues k must be ≥ 1.");
        if (k > dimension) throw new ArgumentOutOfRangeException(nameof(k), k, $"k = {k} is larger than the number of parameters ({dimension}).");
        if (!(Tolerance > 0)) throw new ArgumentOutOfRangeException(nameof(Tolerance), Tolerance, "Tolerance must be > 0.");
    }
}

/// <summary>Eigenvalues of the Hessian, with how they were obtained.</summary>
/// <param name="Values">The eigenvalues, in the solver's order (largest first).</param>
/// <param name="Order">Which eigenvalues these are.</param>
/// <param name="HessianVectorProducts">How many Hessian-vector products were computed.</param>
/// <param name="Converged">Whether every value met the tolerance before the iteration cap.</param>
public sealed record EigenResult(IReadOnlyList<double> Values, EigenvalueOrder Order, int HessianVectorProducts, bool Converged);

/// <summary>Top Hessian eigenvalues by Hessian-vector products: power iteration with deflation, and Lanczos.</summary>
public static class HessianEigenvalues
{
    /// <summary>
    /// Power iteration with deflation (Gram–Schmidt against the eigenvectors already found), as PyHessian, but with a
    /// residual test: stops when |λₖ − λₖ₋₁| ≤ tol·|λₖ| and ‖Hv − λv‖ ≤ tol·|λₖ|. Returns the <b>largest-magnitude</b> eigenvalues.
    /// </summary>
    public static EigenResult PowerIteration(LossObjective objective, int k = 1, EigenOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(objective);
        var o = options ?? new EigenOptions();
        o.ValidateForPowerIteration(k, objective.Dimension);
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)o.Seed, CPU);
        var found = new List<Tensor>();
        var values = new List<double>();
        int products = 0;
        bool allConverged = true;
        for (int e = 0; e < k; e++)
        {
            var v = Normalize(Orthogonalize(RandomVectors.Gaussian(objective, generator), found));
            double lambda = double.NaN;
            bool converged = false;
            for (int it = 0; it < o.MaxIterationsPerEigenvalue && !converged; it++)
            {
                using var iterationScope = NewDisposeScope();
                var hv = Orthogonalize(objective.HessianVectorProduct(v), found);
                products++;
                double next = v.dot(hv).ToDouble();
                double residual = hv.sub(v.mul(next)).norm().ToDouble();
                converged = !double.IsNaN(lambda) && Math.Abs(next - lambda) <= o.Tolerance * Math.Abs(next) && residual <= o.Tolerance * Math.Abs(next);
                lambda = next;
                double norm = hv.norm().ToDouble();
                if (norm == 0) { converged = true; break; } // v is in the null space: λ = 0
                v.copy_(hv.div(norm));
            }
            allConverged &= converged;
            values.Add(lambda);
            found.Add(v);
        }
        return new EigenResult(values, EigenvalueOrder.LargestMagnitude, products, allConverged);
    }

    /// <summary>
    /// Lanczos with full re-orthogonalization: builds a Krylov basis until the top-k Ritz values (in
    /// <see cref="EigenOptions.Order"/>) have residual estimates β·|s| ≤ tol·|θ|, or the basis reaches
    /// <see cref="EigenOptions.KrylovDimension"/> vectors. Memory: one flat vector per step. Like every single-vector Krylov method it reports a repeated eigenvalue
    /// once; use <see cref="PowerIteration"/> (deflation) to see multiplicities.
    /// </summary>
    public static EigenResult Lanczos(LossObjective objective, int k = 1, EigenOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(objective);
        var o = options ?? new EigenOptions();
        o.ValidateForLanczos(k, objective.Dimension);
        using var scope = NewDisposeScope();
        var generator = new Generator((ulong)o.Seed, CPU);
        int m = (int)Math.Min(o.KrylovDimension, objective.Dimension);
        var basis = new List<Tensor> { Normalize(RandomVectors.Gaussian(objective, generator)) };
        var alpha = new List<double>();
        var beta = new List<double>();
        double[] ritz = Array.Empty<double>();
        bool converged = false;
        for (int j = 0; j < m; j++)
        {
            var w = objective.HessianVectorProduct(basis[j]);
            double a = basis[j].dot(w).ToDouble();
            alpha.Add(a);
            w = Orthogonalize(Orthogonalize(w, basis), basis); // twice is enough (Kahan–Parlett)
            double b = w.norm().ToDouble();
            (ritz, var residuals) = Ritz(alpha, beta, b, o.Order);
            if (j + 1 >= k)
            {
                converged = Enumerable.Range(0, k).All(i => residuals[i] <= o.Tolerance * Math.Max(Math.Abs(ritz[i]), 1e-300));
                if (converged) break;
            }
            if (j + 1 == m) break;
            if (b <= 1e-12 * Math.Max(1, Math.Abs(a)))
            {
                // Invariant subspace found: continue from a fresh random vector orthogonal to the basis.
                var fresh = Orthogonalize(Orthogonalize(RandomVectors.Gaussian(objective, generator), basis), basis);
                basis.Add(Normalize(fresh));
                beta.Add(0);
                continue;
            }
            beta.Add(b);
            basis.Add(w.div(b));
        }
        return new EigenResult(ritz.Take(k).ToArray(), o.Order, alpha.Count, converged || alpha.Count == objective.Dimension);
    }

    private static (double[] Values, double[] Residuals) Ritz(List<double> alpha, List<double> beta, double lastBeta, EigenvalueOrder order)
    {
        int n = alpha.Count;
        using var scope = NewDisposeScope();
        var t = zeros(n, n, ScalarType.Float64);
        for (int i = 0; i < n; i++)
        {
            t[i, i] = alpha[i];
            if (i + 1 < n) { t[i, i + 1] = beta[i]; t[i + 1, i] = beta[i]; }
        }
        var (values, vectors) = linalg.eigh(t);
        var theta = values.data<double>().ToArray();
        var last = vectors[n - 1].data<double>().ToArray(); // last components of the Ritz vectors
        var index = Enumerable.Range(0, n).OrderByDescending(i => order == EigenvalueOrder.LargestAlgebraic ? theta[i] : Math.Abs(theta[i])).ToArray();
        return (index.Select(i => theta[i]).ToArray(), index.Select(i => Math.Abs(lastBeta * last[i])).ToArray());
    }

    private static Tensor Normalize(Tensor v) => v.div(v.norm());

    private static Tensor Orthogonalize(Tensor v, IReadOnlyList<Tensor> basis)
    {
        foreach (var q in basis) v = v.sub(q.mul(q.dot(v)));
        return v;
    }
}
