using System;
using System.IO;
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

    private protected override string? OnnxUnsupportedReason() =>
        FlatMinima.Torch.Export.OnnxNetworkEmitter.IsSupported(Model.Backbone.Network, out string reason) ? null : reason;

    // Standardization → the backbone's embedding → −ω·‖f − p_k‖² against the prototypes (softmax follows in the caller).
    private protected override string EmitOnnxLogits(FlatMinima.Torch.Export.IOnnxGraphSink sink, string image, string prefix)
    {
        var backbone = Model.Backbone;
        var x = new FlatMinima.Torch.Export.OnnxGraphWriter(sink, prefix).Standardize(image, backbone.Mean, backbone.Std);
        var embedding = FlatMinima.Torch.Export.OnnxNetworkEmitter.EmitEmbedding(backbone.Network, sink, x, backbone.Channels, backbone.Height, backbone.Width, prefix);
        return FlatMinima.Torch.Export.OnnxPrototypeEmitter.EmitLogits(sink, embedding, Model.Prototypes, Model.Normalization, Model.DistanceScale, prefix);
    }

    /// <summary>The format that added the SHA-256 of the settings and of the four binary entries to 0x00010001.</summary>
    internal const uint FormatWithChecksums = 0x00010002;

    /// <summary>The format written: 0x00010003 adds the backbone's augmentation description (<see cref="FlatMinimaImageClassifier.Augmentation"/>) to 0x00010002.</summary>
    internal const uint FormatWithAugmentation = 0x00010003;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "FMF2MXFM",
        verWrittenCur: FormatWithAugmentation, // 0x00010001: initial format; 0x00010002: SHA-256 of the settings and of each binary entry; 0x00010003: augmentation
        verReadableCur: FormatWithAugmentation,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(FlatMinimaIncrementalFewShotTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        // Format 0x00010003: column names and input; backbone header (architecture, geometry, base classes, normalization);
        // class count; device, scoring batch size, class names (text key values; since 0x00010002 length-prefixed with their SHA-256); base class count, session count,
        // prototype normalisation, distance scale; the base session's augmentation description (string or null, since
        // 0x00010003); SHA-256 of these settings (HeaderDigest) and of the four entries below; zip entries: network weights, flat
        // region (b, names, θ_base), prototypes, exemplars. (0x00010001: the same without the checksums.)
        var entries = new[]
        {
            Model.Backbone.WeightsBytes(),
            ToBytes(w => Model.FlatRegion.Save(w)),
            ToBytes(w => TensorIO.Write(w, Model.Prototypes)),
            ToBytes(w => Model.Learner.Exemplars.Save(w)),
        };
        SaveColumns(ctx);
        Model.Backbone.SaveHeader(ctx);
        ctx.Writer.Write(ClassCount);
        SaveScoringSettings(ctx);
        ctx.Writer.Write(Model.BaseClassCount);
        ctx.Writer.Write(Model.SessionCount);
        ctx.Writer.Write((int)Model.Normalization);
        ctx.Writer.Write(Model.DistanceScale);
        Model.Backbone.SaveAugmentation(ctx);
        var (columns, scoring) = SavedSettings();
        SaveChecksums(ctx, HeaderDigest(columns, Model.Backbone.Header(), scoring,
            Extra(ClassCount, Model.BaseClassCount, Model.SessionCount, Model.Normalization, Model.DistanceScale)), entries);
        ctx.SaveBinaryStream(FlatMinimaImageClassifier.WeightsEntry, w => w.Write(entries[0]));
        ctx.SaveBinaryStream(RegionEntry, w => w.Write(entries[1]));
        ctx.SaveBinaryStream(PrototypesEntry, w => w.Write(entries[2]));
        ctx.SaveBinaryStream(ExemplarsEntry, w => w.Write(entries[3]));

        static byte[] ToBytes(Action<BinaryWriter> write)
        {
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) write(writer);
            return stream.ToArray();
        }
    }

    private static FlatMinimaIncrementalFewShotTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        env.CheckValue(ctx, nameof(ctx));
        TorchNativeLibrary.EnsureLoaded();
        return ModelReading.Run(ctx, reading => Load(env, ctx, reading));
    }

    private static FlatMinimaIncrementalFewShotTransformer Load(IHostEnvironment env, ModelLoadContext ctx, ModelReading reading)
    {
        ctx.CheckAtModel(GetVersionInfo());
        var reader = reading.Reader;
        var columns = LoadColumns(reading);
        var header = FlatMinimaImageClassifier.LoadHeader(reading, columns.Input);
        int classes = reader.ReadInt32();
        reading.Check(classes >= header.Classes && classes <= ModelLimits.MaxClassCount,
            $"the model declares {classes} classes for {header.Classes} base classes; {header.Classes} to {ModelLimits.MaxClassCount} are accepted.");
        var scoring = LoadScoringSettings(env, reading, classes, ctx.Header.ModelVerWritten >= FormatWithChecksums);
        int baseClasses = reader.ReadInt32(), sessions = reader.ReadInt32();
        int rawNormalization = reader.ReadInt32();
        var normalization = (PrototypeNormalization)rawNormalization;
        double distanceScale = reader.ReadDouble();
        header = FlatMinimaImageClassifier.LoadAugmentation(reading, header, ctx.Header.ModelVerWritten >= FormatWithAugmentation);
        reading.Check(baseClasses == header.Classes, $"the base class count {baseClasses} differs from the network's {header.Classes}.");
        reading.Check(sessions >= 0 && sessions <= classes, $"the session count {sessions} is outside 0 to {classes}.");
        reading.Check(Enum.IsDefined(normalization), $"the prototype normalisation {rawNormalization} is not one of {string.Join(", ", Enum.GetNames<PrototypeNormalization>())}.");
        reading.Check(distanceScale > 0 && double.IsFinite(distanceScale), $"the distance scale {distanceScale} is not a finite number > 0.");
        var checksums = ctx.Header.ModelVerWritten >= FormatWithChecksums
            ? LoadChecksums(reading, HeaderDigest(columns, header, scoring, Extra(classes, baseClasses, sessions, normalization, distanceScale)), 4)
            : new byte[]?[4];

        var device = FlatMinimaModelLoading.ResolveLoadDevice(scoring.CudaIndex);
        var backbone = header.LoadNetwork(reading, checksums[0], device);
        FlatRegionBounds? region = null;
        Tensor? prototypes = null;
        ExemplarMemory? exemplars = null;
        FlatMinimaIncrementalFewShotClassifier model;
        try
        {
            using (var r = new BinaryReader(reading.ReadEntry(RegionEntry, checksums[1])))
            {
                region = FlatRegionBounds.Load(r, device);
                region.ParametersOf(backbone.Network);
            }
            using (var r = new BinaryReader(reading.ReadEntry(PrototypesEntry, checksums[2])))
            {
                var cpu = TensorIO.Read(r, requireFinite: true);
                prototypes = cpu.to(device).DetachFromDisposeScope();
                if (!ReferenceEquals(cpu, prototypes)) cpu.Dispose();
                reading.Check(prototypes.dtype == ScalarType.Float32 && prototypes.dim() == 2 && prototypes.shape[0] == classes,
                    $"the prototypes have shape [{string.Join(", ", prototypes.shape)}]; expected [{classes}, D].");
            }
            using (var r = new BinaryReader(reading.ReadEntry(ExemplarsEntry, checksums[3])))
            {
                exemplars = ExemplarMemory.Load(r);
                reading.Check(exemplars.Inputs.dim() == 4 && exemplars.Inputs.shape.Skip(1).SequenceEqual(new long[] { header.Channels, header.Height, header.Width }),
                    $"the exemplars have shape [{string.Join(", ", exemplars.Inputs.shape)}]; expected [E, {header.Channels}, {header.Height}, {header.Width}].");
                if (exemplars.Count > 0)
                {
                    using var max = exemplars.Labels.max();
                    reading.Check(max.item<long>() < classes, $"an exemplar has class index {max.item<long>()} but the model has {classes} classes.");
                }
            }
            reading.BackToHeader();
            model = FlatMinimaIncrementalFewShotClassifier.FromParts(backbone, region, prototypes, exemplars, baseClasses, sessions, normalization, distanceScale);
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
    }

    // The F2M settings covered by the header digest.
    private static Action<BinaryWriter> Extra(int classes, int baseClasses, int sessions, PrototypeNormalization normalization, double distanceScale) => w =>
    {
        w.Write(classes);
        w.Write(baseClasses);
        w.Write(sessions);
        w.Write((int)normalization);
        w.Write(distanceScale);
    };

    private sealed class ClassNameRow
    {
        public string Name { get; set; } = "";
    }
}
