using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace FlatMinima.Torch.Export;

/// <summary>
/// An <see cref="IOnnxGraphSink"/> that builds a standalone ONNX model (OnnxSharp's protobuf classes): opset
/// <see cref="OnnxExporter.OpsetVersion"/>, float tensor inputs and outputs with a free batch dimension. Names are made
/// unique by appending a number.
/// </summary>
public sealed class OnnxModelBuilder : IOnnxGraphSink
{
    private readonly GraphProto graph = new() { Name = "FlatMinima" };
    private readonly HashSet<string> names = new(StringComparer.Ordinal);

    /// <summary>Declares a float graph input <c>[batch, dims…]</c> (the batch dimension is free, named <c>batch</c>) and returns its name.</summary>
    public string AddInput(string name, params long[] dims)
    {
        string unique = Unique(name);
        graph.Input.Add(ValueInfo(unique, dims));
        return unique;
    }

    /// <summary>Declares the existing value <paramref name="name"/> a float graph output <c>[batch, dims…]</c>.</summary>
    public void AddOutput(string name, params long[] dims)
    {
        if (!names.Contains(name)) throw new ArgumentException($"There is no value '{name}' in the graph.", nameof(name));
        graph.Output.Add(ValueInfo(name, dims));
    }

    /// <inheritdoc />
    public string AddInitializer(string name, float[] values, long[] dims)
    {
        ArgumentNullException.ThrowIfNull(values);
        CheckCount(values.Length, dims);
        var tensor = new TensorProto { Name = Unique(name), DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(dims);
        tensor.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan()));
        graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <inheritdoc />
    public string AddInitializer(string name, long[] values, long[] dims)
    {
        ArgumentNullException.ThrowIfNull(values);
        CheckCount(values.Length, dims);
        var tensor = new TensorProto { Name = Unique(name), DataType = (int)TensorProto.Types.DataType.Int64 };
        tensor.Dims.AddRange(dims);
        tensor.Int64Data.AddRange(values);
        graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <inheritdoc />
    public string AddNode(string opType, IReadOnlyList<string> inputs, string output, IReadOnlyList<OnnxAttribute> attributes)
    {
        ArgumentException.ThrowIfNullOrEmpty(opType);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(attributes);
        var missing = inputs.FirstOrDefault(i => !names.Contains(i));
        if (missing is not null) throw new ArgumentException($"The {opType} node reads '{missing}', which is not in the graph.", nameof(inputs));
        string unique = Unique(output);
        var node = new NodeProto { OpType = opType, Name = unique, Domain = "" };
        node.Input.AddRange(inputs);
        node.Output.Add(unique);
        foreach (var attribute in attributes) node.Attribute.Add(ToProto(attribute));
        graph.Node.Add(node);
        return unique;
    }

    /// <summary>The model: IR version 7, opset <see cref="OnnxExporter.OpsetVersion"/> of the default domain.</summary>
    public ModelProto Build(string producerVersion = "")
    {
        var model = new ModelProto
        {
            IrVersion = 7,
            ProducerName = "FlatMinima",
            ProducerVersion = producerVersion,
            Graph = graph.Clone(),
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxExporter.OpsetVersion });
        return model;
    }

    private string Unique(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        string unique = name;
        for (int i = 1; names.Contains(unique); i++) unique = $"{name}_{i}";
        names.Add(unique);
        return unique;
    }

    private static void CheckCount(long count, long[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        long expected = dims.Aggregate(1L, (product, d) => product * d);
        if (count != expected)
            throw new ArgumentException($"An initializer of shape [{string.Join(", ", dims)}] needs {expected} values; got {count}.", nameof(dims));
    }

    private static ValueInfoProto ValueInfo(string name, long[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    private static AttributeProto ToProto(OnnxAttribute attribute)
    {
        var proto = new AttributeProto { Name = attribute.Name };
        if (attribute.Int is long i)
        {
            proto.Type = AttributeProto.Types.AttributeType.Int;
            proto.I = i;
        }
        else if (attribute.Ints is { } ints)
        {
            proto.Type = AttributeProto.Types.AttributeType.Ints;
            proto.Ints.AddRange(ints);
        }
        else
        {
            proto.Type = AttributeProto.Types.AttributeType.Float;
            proto.F = attribute.Float!.Value;
        }
        return proto;
    }
}
