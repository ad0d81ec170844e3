using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// The input preparation of ML.NET's ResNet-18 featurizer, read from its <c>ResNetPreprocess.onnx</c>
/// (Split the RGB channels → Concat as BGR → Sub a mean image): pixels stay in 0–255 (no division), the channels are
/// reordered by <see cref="ChannelOrder"/> and the <see cref="MeanImage"/> is subtracted. <see cref="Apply"/> reproduces
/// the graph; a network imported by <see cref="ResNet18OnnxImporter"/> expects its output.
/// </summary>
public sealed class ResNetPreprocessing : IDisposable
{
    private ResNetPreprocessing(int[] channelOrder, Tensor meanImage)
    {
        ChannelOrder = channelOrder;
        MeanImage = meanImage;
        using var means = meanImage.mean(new long[] { 1, 2 });
        ChannelMeans = means.data<float>().ToArray();
    }

    /// <summary>Output channel <c>i</c> is input channel <c>ChannelOrder[i]</c>: <c>[2, 1, 0]</c> turns RGB into BGR.</summary>
    public IReadOnlyList<int> ChannelOrder { get; }

    /// <summary>Whether the channel order turns RGB input into BGR (<see cref="ChannelOrder"/> is <c>[2, 1, 0]</c>).</summary>
    public bool IsBgr => ChannelOrder.SequenceEqual(new[] { 2, 1, 0 });

    /// <summary>The mean image <c>[3, H, W]</c> subtracted after reordering (so in output channel order), pixel scale 0–255.</summary>
    public Tensor MeanImage { get; }

    /// <summary>The mean image's average per output channel (for ML.NET's file: B ≈ 103.1, G ≈ 115.9, R ≈ 123.2).</summary>
    public IReadOnlyList<float> ChannelMeans { get; }

    /// <summary>The height of <see cref="MeanImage"/> (the size <see cref="Apply"/> accepts).</summary>
    public long Height => MeanImage.shape[1];

    /// <summary>The width of <see cref="MeanImage"/>.</summary>
    public long Width => MeanImage.shape[2];

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
        return new ResNetPreprocessing(order, meanImage);
    }

    /// <summary>
    /// The graph's output for <paramref name="rgb"/>, <c>[N, 3, H, W]</c> or <c>[3, H, W]</c> RGB in 0–255 with the
    /// mean image's size: the channels reordered, minus <see cref="MeanImage"/>.
    /// </summary>
    public Tensor Apply(Tensor rgb)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        if (rgb.Dimensions is not (3 or 4) || rgb.shape[^3] != 3 || rgb.shape[^2] != Height || rgb.shape[^1] != Width)
            throw new ArgumentException($"Expected RGB [N, 3, {Height}, {Width}] or [3, {Height}, {Width}]; got [{string.Join(", ", rgb.shape)}].", nameof(rgb));
        using var scope = NewDisposeScope();
        using var index = tensor(ChannelOrder.Select(c => (long)c).ToArray(), device: rgb.device);
        var mean = MeanImage.to(rgb.dtype, rgb.device);
        return rgb.index_select(-3, index).sub_(mean).MoveToOuterDisposeScope();
    }

    /// <summary>Releases <see cref="MeanImage"/>.</summary>
    public void Dispose() => MeanImage.Dispose();
}
