using System;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// A pretrained backbone's input preparation as part of the network (so it is saved and loaded with the weights):
/// RGB in 0–1 (gray <c>[N, 1, H, W]</c> is replicated to 3 channels) → × <see cref="PixelScale"/> → reversed channel
/// order when <see cref="Bgr"/> → minus the buffer <c>mean_image</c> <c>[3, H, W]</c> (the backbone's mean image resized to
/// the network's input size).
/// </summary>
public sealed class ImagePreprocessingModule : Module<Tensor, Tensor>
{
    private readonly Tensor mean_image;

    /// <summary>Creates the module with <paramref name="meanImage"/> <c>[3, H, W]</c> (copied; in output channel order, after scaling).</summary>
    public ImagePreprocessingModule(Tensor meanImage, double pixelScale, bool bgr)
        : base(nameof(ImagePreprocessingModule))
    {
        ArgumentNullException.ThrowIfNull(meanImage);
        if (meanImage.Dimensions != 3 || meanImage.shape[0] != 3)
            throw new ArgumentException($"The mean image must be [3, H, W]; got [{string.Join(", ", meanImage.shape)}].", nameof(meanImage));
        mean_image = meanImage.detach().to_type(ScalarType.Float32).clone().DetachFromDisposeScope();
        PixelScale = pixelScale;
        Bgr = bgr;
        RegisterComponents();
    }

    /// <summary>The factor the 0–1 input is multiplied by before the mean image is subtracted (255 for ML.NET's ResNet-18).</summary>
    public double PixelScale { get; }

    /// <summary>Whether the channels are reversed (RGB → BGR).</summary>
    public bool Bgr { get; }

    /// <summary>The input height the mean image fits.</summary>
    public long Height => mean_image.shape[1];

    /// <summary>The input width the mean image fits.</summary>
    public long Width => mean_image.shape[2];

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Dimensions != 4 || input.shape[1] is not (1 or 3) || input.shape[2] != Height || input.shape[3] != Width)
            throw new ArgumentException($"The pretrained backbone expects images [N, 3, {Height}, {Width}] (or 1 channel, replicated); got [{string.Join(", ", input.shape)}].", nameof(input));
        using var scope = NewDisposeScope();
        var x = input.shape[1] == 1 ? input.expand(-1, 3, -1, -1) : input;
        if (Bgr) x = x.flip(1);
        return x.mul(PixelScale).sub_(mean_image).MoveToOuterDisposeScope();
    }
}
