using System;
using System.Collections.Generic;

namespace FlatMinima.Torch.Export;

/// <summary>
/// Where <see cref="OnnxNetworkEmitter"/> writes a network's ONNX graph: initializers (weights and constants) and nodes.
/// <see cref="OnnxModelBuilder"/> builds a standalone ONNX model; the ML.NET layer implements it over ML.NET's ONNX
/// export context, so both routes emit the same graph from one declaration per network.
/// </summary>
public interface IOnnxGraphSink
{
    /// <summary>Adds a float tensor initializer named after <paramref name="name"/> and returns the unique name used.</summary>
    string AddInitializer(string name, float[] values, long[] dims);

    /// <summary>Adds an int64 tensor initializer named after <paramref name="name"/> and returns the unique name used.</summary>
    string AddInitializer(string name, long[] values, long[] dims);

    /// <summary>
    /// Adds a node of the default ONNX domain with one output named after <paramref name="output"/> and returns the unique
    /// output name used.
    /// </summary>
    string AddNode(string opType, IReadOnlyList<string> inputs, string output, IReadOnlyList<OnnxAttribute> attributes);
}

/// <summary>An ONNX node attribute: an integer, a list of integers or a float (the kinds the emitted graphs use).</summary>
public sealed record OnnxAttribute
{
    private OnnxAttribute(string name, long? integer, long[]? integers, float? number)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException("An attribute needs a name.", nameof(name));
        Name = name;
        Int = integer;
        Ints = integers;
        Float = number;
    }

    /// <summary>The attribute's name.</summary>
    public string Name { get; }

    /// <summary>The value of an integer attribute; null otherwise.</summary>
    public long? Int { get; }

    /// <summary>The values of an integer-list attribute; null otherwise.</summary>
    public IReadOnlyList<long>? Ints { get; }

    /// <summary>The value of a float attribute; null otherwise.</summary>
    public float? Float { get; }

    /// <summary>An integer attribute.</summary>
    public static OnnxAttribute Of(string name, long value) => new(name, value, null, null);

    /// <summary>An integer-list attribute (pass an array for a one-element list: a single value selects the integer overload).</summary>
    public static OnnxAttribute Of(string name, params long[] values) => new(name, null, (long[])values.Clone(), null);

    /// <summary>A float attribute.</summary>
    public static OnnxAttribute Of(string name, float value) => new(name, null, null, value);
}
