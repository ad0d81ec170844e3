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
/// The training images are held in memory as one float tensor (N×C×H×W×4 bytes) or streamed — kept encoded and decoded
/// per batch on background threads — as <see cref="Options.DataLoading"/> says; inputs are standardized per channel with
/// the training data's mean and standard deviation, which are saved with the model — or, with
/// <see cref="ImageTrainerOptions.Backbone"/>, prepared as the pretrained backbone expects by a module inside the saved network.
/// </remarks>
public sealed partial class FlatMinimaImageClassificationTrainer
    : ImageTrainerBase<FlatMinimaImageClassificationTrainer.Options>,
      ITrainerEstimator<FlatMinimaImageClassificationTransformer, FlatMinimaImageClassifier>
{
    internal FlatMinimaImageClassificationTrainer(IHostEnvironment env, Options options)
        : base(env, options, nameof(FlatMinimaImageClassificationTrainer))
    {
    }

    /// <summary>No normalization or caching is needed; validation data is supported.</summary>
    public TrainerInfo Info { get; } = new(normalization: false, calibration: false, caching: false, supportValid: true,
        supportIncrementalTrain: false, supportTest: false);

    /// <summary>Trains on <paramref name="input"/>.</summary>
    public FlatMinimaImageClassificationTransformer Fit(IDataView input)
    {
        Host.CheckValue(input, nameof(input));
        var (keyValues, imageInput) = InspectTrainingData(input, "training data", "The training data is empty: it has no rows.");
        int classCount = keyValues.Names.Count;

        // A pretrained backbone is built (its checkpoint or ONNX file read and checked) before any image is decoded.
        var backboneNetwork = CreateBackboneNetwork(classCount);
        try
        {
            return Train(input, keyValues, imageInput, classCount, ref backboneNetwork);
        }
        finally
        {
            backboneNetwork?.Dispose();   // not taken over: reading the images failed
        }
    }

    private FlatMinimaImageClassificationTransformer Train(IDataView input, LabelKeyValues keyValues, ImageInput imageInput, int classCount,
        ref FlatMinima.Torch.Pretrained.PretrainedImageNetwork? backboneNetwork)
    {
        var o = TrainerOptions;
        using var ch = Host.Start("Training");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var train = ReadTrainingImages(input, imageInput, o.DataLoading);
        var (channels, height, width) = train.Geometry;
        int distinct = train.Labels.Distinct().Count();
        if (distinct < 2)
            throw new InvalidOperationException(
                $"Label column '{o.LabelColumnName}': the training data has a single class ('{keyValues.Names[(int)train.Labels[0]]}'); a classifier needs examples of at least two classes.");
        ch.Info(MessageSensitivity.None, $"Read {train.Labels.Length} training images ({channels}×{height}×{width}, {distinct} of {classCount} classes" +
            (train.Streaming ? ", streamed" : ", in memory") + $") in {clock.Elapsed.TotalSeconds:F1} s.");

        var domainNames = new Dictionary<string, long>();
        long[]? domains = o.DomainColumnName is null ? null : DomainReader.Read(input, o.DomainColumnName, domainNames, "Training data");
        long[]? rows = null, heldOut = null;
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

        var (mean, std) = FixedStandardization(channels) ?? train.ChannelStatistics(rows);
        IExampleSet? trainSet = null, validation = null;
        TrainingImages? validationImages = null;
        nn.Module<Tensor, Tensor> network;
        string architecture;
        Device device;
        try
        {
            trainSet = train.CreateSet(rows, mean, std, domains);
            if (heldOut is not null) validation = train.CreateSet(heldOut, mean, std, domains);
            else if (o.ValidationSet is not null)
            {
                (validation, validationImages) = ReadValidation(o.ValidationSet, imageInput, train, keyValues, classCount, mean, std);
                if (o.DomainColumnName is not null && o.ValidationSet.Schema.GetColumnOrNull(o.DomainColumnName) is not null)
                {
                    var validationDomains = tensor(DomainReader.Read(o.ValidationSet, o.DomainColumnName, domainNames, "ValidationSet"));
                    validation = validation switch
                    {
                        TensorDataset tensors => tensors with { Domains = validationDomains },
                        LazyExampleSet lazy => lazy.WithDomains(validationDomains),
                        _ => validation,
                    };
                }
            }
            var prebuilt = backboneNetwork;
            backboneNetwork = null;   // CreateNetwork takes it over (and disposes it if it fails)
            (network, architecture, device) = CreateNetwork(channels, classCount, height, width, prebuilt);
            var training = TrainingOptions(ch);
            ch.Info(MessageSensitivity.None, $"Training {architecture} on {device.type} with {training.GradientStep?.ToString() ?? "the base optimizer only"}" +
                (o.Averaging is null ? "" : $" and weight averaging {o.Averaging}") + $"; augmentation: {AugmentationText(o.Augmentation)}.");
            var trained = network;
            var trainData = trainSet;
            DisposeOnFailure(() => TrainNetwork(training, device, trained, trainData, validation, ch), network);
        }
        finally
        {
            TrainingImages.DisposeSet(trainSet);
            TrainingImages.DisposeSet(validation);
            validationImages?.Dispose();
        }
        network.eval();
        var model = new FlatMinimaImageClassifier(network, architecture, channels, height, width, classCount, mean, std, device, AugmentationText(o.Augmentation));
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

    // The validation set, read in the training images' mode (in memory or streamed) and geometry, normalized with the training statistics.
    private (IExampleSet Set, TrainingImages? Images) ReadValidation(IDataView validationSet, ImageInput trainInput, TrainingImages train, LabelKeyValues trainKeys,
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
        var (channels, height, width) = train.Geometry;
        TrainingImages data = train.Streaming && validationInput.Kind == ImageInputKind.EncodedBytes
            ? EncodedImages.Read(validationSet, o.ImageColumnName, o.LabelColumnName, channels, height, width, null, o.BadImagePolicy, Environment.ProcessorCount)
            : new InMemoryImages(ReadImages(validationSet, validationInput, "ValidationSet", channels, height, width));
        var seen = train.Labels.ToHashSet();
        int unseen = Array.FindIndex(data.Labels, l => !seen.Contains(l));
        if (unseen >= 0)
        {
            data.Dispose();
            throw new InvalidOperationException(
                $"ValidationSet: row {unseen} has label '{trainKeys.Names[(int)data.Labels[unseen]]}', a class with no training examples. Validation labels must be classes seen in training.");
        }
        var set = data.CreateSet(null, mean, std, null);
        if (data.Streaming) return (set, data);   // the set reads the kept bytes: disposed after training
        data.Dispose();                          // the set holds normalized copies
        return (set, null);
    }
}
