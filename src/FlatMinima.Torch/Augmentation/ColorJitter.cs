using System;
using System.Globalization;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// Brightness, contrast and saturation jitter (torchvision's <c>ColorJitter</c> blends), on the values as given — the
/// training loop passes standardized values. Each image draws a factor f uniform in [1 − s, 1 + s] per property of
/// strength s and blends x ← f·x + (1 − f)·r with a reference r: brightness with 0 (black on raw values; on
/// standardized values the data set's mean colour), contrast with the image's mean luminance, saturation with each
/// pixel's luminance (0.299 R + 0.587 G + 0.114 B; only for 3-channel images — other channel counts skip it). The
/// order is fixed (brightness, contrast, saturation; torchvision shuffles it) and values are not clamped (standardized
/// values have no fixed range). A strength of 0 leaves the values unchanged and draws nothing.
/// </summary>
public sealed record ColorJitter
{
    /// <summary>Brightness strength s ≥ 0.</summary>
    public double Brightness { get; init; } = 0.4;

    /// <summary>Contrast strength s ≥ 0.</summary>
    public double Contrast { get; init; } = 0.4;

    /// <summary>Saturation strength s ≥ 0 (3-channel images only).</summary>
    public double Saturation { get; init; } = 0.4;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        AugmentationChecks.NonNegative(Brightness, nameof(Brightness));
        AugmentationChecks.NonNegative(Contrast, nameof(Contrast));
        AugmentationChecks.NonNegative(Saturation, nameof(Saturation));
    }

    /// <summary>The jittered batch <c>[N, C, H, W]</c> (created in the caller's dispose scope).</summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        using var scope = NewDisposeScope();
        var x = batch.alias();
        if (Brightness > 0) x = x.mul(Factor(generator, batch, Brightness));   // the blend with 0
        if (Contrast > 0) x = Blend(x, Factor(generator, batch, Contrast), Luminance(x).mean(new long[] { 1, 2, 3 }, keepdim: true));
        if (Saturation > 0 && batch.shape[1] == 3) x = Blend(x, Factor(generator, batch, Saturation), Luminance(x));
        return x.MoveToOuterDisposeScope();
    }

    // f per image, shaped [N, 1, 1, 1] on the batch's device and dtype.
    private static Tensor Factor(Generator generator, Tensor batch, double strength) =>
        RandomDraws.Uniform(generator, batch.shape[0], 1 - strength, 1 + strength).to(batch.dtype, batch.device).view(-1, 1, 1, 1);

    private static Tensor Blend(Tensor x, Tensor factor, Tensor reference) => x.mul(factor).add_(reference.mul(factor.neg().add_(1)));

    // [N, 1, H, W]: ITU-R 601 luminance of RGB images, the channel mean otherwise.
    private static Tensor Luminance(Tensor x)
    {
        if (x.shape[1] != 3) return x.mean(new long[] { 1 }, keepdim: true);
        using var weights = tensor(new[] { 0.299f, 0.587f, 0.114f }).to(x.dtype, x.device);
        return x.mul(weights.view(1, 3, 1, 1)).sum(1, keepdim: true);
    }

    /// <inheritdoc />
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"ColorJitter(brightness {Brightness}, contrast {Contrast}, saturation {Saturation})");
}
