using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Examples.Sharpness;
using FlatMinima.Torch.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class DeepLinearDiagnosticsTests
{
    private static readonly EigenOptions Tight = new() { Tolerance = 1e-10, KrylovDimension = 400, Seed = 3 };

    private static Tensor M(double[,] values) => tensor(values, ScalarType.Float64);

    // The target that makes the factors a zero-loss minimizer: Y = W_L···W_1·X.
    private static Tensor Fitted(IReadOnlyList<Tensor> factors, Tensor? data = null) =>
        data is null ? DeepLinearSharpness.Product(factors) : DeepLinearSharpness.Product(factors).matmul(data);

    // f = s·‖W_L···W_1·X − Y‖²_F (Y = the current product unless given: a zero-loss minimizer), as a LossObjective over the factors.
    private static (LossObjective Objective, Parameter[] Factors) Objective(IReadOnlyList<Tensor> factors, Tensor? data, double scale, Tensor? target = null)
    {
        var ps = factors.Select(f => new Parameter(f.clone())).ToArray();
        var x = data ?? eye(factors[0].shape[1], dtype: ScalarType.Float64);
        var y = target ?? Fitted(factors, data);
        Tensor Loss()
        {
            Tensor p = ps[0];
            for (int i = 1; i < ps.Length; i++) p = ps[i].matmul(p);
            return p.matmul(x).sub(y).square().sum().mul(scale);
        }
        return (new LossObjective(ps, new Func<Tensor>[] { Loss }), ps);
    }

    private static void AssertRelative(double expected, double actual, double tolerance, string what) =>
        Assert.IsTrue(Math.Abs(actual - expected) <= tolerance * Math.Abs(expected), $"{what}: expected {expected}, got {actual}");

    public static IEnumerable<object[]> Factorizations()
    {
        manual_seed(5);
        var a = randn(3, 3, dtype: ScalarType.Float64);
        yield return new object[] { "depth 2 square unbalanced", new[] { a, randn(3, 3, dtype: ScalarType.Float64).mul(2) }, null!, 1.0 };
        var (u, s, vt) = linalg.svd(randn(3, 3, dtype: ScalarType.Float64));
        var half = diag(s.sqrt());
        yield return new object[] { "depth 2 balanced (flattest)", new[] { half.matmul(vt), u.matmul(half) }, null!, 0.5 };
        yield return new object[] { "depth 3 rectangular widths 3-4-3-2", new[] { randn(4, 3, dtype: ScalarType.Float64), randn(3, 4, dtype: ScalarType.Float64), randn(2, 3, dtype: ScalarType.Float64) }, null!, 1.0 };
        yield return new object[] { "depth 3 with non-whitened data", new[] { randn(3, 2, dtype: ScalarType.Float64), randn(3, 3, dtype: ScalarType.Float64), randn(2, 3, dtype: ScalarType.Float64) },
            randn(2, 5, dtype: ScalarType.Float64).mul(tensor(new[] { 3.0, 0.5 }, ScalarType.Float64).view(2, 1)), 1.0 / 10 };
        yield return new object[] { "depth 2 with data", new[] { randn(2, 3, dtype: ScalarType.Float64), randn(3, 2, dtype: ScalarType.Float64) }, randn(3, 4, dtype: ScalarType.Float64), 1.0 };
    }

    public static string Name(System.Reflection.MethodInfo method, object[] data) => $"{method.Name}({data[0]})";

    private static IEnumerable<double> Distinct(IEnumerable<double> sortedDescending)
    {
        double? last = null;
        foreach (var v in sortedDescending)
        {
            if (last is double l && Math.Abs(l - v) <= 1e-9 * Math.Max(1, Math.Abs(l))) continue;
            last = v;
            yield return v;
        }
    }

    [TestMethod]
    [DynamicData(nameof(Factorizations), DynamicDataDisplayName = nameof(Name))]
    public void HessianVectorProductsAgreeWithTheExactExpressions(string name, Tensor[] factors, Tensor? data, double scale)
    {
        var (objective, _) = Objective(factors, data, scale);
        double exactLambda = DeepLinearSharpness.LambdaMax(factors, Fitted(factors, data), data, scale);
        double exactTrace = DeepLinearSharpness.Trace(factors, data, scale);
        // At a minimizer the expressions are the Hessian's: every eigenvalue that can be nonzero, and λ_max.
        var dense = DenseHessian.Eigenvalues(objective);
        var exact = DeepLinearSharpness.Eigenvalues(factors, Fitted(factors, data), data, scale);
        AssertRelative(dense[0], exactLambda, 1e-9, $"{name}: λ_max vs the dense Hessian");
        for (int i = 0; i < Math.Min(dense.Length, exact.Length); i++) Assert.AreEqual(dense[i], exact[i], 1e-9 * dense[0], $"{name}: eigenvalue {i} vs the dense Hessian");
        Assert.IsTrue(dense.Skip(exact.Length).All(v => Math.Abs(v) <= 1e-9 * dense[0]), $"{name}: the Hessian's other eigenvalues are 0");
        AssertRelative(exactLambda, HessianEigenvalues.Lanczos(objective, 1, Tight).Values[0], 1e-4, $"{name}: Lanczos λ_max");
        var power = HessianEigenvalues.PowerIteration(objective, 1, Tight with { MaxIterationsPerEigenvalue = 5000 });
        AssertRelative(exactLambda, power.Values[0], 1e-4, $"{name}: power-iteration λ_max");
        AssertRelative(exactTrace, DenseHessian.Trace(objective), 1e-8, $"{name}: trace");
        var hutchinson = HutchinsonTrace.Estimate(objective, probes: 200, seed: 1);
        Assert.IsTrue(Math.Abs(hutchinson.Trace - exactTrace) <= 5 * hutchinson.StandardError, $"{name}: Hutchinson {hutchinson} vs {exactTrace}");
        // The top-3 Lanczos values match the K-matrix spectrum's top-3 distinct values (a single-vector Krylov space
        // holds one direction of each eigenspace, so Lanczos reports a repeated eigenvalue once).
        var top3 = HessianEigenvalues.Lanczos(objective, 3, Tight with { KrylovDimension = (int)objective.Dimension }).Values;
        var exact3 = Distinct(exact).Take(3).ToArray();
        for (int i = 0; i < 3; i++) Assert.AreEqual(exact3[i], top3[i], 1e-6 * Math.Max(1, exact3[0]), $"{name}: eigenvalue {i}");
    }

    [TestMethod]
    public void Depth2ClosedFormAndTheFlattestMinimum()
    {
        // W1 = [3; 4], W2 = [0 5]: spectral norms are equal (5 and 5), yet λ = 100 > 80 = 4σ₁(M): not the flattest.
        var w1 = M(new double[,] { { 3 }, { 4 } });
        var w2 = M(new double[,] { { 0, 5 } });
        Assert.AreEqual(100, DeepLinearSharpness.LambdaMax(new[] { w1, w2 }, Fitted(new[] { w1, w2 })), 1e-9);
        Assert.AreEqual(100, DeepLinearSharpness.Depth2ClosedForm(w1, w2), 1e-9);
        Assert.AreEqual(80, DeepLinearSharpness.FlattestLambdaMax(DeepLinearSharpness.Product(new[] { w1, w2 }), 2), 1e-9);
        Assert.IsFalse(DeepLinearSharpness.IsFlattest(new[] { w1, w2 }));
        // W1 = [[1,1],[0,1]], W2 = W1⁻¹, M = I: λ = 2(3 + √5) > 4.
        var shear = M(new double[,] { { 1, 1 }, { 0, 1 } });
        var inverse = M(new double[,] { { 1, -1 }, { 0, 1 } });
        Assert.AreEqual(2 * (3 + Math.Sqrt(5)), DeepLinearSharpness.LambdaMax(new[] { shear, inverse }, eye(2, dtype: ScalarType.Float64)), 1e-9);
        Assert.IsFalse(DeepLinearSharpness.IsFlattest(new[] { shear, inverse }));
        // The balanced aligned factorization W_i = Q_i S^{1/L} Q_{i−1}ᵀ attains 2sL·σ₁^{2(L−1)/L}.
        var s3 = diag(tensor(new[] { 8.0, 1.0 }, ScalarType.Float64).pow(1.0 / 3));
        var balanced = new[] { s3, s3, s3 };
        Assert.AreEqual(2 * 3 * Math.Pow(8, 4.0 / 3), DeepLinearSharpness.LambdaMax(balanced, diag(tensor(new[] { 8.0, 1.0 }, ScalarType.Float64))), 1e-9);
        Assert.IsTrue(DeepLinearSharpness.IsFlattest(balanced));
    }

    [TestMethod]
    public void TheSpectralNormSumIsOnlyAnUpperBoundAtDepthThree()
    {
        // Misaligned diagonal factors: the top singular directions of A_i and B_i disagree.
        var factors = new[] { M(new double[,] { { 3, 0 }, { 0, 1 } }), M(new double[,] { { 1, 0 }, { 0, 3 } }), M(new double[,] { { 2, 0 }, { 0, 1 } }) };
        double exact = DeepLinearSharpness.LambdaMax(factors, Fitted(factors)), bound = DeepLinearSharpness.UpperBound(factors);
        Assert.IsTrue(bound > exact * 1.05, $"bound {bound} vs exact {exact}");
        var (objective, _) = Objective(factors, null, 1.0);
        AssertRelative(exact, HessianEigenvalues.Lanczos(objective, 1, Tight).Values[0], 1e-6, "HVP agrees with the exact value, not the bound");
    }

    [TestMethod]
    public void ScalarFactorizationHasRankOne()
    {
        var factors = new[] { 0.5, 2.0, 3.0 }.Select(v => M(new[,] { { v } })).ToArray();
        double expected = 2 * (2.0 * 2 * 3 * 3 + 0.25 * 9 + 0.25 * 4);
        Assert.AreEqual(expected, DeepLinearSharpness.LambdaMax(factors, M(new[,] { { 3.0 } })), 1e-9);
        Assert.AreEqual(expected, DeepLinearSharpness.Trace(factors), 1e-9);
        Assert.AreEqual(expected, DeepLinearSharpness.UpperBound(factors), 1e-9);
    }

    [TestMethod]
    public void AwayFromAMinimizerLambdaMaxRefusesAndReportsTheResidual()
    {
        manual_seed(11);
        var factors = new[] { randn(3, 2, dtype: ScalarType.Float64), randn(2, 3, dtype: ScalarType.Float64) };
        var target = Fitted(factors).add(randn(2, 2, dtype: ScalarType.Float64).mul(0.5));
        double residual = DeepLinearSharpness.Residual(factors, target);
        Assert.IsTrue(residual > 0.1, $"residual {residual}");
        Assert.IsTrue(DeepLinearSharpness.RelativeResidual(factors, target) > DeepLinearSharpness.DefaultResidualTolerance);
        var error = Assert.ThrowsExactly<ArgumentException>(() => DeepLinearSharpness.LambdaMax(factors, target));
        Assert.AreEqual("target", error.ParamName);
        StringAssert.Contains(error.Message, "not at a zero-loss minimizer");
        StringAssert.Contains(error.Message, residual.ToString("G3"), "the message reports the residual");
        Assert.ThrowsExactly<ArgumentException>(() => DeepLinearSharpness.Eigenvalues(factors, target));
        // Why it refuses: there the Hessian's λ_max is not the Gauss–Newton value the expression gives.
        var (objective, _) = Objective(factors, null, 1.0, target);
        double hessian = DenseHessian.Eigenvalues(objective)[0], gaussNewton = DeepLinearSharpness.GaussNewtonLambdaMax(factors);
        Assert.IsTrue(Math.Abs(hessian - gaussNewton) > 1e-3 * hessian, $"Hessian {hessian} vs Gauss–Newton {gaussNewton}");
        // A loose tolerance accepts the point and gives the Gauss–Newton value.
        Assert.AreEqual(gaussNewton, DeepLinearSharpness.LambdaMax(factors, target, residualTolerance: 10), 1e-12);
    }

    [TestMethod]
    public void ANearlyExactFloat32FactorizationIsAccepted()
    {
        manual_seed(12);
        var factors = new[] { randn(3, 2), randn(2, 3) };   // float32
        var target = factors[1].matmul(factors[0]);           // the float32 product: residual at float32 rounding
        Assert.IsTrue(DeepLinearSharpness.Residual(factors, target) > 0, "float32 rounding leaves a residual");
        var (objective, _) = Objective(factors.Select(f => f.to_type(ScalarType.Float64)).ToArray(), null, 1.0);
        AssertRelative(DenseHessian.Eigenvalues(objective)[0], DeepLinearSharpness.LambdaMax(factors, target), 1e-6, "λ_max within float32 accuracy");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DeepLinearSharpness.LambdaMax(factors, randn(3, 3))).Message, "2 × 2");
    }

    [TestMethod]
    public void TraceIsExactAwayFromMinimizersToo()
    {
        manual_seed(9);
        var factors = new[] { randn(3, 2, dtype: ScalarType.Float64), randn(2, 3, dtype: ScalarType.Float64) };
        var (objective, _) = Objective(factors, null, 1.0, target: randn(2, 2, dtype: ScalarType.Float64));
        AssertRelative(DeepLinearSharpness.Trace(factors), DenseHessian.Trace(objective), 1e-9, "trace at a non-minimizer");
    }
}

