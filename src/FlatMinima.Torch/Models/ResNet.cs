using System;
using System.Collections.Generic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FlatMinima.Torch.Models;

/// <summary>The basic residual block (two 3×3 convolutions with BatchNorm) with a 1×1 projection shortcut when the shape changes.</summary>
internal sealed class BasicBlock : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Module<Tensor, Tensor>? downsample;
    private readonly bool beginHeavy;

    /// <summary>
    /// Creates a block from <paramref name="inChannels"/> to <paramref name="outChannels"/> with the given stride;
    /// <paramref name="beginHeavy"/> pads the stride-2 layers as <see cref="StridedPadding.BeginHeavy"/> describes.
    /// </summary>
    public BasicBlock(int inChannels, int outChannels, int stride, bool beginHeavy = false) : base(nameof(BasicBlock))
    {
        this.beginHeavy = beginHeavy && stride == 2;
        conv1 = Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(outChannels);
        conv2 = Conv2d(outChannels, outChannels, 3, stride: 1, padding: 1, bias: false);
        bn2 = BatchNorm2d(outChannels);
        if (stride != 1 || inChannels != outChannels)
            downsample = Sequential(Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), BatchNorm2d(outChannels));
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.call(StridedLayer.Crop(conv1.call(input), input, beginHeavy)));
        x = bn2.call(conv2.call(x));
        x = x.add_(downsample is null ? input : StridedLayer.Crop(downsample.call(input), input, beginHeavy));
        return x.relu_().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// TorchVision's bottleneck block (ResNet v1.5): a 1×1 convolution to <c>width</c> channels, a 3×3 convolution carrying
/// the stride, a 1×1 convolution to <c>4 × width</c> channels, each followed by BatchNorm (<c>conv1</c>/<c>bn1</c> …
/// <c>conv3</c>/<c>bn3</c>), with a 1×1 projection shortcut (<c>downsample.0</c>, <c>downsample.1</c>) when the shape changes.
/// </summary>
internal sealed class Bottleneck : Module<Tensor, Tensor>
{
    /// <summary>The ratio of a block's output channels to its inner width: 4.</summary>
    public const int Expansion = 4;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d bn2;
    private readonly Conv2d conv3;
    private readonly BatchNorm2d bn3;
    private readonly Module<Tensor, Tensor>? downsample;
    private readonly bool beginHeavy;

    /// <summary>
    /// Creates a block from <paramref name="inChannels"/> to <c>4 × <paramref name="width"/></c> channels with the given
    /// stride (on the 3×3 convolution); <paramref name="beginHeavy"/> pads the stride-2 layers as
    /// <see cref="StridedPadding.BeginHeavy"/> describes.
    /// </summary>
    public Bottleneck(int inChannels, int width, int stride, bool beginHeavy = false) : base(nameof(Bottleneck))
    {
        int outChannels = width * Expansion;
        this.beginHeavy = beginHeavy && stride == 2;
        conv1 = Conv2d(inChannels, width, 1, bias: false);
        bn1 = BatchNorm2d(width);
        conv2 = Conv2d(width, width, 3, stride: stride, padding: 1, bias: false);
        bn2 = BatchNorm2d(width);
        conv3 = Conv2d(width, outChannels, 1, bias: false);
        bn3 = BatchNorm2d(outChannels);
        if (stride != 1 || inChannels != outChannels)
            downsample = Sequential(Conv2d(inChannels, outChannels, 1, stride: stride, bias: false), BatchNorm2d(outChannels));
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.call(conv1.call(input)));
        x = functional.relu(bn2.call(StridedLayer.Crop(conv2.call(x), x, beginHeavy)));
        x = bn3.call(conv3.call(x));
        x = x.add_(downsample is null ? input : StridedLayer.Crop(downsample.call(input), input, beginHeavy));
        return x.relu_().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// ResNet for small images: a 3×3 stem without max-pool, stages of <see cref="BasicBlock"/>s, global average pooling
/// and a linear classifier. <see cref="ResNet20"/> is the CIFAR ResNet-20 of He et al. (widths 16/32/64, 3 blocks per
/// stage, 272,474 parameters for 3 channels and 10 classes); <see cref="ResNet18"/> follows TorchVision's ResNet-18
/// layout and parameter names (<c>conv1</c>, <c>bn1</c>, <c>layer1</c>–<c>layer4</c> with <c>downsample</c>, <c>fc</c>;
/// widths 64–512, [2,2,2,2]) with the stem adapted to small inputs (3×3, stride 1, no max-pool). TorchVision's own
/// <c>resnet18</c> cannot be used for this: its 7×7, 3-channel stem and max-pool are fixed.
/// </summary>
public sealed class SmallImageResNet : Module<Tensor, Tensor>, IEmbeddingNetwork
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly List<Sequential> stages = new();
    private readonly Linear fc;

    /// <summary>Creates a ResNet with the given stage widths and blocks per stage.</summary>
    public SmallImageResNet(int inChannels, int numClasses, IReadOnlyList<int> widths, IReadOnlyList<int> blocksPerStage, string name)
        : base(name)
    {
        if (widths.Count != blocksPerStage.Count || widths.Count == 0)
            throw new ArgumentException("widths and blocksPerStage must be non-empty and of the same length.");
        conv1 = Conv2d(inChannels, widths[0], 3, stride: 1, padding: 1, bias: false);
        bn1 = BatchNorm2d(widths[0]);
        int channels = widths[0];
        for (int s = 0; s < widths.Count; s++)
        {
            var blocks = new List<Module<Tensor, Tensor>>();
            for (int b = 0; b < blocksPerStage[s]; b++)
            {
                blocks.Add(new BasicBlock(channels, widths[s], s > 0 && b == 0 ? 2 : 1));
                channels = widths[s];
            }
            stages.Add(Sequential(blocks));
        }
        fc = Linear(channels, numClasses);
        RegisterComponents();
        for (int s = 0; s < stages.Count; s++) register_module($"layer{s + 1}", stages[s]);
    }

    /// <summary>CIFAR ResNet-20 (He et al., 2016): widths 16/32/64, 3 blocks per stage.</summary>
    public static SmallImageResNet ResNet20(int inChannels, int numClasses) =>
        new(inChannels, numClasses, new[] { 16, 32, 64 }, new[] { 3, 3, 3 }, "ResNet20");

    /// <summary>ResNet-18 (TorchVision layout) with a small-input stem.</summary>
    public static SmallImageResNet ResNet18(int inChannels, int numClasses) =>
        new(inChannels, numClasses, new[] { 64, 128, 256, 512 }, new[] { 2, 2, 2, 2 }, "ResNet18");

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc.call(Embed(input)).MoveToOuterDisposeScope();
    }

    /// <summary>The globally average-pooled features of the last stage (the classifier's input), <c>[N, width]</c>.</summary>
    public Tensor Embed(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.call(conv1.call(input)));
        foreach (var stage in stages) x = stage.call(x);
        return functional.adaptive_avg_pool2d(x, 1).flatten(1).MoveToOuterDisposeScope();
    }
}
