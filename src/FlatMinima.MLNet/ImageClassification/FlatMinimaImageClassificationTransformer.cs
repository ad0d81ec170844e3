using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Data.IO;
using Microsoft.ML.Internal.Utilities;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(FlatMinimaImageClassificationTransformer), null, typeof(SignatureLoadModel),
    "FlatMinima Image Classification", FlatMinimaImageClassificationTransformer.LoaderSignature)]

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>
/// Scores images with a trained <see cref="FlatMinimaImageClassifier"/>: adds a <c>Score</c> column (softmax
/// probabilities, one slot per class, with the class names as slot names) and a <c>PredictedLabel</c> key column with
/// the label's values. <c>Transform</c> scores in batches of <see cref="ScoringBatchSize"/> rows, lazily; the
/// row-to-row mapper (used by <c>PredictionEngine</c>) scores one row at a time. Saves and loads with
/// <c>mlContext.Model.Save</c>/<c>Load</c>, weights inside the model zip.
/// </summary>
public sealed class FlatMinimaImageClassificationTransformer : ISingleFeaturePredictionTransformer<FlatMinimaImageClassifier>, IDisposable
{
    internal const string LoaderSignature = "FlatMinimaImgClsXf";
    private const string WeightsEntry = "TorchWeights.bin";
    private readonly IHost _host;
    private readonly LabelKeyValues _keyValues;

    internal FlatMinimaImageClassificationTransformer(IHostEnvironment env, FlatMinimaImageClassifier model, ImageInput input,
        string imageColumn, string labelColumn, string scoreColumn, string predictedLabelColumn, LabelKeyValues keyValues,
        int scoringBatchSize, DeviceKind device, int cudaIndex)
    {
        _host = env.Register(nameof(FlatMinimaImageClassificationTransformer));
        Model = model;
        Input = input;
        FeatureColumnName = imageColumn;
        LabelColumnName = labelColumn;
        ScoreColumnName = scoreColumn;
        PredictedLabelColumnName = predictedLabelColumn;
        _keyValues = keyValues;
        ScoringBatchSize = scoringBatchSize;
        DeviceKind = device;
        CudaDeviceIndex = cudaIndex;
    }

    /// <summary>The trained classifier.</summary>
    public FlatMinimaImageClassifier Model { get; }

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
    public IReadOnlyList<string> ClassNames => _keyValues.Names;

    /// <summary>Always true: the transformer maps rows one to one.</summary>
    public bool IsRowToRowMapper => true;

    internal ImageInput Input { get; }

    /// <summary>The input schema plus the score and predicted-label columns; checks the image column.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckImageColumn(inputSchema);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, Model.ClassCount), _keyValues.ScoreAnnotations(Model.ClassCount));
        builder.AddColumn(PredictedLabelColumnName, new KeyDataViewType(typeof(uint), Model.ClassCount), _keyValues.PredictedLabelAnnotations());
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

    /// <summary>Releases the network.</summary>
    public void Dispose() => Model.Dispose();

