using System;
using System.Collections.Generic;
using System.Linq;
using Onnx;

namespace FlatMinima.Torch.Pretrained;

/// <summary>One initializer of <c>ResNet18.onnx</c> and the <see cref="Models.ImageNetResNet"/> state entry it fills.</summary>
/// <param name="Target">The state-dict name (<c>layer2.0.downsample.1.running_var</c>).</param>
/// <param name="Node">The node that reads the initializer.</param>
/// <param name="InputIndex">The node input that names it.</param>
/// <param name="Initializer">The initializer.</param>
internal sealed record OnnxWeightAssignment(string Target, NodeProto Node, int InputIndex, TensorProto Initializer);

/// <summary>What the walk found: the blocks of each stage and every initializer's place.</summary>
/// <param name="BlocksPerStage">The basic blocks of each of the four stages ([2, 2, 2, 3] in ML.NET's file).</param>
/// <param name="Assignments">The initializers and the state entries they fill.</param>
internal sealed record ResNetOnnxLayout(IReadOnlyList<int> BlocksPerStage, IReadOnlyList<OnnxWeightAssignment> Assignments);

/// <summary>
/// Maps the initializers of ML.NET's <c>ResNet18.onnx</c> (CNTK 2.6 export: generated names such as
/// <c>Parameter91</c>) onto TorchVision-layout state names by walking the graph from its input: stem
/// Conv → BatchNormalization → Relu → MaxPool; per block the Conv(s) reading the block input (3×3 → <c>conv1</c>,
/// 1×1 → <c>downsample</c>; a block with a 1×1 shortcut opens the next stage), Conv → BatchNormalization → Relu → Conv →
/// BatchNormalization → Add (whose other input must be the shortcut) → Relu; until the AveragePool, which must give the
/// graph's output after four stages. Kernel sizes, strides, pads, groups, dilations and BatchNorm epsilons are checked
/// on the way; anything else names the node.
/// </summary>
internal static class ResNet18OnnxTopology
{
    /// <summary>The pads (ONNX order: begin H, begin W, end H, end W) the CNTK export uses at stride 2 — begin-heavy.</summary>
    private static readonly long[] StemPads = { 3, 3, 2, 2 };
    private static readonly long[] Stride2Pads = { 1, 1, 0, 0 };
    private static readonly long[] SamePads = { 1, 1, 1, 1 };
    private static readonly long[] NoPads = { 0, 0, 0, 0 };

    /// <summary>The blocks per stage and the assignments of every backbone entry (conv weights, BatchNorm weight, bias, running mean and variance).</summary>
    public static ResNetOnnxLayout Map(OnnxModelReader reader)
    {
        var assignments = new List<OnnxWeightAssignment>();
        string x = reader.SingleDataInput();

        var stem = reader.SingleConsumer(x, "Conv");
        CheckConv(reader, stem, 7, 2, StemPads);
        assignments.Add(new("conv1.weight", stem, 1, reader.Initializer(stem, 1)));
        var stemNorm = BatchNorm(reader, stem, "bn1", assignments);
        var stemRelu = reader.SingleConsumer(stemNorm.Output[0], "Relu");
        var pool = reader.SingleConsumer(stemRelu.Output[0], "MaxPool");
        Check(reader, pool, "kernel_shape", OnnxModelReader.Ints(pool, "kernel_shape", Array.Empty<long>()), new long[] { 3, 3 });
        Check(reader, pool, "strides", OnnxModelReader.Ints(pool, "strides", new long[] { 1, 1 }), new long[] { 2, 2 });
        Check(reader, pool, "pads", OnnxModelReader.Ints(pool, "pads", NoPads), Stride2Pads);
        x = pool.Output[0];

        var blocks = new int[4];
        int stage = 0;
        while (!reader.Consumers(x).Any(n => n.OpType == "AveragePool"))
        {
            // Two Convs read the input of a block that opens a stage (3×3 and the 1×1 shortcut); Block checks the count.
            bool downsampling = reader.Consumers(x).Count(n => n.OpType == "Conv") == 2;
            if (downsampling && (blocks[stage] == 0 || stage == blocks.Length - 1))
                throw reader.Error($"tensor '{x}' (input of layer{stage + 1}.{blocks[stage]}) has a 1×1 shortcut; expected one only where stages 2–4 open, after a block of the previous stage");
            if (downsampling) stage++;
            x = Block(reader, x, $"layer{stage + 1}.{blocks[stage]}", downsampling, assignments);
            blocks[stage]++;
        }
        if (stage != blocks.Length - 1 || blocks.Any(b => b == 0))
            throw reader.Error($"the graph pools after blocks [{string.Join(", ", blocks)}]; expected four stages of at least one block");

        var average = reader.SingleConsumer(x, "AveragePool");
        if (average.Output[0] != reader.SingleOutput())
            throw reader.Error($"{OnnxModelReader.Describe(average)} is not the graph's output ('{reader.SingleOutput()}')");
        return new ResNetOnnxLayout(blocks, assignments);
    }

