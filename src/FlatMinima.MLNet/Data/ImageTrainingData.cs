using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML.Transforms.Image;
using FlatMinima.Torch.IncrementalFewShot;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>Label checks and input normalization shared by the image trainers.</summary>
internal static class ImageTrainingData
{
    internal static (DataViewSchema.Column Column, int ClassCount) CheckLabel(DataViewSchema schema, string name, int minClasses = 2)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Label column '{name}' was not found in the training data (set LabelColumnName).");
        if (column.Type is not KeyDataViewType key || key.RawType != typeof(uint))
            throw new ArgumentOutOfRangeException(nameof(schema), LabelTypeMessage(name, column.Type));
        if (key.Count < (ulong)minClasses || key.Count > int.MaxValue)
            throw new InvalidOperationException($"Label column '{name}' has {key.Count} class(es); a classifier needs at least two classes.");
        return (column, (int)key.Count);
    }

    internal static string LabelTypeMessage(string name, DataViewType type) =>
        $"Label column '{name}' has type {type}; it must be a key type. Add mlContext.Transforms.Conversion.MapValueToKey(\"{name}\") before the trainer " +
        "(and MapKeyToValue(\"PredictedLabel\") after it to get the class names back).";

    internal static (float[] Mean, float[] Std) ChannelStatistics(Tensor images)
    {
        using var scope = NewDisposeScope();
        var dims = new long[] { 0, 2, 3 };
        var mean = images.mean(dims).data<float>().ToArray();
        var std = images.std(dims, unbiased: false).clamp_min(1e-6).data<float>().ToArray();
        return (mean, std);
    }

    internal static Tensor Normalize(Tensor images, float[] mean, float[] std) => new ChannelStandardization(mean, std).Apply(images);

    /// <summary>
    /// The trainer's output schema: the input columns plus <c>Score</c> (vector of floats) and <c>PredictedLabel</c> (key).
    /// Checks the label (a key) and the image column. With <paramref name="classNamesAsText"/> the key values are the
    /// class names as text (incremental models, whose classes grow); otherwise they are the label's own key values.
    /// </summary>
    internal static SchemaShape OutputSchema(SchemaShape inputSchema, string labelName, string imageName, string scoreName, string predictedName,
        bool classNamesAsText)
    {
        if (!inputSchema.TryFindColumn(labelName, out var label))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Label column '{labelName}' was not found in the input schema.");
        if (!label.IsKey || label.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), LabelTypeMessage(labelName, label.ItemType));
        if (!inputSchema.TryFindColumn(imageName, out var image))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Image column '{imageName}' was not found in the input schema.");
        bool imageOk = image.ItemType is ImageDataViewType
            || (image.ItemType == NumberDataViewType.Byte && image.Kind == SchemaShape.Column.VectorKind.VariableVector)
            || (image.ItemType == NumberDataViewType.Single && image.Kind == SchemaShape.Column.VectorKind.Vector);
        if (image.ItemType == NumberDataViewType.Single && image.Kind == SchemaShape.Column.VectorKind.VariableVector)
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"Image column '{imageName}' is a Vector<Single> of unknown size; pixel vectors need a known size (ExtractPixels gives one: resize the images first with ResizeImages).");
        if (!imageOk)
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"Image column '{imageName}' has type {image.ItemType} ({image.Kind}); expected encoded image bytes, an MLImage or a known-size Vector<Single>.");

        var columns = inputSchema.ToDictionary(c => c.Name);
        var scoreAnnotations = new List<SchemaShape.Column>
        {
            new(AnnotationUtils.Kinds.ScoreColumnKind, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance, false),
            new(AnnotationUtils.Kinds.ScoreValueKind, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance, false),
        };
        var keyAnnotations = new List<SchemaShape.Column>();
        if (label.Annotations.TryFindColumn(AnnotationUtils.Kinds.KeyValues, out var keyValues))
        {
            if (classNamesAsText) keyValues = new SchemaShape.Column(AnnotationUtils.Kinds.KeyValues, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false);
            scoreAnnotations.Add(new(AnnotationUtils.Kinds.SlotNames, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false));
            scoreAnnotations.Add(new(AnnotationUtils.Kinds.TrainingLabelValues, keyValues.Kind, keyValues.ItemType, false));
            keyAnnotations.Add(keyValues);
        }
        columns[scoreName] = new SchemaShape.Column(scoreName, SchemaShape.Column.VectorKind.Vector,
            NumberDataViewType.Single, false, new SchemaShape(scoreAnnotations));
        columns[predictedName] = new SchemaShape.Column(predictedName, SchemaShape.Column.VectorKind.Scalar,
            NumberDataViewType.UInt32, true, new SchemaShape(keyAnnotations));
        return new SchemaShape(columns.Values);
    }
}