    internal DataViewSchema.Column CheckImageColumn(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(FeatureColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{FeatureColumnName}' was not found in the input data.");
        Input.CheckCompatible(column);
        return column;
    }

    /// <summary>Scores decoded images: probabilities <c>[B·K]</c> into <paramref name="probabilities"/>, argmax into <paramref name="predicted"/> (0-based).</summary>
    internal void Score(IReadOnlyList<DecodedImage> images, float[] probabilities, int[] predicted)
    {
        using var scope = NewDisposeScope();
        var raw = ImageBatch.AdaptChannels(ImageBatch.Stack(images, Model.Height, Model.Width), Model.Channels);
        var p = Model.PredictProbabilities(raw);
        p.data<float>().CopyTo(probabilities.AsSpan(0, images.Count * Model.ClassCount));
        p.argmax(1).to_type(ScalarType.Int32).data<int>().CopyTo(predicted.AsSpan(0, images.Count));
    }

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "FMIMGCLS",
        verWrittenCur: 0x00010001, // initial format
        verReadableCur: 0x00010001,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(FlatMinimaImageClassificationTransformer).Assembly.FullName);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        _host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        // Format 0x00010001: column names; input kind and vector shape; architecture; geometry, classes, normalization;
        // device; scoring batch size; label key values (BinarySaver type + value, optional); weights as a zip entry.
        ctx.SaveNonEmptyString(FeatureColumnName);
        ctx.SaveNonEmptyString(LabelColumnName);
        ctx.SaveNonEmptyString(ScoreColumnName);
        ctx.SaveNonEmptyString(PredictedLabelColumnName);
        ctx.Writer.Write((int)Input.Kind);
        ctx.Writer.Write(Input.VectorChannels);
        ctx.Writer.Write(Input.VectorHeight);
        ctx.Writer.Write(Input.VectorWidth);
        ctx.SaveNonEmptyString(Model.Architecture);
        ctx.Writer.Write(Model.Channels);
        ctx.Writer.Write(Model.Height);
        ctx.Writer.Write(Model.Width);
        ctx.Writer.Write(Model.ClassCount);
        foreach (var values in new[] { Model.Mean, Model.Std })
        {
            ctx.Writer.Write(values.Count);
            foreach (float v in values) ctx.Writer.Write(v);
        }
        ctx.Writer.Write((int)DeviceKind);
        ctx.Writer.Write(CudaDeviceIndex);
        ctx.Writer.Write(ScoringBatchSize);
        _keyValues.Save(_host, ctx.Writer);
        ctx.SaveBinaryStream(WeightsEntry, w => Model.SaveWeights(w));
    }

    private static FlatMinimaImageClassificationTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        env.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel(GetVersionInfo());
        string image = ctx.LoadNonEmptyString(), label = ctx.LoadNonEmptyString(), score = ctx.LoadNonEmptyString(), predicted = ctx.LoadNonEmptyString();
        var kind = (ImageInputKind)ctx.Reader.ReadInt32();
        var input = new ImageInput(kind, ctx.Reader.ReadInt32(), ctx.Reader.ReadInt32(), ctx.Reader.ReadInt32());
        string architecture = ctx.LoadNonEmptyString();
        int channels = ctx.Reader.ReadInt32(), height = ctx.Reader.ReadInt32(), width = ctx.Reader.ReadInt32(), classes = ctx.Reader.ReadInt32();
        float[] ReadFloats()
        {
            int n = ctx.Reader.ReadInt32();
            env.CheckDecode(n == channels);
            return Enumerable.Range(0, n).Select(_ => ctx.Reader.ReadSingle()).ToArray();
        }
        float[] mean = ReadFloats(), std = ReadFloats();
        var deviceKind = (DeviceKind)ctx.Reader.ReadInt32();
        int cudaIndex = ctx.Reader.ReadInt32();
        int scoringBatchSize = ctx.Reader.ReadInt32();
        var keyValues = LabelKeyValues.Load(env, ctx.Reader, classes);

        var device = Devices.Resolve(deviceKind, cudaIndex);
        var network = FlatMinimaImageClassifier.CreateNetwork(architecture, channels, classes, height, width);
        if (!ctx.TryLoadBinaryStream(WeightsEntry, r => network.load(r)))
            throw env.ExceptDecode($"The model zip has no '{WeightsEntry}' entry with the network weights.");
        network.to(device);
        network.eval();
        var model = new FlatMinimaImageClassifier(network, architecture, channels, height, width, classes, mean, std, device);
        return new FlatMinimaImageClassificationTransformer(env, model, input, image, label, score, predicted, keyValues, scoringBatchSize, deviceKind, cudaIndex);
    }
}

/// <summary>The label column's key values (any item type), kept as the annotations of the output columns and saved with the model.</summary>
internal sealed class LabelKeyValues
{
    private readonly VectorDataViewType? _type;
    private readonly Delegate? _getter;
    private readonly object? _value;

    private LabelKeyValues(VectorDataViewType? type, object? value, IReadOnlyList<string> names)
    {
        _type = type;
        _value = value;
        _getter = type is null ? null : MakeGetterMethod(type.ItemType.RawType).Invoke(null, new[] { value }) as Delegate;
        Names = names;
    }

    public IReadOnlyList<string> Names { get; }

    public bool HasValues => _type is not null;

