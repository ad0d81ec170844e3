using System;
using System.Globalization;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// A small random rotation and translation per image (torchvision's <c>RandomAffine(degrees, translate)</c>): angle
/// uniform in [−<see cref="Degrees"/>, <see cref="Degrees"/>] about the centre, shift uniform in
/// [−<see cref="Translate"/>, <see cref="Translate"/>] of the width and of the height; bilinear sampling, zeros outside
/// the image (black on raw values, the data set's mean on standardized ones). One <c>affine_grid</c> + <c>grid_sample</c>
/// per batch.
/// </summary>
public sealed record RandomAffine
{
    /// <summary>Largest rotation in degrees, in [0, 180].</summary>
    public double Degrees { get; init; } = 15;

    /// <summary>Largest shift as a fraction of the image's width (horizontal) and height (vertical), in [0, 1].</summary>
    public double Translate { get; init; } = 0.1;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!(Degrees >= 0 && Degrees <= 180)) throw new ArgumentOutOfRangeException(nameof(Degrees), Degrees, "Degrees must be in [0, 180].");
        if (!(Translate >= 0 && Translate <= 1)) throw new ArgumentOutOfRangeException(nameof(Translate), Translate, "Translate must be a fraction of the image in [0, 1].");
    }

    /// <summary>The rotated and shifted batch, same shape as <paramref name="batch"/> <c>[N, C, H, W]</c> (created in the caller's dispose scope).</summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        long n = batch.shape[0];
        double h = batch.shape[2], w = batch.shape[3];
        using var scope = NewDisposeScope();
        var angle = RandomDraws.Uniform(generator, n, -Degrees, Degrees).mul_(Math.PI / 180);
        // Shifts in normalized units (the image spans 2).
        var tx = RandomDraws.Uniform(generator, n, -Translate, Translate).mul_(2);
        var ty = RandomDraws.Uniform(generator, n, -Translate, Translate).mul_(2);
        var cos = angle.cos();
        var sin = angle.sin();
        // Output → input: p_in = R(−angle)(p_out − t) in pixels, written in normalized coordinates (x·W/2, y·H/2).
        var a12 = sin.mul(h / w);
        var a21 = sin.mul(-w / h);
        var b1 = cos.mul(tx).add_(a12.mul(ty)).neg_();
        var b2 = a21.mul(tx).add_(cos.mul(ty)).neg_();
        return AffineSampling.Sample(batch, cos, a12, b1, a21, cos, b2).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"Affine(±{Degrees}°, shift ±{Translate})");
}
