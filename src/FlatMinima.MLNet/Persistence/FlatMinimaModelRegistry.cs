using System;
using System.Collections.Generic;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>Creates a custom network: <c>(inChannels, numClasses) → module</c> mapping <c>[N, C, H, W]</c> to logits <c>[N, K]</c>.</summary>
public delegate nn.Module<Tensor, Tensor> ImageClassifierFactory(int inChannels, int numClasses);

/// <summary>
/// Networks by architecture name: the built-in architectures and named factories of custom networks. A model trained with <c>CustomModelFactory</c> is saved with its
/// <c>CustomModelName</c>; register the same factory under that name before <c>mlContext.Model.Load</c>.
/// </summary>
public static class FlatMinimaModelRegistry
{
    private static readonly Dictionary<string, ImageClassifierFactory> Factories = new(StringComparer.Ordinal);

    /// <summary>Registers (or replaces) the factory for <paramref name="name"/>.</summary>
    public static void Register(string name, ImageClassifierFactory factory)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("The name must not be empty.", nameof(name));
        if (Enum.TryParse<ImageClassifierArchitecture>(name, out _))
            throw new ArgumentException($"'{name}' is a built-in architecture name; choose another name.", nameof(name));
        if (PretrainedBackbone.IsBackboneName(name))
            throw new ArgumentException($"'{name}' is the name of a pretrained backbone; choose another name.", nameof(name));
        ArgumentNullException.ThrowIfNull(factory);
        lock (Factories) Factories[name] = factory;
    }

    internal static nn.Module<Tensor, Tensor> Create(string name, int channels, int classCount)
    {
        ImageClassifierFactory? factory;
        lock (Factories) Factories.TryGetValue(name, out factory);
        if (factory is null)
            throw new InvalidOperationException(
                $"The model uses the custom network '{name}', which is not registered in this process. Call " +
                $"FlatMinimaModelRegistry.Register(\"{name}\", factory) with the factory used for training before loading the model.");
        return factory(channels, classCount);
    }

    /// <summary>An untrained network of <paramref name="architecture"/> (built-in or registered) whose weights will be overwritten.</summary>
    internal static nn.Module<Tensor, Tensor> CreateNetwork(string architecture, int channels, int classCount, int height, int width)
    {
        if (Enum.TryParse<ImageClassifierArchitecture>(architecture, out var builtIn))
            return ImageClassifierModels.Create(builtIn, channels, classCount, height, width);
        // A fine-tuned pretrained backbone (ResNet18ImageNet, TorchVisionResNet18/50): its skeleton (the weights and the input
        // preparation's buffers come from the saved state; no ONNX file or checkpoint is read).
        if (PretrainedBackbone.IsBackboneName(architecture))
            return PretrainedBackbone.CreateSkeleton(architecture, classCount, height, width);
        return Create(architecture, channels, classCount);
    }

    /// <summary>
    /// A network to train, initialized from its own generator seeded with <paramref name="seed"/>
    /// (<see cref="ParameterInitialization"/>), so concurrent trainings and other users of TorchSharp's global generator
    /// do not change its weights. A custom network with parameters of layer types the initializer does not know is
    /// built again with the global generator seeded (<see cref="SeededGlobalGenerator"/>), so those parameters are
    /// reproducible too, though not isolated from other threads that use the global generator.
    /// </summary>
    internal static nn.Module<Tensor, Tensor> CreateInitialNetwork(string architecture, int channels, int classCount, int height, int width, int seed,
        ImageClassifierFactory? custom = null)
    {
        // A trainer's own factory builds its network directly: another trainer registering the same name at the same time cannot swap it.
        nn.Module<Tensor, Tensor> Create() => custom is null ? CreateNetwork(architecture, channels, classCount, height, width) : custom(channels, classCount);
        var network = Create();
        if (Initialize(network, seed)) return network;
        network.Dispose();
        network = SeededGlobalGenerator.Run(seed, Create);
        Initialize(network, seed);
        return network;
    }

    // Draws the network's parameters from a generator seeded with seed; false when some parameters kept their constructor's values.
    private static bool Initialize(nn.Module<Tensor, Tensor> network, int seed)
    {
        try
        {
            return ParameterInitialization.Reset(network, seed).Count == 0;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}
