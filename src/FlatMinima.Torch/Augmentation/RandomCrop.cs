using System;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>How <see cref="RandomCrop"/> fills the border it adds.</summary>
public enum CropFill
{
    /// <summary>Zeros (torchvision's default <c>constant</c> padding): black on raw values, the data set's mean on standardized ones.</summary>
    Zero,

    /// <summary>The image mirrored at its edge, without repeating the edge pixel (needs a padding smaller than both sides).</summary>
    Reflect,
}

/// <summary>
/// Pad-and-random-crop: pads each image by <see cref="Padding"/> pixels on every side and cuts an image of the original
/// size at a random offset (torchvision's <c>RandomCrop(size, padding)</c>; pad 4 on 32×32 CIFAR images is the papers'
/// setting). The crop is an exact slice of the padded image (two <c>gather</c>s per batch, no interpolation).
/// </summary>
public sealed record RandomCrop
{
    /// <summary>The papers' padding for 32×32 images.</summary>
    public const int DefaultPadding = 4;

    /// <summary>Pixels added on each side, ≥ 0 (0 leaves the images unchanged). With <see cref="CropFill.Reflect"/> it
    /// must be smaller than the image's height and width; with zeros a padding of the image's side or more allows crops
    /// that miss the image.</summary>
    public int Padding { get; init; } = DefaultPadding;

    /// <summary>How the border is filled.</summary>
    public CropFill Fill { get; init; } = CropFill.Zero;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Padding < 0) throw new ArgumentOutOfRangeException(nameof(Padding), Padding, "Padding must be ≥ 0 pixels.");
        if (!Enum.IsDefined(Fill)) throw new ArgumentOutOfRangeException(nameof(Fill), Fill, "Fill must be Zero or Reflect.");
    }

    /// <summary>Checks the padding against images of <paramref name="height"/> × <paramref name="width"/> pixels.</summary>
    public void ValidateFor(int height, int width)
    {
        Validate();
        if (Fill == CropFill.Reflect && Padding >= Math.Min(height, width))
            throw new ArgumentOutOfRangeException(nameof(Padding), Padding,
                $"Padding ({Padding}) with reflect fill must be smaller than the image's height and width ({height}×{width}); use a smaller padding or zero fill.");
    }

    /// <summary>The randomly cropped batch, same shape as <paramref name="batch"/> <c>[N, C, H, W]</c> (created in the caller's dispose scope).</summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        long n = batch.shape[0], c = batch.shape[1], h = batch.shape[2], w = batch.shape[3];
        ValidateFor((int)h, (int)w);
        using var scope = NewDisposeScope();
        if (Padding == 0) return batch.alias().MoveToOuterDisposeScope();
        int p = Padding;
        var padded = nn.functional.pad(batch, new long[] { p, p, p, p }, Fill == CropFill.Reflect ? PaddingModes.Reflect : PaddingModes.Constant);
        using var span = tensor(2L * p + 1);
        var top = RandomDraws.Below(generator, n, span).to(batch.device);
        var left = RandomDraws.Below(generator, n, span).to(batch.device);
        var rows = top.unsqueeze(1).add(arange(h, ScalarType.Int64, batch.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * p);
        var columns = left.unsqueeze(1).add(arange(w, ScalarType.Int64, batch.device)).view(n, 1, 1, w).expand(n, c, h, w);
        return padded.gather(2, rows).gather(3, columns).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"Crop(padding {Padding}, {Fill.ToString().ToLowerInvariant()})");
}
