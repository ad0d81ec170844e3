using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// An ONNX graph read with OnnxSharp's protobuf classes, indexed for walking by topology: who produces and who
/// consumes each tensor, the initializers by name, and the attributes and float data of nodes and initializers.
/// Errors name the file, the node or the initializer.
/// </summary>
internal sealed class OnnxModelReader
{
    private readonly Dictionary<string, TensorProto> initializers;
    private readonly ILookup<string, NodeProto> consumers;

    private OnnxModelReader(string fileName, ModelProto model)
    {
        FileName = fileName;
        Model = model;
        Graph = model.Graph ?? throw Error("has no graph");
        initializers = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        foreach (var initializer in Graph.Initializer) initializers[initializer.Name] = initializer;
        consumers = Graph.Node.SelectMany(n => n.Input.Select(i => (Input: i, Node: n))).ToLookup(p => p.Input, p => p.Node, StringComparer.Ordinal);
    }

    /// <summary>The file's name, for messages.</summary>
    public string FileName { get; }

    /// <summary>The model as read.</summary>
    public ModelProto Model { get; }

    /// <summary>The model's graph.</summary>
    public GraphProto Graph { get; }

    /// <summary>Reads the ONNX model at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a readable ONNX model.</exception>
    public static OnnxModelReader Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string fileName = Path.GetFileName(path);
        try
        {
            using var stream = File.OpenRead(path);
            return new OnnxModelReader(fileName, ModelProto.Parser.ParseFrom(stream));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"{fileName}: not a readable ONNX model ({e.Message}).", e);
        }
    }

    /// <summary>The graph's one input that is not an initializer.</summary>
    public string SingleDataInput()
    {
        var inputs = Graph.Input.Where(i => !initializers.ContainsKey(i.Name)).Select(i => i.Name).ToList();
        return inputs.Count == 1 ? inputs[0] : throw Error($"has {inputs.Count} data inputs ({string.Join(", ", inputs)}); expected 1");
    }

    /// <summary>The graph's one output.</summary>
    public string SingleOutput() =>
        Graph.Output.Count == 1 ? Graph.Output[0].Name : throw Error($"has {Graph.Output.Count} outputs; expected 1");

    /// <summary>The nodes that read <paramref name="tensor"/>.</summary>
    public IReadOnlyList<NodeProto> Consumers(string tensor) => consumers[tensor].ToList();

    /// <summary>The one node that reads <paramref name="tensor"/>, which must be an <paramref name="opType"/> node.</summary>
    public NodeProto SingleConsumer(string tensor, string opType)
    {
        var nodes = Consumers(tensor);
        if (nodes.Count != 1 || nodes[0].OpType != opType)
            throw Error($"tensor '{tensor}' is read by [{string.Join(", ", nodes.Select(Describe))}]; expected one {opType} node");
        return nodes[0];
    }

    /// <summary>The initializer that <paramref name="node"/> reads as input <paramref name="index"/>.</summary>
    public TensorProto Initializer(NodeProto node, int index)
    {
        if (index >= node.Input.Count) throw Error($"{Describe(node)} has {node.Input.Count} inputs; expected at least {index + 1}");
        string name = node.Input[index];
        return initializers.TryGetValue(name, out var tensor)
            ? tensor
            : throw Error($"input {index} of {Describe(node)} ('{name}') is not an initializer");
    }

    /// <summary>The float values of <paramref name="tensor"/> (raw little-endian data or the <c>float_data</c> field).</summary>
    public float[] FloatData(TensorProto tensor)
    {
        if (tensor.DataType != (int)TensorProto.Types.DataType.Float)
            throw Error($"initializer '{tensor.Name}' has element type {tensor.DataType}; expected float (1)");
        if (!BitConverter.IsLittleEndian && tensor.RawData.Length > 0)
            throw new PlatformNotSupportedException("Reading ONNX raw tensor data needs a little-endian machine.");
        long count = tensor.Dims.Aggregate(1L, (product, d) => product * d);
        float[] values = tensor.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray() : tensor.FloatData.ToArray();
        return values.Length == count
            ? values
            : throw Error($"initializer '{tensor.Name}' holds {values.Length} values; its shape [{string.Join(", ", tensor.Dims)}] needs {count}");
    }

    /// <summary>The integer list attribute <paramref name="name"/> of <paramref name="node"/>, or <paramref name="fallback"/> when absent.</summary>
    public static long[] Ints(NodeProto node, string name, long[] fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.Ints.ToArray() : fallback;

    /// <summary>The integer attribute <paramref name="name"/> of <paramref name="node"/>, or <paramref name="fallback"/> when absent.</summary>
    public static long Int(NodeProto node, string name, long fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;

    /// <summary>The float attribute <paramref name="name"/> of <paramref name="node"/>, or <paramref name="fallback"/> when absent.</summary>
    public static float Float(NodeProto node, string name, float fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : fallback;

    /// <summary>"OpType node 'name'" for messages.</summary>
    public static string Describe(NodeProto node) => $"{node.OpType} node '{(node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault())}'";

    /// <summary>An <see cref="InvalidDataException"/> whose message starts with the file's name.</summary>
    public InvalidDataException Error(string what) => new($"{FileName}: {what}.");
}
