using System;
using System.Threading;
using FlatMinima.Torch.Training;

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>The options every FlatMinima image trainer has: columns, input geometry, custom network, device, seed, scoring and progress.</summary>
public abstract class ImageTrainerOptions
{
    /// <summary>The label column: a key type (add <c>MapValueToKey</c> for text labels).</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>
    /// The image column: encoded image bytes (<c>byte[]</c> / <c>Vector&lt;Byte&gt;</c>, PNG or JPEG, as
    /// <c>LoadRawImageBytes</c> gives), an <c>MLImage</c> (<c>LoadImages</c>), or a known-size <c>Vector&lt;Single&gt;</c>
    /// in CHW order (<c>ExtractPixels</c>).
    /// </summary>
    public string ImageColumnName { get; set; } = "Image";

    /// <summary>The output column of class probabilities (softmax), one slot per class in label-key order.</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>The output column of the predicted class (a key with the label's values).</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>Seed of weight initialization and shuffling: same seed and data on CPU give bit-identical models.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Where to train and score: Auto (CUDA if available), Cpu or Cuda (fails if no GPU backend).</summary>
    public DeviceKind Device { get; set; } = DeviceKind.Auto;

    /// <summary>CUDA device index when a GPU is used.</summary>
    public int CudaDeviceIndex { get; set; }

    /// <summary>A network of your own; give it a <see cref="CustomModelName"/> and register the same factory with
    /// <see cref="FlatMinimaModelRegistry.Register"/> before loading a saved model in another process.</summary>
    public ImageClassifierFactory? CustomModelFactory { get; set; }

    /// <summary>The name under which <see cref="CustomModelFactory"/> is saved with the model.</summary>
    public string? CustomModelName { get; set; }

    /// <summary>Model input height in pixels; null takes the first training image's height (vector inputs: the
    /// vector's dimensions). Images of other sizes are resized (bilinear).</summary>
    public int? ImageHeight { get; set; }

    /// <summary>Model input width in pixels; null as for <see cref="ImageHeight"/>.</summary>
    public int? ImageWidth { get; set; }

    /// <summary>Model input channels, 1 (grayscale) or 3 (RGB); null detects: 1 if every training image is gray.
    /// Color images given to a grayscale model are converted by luminance; gray images to an RGB model are replicated.</summary>
    public int? ImageChannels { get; set; }

    /// <summary>Rows per forward pass when scoring with <c>Transform</c>.</summary>
    public int ScoringBatchSize { get; set; } = 256;

    /// <summary>Tune glibc's allocator for tensor workloads (process-wide, Linux only; 15–20 % faster steps measured).</summary>
    public bool TuneGlibcMalloc { get; set; } = true;

    /// <summary>Called after each epoch with loss, accuracy, learning rate and time.</summary>
    public Action<EpochReport>? ProgressCallback { get; set; }

    /// <summary>Cancels training at the next batch with <see cref="OperationCanceledException"/>.</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid common option.</summary>
    private protected void ValidateCommon()
    {
        foreach (var (name, value) in new[] { (nameof(LabelColumnName), LabelColumnName), (nameof(ImageColumnName), ImageColumnName),
                     (nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must name a column.", name);
        if (ScoreColumnName == PredictedLabelColumnName)
            throw new ArgumentException($"ScoreColumnName and PredictedLabelColumnName are both '{ScoreColumnName}'; give them different names.", nameof(PredictedLabelColumnName));
        if (ImageHeight is int h && h < 1) throw new ArgumentOutOfRangeException(nameof(ImageHeight), h, "ImageHeight must be ≥ 1 or null.");
        if (ImageWidth is int w && w < 1) throw new ArgumentOutOfRangeException(nameof(ImageWidth), w, "ImageWidth must be ≥ 1 or null.");
        if (ImageChannels is int c && c != 1 && c != 3) throw new ArgumentOutOfRangeException(nameof(ImageChannels), c, "ImageChannels must be 1, 3 or null.");
        if (ScoringBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), ScoringBatchSize, "ScoringBatchSize must be ≥ 1.");
        if (CudaDeviceIndex < 0) throw new ArgumentOutOfRangeException(nameof(CudaDeviceIndex), CudaDeviceIndex, "CudaDeviceIndex must be ≥ 0.");
        if (CustomModelFactory is not null && string.IsNullOrWhiteSpace(CustomModelName))
            throw new ArgumentException("A CustomModelFactory needs a CustomModelName, under which it is saved and looked up when the model is loaded.", nameof(CustomModelName));
        if (!Enum.IsDefined(Device)) throw new ArgumentOutOfRangeException(nameof(Device), Device, "Unknown device.");
    }
}
