using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// How to prepare images for a pretrained ResNet: the channels are reordered by <see cref="ChannelOrder"/>, the
/// <see cref="MeanImage"/> is subtracted and the result divided by <see cref="ChannelStds"/>, for inputs whose pixels run
/// from 0 to <see cref="MaxPixelValue"/>. Two preparations are known:
/// <list type="bullet">
/// <item><see cref="Read"/>: ML.NET's ResNet-18 featurizer, read from its <c>ResNetPreprocess.onnx</c> (Split the RGB
/// channels → Concat as BGR → Sub a 224×224 mean image): pixels stay in 0–255 (no division), BGR, minus the mean image,
/// standard deviations 1. A network imported by <see cref="ResNet18OnnxImporter"/> expects its output.</item>
/// <item><see cref="TorchVisionImageNet"/>: TorchVision's ImageNet normalization (<c>ToTensor</c> then
/// <c>Normalize(mean, std)</c>): RGB pixels in [0, 1], minus the per-channel means (0.485, 0.456, 0.406), divided by the
/// standard deviations (0.229, 0.224, 0.225), at any image size. Networks loaded by <see cref="TorchVisionResNetLoader"/>
/// from TorchVision's ImageNet checkpoints expect its output.</item>
/// </list>
/// <see cref="Apply"/> reproduces the preparation bit for bit (one float subtraction, then one division when the
/// standard deviations are not all 1).
/// </summary>
public sealed class ResNetPreprocessing : IDisposable
{
    private static readonly float[] TorchVisionMeans = { 0.485f, 0.456f, 0.406f };
    private static readonly float[] TorchVisionStds = { 0.229f, 0.224f, 0.225f };

    private ResNetPreprocessing(int[] channelOrder, Tensor meanImage, float[] channelStds, float maxPixelValue)
    {
        ChannelOrder = channelOrder;
        MeanImage = meanImage;
        using var means = meanImage.mean(new long[] { 1, 2 });
        ChannelMeans = means.data<float>().ToArray();
        ChannelStds = Array.AsReadOnly(channelStds);
        MaxPixelValue = maxPixelValue;
    }

    /// <summary>Output channel <c>i</c> is input channel <c>ChannelOrder[i]</c>: <c>[2, 1, 0]</c> turns RGB into BGR.</summary>
    public IReadOnlyList<int> ChannelOrder { get; }

    /// <summary>Whether the channel order turns RGB input into BGR (<see cref="ChannelOrder"/> is <c>[2, 1, 0]</c>).</summary>
    public bool IsBgr => ChannelOrder.SequenceEqual(new[] { 2, 1, 0 });

    /// <summary>
    /// The mean image <c>[3, H, W]</c> subtracted after reordering (so in output channel order), in the input's pixel
    /// scale; <c>[3, 1, 1]</c> for a per-channel mean, which applies at any image size.
    /// </summary>
    public Tensor MeanImage { get; }

    /// <summary>
    /// The mean image's average per output channel (for ML.NET's file: B ≈ 103.1, G ≈ 115.9, R ≈ 123.2; for
    /// TorchVision's: R 0.485, G 0.456, B 0.406).
    /// </summary>
    public IReadOnlyList<float> ChannelMeans { get; }

    /// <summary>
    /// The divisor per output channel, applied after the mean is subtracted: 1, 1, 1 for ML.NET's file (no division);
    /// 0.229, 0.224, 0.225 for TorchVision's.
    /// </summary>
    public IReadOnlyList<float> ChannelStds { get; }

    /// <summary>The value of a full-intensity input pixel that <see cref="Apply"/> expects: 255 for ML.NET's file, 1 for TorchVision's.</summary>
    public float MaxPixelValue { get; }

    /// <summary>The height of <see cref="MeanImage"/>: the image height <see cref="Apply"/> accepts, or 1 when it accepts any size.</summary>
    public long Height => MeanImage.shape[1];

    /// <summary>The width of <see cref="MeanImage"/>: the image width <see cref="Apply"/> accepts, or 1 when it accepts any size.</summary>
    public long Width => MeanImage.shape[2];

    /// <summary>Whether <see cref="Apply"/> accepts images of any size (the mean is per channel: <see cref="MeanImage"/> is 1×1).</summary>
    public bool AcceptsAnySize => Height == 1 && Width == 1;

