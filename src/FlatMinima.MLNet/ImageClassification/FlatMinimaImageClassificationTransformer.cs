using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Data.IO;
using Microsoft.ML.Internal.Utilities;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(FlatMinimaImageClassificationTransformer), null, typeof(SignatureLoadModel),
    "FlatMinima Image Classification", FlatMinimaImageClassificationTransformer.LoaderSignature)]

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>
/// Scores images with a trained <see cref="FlatMinimaImageClassifier"/>: adds a <c>Score</c> column (softmax
/// probabilities, one slot per class, with the class names as slot names) and a <c>PredictedLabel</c> key column with
/// the label's values. <c>Transform</c> scores in batches of <c>ScoringBatchSize</c> rows, lazily; the
/// row-to-row mapper (used by <c>PredictionEngine</c>) scores one row at a time. Saves and loads with
/// <c>mlContext.Model.Save</c>/<c>Load</c>, weights inside the model zip.
/// </summary>
public sealed class FlatMinimaImageClassificationTransformer : ImageScoringTransformer<FlatMinimaImageClassifier>
{
    internal const string LoaderSignature = "FlatMinimaImgClsXf";

    internal FlatMinimaImageClassificationTransformer(IHostEnvironment env, FlatMinimaImageClassifier model, ImageInput input,
        string imageColumn, string labelColumn, string scoreColumn, string predictedLabelColumn, LabelKeyValues keyValues,
        int scoringBatchSize, DeviceKind device, int cudaIndex)
        : base(env, nameof(FlatMinimaImageClassificationTransformer), input, imageColumn, labelColumn, scoreColumn, predictedLabelColumn,
            keyValues, scoringBatchSize, device, cudaIndex)
    {
        Model = model;
    }

    /// <summary>The trained classifier.</summary>
    public override FlatMinimaImageClassifier Model { get; }

    /// <inheritdoc />
    public override int ClassCount => Model.ClassCount;

    /// <summary>Releases the network.</summary>
    public override void Dispose() => Model.Dispose();

    private protected override (int Channels, int Height, int Width) Geometry => (Model.Channels, Model.Height, Model.Width);

    private protected override Tensor PredictProbabilities(Tensor rawBatch) => Model.PredictProbabilities(rawBatch);

    private protected override string? OnnxUnsupportedReason() =>
        FlatMinima.Torch.Export.OnnxNetworkEmitter.IsSupported(Model.Network, out string reason) ? null : reason;

    private protected override string EmitOnnxLogits(FlatMinima.Torch.Export.IOnnxGraphSink sink, string image, string prefix)
    {
        var x = new FlatMinima.Torch.Export.OnnxGraphWriter(sink, prefix).Standardize(image, Model.Mean, Model.Std);
        return FlatMinima.Torch.Export.OnnxNetworkEmitter.EmitLogits(Model.Network, sink, x, Model.Channels, Model.Height, Model.Width, prefix);
    }

    /// <summary>The format that added the SHA-256 of the settings and of the weights entry to 0x00010001.</summary>
    internal const uint FormatWithChecksums = 0x00010002;

    /// <summary>The format written: 0x00010003 adds the augmentation description (<see cref="FlatMinimaImageClassifier.Augmentation"/>) to 0x00010002.</summary>
    internal const uint FormatWithAugmentation = 0x00010003;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "FMIMGCLS",
        verWrittenCur: FormatWithAugmentation, // 0x00010001: initial format; 0x00010002: SHA-256 of the settings and the weights entry; 0x00010003: augmentation
        verReadableCur: FormatWithAugmentation,
        verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(FlatMinimaImageClassificationTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        // Format 0x00010003: column names; input kind and vector shape; architecture; geometry, classes, normalization;
        // device; scoring batch size; label key values (since 0x00010002: length, SHA-256, then BinarySaver type + value, optional);
        // augmentation description (string or null, since 0x00010003); SHA-256 of these settings
        // (HeaderDigest) and of the weights entry;
        // weights as a zip entry. (0x00010001: the same without the checksum.)
        var weights = Model.WeightsBytes();
        SaveColumns(ctx);
        Model.SaveHeader(ctx);
        SaveScoringSettings(ctx);
        Model.SaveAugmentation(ctx);
        var (columns, scoring) = SavedSettings();
        SaveChecksums(ctx, HeaderDigest(columns, Model.Header(), scoring), weights);
        ctx.SaveBinaryStream(FlatMinimaImageClassifier.WeightsEntry, w => w.Write(weights));
    }

    private static FlatMinimaImageClassificationTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        Contracts.CheckValue(env, nameof(env));
        env.CheckValue(ctx, nameof(ctx));
        TorchNativeLibrary.EnsureLoaded();
        return ModelReading.Run(ctx, reading =>
        {
            ctx.CheckAtModel(GetVersionInfo());
            var columns = LoadColumns(reading);
            var header = FlatMinimaImageClassifier.LoadHeader(reading, columns.Input);
            var scoring = LoadScoringSettings(env, reading, header.Classes, ctx.Header.ModelVerWritten >= FormatWithChecksums);
            header = FlatMinimaImageClassifier.LoadAugmentation(reading, header, ctx.Header.ModelVerWritten >= FormatWithAugmentation);
            var checksum = ctx.Header.ModelVerWritten >= FormatWithChecksums ? LoadChecksums(reading, HeaderDigest(columns, header, scoring), 1)[0] : null;
            var device = FlatMinimaModelLoading.ResolveLoadDevice(scoring.CudaIndex);
            var model = header.LoadNetwork(reading, checksum, device);
            return new FlatMinimaImageClassificationTransformer(env, model, columns.Input, columns.Image, columns.Label, columns.Score, columns.Predicted,
                scoring.KeyValues, scoring.BatchSize, scoring.Device, scoring.CudaIndex);
        });
    }
}
