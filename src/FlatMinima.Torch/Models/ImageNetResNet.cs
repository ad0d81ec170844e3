using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FlatMinima.Torch.Models;

/// <summary>How the stride-2 layers of <see cref="ImageNetResNet"/> pad their input.</summary>
public enum StridedPadding
{
    /// <summary>
    /// TorchVision's: <c>p</c> on both sides (<c>p = k / 2</c>), <c>⌈h/2⌉</c> outputs. Defined at every input size.
    /// </summary>
    Symmetric,

    /// <summary>
    /// CNTK's, as in ML.NET's <c>ResNet18.onnx</c>: <c>p</c> before and <c>p − 1</c> after (the 7×7 stem
    /// <c>[3,3,2,2]</c>, the stride-2 3×3 convolutions and the max pool <c>[1,1,0,0]</c>), <c>⌊h/2⌋</c> outputs whose
    /// windows start where the symmetric ones do. It is the symmetric result without its last row (column) when the
    /// size <c>h</c> entering the layer is odd, and equal to it when <c>h</c> is even — at 224, 160 or any multiple of 32
    /// the two modes give the same outputs. The 1×1 stride-2 shortcuts drop their last row the same way, so a block's two
    /// paths keep one shape (the ONNX graph itself only runs where the sizes entering stages 2–4 are even).
    /// </summary>
    BeginHeavy,
}

/// <summary>The residual block an <see cref="ImageNetResNet"/> is built of.</summary>
public enum ResNetBlock
{
    /// <summary>
    /// TorchVision's <c>BasicBlock</c>: two 3×3 convolutions (<c>conv1</c>/<c>bn1</c>, <c>conv2</c>/<c>bn2</c>), stage
    /// widths 64–512, a 512-d embedding (ResNet-18, ResNet-34).
    /// </summary>
    Basic,

    /// <summary>
    /// TorchVision's <c>Bottleneck</c> (ResNet v1.5: the stride on the 3×3 convolution): 1×1, 3×3, 1×1 convolutions
    /// (<c>conv1</c>/<c>bn1</c> … <c>conv3</c>/<c>bn3</c>), inner widths 64–512, outputs 4 × wider (256–2048), a 2048-d
    /// embedding (ResNet-50, ResNet-101, ResNet-152).
    /// </summary>
    Bottleneck,
}

/// <summary>
/// A ResNet for ImageNet-size inputs in TorchVision's layout and parameter names (its <c>state_dict</c> keys, BatchNorm's
/// <c>num_batches_tracked</c> included): a 7×7 stride-2 stem (<c>conv1</c>, <c>bn1</c>), a 3×3 stride-2 max pool, four
/// stages of <see cref="ResNetBlock.Basic"/> or <see cref="ResNetBlock.Bottleneck"/> blocks (<c>layer1</c>–<c>layer4</c>,
/// 1×1 <c>downsample</c> shortcuts where a block changes the shape: stride 2 opening stages 2–4, and stride 1 opening
/// stage 1 of a bottleneck network), global average pooling to the embedding (<see cref="EmbeddingWidth"/>: 512 for basic
/// blocks, 2048 for bottlenecks) and a replaceable classification head (<c>fc</c>). <see cref="ResNet18"/> and
/// <see cref="ResNet50"/> are TorchVision's <c>resnet18</c> and <c>resnet50</c>; ML.NET's <c>ResNet18.onnx</c> has 3 basic
/// blocks in its last stage (<see cref="MLNetResNet18Blocks"/>), which <see cref="Pretrained.ResNet18OnnxImporter"/>
/// builds; <see cref="Pretrained.TorchVisionResNetLoader"/> loads PyTorch checkpoints. The input is <c>[N, 3, H, W]</c>
/// with H, W ≥ 32; the features are averaged globally (ImageNet's 7×7 average pool at 224).
/// <see cref="SmallImageResNet.ResNet18"/> is the basic-block body with a small-input stem.
/// </summary>
public sealed class ImageNetResNet : Module<Tensor, Tensor>, IEmbeddingNetwork, IFineTunableNetwork
{
    /// <summary>The embedding width (the head's input) of a <see cref="ResNetBlock.Basic"/> network: 512.</summary>
    public const int EmbeddingSize = 512;

    /// <summary>The embedding width (the head's input) of a <see cref="ResNetBlock.Bottleneck"/> network: 2048.</summary>
    public const int BottleneckEmbeddingSize = 512 * Bottleneck.Expansion;

