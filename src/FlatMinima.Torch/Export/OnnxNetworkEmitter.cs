using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Export;

/// <summary>
/// Writes the ONNX graph of a built-in network into an <see cref="IOnnxGraphSink"/>: <see cref="SmallCnn"/>,
/// <see cref="SmallImageResNet"/> (ResNet-20, ResNet-18), <see cref="ImageNetResNet"/> (basic or bottleneck blocks,
/// symmetric or begin-heavy padding) and <see cref="PretrainedImageNetwork"/> (the input preparation — gray replication,
/// pixel scale, BGR order, mean image, channel deviations — then the ResNet). The graph computes what the network's
/// <c>forward</c> (or <c>Embed</c>) computes in eval mode; BatchNorm uses its running statistics. This is the one
/// declaration of each network's graph: <see cref="OnnxExporter"/> and the ML.NET layer's ONNX export both call it.
/// </summary>
public static class OnnxNetworkEmitter
{
    private static readonly long[] NoPads = { 0, 0, 0, 0 };

    /// <summary>
    /// Writes the graph from <paramref name="input"/> (<c>[N, <paramref name="channels"/>, <paramref name="height"/>,
    /// <paramref name="width"/>]</c>, already normalized as the network expects) to the logits <c>[N, K]</c> and returns the
    /// logits' name. Names start with <paramref name="prefix"/>.
    /// </summary>
    /// <exception cref="NotSupportedException">The network is not a built-in one (the message says which module and why).</exception>
    public static string EmitLogits(nn.Module network, IOnnxGraphSink sink, string input, int channels, int height, int width, string prefix = "") =>
        Emit(network, sink, input, channels, height, width, prefix, embedding: false);

    /// <summary>
    /// Writes the graph from <paramref name="input"/> to the embedding <c>[N, D]</c> (the head's input, what
    /// <see cref="IEmbeddingNetwork.Embed"/> returns) and returns its name.
    /// </summary>
    /// <exception cref="NotSupportedException">The network is not a built-in one.</exception>
    public static string EmitEmbedding(nn.Module network, IOnnxGraphSink sink, string input, int channels, int height, int width, string prefix = "") =>
        Emit(network, sink, input, channels, height, width, prefix, embedding: true);

    /// <summary>Whether <paramref name="network"/> can be exported; when not, <paramref name="reason"/> says which module and why.</summary>
    public static bool IsSupported(nn.Module network, out string reason)
    {
        ArgumentNullException.ThrowIfNull(network);
        reason = "";
        switch (network)
        {
            case SmallCnn or SmallImageResNet:
                return true;
            case ImageNetResNet resNet:
                return HeadSupported(resNet, out reason);
            case PretrainedImageNetwork pretrained:
                return HeadSupported(pretrained.Network, out reason);
            default:
                var types = network.modules().Select(m => m.GetType().Name).Distinct().ToList();
                reason = $"the network '{network.GetType().Name}' is not one of the built-in architectures (SmallCnn, ResNet-20, ResNet-18, the " +
                    $"pretrained ResNets), and the exporter writes only their graphs: it cannot tell what a custom module's forward computes " +
                    $"(its modules: {(types.Count == 0 ? "none" : string.Join(", ", types))}). Export a custom network from its own code " +
                    "(for example from PyTorch with torch.onnx.export).";
                return false;
        }
    }

    private static bool HeadSupported(ImageNetResNet resNet, out string reason)
    {
        reason = resNet.Head is Linear ? "" : $"the classification head is a '{resNet.Head.GetType().Name}'; the exporter writes a linear head (fc) only.";
        return reason.Length == 0;
    }