[TestClass]
public sealed class HessianDiagnosticsTests
{
    [TestMethod]
    public void SoftmaxCrossEntropyLinearModelMatchesItsClosedFormHessian()
    {
        manual_seed(2);
        int n = 12, dIn = 4, k = 3;
        var x = randn(n, dIn, dtype: ScalarType.Float64);
        var y = randint(0, k, new long[] { n });
        var w = new Parameter(randn(k, dIn, dtype: ScalarType.Float64).mul(0.5));
        using var objective = new LossObjective(new[] { w }, new Func<Tensor>[] { () => nn.functional.cross_entropy(x.matmul(w.t()), y) });
        // H = (1/N)·Σ_n (diag(p) − ppᵀ) ⊗ x xᵀ for W flattened row-major.
        var p = nn.functional.softmax(x.matmul(w.detach().t()), 1);
        var h = zeros(k * dIn, k * dIn, ScalarType.Float64);
        for (int i = 0; i < n; i++) h.add_(kron(diag(p[i]).sub(outer(p[i], p[i])), outer(x[i], x[i])));
        h.div_(n);
        Assert.IsTrue(DenseHessian.Compute(objective).allclose(h, rtol: 1e-10, atol: 1e-12), "the dense Hessian is the closed form");
        var eig = linalg.eigvalsh(h);
        double lambda = eig.max().item<double>(), trace = h.trace().item<double>();
        var options = new EigenOptions { Tolerance = 1e-10, KrylovDimension = 200, Seed = 1 };
        Assert.AreEqual(lambda, HessianEigenvalues.Lanczos(objective, 1, options).Values[0], 1e-4 * lambda);
        Assert.AreEqual(lambda, HessianEigenvalues.PowerIteration(objective, 1, options with { MaxIterationsPerEigenvalue = 5000 }).Values[0], 1e-4 * lambda);
        var sorted = eig.data<double>().OrderByDescending(v => v).ToArray();
        var top2 = HessianEigenvalues.PowerIteration(objective, 2, options with { MaxIterationsPerEigenvalue = 5000 });
        Assert.AreEqual(sorted[1], top2.Values[1], 1e-4 * lambda, "deflation finds the second eigenvalue");
        var estimate = HutchinsonTrace.Estimate(objective, 300, ProbeDistribution.Gaussian, seed: 4);
        Assert.IsTrue(Math.Abs(estimate.Trace - trace) <= 5 * estimate.StandardError, $"{estimate} vs {trace}");
    }

