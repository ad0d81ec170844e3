using System;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// A pretrained backbone's input preparation as part of the network (so it is saved and loaded with the weights):
/// RGB in 0–1 (gray <c>[N, 1, H, W]</c> is replicated to 3 channels) → × <see cref="PixelScale"/> → reversed channel
/// order when <see cref="Bgr"/> → minus the buffer <c>mean_image</c> → divided by the buffer <c>channel_std</c> when the
/// module has one. <c>mean_image</c> is <c>[3, H, W]</c> (a mean image resized to the network's input size, as for
/// ML.NET's ResNet-18) or <c>[3, 1, 1]</c> (per-channel means, any input size, as for TorchVision's normalization);
/// <c>channel_std</c> is <c>[3, 1, 1]</c> and only exists in a module created with standard deviations, so the state of
/// a module without them is just <c>mean_image</c>.
/// </summary>
public sealed class ImagePreprocessingModule : Module<Tensor, Tensor>
{
    private readonly Tensor mean_image;
    private readonly Tensor? channel_std;

    /// <summary>
    /// Creates the module with <paramref name="meanImage"/> <c>[3, H, W]</c> or <c>[3, 1, 1]</c> (copied; in output channel
    /// order, after scaling) and, when given, the per-channel divisors <paramref name="channelStds"/> (3 values, or
    /// <c>[3, 1, 1]</c>; copied; all positive).
    /// </summary>
    public ImagePreprocessingModule(Tensor meanImage, double pixelScale, bool bgr, Tensor? channelStds = null)
        : base(nameof(ImagePreprocessingModule))
    {
        ArgumentNullException.ThrowIfNull(meanImage);
        if (meanImage.Dimensions != 3 || meanImage.shape[0] != 3)
            throw new ArgumentException($"The mean image must be [3, H, W]; got [{string.Join(", ", meanImage.shape)}].", nameof(meanImage));
        if (!(pixelScale > 0) || !double.IsFinite(pixelScale))
            throw new ArgumentOutOfRangeException(nameof(pixelScale), pixelScale, "The pixel scale must be positive and finite.");
        mean_image = meanImage.detach().to_type(ScalarType.Float32).clone().DetachFromDisposeScope();
        if (channelStds is not null)
        {
            if (channelStds.numel() != 3)
                throw new ArgumentException($"The channel standard deviations must be 3 values; got [{string.Join(", ", channelStds.shape)}].", nameof(channelStds));
            using var greater = channelStds.gt(0);
            using var positive = greater.all();
            if (!positive.item<bool>())
                throw new ArgumentOutOfRangeException(nameof(channelStds), "The channel standard deviations must be positive.");
            channel_std = channelStds.detach().to_type(ScalarType.Float32).reshape(3, 1, 1).clone().DetachFromDisposeScope();
        }
        PixelScale = pixelScale;
        Bgr = bgr;
        RegisterComponents();
    }

    /// <summary>The factor the 0–1 input is multiplied by before the mean is subtracted (255 for ML.NET's ResNet-18, 1 for TorchVision's normalization).</summary>
    public double PixelScale { get; }

    /// <summary>Whether the channels are reversed (RGB → BGR).</summary>
    public bool Bgr { get; }

    /// <summary>Whether the input is divided by per-channel standard deviations (the buffer <c>channel_std</c>) after the mean is subtracted.</summary>
    public bool DividesByStd => channel_std is not null;

    /// <summary>Whether the mean is per channel (<c>mean_image</c> is <c>[3, 1, 1]</c>), so any input size is accepted.</summary>
    public bool AcceptsAnySize => mean_image.shape[1] == 1 && mean_image.shape[2] == 1;

    /// <summary>The input height the mean image fits (1 when <see cref="AcceptsAnySize"/>).</summary>
    public long Height => mean_image.shape[1];

    /// <summary>The input width the mean image fits (1 when <see cref="AcceptsAnySize"/>).</summary>
    public long Width => mean_image.shape[2];

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Dimensions != 4 || input.shape[1] is not (1 or 3) || (!AcceptsAnySize && (input.shape[2] != Height || input.shape[3] != Width)))
            throw new ArgumentException(AcceptsAnySize
                ? $"The pretrained backbone expects images [N, 3, H, W] (or 1 channel, replicated); got [{string.Join(", ", input.shape)}]."
                : $"The pretrained backbone expects images [N, 3, {Height}, {Width}] (or 1 channel, replicated); got [{string.Join(", ", input.shape)}].", nameof(input));
        using var scope = NewDisposeScope();
        var x = input.shape[1] == 1 ? input.expand(-1, 3, -1, -1) : input;
        if (Bgr) x = x.flip(1);
        x = x.mul(PixelScale).sub_(mean_image);
        if (channel_std is not null) x = x.div_(channel_std);
        return x.MoveToOuterDisposeScope();
    }
}