    /// <summary>Takes the KeyValues annotation of <paramref name="label"/>, if any.</summary>
    public static LabelKeyValues FromColumn(DataViewSchema.Column label, int classCount)
    {
        var column = label.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues);
        if (column is not { Type: VectorDataViewType type } || type.Size != classCount)
            return new LabelKeyValues(null, null, Enumerable.Range(0, classCount).Select(i => i.ToString()).ToArray());
        var method = typeof(LabelKeyValues).GetMethod(nameof(ReadAnnotation), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(type.ItemType.RawType);
        var (value, names) = ((object, string[]))method.Invoke(null, new object[] { label.Annotations, column.Value })!;
        return new LabelKeyValues(type, value, names);
    }

    /// <summary>Whether <paramref name="other"/> has the same classes (used to check validation data).</summary>
    public bool SameClasses(LabelKeyValues other) => Names.SequenceEqual(other.Names);

    public DataViewSchema.Annotations ScoreAnnotations(int classCount)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        if (HasValues)
        {
            var names = Names.Select(n => n.AsMemory()).ToArray();
            builder.AddSlotNames(classCount, (ref VBuffer<ReadOnlyMemory<char>> dst) => new VBuffer<ReadOnlyMemory<char>>(names.Length, names).CopyTo(ref dst));
            builder.Add(AnnotationUtils.Kinds.TrainingLabelValues, _type!, _getter!);
        }
        builder.Add(AnnotationUtils.Kinds.ScoreColumnKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> dst) => dst = AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification.AsMemory());
        builder.Add(AnnotationUtils.Kinds.ScoreValueKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> dst) => dst = AnnotationUtils.Const.ScoreValueKind.Score.AsMemory());
        return builder.ToAnnotations();
    }

    public DataViewSchema.Annotations PredictedLabelAnnotations()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        if (HasValues) builder.Add(AnnotationUtils.Kinds.KeyValues, _type!, _getter!);
        return builder.ToAnnotations();
    }

    public void Save(IHostEnvironment env, BinaryWriter writer)
    {
        writer.Write(HasValues);
        if (!HasValues) return;
        var method = typeof(LabelKeyValues).GetMethod(nameof(WriteValue), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(_type!.ItemType.RawType);
        method.Invoke(null, new[] { env, writer, _type, _value });
    }

    public static LabelKeyValues Load(IHostEnvironment env, BinaryReader reader, int classCount)
    {
        if (!reader.ReadBoolean())
            return new LabelKeyValues(null, null, Enumerable.Range(0, classCount).Select(i => i.ToString()).ToArray());
        var saver = new BinarySaver(env, new BinarySaver.Arguments());
        env.CheckDecode(saver.TryLoadTypeAndValue(reader.BaseStream, out var type, out var value));
        env.CheckDecode(type is VectorDataViewType { Size: var n } && n == classCount && value is not null);
        var vectorType = (VectorDataViewType)type;
        var method = typeof(LabelKeyValues).GetMethod(nameof(NamesOf), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(vectorType.ItemType.RawType);
        return new LabelKeyValues(vectorType, value, (string[])method.Invoke(null, new[] { value })!);
    }

    private static (object, string[]) ReadAnnotation<T>(DataViewSchema.Annotations annotations, DataViewSchema.Column column)
    {
        var value = default(VBuffer<T>);
        annotations.GetGetter<VBuffer<T>>(column)(ref value);
        var copy = default(VBuffer<T>);
        value.CopyTo(ref copy);
        return (copy, ToNames(copy));
    }

    private static string[] ToNames<T>(VBuffer<T> value) => value.DenseValues().Select(v => v?.ToString() ?? "").ToArray();

    private static string[] NamesOf<T>(object value) => ToNames((VBuffer<T>)value);

    private static ValueGetter<VBuffer<T>> MakeGetter<T>(object value)
    {
        var buffer = (VBuffer<T>)value;
        return (ref VBuffer<T> dst) => buffer.CopyTo(ref dst);
    }

    private static System.Reflection.MethodInfo MakeGetterMethod(Type itemType) =>
        typeof(LabelKeyValues).GetMethod(nameof(MakeGetter), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(itemType);

    private static void WriteValue<T>(IHostEnvironment env, BinaryWriter writer, VectorDataViewType type, object value)
    {
        var buffer = (VBuffer<T>)value;
        var saver = new BinarySaver(env, new BinarySaver.Arguments());
        if (!saver.TryWriteTypeAndValue(writer.BaseStream, type, ref buffer, out _))
            throw new NotSupportedException($"Label key values of type {type.ItemType} cannot be saved with the model.");
    }
}
