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
    /// <summary>The prefix of the ONNX values this transformer writes (so they do not collide with column names).</summary>
    private const string OnnxPrefix = "FlatMinima.";

    /// <inheritdoc cref="IImageScorer.CheckOnnxExport"/>
    void IImageScorer.CheckOnnxExport()
    {
        string column = FeatureColumnName;
        string what = Input.Kind switch
        {
            ImageInputKind.EncodedBytes => "encoded image bytes, which the model decodes (PNG, JPEG, …) and resizes before scoring",
            ImageInputKind.Image => "MLImage values, which the model converts to pixels and resizes before scoring",
            _ => "",
        };
        if (what.Length > 0)
            throw new NotSupportedException(
                $"Cannot export to ONNX: the image column '{column}' holds {what}. Image decoding and resizing are not part of the ONNX graph, " +
                "so an exported model must read pixels: train on a pixel-vector column (LoadImages → ResizeImages → ExtractPixels) and export " +
                "the pipeline that starts at that column (see docs/onnx.md).");
        var (channels, height, width) = Geometry;
        if (Input.VectorHeight != height || Input.VectorWidth != width)
            throw new NotSupportedException(
                $"Cannot export to ONNX: the pixel-vector column '{column}' is {Input.VectorChannels}×{Input.VectorHeight}×{Input.VectorWidth} but the network " +
                $"reads {channels}×{height}×{width}; the model resizes the vectors before scoring, and that resize is not part of the ONNX graph. " +
                $"Resize the images to {height}×{width} before ExtractPixels (ResizeImages) and train on that column.");
        if (OnnxUnsupportedReason() is string reason) throw new NotSupportedException($"Cannot export to ONNX: {reason}");
    }

    /// <inheritdoc cref="IImageScorer.SaveAsOnnx"/>
    void IImageScorer.SaveAsOnnx(OnnxContext ctx)
    {
        ((IImageScorer)this).CheckOnnxExport();
        if (!ctx.ContainsColumn(FeatureColumnName))
            throw new NotSupportedException(
                $"Cannot export to ONNX: the image column '{FeatureColumnName}' is not available in the ONNX graph, because a step before this model " +
                "that produces it cannot be exported (image loading, resizing and pixel extraction are not ONNX operations). Export the part of the " +
                $"pipeline that starts at '{FeatureColumnName}': fit the image preparation separately and pass its output as the data of ConvertToOnnx (see docs/onnx.md).");
        var sink = new OnnxContextSink(ctx);
        var (channels, height, width) = Geometry;
        string shape = sink.AddInitializer(OnnxPrefix + "image.shape", new long[] { -1, channels, height, width }, new long[] { 4 });
        string image = sink.AddNode("Reshape", new[] { ctx.GetVariableName(FeatureColumnName), shape }, OnnxPrefix + "image", Array.Empty<OnnxAttribute>());
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
