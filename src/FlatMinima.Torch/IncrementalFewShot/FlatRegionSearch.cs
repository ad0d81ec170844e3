using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// The gradient of F2M's flat-region objective <c>J(θ) = (1/M)·Σ_j L(θ+ε_j) + w·std_j L(θ+ε_j)</c>, with ε_j noise on the
/// range parameters only. Every term passes its gradient (the reference code detaches part of its std term):
/// <c>∇J = Σ_j c_j ∇L(θ+ε_j)</c> with <c>c_j = 1/M + w·(L_j − mean)/((M−1)·std)</c>. Each sample is one forward and
/// backward pass at θ + ε_j; θ is restored exactly (copied back) after each. BatchNorm running statistics are updated on
/// the first sample only, so a step moves them once, as an ordinary step would.
/// </summary>
public sealed class FlatRegionSearch : IDisposable
{
    private readonly nn.Module _model;
    private readonly FlatRegionOptions _options;
    private readonly FlatRegionNoise _noise;
    private readonly Parameter[] _trainable;
    private readonly BatchNormStatisticsFreeze _batchNorm;

    /// <summary>Selects the range parameters of <paramref name="model"/> and draws noise from <paramref name="generator"/>.</summary>
    public FlatRegionSearch(nn.Module model, FlatRegionOptions options, Generator generator)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        _noise = new FlatRegionNoise(options, generator);
        RangeParameters = IncrementalFewShot.RangeParameters.Select(model, options.RangeLayerCount, options.RangeParameterNames);
        _trainable = model.parameters().Where(p => p.requires_grad).ToArray();
        _batchNorm = new BatchNormStatisticsFreeze(model);
    }

    /// <summary>The perturbed parameters, by name.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> RangeParameters { get; }

    /// <summary>
    /// Evaluates <paramref name="loss"/> (a closure running the forward pass and returning the scalar loss, without
    /// calling <c>backward</c>) at M noisy points, leaves <c>∇J</c> in the parameters' <c>.grad</c> and returns the
    /// M losses (detached, float64, CPU) in the caller's dispose scope. The weights are unchanged afterwards.
    /// </summary>
    public Tensor ComputeGradient(Func<Tensor> loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        int m = _options.NoiseSamples;
        var losses = new double[m];
        var gradients = new Tensor?[m][];
        using (var outer = NewDisposeScope())
        {
            var originals = RangeParameters.Select(p => p.Parameter.detach().clone()).ToArray();
            try
            {
                for (int j = 0; j < m; j++)
                {
                    using var scope = NewDisposeScope();
                    using (no_grad())
                        foreach (var (_, p) in RangeParameters) p.add_(_noise.Sample(p));
                    foreach (var p in _trainable) p.grad?.zero_();
                    if (j == 1) _batchNorm.Freeze();
                    var value = loss();
                    if (value.numel() != 1) throw new ArgumentException($"The loss must be a scalar; got shape [{string.Join(", ", value.shape)}].", nameof(loss));
                    value.backward();
                    losses[j] = value.ToDouble();
                    gradients[j] = _trainable.Select(p => p.grad?.clone().MoveToOuterDisposeScope()).ToArray();
                    using (no_grad())
                        for (int i = 0; i < originals.Length; i++) RangeParameters[i].Parameter.copy_(originals[i]);
                }
            }
            finally
            {
                _batchNorm.Unfreeze();
                using (no_grad())
                    for (int i = 0; i < originals.Length; i++) RangeParameters[i].Parameter.copy_(originals[i]);
            }

            var coefficients = Coefficients(losses, _options.StdWeight);
            using (no_grad())
            {
                for (int i = 0; i < _trainable.Length; i++)
                {
                    var grad = _trainable[i].grad;
                    if (grad is null) continue;
                    grad.zero_();
                    for (int j = 0; j < m; j++)
                        if (gradients[j][i] is Tensor g) grad.add_(g, coefficients[j]);
                }
            }
        }
        return tensor(losses);
    }

    /// <summary>The objective <c>mean + w·std</c> (unbiased std) of M sample losses.</summary>
    public static double Objective(IReadOnlyList<double> losses, double stdWeight)
    {
        double mean = losses.Average();
        return mean + (stdWeight > 0 && losses.Count > 1 ? stdWeight * Std(losses, mean) : 0);
    }

    // ∂J/∂L_j: 1/M from the mean, w·(L_j − mean)/((M−1)·std) from the std (0 where the std is 0, its subgradient).
    private static double[] Coefficients(double[] losses, double stdWeight)
    {
        int m = losses.Length;
        double mean = losses.Average();
        double std = m > 1 ? Std(losses, mean) : 0;
        return losses.Select(l => 1.0 / m + (stdWeight > 0 && std > 0 ? stdWeight * (l - mean) / ((m - 1) * std) : 0)).ToArray();
    }

    private static double Std(IReadOnlyList<double> values, double mean) =>
        Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));

    /// <summary>Releases the BatchNorm bookkeeping.</summary>
    public void Dispose() => _batchNorm.Dispose();
}
