using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Export;

/// <summary>
/// Writes TorchSharp layers as ONNX nodes into an <see cref="IOnnxGraphSink"/>, in eval-mode semantics (BatchNorm uses
/// its running statistics): Conv, BatchNormalization, Relu, Add, MaxPool, GlobalAveragePool + Flatten, Gemm, Slice and
/// the arithmetic of input normalization, following opset 12's definitions. Names are prefixed with
/// <see cref="Prefix"/> so they do not collide with other values of a larger graph.
/// </summary>
internal sealed class OnnxGraphWriter
{
    private static readonly IReadOnlyList<OnnxAttribute> None = Array.Empty<OnnxAttribute>();
    private readonly IOnnxGraphSink sink;

    public OnnxGraphWriter(IOnnxGraphSink sink, string prefix)
    {
        this.sink = sink ?? throw new ArgumentNullException(nameof(sink));
        Prefix = prefix;
    }

    /// <summary>The prefix of every name written.</summary>
    public string Prefix { get; }

    /// <summary>A float initializer holding <paramref name="tensor"/>'s values (any device and float dtype).</summary>
    public string Weight(string name, Tensor tensor) => sink.AddInitializer(Prefix + name, Floats(tensor), tensor.shape.ToArray());

    /// <summary>A float initializer of the given values and shape.</summary>
    public string Constant(string name, float[] values, params long[] dims) => sink.AddInitializer(Prefix + name, values, dims);

    /// <summary>An int64 initializer of the given values (a 1-d tensor).</summary>
    public string Longs(string name, params long[] values) => sink.AddInitializer(Prefix + name, values, new long[] { values.Length });

    /// <summary>A node with one output.</summary>
    public string Node(string opType, string output, IReadOnlyList<string> inputs, params OnnxAttribute[] attributes) =>
        sink.AddNode(opType, inputs, Prefix + output, attributes);

    /// <summary>A 2-d convolution with the layer's weight (and bias), the given stride and pads (ONNX order: begin H, begin W, end H, end W).</summary>
    public string Conv(string x, Conv2d conv, string name, long stride, long[] pads)
    {
        var weight = conv.weight ?? throw new InvalidOperationException($"The convolution '{name}' has no weight.");
        var inputs = new List<string> { x, Weight(name + ".weight", weight) };
        if (conv.bias is { } bias) inputs.Add(Weight(name + ".bias", bias));
        return Node("Conv", name, inputs,
            OnnxAttribute.Of("kernel_shape", weight.shape[2], weight.shape[3]),
            OnnxAttribute.Of("strides", stride, stride),
            OnnxAttribute.Of("pads", pads));
    }

    /// <summary>BatchNorm in eval mode: <c>(x − running_mean) / √(running_var + eps) · weight + bias</c>.</summary>
    public string BatchNorm(string x, BatchNorm2d norm, string name)
    {
        var mean = norm.running_mean ?? throw new NotSupportedException($"The BatchNorm '{name}' does not track running statistics, which eval mode and ONNX need.");
        var variance = norm.running_var!;
        long features = mean.shape[0];
        string scale = norm.weight is { } w ? Weight(name + ".weight", w) : Constant(name + ".weight", Enumerable.Repeat(1f, (int)features).ToArray(), features);
        string bias = norm.bias is { } b ? Weight(name + ".bias", b) : Constant(name + ".bias", new float[features], features);
        return Node("BatchNormalization", name, new[] { x, scale, bias, Weight(name + ".running_mean", mean), Weight(name + ".running_var", variance) },
            OnnxAttribute.Of("epsilon", (float)norm.eps));
    }

    /// <summary>ReLU.</summary>
    public string Relu(string x, string name) => Node("Relu", name, new[] { x });

    /// <summary>Element-wise sum.</summary>
    public string Add(string a, string b, string name) => Node("Add", name, new[] { a, b });

    /// <summary>Max pooling with a square kernel.</summary>
    public string MaxPool(string x, string name, long kernel, long stride, long[] pads) =>
        Node("MaxPool", name, new[] { x },
            OnnxAttribute.Of("kernel_shape", kernel, kernel),
            OnnxAttribute.Of("strides", stride, stride),
            OnnxAttribute.Of("pads", pads));

    /// <summary>Global average pooling flattened to <c>[N, C]</c> (<c>adaptive_avg_pool2d(x, 1).flatten(1)</c>).</summary>
    public string GlobalAveragePoolFlat(string x, string name) =>
        Flatten(Node("GlobalAveragePool", name, new[] { x }), name + ".flat");

    /// <summary><c>x.flatten(1)</c>.</summary>
    public string Flatten(string x, string name) => Node("Flatten", name, new[] { x }, OnnxAttribute.Of("axis", 1L));

    /// <summary>A linear layer: <c>x · weightᵀ + bias</c>.</summary>
    public string Gemm(string x, Linear linear, string name)
    {
        var weight = linear.weight!;
        var inputs = new List<string> { x, Weight(name + ".weight", weight) };
        if (linear.bias is { } bias) inputs.Add(Weight(name + ".bias", bias));
        return Node("Gemm", name, inputs, OnnxAttribute.Of("transB", 1L));
    }

    /// <summary>The first <paramref name="height"/> rows and <paramref name="width"/> columns of <c>[N, C, H, W]</c>.</summary>
    public string Crop(string x, string name, long height, long width) =>
        Node("Slice", name, new[] { x, Longs(name + ".starts", 0, 0), Longs(name + ".ends", height, width), Longs(name + ".axes", 2, 3) });

    /// <summary>Per-channel <c>(x − mean) / std</c> of <c>[N, C, H, W]</c> (skipped when it is the identity: means 0, deviations 1).</summary>
    public string Standardize(string x, IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        if (mean.Count != std.Count) throw new ArgumentException($"{mean.Count} means for {std.Count} standard deviations.", nameof(std));
        if (mean.All(m => m == 0) && std.All(s => s == 1)) return x;
        long c = mean.Count;
        x = Node("Sub", "standardize.sub", new[] { x, Constant("standardize.mean", mean.ToArray(), 1, c, 1, 1) });
        return Node("Div", "standardize.div", new[] { x, Constant("standardize.std", std.ToArray(), 1, c, 1, 1) });
    }

    /// <summary>The values of <paramref name="tensor"/> as float32 in row-major order.</summary>
    public static float[] Floats(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        return tensor.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
    }
}
