using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>
/// Exact Hessian sharpness of deep linear networks / deep matrix factorization, f = s·‖W_L···W_1·X − Y‖²_F. Factors are
/// given first-layer first, W_i ∈ ℝ^{d_i × d_{i−1}}; X (d_0 × n) is the data, the identity when omitted (plain
/// factorization of the target M = Y); s is the loss scale (1 for the squared Frobenius norm, ½ for ½‖·‖², 1/(d_L·n)
/// for a mean-reduced MSE). Everything is computed in float64 from small matrices — no Hessian-vector products.
/// </summary>
/// <remarks>
/// <para>
/// With A_i = W_L···W_{i+1} and B_iX = W_{i−1}···W_1·X, the Hessian is 2s(JᵀJ + R-term): the Gauss–Newton part
/// 2s·JᵀJ, whose nonzero eigenvalues are 2s × those of the small matrix K = Σ_i (B_iX)ᵀ(B_iX) ⊗ A_iA_iᵀ, plus a term
/// linear in the residual R = W_L···W_1·X − Y. The eigenvalue expressions (<see cref="LambdaMax"/>,
/// <see cref="Eigenvalues"/>) are therefore exact only at zero-loss minimizers: they take the target Y and refuse
/// factors whose relative residual exceeds a tolerance. <see cref="GaussNewtonLambdaMax"/> gives the Gauss–Newton
/// value at any point, under that name. The trace (<see cref="Trace"/>) is exact everywhere.
/// </para>
/// <para>
/// Trap: Σ‖A_i‖₂²‖B_iX‖₂² (<see cref="UpperBound"/>) is only an upper bound of λ_max at depth ≥ 3 — it is exact for
/// depth 2 without data and for scalar factorizations.
/// </para>
/// </remarks>
public static class DeepLinearSharpness
{
    /// <summary>
    /// The default largest relative residual ‖W_L···W_1·X − Y‖_F / max(‖W_L···W_1·X‖_F, ‖Y‖_F) at which the
    /// eigenvalue expressions are accepted, 1e-6: float32 factors of an exact factorization pass, a point that is not
    /// a minimizer does not. The error of λ_max grows in proportion to the residual.
    /// </summary>
    public const double DefaultResidualTolerance = 1e-6;

    /// <summary>
    /// λ_max of the Hessian of f = s·‖W_L···W_1·X − Y‖²_F at a zero-loss minimizer: 2s·λ_max(K),
    /// K = Σ_i (B_iX)ᵀ(B_iX) ⊗ A_iA_iᵀ (size d_L·n).
    /// </summary>
    /// <param name="factors">W_1…W_L, first layer first.</param>
    /// <param name="target">Y (d_L × n), or M (d_L × d_0) without data.</param>
    /// <param name="data">X (d_0 × n); the identity when null.</param>
    /// <param name="scale">The loss scale s.</param>
    /// <param name="residualTolerance">The largest accepted <see cref="RelativeResidual"/> (see <see cref="DefaultResidualTolerance"/>).</param>
    /// <exception cref="ArgumentException">
    /// The factors are not at a minimizer: their relative residual exceeds <paramref name="residualTolerance"/> (the
    /// message gives it). There the expression is only the Gauss–Newton part; use <see cref="GaussNewtonLambdaMax"/>
    /// for that, or <see cref="DenseHessian"/> / <see cref="HessianEigenvalues"/> on a <see cref="LossObjective"/> for the Hessian.
    /// </exception>
    public static double LambdaMax(IReadOnlyList<Tensor> factors, Tensor target, Tensor? data = null, double scale = 1.0,
        double residualTolerance = DefaultResidualTolerance)
    {
        RequireMinimizer(factors, target, data, residualTolerance);
        return GaussNewtonLambdaMax(factors, data, scale);
    }

    /// <summary>
    /// The Hessian's eigenvalues at a zero-loss minimizer that can be nonzero: 2s × the eigenvalues of K, largest first
    /// (d_L·n values; the Hessian's other eigenvalues are 0). Refuses non-minimizers as <see cref="LambdaMax"/> does.
    /// </summary>
    /// <param name="factors">W_1…W_L, first layer first.</param>
    /// <param name="target">Y (d_L × n), or M (d_L × d_0) without data.</param>
    /// <param name="data">X (d_0 × n); the identity when null.</param>
    /// <param name="scale">The loss scale s.</param>
    /// <param name="residualTolerance">The largest accepted <see cref="RelativeResidual"/> (see <see cref="DefaultResidualTolerance"/>).</param>
    /// <exception cref="ArgumentException">The factors are not at a minimizer (see <see cref="LambdaMax"/>).</exception>
    public static double[] Eigenvalues(IReadOnlyList<Tensor> factors, Tensor target, Tensor? data = null, double scale = 1.0,
        double residualTolerance = DefaultResidualTolerance)
    {
        RequireMinimizer(factors, target, data, residualTolerance);
        using var scope = NewDisposeScope();
        return linalg.eigvalsh(KMatrix(factors, data)).flip(0).mul(2 * scale).data<double>().ToArray();
    }

