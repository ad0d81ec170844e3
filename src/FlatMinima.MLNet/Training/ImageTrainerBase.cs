using System;
using FlatMinima.MLNet.ImageClassification;
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
        TrainerOptions = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

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
        var (labelColumn, classCount) = ImageTrainingData.CheckLabel(data.Schema, TrainerOptions.LabelColumnName, minClasses);
        var input = ImageInput.FromColumn(FindImageColumn(data.Schema, what), TrainerOptions.ImageChannels, TrainerOptions.ImageHeight, TrainerOptions.ImageWidth);
        return (LabelKeyValues.FromColumn(labelColumn, classCount), input);
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> with <paramref name="message"/> when <paramref name="data"/> has no rows.</summary>
    private protected static void CheckHasRows(IDataView data, string message)
    {
        using var probe = data.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        if (!probe.MoveNext()) throw new InvalidOperationException(message);
    }

    /// <summary>The image column of <paramref name="schema"/>, or an error naming it and <paramref name="what"/>.</summary>
    private protected DataViewSchema.Column FindImageColumn(DataViewSchema schema, string what) =>
        schema.GetColumnOrNull(TrainerOptions.ImageColumnName)
        ?? throw new ArgumentOutOfRangeException(nameof(schema), $"Image column '{TrainerOptions.ImageColumnName}' was not found in the {what} (set ImageColumnName).");

    /// <summary>Decodes the images and labels of <paramref name="data"/> at the options' geometry.</summary>
    private protected ImageExamples ReadImages(IDataView data, ImageInput input) =>
        ImageDataReader.Read(data, input, TrainerOptions.ImageColumnName, TrainerOptions.LabelColumnName, TrainerOptions.ImageChannels, TrainerOptions.ImageHeight, TrainerOptions.ImageWidth);

    /// <summary>
    /// Resolves the device, registers a custom network, seeds TorchSharp with <see cref="ImageTrainerOptions.Seed"/> and
    /// creates the network on the device.
    /// </summary>
    private protected (nn.Module<Tensor, Tensor> Network, string Architecture, Device Device) CreateNetwork(int channels, int classCount, int height, int width)
    {
        var o = TrainerOptions;
        var device = Devices.Resolve(o.Device, o.CudaDeviceIndex);
        string architecture = o.CustomModelFactory is null ? o.Architecture.ToString() : o.CustomModelName!;
        if (o.CustomModelFactory is not null) FlatMinimaModelRegistry.Register(o.CustomModelName!, o.CustomModelFactory);
        manual_seed(o.Seed);
        var network = FlatMinimaImageClassifier.CreateNetwork(architecture, channels, classCount, height, width);
        network.to(device);
        return (network, architecture, device);
    }

    /// <summary>The Torch layer's training options, with every epoch also logged to <paramref name="channel"/>.</summary>
    private protected ClassifierTrainingOptions TrainingOptions(IChannel channel)
    {
        var training = TrainerOptions.ToTrainingOptions();
        var callback = training.Progress;
        return training with
        {
            Progress = report =>
            {
                channel.Info(MessageSensitivity.None, report.ToString());
                callback?.Invoke(report);
            },
        };
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