    private static readonly int[] Widths = { 64, 128, 256, 512 };

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private Module<Tensor, Tensor> fc;

    /// <summary>Blocks per stage of TorchVision's ResNet-18: [2, 2, 2, 2] basic blocks (11,176,512 backbone parameters).</summary>
    public static IReadOnlyList<int> ResNet18Blocks { get; } = Array.AsReadOnly(new[] { 2, 2, 2, 2 });

    /// <summary>Blocks per stage of TorchVision's ResNet-50: [3, 4, 6, 3] bottlenecks (23,508,032 backbone parameters).</summary>
    public static IReadOnlyList<int> ResNet50Blocks { get; } = Array.AsReadOnly(new[] { 3, 4, 6, 3 });

    /// <summary>Blocks per stage of ML.NET's (CNTK's) <c>ResNet18.onnx</c>: [2, 2, 2, 3] basic blocks (15,897,152 backbone parameters).</summary>
    public static IReadOnlyList<int> MLNetResNet18Blocks { get; } = Array.AsReadOnly(new[] { 2, 2, 2, 3 });

    /// <summary>
    /// Creates the network with a linear head of <paramref name="numClasses"/> outputs (PyTorch's default initialization)
    /// reading the embedding of <paramref name="block"/> networks (<see cref="EmbeddingSize"/> or <see cref="BottleneckEmbeddingSize"/>).
    /// </summary>
    public ImageNetResNet(IReadOnlyList<int> blocksPerStage, int numClasses, StridedPadding padding = StridedPadding.Symmetric, ResNetBlock block = ResNetBlock.Basic)
        : this(blocksPerStage, Linear(EmbeddingWidthOf(block), CheckClasses(numClasses)), padding, block)
    {
    }

    /// <summary>Creates the network with the given head, which reads the embedding (<see cref="EmbeddingWidth"/> features).</summary>
    public ImageNetResNet(IReadOnlyList<int> blocksPerStage, Module<Tensor, Tensor> head, StridedPadding padding = StridedPadding.Symmetric, ResNetBlock block = ResNetBlock.Basic)
        : base(nameof(ImageNetResNet))
    {
        ArgumentNullException.ThrowIfNull(blocksPerStage);
        ArgumentNullException.ThrowIfNull(head);
        if (blocksPerStage.Count != Widths.Length || blocksPerStage.Any(b => b < 1))
            throw new ArgumentException($"blocksPerStage needs {Widths.Length} counts of at least 1; got [{string.Join(", ", blocksPerStage)}].", nameof(blocksPerStage));
        BlocksPerStage = blocksPerStage.ToArray();
        Padding = padding;
        Block = block;
        EmbeddingWidth = EmbeddingWidthOf(block);
        conv1 = Conv2d(3, Widths[0], 7, stride: 2, padding: 3, bias: false);
        bn1 = BatchNorm2d(Widths[0]);
        bool beginHeavy = padding == StridedPadding.BeginHeavy;
        var stages = new Sequential[Widths.Length];
        int channels = Widths[0];
        for (int s = 0; s < Widths.Length; s++)
        {
            var blocks = new List<Module<Tensor, Tensor>>();
            for (int b = 0; b < blocksPerStage[s]; b++)
            {
                int stride = s > 0 && b == 0 ? 2 : 1;
                if (block == ResNetBlock.Basic)
                {
                    blocks.Add(new BasicBlock(channels, Widths[s], stride, beginHeavy));
                    channels = Widths[s];
                }
                else
                {
                    blocks.Add(new Bottleneck(channels, Widths[s], stride, beginHeavy));
                    channels = Widths[s] * Bottleneck.Expansion;
                }
            }
            stages[s] = Sequential(blocks);
        }
        (layer1, layer2, layer3, layer4) = (stages[0], stages[1], stages[2], stages[3]);
        fc = head;
        RegisterComponents();
    }

    /// <summary>TorchVision's ResNet-18 (<see cref="ResNet18Blocks"/> basic blocks) with a linear head of <paramref name="numClasses"/> outputs.</summary>
    public static ImageNetResNet ResNet18(int numClasses, StridedPadding padding = StridedPadding.Symmetric) =>
        new(ResNet18Blocks, numClasses, padding);

    /// <summary>
    /// TorchVision's ResNet-50 (<see cref="ResNet50Blocks"/> bottlenecks, v1.5, 2048-d embedding) with a linear head of
    /// <paramref name="numClasses"/> outputs.
    /// </summary>
    public static ImageNetResNet ResNet50(int numClasses, StridedPadding padding = StridedPadding.Symmetric) =>
        new(ResNet50Blocks, numClasses, padding, ResNetBlock.Bottleneck);

