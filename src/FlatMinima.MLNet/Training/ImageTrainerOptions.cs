using System;
using System.Linq;
using System.Threading;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;

namespace FlatMinima.MLNet;

/// <summary>
/// The options every FlatMinima image trainer has: columns, network, input geometry, device, scoring, and the base
/// optimization. The optimization settings are the Torch layer's <see cref="ClassifierTrainingOptions"/> under the same
/// names: their defaults and checks are defined there once (a trainer may start from other defaults, given in its
/// options' documentation).
/// </summary>
public abstract class ImageTrainerOptions
{
    private protected ImageTrainerOptions(ClassifierTrainingOptions training, ImageClassifierArchitecture architecture)
    {
        Training = training;
        Architecture = architecture;
    }

    /// <summary>The Torch layer's training settings behind the optimization properties.</summary>
    private protected ClassifierTrainingOptions Training { get; set; }

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

    /// <summary>The built-in network, unless <see cref="CustomModelFactory"/> is set.</summary>
    public ImageClassifierArchitecture Architecture { get; set; }

    /// <summary>
    /// A pretrained backbone to start from instead of a network trained from random weights (null, the default), with a
    /// new head sized to the label's classes (incremental few-shot: the base session's classes). Image classification
    /// fine-tunes it; incremental few-shot trains the base session on it (with the flat-region search over its last
    /// convolutions, see <c>FlatRegion.RangeLayerCount</c>), takes the prototypes from its embedding (512-d for a
    /// ResNet-18, 2048-d for a ResNet-50) and fine-tunes those convolutions in later sessions.
    /// <c>PretrainedBackbone.ResNet18ImageNet()</c> reads ML.NET's ImageNet ResNet-18 from the files the NuGet package
    /// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> puts in the app's output folder (or from the paths given) and
    /// prepares images as it was trained (RGB → BGR, 0–255, minus its mean image resized to the input size).
    /// <c>PretrainedBackbone.FromPyTorch(path, TorchVisionResNet.ResNet18 | ResNet50)</c> reads a PyTorch checkpoint
    /// (<c>torch.save</c> or safetensors state_dict) of TorchVision's ResNet and prepares images with TorchVision's
    /// ImageNet normalization (RGB in 0–1, minus (0.485, 0.456, 0.406), divided by (0.229, 0.224, 0.225)).
    /// <c>PretrainedBackbone.FromModel(…)</c> takes the backbone of a trained image classifier.
    /// <see cref="Architecture"/> is then ignored (setting <see cref="CustomModelFactory"/> too is an error); the model
    /// reads 3 channels (gray images are replicated) at <see cref="ImageHeight"/> × <see cref="ImageWidth"/>, 224 × 224
    /// unless set (at least 32; 112–160 trade accuracy for CPU time), and is standardized by the backbone's preparation
    /// instead of the data's mean and standard deviation. That preparation and every trained weight are saved in the
    /// model, which loads (and, for incremental few-shot, continues with later sessions) without the package or the
    /// checkpoint. Choose what trains with <see cref="FineTuning"/>. A missing file fails when the trainer is created
    /// (naming the package to add, or the checkpoint's path); a file whose content does not fit (a checkpoint's
    /// missing, unexpected or mis-shaped keys) fails at the start of <c>Fit</c>, before any image is read.
    /// </summary>
    public PretrainedBackbone? Backbone { get; set; }

    /// <summary>A network of your own; give it a <see cref="CustomModelName"/> and register the same factory with
    /// <see cref="FlatMinimaModelRegistry.Register"/> before loading a saved model in another process.</summary>
    public ImageClassifierFactory? CustomModelFactory { get; set; }

    /// <summary>The name under which <see cref="CustomModelFactory"/> is saved with the model.</summary>
    public string? CustomModelName { get; set; }

    /// <summary>Model input height in pixels, 1 to <see cref="ModelLimits.MaxImageSide"/>; set together with <see cref="ImageWidth"/>.
    /// Null (both null) takes the median height and width of a deterministic sample of up to 1,000 training rows, read
    /// from the image headers (vector inputs: the vector's dimensions), as long as the decoded training set then needs at
    /// most 1 GiB (rows × channels × height × width × 4 bytes); above that, training fails before decoding the set and
    /// asks for an explicit size. Images of other sizes are resized (bilinear). With a pretrained <see cref="Backbone"/>: the
    /// backbone's 224 unless set, at least 32.</summary>
    public int? ImageHeight { get; set; }