    [TestMethod]
    public void KeptGradientGraphsGiveTheSameProductsAsRebuiltOnes()
    {
        manual_seed(3);
        var x = randn(24, 4, dtype: ScalarType.Float64);
        var y = randint(0, 3, new long[] { 24 });
        var w = new Parameter(randn(3, 4, dtype: ScalarType.Float64).mul(0.5));
        var batches = Enumerable.Range(0, 3).Select(b => (Func<Tensor>)(() => nn.functional.cross_entropy(x.narrow(0, 8 * b, 8).matmul(w.t()), y.narrow(0, 8 * b, 8)))).ToArray();
        using var rebuilt = new LossObjective(new[] { w }, batches) { CachedGraphBatches = 0 };
        using var kept = new LossObjective(new[] { w }, batches) { CachedGraphBatches = int.MaxValue };
        using var partly = new LossObjective(new[] { w }, batches) { CachedGraphBatches = 2 };
        for (int r = 0; r < 3; r++)   // repeated products reuse the kept graphs
        {
            var v = randn(12, dtype: ScalarType.Float64);
            var expected = rebuilt.HessianVectorProduct(v);
            Assert.IsTrue(expected.allclose(kept.HessianVectorProduct(v), rtol: 1e-12, atol: 1e-14), "all graphs kept");
            Assert.IsTrue(expected.allclose(partly.HessianVectorProduct(v), rtol: 1e-12, atol: 1e-14), "two of three graphs kept");
        }
        var delta = randn(12, dtype: ScalarType.Float64).mul(0.1);
        var (loss, gradient) = kept.LossAndGradientAt(delta);
        Assert.AreEqual(kept.LossAt(delta), loss, 1e-12, "one pass gives the perturbed loss");
        Assert.IsTrue(gradient.allclose(kept.GradientAt(delta)), "and its gradient");
        var v2 = randn(12, dtype: ScalarType.Float64);
        Assert.IsTrue(rebuilt.HessianVectorProduct(v2).allclose(kept.HessianVectorProduct(v2), rtol: 1e-12, atol: 1e-14), "graphs rebuilt after the weights were restored");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => kept.CachedGraphBatches = -1);
    }

    [TestMethod]
    public void LargestAlgebraicAndLargestMagnitudeDifferAtASaddle()
    {
        var w = new Parameter(tensor(new[] { 0.3, -0.2 }, ScalarType.Float64));
        var a = tensor(new double[,] { { -5, 0 }, { 0, 2 } }, ScalarType.Float64);
        using var objective = new LossObjective(new[] { w }, new Func<Tensor>[] { () => w.matmul(a.matmul(w)).mul(0.5) });
        var options = new EigenOptions { Tolerance = 1e-12, Seed = 1 };
        Assert.AreEqual(2.0, HessianEigenvalues.Lanczos(objective, 1, options).Values[0], 1e-9);
        Assert.AreEqual(-5.0, HessianEigenvalues.Lanczos(objective, 1, options with { Order = EigenvalueOrder.LargestMagnitude }).Values[0], 1e-9);
        Assert.AreEqual(-5.0, HessianEigenvalues.PowerIteration(objective, 1, options).Values[0], 1e-9);
    }

    [TestMethod]
    public void EachSolverStopsAtItsOwnCap()
    {
        manual_seed(4);
        var a = randn(12, 12, dtype: ScalarType.Float64);
        var h = a.matmul(a.t());
        var w = new Parameter(randn(12, dtype: ScalarType.Float64));
        using var objective = new LossObjective(new[] { w }, new Func<Tensor>[] { () => w.matmul(h.matmul(w)).mul(0.5) });
        var unreachable = new EigenOptions { Tolerance = 1e-300, MaxIterationsPerEigenvalue = 3, KrylovDimension = 5, Seed = 1 };
        var power = HessianEigenvalues.PowerIteration(objective, 2, unreachable);
        Assert.AreEqual(2 * 3, power.HessianVectorProducts, "power iteration: the cap applies to each eigenvalue");
        Assert.IsFalse(power.Converged);
        var lanczos = HessianEigenvalues.Lanczos(objective, 2, unreachable);
        Assert.AreEqual(5, lanczos.HessianVectorProducts, "Lanczos: the cap is the Krylov dimension, for all eigenvalues together");
        Assert.IsFalse(lanczos.Converged);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => HessianEigenvalues.Lanczos(objective, 3, unreachable with { KrylovDimension = 2 })).Message, "KrylovDimension");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => HessianEigenvalues.PowerIteration(objective, 1, unreachable with { MaxIterationsPerEigenvalue = 0 })).Message, "MaxIterationsPerEigenvalue");
    }

    [TestMethod]
    public void BadInputsGiveClearErrors()
    {
        var w = new Parameter(zeros(3));
        var loss = new Func<Tensor>[] { () => w.square().sum() };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new LossObjective(new[] { w }, Array.Empty<Func<Tensor>>())).Message, "empty");
        var frozen = new Parameter(zeros(3), requires_grad: false);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new LossObjective(new[] { frozen }, loss)).Message, "no trainable parameters");
        using var objective = new LossObjective(new[] { w }, loss);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => HessianEigenvalues.Lanczos(objective, 4)).Message, "larger than the number of parameters");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => HessianEigenvalues.PowerIteration(objective, 1, new EigenOptions { Tolerance = 0 })).Message, "Tolerance");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SharpnessMeasures.WorstCase(objective, -0.1)).Message, "rho");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SharpnessMeasures.EpsilonSharpness(objective, 0)).Message, "epsilon");
        using var vectorLoss = new LossObjective(new[] { w }, new Func<Tensor>[] { () => w.square() });
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => vectorLoss.Loss()).Message, "must be a scalar");
    }
}

