using System;
using System.Globalization;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// Mirrors each image left–right with probability <see cref="Probability"/> (torchvision's <c>RandomHorizontalFlip</c>).
/// Wrong for digits and text, where a mirrored image is another class or none.
/// </summary>
public sealed record RandomHorizontalFlip
{
    /// <summary>Probability that an image is mirrored, in [0, 1].</summary>
    public double Probability { get; init; } = 0.5;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate() => AugmentationChecks.Probability(Probability, nameof(Probability));

    /// <summary>The batch <c>[N, C, H, W]</c> with the drawn images reversed along the width (created in the caller's dispose scope).</summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        using var scope = NewDisposeScope();
        var flip = RandomDraws.Bernoulli(generator, batch.shape[0], Probability).to(batch.device).view(-1, 1, 1, 1);
        return where(flip, batch.flip(3), batch).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"HorizontalFlip(p {Probability})");
}