    /// <summary>Model input width in pixels, 1 to <see cref="ModelLimits.MaxImageSide"/>; set together with <see cref="ImageHeight"/>
    /// (null as for <see cref="ImageHeight"/>).</summary>
    public int? ImageWidth { get; set; }

    /// <summary>Model input channels, 1 (grayscale) or 3 (RGB); null detects: 1 if every training image is gray (pixel
    /// vectors without dimensions: the vector's length / (<see cref="ImageHeight"/> × <see cref="ImageWidth"/>)).
    /// Color images given to a grayscale model are converted by luminance; gray images to an RGB model are replicated.
    /// With a pretrained <see cref="Backbone"/>: 3, or null (which then means 3).</summary>
    public int? ImageChannels { get; set; }

    /// <summary>
    /// What training does with a row whose image cannot be used (empty, undecodable, truncated or damaged bytes, a null
    /// <c>MLImage</c>): <see cref="MLNet.BadImagePolicy.Error"/> (default) fails naming the column and the row;
    /// <see cref="MLNet.BadImagePolicy.Skip"/> leaves the row out and logs the skipped count as a warning to
    /// <c>MLContext.Log</c>. Applies to the training data, <c>ValidationSet</c> and session data; when scoring, such a row
    /// gets NaN scores and a missing <c>PredictedLabel</c> (key 0) whatever the policy.
    /// </summary>
    public BadImagePolicy BadImagePolicy { get; set; } = BadImagePolicy.Error;

    /// <summary>Where to train and score: Auto (CUDA if available), Cpu or Cuda (fails if no GPU backend).</summary>
    public DeviceKind Device { get; set; } = DeviceKind.Auto;

    /// <summary>CUDA device index when a GPU is used.</summary>
    public int CudaDeviceIndex { get; set; }

    /// <summary>Rows per forward pass when scoring with <c>Transform</c>.</summary>
    public int ScoringBatchSize { get; set; } = 256;

