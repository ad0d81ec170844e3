using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Google.Protobuf;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Export;

/// <summary>What <see cref="OnnxExporter"/> writes: the input geometry, the normalization in the graph and the value names.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Creates options for inputs <c>[N, <paramref name="channels"/>, <paramref name="height"/>, <paramref name="width"/>]</c>.</summary>
    public OnnxExportOptions(int channels, int height, int width)
    {
        if (channels < 1 || height < 1 || width < 1)
            throw new ArgumentOutOfRangeException(nameof(channels), $"The input geometry {channels}×{height}×{width} must be positive.");
        (Channels, Height, Width) = (channels, height, width);
    }

    /// <summary>Input channels.</summary>
    public int Channels { get; }

    /// <summary>Input height in pixels (fixed in the graph).</summary>
    public int Height { get; }

    /// <summary>Input width in pixels (fixed in the graph).</summary>
    public int Width { get; }

    /// <summary>
    /// Per-channel means subtracted from the input before the network (null: none). With <see cref="Std"/>, the graph
    /// starts with <c>(x − mean) / std</c>, the standardization the ML.NET trainers learn from the training data.
    /// </summary>
    public IReadOnlyList<float>? Mean { get; init; }

    /// <summary>Per-channel standard deviations the centred input is divided by (null: none).</summary>
    public IReadOnlyList<float>? Std { get; init; }

    /// <summary>The graph input's name: <c>input</c>, float <c>[batch, C, H, W]</c>.</summary>
    public string InputName { get; init; } = "input";

    /// <summary>The logits output's name: <c>logits</c>, float <c>[batch, K]</c>.</summary>
    public string LogitsName { get; init; } = "logits";

    /// <summary>The probabilities output's name (softmax of the logits): <c>probabilities</c>, float <c>[batch, K]</c>.</summary>
    public string ProbabilitiesName { get; init; } = "probabilities";
}

/// <summary>
/// Exports the built-in networks (<see cref="Models.SmallCnn"/>, ResNet-20, ResNet-18, the pretrained ResNet-18/50
/// backbones with their input preparation) to ONNX, opset <see cref="OpsetVersion"/>, with a free batch dimension. The
/// graph reads <c>[batch, C, H, W]</c> float pixels as the network's caller gives them (optionally standardized in the
/// graph, <see cref="OnnxExportOptions.Mean"/>) and gives the logits and the softmax probabilities, computed as the
/// network computes them in eval mode (BatchNorm with its running statistics). The network is only read.
/// </summary>
public static class OnnxExporter
{
    /// <summary>
    /// The ONNX opset written: 12, the newest ML.NET's ONNX converter writes (so both export routes agree) and supported
    /// by every ONNX Runtime since 1.5. The graphs follow opset 12's definitions (opset 13 changed some ops, such as
    /// Softmax's axis semantics) and are tested as opset 12 only.
    /// </summary>
    public const int OpsetVersion = 12;

    /// <summary>The model for <paramref name="network"/>.</summary>
    /// <exception cref="NotSupportedException">The network is not a built-in one; the message says what cannot be exported and why.</exception>
    /// <exception cref="ArgumentException">The options are inconsistent (Mean/Std, or value names that are empty or not distinct); the message names the option.</exception>
    public static ModelProto ToModel(nn.Module network, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        if (!OnnxNetworkEmitter.IsSupported(network, out string reason)) throw new NotSupportedException($"Cannot export to ONNX: {reason}");
        if ((options.Mean is null) != (options.Std is null))
            throw new ArgumentException("Give both Mean and Std, or neither.", nameof(options));
        if (options.Mean is { } m && (m.Count != options.Channels || options.Std!.Count != options.Channels))
            throw new ArgumentException($"Mean and Std need {options.Channels} values (one per channel); got {m.Count} and {options.Std!.Count}.", nameof(options));
        if (options.Std is { } s && s.Any(v => !(v > 0) || !float.IsFinite(v)))
            throw new ArgumentException("Std values must be finite and > 0.", nameof(options));

        CheckNames(options);
        CheckGeometry(network, options);

        var builder = new OnnxModelBuilder();
        string x = Named(builder.AddInput(options.InputName, options.Channels, options.Height, options.Width), options.InputName, nameof(options.InputName));
        if (options.Mean is { } mean) x = new OnnxGraphWriter(builder, InternalPrefix).Standardize(x, mean, options.Std!);
        string logits = OnnxNetworkEmitter.EmitLogits(network, builder, x, options.Channels, options.Height, options.Width, InternalPrefix);
        logits = Named(builder.AddNode("Identity", new[] { logits }, options.LogitsName, Array.Empty<OnnxAttribute>()), options.LogitsName, nameof(options.LogitsName));
        string probabilities = Named(builder.AddNode("Softmax", new[] { logits }, options.ProbabilitiesName, new[] { OnnxAttribute.Of("axis", 1L) }),
            options.ProbabilitiesName, nameof(options.ProbabilitiesName));
        long classes = ClassCount(network);
        builder.AddOutput(logits, classes);
        builder.AddOutput(probabilities, classes);
        return builder.Build(typeof(OnnxExporter).Assembly.GetName().Version?.ToString() ?? "");
    }