[TestClass]
public sealed class DenseHessianTests
{
    // L(w) = ½wᵀAw + bᵀw over two parameters (a 2×2 matrix and a 2-vector, flattened in that order): ∇²L = A.
    private static (LossObjective Objective, Tensor A) Quadratic(ScalarType dtype)
    {
        var a = tensor(new double[,]
        {
            { 4, 1, 0, -2, 0.5, 0 }, { 1, 3, 0.5, 0, 0, 1 }, { 0, 0.5, -1, 0, 2, 0 },
            { -2, 0, 0, 5, 0, 0.25 }, { 0.5, 0, 2, 0, 2, 0 }, { 0, 1, 0, 0.25, 0, -3 },
        }, ScalarType.Float64);
        var b = tensor(new[] { 1.0, -1, 0.5, 0, 2, -0.5 }, ScalarType.Float64);
        var matrix = new Parameter(tensor(new[] { 0.3, -0.7, 1.1, 0.2 }, dtype).reshape(2, 2));
        var vector = new Parameter(tensor(new[] { -0.4, 0.9 }, dtype));
        Tensor Loss()
        {
            var w = cat(new[] { matrix.reshape(-1), vector }).to(ScalarType.Float64);
            return w.matmul(a.matmul(w)).mul(0.5).add(b.dot(w)).to(dtype);
        }
        return (new LossObjective(new[] { matrix, vector }, new Func<Tensor>[] { Loss }), a);
    }

