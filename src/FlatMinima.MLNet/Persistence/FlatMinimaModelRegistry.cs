using System;
using System.Collections.Generic;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;
namespace FlatMinima.MLNet;

/// <summary>Creates a custom network: <c>(inChannels, numClasses) → module</c> mapping <c>[N, C, H, W]</c> to logits <c>[N, K]</c>.</summary>
public delegate nn.Module<Tensor, Tensor> ImageClassifierFactory(int inChannels, int numClasses);

/// <summary>
/// Named factories of custom networks. A model trained with <c>CustomModelFactory</c> is saved with its
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
}
