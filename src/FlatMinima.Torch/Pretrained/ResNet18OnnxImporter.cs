using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// Imports the ImageNet ResNet-18 of ML.NET's <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package
/// (<c>ResNet18.onnx</c>: CNTK 2.6, opset 8, pooled 512-d features, no classifier) into an
/// <see cref="ImageNetResNet"/> with the graph's blocks per stage (<see cref="ImageNetResNet.MLNetResNet18Blocks"/>:
/// [2, 2, 2, 3], one block more than TorchVision's ResNet-18 in the last stage) and
/// <see cref="StridedPadding.BeginHeavy"/> padding, as the graph pads. Its
/// embedding equals the graph's output for inputs prepared as <see cref="ResNetPreprocessing"/> describes (BGR, 0–255,
/// minus the mean image). The weights are mapped by the graph's topology, not by the generated initializer names, and
/// every shape is checked.
/// </summary>
public static class ResNet18OnnxImporter
{
    /// <summary>
    /// Reads <c>ResNet18.onnx</c> (<paramref name="path"/>, or the copy in the app's output folder — see
    /// <see cref="DnnImageModelFiles"/>) and returns the network in eval mode on the CPU, with a new linear head of
    /// <paramref name="numClasses"/> outputs drawn from <paramref name="headSeed"/> (see <see cref="ParameterInitialization"/>).
    /// </summary>
    /// <exception cref="System.IO.FileNotFoundException">The file is missing; the message names the package to add.</exception>
    /// <exception cref="System.IO.InvalidDataException">The graph is not the expected ResNet-18; the message names the node or initializer.</exception>
    public static ImageNetResNet Import(int numClasses, string? path = null, long headSeed = 0)
    {
        var reader = OnnxModelReader.Read(DnnImageModelFiles.ResNet18(path));
        var layout = ResNet18OnnxTopology.Map(reader);
        var network = new ImageNetResNet(layout.BlocksPerStage, numClasses, StridedPadding.BeginHeavy);
        try
        {
            ParameterInitialization.Reset(network.Head, headSeed);
            Load(network, reader, layout.Assignments);
            network.eval();
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    // Copies every assignment into the network's state after checking its shape; every backbone entry must be filled once.
    private static void Load(ImageNetResNet network, OnnxModelReader reader, IReadOnlyList<OnnxWeightAssignment> assignments)
    {
        var state = network.state_dict();
        var expected = state.Keys.Where(k => !k.StartsWith("fc.", StringComparison.Ordinal) && !k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)).ToHashSet();
        using var noGrad = no_grad();
        foreach (var assignment in assignments)
        {
            if (!expected.Remove(assignment.Target))
                throw reader.Error($"initializer '{assignment.Initializer.Name}' maps to '{assignment.Target}', which is not a backbone entry or was already filled");
            var target = state[assignment.Target];
            long[] shape = assignment.Initializer.Dims.ToArray();
            if (!shape.SequenceEqual(target.shape))
                throw reader.Error(
                    $"initializer '{assignment.Initializer.Name}' (input {assignment.InputIndex} of {OnnxModelReader.Describe(assignment.Node)}, " +
                    $"{assignment.Target}) has shape [{string.Join(", ", shape)}]; expected [{string.Join(", ", target.shape)}]");
            using var values = tensor(reader.FloatData(assignment.Initializer), shape);
            target.copy_(values);
        }
        if (expected.Count > 0)
            throw reader.Error($"the graph gives no weights for [{string.Join(", ", expected.Order())}]");
    }
}
