using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>
/// A trained image classifier: the TorchSharp network with its input geometry (channels × height × width) and the
/// per-channel normalization learned from the training data (mean 0 and standard deviation 1 on a pretrained backbone,
/// whose own input preparation is part of the network). This is the <c>Model</c> of
/// <see cref="FlatMinimaImageClassificationTransformer"/>.
/// </summary>
public sealed class FlatMinimaImageClassifier : IDisposable
{
    internal FlatMinimaImageClassifier(nn.Module<Tensor, Tensor> network, string architecture, int channels, int height, int width,
        int classCount, float[] mean, float[] std, Device device, string? augmentation)
    {
        Augmentation = augmentation;
        Network = network;
        Architecture = architecture;
        Channels = channels;
        Height = height;
        Width = width;
        ClassCount = classCount;
        Mean = mean;
        Std = std;
        Device = device;
    }

    /// <summary>The network (in eval mode), mapping normalized <c>[N, C, H, W]</c> inputs to logits <c>[N, K]</c>.</summary>
    public nn.Module<Tensor, Tensor> Network { get; }

    /// <summary>The architecture name: a <see cref="ImageClassifierArchitecture"/> value or the custom model's name.</summary>
    public string Architecture { get; }

    /// <summary>Input channels (1 = grayscale, 3 = RGB, or a pixel vector's channels).</summary>
    public int Channels { get; }

    /// <summary>Input height in pixels.</summary>
    public int Height { get; }

    /// <summary>Input width in pixels.</summary>
    public int Width { get; }

    /// <summary>Number of classes K (the label key's cardinality).</summary>
    public int ClassCount { get; }

    /// <summary>Per-channel mean subtracted from the inputs.</summary>
    public IReadOnlyList<float> Mean { get; }

    /// <summary>Per-channel standard deviation the inputs are divided by.</summary>
    public IReadOnlyList<float> Std { get; }

    /// <summary>
    /// The data augmentation the network was trained with, as text (<c>AugmentationOptions.ToString()</c>, e.g.
    /// <c>Crop(padding 4, zero) up to 64 px, else ResizedCrop(…) + HorizontalFlip(p 0.5)</c>), <c>none</c> without; saved
    /// with the model. Null for a model saved before format 0x00010003, which did not record it. Scoring never augments.
    /// </summary>
    public string? Augmentation { get; }

    /// <summary>The device the network lives on.</summary>
    public Device Device { get; }

    /// <summary>Number of trainable parameters of the network.</summary>
    public long ParameterCount => Network.parameters().Sum(p => p.numel());

    /// <summary>Softmax probabilities <c>[N, K]</c> (CPU) for a raw batch <c>[N, C, H, W]</c> as built by the image reader.</summary>
    public Tensor PredictProbabilities(Tensor rawBatch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = Normalize(rawBatch.to(Device));
        return nn.functional.softmax(Network.call(x), 1).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Standardizes a raw batch with <see cref="Mean"/> and <see cref="Std"/> (on the batch's device).</summary>
    public Tensor Normalize(Tensor rawBatch) => Standardization.Apply(rawBatch);

    /// <summary>The per-channel standardization of <see cref="Mean"/> and <see cref="Std"/>.</summary>
    internal ChannelStandardization Standardization => _standardization ??= new ChannelStandardization(Mean, Std);

    private ChannelStandardization? _standardization;

    /// <summary>Releases the network's native memory.</summary>
    public void Dispose() => Network.Dispose();

    /// <summary>
    /// An independent copy of <see cref="Network"/> (a new network of the same architecture with its weights and
    /// buffers) on <see cref="Device"/>, in eval mode; <see cref="Network"/> is only read, so scoring can go on meanwhile.
    /// </summary>
    internal nn.Module<Tensor, Tensor> CopyNetwork()
    {
        var copy = NetworkCopy.Create(Network, () => FlatMinimaModelRegistry.CreateNetwork(Architecture, Channels, ClassCount, Height, Width), Device);
        copy.eval();
        return copy;
    }

    internal const string WeightsEntry = "TorchWeights.bin";

    /// <summary>Writes the architecture, geometry, class count and normalization.</summary>
    internal void SaveHeader(ModelSaveContext ctx)
    {
        ctx.SaveNonEmptyString(Architecture);
        ctx.Writer.Write(Channels);
        ctx.Writer.Write(Height);
        ctx.Writer.Write(Width);
        ctx.Writer.Write(ClassCount);
        foreach (var values in new[] { Mean, Std })
        {
            ctx.Writer.Write(values.Count);
            foreach (float v in values) ctx.Writer.Write(v);
        }
    }

    /// <summary>The saved description of this classifier (what <see cref="LoadHeader"/> returns).</summary>
    internal ClassifierHeader Header() => new(Architecture, Channels, Height, Width, ClassCount, Mean.ToArray(), Std.ToArray(), Augmentation);

    /// <summary>Format 0x00010003: writes <see cref="Augmentation"/> (a string or null), after the transformer's other settings.</summary>
    internal void SaveAugmentation(ModelSaveContext ctx) => ctx.SaveStringOrNull(Augmentation);

    /// <summary>Reads what <see cref="SaveAugmentation"/> wrote into <paramref name="header"/>; files before 0x00010003
    /// (<paramref name="recorded"/> false) did not record it.</summary>
    internal static ClassifierHeader LoadAugmentation(ModelReading reading, ClassifierHeader header, bool recorded) =>
        recorded ? header with { Augmentation = reading.ReadTextOrNull("augmentation description", ModelLimits.MaxNameLength) } : header;

    /// <summary>The network weights in TorchSharp's <c>Module.save</c> format (the content of <see cref="WeightsEntry"/>).</summary>
    internal byte[] WeightsBytes()
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) Network.save(writer);
        return stream.ToArray();
    }

