using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(FlatMinima.MLNet.FlatMinimaImageFeaturizer), null, typeof(SignatureLoadModel),
    "FlatMinima Image Featurizer", FlatMinima.MLNet.FlatMinimaImageFeaturizer.LoaderSignature)]

namespace FlatMinima.MLNet;

/// <summary>
/// Adds a column of image embeddings (a known-size <c>Vector&lt;Single&gt;</c>: 512 floats for ResNet-18) computed by a
/// pretrained backbone or by the network of a trained FlatMinima image classifier, to feed ML.NET's own trainers
/// (e.g. <c>LbfgsMaximumEntropy</c>). Create it with <c>mlContext.Transforms.FlatMinimaFeaturizeImage(…)</c>;
/// <see cref="Fit"/> only checks the image column and builds the network (a backbone's on the CPU).
/// </summary>
public sealed class FlatMinimaImageFeaturizerEstimator : IEstimator<FlatMinimaImageFeaturizer>
{
    private readonly IHost _host;
    private readonly string _outputColumn;
    private readonly string _inputColumn;
    private readonly PretrainedBackbone? _backbone;
    private readonly FlatMinimaImageClassifier? _classifier;
    private readonly int _height;
    private readonly int _width;
    private readonly int _batchSize;

    internal FlatMinimaImageFeaturizerEstimator(IHostEnvironment env, string outputColumn, string inputColumn, PretrainedBackbone? backbone,
        FlatMinimaImageClassifier? classifier, int? imageHeight, int? imageWidth, int batchSize)
    {
        Contracts.CheckValue(env, nameof(env));
        _host = env.Register(nameof(FlatMinimaImageFeaturizerEstimator));
        if (string.IsNullOrWhiteSpace(outputColumn)) throw new ArgumentException("outputColumnName must name a column.", nameof(outputColumn));
        if (string.IsNullOrWhiteSpace(inputColumn)) throw new ArgumentException("inputColumnName must name a column.", nameof(inputColumn));
        foreach (var (name, value) in new[] { ("outputColumnName", outputColumn), ("inputColumnName", inputColumn) })
            if (value.Length > ModelLimits.MaxNameLength || value.Any(char.IsControl))
                throw new ArgumentException($"{name} must be at most {ModelLimits.MaxNameLength} characters without control characters (a model file stores it).", name);
        if (batchSize < 1 || batchSize > ModelLimits.MaxScoringBatchSize)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"batchSize must be 1 to {ModelLimits.MaxScoringBatchSize}.");
        if (classifier is not null && classifier.Network is not IEmbeddingNetwork)
            throw new ArgumentException($"The model's network ({classifier.Architecture}) does not expose its embedding (IEmbeddingNetwork).", nameof(classifier));
        _outputColumn = outputColumn;
        _inputColumn = inputColumn;
        _backbone = backbone;
        _classifier = classifier;
        if (backbone is not null)
        {
            _height = imageHeight ?? backbone.DefaultInputHeight;
            _width = imageWidth ?? backbone.DefaultInputWidth;
            foreach (var (name, side) in new[] { ("imageHeight", _height), ("imageWidth", _width) })
                if (side < backbone.MinInputSize || side > ModelLimits.MaxImageSide)
                    throw new ArgumentOutOfRangeException(name, side, $"{name} must be {backbone.MinInputSize} to {ModelLimits.MaxImageSide} pixels for {backbone.Name}.");
            backbone.CheckFiles();
        }
        _batchSize = batchSize;
    }

    /// <summary>Checks the image column and creates the transformer (reading the backbone's files).</summary>
    public FlatMinimaImageFeaturizer Fit(IDataView input)
    {
        _host.CheckValue(input, nameof(input));
        var column = input.Schema.GetColumnOrNull(_inputColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(input), $"Image column '{_inputColumn}' was not found in the input data.");
        TorchNativeLibrary.EnsureLoaded();
        FlatMinimaImageClassifier source;
        if (_classifier is { } model)
        {
            source = new FlatMinimaImageClassifier(model.CopyNetwork(), model.Architecture, model.Channels, model.Height, model.Width, model.ClassCount,
                model.Mean.ToArray(), model.Std.ToArray(), model.Device, model.Augmentation);
        }
        else
        {
            // A one-output head (never used): the embedding is what the featurizer returns.
            var backbone = _backbone!;
            var network = backbone.CreateNetwork(1, _height, _width);
            source = new FlatMinimaImageClassifier(network, backbone.Name, backbone.Channels, _height, _width, 1,
                new float[backbone.Channels], Enumerable.Repeat(1f, backbone.Channels).ToArray(), CPU, null);
        }
        try
        {
            var imageInput = ImageInput.FromColumn(column, source.Channels, source.Height, source.Width);
            return new FlatMinimaImageFeaturizer(_host, source, imageInput, _outputColumn, _inputColumn, _batchSize);
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>The input columns plus the embedding column; checks that the image column exists.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        _host.CheckValue(inputSchema, nameof(inputSchema));
        if (!inputSchema.TryFindColumn(_inputColumn, out _))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Image column '{_inputColumn}' was not found in the input schema.");
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[_outputColumn] = new SchemaShape.Column(_outputColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }
}

/// <summary>
/// Adds the embedding of each row's image (<see cref="EmbeddingSize"/> floats; NaN for a row without a usable image)
/// computed in batches of <see cref="BatchSize"/> rows by <see cref="Source"/>'s network. Saves and loads with
/// <c>mlContext.Model.Save</c>/<c>Load</c>, the network's weights (with a backbone's preprocessing) inside the zip, so
/// a saved featurizer loads without the backbone's files.
/// </summary>
public sealed class FlatMinimaImageFeaturizer : ITransformer, IImageScorer, IDisposable
{
    internal const string LoaderSignature = "FlatMinimaImgFeatXf";

    private readonly IHost _host;
    private readonly object _lock = new();

    internal FlatMinimaImageFeaturizer(IHostEnvironment env, FlatMinimaImageClassifier source, ImageInput input, string outputColumn, string inputColumn, int batchSize)
    {
        _host = env.Register(nameof(FlatMinimaImageFeaturizer));
        if (source.Network is not IEmbeddingNetwork)
            throw new ArgumentException($"The network ({source.Architecture}) does not expose its embedding (IEmbeddingNetwork).", nameof(source));
        Source = source;
        Source.Network.eval();
        Input = input;
        OutputColumnName = outputColumn;
        InputColumnName = inputColumn;
        BatchSize = batchSize;
        using var scope = NewDisposeScope();
        EmbeddingSize = (int)Embed(zeros(1, source.Channels, source.Height, source.Width)).shape[1];
    }

    /// <summary>
    /// The network and its input geometry and standardization: a backbone's network (architecture = the backbone's
    /// name, mean 0 and standard deviation 1: its preprocessing is inside the network) or a copy of a trained model's.
    /// </summary>
    public FlatMinimaImageClassifier Source { get; }

    /// <summary>The image column read.</summary>
    public string InputColumnName { get; }

    /// <summary>The embedding column added.</summary>
    public string OutputColumnName { get; }

    /// <summary>Floats per embedding (512 for ResNet-18).</summary>
    public int EmbeddingSize { get; }

    /// <summary>Rows per forward pass.</summary>
    public int BatchSize { get; }

    /// <summary>Always true: rows map one to one.</summary>
    public bool IsRowToRowMapper => true;

    internal ImageInput Input { get; }

    ImageInput IImageScorer.Input => Input;

    string IImageScorer.FeatureColumnName => InputColumnName;

    int IImageScorer.ClassCount => EmbeddingSize;

    int IImageScorer.ScoringBatchSize => BatchSize;

    /// <summary>The input schema plus the embedding column (a known-size vector of <see cref="EmbeddingSize"/> floats).</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckImageColumn(inputSchema);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, EmbeddingSize));
        return builder.ToSchema();
    }

    /// <summary>Computes the embeddings lazily, in batches of <see cref="BatchSize"/> rows.</summary>
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
    public void Dispose() => Source.Dispose();

    DataViewSchema.Column IImageScorer.CheckImageColumn(DataViewSchema schema) => CheckImageColumn(schema);

    void IImageScorer.CheckOnnxExport() =>
        FlatMinima.MLNet.Export.ImageOnnxExport.Check(InputColumnName, Input, (Source.Channels, Source.Height, Source.Width),
            FlatMinima.Torch.Export.OnnxNetworkEmitter.IsSupported(Source.Network, out string reason) ? null : reason);

    // Reshape → standardization → the network's embedding (what Embed computes) → the output column.
    void IImageScorer.SaveAsOnnx(Microsoft.ML.Model.OnnxConverter.OnnxContext ctx)
    {
        ((IImageScorer)this).CheckOnnxExport();
        const string prefix = FlatMinima.MLNet.Export.ImageOnnxExport.Prefix;
        var sink = new FlatMinima.MLNet.Export.OnnxContextSink(ctx);
        var geometry = (Source.Channels, Source.Height, Source.Width);
        string image = FlatMinima.MLNet.Export.ImageOnnxExport.EmitImage(ctx, sink, InputColumnName, geometry);
        string x = new FlatMinima.Torch.Export.OnnxGraphWriter(sink, prefix).Standardize(image, Source.Mean, Source.Std);
        string embedding = FlatMinima.Torch.Export.OnnxNetworkEmitter.EmitEmbedding(Source.Network, sink, x, Source.Channels, Source.Height, Source.Width, prefix);
        string output = ctx.AddIntermediateVariable(new VectorDataViewType(NumberDataViewType.Single, EmbeddingSize), OutputColumnName);
        ctx.CreateNode("Identity", embedding, output, ctx.GetNodeName("Identity"), "");
    }

    private DataViewSchema.Column CheckImageColumn(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(InputColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{InputColumnName}' was not found in the input data.");
        Input.CheckCompatible(column);
        return column;
    }

    // The embedding [B, D] (on the CPU) of a raw batch, standardized as the source model was.
    private Tensor Embed(Tensor raw)
    {
        lock (_lock)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var x = Source.Normalize(raw.to(Source.Device));
            return ((IEmbeddingNetwork)Source.Network).Embed(x).cpu().MoveToOuterDisposeScope();
        }
    }

    /// <summary>Embeds a batch into <paramref name="features"/> (<c>[B·D]</c>); unusable or non-finite rows get NaN.</summary>
    void IImageScorer.Score(IReadOnlyList<DecodedImage?> images, float[] features, int[] predicted)
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
        var output = full(images.Count, EmbeddingSize, float.NaN);
        if (usable.Count > 0)
        {
            var raw = ImageBatch.AdaptChannels(ImageBatch.Stack(usable, Source.Height, Source.Width), Source.Channels);
            var embedded = Embed(raw);
            var finite = isfinite(raw).flatten(1).all(1).logical_and_(isfinite(embedded).all(1));
            output.index_copy_(0, tensor(rows.ToArray()), embedded.masked_fill(finite.logical_not().unsqueeze(1), float.NaN));
        }
        output.data<float>().CopyTo(features.AsSpan(0, images.Count * EmbeddingSize));
        Array.Fill(predicted, -1, 0, images.Count);
    }

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "FMIMGFEA",
        verWrittenCur: 0x00010001,
        verReadableCur: 0x00010001,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(FlatMinimaImageFeaturizer).Assembly.FullName);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        _host.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        // Format 0x00010001: image and embedding column names; input kind and vector shape; batch size; the source's
        // architecture, geometry, head size and standardization; SHA-256 of the weights entry; the weights as a zip entry.
        var weights = Source.WeightsBytes();
        ctx.SaveNonEmptyString(InputColumnName);
        ctx.SaveNonEmptyString(OutputColumnName);
        ctx.Writer.Write((int)Input.Kind);
        ctx.Writer.Write(Input.VectorChannels);
        ctx.Writer.Write(Input.VectorHeight);
        ctx.Writer.Write(Input.VectorWidth);
        ctx.Writer.Write(BatchSize);
        Source.SaveHeader(ctx);
        ctx.Writer.Write(System.Security.Cryptography.SHA256.HashData(weights));
        ctx.SaveBinaryStream(FlatMinimaImageClassifier.WeightsEntry, w => w.Write(weights));
    }

    private static FlatMinimaImageFeaturizer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        env.CheckValue(ctx, nameof(ctx));
        TorchNativeLibrary.EnsureLoaded();
        return ModelReading.Run(ctx, reading =>
        {
            ctx.CheckAtModel(GetVersionInfo());
            var reader = reading.Reader;
            string inputColumn = reading.ReadName("image column name"), outputColumn = reading.ReadName("embedding column name");
            int rawKind = reader.ReadInt32();
            var kind = (ImageInputKind)rawKind;
            reading.Check(Enum.IsDefined(kind), $"the image input kind {rawKind} is not one of {string.Join(", ", Enum.GetNames<ImageInputKind>())}.");
            int c = reader.ReadInt32(), h = reader.ReadInt32(), w = reader.ReadInt32();
            if (kind == ImageInputKind.PixelVector)
                reading.Check(c is >= 1 and <= ModelLimits.MaxVectorChannels && h is >= 1 and <= ModelLimits.MaxImageSide
                    && w is >= 1 and <= ModelLimits.MaxImageSide && (long)c * h * w <= ModelLimits.MaxInputValues,
                    $"the pixel-vector shape {c}×{h}×{w} is outside the accepted limits.");
            else
                reading.Check(c == 0 && h == 0 && w == 0, $"an input of kind {kind} stores a vector shape {c}×{h}×{w}; expected 0×0×0.");
            var input = new ImageInput(kind, c, h, w);
            int batchSize = reader.ReadInt32();
            reading.Check(batchSize is >= 1 and <= ModelLimits.MaxScoringBatchSize, $"the batch size {batchSize} is outside 1 to {ModelLimits.MaxScoringBatchSize}.");
            var header = FlatMinimaImageClassifier.LoadHeader(reading, input);
            var sha256 = reader.ReadBytes(32);
            reading.Check(sha256.Length == 32, "the entry ends inside the weights checksum.");
            var source = header.LoadNetwork(reading, sha256, FlatMinimaModelLoading.ResolveLoadDevice(0));
            return new FlatMinimaImageFeaturizer(env, source, input, outputColumn, inputColumn, batchSize);
        });
    }
}