    [TestMethod]
    public void TheDenseHessianOfAQuadraticIsItsMatrix()
    {
        var (objective, a) = Quadratic(ScalarType.Float64);
        using (objective)
        {
            var h = DenseHessian.Compute(objective);
            CollectionAssert.AreEqual(new long[] { 6, 6 }, h.shape);
            Assert.AreEqual(ScalarType.Float64, h.dtype);
            Assert.IsTrue(h.allclose(a, rtol: 0, atol: 1e-12), "∇²L = A, in the flat parameter order");
            Assert.AreEqual(0.0, h.sub(h.t()).abs().max().item<double>(), "exactly symmetric");
            var expected = linalg.eigvalsh(a).data<double>().Reverse().ToArray();
            var eigenvalues = DenseHessian.Eigenvalues(objective);
            for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], eigenvalues[i], 1e-12, $"eigenvalue {i}");
            Assert.IsTrue(eigenvalues.Zip(eigenvalues.Skip(1)).All(pair => pair.First >= pair.Second), "largest first");
            Assert.IsTrue(eigenvalues[^1] < 0, "an indefinite A keeps its negative eigenvalues");
            double trace = DenseHessian.Trace(objective);
            Assert.AreEqual(a.trace().item<double>(), trace, 1e-12);
            Assert.AreEqual(eigenvalues.Sum(), trace, 1e-10, "trace = sum of the eigenvalues");
        }
    }

    [TestMethod]
    public void AFloat32ObjectiveGivesAFloat64Matrix()
    {
        var (objective, a) = Quadratic(ScalarType.Float32);
        using (objective)
        {
            var h = DenseHessian.Compute(objective);
            Assert.AreEqual(ScalarType.Float64, h.dtype);
            Assert.IsTrue(h.allclose(a, rtol: 0, atol: 1e-5), "float32 products, float64 storage");
        }
    }

    [TestMethod]
    public void TooManyParametersAreRefusedBeforeAnyProduct()
    {
        int evaluations = 0;
        var w = new Parameter(zeros(10, ScalarType.Float64));
        using var objective = new LossObjective(new[] { w }, new Func<Tensor>[] { () => { evaluations++; return w.square().sum(); } });
        var error = Assert.ThrowsExactly<ArgumentException>(() => DenseHessian.Compute(objective, maxParameters: 8));
        StringAssert.Contains(error.Message, "maxParameters = 8");
        Assert.ThrowsExactly<ArgumentException>(() => DenseHessian.Trace(objective, maxParameters: 8));
        Assert.ThrowsExactly<ArgumentException>(() => DenseHessian.Eigenvalues(objective, maxParameters: 8));
        Assert.AreEqual(0, evaluations, "refused before any Hessian-vector product");
        Assert.AreEqual(20.0, DenseHessian.Trace(objective, maxParameters: 10), 1e-12, "a raised limit allows it: ∇²(Σw²) = 2I");

        int before = evaluations;
        var large = new Parameter(zeros(DenseHessian.DefaultMaxParameters + 1, ScalarType.Float64));
        using var tooLarge = new LossObjective(new[] { large }, new Func<Tensor>[] { () => { evaluations++; return large.square().sum(); } });
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => DenseHessian.Compute(tooLarge)).Message, "4,097 parameters");
        Assert.AreEqual(before, evaluations, "the default limit is 4,096 parameters");
    }
}