    private static string Emit(nn.Module network, IOnnxGraphSink sink, string input, int channels, int height, int width, string prefix, bool embedding)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(sink);
        ArgumentException.ThrowIfNullOrEmpty(input);
        if (channels < 1 || height < 1 || width < 1)
            throw new ArgumentOutOfRangeException(nameof(channels), $"The input geometry {channels}×{height}×{width} must be positive.");
        if (!IsSupported(network, out string reason)) throw new NotSupportedException($"Cannot export to ONNX: {reason}");
        var writer = new OnnxGraphWriter(sink, prefix);
        var modules = new ModuleIndex(network);
        switch (network)
        {
            case SmallCnn:
                return SmallCnnGraph(writer, modules, input, embedding);
            case SmallImageResNet:
                return SmallResNetGraph(writer, modules, input, embedding);
            case ImageNetResNet resNet:
                return ImageNetResNetGraph(writer, modules, "", resNet, input, height, width, embedding);
            default:
                var pretrained = (PretrainedImageNetwork)network;
                string prepared = PreprocessingGraph(writer, pretrained.Preprocessing, input, channels, height, width);
                return ImageNetResNetGraph(writer, modules, "backbone.", pretrained.Network, prepared, height, width, embedding);
        }
    }

    // conv 3×3 → ReLU → max-pool 2 → conv 3×3 → ReLU → max-pool 2 → flatten → linear.
    private static string SmallCnnGraph(OnnxGraphWriter w, ModuleIndex m, string x, bool embedding)
    {
        x = w.MaxPool(w.Relu(w.Conv(x, m.Conv("conv1", 3), "conv1", 1, NoPads), "relu1"), "pool1", 2, 2, NoPads);
        x = w.MaxPool(w.Relu(w.Conv(x, m.Conv("conv2", 3), "conv2", 1, NoPads), "relu2"), "pool2", 2, 2, NoPads);
        x = w.Flatten(x, "embedding");
        return embedding ? x : w.Gemm(x, m.Linear("fc"), "fc");
    }

    // 3×3 stem (stride 1) + BatchNorm + ReLU, stages layer1…layerN of basic blocks (stride 2 opening stages 2…N), global pool, linear.
    private static string SmallResNetGraph(OnnxGraphWriter w, ModuleIndex m, string x, bool embedding)
    {
        x = w.Relu(w.BatchNorm(w.Conv(x, m.Conv("conv1", 3), "conv1", 1, Same(1)), m.Norm("bn1"), "bn1"), "relu1");
        for (int s = 1; m.Has($"layer{s}"); s++)
            for (int b = 0; m.Has($"layer{s}.{b}"); b++)
                x = BasicBlockGraph(w, m, $"layer{s}.{b}.", x, s > 1 && b == 0 ? 2 : 1, beginHeavy: false, 0, 0);
        x = w.GlobalAveragePoolFlat(x, "embedding");
        return embedding ? x : w.Gemm(x, m.Linear("fc"), "fc");
    }

    // TorchVision's layout: 7×7 stride-2 stem, BatchNorm, ReLU, 3×3 stride-2 max pool, four stages, global pool, fc.
    private static string ImageNetResNetGraph(OnnxGraphWriter w, ModuleIndex m, string at, ImageNetResNet network, string x, long h, long wd, bool embedding)
    {
        bool beginHeavy = network.Padding == StridedPadding.BeginHeavy;
        x = w.Conv(x, m.Conv(at + "conv1", 7), at + "conv1", 2, beginHeavy ? new long[] { 3, 3, 2, 2 } : Same(3));
        (h, wd) = Halved(h, wd, beginHeavy);
        x = w.Relu(w.BatchNorm(x, m.Norm(at + "bn1"), at + "bn1"), at + "relu1");
        x = w.MaxPool(x, at + "maxpool", 3, 2, beginHeavy ? new long[] { 1, 1, 0, 0 } : Same(1));
        (h, wd) = Halved(h, wd, beginHeavy);
        for (int s = 0; s < network.BlocksPerStage.Count; s++)
            for (int b = 0; b < network.BlocksPerStage[s]; b++)
            {
                int stride = s > 0 && b == 0 ? 2 : 1;
                string name = $"{at}layer{s + 1}.{b}.";
                x = network.Block == ResNetBlock.Basic
                    ? BasicBlockGraph(w, m, name, x, stride, beginHeavy, h, wd)
                    : BottleneckGraph(w, m, name, x, stride, beginHeavy, h, wd);
                if (stride == 2) (h, wd) = Halved(h, wd, beginHeavy);
            }
        x = w.GlobalAveragePoolFlat(x, at + "embedding");
        return embedding ? x : w.Gemm(x, m.Linear(at + "fc"), at + "fc");
    }

    // Two 3×3 convolutions with BatchNorm, a 1×1 projection shortcut where present, sum, ReLU. (h, wd): the block's input size.
    private static string BasicBlockGraph(OnnxGraphWriter w, ModuleIndex m, string at, string input, int stride, bool beginHeavy, long h, long wd)
    {
        var x = w.Conv(input, m.Conv(at + "conv1", 3), at + "conv1", stride, StridedPads(1, stride, beginHeavy));
        x = w.Relu(w.BatchNorm(x, m.Norm(at + "bn1"), at + "bn1"), at + "relu1");
        x = w.BatchNorm(w.Conv(x, m.Conv(at + "conv2", 3), at + "conv2", 1, Same(1)), m.Norm(at + "bn2"), at + "bn2");
        return w.Relu(w.Add(x, Shortcut(w, m, at, input, stride, beginHeavy, h, wd), at + "add"), at + "relu2");
    }

    // TorchVision's bottleneck (v1.5): 1×1, 3×3 (with the stride), 1×1, each with BatchNorm; shortcut; sum; ReLU.
    private static string BottleneckGraph(OnnxGraphWriter w, ModuleIndex m, string at, string input, int stride, bool beginHeavy, long h, long wd)
    {
        var x = w.Relu(w.BatchNorm(w.Conv(input, m.Conv(at + "conv1", 1), at + "conv1", 1, NoPads), m.Norm(at + "bn1"), at + "bn1"), at + "relu1");
        x = w.Conv(x, m.Conv(at + "conv2", 3), at + "conv2", stride, StridedPads(1, stride, beginHeavy));
        x = w.Relu(w.BatchNorm(x, m.Norm(at + "bn2"), at + "bn2"), at + "relu2");
        x = w.BatchNorm(w.Conv(x, m.Conv(at + "conv3", 1), at + "conv3", 1, NoPads), m.Norm(at + "bn3"), at + "bn3");
        return w.Relu(w.Add(x, Shortcut(w, m, at, input, stride, beginHeavy, h, wd), at + "add"), at + "relu3");
    }

    // The block input, or its 1×1 projection (downsample.0 conv, downsample.1 BatchNorm); begin-heavy stride-2 keeps ⌊h/2⌋ rows.
    private static string Shortcut(OnnxGraphWriter w, ModuleIndex m, string at, string input, int stride, bool beginHeavy, long h, long wd)
    {
        if (!m.Has(at + "downsample")) return input;
        var x = w.Conv(input, m.Conv(at + "downsample.0", 1), at + "downsample.0", stride, NoPads);
        x = w.BatchNorm(x, m.Norm(at + "downsample.1"), at + "downsample.1");
        if (beginHeavy && stride == 2 && (h % 2 == 1 || wd % 2 == 1)) x = w.Crop(x, at + "downsample.crop", h / 2, wd / 2);
        return x;
    }

    // ImagePreprocessingModule: gray replicated to RGB → reversed channels (BGR) → × pixel scale → − mean → ÷ channel std.
    private static string PreprocessingGraph(OnnxGraphWriter w, ImagePreprocessingModule module, string x, int channels, int height, int width)
    {
        if (channels is not (1 or 3))
            throw new NotSupportedException($"Cannot export to ONNX: the pretrained backbone reads 1 or 3 channels; the input has {channels}.");
        if (!module.AcceptsAnySize && (module.Height != height || module.Width != width))
            throw new NotSupportedException(
                $"Cannot export to ONNX: the pretrained backbone's mean image is {module.Height}×{module.Width}; the input is {height}×{width}.");
        var buffers = module.named_buffers().ToDictionary(b => b.name, b => b.buffer, StringComparer.Ordinal);
        if (channels == 1) x = w.Node("Concat", "preprocess.rgb", new[] { x, x, x }, OnnxAttribute.Of("axis", 1L));
        if (module.Bgr) x = w.Node("Gather", "preprocess.bgr", new[] { x, w.Longs("preprocess.bgr.indices", 2, 1, 0) }, OnnxAttribute.Of("axis", 1L));
        if (module.PixelScale != 1) x = w.Node("Mul", "preprocess.scale", new[] { x, w.Constant("preprocess.pixel_scale", new[] { (float)module.PixelScale }, 1) });
        x = w.Node("Sub", "preprocess.mean", new[] { x, w.Weight("preprocess.mean_image", buffers["mean_image"]) });
        if (buffers.TryGetValue("channel_std", out var std)) x = w.Node("Div", "preprocess.std", new[] { x, w.Weight("preprocess.channel_std", std) });
        return x;
    }

    private static long[] Same(long p) => new[] { p, p, p, p };

    private static long[] StridedPads(long p, int stride, bool beginHeavy) =>
        stride == 2 && beginHeavy ? new[] { p, p, p - 1, p - 1 } : Same(p);

    // The size after a stride-2 layer: ⌈h/2⌉ symmetric, ⌊h/2⌋ begin-heavy.
    private static (long, long) Halved(long h, long w, bool beginHeavy) => beginHeavy ? (h / 2, w / 2) : ((h + 1) / 2, (w + 1) / 2);

    /// <summary>The network's submodules by their dotted names, with checks of their kinds and kernel sizes.</summary>
    private sealed class ModuleIndex
    {
        private readonly Dictionary<string, nn.Module> modules;

        public ModuleIndex(nn.Module network) =>
            modules = network.named_modules().ToDictionary(p => p.name, p => p.module, StringComparer.Ordinal);

        public bool Has(string name) => modules.ContainsKey(name);

        public Conv2d Conv(string name, long kernel)
        {
            var conv = Get<Conv2d>(name);
            var shape = conv.weight!.shape;
            if (shape[2] != kernel || shape[3] != kernel)
                throw new NotSupportedException($"Cannot export to ONNX: the convolution '{name}' has a {shape[2]}×{shape[3]} kernel; the architecture has {kernel}×{kernel}.");
            return conv;
        }

        public BatchNorm2d Norm(string name) => Get<BatchNorm2d>(name);

        public Linear Linear(string name) => Get<Linear>(name);

        private T Get<T>(string name) where T : nn.Module =>
            modules.TryGetValue(name, out var module) && module is T typed
                ? typed
                : throw new NotSupportedException(
                    $"Cannot export to ONNX: the network has {(module is null ? "no module" : $"a {module.GetType().Name}")} at '{name}' where its architecture has a {typeof(T).Name}.");
    }
}
