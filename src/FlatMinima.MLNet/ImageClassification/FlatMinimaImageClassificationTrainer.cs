using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>
/// Trains an image classifier on TorchSharp with sharpness-aware minimization (SAM, ASAM or SA-GD) or plain SGD/AdamW,
/// optionally with weight averaging (SWA, EMA or SWAD), and returns a <see cref="FlatMinimaImageClassificationTransformer"/> that ML.NET can evaluate, save and load.
/// Create it with <c>mlContext.MulticlassClassification.Trainers.FlatMinimaImageClassification(…)</c>.
/// </summary>
/// <remarks>
/// The decoded training images are held in memory as one float tensor (N×C×H×W×4 bytes); inputs are standardized per
/// channel with the training data's mean and standard deviation, which are saved with the model — or, with
/// <see cref="Options.Backbone"/>, prepared as the pretrained backbone expects by a module inside the saved network.
/// </remarks>
public sealed partial class FlatMinimaImageClassificationTrainer
    : ImageTrainerBase<FlatMinimaImageClassificationTrainer.Options>,
      ITrainerEstimator<FlatMinimaImageClassificationTransformer, FlatMinimaImageClassifier>
{
    internal FlatMinimaImageClassificationTrainer(IHostEnvironment env, Options options)
        : base(env, options, nameof(FlatMinimaImageClassificationTrainer))
    {
    }

    /// <inheritdoc />
    private protected override FlatMinima.Torch.Pretrained.PretrainedBackbone? Backbone => TrainerOptions.Backbone;

    /// <summary>No normalization or caching is needed; validation data is supported.</summary>
    public TrainerInfo Info { get; } = new(normalization: false, calibration: false, caching: false, supportValid: true,
        supportIncrementalTrain: false, supportTest: false);

    /// <summary>Trains on <paramref name="input"/>.</summary>
    public FlatMinimaImageClassificationTransformer Fit(IDataView input)
    {
        Host.CheckValue(input, nameof(input));
        var o = TrainerOptions;
        var (keyValues, imageInput) = InspectTrainingData(input, "training data", "The training data is empty: it has no rows.");
        int classCount = keyValues.Names.Count;

        using var ch = Host.Start("Training");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var train = ReadImages(input, imageInput);
        using var trainImages = train.Images;
        int distinct = train.Labels.Distinct().Count();
        if (distinct < 2)
            throw new InvalidOperationException(
                $"Label column '{o.LabelColumnName}': the training data has a single class ('{keyValues.Names[(int)train.Labels[0]]}'); a classifier needs examples of at least two classes.");
        ch.Info(MessageSensitivity.None, $"Read {train.Labels.Length} training images ({train.Channels}×{train.Height}×{train.Width}, {distinct} of {classCount} classes) in {clock.Elapsed.TotalSeconds:F1} s.");

        var domainNames = new Dictionary<string, long>();
        long[]? domains = o.DomainColumnName is null ? null : DomainReader.Read(input, o.DomainColumnName, domainNames, "Training data");
        long[] rows = Enumerable.Range(0, train.Labels.Length).Select(i => (long)i).ToArray(), heldOut = Array.Empty<long>();
        if (o.Averaging is { NeedsValidation: true } && o.ValidationSet is null)
        {
            (rows, heldOut) = ValidationSplit.Stratified(train.Labels, domains, o.ValidationFraction, o.Seed);
            if (heldOut.Length == 0 || rows.Length == 0)
                throw new InvalidOperationException(
                    $"ValidationFraction {o.ValidationFraction} of {train.Labels.Length} training rows leaves {heldOut.Length} validation and {rows.Length} training rows; " +
                    "the averaging method needs both. Give more data, another ValidationFraction, or a ValidationSet.");
            ch.Info(MessageSensitivity.None, $"Held out {heldOut.Length} of {train.Labels.Length} training rows (ValidationFraction {o.ValidationFraction}, stratified by label" +
                (domains is null ? "" : $" and {domainNames.Count} domains") + ") as validation data for the averaging window.");
        }

        using var rowIndex = tensor(rows);
        using var trainPart = heldOut.Length == 0 ? trainImages.alias() : trainImages.index_select(0, rowIndex);
        var (mean, std) = FixedStandardization(train.Channels) ?? ImageTrainingData.ChannelStatistics(trainPart);
        using var trainX = ImageTrainingData.Normalize(trainPart, mean, std);
        using var trainY = tensor(rows.Select(i => train.Labels[i]).ToArray());
        using var trainDomains = domains is null ? null : tensor(rows.Select(i => domains[i]).ToArray());
        TensorDataset? validation = null;
        if (heldOut.Length > 0)
        {
            using var heldIndex = tensor(heldOut);
            using var held = trainImages.index_select(0, heldIndex);
            validation = new TensorDataset(ImageTrainingData.Normalize(held, mean, std), tensor(heldOut.Select(i => train.Labels[i]).ToArray()))
            {
                Domains = domains is null ? null : tensor(heldOut.Select(i => domains[i]).ToArray()),
            };
        }
        else if (o.ValidationSet is not null)
        {
            validation = ReadValidation(o.ValidationSet, imageInput, train, keyValues, classCount, mean, std);
            if (o.DomainColumnName is not null && o.ValidationSet.Schema.GetColumnOrNull(o.DomainColumnName) is not null)
                validation = validation with { Domains = tensor(DomainReader.Read(o.ValidationSet, o.DomainColumnName, domainNames, "ValidationSet")) };
        }

        nn.Module<Tensor, Tensor> network;
        string architecture;
        Device device;
        try
        {
            (network, architecture, device) = CreateNetwork(train.Channels, classCount, train.Height, train.Width);
            var training = TrainingOptions(ch);
            ch.Info(MessageSensitivity.None, $"Training {architecture} on {device.type} with {training.GradientStep?.ToString() ?? "the base optimizer only"}" +
                (o.Averaging is null ? "" : $" and weight averaging {o.Averaging}") + $"; augmentation: {AugmentationText(o.Augmentation)}.");
            var trained = network;
            DisposeOnFailure(() => TrainNetwork(training, device, trained, new TensorDataset(trainX, trainY) { Domains = trainDomains }, validation, ch), network);
        }
        finally
        {
            validation?.Inputs.Dispose();
            validation?.Labels.Dispose();
            validation?.Domains?.Dispose();
        }
        network.eval();
        var model = new FlatMinimaImageClassifier(network, architecture, train.Channels, train.Height, train.Width, classCount, mean, std, device, AugmentationText(o.Augmentation));
        return new FlatMinimaImageClassificationTransformer(Host, model, imageInput, o.ImageColumnName, o.LabelColumnName, o.ScoreColumnName,
            o.PredictedLabelColumnName, keyValues, o.ScoringBatchSize, o.Device, o.CudaDeviceIndex);
    }

    /// <summary>The input columns plus <c>Score</c> (vector of K floats) and <c>PredictedLabel</c> (key); checks the inputs.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Host.CheckValue(inputSchema, nameof(inputSchema));
        var o = TrainerOptions;
        return ImageTrainingData.OutputSchema(inputSchema, o.LabelColumnName, o.ImageColumnName, o.ScoreColumnName, o.PredictedLabelColumnName, classNamesAsText: false);
    }

    private TensorDataset ReadValidation(IDataView validationSet, ImageInput trainInput, ImageExamples train, LabelKeyValues trainKeys,
        int classCount, float[] mean, float[] std)
    {
        var o = TrainerOptions;
        var validationKeys = ReadLabelKeys(validationSet.Schema, minClasses: 2);
        if (validationKeys.Names.Count != classCount || !validationKeys.SameClasses(trainKeys))
            throw new InvalidOperationException(
                $"ValidationSet: label column '{o.LabelColumnName}' has classes [{string.Join(", ", validationKeys.Names)}] but the training data has " +
                $"[{string.Join(", ", trainKeys.Names)}]. Transform the validation data with the same fitted MapValueToKey as the training data.");
        var imageColumn = FindImageColumn(validationSet.Schema, "ValidationSet", nameof(o.ValidationSet));
        var validationInput = trainInput.Matching(imageColumn);
        var data = ReadImages(validationSet, validationInput, "ValidationSet", train.Channels, train.Height, train.Width);
        var seen = train.Labels.ToHashSet();
        int unseen = Array.FindIndex(data.Labels, l => !seen.Contains(l));
        if (unseen >= 0)
        {
            data.Images.Dispose();
            throw new InvalidOperationException(
                $"ValidationSet: row {unseen} has label '{trainKeys.Names[(int)data.Labels[unseen]]}', a class with no training examples. Validation labels must be classes seen in training.");
        }
        using var images = data.Images;
        return new TensorDataset(ImageTrainingData.Normalize(images, mean, std), tensor(data.Labels));
    }
}