    // One basic block from its input tensor; returns its output tensor.
    private static string Block(OnnxModelReader reader, string input, string prefix, bool downsampling, List<OnnxWeightAssignment> assignments)
    {
        var convs = reader.Consumers(input).Where(n => n.OpType == "Conv").ToList();
        if (convs.Count != (downsampling ? 2 : 1))
            throw reader.Error($"tensor '{input}' (input of {prefix}) is read by {convs.Count} Conv nodes; expected {(downsampling ? 2 : 1)}");
        var conv1 = convs.FirstOrDefault(c => Kernel(c) == 3)
            ?? throw reader.Error($"no 3×3 Conv reads '{input}' (input of {prefix})");
        CheckConv(reader, conv1, 3, downsampling ? 2 : 1, downsampling ? Stride2Pads : SamePads);
        assignments.Add(new($"{prefix}.conv1.weight", conv1, 1, reader.Initializer(conv1, 1)));
        var norm1 = BatchNorm(reader, conv1, $"{prefix}.bn1", assignments);
        var relu1 = reader.SingleConsumer(norm1.Output[0], "Relu");
        var conv2 = reader.SingleConsumer(relu1.Output[0], "Conv");
        CheckConv(reader, conv2, 3, 1, SamePads);
        assignments.Add(new($"{prefix}.conv2.weight", conv2, 1, reader.Initializer(conv2, 1)));
        var norm2 = BatchNorm(reader, conv2, $"{prefix}.bn2", assignments);

        string shortcut = input;
        if (downsampling)
        {
            var projection = convs.FirstOrDefault(c => Kernel(c) == 1)
                ?? throw reader.Error($"no 1×1 Conv reads '{input}' (the shortcut of {prefix})");
            CheckConv(reader, projection, 1, 2, NoPads);
            assignments.Add(new($"{prefix}.downsample.0.weight", projection, 1, reader.Initializer(projection, 1)));
            shortcut = BatchNorm(reader, projection, $"{prefix}.downsample.1", assignments).Output[0];
        }
        var add = reader.SingleConsumer(norm2.Output[0], "Add");
        var other = add.Input.Where(i => i != norm2.Output[0]).ToList();
        if (other.Count != 1 || other[0] != shortcut)
            throw reader.Error($"{OnnxModelReader.Describe(add)} adds [{string.Join(", ", add.Input)}]; expected '{norm2.Output[0]}' and the shortcut '{shortcut}' of {prefix}");
        return reader.SingleConsumer(add.Output[0], "Relu").Output[0];
    }

    // The BatchNormalization reading conv's output: scale, B, mean, var → weight, bias, running_mean, running_var.
    private static NodeProto BatchNorm(OnnxModelReader reader, NodeProto conv, string prefix, List<OnnxWeightAssignment> assignments)
    {
        var norm = reader.SingleConsumer(conv.Output[0], "BatchNormalization");
        float epsilon = OnnxModelReader.Float(norm, "epsilon", 1e-5f);
        if (Math.Abs(epsilon - 1e-5) > 1e-9)
            throw reader.Error($"{OnnxModelReader.Describe(norm)} has epsilon {epsilon}; expected 1e-5 (TorchSharp's BatchNorm2d)");
        string[] targets = { "weight", "bias", "running_mean", "running_var" };
        for (int i = 0; i < targets.Length; i++)
            assignments.Add(new($"{prefix}.{targets[i]}", norm, i + 1, reader.Initializer(norm, i + 1)));
        return norm;
    }

    private static void CheckConv(OnnxModelReader reader, NodeProto conv, long kernel, long stride, long[] pads)
    {
        Check(reader, conv, "kernel_shape", OnnxModelReader.Ints(conv, "kernel_shape", Array.Empty<long>()), new[] { kernel, kernel });
        Check(reader, conv, "strides", OnnxModelReader.Ints(conv, "strides", new long[] { 1, 1 }), new[] { stride, stride });
        Check(reader, conv, "pads", OnnxModelReader.Ints(conv, "pads", NoPads), pads);
        Check(reader, conv, "dilations", OnnxModelReader.Ints(conv, "dilations", new long[] { 1, 1 }), new long[] { 1, 1 });
        Check(reader, conv, "group", new[] { OnnxModelReader.Int(conv, "group", 1) }, new long[] { 1 });
        if (conv.Input.Count != 2) throw reader.Error($"{OnnxModelReader.Describe(conv)} has a bias; expected none (BatchNorm follows)");
    }

    private static void Check(OnnxModelReader reader, NodeProto node, string attribute, long[] actual, long[] expected)
    {
        if (!actual.SequenceEqual(expected))
            throw reader.Error($"{OnnxModelReader.Describe(node)} has {attribute} [{string.Join(", ", actual)}]; expected [{string.Join(", ", expected)}]");
    }

    private static long Kernel(NodeProto conv) => OnnxModelReader.Ints(conv, "kernel_shape", Array.Empty<long>()).FirstOrDefault();
}