[TestClass]
public sealed class SharpnessMeasureTests
{
    // L(w) = 0.25 + ½(w−w*)ᵀA(w−w*) at w = w*, where every measure has a closed form (e.g. ℓ₂ worst case ρ²/2·λ_max(A)).
    private static LossObjective Quadratic()
    {
        var a = tensor(new double[,] { { 3, 1, 0 }, { 1, 2, 0.5 }, { 0, 0.5, 1 } }, ScalarType.Float64);
        var star = tensor(new[] { 0.5, -1, 2 }, ScalarType.Float64);
        var w = new Parameter(star.clone());
        return new LossObjective(new[] { w }, new Func<Tensor>[] { () => { var d = w - star; return d.matmul(a.matmul(d)).mul(0.5).add(0.25); } });
    }

    [TestMethod]
    public void WorstCaseMeasuresMatchTheQuadraticOracle()
    {
        using var q = Quadratic();
        var options = new AscentOptions { Steps = 60, RandomStarts = 4, Seed = 2 };
        Assert.AreEqual(0.0182248627073, SharpnessMeasures.WorstCase(q, 0.1, options: options).Value, 1e-9, "ℓ₂ worst case (SAM)");
        Assert.AreEqual(0.0221219284636, SharpnessMeasures.WorstCase(q, 0.1, adaptive: true, options: options).Value, 1e-9, "adaptive ℓ₂");
        Assert.AreEqual(0.04875, SharpnessMeasures.WorstCase(q, 0.1, PerturbationNorm.LInfinity, adaptive: true, options: options).Value, 1e-9, "adaptive ℓ∞");
        Assert.AreEqual(0.00143, SharpnessMeasures.EpsilonSharpness(q, 1e-3, options).Value, 1e-9, "Keskar ε-sharpness");
    }

