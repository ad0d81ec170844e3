using System;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>
/// The exact Hessian of a small model and what follows from it exactly: the trace and every eigenvalue. The matrix is
/// built from P Hessian-vector products with the unit vectors e₁…e_P (P = <see cref="LossObjective.Dimension"/>), so
/// it costs P products and P² float64 values; use it as ground truth for the iterative estimators
/// (<see cref="HessianEigenvalues"/>, <see cref="HutchinsonTrace"/>) on models that can afford that.
/// </summary>
/// <remarks>
/// Every method refuses, before any product or allocation, an objective with more than <c>maxParameters</c>
/// parameters (default <see cref="DefaultMaxParameters"/>); pass a larger limit to allow it, restrict the objective to
/// a block of parameters (<see cref="LossObjective.Restrict"/>), or use the iterative estimators.
/// </remarks>
public static class DenseHessian
{
    /// <summary>
    /// The default largest number of parameters, 4,096: a 4,096 × 4,096 float64 matrix takes 128 MiB and needs
    /// 4,096 Hessian-vector products.
    /// </summary>
    public const long DefaultMaxParameters = 4096;

    /// <summary>
    /// The Hessian ∇²L(w) as a symmetric [P, P] float64 tensor on the CPU, in the objective's flat parameter order.
    /// Column i is H·eᵢ, computed in the objective's dtype; the matrix is symmetrized, (H + Hᵀ)/2, because
    /// double back-propagation is symmetric only up to rounding.
    /// </summary>
    /// <param name="objective">The loss and parameters.</param>
    /// <param name="maxParameters">The largest P accepted (see <see cref="DefaultMaxParameters"/>).</param>
    /// <exception cref="ArgumentException">The objective has more than <paramref name="maxParameters"/> parameters.</exception>
    public static Tensor Compute(LossObjective objective, long maxParameters = DefaultMaxParameters)
    {
        long p = CheckSize(objective, maxParameters);
        using var scope = NewDisposeScope();
        var hessian = empty(p, p, ScalarType.Float64);
        ForEachColumn(objective, (i, column) => hessian[i].copy_(column)); // row i = (H·eᵢ)ᵀ; H is symmetric
        return hessian.add(hessian.t()).mul_(0.5).MoveToOuterDisposeScope();
    }

    /// <summary>tr ∇²L(w) = Σᵢ eᵢᵀH·eᵢ, exact up to rounding (P Hessian-vector products; the matrix is not stored).</summary>
    /// <param name="objective">The loss and parameters.</param>
    /// <param name="maxParameters">The largest P accepted (see <see cref="DefaultMaxParameters"/>).</param>
    /// <exception cref="ArgumentException">The objective has more than <paramref name="maxParameters"/> parameters.</exception>
    public static double Trace(LossObjective objective, long maxParameters = DefaultMaxParameters)
    {
        CheckSize(objective, maxParameters);
        double trace = 0;
        ForEachColumn(objective, (i, column) => trace += column[i].ToDouble());
        return trace;
    }

    /// <summary>Every eigenvalue of ∇²L(w), largest first (<c>linalg.eigvalsh</c> of <see cref="Compute"/>).</summary>
    /// <param name="objective">The loss and parameters.</param>
    /// <param name="maxParameters">The largest P accepted (see <see cref="DefaultMaxParameters"/>).</param>
    /// <exception cref="ArgumentException">The objective has more than <paramref name="maxParameters"/> parameters.</exception>
    public static double[] Eigenvalues(LossObjective objective, long maxParameters = DefaultMaxParameters)
    {
        using var scope = NewDisposeScope();
        var values = linalg.eigvalsh(Compute(objective, maxParameters)).data<double>().ToArray();
        Array.Reverse(values); // eigvalsh returns them in ascending order
        return values;
    }

    // Calls use(i, H·eᵢ) for every unit vector eᵢ; each product lives until use returns.
    private static void ForEachColumn(LossObjective objective, Action<long, Tensor> use)
    {
        using var scope = NewDisposeScope();
        var unit = zeros(objective.Dimension, objective.DType, objective.Device);
        for (long i = 0; i < objective.Dimension; i++)
        {
            using var columnScope = NewDisposeScope();
            unit[i].fill_(1);
            use(i, objective.HessianVectorProduct(unit));
            unit[i].fill_(0);
        }
    }

    private static long CheckSize(LossObjective objective, long maxParameters)
    {
        ArgumentNullException.ThrowIfNull(objective);
        if (maxParameters < 1) throw new ArgumentOutOfRangeException(nameof(maxParameters), maxParameters, "maxParameters must be ≥ 1.");
        long p = objective.Dimension;
        if (p > maxParameters)
            throw new ArgumentException(
                $"The dense Hessian of {p:N0} parameters needs {p:N0} Hessian-vector products and a {p:N0} × {p:N0} float64 matrix " +
                $"({p * (double)p * sizeof(double) / (1 << 20):N0} MiB), more than maxParameters = {maxParameters:N0} allows. Pass a larger " +
                "maxParameters, restrict the objective to fewer parameters (LossObjective.Restrict), or use the iterative " +
                "HessianEigenvalues and HutchinsonTrace.", nameof(objective));
        return p;
    }
}
