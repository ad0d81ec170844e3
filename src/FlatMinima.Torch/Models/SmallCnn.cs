using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FlatMinima.Torch.Models;

/// <summary>
/// Small CNN for 28×28-class inputs: conv 32 3×3 → ReLU → max-pool 2 → conv 64 3×3 → ReLU → max-pool 2 → linear.
/// 34,826 parameters for 1×28×28 and 10 classes (the same model as the PyTorch peer benchmark).
/// </summary>
public sealed class SmallCnn : Module<Tensor, Tensor>, IEmbeddingNetwork
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc;

    /// <summary>Creates the network for <paramref name="inChannels"/>×<paramref name="height"/>×<paramref name="width"/> inputs.</summary>
    public SmallCnn(int inChannels, int numClasses, int height = 28, int width = 28) : base(nameof(SmallCnn))
    {
        int h = ((height - 2) / 2 - 2) / 2, w = ((width - 2) / 2 - 2) / 2;
        if (h < 1 || w < 1)
            throw new ArgumentOutOfRangeException(nameof(height), $"SmallCnn needs inputs of at least 10×10 pixels; got {height}×{width}.");
        conv1 = Conv2d(inChannels, 32, 3);
        conv2 = Conv2d(32, 64, 3);
        fc = Linear(64L * h * w, numClasses);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc.call(Embed(input)).MoveToOuterDisposeScope();
    }

    /// <summary>The flattened output of the second pooling layer (the classifier's input), <c>[N, 64·h·w]</c>.</summary>
    public Tensor Embed(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.max_pool2d(functional.relu(conv1.call(input)), 2);
        x = functional.max_pool2d(functional.relu(conv2.call(x)), 2);
        return x.flatten(1).MoveToOuterDisposeScope();
    }
}