    /// <summary>
    /// λ_max of the Gauss–Newton part 2s·JᵀJ of the Hessian, 2s·λ_max(K), at any point. It equals the Hessian's λ_max
    /// where the residual is zero (<see cref="LambdaMax"/>); elsewhere it leaves out the term linear in the residual.
    /// </summary>
    /// <param name="factors">W_1…W_L, first layer first.</param>
    /// <param name="data">X (d_0 × n); the identity when null.</param>
    /// <param name="scale">The loss scale s.</param>
    public static double GaussNewtonLambdaMax(IReadOnlyList<Tensor> factors, Tensor? data = null, double scale = 1.0)
    {
        using var scope = NewDisposeScope();
        return 2 * scale * linalg.eigvalsh(KMatrix(factors, data)).max().ToDouble();
    }

    /// <summary>The exact trace of the Hessian at <b>any</b> point: 2s·Σ_i ‖A_i‖²_F·‖B_iX‖²_F.</summary>
    public static double Trace(IReadOnlyList<Tensor> factors, Tensor? data = null, double scale = 1.0)
    {
        using var scope = NewDisposeScope();
        var (a, bx) = Products(factors, data);
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += a[i].square().sum().ToDouble() * bx[i].square().sum().ToDouble();
        return 2 * scale * sum;
    }

    /// <summary>
    /// Depth 2 without data: λ_max = 2s(‖W_1‖₂² + ‖W_2‖₂²), the λ_max of the factorization as a minimizer of
    /// s·‖M − W_2W_1‖²_F for its own product M = W_2W_1.
    /// </summary>
    public static double Depth2ClosedForm(Tensor w1, Tensor w2, double scale = 1.0)
    {
        using var scope = NewDisposeScope();
        return 2 * scale * (Math.Pow(SpectralNorm(w1), 2) + Math.Pow(SpectralNorm(w2), 2));
    }

    /// <summary>The flattest λ_max over all depth-<paramref name="depth"/> factorizations of <paramref name="product"/> (no data): 2sL·σ₁(M)^{2(L−1)/L}.</summary>
    public static double FlattestLambdaMax(Tensor product, int depth, double scale = 1.0)
    {
        if (depth < 1) throw new ArgumentOutOfRangeException(nameof(depth), depth, "depth must be ≥ 1.");
        using var scope = NewDisposeScope();
        return 2 * scale * depth * Math.Pow(SpectralNorm(product), 2.0 * (depth - 1) / depth);
    }

    /// <summary>
    /// Whether the factorization (no data), as a minimizer of s·‖M − W_L···W_1‖²_F for its own product M, attains the
    /// flattest λ_max of M, within a relative tolerance.
    /// </summary>
    public static bool IsFlattest(IReadOnlyList<Tensor> factors, double scale = 1.0, double relativeTolerance = 1e-8)
    {
        using var scope = NewDisposeScope();
        double lambda = GaussNewtonLambdaMax(factors, null, scale);
        double flattest = FlattestLambdaMax(Product(factors), factors.Count, scale);
        return lambda <= flattest * (1 + relativeTolerance);
    }

    /// <summary>
    /// The Cauchy–Schwarz upper bound 2s·Σ_i ‖A_i‖₂²‖B_iX‖₂² of <see cref="GaussNewtonLambdaMax"/> (the Hessian's λ_max
    /// at a minimizer) — exact only at depth 2 without data and for scalar factors.
    /// </summary>
    public static double UpperBound(IReadOnlyList<Tensor> factors, Tensor? data = null, double scale = 1.0)
    {
        using var scope = NewDisposeScope();
        var (a, bx) = Products(factors, data);
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += Math.Pow(SpectralNorm(a[i]), 2) * Math.Pow(SpectralNorm(bx[i]), 2);
        return 2 * scale * sum;
    }

    /// <summary>The product W_L···W_1, in float64 on the CPU (detached from the factors' graphs).</summary>
    public static Tensor Product(IReadOnlyList<Tensor> factors)
    {
        Check(factors, null);
        var p = factors[0].detach().to_type(ScalarType.Float64).cpu();
        for (int i = 1; i < factors.Count; i++) p = factors[i].detach().to_type(ScalarType.Float64).cpu().matmul(p);
        return p;
    }

    /// <summary>‖W_L···W_1·X − Y‖_F (Y = the target; X = I when omitted): zero at the minimizers where <see cref="LambdaMax"/> is exact.</summary>
    public static double Residual(IReadOnlyList<Tensor> factors, Tensor target, Tensor? data = null)
    {
        using var scope = NewDisposeScope();
        return ResidualMatrix(factors, target, data).norm().ToDouble();
    }

    /// <summary>
    /// ‖W_L···W_1·X − Y‖_F / max(‖W_L···W_1·X‖_F, ‖Y‖_F) (0 when both are zero): the residual relative to the size of
    /// the fit, which <see cref="LambdaMax"/> and <see cref="Eigenvalues"/> compare with their tolerance.
    /// </summary>
    public static double RelativeResidual(IReadOnlyList<Tensor> factors, Tensor target, Tensor? data = null)
    {
        using var scope = NewDisposeScope();
        var fit = Fit(factors, data);
        double size = Math.Max(fit.norm().ToDouble(), target.to_type(ScalarType.Float64).norm().ToDouble());
        double residual = ResidualMatrix(factors, target, data).norm().ToDouble();
        return size == 0 ? 0 : residual / size;
    }

