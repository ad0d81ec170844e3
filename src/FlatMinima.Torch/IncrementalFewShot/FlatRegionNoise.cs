using System;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>Draws F2M's weight noise: every element in [−b/2, +b/2], seeded by a generator on the CPU.</summary>
internal sealed class FlatRegionNoise
{
    private static readonly double[] BetaShapes = { 0.3, 0.5, 1, 2, 3, 4, 5 };
    private readonly FlatRegionOptions _options;
    private readonly Generator _generator;

    /// <summary>Creates a sampler for <paramref name="options"/> drawing from <paramref name="generator"/> (a CPU generator).</summary>
    public FlatRegionNoise(FlatRegionOptions options, Generator generator)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _generator = generator ?? throw new ArgumentNullException(nameof(generator));
        options.Validate();
    }

    /// <summary>Noise shaped like <paramref name="like"/>, on its device and of its dtype (created in the caller's dispose scope).</summary>
    public Tensor Sample(Tensor like)
    {
        double b = _options.Bound;
        using var scope = NewDisposeScope();
        Tensor noise;
        if (_options.Noise == FlatRegionNoiseKind.Uniform)
        {
            noise = rand(like.shape, ScalarType.Float64, generator: _generator).sub_(0.5).mul_(b);
        }
        else
        {
            var shapes = randint(BetaShapes.Length, new long[] { 2 }, generator: _generator).data<long>();
            double alpha = BetaShapes[shapes[0]], beta = BetaShapes[shapes[1]];
            int r = _options.ReductionFactor;
            // u ~ Beta(α, β) = X / (X + Y) with X ~ Gamma(α), Y ~ Gamma(β); bins 0…r of width 1/(r+1) map to −b/2 … +b/2.
            var x = _standard_gamma(full(like.shape, alpha, ScalarType.Float64), _generator);
            var y = _standard_gamma(full(like.shape, beta, ScalarType.Float64), _generator);
            var u = x.div(x.add(y).clamp_min(1e-300));
            var bin = u.mul(r + 1).floor_().clamp_(0, r);
            noise = bin.sub_(r / 2.0).mul_(b / r);
        }
        return noise.to(like.dtype, like.device).MoveToOuterDisposeScope();
    }
}
