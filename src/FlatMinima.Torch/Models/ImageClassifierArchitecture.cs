using System;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Models;

/// <summary>The built-in image-classifier architectures.</summary>
public enum ImageClassifierArchitecture
{
    /// <summary>Two-convolution CNN for small grayscale images (<see cref="Models.SmallCnn"/>).</summary>
    SmallCnn,

    /// <summary>CIFAR ResNet-20 with BatchNorm (<see cref="SmallImageResNet.ResNet20"/>).</summary>
    ResNet20,

    /// <summary>TorchVision-layout ResNet-18 with a small-input stem (<see cref="SmallImageResNet.ResNet18"/>).</summary>
    ResNet18,
}

/// <summary>Creates the built-in architectures.</summary>
public static class ImageClassifierModels
{
    /// <summary>Creates <paramref name="architecture"/> for inputs of the given shape and number of classes.</summary>
    public static nn.Module<Tensor, Tensor> Create(ImageClassifierArchitecture architecture, int inChannels, int numClasses, int height, int width)
    {
        if (inChannels < 1) throw new ArgumentOutOfRangeException(nameof(inChannels), inChannels, "inChannels must be ≥ 1.");
        if (numClasses < 2) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "A classifier needs at least 2 classes.");
        return architecture switch
        {
            ImageClassifierArchitecture.SmallCnn => new SmallCnn(inChannels, numClasses, height, width),
            ImageClassifierArchitecture.ResNet20 => SmallImageResNet.ResNet20(inChannels, numClasses),
            ImageClassifierArchitecture.ResNet18 => SmallImageResNet.ResNet18(inChannels, numClasses),
            _ => throw new ArgumentOutOfRangeException(nameof(architecture), architecture, "Unknown architecture."),
        };
    }
}