    /// <summary>Writes the model for <paramref name="network"/> to <paramref name="destination"/>.</summary>
    /// <exception cref="NotSupportedException">The network is not a built-in one.</exception>
    public static void Save(nn.Module network, OnnxExportOptions options, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ToModel(network, options).WriteTo(destination);
    }

    /// <summary>Writes the model for <paramref name="network"/> to the file <paramref name="path"/>.</summary>
    /// <exception cref="NotSupportedException">The network is not a built-in one.</exception>
    public static void Save(nn.Module network, OnnxExportOptions options, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var model = ToModel(network, options);
        using var file = File.Create(path);
        model.WriteTo(file);
    }

    // The input geometry the network can read: conv1's input channels, SmallCnn's flattened size (fc's inputs), and the
    // ImageNet ResNets' minimum size (five stride-2 steps). Checked before anything is written.
    private static void CheckGeometry(nn.Module network, OnnxExportOptions options)
    {
        var modules = network.named_modules().ToDictionary(p => p.name, p => p.module, StringComparer.Ordinal);
        if (network is not Pretrained.PretrainedImageNetwork   // the pretrained networks replicate gray input to RGB themselves
            && modules.GetValueOrDefault("conv1") is TorchSharp.Modules.Conv2d conv1 && conv1.weight is { } w1 && w1.shape[1] != options.Channels)
            throw new ArgumentException(
                $"OnnxExportOptions.Channels is {options.Channels} but the network's first convolution (conv1) reads {w1.shape[1]} channels.", nameof(options));
        if (network is Models.SmallCnn
            && modules.GetValueOrDefault("conv2") is TorchSharp.Modules.Conv2d conv2 && conv2.weight is { } w2
            && modules.GetValueOrDefault("fc") is TorchSharp.Modules.Linear fc && fc.weight is { } wf)
        {
            // 3×3 valid conv → 2×2 pool, twice.
            static long Side(long s) => ((s - 2) / 2 - 2) / 2;
            long h = Side(options.Height), w = Side(options.Width);
            long flattened = h >= 1 && w >= 1 ? w2.shape[0] * h * w : 0;
            if (flattened != wf.shape[1])
                throw new ArgumentException(
                    $"OnnxExportOptions.Height and OnnxExportOptions.Width ({options.Height}×{options.Width}) do not fit the network: its head (fc) reads " +
                    $"{wf.shape[1]} features, but a {options.Height}×{options.Width} input gives {flattened}; export with the size the SmallCnn was built for.",
                    nameof(options));
        }
        if (network is Models.ImageNetResNet or Pretrained.PretrainedImageNetwork && (options.Height < 32 || options.Width < 32))
            throw new ArgumentException(
                $"OnnxExportOptions.Height and OnnxExportOptions.Width must be at least 32 for an ImageNet-layout ResNet (it halves the input five times); got {options.Height}×{options.Width}.",
                nameof(options));
    }

    // The prefix of every value between the input and the outputs, so the requested names stay free.
    private const string InternalPrefix = "FlatMinima.network/";

    // The three requested names must be non-empty, distinct and outside the exporter's own names.
    private static void CheckNames(OnnxExportOptions options)
    {
        var names = new (string Option, string Value)[]
        {
            (nameof(options.InputName), options.InputName), (nameof(options.LogitsName), options.LogitsName),
            (nameof(options.ProbabilitiesName), options.ProbabilitiesName),
        };
        foreach (var (option, value) in names)
        {
            if (string.IsNullOrEmpty(value))
                throw new ArgumentException($"OnnxExportOptions.{option} must not be empty.", nameof(options));
            if (value.StartsWith(InternalPrefix, StringComparison.Ordinal))
                throw new ArgumentException($"OnnxExportOptions.{option} '{value}' starts with '{InternalPrefix}', which the exporter uses for its own values.", nameof(options));
        }
        for (int i = 0; i < names.Length; i++)
            for (int j = i + 1; j < names.Length; j++)
                if (names[i].Value == names[j].Value)
                    throw new ArgumentException(
                        $"OnnxExportOptions.{names[i].Option} and OnnxExportOptions.{names[j].Option} are both '{names[i].Value}'; the graph's input and outputs need distinct names.",
                        nameof(options));
    }

    // The name the builder gave, which must be the requested one (a renamed input or output would break callers silently).
    private static string Named(string actual, string requested, string option) =>
        actual == requested ? actual
            : throw new ArgumentException($"OnnxExportOptions.{option} '{requested}' is already used in the graph (it would be written as '{actual}'); choose another name.", "options");

    // K: the rows of the last linear layer's weight (the head of every built-in network).
    private static long ClassCount(nn.Module network)
    {
        var head = network.named_modules().Where(p => p.name == "fc" || p.name.EndsWith(".fc", StringComparison.Ordinal))
            .Select(p => p.module).OfType<TorchSharp.Modules.Linear>().LastOrDefault();
        return head?.weight?.shape[0] ?? throw new NotSupportedException("Cannot export to ONNX: the network has no linear head 'fc'.");
    }
}
