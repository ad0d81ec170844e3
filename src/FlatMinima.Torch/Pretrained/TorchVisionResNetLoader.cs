using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Pretrained;

/// <summary>The TorchVision ResNets whose PyTorch checkpoints <see cref="TorchVisionResNetLoader"/> loads.</summary>
public enum TorchVisionResNet
{
    /// <summary>TorchVision's <c>resnet18</c>: <see cref="ImageNetResNet.ResNet18"/>, basic blocks [2, 2, 2, 2], 512-d embedding.</summary>
    ResNet18,

    /// <summary>TorchVision's <c>resnet50</c> (v1.5): <see cref="ImageNetResNet.ResNet50"/>, bottlenecks [3, 4, 6, 3], 2048-d embedding.</summary>
    ResNet50,
}

/// <summary>
/// Loads PyTorch checkpoints of TorchVision's ResNet-18 and ResNet-50 (a <c>state_dict</c> with TorchVision's keys:
/// <c>conv1.weight</c>, <c>bn1.running_mean</c>, <c>layer1.0.downsample.0.weight</c>, …, <c>fc.weight</c>) into an
/// <see cref="ImageNetResNet"/> with <see cref="StridedPadding.Symmetric"/> padding, as TorchVision pads. Read through
/// TorchSharp.PyBridge:
/// <list type="bullet">
/// <item><c>torch.save</c> files (<c>.pt</c>, <c>.pth</c>; the zip archive of PyTorch ≥ 1.6) holding the state_dict
/// (<c>torch.save(model.state_dict(), path)</c>), or a dictionary with it under <c>"state_dict"</c> or <c>"model"</c>
/// (the other entries, such as an optimizer's state, are read and ignored);</item>
/// <item>safetensors files.</item>
/// </list>
/// Keys that all start with <c>"module."</c> (<c>DataParallel</c>) lose that prefix. The format is told by the content,
/// not the extension. Not read: PyTorch's legacy (pre-1.6) pickles, whole pickled modules (<c>torch.save(model)</c>) and
/// TorchScript archives. Floating-point tensors of any precision are converted to the network's dtype. A missing
/// <c>num_batches_tracked</c> (checkpoints saved before PyTorch 0.4.1, such as TorchVision's original ImageNet weights) is
/// set to 0, as PyTorch does; every other key must be present, no other key may be, and every shape must match — else
/// the load fails before anything in the network changes, with a message naming the file and each offending key.
/// The loaded networks expect inputs prepared by <see cref="ResNetPreprocessing.TorchVisionImageNet"/> when the
/// checkpoint is one of TorchVision's ImageNet ones.
/// </summary>
public static class TorchVisionResNetLoader
{
    private const string HeadPrefix = "fc.";
    private const string BatchCountSuffix = ".num_batches_tracked";
    private const int MaxListedProblems = 12;

    /// <summary>Creates <paramref name="architecture"/> (untrained, PyTorch's default initialization) with a linear head of <paramref name="numClasses"/> outputs.</summary>
    public static ImageNetResNet Create(TorchVisionResNet architecture, int numClasses) => architecture switch
    {
        TorchVisionResNet.ResNet18 => ImageNetResNet.ResNet18(numClasses),
        TorchVisionResNet.ResNet50 => ImageNetResNet.ResNet50(numClasses),
        _ => throw new ArgumentOutOfRangeException(nameof(architecture), architecture, "Unknown TorchVision ResNet."),
    };