    /// <summary>Reads what <see cref="SaveHeader"/> wrote, checking every value against <see cref="FlatMinimaModelLoading"/>'s
    /// limits and the image input <paramref name="input"/> before anything is allocated.</summary>
    internal static ClassifierHeader LoadHeader(ModelReading reading, ImageInput input)
    {
        var reader = reading.Reader;
        string architecture = reading.ReadName("architecture name");
        int channels = reader.ReadInt32(), height = reader.ReadInt32(), width = reader.ReadInt32(), classes = reader.ReadInt32();
        if (input.Kind == ImageInputKind.PixelVector)
            reading.Check(channels == input.VectorChannels, $"the network has {channels} input channels but the pixel vector has {input.VectorChannels}.");
        else
            reading.Check(channels is >= 1 and <= 3, $"the network has {channels} input channels; images have 1 to 3.");
        reading.Check(height is >= 1 and <= ModelLimits.MaxImageSide && width is >= 1 and <= ModelLimits.MaxImageSide,
            $"the input geometry {height}×{width} is outside 1 to {ModelLimits.MaxImageSide} pixels per side.");
        reading.Check((long)channels * height * width <= ModelLimits.MaxInputValues,
            $"the input geometry {channels}×{height}×{width} exceeds {ModelLimits.MaxInputValues} values per image.");
        reading.Check(classes is >= 1 and <= ModelLimits.MaxClassCount, $"the model declares {classes} classes; 1 to {ModelLimits.MaxClassCount} are accepted.");
        float[] ReadFloats(string what, bool positive)
        {
            int n = reader.ReadInt32();
            reading.Check(n == channels, $"the normalization {what} has {n} values for {channels} channels.");
            var values = new float[n];
            for (int i = 0; i < n; i++) values[i] = reader.ReadSingle();
            reading.Check(values.All(v => float.IsFinite(v) && (!positive || v > 0)), $"the normalization {what} holds a non-finite{(positive ? " or non-positive" : "")} value.");
            return values;
        }
        float[] mean = ReadFloats("mean", false), std = ReadFloats("standard deviation", true);
        return new ClassifierHeader(architecture, channels, height, width, classes, mean, std, null);
    }
}

/// <summary>The saved description of a <see cref="FlatMinimaImageClassifier"/>.</summary>
internal sealed record ClassifierHeader(string Architecture, int Channels, int Height, int Width, int Classes, float[] Mean, float[] Std, string? Augmentation)
{
    /// <summary>
    /// Creates the network, reads the weights entry (checked against <paramref name="sha256"/> when given, then against
    /// the network's names, dtypes and shapes), loads them, rejects non-finite weights and moves the network to
    /// <paramref name="device"/> in eval mode.
    /// </summary>
    public FlatMinimaImageClassifier LoadNetwork(ModelReading reading, byte[]? sha256, Device device)
    {
        using var weights = reading.ReadEntry(FlatMinimaImageClassifier.WeightsEntry, sha256);
        nn.Module<Tensor, Tensor> network;
        try
        {
            network = FlatMinimaModelRegistry.CreateNetwork(Architecture, Channels, Classes, Height, Width);
        }
        catch (InvalidOperationException e)
        {
            // An unregistered custom network: a setup problem, not damage, but reported with the entry like the rest.
            throw reading.Fail(ModelReading.Sanitize(e.Message));
        }
        try
        {
            reading.CheckStateDict(weights, network);
            using (var reader = new BinaryReader(weights, System.Text.Encoding.UTF8, leaveOpen: true)) network.load(reader);
            reading.CheckFinite(network);
            network.to(device);
            network.eval();
        }
        catch
        {
            network.Dispose();
            throw;
        }
        return new FlatMinimaImageClassifier(network, Architecture, Channels, Height, Width, Classes, Mean, Std, device, Augmentation);
    }
}
