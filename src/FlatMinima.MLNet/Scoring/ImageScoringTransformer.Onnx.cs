using System;
using System.Collections.Generic;
using FlatMinima.MLNet.Export;
using FlatMinima.Torch.Export;
using Microsoft.ML.Data;
using Microsoft.ML.Model.OnnxConverter;

namespace FlatMinima.MLNet;

// ONNX export through ML.NET's mlContext.Model.ConvertToOnnx: the view Transform returns (ScoredDataView) is an
// ITransformCanSaveOnnx that calls CheckOnnxExport and SaveAsOnnx here.
public abstract partial class ImageScoringTransformer<TModel>
{
    private const string OnnxPrefix = ImageOnnxExport.Prefix;

    /// <inheritdoc cref="IImageScorer.CheckOnnxExport"/>
    void IImageScorer.CheckOnnxExport() => ImageOnnxExport.Check(FeatureColumnName, Input, Geometry, OnnxUnsupportedReason());

    /// <inheritdoc cref="IImageScorer.SaveAsOnnx"/>
    void IImageScorer.SaveAsOnnx(OnnxContext ctx)
    {
        ((IImageScorer)this).CheckOnnxExport();
        var sink = new OnnxContextSink(ctx);
        string image = ImageOnnxExport.EmitImage(ctx, sink, FeatureColumnName, Geometry);
        string logits = EmitOnnxLogits(sink, image, OnnxPrefix);

        string score = ctx.AddIntermediateVariable(new VectorDataViewType(NumberDataViewType.Single, ClassCount), ScoreColumnName);
        ctx.CreateNode("Softmax", logits, score, ctx.GetNodeName("Softmax"), "").AddAttribute("axis", 1L);
        string argMax = sink.AddNode("ArgMax", new[] { score }, OnnxPrefix + "argmax",
            new[] { OnnxAttribute.Of("axis", 1L), OnnxAttribute.Of("keepdims", 1L) });
        string one = sink.AddInitializer(OnnxPrefix + "one", new long[] { 1 }, new long[] { 1 });
        string key = sink.AddNode("Add", new[] { argMax, one }, OnnxPrefix + "key", Array.Empty<OnnxAttribute>());
        string predicted = ctx.AddIntermediateVariable(new KeyDataViewType(typeof(uint), ClassCount), PredictedLabelColumnName);
        ctx.CreateNode("Cast", key, predicted, ctx.GetNodeName("Cast"), "").AddAttribute("to", typeof(uint));
    }

    /// <summary>Why the model cannot be written as ONNX (its network is not a built-in one), or null when it can.</summary>
    private protected abstract string? OnnxUnsupportedReason();

    /// <summary>Writes the graph from the raw image batch <paramref name="image"/> <c>[N, C, H, W]</c> to the logits <c>[N, K]</c>; returns their name.</summary>
    private protected abstract string EmitOnnxLogits(IOnnxGraphSink sink, string image, string prefix);
}