    private static void RequireMinimizer(IReadOnlyList<Tensor> factors, Tensor target, Tensor? data, double residualTolerance)
    {
        if (!(residualTolerance >= 0))
            throw new ArgumentOutOfRangeException(nameof(residualTolerance), residualTolerance, "residualTolerance must be ≥ 0.");
        double relative = RelativeResidual(factors, target, data);
        if (relative > residualTolerance)
            throw new ArgumentException(
                $"The factors are not at a zero-loss minimizer: their relative residual (RelativeResidual) is {relative:G3} " +
                $"(‖W_L···W_1·X − Y‖_F = {Residual(factors, target, data):G3}), above residualTolerance = {residualTolerance:G3}. " +
                "The exact expression holds only where the residual is zero; elsewhere it is only the Gauss–Newton part " +
                "(GaussNewtonLambdaMax). For the Hessian at this point use DenseHessian or HessianEigenvalues on a LossObjective.",
                nameof(target));
    }

    // W_L···W_1·X in float64 (X = I when omitted).
    private static Tensor Fit(IReadOnlyList<Tensor> factors, Tensor? data)
    {
        var p = Product(factors);
        return data is null ? p : p.matmul(data.detach().to_type(ScalarType.Float64).cpu());
    }

    private static Tensor ResidualMatrix(IReadOnlyList<Tensor> factors, Tensor target, Tensor? data)
    {
        ArgumentNullException.ThrowIfNull(target);
        Check(factors, data);
        var fit = Fit(factors, data);
        if (target.dim() != 2 || target.shape[0] != fit.shape[0] || target.shape[1] != fit.shape[1])
            throw new ArgumentException(
                $"The target must be d_L × {(data is null ? "d_0" : "n")} = {fit.shape[0]} × {fit.shape[1]}; it has shape [{string.Join(", ", target.shape)}].", nameof(target));
        return fit.sub(target.detach().to_type(ScalarType.Float64).cpu());
    }

    private static Tensor KMatrix(IReadOnlyList<Tensor> factors, Tensor? data)
    {
        var (a, bx) = Products(factors, data);
        Tensor? k = null;
        for (int i = 0; i < a.Length; i++)
        {
            // Column-major vec: J_i = (B_iX)ᵀ ⊗ A_i, so J_iJ_iᵀ = (B_iX)ᵀ(B_iX) ⊗ A_iA_iᵀ.
            var term = kron(bx[i].t().matmul(bx[i]), a[i].matmul(a[i].t()));
            k = k is null ? term : k.add(term);
        }
        return k!;
    }

    // A_i = W_L···W_{i+1} (I for i = L) and B_iX = W_{i−1}···W_1·X (X for i = 1), in float64.
    private static (Tensor[] A, Tensor[] BX) Products(IReadOnlyList<Tensor> factors, Tensor? data)
    {
        Check(factors, data);
        var w = factors.Select(f => f.detach().to_type(ScalarType.Float64).cpu()).ToArray();
        int L = w.Length;
        var x = data is null ? eye(w[0].shape[1], dtype: ScalarType.Float64) : data.detach().to_type(ScalarType.Float64).cpu();
        var bx = new Tensor[L];
        bx[0] = x;
        for (int i = 1; i < L; i++) bx[i] = w[i - 1].matmul(bx[i - 1]);
        var a = new Tensor[L];
        a[L - 1] = eye(w[L - 1].shape[0], dtype: ScalarType.Float64);
        for (int i = L - 2; i >= 0; i--) a[i] = a[i + 1].matmul(w[i + 1]);
        return (a, bx);
    }

    private static double SpectralNorm(Tensor m) => linalg.svdvals(m.to_type(ScalarType.Float64)).max().ToDouble();

    private static void Check(IReadOnlyList<Tensor> factors, Tensor? data)
    {
        ArgumentNullException.ThrowIfNull(factors);
        if (factors.Count == 0) throw new ArgumentException("At least one factor is needed.", nameof(factors));
        for (int i = 0; i < factors.Count; i++)
        {
            if (factors[i].dim() != 2) throw new ArgumentException($"Factor W_{i + 1} must be a matrix; it has shape [{string.Join(", ", factors[i].shape)}].", nameof(factors));
            if (i > 0 && factors[i].shape[1] != factors[i - 1].shape[0])
                throw new ArgumentException($"W_{i + 1} has {factors[i].shape[1]} columns but W_{i} has {factors[i - 1].shape[0]} rows (factors go first layer first).", nameof(factors));
        }
        if (data is not null && (data.dim() != 2 || data.shape[0] != factors[0].shape[1]))
            throw new ArgumentException($"The data X must be d_0 × n = {factors[0].shape[1]} × n; it has shape [{string.Join(", ", data.shape)}].", nameof(data));
    }
}
