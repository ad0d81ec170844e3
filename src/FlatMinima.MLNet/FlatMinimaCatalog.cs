using System;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.MLNet;

/// <summary>Catalog extensions that create FlatMinima trainers.</summary>
public static class FlatMinimaCatalog
{
    /// <summary>
    /// An image classifier trained on TorchSharp with SAM (radius <paramref name="rho"/>; 0 trains with plain SGD) and the
    /// trainer's other defaults. For ASAM, SA-GD, weight averaging and the rest, use the overload with
    /// <see cref="FlatMinimaImageClassificationTrainer.Options"/>.
    /// </summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="labelColumnName">The label column (a key type: add <c>MapValueToKey</c>).</param>
    /// <param name="imageColumnName">The image column: encoded bytes, <c>MLImage</c> or a known-size pixel vector.</param>
    /// <param name="scoreColumnName">The output probabilities column.</param>
    /// <param name="predictedLabelColumnName">The output predicted key column.</param>
    /// <param name="rho">SAM's neighbourhood radius ρ; 0 turns SAM off.</param>
    /// <param name="epochs">Passes over the training data; null keeps the trainer's default.</param>
    /// <param name="batchSize">Examples per step; null keeps the trainer's default.</param>
    /// <param name="learningRate">Peak learning rate; null keeps the trainer's default.</param>
    /// <param name="validationSet">Optional data evaluated after every epoch.</param>
    public static FlatMinimaImageClassificationTrainer FlatMinimaImageClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label",
        string imageColumnName = "Image",
        string scoreColumnName = "Score",
        string predictedLabelColumnName = "PredictedLabel",
        double rho = SharpnessAwareOptions.DefaultRho,
        int? epochs = null,
        int? batchSize = null,
        double? learningRate = null,
        IDataView? validationSet = null)
    {
        var options = new FlatMinimaImageClassificationTrainer.Options
        {
            LabelColumnName = labelColumnName,
            ImageColumnName = imageColumnName,
            ScoreColumnName = scoreColumnName,
            PredictedLabelColumnName = predictedLabelColumnName,
            SharpnessAware = rho == 0 ? null : SharpnessAwareOptions.Sam(rho),
            ValidationSet = validationSet,
        };
        if (epochs is int e) options.Epochs = e;
        if (batchSize is int b) options.BatchSize = b;
        if (learningRate is double r) options.LearningRate = r;
        return FlatMinimaImageClassification(catalog, options);
    }

    /// <summary>An image classifier trained on TorchSharp with the given options (validated here).</summary>
    public static FlatMinimaImageClassificationTrainer FlatMinimaImageClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        FlatMinimaImageClassificationTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new FlatMinimaImageClassificationTrainer(catalog.GetEnvironment(), options);
    }

    /// <summary>
    /// F2M incremental few-shot learning: <c>Fit(baseData)</c> trains the base session with the flat-region search;
    /// <c>Fit(sessionData, previousModel)</c> adds a session's new classes from a few shots each, without forgetting.
    /// </summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="labelColumnName">The label column (a key with class names: add <c>MapValueToKey</c>).</param>
    /// <param name="imageColumnName">The image column: encoded bytes, <c>MLImage</c> or a known-size pixel vector.</param>
    /// <param name="architecture">The backbone.</param>
    /// <param name="epochs">Base-session passes over the data; null keeps the trainer's default.</param>
    /// <param name="bound">The flat region's bound b; null keeps its default.</param>
    public static FlatMinimaIncrementalFewShotTrainer FlatMinimaIncrementalFewShot(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label",
        string imageColumnName = "Image",
        Torch.Models.ImageClassifierArchitecture architecture = Torch.Models.ImageClassifierArchitecture.ResNet20,
        int? epochs = null,
        double? bound = null)
    {
        var options = new FlatMinimaIncrementalFewShotTrainer.Options
        {
            LabelColumnName = labelColumnName,
            ImageColumnName = imageColumnName,
            Architecture = architecture,
        };
        if (epochs is int e) options.Epochs = e;
        if (bound is double b) options.FlatRegion = options.FlatRegion with { Bound = b };
        return FlatMinimaIncrementalFewShot(catalog, options);
    }

    /// <summary>F2M incremental few-shot learning with the given options (validated here).</summary>
    public static FlatMinimaIncrementalFewShotTrainer FlatMinimaIncrementalFewShot(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        FlatMinimaIncrementalFewShotTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new FlatMinimaIncrementalFewShotTrainer(catalog.GetEnvironment(), options);
    }

    /// <summary>
    /// Adds <paramref name="outputColumnName"/>: the embedding (512 floats for ResNet-18, 2048 for ResNet-50) of each image of
    /// <paramref name="inputColumnName"/> (encoded bytes, <c>MLImage</c> or a pixel vector in 0–1) computed by
    /// <paramref name="backbone"/> (e.g. <c>PretrainedBackbone.ResNet18ImageNet()</c> or <c>PretrainedBackbone.FromPyTorch(…)</c>)
    /// at <paramref name="imageHeight"/> × <paramref name="imageWidth"/> (the backbone's default, 224, when null), in batches of <paramref name="batchSize"/> rows,
    /// to feed ML.NET's own trainers. Rows without a usable image get NaN. The fitted transformer saves its network in the
    /// model zip and loads without the backbone's files.
    /// </summary>
    public static FlatMinimaImageFeaturizerEstimator FlatMinimaFeaturizeImage(this TransformsCatalog catalog, string outputColumnName, string inputColumnName,
        PretrainedBackbone backbone, int? imageHeight = null, int? imageWidth = null, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(backbone);
        return new FlatMinimaImageFeaturizerEstimator(catalog.GetEnvironment(), outputColumnName, inputColumnName, backbone, null, imageHeight, imageWidth, batchSize);
    }

    /// <summary>
    /// Adds <paramref name="outputColumnName"/>: the embedding (the features the classification head reads) of each
    /// image of <paramref name="inputColumnName"/> computed by a trained FlatMinima image classifier's network, with the
    /// model's own input geometry and standardization, in batches of <paramref name="batchSize"/> rows.
    /// </summary>
    public static FlatMinimaImageFeaturizerEstimator FlatMinimaFeaturizeImage(this TransformsCatalog catalog, string outputColumnName, string inputColumnName,
        FlatMinimaImageClassificationTransformer model, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        return new FlatMinimaImageFeaturizerEstimator(catalog.GetEnvironment(), outputColumnName, inputColumnName, null, model.Model, null, null, batchSize);
    }
}
