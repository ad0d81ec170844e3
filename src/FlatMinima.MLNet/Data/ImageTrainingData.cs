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
        if (key.Count < (ulong)minClasses)
            throw new InvalidOperationException($"Label column '{name}' has {key.Count} class(es); a classifier needs at least two classes.");
        if (key.Count > (ulong)ModelLimits.MaxClassCount)
            throw new InvalidOperationException($"Label column '{name}' has {key.Count:N0} classes, more than a model may have ({ModelLimits.MaxClassCount:N0}; ModelLimits).");
        return (column, (int)key.Count);
    }

    internal static string LabelTypeMessage(string name, DataViewType type) =>
        $"Label column '{name}' has type {type}; it must be a key type. Add mlContext.Transforms.Conversion.MapValueToKey(\"{name}\") before the trainer " +
        "(and MapKeyToValue(\"PredictedLabel\") after it to get the class names back).";

    /// <summary>
    /// Per-channel mean and population standard deviation (at least 1e-6) of images <c>[N, C, H, W]</c> held in memory:
    /// <see cref="ChannelStatistics(IEnumerable{Tensor})"/> with the whole tensor as its one batch, i.e. exactly torch's
    /// whole-tensor result (as in earlier versions, so the same seed still gives the same model).
    /// </summary>
    internal static (float[] Mean, float[] Std) ChannelStatistics(Tensor images) => ChannelStatistics(new[] { images });

    /// <summary>
    /// Per-channel mean and population standard deviation (at least 1e-6) of a sequence of batches <c>[B, C, H, W]</c>,
    /// in one streaming pass (each batch is looked at once and may be disposed afterwards): see
    /// <see cref="RunningChannelStatistics"/>. Equals the whole-tensor result to about 1e-7 (exactly for one batch).
    /// </summary>
    internal static (float[] Mean, float[] Std) ChannelStatistics(IEnumerable<Tensor> batches)
    {
        var running = new RunningChannelStatistics();
        foreach (var batch in batches) running.Add(batch);
        return running.Result();
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

/// <summary>
/// Per-channel mean and population variance of images <c>[B, C, H, W]</c> accumulated over batches in float64 (Chan,
/// Golub and LeVeque's pairwise update of count, mean and sum of squared deviations): each batch's per-channel mean and
/// population standard deviation are taken with torch (float32, as on a whole tensor), then merged into the running
/// float64 moments, so memory is one batch whatever the number of rows. After a single batch the result is that batch's
/// float32 values themselves, i.e. bit-identical to the whole-tensor computation.
/// </summary>
internal sealed class RunningChannelStatistics
{
    private static readonly long[] ReducedDims = { 0, 2, 3 };
    private double[]? _mean;
    private double[]? _squaredDeviations;
    private float[]? _firstMean;
    private float[]? _firstStd;
    private long _count;
    private int _batches;

    /// <summary>The number of values per channel seen so far.</summary>
    public long Count => _count;

    /// <summary>Adds a batch <c>[B, C, H, W]</c> (any device; not changed, not kept).</summary>
    public void Add(Tensor batch)
    {
        if (batch.dim() != 4)
            throw new ArgumentException($"Expected images [B, C, H, W]; got a tensor of shape [{string.Join(", ", batch.shape)}].", nameof(batch));
        long n = batch.shape[0] * batch.shape[2] * batch.shape[3];
        if (n == 0) return;
        float[] mean, std;
        using (NewDisposeScope())
        {
            mean = batch.mean(ReducedDims).cpu().data<float>().ToArray();
            std = batch.std(ReducedDims, unbiased: false).cpu().data<float>().ToArray();
        }
        if (_mean is null)
        {
            (_firstMean, _firstStd) = (mean, std);
            _mean = new double[mean.Length];
            _squaredDeviations = new double[mean.Length];
        }
        else if (mean.Length != _mean.Length)
            throw new ArgumentException($"A batch of {mean.Length} channels after batches of {_mean.Length}.", nameof(batch));
        long total = _count + n;
        for (int c = 0; c < mean.Length; c++)
        {
            double delta = mean[c] - _mean[c];
            _mean[c] += delta * n / total;
            _squaredDeviations![c] += (double)std[c] * std[c] * n + delta * delta * _count * n / total;
        }
        _count = total;
        _batches++;
    }

    /// <summary>The per-channel mean and population standard deviation, clamped to at least 1e-6.</summary>
    public (float[] Mean, float[] Std) Result()
    {
        if (_mean is null) throw new InvalidOperationException("No images: the channel statistics need at least one non-empty batch.");
        if (_batches == 1) return (_firstMean!, _firstStd!.Select(s => Math.Max(s, 1e-6f)).ToArray());
        return (_mean.Select(m => (float)m).ToArray(),
                _squaredDeviations!.Select(m2 => Math.Max((float)Math.Sqrt(m2 / _count), 1e-6f)).ToArray());
    }
}