    /// <inheritdoc cref="ClassifierTrainingOptions.Epochs"/>
    public int Epochs { get => Training.Epochs; set => Training = Training with { Epochs = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.BatchSize"/>
    public int BatchSize { get => Training.BatchSize; set => Training = Training with { BatchSize = value }; }

    /// <summary>
    /// Gradient accumulation: each optimizer step accumulates the gradient over this many batches of <see cref="BatchSize"/>
    /// rows (micro-batches), for an effective batch of <see cref="BatchSize"/> × n at the activation memory of one micro-batch (the n micro-batches' inputs are held together; as
    /// Hugging Face's <c>gradient_accumulation_steps</c>). SAM computes its perturbation once from the gradient of all n
    /// micro-batches. BatchNorm layers normalize each micro-batch with its own statistics. 1 (the default) is no
    /// accumulation; must be ≥ 1. Incremental few-shot: the base session, without <c>FlatRegionSearch</c>.
    /// </summary>
    public int AccumulationSteps { get => Training.AccumulationSteps; set => Training = Training with { AccumulationSteps = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.LearningRate"/>
    public double LearningRate { get => Training.LearningRate; set => Training = Training with { LearningRate = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.WeightDecay"/>
    public double WeightDecay { get => Training.WeightDecay; set => Training = Training with { WeightDecay = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.Optimizer"/>
    public BaseOptimizerKind Optimizer { get => Training.Optimizer; set => Training = Training with { Optimizer = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.Momentum"/>
    public double Momentum { get => Training.Momentum; set => Training = Training with { Momentum = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.Nesterov"/>
    public bool Nesterov { get => Training.Nesterov; set => Training = Training with { Nesterov = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.Beta1"/>
    public double Beta1 { get => Training.Beta1; set => Training = Training with { Beta1 = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.Beta2"/>
    public double Beta2 { get => Training.Beta2; set => Training = Training with { Beta2 = value }; }

    /// <summary>The learning-rate schedule: <c>LearningRateSchedule.CosineDecay(warmupEpochs: 1)</c>, <c>.Constant()</c>, <c>.StepDecay(new[] { 30, 60 })</c>.</summary>
    public LearningRateSchedule Schedule { get => Training.Schedule; set => Training = Training with { Schedule = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.LabelSmoothing"/>
    public double LabelSmoothing { get => Training.LabelSmoothing; set => Training = Training with { LabelSmoothing = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.GradientClipNorm"/>
    public double? GradientClipNorm { get => Training.GradientClipNorm; set => Training = Training with { GradientClipNorm = value }; }

    /// <summary>
    /// Data augmentation of the training batches: null (the default, <see cref="AugmentationOptions.None"/>),
    /// <c>AugmentationOptions.Standard(flip: true)</c> (pad-4 crop for images up to 64 px a side, else random-resized-crop;
    /// horizontal flip — pass <c>flip: false</c> for digits and text), <c>.Strong(flip)</c> (+ small affine, colour jitter,
    /// random erasing) or a record of your own. Seeded from <see cref="Seed"/>; applied to the standardized training
    /// batches only (not to validation data, not when scoring). The trained model records it
    /// (<c>FlatMinimaImageClassifier.Augmentation</c>). Incremental few-shot: the base session only.
    /// </summary>
    public AugmentationOptions? Augmentation { get => Training.Augmentation; set => Training = Training with { Augmentation = value }; }

    /// <summary>
    /// How a pretrained <see cref="Backbone"/> is fine-tuned: null (the default) or
    /// <c>FineTuningOptions.Full(backboneLearningRateFactor)</c> trains every weight; <c>.LastStages(n)</c> freezes all but
    /// the last n backbone stages; <c>.HeadOnly()</c> trains only the new head (what ML.NET's own image classification
    /// trainer does); each can keep the backbone's BatchNorm statistics frozen. Frozen parts stay bit-identical under
    /// every sharpness-aware step and weight averaging. Needs a network with a backbone. Incremental few-shot: the base
    /// session (frozen parameters also stay bit-identical under the flat-region search; its noise then only probes them);
    /// later sessions fine-tune the range parameters whatever it says.
    /// </summary>
    public FineTuningOptions? FineTuning { get => Training.FineTuning; set => Training = Training with { FineTuning = value }; }

    /// <summary>
    /// The number format of the training steps' convolutions and linear layers: <see cref="ComputePrecision.Float32"/>
    /// (the default; bit-identical results), <see cref="ComputePrecision.BFloat16"/> (mixed precision: bfloat16 compute,
    /// float32 weights, optimizer state, BatchNorm and loss) or <see cref="ComputePrecision.Auto"/> (bfloat16 where the
    /// CPU has <c>avx512_bf16</c>/<c>amx_bf16</c> or the GPU is compute capability 8.0+, else float32). The choice is
    /// logged to <c>MLContext.Log</c> (a warning for bfloat16 on hardware without native support, where it is emulated and
    /// slow). Validation and the saved model are float32 either way; scoring computes in float32. Incremental few-shot: the
    /// base session. See docs/mixed-precision.md.
    /// </summary>
    public ComputePrecision Precision { get => Training.Precision; set => Training = Training with { Precision = value }; }

    /// <summary>Seed of weight initialization and shuffling: same seed and data on CPU give bit-identical models.</summary>
    public int Seed { get => Training.Seed; set => Training = Training with { Seed = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.LoaderWorkers"/>
    public int LoaderWorkers { get => Training.LoaderWorkers; set => Training = Training with { LoaderWorkers = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.PrefetchBatches"/>
    public int PrefetchBatches { get => Training.PrefetchBatches; set => Training = Training with { PrefetchBatches = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.TuneGlibcMalloc"/>
    public bool TuneGlibcMalloc { get => Training.TuneGlibcMalloc; set => Training = Training with { TuneGlibcMalloc = value }; }

    /// <summary>Called after each epoch with loss, accuracy, learning rate and time (every epoch is also logged to <c>MLContext.Log</c>).</summary>
    public Action<EpochReport>? Progress { get => Training.Progress; set => Training = Training with { Progress = value }; }

    /// <inheritdoc cref="ClassifierTrainingOptions.CancellationToken"/>
    public CancellationToken CancellationToken { get => Training.CancellationToken; set => Training = Training with { CancellationToken = value }; }

    /// <summary>
    /// A file for the training state, written after every epoch but the last (atomically, flushed, with a SHA-256
    /// checksum). When the file exists, <c>Fit</c> resumes from it: a <c>Fit</c> with the same options and data continues
    /// where an interrupted one stopped and returns the same model as an uninterrupted run (bit-identical on CPU). A file
    /// written by a different run (a setting that changes the result, the network or the data differs) or a damaged one
    /// makes <c>Fit</c> throw <see cref="System.IO.InvalidDataException"/> naming the file and what differs; delete it to
    /// start afresh. The file is deleted when <c>Fit</c> completes every epoch, and kept when it stops early. Null (the
    /// default) writes no checkpoints. Incremental few-shot: the base session (<c>Fit(baseData)</c>) only.
    /// </summary>
    public string? CheckpointPath { get => Training.CheckpointPath; set => Training = Training with { CheckpointPath = value }; }

    /// <summary>
    /// When the loss diverges or <see cref="CancellationToken"/> is cancelled: <see cref="TrainingFailurePolicy.Throw"/>
    /// (the default) makes <c>Fit</c> throw; <see cref="TrainingFailurePolicy.ReturnLastGoodEpoch"/> makes it return the
    /// model of the last completed epoch, with a warning in <c>MLContext.Log</c> and <see cref="EpochReport.Interruption"/>
    /// on the last report given to <see cref="Progress"/> (with no completed epoch it still throws). A
    /// <see cref="CheckpointPath"/> is kept, so a later <c>Fit</c> resumes after a cancellation.
    /// </summary>
    public TrainingFailurePolicy OnFailure { get => Training.OnFailure; set => Training = Training with { OnFailure = value }; }

    /// <summary>The Torch layer's training settings these options describe.</summary>
    internal virtual ClassifierTrainingOptions ToTrainingOptions() => Training;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    internal virtual void Validate()
    {
        ValidateBackbone();
        foreach (var (name, value) in new[] { (nameof(LabelColumnName), LabelColumnName), (nameof(ImageColumnName), ImageColumnName),
                     (nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must name a column.", name);
        if (ScoreColumnName == PredictedLabelColumnName)
            throw new ArgumentException($"ScoreColumnName and PredictedLabelColumnName are both '{ScoreColumnName}'; give them different names.", nameof(PredictedLabelColumnName));
        if (!Enum.IsDefined(Architecture)) throw new ArgumentOutOfRangeException(nameof(Architecture), Architecture, "Unknown architecture.");
        ValidateImageSize();
        if (!Enum.IsDefined(BadImagePolicy)) throw new ArgumentOutOfRangeException(nameof(BadImagePolicy), BadImagePolicy, "Unknown BadImagePolicy.");
        if (ImageChannels is int c && c != 1 && c != 3) throw new ArgumentOutOfRangeException(nameof(ImageChannels), c, "ImageChannels must be 1, 3 or null.");
        if (ScoringBatchSize < 1 || ScoringBatchSize > ModelLimits.MaxScoringBatchSize)
            throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), ScoringBatchSize, $"ScoringBatchSize must be 1 to {ModelLimits.MaxScoringBatchSize}.");
        foreach (var (name, value) in new[] { (nameof(LabelColumnName), LabelColumnName), (nameof(ImageColumnName), ImageColumnName),
                     (nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName), (nameof(CustomModelName), CustomModelName ?? "") })
            if (value.Length > ModelLimits.MaxNameLength || value.Any(char.IsControl))
                throw new ArgumentException($"{name} must be at most {ModelLimits.MaxNameLength} characters without control characters (a model file stores it).", name);
        if (CudaDeviceIndex < 0) throw new ArgumentOutOfRangeException(nameof(CudaDeviceIndex), CudaDeviceIndex, "CudaDeviceIndex must be ≥ 0.");
        if (CustomModelFactory is not null && string.IsNullOrWhiteSpace(CustomModelName))
            throw new ArgumentException("A CustomModelFactory needs a CustomModelName, under which it is saved and looked up when the model is loaded.", nameof(CustomModelName));
        if (!Enum.IsDefined(Device)) throw new ArgumentOutOfRangeException(nameof(Device), Device, "Unknown device.");
        if (Schedule is null) throw new ArgumentNullException(nameof(Schedule), "Schedule must be set (e.g. LearningRateSchedule.CosineDecay()).");
        ValidateNested(nameof(Schedule), Schedule.Validate);
        ValidateNested(nameof(Augmentation), Augmentation is null ? null
            : ImageHeight is int h && ImageWidth is int w ? () => Augmentation.ValidateFor(h, w) : Augmentation.Validate);
        ValidateNested(nameof(FineTuning), FineTuning is null ? null : FineTuning.Validate);
        if (FineTuning is { IsPlain: false } && !MayHaveBackbone)
            throw new ArgumentException(
                $"FineTuning: {FineTuning.Mode} fine-tuning needs a network with a backbone; set Backbone (e.g. PretrainedBackbone.ResNet18ImageNet()) " +
                "or a CustomModelFactory whose network implements IFineTunableNetwork, or leave FineTuning null.", nameof(FineTuning));
        // The loop's own settings first, so that e.g. BatchSize = 0 is reported as BatchSize, not through a record that depends on it.
        (Training with { GradientStep = null, Averaging = null, Augmentation = null, FineTuning = null }).Validate();
    }

    /// <summary>A copy of these options, taken when a trainer is created, so later changes to the user's object do not
    /// bypass validation or reach a trainer already created. The Torch records it holds are immutable.</summary>
    internal ImageTrainerOptions Snapshot()
    {
        var copy = (ImageTrainerOptions)MemberwiseClone();
        copy.ResolveModelDefaults();
        return copy;
    }

    /// <summary>Whether the network may have a backbone that <see cref="FineTuning"/> can freeze in parts (a pretrained
    /// <see cref="Backbone"/> has one; a custom network may).</summary>
    private bool MayHaveBackbone => Backbone is not null || CustomModelFactory is not null;

    /// <summary>Fills settings whose defaults depend on other settings in the trainer's snapshot: with a
    /// <see cref="Backbone"/>, its channels and, when neither side is set, its default input size.</summary>
    private void ResolveModelDefaults()
    {
        if (Backbone is null) return;
        ImageChannels ??= Backbone.Channels;
        if (ImageHeight is null && ImageWidth is null) (ImageHeight, ImageWidth) = (Backbone.DefaultInputHeight, Backbone.DefaultInputWidth);
    }

    // A pretrained backbone excludes a custom network, fixes the channels and needs a minimum input size.
    private void ValidateBackbone()
    {
        if (Backbone is null) return;
        if (CustomModelFactory is not null)
            throw new ArgumentException("Backbone and CustomModelFactory are both set; a model has one network — set one of them.", nameof(Backbone));
        if (ImageChannels is int channels && channels != Backbone.Channels)
            throw new ArgumentOutOfRangeException(nameof(ImageChannels), channels,
                $"ImageChannels is {channels} but the backbone {Backbone.Name} reads {Backbone.Channels} channels (gray images are replicated); leave it null or set {Backbone.Channels}.");
        foreach (var (name, value) in new[] { (nameof(ImageHeight), ImageHeight), (nameof(ImageWidth), ImageWidth) })
            if (value is int side && side < Backbone.MinInputSize)
                throw new ArgumentOutOfRangeException(name, side, $"{name} is {side} but the backbone {Backbone.Name} needs at least {Backbone.MinInputSize} pixels (its default is {Backbone.DefaultInputHeight}×{Backbone.DefaultInputWidth}).");
    }

    private void ValidateImageSize()
    {
        foreach (var (name, value) in new[] { (nameof(ImageHeight), ImageHeight), (nameof(ImageWidth), ImageWidth) })
            if (value is int size && (size < 1 || size > ModelLimits.MaxImageSide))
                throw new ArgumentOutOfRangeException(name, size, $"{name} must be 1 to {ModelLimits.MaxImageSide} pixels, or null (with the other size) to take the median size of a sample of the training images.");
        if (ImageHeight is null != ImageWidth is null)
        {
            var (missing, set, value) = ImageHeight is null ? (nameof(ImageHeight), nameof(ImageWidth), ImageWidth) : (nameof(ImageWidth), nameof(ImageHeight), ImageHeight);
            throw new ArgumentException($"{missing} is not set but {set} is {value}; set both (or neither, to take the median size of a sample of the training images).", missing);
        }
    }

    /// <summary>
    /// Validates a Torch-layer record held by an option, naming the option: an invalid <c>Rho</c> of
    /// <c>SharpnessAware</c> is reported as <c>SharpnessAware.Rho</c>.
    /// </summary>
    private protected static void ValidateNested(string option, Action? validate) => NestedOption.Validate(option, validate, prefixMessage: true);
}