    [TestMethod]
    public void AverageCaseIsWithinFiveStandardErrorsOfTheOracle()
    {
        using var q = Quadratic();
        var plain = SharpnessMeasures.AverageCase(q, 0.1, samples: 400, seed: 3);
        Assert.IsTrue(Math.Abs(plain.Value - 0.03) <= 5 * plain.StandardError, $"{plain.Value} ± {plain.StandardError}");
        var adaptive = SharpnessMeasures.AverageCase(q, 0.1, adaptive: true, samples: 400, seed: 3);
        Assert.IsTrue(Math.Abs(adaptive.Value - 0.03375) <= 5 * adaptive.StandardError, $"{adaptive.Value} ± {adaptive.StandardError}");
    }

    [TestMethod]
    public void MSharpnessAveragesPerBatchValues()
    {
        var w = new Parameter(tensor(new[] { 0.0, 0.0 }, ScalarType.Float64));
        var batches = new Func<Tensor>[] { () => w[0].square(), () => w[1].square().mul(3) };
        using var objective = new LossObjective(new[] { w }, batches);
        var options = new AscentOptions { Steps = 30, Seed = 1 };
        var m = SharpnessMeasures.PerBatch(objective, o => SharpnessMeasures.WorstCase(o, 0.1, options: options));
        Assert.AreEqual((0.01 + 0.03) / 2, m.Value, 1e-9, "per-batch maxima averaged");
        Assert.AreEqual(0.03 / 2, SharpnessMeasures.WorstCase(objective, 0.1, options: options).Value, 1e-9, "full-data maximum");
    }
}

