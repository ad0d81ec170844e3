using System;
using FlatMinima.Torch.Export;
using Microsoft.ML.Model.OnnxConverter;

namespace FlatMinima.MLNet.Export;

/// <summary>
/// The checks and the input step shared by the image transformers' ONNX export (classifiers and featurizer): the image
/// column must hold pixel vectors of the network's exact geometry, and the graph starts by reshaping it to <c>[N, C, H, W]</c>.
/// </summary>
internal static class ImageOnnxExport
{
    /// <summary>The prefix of the ONNX values the image transformers write (so they do not collide with column names).</summary>
    public const string Prefix = "FlatMinima.";

    /// <summary>Throws <see cref="NotSupportedException"/> saying why the column or the network cannot be exported.</summary>
    public static void Check(string column, ImageInput input, (int Channels, int Height, int Width) geometry, string? unsupportedReason)
    {
        string what = input.Kind switch
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
        var (channels, height, width) = geometry;
        if (input.VectorHeight != height || input.VectorWidth != width)
            throw new NotSupportedException(
                $"Cannot export to ONNX: the pixel-vector column '{column}' is {input.VectorChannels}×{input.VectorHeight}×{input.VectorWidth} but the network " +
                $"reads {channels}×{height}×{width}; the model resizes the vectors before scoring, and that resize is not part of the ONNX graph. " +
                $"Resize the images to {height}×{width} before ExtractPixels (ResizeImages) and train on that column.");
        if (input.VectorChannels != channels)
            throw new NotSupportedException(
                $"Cannot export to ONNX: the pixel-vector column '{column}' has {input.VectorChannels} channel(s) but the network reads {channels}; " +
                "the model converts the channels before scoring, and that conversion is not part of the ONNX graph. Extract the pixels with " +
                $"{channels} channel(s) (ExtractPixels' colorsToExtract) and train on that column.");
        if (unsupportedReason is not null) throw new NotSupportedException($"Cannot export to ONNX: {unsupportedReason}");
    }

    /// <summary>Writes the Reshape of the pixel column to <c>[N, C, H, W]</c>; returns its name.</summary>
    public static string EmitImage(OnnxContext ctx, IOnnxGraphSink sink, string column, (int Channels, int Height, int Width) geometry)
    {
        CheckOpset(ctx);
        if (!ctx.ContainsColumn(column))
            throw new NotSupportedException(
                $"Cannot export to ONNX: the image column '{column}' is not available in the ONNX graph, because a step before this model " +
                "that produces it cannot be exported (image loading, resizing and pixel extraction are not ONNX operations). Export the part of the " +
                $"pipeline that starts at '{column}': fit the image preparation separately and pass its output as the data of ConvertToOnnx (see docs/onnx.md).");
        var (channels, height, width) = geometry;
        string shape = sink.AddInitializer(Prefix + "image.shape", new long[] { -1, channels, height, width }, new long[] { 4 });
        return sink.AddNode("Reshape", new[] { ctx.GetVariableName(column), shape }, Prefix + "image", Array.Empty<OnnxAttribute>());
    }

    /// <summary>
    /// The graphs are written for opset <see cref="OnnxExporter.OpsetVersion"/> (Slice with its bounds as inputs needs 10 or
    /// more; opset 12 is what they are tested with). A lower <c>opSetVersion</c> given to ConvertToOnnx is refused here,
    /// before any node is written, rather than producing a graph that declares an opset its nodes do not follow.
    /// </summary>
    private static void CheckOpset(OnnxContext ctx)
    {
        try
        {
            ctx.CheckOpSetVersion(OnnxExporter.OpsetVersion, "the FlatMinima image model");
        }
        catch (ArgumentException e)
        {
            throw new NotSupportedException(
                $"Cannot export to ONNX: the FlatMinima image models are written for ONNX opset {OnnxExporter.OpsetVersion}, and ConvertToOnnx was asked for a " +
                $"lower one ({e.Message}). Call ConvertToOnnx without an opSetVersion, or with {OnnxExporter.OpsetVersion}.", e);
        }
    }
}
