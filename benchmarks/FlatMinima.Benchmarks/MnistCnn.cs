using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FlatMinima.Benchmarks;

/// <summary>
/// DomainBed's <c>MNIST_CNN</c> + linear classifier: four 3×3 convolutions (64, 128 stride 2, 128, 128 channels at
/// width 1), each followed by ReLU and GroupNorm(8), global average pooling and a linear layer. <c>width</c> scales
/// the channel counts (the reduced benchmark uses 0.25).
/// </summary>
internal sealed class MnistCnn : Module<Tensor, Tensor>
{
    private readonly Sequential features;
    private readonly Linear classifier;

    public MnistCnn(int inChannels, int numClasses, double width = 1.0) : base(nameof(MnistCnn))
    {
        long c1 = (long)(64 * width), c2 = (long)(128 * width);
        features = Sequential(
            ("conv1", Conv2d(inChannels, c1, 3, padding: 1)), ("relu1", ReLU()), ("bn0", GroupNorm(8, c1)),
            ("conv2", Conv2d(c1, c2, 3, stride: 2, padding: 1)), ("relu2", ReLU()), ("bn1", GroupNorm(8, c2)),
            ("conv3", Conv2d(c2, c2, 3, padding: 1)), ("relu3", ReLU()), ("bn2", GroupNorm(8, c2)),
            ("conv4", Conv2d(c2, c2, 3, padding: 1)), ("relu4", ReLU()), ("bn3", GroupNorm(8, c2)),
            ("pool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()));
        classifier = Linear(c2, numClasses);
        RegisterComponents();
        // TorchSharp 0.107's GroupNorm leaves its affine parameters uninitialized (garbage such as 4.8e20 was measured);
        // PyTorch initializes them to γ = 1, β = 0.
        using var noGrad = no_grad();
        foreach (var norm in modules().OfType<GroupNorm>())
        {
            norm.weight?.fill_(1);
            norm.bias?.zero_();
        }
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return classifier.call(features.call(input)).MoveToOuterDisposeScope();
    }
}
