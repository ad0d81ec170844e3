using System;
using System.Collections.Generic;
using FlatMinima.Torch.Export;
using Microsoft.ML.Model.OnnxConverter;

namespace FlatMinima.MLNet.Export;

/// <summary>
/// The Torch layer's <see cref="IOnnxGraphSink"/> over ML.NET's ONNX export context, so a network's graph is written by
/// the same declaration (<see cref="OnnxNetworkEmitter"/>) whether it is exported alone or inside an ML.NET pipeline.
/// Intermediate values get unique names from the context and no declared type (ONNX infers them).
/// </summary>
internal sealed class OnnxContextSink : IOnnxGraphSink
{
    private readonly OnnxContext _ctx;

    public OnnxContextSink(OnnxContext ctx) => _ctx = ctx ?? throw new ArgumentNullException(nameof(ctx));

    public string AddInitializer(string name, float[] values, long[] dims) => _ctx.AddInitializer(values, dims, name);

    public string AddInitializer(string name, long[] values, long[] dims) => _ctx.AddInitializer(values, dims, name);

    public string AddNode(string opType, IReadOnlyList<string> inputs, string output, IReadOnlyList<OnnxAttribute> attributes)
    {
        string variable = _ctx.AddIntermediateVariable(null, output, skip: true);
        var node = _ctx.CreateNode(opType, inputs, new[] { variable }, _ctx.GetNodeName(output), "");
        foreach (var attribute in attributes)
        {
            if (attribute.Int is long i) node.AddAttribute(attribute.Name, i);
            else if (attribute.Ints is { } ints) node.AddAttribute(attribute.Name, ints);
            else node.AddAttribute(attribute.Name, (double)attribute.Float!.Value);
        }
        return variable;
    }
}
