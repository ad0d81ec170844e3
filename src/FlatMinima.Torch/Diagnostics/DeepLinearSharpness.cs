using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>
/// Exact Hessian sharpness of deep linear networks / deep matrix factorization, f = s·‖W_L···W_1·X − Y‖²_F
/// (shared/specs/sharpness.md §1.2). Factors are given first-layer first, W_i ∈ ℝ^{d_i × d_{i−1}}; X (d_0 × n) is the
/// data, the identity when omitted (plain factorization of M = W_L···W_1). Everything is computed in float64 from
/// small matrices — no Hessian-vector products.
/// </summary>
/// <remarks>
/// Trap: Σ‖A_i‖₂²‖B_iX‖₂² (<see cref="UpperBound"/>) is only an upper bound of λ_max at depth ≥ 3 — it is exact for
/// depth 2 without data and for scalar factorizations. The K-matrix value (<see cref="LambdaMax"/>) is the exact one.
/// </remarks>
public static class DeepLinearSharpness
{
    /// <summary>
    /// λ_max of the Hessian at a zero-loss minimizer: 2s·λ_max(K), K = Σ_i (B_iX)ᵀ(B_iX) ⊗ A_iA_iᵀ (size d_L·n). Valid only
    /// where the residual W_L···W_1·X − Y is zero (check with <see cref="Residual"/>); elsewhere it is the Gauss–Newton part.
    /// </summary>
    public static double LambdaMax(IReadOnlyList<Tensor> factors, Tensor? data = null, double scale = 1.0)
    {
        using var scope = NewDisposeScope();
        var k = KMatrix(factors, data);
        return 2 * scale * linalg.eigvalsh(k).max().ToDouble();
    }

    /// <summary>All nonzero-capable Hessian eigenvalues at a minimizer: 2s × the eigenvalues of K, largest first.</summary>
    public static double[] Eigenvalues(IReadOnlyList<Tensor> factors, Tensor? data = null, double scale = 1.0)
    {
        using var scope = NewDisposeScope();
        return linalg.eigvalsh(KMatrix(factors, data)).data<double>().Select(v => 2 * scale * v).OrderByDescending(v => v).ToArray();
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

    /// <summary>Depth 2 without data: λ_max = 2s(‖W_1‖₂² + ‖W_2‖₂²) at a minimizer.</summary>
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

    /// <summary>Whether the factorization (no data) attains the flattest λ_max of its product, within a relative tolerance.</summary>
    public static bool IsFlattest(IReadOnlyList<Tensor> factors, double scale = 1.0, double relativeTolerance = 1e-8)
    {
        using var scope = NewDisposeScope();
        double lambda = LambdaMax(factors, null, scale);
        double flattest = FlattestLambdaMax(Product(factors), factors.Count, scale);
        return lambda <= flattest * (1 + relativeTolerance);
    }

    /// <summary>The Cauchy–Schwarz upper bound 2s·Σ_i ‖A_i‖₂²‖B_iX‖₂² — exact only at depth 2 without data and for scalar factors.</summary>
    public static double UpperBound(IReadOnlyList<Tensor> factors, Tensor? data = null, double scale = 1.0)
    {
        using var scope = NewDisposeScope();
        var (a, bx) = Products(factors, data);
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += Math.Pow(SpectralNorm(a[i]), 2) * Math.Pow(SpectralNorm(bx[i]), 2);
        return 2 * scale * sum;
    }

    /// <summary>The product W_L···W_1.</summary>
    public static Tensor Product(IReadOnlyList<Tensor> factors)
    {
        Check(factors, null);
        var p = factors[0].to_type(ScalarType.Float64);
        for (int i = 1; i < factors.Count; i++) p = factors[i].to_type(ScalarType.Float64).matmul(p);
        return p;
    }

    /// <summary>‖W_L···W_1·X − Y‖_F (Y = the target; X = I when omitted): zero at the minimizers where <see cref="LambdaMax"/> is exact.</summary>
    public static double Residual(IReadOnlyList<Tensor> factors, Tensor target, Tensor? data = null)
    {
        using var scope = NewDisposeScope();
        var p = Product(factors);
        var px = data is null ? p : p.matmul(data.to_type(ScalarType.Float64));
        return px.sub(target.to_type(ScalarType.Float64)).norm().ToDouble();
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
