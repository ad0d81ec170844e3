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

namespace FlatMinima.MLNet;

/// <summary>
/// Adds a column of image embeddings (a known-size <c>Vector&lt;Single&gt;</c>: 512 floats for ResNet-18) computed by a
/// pretrained backbone or by the network of a trained FlatMinima image classifier, to feed ML.NET's own trainers
/// (e.g. <c>LbfgsMaximumEntropy</c>). Create it with <c>mlContext.Transforms.FlatMinimaFeaturizeImage(…)</c>;
/// <see cref="Fit"/> only checks the image column and builds the network (on the CPU).
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
            _height = imageHeight ?? backbone.DefaultInputSize;
            _width = imageWidth ?? backbone.DefaultInputSize;
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
        if (_classifier is { } model)
        {
            var modelInput = ImageInput.FromColumn(column, model.Channels, model.Height, model.Width);
            var copy = model.CopyNetwork();
            return new FlatMinimaImageFeaturizer(_host, copy, model.Standardization.Apply, modelInput, _outputColumn, _inputColumn, model.Channels, model.Height, model.Width, _batchSize);
        }
        var backbone = _backbone!;
        var imageInput = ImageInput.FromColumn(column, backbone.Channels, _height, _width);
        var network = backbone.CreateNetwork(1, _height, _width);
        return new FlatMinimaImageFeaturizer(_host, network, null, imageInput, _outputColumn, _inputColumn, backbone.Channels, _height, _width, _batchSize);
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
/// computed in batches of <see cref="BatchSize"/> rows. Not saveable: create it again (it holds no trained state of its
/// own) or save the classifier it was made from.
/// </summary>
public sealed class FlatMinimaImageFeaturizer : ITransformer, IImageScorer, IDisposable
{
    private readonly IHost _host;
    private readonly nn.Module<Tensor, Tensor> _network;
    private readonly Func<Tensor, Tensor>? _standardize;
    private readonly (int Channels, int Height, int Width) _geometry;
    private readonly object _lock = new();

    internal FlatMinimaImageFeaturizer(IHost host, nn.Module<Tensor, Tensor> network, Func<Tensor, Tensor>? standardize, ImageInput input,
        string outputColumn, string inputColumn, int channels, int height, int width, int batchSize)
    {
        _host = host;
        _network = network;
        _network.eval();
        _standardize = standardize;
        Input = input;
        OutputColumnName = outputColumn;
        InputColumnName = inputColumn;
        _geometry = (channels, height, width);
        BatchSize = batchSize;
        using var noGrad = no_grad();
        using var probe = zeros(1, channels, height, width, device: Device);
        using var embedding = ((IEmbeddingNetwork)_network).Embed(_standardize is null ? probe : _standardize(probe));
        EmbeddingSize = (int)embedding.shape[1];
    }

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

    private Device Device => _network.parameters().First().device;

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

    /// <summary>Not supported: the featurizer is created from a backbone's files or a trained model; create it again after loading.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException(
            "FlatMinimaImageFeaturizer cannot be saved in a model zip; save the pipeline without it and add mlContext.Transforms.FlatMinimaFeaturizeImage(…) again after loading.");

    /// <summary>Releases the network.</summary>
    public void Dispose() => _network.Dispose();

    DataViewSchema.Column IImageScorer.CheckImageColumn(DataViewSchema schema) => CheckImageColumn(schema);

    private DataViewSchema.Column CheckImageColumn(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(InputColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{InputColumnName}' was not found in the input data.");
        Input.CheckCompatible(column);
        return column;
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
            var (channels, height, width) = _geometry;
            var raw = ImageBatch.AdaptChannels(ImageBatch.Stack(usable, height, width), channels);
            Tensor embedded;
            lock (_lock)
            {
                using var noGrad = no_grad();
                var x = raw.to(Device);
                embedded = ((IEmbeddingNetwork)_network).Embed(_standardize is null ? x : _standardize(x)).cpu();
            }
            var finite = isfinite(raw).flatten(1).all(1).logical_and_(isfinite(embedded).all(1));
            output.index_copy_(0, tensor(rows.ToArray()), embedded.masked_fill(finite.logical_not().unsqueeze(1), float.NaN));
        }
        output.data<float>().CopyTo(features.AsSpan(0, images.Count * EmbeddingSize));
        Array.Fill(predicted, -1, 0, images.Count);
    }
}
