using System;
using System.Collections.Generic;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>What the scoring views need from a transformer that scores images.</summary>
internal interface IImageScorer
{
    ImageInput Input { get; }

    string FeatureColumnName { get; }

    int ClassCount { get; }

    int ScoringBatchSize { get; }

    DataViewSchema.Column CheckImageColumn(DataViewSchema schema);

    /// <summary>
    /// Scores a batch: probabilities <c>[B·K]</c> and 0-based argmax; a row without a usable image (null), with a
    /// non-finite pixel or with non-finite probabilities gets NaN probabilities and −1.
    /// </summary>
    void Score(IReadOnlyList<DecodedImage?> images, float[] probabilities, int[] predicted);
}

/// <summary>
/// The shared part of FlatMinima's image transformers: reads an image column and adds a <c>Score</c> column (class
/// probabilities, one slot per class, the class names as slot names) and a <c>PredictedLabel</c> key column whose key
/// values are the class names. <c>Transform</c> scores lazily in batches of <see cref="ScoringBatchSize"/> rows; the
/// row-to-row mapper (used by <c>PredictionEngine</c>) scores one row at a time. A row whose image is not usable (empty,
/// undecodable, truncated or damaged bytes, a null image) or has a NaN or infinite pixel gets NaN scores and a missing
/// <c>PredictedLabel</c> (key 0), as ML.NET's own scorers do for NaN features; the other rows of its batch are scored
/// normally. A pixel vector of the wrong length throws, naming the column and the row.
/// </summary>
/// <typeparam name="TModel">The model type (<see cref="Model"/>).</typeparam>
public abstract class ImageScoringTransformer<TModel> : ISingleFeaturePredictionTransformer<TModel>, IImageScorer, IDisposable
    where TModel : class
{
    private protected ImageScoringTransformer(IHostEnvironment env, string name, ImageInput input, string imageColumn, string labelColumn,
        string scoreColumn, string predictedLabelColumn, LabelKeyValues keyValues, int scoringBatchSize, DeviceKind device, int cudaIndex)
    {
        Host = env.Register(name);
        Input = input;
        FeatureColumnName = imageColumn;
        LabelColumnName = labelColumn;
        ScoreColumnName = scoreColumn;
        PredictedLabelColumnName = predictedLabelColumn;
        KeyValues = keyValues;
        ScoringBatchSize = scoringBatchSize;
        DeviceKind = device;
        CudaDeviceIndex = cudaIndex;
    }

    /// <summary>The trained model.</summary>
    public abstract TModel Model { get; }

    /// <summary>The image column read by the model.</summary>
    public string FeatureColumnName { get; }

    /// <summary>The image column's type at training time.</summary>
    public DataViewType FeatureColumnType => Input.ColumnType;

    /// <summary>The label column the model was trained on (passed through, not needed for scoring).</summary>
    public string LabelColumnName { get; }

    /// <summary>The probabilities column.</summary>
    public string ScoreColumnName { get; }

    /// <summary>The predicted key column.</summary>
    public string PredictedLabelColumnName { get; }

    /// <summary>Rows per forward pass in <see cref="Transform"/>.</summary>
    public int ScoringBatchSize { get; }

    /// <summary>The device preference saved with the model (Auto picks CUDA when available when loading).</summary>
    public DeviceKind DeviceKind { get; }

    /// <summary>CUDA device index.</summary>
    public int CudaDeviceIndex { get; }

    /// <summary>The class names (the label's key values as text), in score-slot order.</summary>
    public IReadOnlyList<string> ClassNames => KeyValues.Names;

    /// <summary>Always true: the transformer maps rows one to one.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>Number of classes (score slots).</summary>
    public abstract int ClassCount { get; }

    internal ImageInput Input { get; }

    ImageInput IImageScorer.Input => Input;

    private protected IHost Host { get; }

    private protected LabelKeyValues KeyValues { get; }

    /// <summary>The input schema plus the score and predicted-label columns; checks the image column.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckImageColumn(inputSchema);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, ClassCount), KeyValues.ScoreAnnotations(ClassCount));
        builder.AddColumn(PredictedLabelColumnName, new KeyDataViewType(typeof(uint), ClassCount), KeyValues.PredictedLabelAnnotations());
        return builder.ToSchema();
    }

    /// <summary>Scores <paramref name="input"/> lazily, in batches.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new ScoredDataView(this, input, GetOutputSchema(input.Schema));
    }

    /// <summary>A one-row-at-a-time mapper (what <c>PredictionEngine</c> uses).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return new ScoringRowMapper(this, inputSchema, GetOutputSchema(inputSchema));
    }

    /// <summary>Releases the model's native memory.</summary>
    public abstract void Dispose();

    /// <inheritdoc cref="IImageScorer.CheckImageColumn"/>
    internal DataViewSchema.Column CheckImageColumn(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{FeatureColumnName}' was not found in the input data.");
        Input.CheckCompatible(column);
        return column;
    }

    DataViewSchema.Column IImageScorer.CheckImageColumn(DataViewSchema schema) => CheckImageColumn(schema);

    /// <inheritdoc cref="IImageScorer.Score"/>
    void IImageScorer.Score(IReadOnlyList<DecodedImage?> images, float[] probabilities, int[] predicted)
    {
        using var scope = NewDisposeScope();
        var usable = new List<DecodedImage>(images.Count);
        var rows = new List<long>(images.Count);
        for (int i = 0; i < images.Count; i++)
        {
            if (images[i] is not DecodedImage image) continue;
            usable.Add(image);
            rows.Add(i);
        }
        var p = full(images.Count, ClassCount, float.NaN);
        var label = full(images.Count, -1, ScalarType.Int32);
        if (usable.Count > 0)
        {
            var (channels, height, width) = Geometry;
            var raw = ImageBatch.AdaptChannels(ImageBatch.Stack(usable, height, width), channels);
            var scored = PredictProbabilities(raw);
            var finite = isfinite(raw).flatten(1).all(1).logical_and_(isfinite(scored).all(1));
            var index = tensor(rows.ToArray());
            p.index_copy_(0, index, scored.masked_fill(finite.logical_not().unsqueeze(1), float.NaN));
            label.index_copy_(0, index, where(finite, scored.argmax(1), -1).to_type(ScalarType.Int32));
        }
        p.data<float>().CopyTo(probabilities.AsSpan(0, images.Count * ClassCount));
        label.data<int>().CopyTo(predicted.AsSpan(0, images.Count));
    }

    /// <summary>The model's input geometry.</summary>
    private protected abstract (int Channels, int Height, int Width) Geometry { get; }

    /// <summary>Class probabilities <c>[B, K]</c> (CPU) of a raw (not normalized) batch.</summary>
    private protected abstract Tensor PredictProbabilities(Tensor rawBatch);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        Host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        SaveModel(ctx);
    }

    /// <summary>Writes the model (after <c>CheckAtModel</c>).</summary>
    private protected abstract void SaveModel(ModelSaveContext ctx);

    /// <summary>Writes the column names and the image input's kind and vector shape.</summary>
    private protected void SaveColumns(ModelSaveContext ctx)
    {
        ctx.SaveNonEmptyString(FeatureColumnName);
        ctx.SaveNonEmptyString(LabelColumnName);
        ctx.SaveNonEmptyString(ScoreColumnName);
        ctx.SaveNonEmptyString(PredictedLabelColumnName);
        ctx.Writer.Write((int)Input.Kind);
        ctx.Writer.Write(Input.VectorChannels);
        ctx.Writer.Write(Input.VectorHeight);
        ctx.Writer.Write(Input.VectorWidth);
    }

    /// <summary>Reads what <see cref="SaveColumns"/> wrote.</summary>
    private protected static SavedColumns LoadColumns(ModelLoadContext ctx)
    {
        string image = ctx.LoadNonEmptyString(), label = ctx.LoadNonEmptyString(), score = ctx.LoadNonEmptyString(), predicted = ctx.LoadNonEmptyString();
        var kind = (ImageInputKind)ctx.Reader.ReadInt32();
        var input = new ImageInput(kind, ctx.Reader.ReadInt32(), ctx.Reader.ReadInt32(), ctx.Reader.ReadInt32());
        return new SavedColumns(image, label, score, predicted, input);
    }

    /// <summary>Writes the device preference, the scoring batch size and the class key values.</summary>
    private protected void SaveScoringSettings(ModelSaveContext ctx)
    {
        ctx.Writer.Write((int)DeviceKind);
        ctx.Writer.Write(CudaDeviceIndex);
        ctx.Writer.Write(ScoringBatchSize);
        KeyValues.Save(Host, ctx.Writer);
    }

    /// <summary>Reads what <see cref="SaveScoringSettings"/> wrote, for a model of <paramref name="classes"/> classes.</summary>
    private protected static SavedScoring LoadScoringSettings(IHostEnvironment env, ModelLoadContext ctx, int classes)
    {
        var device = (DeviceKind)ctx.Reader.ReadInt32();
        int cudaIndex = ctx.Reader.ReadInt32();
        int batchSize = ctx.Reader.ReadInt32();
        return new SavedScoring(device, cudaIndex, batchSize, LabelKeyValues.Load(env, ctx.Reader, classes));
    }
}

/// <summary>The column settings of a saved image transformer.</summary>
internal sealed record SavedColumns(string Image, string Label, string Score, string Predicted, ImageInput Input);

/// <summary>The scoring settings of a saved image transformer.</summary>
internal sealed record SavedScoring(DeviceKind Device, int CudaIndex, int BatchSize, LabelKeyValues KeyValues);
