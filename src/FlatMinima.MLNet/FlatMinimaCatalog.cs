using System;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.MLNet;

/// <summary>Catalog extensions that create FlatMinima trainers.</summary>
public static class FlatMinimaCatalog
{
    /// <summary>
    /// An image classifier trained on TorchSharp with sharpness-aware minimization (SAM by default).
    /// </summary>
    /// <param name="catalog">The multiclass classification trainers catalog.</param>
    /// <param name="labelColumnName">The label column (a key type: add <c>MapValueToKey</c>).</param>
    /// <param name="imageColumnName">The image column: encoded bytes, <c>MLImage</c> or a known-size pixel vector.</param>
    /// <param name="scoreColumnName">The output probabilities column.</param>
    /// <param name="predictedLabelColumnName">The output predicted key column.</param>
    /// <param name="sharpnessAware">None, Sam, Asam or SaGd.</param>
    /// <param name="rho">The neighbourhood radius ρ; null uses the method's default.</param>
    /// <param name="epochs">Passes over the training data.</param>
    /// <param name="batchSize">Examples per step.</param>
    /// <param name="learningRate">Peak learning rate.</param>
    /// <param name="validationSet">Optional data evaluated after every epoch.</param>
    public static FlatMinimaImageClassificationTrainer FlatMinimaImageClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label",
        string imageColumnName = "Image",
        string scoreColumnName = "Score",
        string predictedLabelColumnName = "PredictedLabel",
        SharpnessAwareMethod sharpnessAware = SharpnessAwareMethod.Sam,
        double? rho = null,
        int epochs = 10,
        int batchSize = 64,
        double learningRate = 0.05,
        IDataView? validationSet = null)
        => FlatMinimaImageClassification(catalog, new FlatMinimaImageClassificationTrainer.Options
        {
            LabelColumnName = labelColumnName,
            ImageColumnName = imageColumnName,
            ScoreColumnName = scoreColumnName,
            PredictedLabelColumnName = predictedLabelColumnName,
            SharpnessAware = sharpnessAware,
            Rho = rho,
            Epochs = epochs,
            BatchSize = batchSize,
            LearningRate = learningRate,
            ValidationSet = validationSet,
        });

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
    /// <param name="epochs">Base-session passes over the data.</param>
    /// <param name="bound">The flat region's bound b.</param>
    public static FlatMinimaIncrementalFewShotTrainer FlatMinimaIncrementalFewShot(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label",
        string imageColumnName = "Image",
        Torch.Models.ImageClassifierArchitecture architecture = Torch.Models.ImageClassifierArchitecture.ResNet20,
        int epochs = 10,
        double bound = 0.01)
        => FlatMinimaIncrementalFewShot(catalog, new FlatMinimaIncrementalFewShotTrainer.Options
        {
            LabelColumnName = labelColumnName,
            ImageColumnName = imageColumnName,
            Architecture = architecture,
            Epochs = epochs,
            Bound = bound,
        });

    /// <summary>F2M incremental few-shot learning with the given options (validated here).</summary>
    public static FlatMinimaIncrementalFewShotTrainer FlatMinimaIncrementalFewShot(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        FlatMinimaIncrementalFewShotTrainer.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new FlatMinimaIncrementalFewShotTrainer(catalog.GetEnvironment(), options);
    }
}