[TestClass]
public sealed class FlatnessDemoTests
{
    [TestMethod]
    public void SamStaysAtTheSharpPointWhileExactSaGdReachesTheFlatRegion()
    {
        var result = FlatnessDemos.SamVersusExactSaGd(r: 0.2, eta: 0.5, steps: 9);
        Assert.IsTrue(result.SamWeights.All(w => w == 0), "SAM never moves");
        Assert.AreEqual(0.02, result.SamSharpnessAwareRisk, 1e-15);
        Assert.AreEqual(-0.199609375, result.SaGdWeights[^1], 1e-15);
        Assert.AreEqual(0.5 * Math.Pow(0.000390625, 2), result.SaGdSharpnessAwareRisk, 1e-18);
    }

    [TestMethod]
    public void TheFlatEmpiricalMinimumHasTheBadPopulationRisk()
    {
        var r = FlatnessDemos.FlatEmpiricalMinimumWithBadPopulationRisk();
        Assert.AreEqual(0, r.FlatEmpiricalRisk, 1e-12);
        Assert.AreEqual(0, r.SharpEmpiricalRisk, 1e-12);
        Assert.AreEqual(0.03125, r.FlatSharpnessAwareRisk);
        Assert.AreEqual(0.125, r.SharpSharpnessAwareRisk);
        Assert.AreEqual(0.03125, r.FlatSharpnessAwareRiskSearched, 1e-6, "the ascent search finds the exact SAER");
        Assert.AreEqual(0.125, r.SharpSharpnessAwareRiskSearched, 1e-6);
        Assert.AreEqual(0.140625, r.FlatPopulationRisk, 1e-12);
        Assert.AreEqual(0, r.SharpPopulationRisk, 1e-12);
    }
}
