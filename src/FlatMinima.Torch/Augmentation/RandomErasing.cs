using System;
using System.Globalization;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// Random erasing (Zhong et al. 2020; torchvision's <c>RandomErasing</c>, value 0): with probability
/// <see cref="Probability"/> a rectangle of each image is set to 0 in every channel — on standardized values, the data
/// set's mean. Its area is a fraction of the image in [<see cref="MinArea"/>, <see cref="MaxArea"/>] and its aspect
/// ratio (height / width) log-uniform in [<see cref="MinRatio"/>, <see cref="MaxRatio"/>]; sides are rounded down to
/// whole pixels (at least 1) and clipped to the image (torchvision redraws instead), so the erased area can fall below
/// <see cref="MinArea"/> by that rounding. One mask per batch from per-image row and column ranges.
/// </summary>
public sealed record RandomErasing
{
    /// <summary>Probability that an image gets a rectangle erased, in [0, 1].</summary>
    public double Probability { get; init; } = 0.5;

    /// <summary>Smallest erased fraction of the image, in (0, 1].</summary>
    public double MinArea { get; init; } = 0.02;

    /// <summary>Largest erased fraction of the image, in [<see cref="MinArea"/>, 1].</summary>
    public double MaxArea { get; init; } = 0.33;

    /// <summary>Smallest aspect ratio (height / width) of the rectangle, &gt; 0.</summary>
    public double MinRatio { get; init; } = 0.3;

    /// <summary>Largest aspect ratio of the rectangle, ≥ <see cref="MinRatio"/>.</summary>
    public double MaxRatio { get; init; } = 3.3;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        AugmentationChecks.Probability(Probability, nameof(Probability));
        AugmentationChecks.Range(MinArea, MaxArea, nameof(MinArea), nameof(MaxArea), 0, 1, lowExclusive: true);
        AugmentationChecks.Range(MinRatio, MaxRatio, nameof(MinRatio), nameof(MaxRatio), 0, double.MaxValue, lowExclusive: true);
    }

    /// <summary>The batch <c>[N, C, H, W]</c> with the drawn rectangles set to 0 (created in the caller's dispose scope).</summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        long n = batch.shape[0], h = batch.shape[2], w = batch.shape[3];
        using var scope = NewDisposeScope();
        var erase = RandomDraws.Bernoulli(generator, n, Probability);
        var area = RandomDraws.Uniform(generator, n, MinArea, MaxArea).mul_(h * w);
        var ratio = RandomDraws.Uniform(generator, n, Math.Log(MinRatio), Math.Log(MaxRatio)).exp_();
        var height = area.mul(ratio).sqrt_().floor_().clamp_(1, h).to_type(ScalarType.Int64);
        var width = area.div(ratio).sqrt_().floor_().clamp_(1, w).to_type(ScalarType.Int64);
        var top = RandomDraws.Below(generator, n, height.neg().add_(h + 1));
        var left = RandomDraws.Below(generator, n, width.neg().add_(w + 1));
        var device = batch.device;
        var rows = Inside(arange(h, ScalarType.Int64, device), top.to(device), height.to(device));
        var columns = Inside(arange(w, ScalarType.Int64, device), left.to(device), width.to(device));
        var mask = rows.view(n, 1, h, 1).logical_and(columns.view(n, 1, 1, w)).logical_and_(erase.to(device).view(n, 1, 1, 1));
        return batch.masked_fill(mask, 0).MoveToOuterDisposeScope();
    }

    // [N, L]: whether position i of 0…L−1 lies in [start, start + length) of each image.
    private static Tensor Inside(Tensor positions, Tensor start, Tensor length) =>
        positions.unsqueeze(0).ge(start.unsqueeze(1)).logical_and_(positions.unsqueeze(0).lt(start.add(length).unsqueeze(1)));

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"Erasing(p {Probability}, area {MinArea}–{MaxArea}, ratio {MinRatio}–{MaxRatio})");
}
