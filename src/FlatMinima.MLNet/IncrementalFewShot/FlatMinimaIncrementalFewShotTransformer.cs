using System;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(FlatMinimaIncrementalFewShotTransformer), null, typeof(SignatureLoadModel),
    "FlatMinima Incremental Few-Shot", FlatMinimaIncrementalFewShotTransformer.LoaderSignature)]

namespace FlatMinima.MLNet.IncrementalFewShot;

/// <summary>
/// Scores images with an F2M <see cref="FlatMinimaIncrementalFewShotClassifier"/>: <c>Score</c> has one slot per class seen so far
/// (base classes, then each session's new classes; the class names are the slot names) and <c>PredictedLabel</c> is a key
/// whose values are those class names. Pass it as <c>previousModel</c> to the trainer's session <c>Fit</c> to learn more
/// classes. Saves and loads with <c>mlContext.Model.Save</c>/<c>Load</c>, keeping everything later sessions need (θ_base,
/// the bound, prototypes, exemplars).
/// </summary>
public sealed class FlatMinimaIncrementalFewShotTransformer : ImageScoringTransformer<FlatMinimaIncrementalFewShotClassifier>
{
    internal const string LoaderSignature = "FlatMinimaF2MXf";
    private const string RegionEntry = "FlatRegion.bin";
    private const string PrototypesEntry = "Prototypes.bin";
    private const string ExemplarsEntry = "Exemplars.bin";

    internal FlatMinimaIncrementalFewShotTransformer(IHostEnvironment env, FlatMinimaIncrementalFewShotClassifier model, ImageInput input,
        string imageColumn, string labelColumn, string scoreColumn, string predictedLabelColumn, LabelKeyValues keyValues,
        int scoringBatchSize, DeviceKind device, int cudaIndex)
        : base(env, nameof(FlatMinimaIncrementalFewShotTransformer), input, imageColumn, labelColumn, scoreColumn, predictedLabelColumn,
            keyValues, scoringBatchSize, device, cudaIndex)
    {
        Model = model;
    }

    /// <summary>The prototype classifier.</summary>
    public override FlatMinimaIncrementalFewShotClassifier Model { get; }

    /// <inheritdoc />
    public override int ClassCount => Model.ClassCount;

    /// <summary>
    /// A <c>MapValueToKey</c> estimator whose keys follow this model's class order (<see cref="ImageScoringTransformer{TModel}.ClassNames"/>),
    /// so that a text label column lines up with the score slots — the shape <c>MulticlassClassification.Evaluate</c> needs
    /// after every session. Labels of classes the model has not seen become missing keys; filter them out first.
    /// </summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="outputColumnName">The key column to create (usually the label column name).</param>
    /// <param name="inputColumnName">The text label column; null uses <paramref name="outputColumnName"/>.</param>
    public ValueToKeyMappingEstimator MapLabelToKey(MLContext mlContext, string outputColumnName, string? inputColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var keyData = mlContext.Data.LoadFromEnumerable(ClassNames.Select(n => new ClassNameRow { Name = n }));
        return mlContext.Transforms.Conversion.MapValueToKey(outputColumnName, inputColumnName ?? outputColumnName, keyData: keyData);
    }

    /// <summary>Releases the network, prototypes and exemplars.</summary>
    public override void Dispose() => Model.Dispose();

    private protected override (int Channels, int Height, int Width) Geometry => (Model.Backbone.Channels, Model.Backbone.Height, Model.Backbone.Width);

    private protected override Tensor PredictProbabilities(Tensor rawBatch) => Model.PredictProbabilities(rawBatch);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "FMF2MXFM",
        verWrittenCur: 0x00010001, // initial format
        verReadableCur: 0x00010001,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(FlatMinimaIncrementalFewShotTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        // Format 0x00010001: column names and input; backbone header (architecture, geometry, base classes, normalization);
        // device, scoring batch size, class names (text key values); base class count, session count, prototype
        // normalisation, distance scale; zip entries: network weights, flat region (b, names, θ_base), prototypes, exemplars.
        SaveColumns(ctx);
        Model.Backbone.SaveHeader(ctx);
        ctx.Writer.Write(ClassCount);
        SaveScoringSettings(ctx);
        ctx.Writer.Write(Model.BaseClassCount);
        ctx.Writer.Write(Model.SessionCount);
        ctx.Writer.Write((int)Model.Normalization);
        ctx.Writer.Write(Model.DistanceScale);
        Model.Backbone.SaveWeights(ctx);
        ctx.SaveBinaryStream(RegionEntry, w => Model.FlatRegion.Save(w));
        ctx.SaveBinaryStream(PrototypesEntry, w => TensorIO.Write(w, Model.Prototypes));
        ctx.SaveBinaryStream(ExemplarsEntry, w => Model.Learner.Exemplars.Save(w));
    }

    private static FlatMinimaIncrementalFewShotTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        env.CheckValue(ctx, nameof(ctx));
        ctx.CheckAtModel(GetVersionInfo());
        var columns = LoadColumns(ctx);
        var header = FlatMinimaImageClassifier.LoadHeader(env, ctx);
        int classes = ctx.Reader.ReadInt32();
        var scoring = LoadScoringSettings(env, ctx, classes);
        int baseClasses = ctx.Reader.ReadInt32(), sessions = ctx.Reader.ReadInt32();
        var normalization = (PrototypeNormalization)ctx.Reader.ReadInt32();
        double distanceScale = ctx.Reader.ReadDouble();
        env.CheckDecode(baseClasses == header.Classes && classes >= baseClasses && Enum.IsDefined(normalization) && distanceScale > 0);

        var device = Devices.Resolve(scoring.Device, scoring.CudaIndex);
        var backbone = header.LoadNetwork(env, ctx, device);
        FlatRegionBounds? region = null;
        Tensor? prototypes = null;
        ExemplarMemory? exemplars = null;
        FlatMinimaIncrementalFewShotClassifier model;
        try
        {
            Load(RegionEntry, r => region = FlatRegionBounds.Load(r, device));
            Load(PrototypesEntry, r => prototypes = TensorIO.Read(r).to(device).DetachFromDisposeScope());
            Load(ExemplarsEntry, r => exemplars = ExemplarMemory.Load(r));
            env.CheckDecode(prototypes!.shape[0] == classes);
            model = FlatMinimaIncrementalFewShotClassifier.FromParts(backbone, region!, prototypes, exemplars!, baseClasses, sessions, normalization, distanceScale);
        }
        catch
        {
            backbone.Dispose();
            region?.Dispose();
            prototypes?.Dispose();
            exemplars?.Dispose();
            throw;
        }
        return new FlatMinimaIncrementalFewShotTransformer(env, model, columns.Input, columns.Image, columns.Label, columns.Score, columns.Predicted,
            scoring.KeyValues, scoring.BatchSize, scoring.Device, scoring.CudaIndex);

        void Load(string entry, Action<System.IO.BinaryReader> read)
        {
            if (!ctx.TryLoadBinaryStream(entry, read))
                throw env.ExceptDecode($"The model zip has no '{entry}' entry; it is not a complete FlatMinima incremental few-shot model.");
        }
    }

    private sealed class ClassNameRow
    {
        public string Name { get; set; } = "";
    }
}
