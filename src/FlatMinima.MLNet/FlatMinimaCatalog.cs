using System;
using FlatMinima.MLNet.ImageClassification;
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
}
