using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.MixedPrecision;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>
/// What the FlatMinima image trainers share (the shape of ML.NET's TorchSharp trainers' base): the host and validated
/// options, reading and checking the training data (rows, label key, image column, decoded images), creating the
/// network on its device, progress reporting to the callback and the log, and disposing the network when training fails.
/// Each family adds only its own logic.
/// </summary>
/// <typeparam name="TOptions">The family's options.</typeparam>
public abstract class ImageTrainerBase<TOptions>
    where TOptions : ImageTrainerOptions
{
    private protected ImageTrainerBase(IHostEnvironment env, TOptions options, string name)
    {
        Contracts.CheckValue(env, nameof(env));
        Host = env.Register(name);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        TrainerOptions = (TOptions)options.Snapshot();
        Backbone?.CheckFiles();
    }

    /// <summary>The pretrained backbone the network is built on (<see cref="ImageTrainerOptions.Backbone"/>), or null to build <see cref="ImageTrainerOptions.Architecture"/> (or the custom network) from random weights.</summary>
    private protected PretrainedBackbone? Backbone => TrainerOptions.Backbone;

    /// <summary>
    /// The input standardization the model uses whatever the data: with a <see cref="Backbone"/> none (mean 0, standard
    /// deviation 1 for each of the data's <paramref name="channels"/>: the backbone's own preparation is part of the network); null to use the training data's
    /// per-channel mean and standard deviation.
    /// </summary>
    private protected (float[] Mean, float[] Std)? FixedStandardization(int channels) =>
        Backbone is null ? null : (new float[channels], Enumerable.Repeat(1f, channels).ToArray());

    private protected IHost Host { get; }

    private protected TOptions TrainerOptions { get; }

    /// <summary>
    /// Checks that <paramref name="data"/> has rows (else <paramref name="emptyMessage"/>), a key label of at least
    /// <paramref name="minClasses"/> classes and the image column, naming <paramref name="what"/> ("training data",
    /// "base-session data") in errors; returns the label's key values and the image input.
    /// </summary>
    private protected (LabelKeyValues KeyValues, ImageInput Input) InspectTrainingData(IDataView data, string what, string emptyMessage, int minClasses = 2)
    {
        TorchNativeLibrary.EnsureLoaded();
        CheckHasRows(data, emptyMessage);
        var keyValues = ReadLabelKeys(data.Schema, minClasses);
        var input = ImageInput.FromColumn(FindImageColumn(data.Schema, what), TrainerOptions.ImageChannels, TrainerOptions.ImageHeight, TrainerOptions.ImageWidth);
        return (keyValues, input);
    }

    /// <summary>The label column's key values, after checking it is a key of at least <paramref name="minClasses"/> classes.</summary>
    private protected LabelKeyValues ReadLabelKeys(DataViewSchema schema, int minClasses)
    {
        var (labelColumn, classCount) = ImageTrainingData.CheckLabel(schema, TrainerOptions.LabelColumnName, minClasses);
        return LabelKeyValues.FromColumn(labelColumn, classCount);
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> with <paramref name="message"/> when <paramref name="data"/> has no rows.</summary>
    private protected static void CheckHasRows(IDataView data, string message)
    {
        using var probe = data.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        if (!probe.MoveNext()) throw new InvalidOperationException(message);
    }

    /// <summary>The image column of <paramref name="schema"/>, or an error naming it and <paramref name="what"/>.</summary>
    private protected DataViewSchema.Column FindImageColumn(DataViewSchema schema, string what, string paramName = "input") =>
        schema.GetColumnOrNull(TrainerOptions.ImageColumnName)
        ?? throw new ArgumentOutOfRangeException(paramName, $"Image column '{TrainerOptions.ImageColumnName}' was not found in the {what} (set ImageColumnName).");

    /// <summary>Decodes the images and labels of <paramref name="data"/> at the options' geometry and <see cref="ImageTrainerOptions.BadImagePolicy"/>.</summary>
    private protected ImageExamples ReadImages(IDataView data, ImageInput input, string what = "training data") =>
        ReadImages(data, input, what, TrainerOptions.ImageChannels, TrainerOptions.ImageHeight, TrainerOptions.ImageWidth);

    /// <summary>
    /// Decodes the images and labels of <paramref name="data"/> (<paramref name="what"/>, in the log) at the given geometry
    /// under <see cref="ImageTrainerOptions.BadImagePolicy"/>; a size chosen from a sample of rows is logged, skipped rows
    /// are logged as a warning.
    /// </summary>
    private protected ImageExamples ReadImages(IDataView data, ImageInput input, string what, int? channels, int? height, int? width, SampledGeometry? sample = null)
    {
        var o = TrainerOptions;
        var examples = ImageDataReader.Read(data, input, o.ImageColumnName, o.LabelColumnName, channels, height, width, badImages: o.BadImagePolicy, sample: sample);
        LogReading(examples.Geometry, examples.SkippedRows, examples.SkipReasons, examples.Labels.Length, what);
        return examples;
    }

    private void LogReading(SampledGeometry? geometry, long skipped, IReadOnlyList<string> reasons, long kept, string what)
    {
        if (geometry is not null)
        {
            using var ch = Host.Start("Reading images");
            ch.Info(MessageSensitivity.None, geometry.Describe());
        }
        if (skipped > 0)
        {
            using var ch = Host.Start("Reading images");
            ch.Warning(MessageSensitivity.None,
                $"BadImagePolicy.Skip: left out {skipped} of {skipped + kept} rows of the {what} whose image could not be used. " +
                string.Join(" ", reasons) + (skipped > reasons.Count ? " …" : ""));
        }
    }

    /// <summary>
    /// Reads the training images of <paramref name="data"/> held in memory or streamed as <paramref name="loading"/> says
    /// (<see cref="ImageDataLoadingRule"/>; the choice and its estimate are logged): the geometry is the options' or, when
    /// <c>ImageHeight</c>/<c>ImageWidth</c> are not set, chosen from a sample of rows (one extra cursor that also counts
    /// the rows; with the size given and <see cref="ImageDataLoading.Automatic"/> on encoded bytes, the rows are counted
    /// by a cursor that reads no column). A size taken from the data must keep the decoded set within
    /// <see cref="AutomaticGeometryBudget.Bytes"/> unless <see cref="ImageDataLoading.Streaming"/> was asked for, so
    /// <see cref="ImageDataLoading.Automatic"/> streams only at a size the user set.
    /// </summary>
    private protected TrainingImages ReadTrainingImages(IDataView data, ImageInput input, ImageDataLoading loading, string what = "training data")
    {
        var o = TrainerOptions;
        bool vector = input.Kind == ImageInputKind.PixelVector;
        if (loading == ImageDataLoading.Streaming && input.Kind != ImageInputKind.EncodedBytes)
            throw new ArgumentOutOfRangeException("DataLoading",
                $"DataLoading is Streaming, but image column '{o.ImageColumnName}' holds {(vector ? "pixel vectors" : "decoded images (MLImage)")}: streaming keeps each row's " +
                "encoded bytes and decodes them per batch, so it needs an encoded-bytes column (load the files with LoadRawImageBytes instead of LoadImages/ExtractPixels), " +
                "or use DataLoading = InMemory.");
        var sample = vector || o.ImageHeight is not null ? null
            : ImageGeometrySample.Take(data, input, o.ImageColumnName, chooseChannels: o.ImageChannels is null);
        // A size taken from the data must fit the in-memory budget unless streaming was asked for: a median photo size
        // (say 3000×4000) is rarely the size to train at, and the message says to set one.
        if (sample is { Height: > 0 })
            AutomaticGeometryBudget.Check(sample.Rows, o.ImageChannels ?? sample.Channels ?? 3, sample.Height, sample.Width, sample.UsableRows, o.ImageColumnName,
                inMemory: loading != ImageDataLoading.Streaming);
        bool stream = false;
        if (input.Kind == ImageInputKind.EncodedBytes && loading != ImageDataLoading.InMemory)
        {
            long rows = sample?.Rows ?? (loading == ImageDataLoading.Automatic ? CountRows(data) : 0);
            int channels = o.ImageChannels ?? sample?.Channels ?? 3;
            int height = o.ImageHeight ?? sample!.Height, width = o.ImageWidth ?? sample!.Width;
            stream = ImageDataLoadingRule.Streams(loading, input.Kind, rows, channels, height, width);
            using var ch = Host.Start("Reading images");
            ch.Info(MessageSensitivity.None, loading == ImageDataLoading.Streaming
                ? $"DataLoading Streaming: the {what} is decoded per batch " + (o.LoaderWorkers == 0 ? "on the training thread (LoaderWorkers 0)." : $"on {o.LoaderWorkers} loader thread(s), {o.PrefetchBatches} batches ahead.")
                : $"DataLoading Automatic: {rows:N0} rows × {channels}×{height}×{width} floats = {rows * channels * (long)height * width * 4 / (1024.0 * 1024 * 1024):F2} GiB decoded; " +
                  (stream ? $"more than {ImageDataLoadingRule.InMemoryLimitBytes >> 30} GiB, so the images are streamed (decoded per batch)." : "held in memory."));
        }
        if (!stream) return new InMemoryImages(ReadImages(data, input, what, o.ImageChannels, o.ImageHeight, o.ImageWidth, sample));
        if (sample is { Height: 0 })
            throw new InvalidOperationException(
                $"Image column '{o.ImageColumnName}': ImageHeight and ImageWidth are not set and none of the {sample.SampledRows:N0} sampled rows " +
                "had a usable image, so no size could be chosen from the data. Set ImageHeight and ImageWidth (e.g. 224 and 224): images are resized to that size.");
        var images = EncodedImages.Read(data, o.ImageColumnName, o.LabelColumnName, o.ImageChannels, o.ImageHeight ?? sample!.Height, o.ImageWidth ?? sample!.Width,
            sample, o.BadImagePolicy, Environment.ProcessorCount);
        LogReading(images.Report.Sampled, images.Report.Skipped, images.Report.Reasons, images.Labels.Length, what);
        return images;
    }

    // Rows of data, from the view when it knows them, else by a cursor that reads no column.
    private static long CountRows(IDataView data)
    {
        if (data.GetRowCount() is long known) return known;
        using var cursor = data.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        long rows = 0;
        while (cursor.MoveNext()) rows++;
        return rows;
    }

    /// <summary>
    /// With a <see cref="Backbone"/>: its network for <paramref name="classCount"/> classes at the options' input size (on
    /// the CPU, a new head drawn from <see cref="ImageTrainerOptions.Seed"/>), built at the start of <c>Fit</c> before any
    /// image is read, so that a checkpoint or ONNX file that does not fit fails before the training data is decoded.
    /// Null without a backbone. The caller owns the network (pass it to <see cref="CreateNetwork"/>, or dispose it).
    /// </summary>
    private protected PretrainedImageNetwork? CreateBackboneNetwork(int classCount)
    {
        if (Backbone is not { } backbone) return null;
        var o = TrainerOptions;
        // The options' snapshot resolves a backbone's input size (its default when neither side is set).
        return backbone.CreateNetwork(classCount, o.ImageHeight ?? backbone.DefaultInputHeight, o.ImageWidth ?? backbone.DefaultInputWidth, o.Seed);
    }

    /// <summary>
    /// Resolves the device, registers a custom network and creates the network on the device, its weights drawn from a
    /// generator of its own seeded with <see cref="ImageTrainerOptions.Seed"/> (not TorchSharp's global generator). With a
    /// <see cref="Backbone"/>: the imported backbone and its preprocessing, with a new head drawn from the seed
    /// (<paramref name="backboneNetwork"/> when <see cref="CreateBackboneNetwork"/> built it already; taken over).
    /// </summary>
    private protected (nn.Module<Tensor, Tensor> Network, string Architecture, Device Device) CreateNetwork(int channels, int classCount, int height, int width,
        PretrainedImageNetwork? backboneNetwork = null)
    {
        var o = TrainerOptions;
        var device = Devices.Resolve(o.Device, o.CudaDeviceIndex);
        if (Backbone is { } backbone)
        {
            // The imported weights and a new head drawn from the seed; the backbone's preprocessing is part of the network.
            var pretrained = backboneNetwork ?? backbone.CreateNetwork(classCount, height, width, o.Seed);
            try
            {
                if (!pretrained.Preprocessing.AcceptsAnySize && (pretrained.Preprocessing.Height != height || pretrained.Preprocessing.Width != width))
                    throw new InvalidOperationException(
                        $"The backbone network was built for {pretrained.Preprocessing.Height}×{pretrained.Preprocessing.Width} inputs but the training images are {height}×{width}.");
                pretrained.to(device);
            }
            catch
            {
                pretrained.Dispose();
                throw;
            }
            return (pretrained, backbone.Name, device);
        }
        backboneNetwork?.Dispose();
        string architecture = o.CustomModelFactory is null ? o.Architecture.ToString() : o.CustomModelName!;
        if (o.CustomModelFactory is not null) FlatMinimaModelRegistry.Register(o.CustomModelName!, o.CustomModelFactory);
        var network = FlatMinimaModelRegistry.CreateInitialNetwork(architecture, channels, classCount, height, width, o.Seed, o.CustomModelFactory);
        network.to(device);
        return (network, architecture, device);
    }

    /// <summary>What a trained model records of <paramref name="augmentation"/>: its description, <c>none</c> for null.</summary>
    private protected static string AugmentationText(AugmentationOptions? augmentation) => augmentation?.ToString() ?? "none";

    /// <summary>The Torch layer's training options, with every epoch also logged to <paramref name="channel"/>.</summary>
    private protected ClassifierTrainingOptions TrainingOptions(IChannel channel)
    {
        var training = TrainerOptions.ToTrainingOptions();
        var callback = training.Progress;
        return training with
        {
            Progress = report =>
            {
                if (report.Interruption is null) channel.Info(MessageSensitivity.None, report.ToString());
                else channel.Warning(MessageSensitivity.None, $"Training stopped early and returns the model of epoch {report.Interruption.ReturnedEpoch}: {report}");
                callback?.Invoke(report);
            },
        };
    }

    /// <summary>
    /// Trains <paramref name="network"/> with <paramref name="training"/>: resumes from
    /// <see cref="ImageTrainerOptions.CheckpointPath"/> when that file exists, and deletes it once every epoch completed
    /// (it stays when training stopped early, so that the next <c>Fit</c> resumes).
    /// </summary>
    private protected static IReadOnlyList<EpochReport> TrainNetwork(ClassifierTrainingOptions training, Device device, nn.Module<Tensor, Tensor> network,
        IExampleSet train, IExampleSet? validation, IChannel channel)
    {
        string? checkpoint = training.CheckpointPath;
        bool resume = checkpoint is not null && File.Exists(checkpoint);
        if (resume) channel.Info(MessageSensitivity.None, $"Resuming from the checkpoint '{checkpoint}' (CheckpointPath).");
        var precision = PrecisionChoice.For(training.Precision, device);
        if (precision.Warning is string warning) channel.Warning(MessageSensitivity.None, warning);
        else if (training.Precision != ComputePrecision.Float32) channel.Info(MessageSensitivity.None, $"Training computes in {precision} (Precision = {training.Precision}).");
        var reports = new ClassifierTrainer(training, device).Train(network, train, validation, resume ? checkpoint : null);
        if (checkpoint is not null && (reports.Count == 0 || reports[^1].Interruption is null)) File.Delete(checkpoint);
        return reports;
    }

    /// <summary>Runs <paramref name="body"/>; if it throws, disposes <paramref name="owned"/> (the network being trained, …) first.</summary>
    private protected static T DisposeOnFailure<T>(Func<T> body, params IDisposable?[] owned)
    {
        try
        {
            return body();
        }
        catch
        {
            foreach (var item in owned) item?.Dispose();
            throw;
        }
    }
}