    /// <summary>
    /// TorchVision's ImageNet normalization, which its pretrained classification checkpoints (and networks loaded from
    /// them by <see cref="TorchVisionResNetLoader"/>) expect: RGB order, pixels in [0, 1] (<see cref="MaxPixelValue"/> 1,
    /// as <c>ToTensor</c> gives), minus the means (0.485, 0.456, 0.406), divided by the standard deviations
    /// (0.229, 0.224, 0.225), at any image size. The caller owns (disposes) the result.
    /// </summary>
    public static ResNetPreprocessing TorchVisionImageNet() =>
        new(new[] { 0, 1, 2 }, tensor(TorchVisionMeans, new long[] { 3, 1, 1 }), TorchVisionStds.ToArray(), 1f);

    /// <summary>
    /// Reads <c>ResNetPreprocess.onnx</c> (<paramref name="path"/>, or the copy in the app's output folder — see
    /// <see cref="DnnImageModelFiles"/>).
    /// </summary>
    /// <exception cref="System.IO.FileNotFoundException">The file is missing; the message names the package to add.</exception>
    /// <exception cref="System.IO.InvalidDataException">The graph is not Split → Concat → Sub; the message names the node.</exception>
    public static ResNetPreprocessing Read(string? path = null)
    {
        var reader = OnnxModelReader.Read(DnnImageModelFiles.ResNetPreprocess(path));
        var split = reader.SingleConsumer(reader.SingleDataInput(), "Split");
        if (OnnxModelReader.Int(split, "axis", 0) != 1 || split.Output.Count != 3)
            throw reader.Error($"{OnnxModelReader.Describe(split)} does not split the channel axis into 3 outputs");
        var concat = reader.SingleConsumer(split.Output[0], "Concat");
        if (OnnxModelReader.Int(concat, "axis", 0) != 1 || concat.Input.Count != 3)
            throw reader.Error($"{OnnxModelReader.Describe(concat)} does not concatenate 3 inputs on the channel axis");
        int[] order = concat.Input.Select(i => split.Output.IndexOf(i)).ToArray();
        if (order.Order().SequenceEqual(new[] { 0, 1, 2 }) is false)
            throw reader.Error($"{OnnxModelReader.Describe(concat)} reads [{string.Join(", ", concat.Input)}]; expected a reordering of the outputs of {OnnxModelReader.Describe(split)}");
        var sub = reader.SingleConsumer(concat.Output[0], "Sub");
        if (sub.Input[0] != concat.Output[0] || sub.Output[0] != reader.SingleOutput())
            throw reader.Error($"{OnnxModelReader.Describe(sub)} is not 'reordered input − mean image' giving the graph's output");
        var mean = reader.Initializer(sub, 1);
        long[] dims = mean.Dims.ToArray();
        if (dims is not ([1, 3, _, _] or [3, _, _]))
            throw reader.Error($"initializer '{mean.Name}' (the mean image) has shape [{string.Join(", ", dims)}]; expected [1, 3, H, W]");
        var meanImage = tensor(reader.FloatData(mean), new[] { 3, dims[^2], dims[^1] });
        return new ResNetPreprocessing(order, meanImage, new[] { 1f, 1f, 1f }, 255f);
    }

    /// <summary>
    /// The prepared input for <paramref name="rgb"/>, <c>[N, 3, H, W]</c> or <c>[3, H, W]</c> RGB in 0–<see cref="MaxPixelValue"/>
    /// (with the mean image's size unless <see cref="AcceptsAnySize"/>): the channels reordered, minus
    /// <see cref="MeanImage"/>, divided by <see cref="ChannelStds"/> (skipped when they are all 1).
    /// </summary>
    public Tensor Apply(Tensor rgb)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        if (rgb.Dimensions is not (3 or 4) || rgb.shape[^3] != 3 || (!AcceptsAnySize && (rgb.shape[^2] != Height || rgb.shape[^1] != Width)))
            throw new ArgumentException(AcceptsAnySize
                ? $"Expected RGB [N, 3, H, W] or [3, H, W]; got [{string.Join(", ", rgb.shape)}]."
                : $"Expected RGB [N, 3, {Height}, {Width}] or [3, {Height}, {Width}]; got [{string.Join(", ", rgb.shape)}].", nameof(rgb));
        using var scope = NewDisposeScope();
        using var index = tensor(ChannelOrder.Select(c => (long)c).ToArray(), device: rgb.device);
        var mean = MeanImage.to(rgb.dtype, rgb.device);
        var prepared = rgb.index_select(-3, index).sub_(mean);
        if (ChannelStds.Any(s => s != 1f))
            prepared = prepared.div_(tensor(ChannelStds.ToArray(), new long[] { 3, 1, 1 }).to(rgb.dtype, rgb.device));
        return prepared.MoveToOuterDisposeScope();
    }

    /// <summary>Releases <see cref="MeanImage"/>.</summary>
    public void Dispose() => MeanImage.Dispose();
}
