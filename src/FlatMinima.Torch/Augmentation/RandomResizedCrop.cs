using System;
using System.Globalization;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// Random-resized-crop (Inception / torchvision's <c>RandomResizedCrop</c>, the ImageNet-scale setting): a box of a
/// random area (a fraction of the image in [<see cref="MinScale"/>, <see cref="MaxScale"/>]) and a random aspect ratio
/// (width / height, log-uniform in [<see cref="MinRatio"/>, <see cref="MaxRatio"/>]) at a random position, resized to
/// the input size with bilinear sampling. All images of a batch are cropped in one <c>affine_grid</c> +
/// <c>grid_sample</c>. Unlike torchvision, which redraws up to 10 times and then falls back to a centre crop, a box
/// wider or taller than the image is clipped to the image's side; box corners are continuous, not whole pixels.
/// </summary>
public sealed record RandomResizedCrop
{
    /// <summary>Smallest fraction of the image's area kept, in (0, 1].</summary>
    public double MinScale { get; init; } = 0.08;

    /// <summary>Largest fraction of the image's area kept, in [<see cref="MinScale"/>, 1].</summary>
    public double MaxScale { get; init; } = 1;

    /// <summary>Smallest aspect ratio (width / height) of the box, &gt; 0.</summary>
    public double MinRatio { get; init; } = 3.0 / 4;

    /// <summary>Largest aspect ratio of the box, ≥ <see cref="MinRatio"/>.</summary>
    public double MaxRatio { get; init; } = 4.0 / 3;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        AugmentationChecks.Range(MinScale, MaxScale, nameof(MinScale), nameof(MaxScale), 0, 1, lowExclusive: true);
        AugmentationChecks.Range(MinRatio, MaxRatio, nameof(MinRatio), nameof(MaxRatio), 0, double.MaxValue, lowExclusive: true);
    }

    /// <summary>The cropped and resized batch, same shape as <paramref name="batch"/> <c>[N, C, H, W]</c> (created in the caller's dispose scope).</summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        long n = batch.shape[0];
        double h = batch.shape[2], w = batch.shape[3];
        using var scope = NewDisposeScope();
        var scale = RandomDraws.Uniform(generator, n, MinScale, MaxScale);
        var ratio = RandomDraws.Uniform(generator, n, Math.Log(MinRatio), Math.Log(MaxRatio)).exp_();
        // Box width and height as fractions of the image's: width_px = sqrt(scale·H·W·ratio), height_px = sqrt(scale·H·W / ratio).
        var fw = scale.mul(ratio).mul_(h / w).sqrt_().clamp_max_(1);
        var fh = scale.div(ratio).mul_(w / h).sqrt_().clamp_max_(1);
        // Centre in normalized coordinates, uniform over the positions that keep the box inside the image.
        var cx = RandomDraws.Uniform(generator, n, -1, 1).mul_(fw.neg().add_(1));
        var cy = RandomDraws.Uniform(generator, n, -1, 1).mul_(fh.neg().add_(1));
        var zero = zeros(n, ScalarType.Float64);
        return AffineSampling.Sample(batch, fw, zero, cx, zero, fh, cy).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"ResizedCrop(scale {MinScale}–{MaxScale}, ratio {MinRatio:G4}–{MaxRatio:G4})");
}
