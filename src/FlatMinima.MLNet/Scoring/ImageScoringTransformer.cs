using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
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

    /// <summary>Throws <see cref="NotSupportedException"/> saying what cannot be exported to ONNX and why; returns when the model can be.</summary>
    void CheckOnnxExport();

    /// <summary>Writes the scoring graph (image column → <c>Score</c>, <c>PredictedLabel</c>) into ML.NET's ONNX export context.</summary>
    void SaveAsOnnx(Microsoft.ML.Model.OnnxConverter.OnnxContext ctx);
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
public abstract partial class ImageScoringTransformer<TModel> : ISingleFeaturePredictionTransformer<TModel>, IImageScorer, IDisposable
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

    /// <summary>The device the model was trained with (<c>Options.Device</c>), saved with it as metadata. Loading does not
    /// require it: a loaded model lives on the device <see cref="FlatMinimaModelLoading.EffectiveDevice"/> picks.</summary>
    public DeviceKind DeviceKind { get; internal set; }

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

    /// <summary>Reads what <see cref="SaveColumns"/> wrote; names, the input kind and the vector shape are checked.</summary>
    private protected static SavedColumns LoadColumns(ModelReading reading)
    {
        string image = reading.ReadName("image column name"), label = reading.ReadName("label column name"),
            score = reading.ReadName("score column name"), predicted = reading.ReadName("predicted-label column name");
        int rawKind = reading.Reader.ReadInt32();
        var kind = (ImageInputKind)rawKind;
        reading.Check(Enum.IsDefined(kind), $"the image input kind {rawKind} is not one of {string.Join(", ", Enum.GetNames<ImageInputKind>())}.");
        int c = reading.Reader.ReadInt32(), h = reading.Reader.ReadInt32(), w = reading.Reader.ReadInt32();
        if (kind == ImageInputKind.PixelVector)
            reading.Check(c is >= 1 and <= ModelLimits.MaxVectorChannels && h is >= 1 and <= ModelLimits.MaxImageSide
                && w is >= 1 and <= ModelLimits.MaxImageSide && (long)c * h * w <= ModelLimits.MaxInputValues,
                $"the pixel-vector shape {c}×{h}×{w} is outside the accepted limits (channels 1 to {ModelLimits.MaxVectorChannels}, " +
                $"sides 1 to {ModelLimits.MaxImageSide}, at most {ModelLimits.MaxInputValues} values).");
        else
            reading.Check(c == 0 && h == 0 && w == 0, $"an input of kind {kind} stores a vector shape {c}×{h}×{w}; expected 0×0×0.");
        return new SavedColumns(image, label, score, predicted, new ImageInput(kind, c, h, w));
    }

    /// <summary>The largest saved class key values blob read (bytes).</summary>
    private const int MaxKeyValuesBytes = 64 << 20;

    /// <summary>
    /// Writes the device the model was trained with, the scoring batch size and the class key values — since format
    /// 0x00010002 as a length-prefixed blob followed by its SHA-256, so that damaged key values are caught before ML.NET's
    /// <c>BinarySaver</c> decodes them.
    /// </summary>
    private protected void SaveScoringSettings(ModelSaveContext ctx)
    {
        ctx.Writer.Write((int)DeviceKind);
        ctx.Writer.Write(CudaDeviceIndex);
        ctx.Writer.Write(ScoringBatchSize);
        using var blob = new System.IO.MemoryStream();
        using (var writer = new System.IO.BinaryWriter(blob, System.Text.Encoding.UTF8, leaveOpen: true)) KeyValues.Save(Host, writer);
        var bytes = blob.ToArray();
        ctx.Writer.Write(bytes.Length);
        ctx.Writer.Write(System.Security.Cryptography.SHA256.HashData(bytes));
        ctx.Writer.Write(bytes);
    }

    /// <summary>Reads what <see cref="SaveScoringSettings"/> wrote, for a model of <paramref name="classes"/> classes
    /// (already bounded); the device kind, CUDA index and batch size are checked, and with
    /// <paramref name="checksummed"/> (format 0x00010002 and later) the key values' length and SHA-256.</summary>
    private protected static SavedScoring LoadScoringSettings(IHostEnvironment env, ModelReading reading, int classes, bool checksummed)
    {
        var reader = reading.Reader;
        int rawDevice = reader.ReadInt32();
        var device = (DeviceKind)rawDevice;
        reading.Check(Enum.IsDefined(device), $"the saved device kind {rawDevice} is not one of {string.Join(", ", Enum.GetNames<DeviceKind>())}.");
        int cudaIndex = reader.ReadInt32();
        reading.Check(cudaIndex is >= 0 and < 1024, $"the saved CUDA device index {cudaIndex} is outside 0 to 1023.");
        int batchSize = reader.ReadInt32();
        reading.Check(batchSize is >= 1 and <= ModelLimits.MaxScoringBatchSize,
            $"the scoring batch size {batchSize} is outside 1 to {ModelLimits.MaxScoringBatchSize}.");
        if (!checksummed)
            return new SavedScoring(device, cudaIndex, batchSize, LabelKeyValues.Load(env, reader, classes));
        int length = reader.ReadInt32();
        var stream = reader.BaseStream;
        reading.Check(length >= 1 && length <= MaxKeyValuesBytes && (!stream.CanSeek || length <= stream.Length - stream.Position),
            $"the class key values are stored with length {length}, outside the entry.");
        var sha256 = reader.ReadBytes(32);
        var bytes = reader.ReadBytes(length);
        reading.Check(bytes.Length == length && sha256.Length == 32, "the entry ends inside the class key values.");
        reading.Check(System.Security.Cryptography.SHA256.HashData(bytes).AsSpan().SequenceEqual(sha256),
            "the SHA-256 of the class key values does not match the stored one; the entry is damaged.");
        using var blob = new System.IO.BinaryReader(new System.IO.MemoryStream(bytes, writable: false));
        var keyValues = LabelKeyValues.Load(env, blob, classes);
        reading.Check(blob.BaseStream.Position == length, "the class key values do not fill their stored length.");
        return new SavedScoring(device, cudaIndex, batchSize, keyValues);
    }

    /// <summary>
    /// Writes the checksums of format 0x00010002 and later: the SHA-256 of the header values (<paramref name="headerDigest"/>,
    /// see <see cref="HeaderDigest"/>), then the SHA-256 of each binary entry, 32 bytes each.
    /// </summary>
    private protected static void SaveChecksums(ModelSaveContext ctx, byte[] headerDigest, params byte[][] entries)
    {
        ctx.Writer.Write(headerDigest);
        foreach (var bytes in entries) ctx.Writer.Write(System.Security.Cryptography.SHA256.HashData(bytes));
    }

    /// <summary>
    /// Reads the checksums written by <see cref="SaveChecksums"/>, checks the header's against <paramref name="headerDigest"/>
    /// (computed from the values just read) and returns the <paramref name="entries"/> entry checksums.
    /// </summary>
    private protected static byte[][] LoadChecksums(ModelReading reading, byte[] headerDigest, int entries)
    {
        var result = new byte[entries + 1][];
        for (int i = 0; i <= entries; i++)
        {
            result[i] = reading.Reader.ReadBytes(32);
            reading.Check(result[i].Length == 32, "the entry ends inside the stored checksums.");
        }
        reading.Check(result[0].AsSpan().SequenceEqual(headerDigest),
            "the SHA-256 of the model's settings (column names, geometry, normalization, scoring settings, class names) does not match the stored one; the entry is damaged.");
        return result[1..];
    }

    /// <summary>The saved settings of this transformer, as <see cref="LoadColumns"/> and <see cref="LoadScoringSettings"/> return them.</summary>
    private protected (SavedColumns Columns, SavedScoring Scoring) SavedSettings() =>
        (new SavedColumns(FeatureColumnName, LabelColumnName, ScoreColumnName, PredictedLabelColumnName, Input),
         new SavedScoring(DeviceKind, CudaDeviceIndex, ScoringBatchSize, KeyValues));

    /// <summary>
    /// SHA-256 over a canonical encoding of the settings stored in <c>Model.key</c> (strings by value, so the string
    /// table is covered; class names as text) plus what <paramref name="extra"/> writes and the augmentation description; computed the same way at save
    /// and at load.
    /// </summary>
    private protected static byte[] HeaderDigest(SavedColumns columns, ClassifierHeader header, SavedScoring scoring, Action<System.IO.BinaryWriter>? extra = null)
    {
        using var stream = new System.IO.MemoryStream();
        using (var w = new System.IO.BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            foreach (var name in new[] { columns.Image, columns.Label, columns.Score, columns.Predicted, header.Architecture }) w.Write(name);
            foreach (int v in new[] { (int)columns.Input.Kind, columns.Input.VectorChannels, columns.Input.VectorHeight, columns.Input.VectorWidth,
                header.Channels, header.Height, header.Width, header.Classes, (int)scoring.Device, scoring.CudaIndex, scoring.BatchSize })
                w.Write(v);
            foreach (float v in header.Mean.Concat(header.Std)) w.Write(v);
            w.Write(scoring.KeyValues.HasValues);
            w.Write(scoring.KeyValues.Names.Count);
            foreach (var name in scoring.KeyValues.Names) w.Write(name);
            extra?.Invoke(w);
            // Since format 0x00010003 (null when not recorded: older files, whose digest stays as it was, or a re-saved older model).
            if (header.Augmentation is not null) w.Write(header.Augmentation);
        }
        return System.Security.Cryptography.SHA256.HashData(stream.ToArray());
    }
}

/// <summary>The column settings of a saved image transformer.</summary>
internal sealed record SavedColumns(string Image, string Label, string Score, string Predicted, ImageInput Input);

/// <summary>The scoring settings of a saved image transformer.</summary>
internal sealed record SavedScoring(DeviceKind Device, int CudaIndex, int BatchSize, LabelKeyValues KeyValues);