    /// <summary>The number of blocks in each of the four stages.</summary>
    public IReadOnlyList<int> BlocksPerStage { get; }

    /// <summary>How the stride-2 layers pad (fixed at construction).</summary>
    public StridedPadding Padding { get; }

    /// <summary>The residual block of the four stages (fixed at construction).</summary>
    public ResNetBlock Block { get; }

    /// <summary>The embedding width, the head's input: <see cref="EmbeddingSize"/> (512) or <see cref="BottleneckEmbeddingSize"/> (2048).</summary>
    public int EmbeddingWidth { get; }

    /// <summary>The stem (<c>conv1</c>, <c>bn1</c>), then <c>layer1</c>–<c>layer4</c>: five stages; the head <c>fc</c> is not part of them.</summary>
    public IReadOnlyList<IReadOnlyList<nn.Module>> BackboneStages => new IReadOnlyList<nn.Module>[]
    {
        new nn.Module[] { conv1, bn1 }, new nn.Module[] { layer1 }, new nn.Module[] { layer2 }, new nn.Module[] { layer3 }, new nn.Module[] { layer4 },
    };

    /// <summary>The classification head (<c>fc</c>): reads the embedding <c>[N, <see cref="EmbeddingWidth"/>]</c>.</summary>
    public Module<Tensor, Tensor> Head => fc;

    /// <summary>
    /// Puts <paramref name="head"/> in place of the classification head (registered as <c>fc</c>) and returns the
    /// previous one, which the caller owns (dispose it when no longer needed).
    /// </summary>
    public Module<Tensor, Tensor> ReplaceHead(Module<Tensor, Tensor> head)
    {
        ArgumentNullException.ThrowIfNull(head);
        var previous = fc;
        register_module(nameof(fc), null!);
        register_module(nameof(fc), head);
        fc = head;
        return previous;
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc.call(Embed(input)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The globally average-pooled features of the last stage, <c>[N, <see cref="EmbeddingWidth"/>]</c>, of an input
    /// <c>[N, 3, H, W]</c>.
    /// </summary>
    public Tensor Embed(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Dimensions != 4 || input.shape[1] != 3 || input.shape[2] < 32 || input.shape[3] < 32)
            throw new ArgumentException($"{nameof(ImageNetResNet)} expects an input [N, 3, H, W] with H, W ≥ 32; got [{string.Join(", ", input.shape)}].", nameof(input));
        using var scope = NewDisposeScope();
        bool beginHeavy = Padding == StridedPadding.BeginHeavy;
        var x = functional.relu(bn1.call(StridedLayer.Crop(conv1.call(input), input, beginHeavy)));
        x = StridedLayer.Crop(functional.max_pool2d(x, 3, 2, 1), x, beginHeavy);
        x = layer4.call(layer3.call(layer2.call(layer1.call(x))));
        return functional.adaptive_avg_pool2d(x, 1).flatten(1).MoveToOuterDisposeScope();
    }

    private static int EmbeddingWidthOf(ResNetBlock block) => block switch
    {
        ResNetBlock.Basic => EmbeddingSize,
        ResNetBlock.Bottleneck => BottleneckEmbeddingSize,
        _ => throw new ArgumentOutOfRangeException(nameof(block), block, "Unknown residual block."),
    };

    private static int CheckClasses(int numClasses) =>
        numClasses >= 1 ? numClasses : throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "The head needs at least one class.");
}

/// <summary>
/// <see cref="StridedPadding.BeginHeavy"/> for a stride-2 layer computed with symmetric padding: the windows start at the
/// same place, so padding <c>p</c> before and <c>p − 1</c> after equals the symmetric output cut to <c>⌊h/2⌋</c> rows and
/// <c>⌊w/2⌋</c> columns (a no-op when both are even).
/// </summary>
internal static class StridedLayer
{
    /// <summary>The output of a stride-2 layer over <paramref name="layerInput"/>, cut to begin-heavy size if asked.</summary>
    public static Tensor Crop(Tensor output, Tensor layerInput, bool beginHeavy)
    {
        if (!beginHeavy) return output;
        long height = layerInput.shape[2] / 2, width = layerInput.shape[3] / 2;
        if (output.shape[2] == height && output.shape[3] == width) return output;
        return output.narrow(2, 0, height).narrow(3, 0, width);
    }
}
