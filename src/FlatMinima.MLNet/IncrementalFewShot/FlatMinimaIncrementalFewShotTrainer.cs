using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.IncrementalFewShot;

/// <summary>
/// F2M incremental few-shot learning (Shi et al., NeurIPS 2021) as an ML.NET trainer. <c>Fit(baseData)</c> trains the
/// base session with the flat-region search and returns a nearest-prototype classifier over the base classes;
/// <c>Fit(sessionData, previousModel)</c> learns the session's new classes from a few shots each — fine-tuning only the
/// range parameters inside the flat region around the base weights, with the old prototypes fixed — and returns a new
/// transformer over every class seen so far, leaving <c>previousModel</c> untouched. Create it with
/// <c>mlContext.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(…)</c>.
/// </summary>
/// <remarks>
/// Classes are recognised by name: the label column must be a key with key values (<c>MapValueToKey</c>). Score slots
/// and <c>PredictedLabel</c>'s key values list the base classes in key order, then each session's new classes in that
/// session's key order. To evaluate, map the test labels with <see cref="FlatMinimaIncrementalFewShotTransformer.MapLabelToKey"/>,
/// which uses the same order.
/// </remarks>
public sealed partial class FlatMinimaIncrementalFewShotTrainer
    : ImageTrainerBase<FlatMinimaIncrementalFewShotTrainer.Options>,
      ITrainerEstimator<FlatMinimaIncrementalFewShotTransformer, FlatMinimaIncrementalFewShotClassifier>
{
    internal FlatMinimaIncrementalFewShotTrainer(IHostEnvironment env, Options options)
        : base(env, options, nameof(FlatMinimaIncrementalFewShotTrainer))
    {
    }

    /// <summary>No normalization or caching is needed; sessions continue from a previous model (incremental training).</summary>
    public TrainerInfo Info { get; } = new(normalization: false, calibration: false, caching: false, supportValid: false,
        supportIncrementalTrain: true, supportTest: false);

    /// <summary>Trains the base session on <paramref name="input"/> (at least two classes).</summary>
    public FlatMinimaIncrementalFewShotTransformer Fit(IDataView input)
    {
        Host.CheckValue(input, nameof(input));
        var (keyValues, imageInput) = InspectTrainingData(input, "base-session data", "The base-session data is empty: it has no rows.");
        CheckClassNames(keyValues, "base-session data", nameof(input));

        // A pretrained backbone is built (its checkpoint or ONNX file read and checked) before any image is decoded, with a
        // head for every class of the label key; rebuilt below if the base data lacks some of them.
        var backboneNetwork = CreateBackboneNetwork(keyValues.Names.Count);
        try
        {
            return TrainBase(input, keyValues, imageInput, ref backboneNetwork);
        }
        finally
        {
            backboneNetwork?.Dispose();   // not taken over: reading the images failed
        }
    }

    private FlatMinimaIncrementalFewShotTransformer TrainBase(IDataView input, LabelKeyValues keyValues, ImageInput imageInput,
        ref PretrainedImageNetwork? backboneNetwork)
    {
        var o = TrainerOptions;
        using var ch = Host.Start("Base session");
        var data = ReadImages(input, imageInput);
        using var images = data.Images;
        var present = data.Labels.Distinct().OrderBy(k => k).ToArray();
        if (present.Length < 2)
            throw new InvalidOperationException($"Label column '{o.LabelColumnName}': the base-session data has a single class ('{keyValues.Names[(int)present[0]]}'); the base session needs at least two.");
        var slot = present.Select((key, i) => (key, i)).ToDictionary(p => p.key, p => (long)p.i);
        var names = present.Select(k => keyValues.Names[(int)k]).ToArray();
        ch.Info(MessageSensitivity.None, $"Read {data.Labels.Length} base images ({data.Channels}×{data.Height}×{data.Width}) of {names.Length} classes.");

        // With a pretrained backbone the network prepares its input itself: the model's standardization is the identity.
        var (mean, std) = FixedStandardization(data.Channels) ?? ImageTrainingData.ChannelStatistics(images);
        using var x = ImageTrainingData.Normalize(images, mean, std);
        using var y = tensor(data.Labels.Select(k => slot[k]).ToArray());
        var prebuilt = backboneNetwork;
        backboneNetwork = null;   // CreateNetwork takes it over (and disposes it if it fails)
        if (prebuilt is not null && names.Length != keyValues.Names.Count)
        {
            prebuilt.Dispose();   // its head covers classes the base data does not have: CreateNetwork builds one for the present classes
            prebuilt = null;
        }
        var (network, architecture, device) = CreateNetwork(data.Channels, names.Length, data.Height, data.Width, prebuilt);
        var region = o.FlatRegion;
        var model = DisposeOnFailure(() =>
        {
            Prototypes.AsEmbedding(network);
            var range = RangeParameters.Select(network, region.RangeLayerCount, region.RangeParameterNames);
            ch.Info(MessageSensitivity.None, $"Training {architecture} on {device.type}, augmentation {AugmentationText(o.Augmentation)}" + (o.FlatRegionSearch
                ? $" with the flat-region search (b = {region.Bound}, M = {region.NoiseSamples}, std weight {region.StdWeight}, {region.Noise} noise)."
                : " with plain cross-entropy (FlatRegionSearch off).") + (o.FineTuning is null ? "" : $" Fine-tuning: {o.FineTuning}.") +
                $" Range parameters: {string.Join(", ", range.Select(p => p.Name))}.");
            TrainNetwork(TrainingOptions(ch), device, network, new TensorDataset(x, y), null, ch);
            var backbone = new FlatMinimaImageClassifier(network, architecture, data.Channels, data.Height, data.Width, names.Length, mean, std, device,
                AugmentationText(o.Augmentation));
            return FlatMinimaIncrementalFewShotClassifier.FromBaseSession(backbone, images, y, region, o.Session.Normalization, o.Session.DistanceScale, o.ScoringBatchSize);
        }, network);
        return CreateTransformer(model, imageInput, names);
    }

    /// <summary>
    /// Learns the new classes of <paramref name="sessionData"/> (at most <see cref="FlatMinimaIncrementalFewShotTrainer.Options.MaxShotsPerClass"/> rows each)
    /// on top of <paramref name="previousModel"/> (the base session's or an earlier session's transformer, also after
    /// <c>mlContext.Model.Load</c>). Returns a new transformer over all classes seen so far; <paramref name="previousModel"/>
    /// is not changed. Session images (encoded bytes or <c>MLImage</c>) are resized to the base model's input size, as the
    /// base images were (and as scoring does); pixel vectors must have the base model's C×H×W shape. The previous
    /// model decides the network, geometry and flat region; the trainer's <c>Backbone</c> is not used (a trainer created
    /// only for sessions can leave it null, and then needs no backbone file: a set one is checked when the trainer is created).
    /// </summary>
    public FlatMinimaIncrementalFewShotTransformer Fit(IDataView sessionData, FlatMinimaIncrementalFewShotTransformer previousModel)
    {
        Host.CheckValue(sessionData, nameof(sessionData));
        if (previousModel is null)
            throw new ArgumentNullException(nameof(previousModel),
                "A session needs the model it builds on: train the base session first with Fit(baseData) and pass its transformer (or a loaded one) as previousModel.");
        var o = TrainerOptions;
        var previous = previousModel.Model;
        var backbone = previous.Backbone;
        CheckHasRows(sessionData, "The session data is empty: it has no rows; a session needs at least one shot of each new class.");
        var keyValues = ReadLabelKeys(sessionData.Schema, minClasses: 1);
        CheckClassNames(keyValues, "session data", nameof(sessionData));
        var imageColumn = FindImageColumn(sessionData.Schema, "session data", nameof(sessionData));
        var imageInput = previousModel.Input.Matching(imageColumn);

        using var ch = Host.Start($"Session {previous.SessionCount + 1}");
        // The base images were resized to the model's input size (the size set, the backbone's, or the median of the base
        // data), so the session's are too; pixel vectors keep their shape (checked below).
        bool resize = imageInput.Kind != ImageInputKind.PixelVector;
        var data = ReadImages(sessionData, imageInput, "session data", null, resize ? backbone.Height : null, resize ? backbone.Width : null);
        using var read = data.Images;
        CheckGeometry(data, backbone);
        var adapted = ImageBatch.AdaptChannels(read, backbone.Channels);
        using var images = ReferenceEquals(adapted, read) ? read.alias() : adapted;

        var (rows, names) = AssignClasses(data.Labels, keyValues, previousModel.ClassNames);
        int oldCount = previous.ClassCount, newCount = names.Count - oldCount;
        ch.Info(MessageSensitivity.None, $"Session {previous.SessionCount + 1}: {newCount} new class(es) [{string.Join(", ", names.Skip(oldCount))}] from {data.Labels.Length} rows" +
            (previous.ExemplarCount > 0 ? $", plus {previous.ExemplarCount} exemplars of earlier sessions." : "."));

        var learner = previous.Learner.Clone();
        try
        {
            using var labels = tensor(rows);
            var result = learner.AddSession(images, labels, o.Session with
            {
                Normalization = previous.Normalization,
                DistanceScale = previous.DistanceScale,
            }, o.ExemplarsPerClass);
            result.NewPrototypes.Dispose();
            result.RefreshedPrototypes?.Dispose();
            ch.Info(MessageSensitivity.None, $"Session losses per epoch: [{string.Join(", ", result.Losses.Select(l => l.ToString("F4")))}]; " +
                $"largest |θ − θ_base| over the range parameters: {result.MaxDeviation:G4} (bound b/2 = {learner.FlatRegion.Bound / 2:G4}).");
            return CreateTransformer(previous.WithLearner(learner), imageInput, names);
        }
        catch
        {
            learner.Dispose();
            throw;
        }
    }

    /// <summary>The input columns plus <c>Score</c> (vector of K floats) and <c>PredictedLabel</c> (key with the class names); checks the inputs.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Host.CheckValue(inputSchema, nameof(inputSchema));
        var o = TrainerOptions;
        return ImageTrainingData.OutputSchema(inputSchema, o.LabelColumnName, o.ImageColumnName, o.ScoreColumnName, o.PredictedLabelColumnName, classNamesAsText: true);
    }

    private FlatMinimaIncrementalFewShotTransformer CreateTransformer(FlatMinimaIncrementalFewShotClassifier model, ImageInput input, IReadOnlyList<string> names)
    {
        var o = TrainerOptions;
        return new FlatMinimaIncrementalFewShotTransformer(Host, model, input, o.ImageColumnName, o.LabelColumnName, o.ScoreColumnName,
            o.PredictedLabelColumnName, LabelKeyValues.FromNames(names), o.ScoringBatchSize, o.Device, o.CudaDeviceIndex);
    }

    // Sessions recognise classes by name: the label key needs unique key values.
    private void CheckClassNames(LabelKeyValues keyValues, string what, string paramName)
    {
        var name = TrainerOptions.LabelColumnName;
        if (!keyValues.HasValues)
            throw new ArgumentOutOfRangeException(paramName,
                $"Label column '{name}' of the {what} is a key without key values (class names); incremental sessions recognise classes by name. " +
                $"Map the label with mlContext.Transforms.Conversion.MapValueToKey(\"{name}\").");
        if (keyValues.Names.Distinct().Count() != keyValues.Names.Count)
            throw new ArgumentOutOfRangeException(paramName, $"Label column '{name}' of the {what} has repeated class names among its key values; class names must be unique.");
    }

    private void CheckGeometry(ImageExamples data, FlatMinimaImageClassifier backbone)
    {
        var column = TrainerOptions.ImageColumnName;
        if (data.Height != backbone.Height || data.Width != backbone.Width)
            throw new InvalidOperationException(
                $"Image column '{column}': the session images are {data.Height}×{data.Width} pixels but the base model takes {backbone.Height}×{backbone.Width}. " +
                "Resize them to the base size (mlContext.Transforms.ResizeImages) before the session.");
        if (data.Channels > backbone.Channels)
            throw new InvalidOperationException(
                $"Image column '{column}': the session images have {data.Channels} (color) channels but the base model takes {backbone.Channels} (grayscale). " +
                "Convert them to grayscale before the session (mlContext.Transforms.ConvertToGrayscale), as the base data was.");
    }

    // Global class index of every row and the class names after the session (old names, then new ones in key order).
    private (long[] Rows, IReadOnlyList<string> Names) AssignClasses(long[] keys, LabelKeyValues keyValues, IReadOnlyList<string> known)
    {
        var o = TrainerOptions;
        var names = known.ToList();
        var index = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (long)p.i);
        foreach (var key in keys.Distinct().OrderBy(k => k))
        {
            var name = keyValues.Names[(int)key];
            if (index.ContainsKey(name))
            {
                if (o.RepeatedClasses == RepeatedClassPolicy.Reject)
                    throw new InvalidOperationException(
                        $"Label column '{o.LabelColumnName}', row {Array.IndexOf(keys, key)}: class '{name}' was already learned (in the base session or an earlier one). " +
                        "Remove its rows from the session data, or set RepeatedClasses = Merge to use them as extra examples of that class.");
                continue;
            }
            int shots = keys.Count(k => k == key);
            if (shots > o.MaxShotsPerClass)
                throw new InvalidOperationException(
                    $"Label column '{o.LabelColumnName}': new class '{name}' has {shots} rows in the session data, more than MaxShotsPerClass = {o.MaxShotsPerClass}. " +
                    "Give fewer shots or raise MaxShotsPerClass.");
            index[name] = names.Count;
            names.Add(name);
        }
        if (names.Count == known.Count)
            throw new InvalidOperationException($"Label column '{o.LabelColumnName}': the session data has no new class; every class in it was already learned.");
        return (keys.Select(k => index[keyValues.Names[(int)k]]).ToArray(), names);
    }
}