    /// <summary>
    /// Reads the checkpoint at <paramref name="path"/> into a new <paramref name="architecture"/> network and returns it in
    /// eval mode on the CPU. The backbone comes from the checkpoint; the head (<c>fc</c>) is a new linear layer of
    /// <paramref name="numClasses"/> outputs drawn from <paramref name="headSeed"/> (see <see cref="ParameterInitialization"/>),
    /// and the checkpoint's <c>fc</c> entries, if any, are ignored — unless <paramref name="useCheckpointHead"/>, when the
    /// checkpoint's <c>fc.weight</c> and <c>fc.bias</c> are required and must have <paramref name="numClasses"/> rows
    /// (1000 for TorchVision's ImageNet checkpoints).
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">
    /// The file is not a readable checkpoint (the message names the file), or its keys or shapes do not fit the
    /// architecture (the message names the file and each missing, unexpected or mis-shaped key, with both shapes).
    /// </exception>
    public static ImageNetResNet Load(string path, TorchVisionResNet architecture, int numClasses, long headSeed = 0, bool useCheckpointHead = false)
    {
        ArgumentNullException.ThrowIfNull(path);
        var network = Create(architecture, numClasses);
        try
        {
            ParameterInitialization.Reset(network.Head, headSeed);
            LoadInto(network, path, useCheckpointHead);
            network.eval();
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the checkpoint at <paramref name="path"/> into <paramref name="network"/>'s parameters and buffers (on
    /// whatever device they are; the network's mode is left as it is). Without <paramref name="includeHead"/> only the
    /// backbone is loaded: the checkpoint's <c>fc.*</c> entries are ignored and may be absent, and the network's head keeps
    /// its values. With it, the head's entries are loaded too and must be present with the head's shapes. Everything is
    /// checked before the first value is copied, so a failed load leaves the network unchanged.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">
    /// The file is not a readable checkpoint (the message names the file), or its keys or shapes do not fit the network
    /// (the message names the file and each missing, unexpected or mis-shaped key, with both shapes).
    /// </exception>
    public static void LoadInto(ImageNetResNet network, string path, bool includeHead = false)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(path);
        using var scope = NewDisposeScope();
        var checkpoint = PyTorchCheckpoint.ReadStateDict(path);
        var state = network.state_dict();
        var copies = new List<(Tensor Target, Tensor? Source)>();
        var problems = new List<string>();
        foreach (var (key, target) in state)
        {
            bool isHead = key.StartsWith(HeadPrefix, StringComparison.Ordinal);
            if (isHead && !includeHead) continue;
            if (!checkpoint.TryGetValue(key, out var source))
            {
                if (key.EndsWith(BatchCountSuffix, StringComparison.Ordinal)) copies.Add((target, null));
                else problems.Add($"missing key '{key}' (shape {Shape(target)})");
                continue;
            }
            if (!source.shape.SequenceEqual(target.shape))
                problems.Add($"key '{key}' has shape {Shape(source)} in the checkpoint; the network expects {Shape(target)}");
            else if (source.is_floating_point() != target.is_floating_point() || source.is_complex())
                problems.Add($"key '{key}' has dtype {source.dtype} in the checkpoint; the network expects {target.dtype}");
            else
                copies.Add((target, source));
        }
        foreach (var key in checkpoint.Keys.Where(k => !state.ContainsKey(k)).Order(StringComparer.Ordinal))
        {
            if (!includeHead && key.StartsWith(HeadPrefix, StringComparison.Ordinal)) continue;
            problems.Add($"unexpected key '{key}' (shape {Shape(checkpoint[key])})");
        }
        if (problems.Count > 0)
        {
            string listed = string.Join("; ", problems.Take(MaxListedProblems));
            string more = problems.Count > MaxListedProblems ? $"; and {problems.Count - MaxListedProblems} more" : "";
            throw new InvalidDataException(
                $"'{path}' does not fit the {Describe(network)}: {listed}{more}. Nothing was loaded.");
        }
        using var noGrad = no_grad();
        foreach (var (target, source) in copies)
        {
            if (source is null) target.zero_();
            else target.copy_(source);
        }
    }

    private static string Shape(Tensor tensor) => $"[{string.Join(", ", tensor.shape)}]";

    private static string Describe(ImageNetResNet network) =>
        $"{network.Block.ToString().ToLowerInvariant()}-block ResNet [{string.Join(", ", network.BlocksPerStage)}]";
}
