using System;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;

namespace FlatMinima.MLNet.ImageClassification;

public sealed partial class FlatMinimaImageClassificationTrainer
{
    /// <summary>
    /// Options of <see cref="FlatMinimaImageClassificationTrainer"/>. The optimization settings (inherited) and the
    /// method records <see cref="SharpnessAware"/> and <see cref="Averaging"/> are the Torch layer's; this trainer starts
    /// from <see cref="ImageTrainerOptions.BatchSize"/> 64, SAM (ρ = 0.05) and <see cref="ImageClassifierArchitecture.SmallCnn"/>.
    /// </summary>
    public sealed class Options : ImageTrainerOptions
    {
        /// <summary>Creates the options with this trainer's defaults.</summary>
        public Options()
            : base(new ClassifierTrainingOptions { BatchSize = 64, GradientStep = SharpnessAwareOptions.Sam() }, ImageClassifierArchitecture.SmallCnn)
        {
        }

        /// <summary>
        /// The sharpness-aware step: <c>SharpnessAwareOptions.Sam(rho)</c> (the default, ρ = 0.05),
        /// <c>.Asam(rho, eta)</c> (ρ = 0.5, η = 0.01), <c>.SaGd(ascentSteps, rho)</c>, any of them <c>with { ShardCount = m }</c>
        /// for m-sharpness; null trains with the base optimizer only.
        /// </summary>
        public SharpnessAwareOptions? SharpnessAware
        {
            get => Training.GradientStep as SharpnessAwareOptions;
            set => Training = Training with { GradientStep = value };
        }

        /// <summary>
        /// Weight averaging: null (none), <c>WeightAveragingOptions.Swa(…)</c>, <c>.Ema(…)</c> or <c>.Swad(…)</c>. Combines
        /// with every <see cref="SharpnessAware"/> method (see <see cref="SamSwad"/>). The saved model holds the averaged
        /// weights with recomputed BatchNorm statistics; the window is reported through <see cref="ImageTrainerOptions.Progress"/>
        /// (<see cref="EpochReport.Averaging"/> of the last report) and the log.
        /// </summary>
        public WeightAveragingOptions? Averaging
        {
            get => Training.Averaging;
            set => Training = Training with { Averaging = value };
        }

        /// <summary>
        /// Where the training (and validation) images live while training: <see cref="ImageDataLoading.Automatic"/> (default),
        /// <see cref="ImageDataLoading.InMemory"/> or <see cref="ImageDataLoading.Streaming"/> (see there for the rule and the
        /// costs). Streaming decodes each batch on <see cref="ImageTrainerOptions.LoaderWorkers"/> background threads.
        /// </summary>
        public ImageDataLoading DataLoading { get; set; } = ImageDataLoading.Automatic;

        /// <summary>
        /// A pretrained backbone to fine-tune instead of a network trained from random weights (null, the default), with a
        /// new head sized to the label's classes. <c>PretrainedBackbone.ResNet18ImageNet()</c> reads ML.NET's ImageNet
        /// ResNet-18 from the files the NuGet package <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> puts in the app's
        /// output folder (or from the paths given) and prepares images as it was trained (RGB → BGR, 0–255, minus its mean
        /// image resized to the input size). <c>PretrainedBackbone.FromPyTorch(path, TorchVisionResNet.ResNet18 | ResNet50)</c>
        /// reads a PyTorch checkpoint (<c>torch.save</c> or safetensors state_dict) of TorchVision's ResNet and prepares
        /// images with TorchVision's ImageNet normalization (RGB in 0–1, minus (0.485, 0.456, 0.406), divided by
        /// (0.229, 0.224, 0.225)). <see cref="ImageTrainerOptions.Architecture"/> is then ignored; the model reads 3
        /// channels (gray images are replicated) at <see cref="ImageTrainerOptions.ImageHeight"/> ×
        /// <see cref="ImageTrainerOptions.ImageWidth"/>, 224 × 224 unless set (at least 32; 112–160 trade accuracy for CPU
        /// time), and is standardized by the backbone's preparation instead of the data's mean and standard deviation. That
        /// preparation and every fine-tuned weight are saved in the model, which loads without the package or the
        /// checkpoint. Choose what trains with <see cref="ImageTrainerOptions.FineTuning"/>. A missing file fails when the
        /// trainer is created (naming the package to add, or the checkpoint's path); a file whose content does not fit
        /// (a checkpoint's missing, unexpected or mis-shaped keys) fails at the start of <c>Fit</c>, before any image is
        /// read.
        /// </summary>
        public PretrainedBackbone? Backbone { get; set; }

        /// <summary>Data evaluated after every epoch (loss and accuracy reported through <see cref="ImageTrainerOptions.Progress"/>
        /// and the log). Same schema as the training data; its labels must be classes seen in training.</summary>
        public IDataView? ValidationSet { get; set; }

        /// <summary>Fraction of the training rows held out (stratified by label and by <see cref="DomainColumnName"/>)
        /// as SWAD's validation data when no <see cref="ValidationSet"/> is given.</summary>
        public double ValidationFraction { get; set; } = 0.2;

        /// <summary>
        /// Optional column naming each row's domain (environment): text, key or integer. Each training step then takes
        /// <see cref="ImageTrainerOptions.BatchSize"/> rows from every domain (DomainBed's sampling), the held-out validation
        /// rows are stratified by domain, and validation loss and accuracy are means over domains.
        /// </summary>
        public string? DomainColumnName { get; set; }

        /// <summary>SAM + SWAD, the flat-minimum preset: SAM with radius <paramref name="rho"/> and SWAD (N_s = 3, N_e = 6,
        /// tolerance ratio 0.3) evaluated every <paramref name="evaluationFrequency"/> steps, or, when null, at a frequency
        /// sized from the run (<see cref="SwadOptions.EvaluationFrequency"/>).</summary>
        public static Options SamSwad(double rho = SharpnessAwareOptions.DefaultRho, int? evaluationFrequency = null) => new()
        {
            SharpnessAware = SharpnessAwareOptions.Sam(rho),
            Averaging = WeightAveragingOptions.Swad(evaluationFrequency),
        };

        /// <inheritdoc />
        private protected override bool MayHaveBackbone => Backbone is not null || base.MayHaveBackbone;

        /// <summary>With a <see cref="Backbone"/>: 3 channels and its default input size unless set.</summary>
        private protected override void ResolveModelDefaults()
        {
            if (Backbone is null) return;
            ImageChannels ??= Backbone.Channels;
            if (ImageHeight is null && ImageWidth is null) (ImageHeight, ImageWidth) = (Backbone.DefaultInputHeight, Backbone.DefaultInputWidth);
        }

        /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
        internal override void Validate()
        {
            if (Backbone is not null)
            {
                if (CustomModelFactory is not null)
                    throw new ArgumentException("Backbone and CustomModelFactory are both set; a model has one network — set one of them.", nameof(Backbone));
                if (ImageChannels is int channels && channels != Backbone.Channels)
                    throw new ArgumentOutOfRangeException(nameof(ImageChannels), channels,
                        $"ImageChannels is {channels} but the backbone {Backbone.Name} reads {Backbone.Channels} channels (gray images are replicated); leave it null or set {Backbone.Channels}.");
                foreach (var (name, value) in new[] { (nameof(ImageHeight), ImageHeight), (nameof(ImageWidth), ImageWidth) })
                    if (value is int side && side < Backbone.MinInputSize)
                        throw new ArgumentOutOfRangeException(name, side, $"{name} is {side} but the backbone {Backbone.Name} needs at least {Backbone.MinInputSize} pixels (its default is {Backbone.DefaultInputHeight}×{Backbone.DefaultInputWidth}).");
            }
            base.Validate();
            if (!Enum.IsDefined(DataLoading)) throw new ArgumentOutOfRangeException(nameof(DataLoading), DataLoading, "Unknown DataLoading.");
            if (!(ValidationFraction >= 0 && ValidationFraction < 1))
                throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "ValidationFraction must be in [0, 1).");
            if (DomainColumnName is not null && string.IsNullOrWhiteSpace(DomainColumnName))
                throw new ArgumentException("DomainColumnName must name a column, or be null.", nameof(DomainColumnName));
            ValidateNested(nameof(SharpnessAware), SharpnessAware is null ? null : () => { SharpnessAware.Validate(); SharpnessAware.ValidateFor(Training); });
            ValidateNested(nameof(Averaging), Averaging is null ? null : Averaging.Validate);
            if (Averaging is { NeedsValidation: true } && ValidationSet is null && ValidationFraction == 0)
                throw new ArgumentException(
                    $"Averaging: {Averaging.GetType().Name.Replace("Options", "")} needs validation data; set ValidationSet, or ValidationFraction > 0 to hold out part of the training data.",
                    nameof(ValidationFraction));
            ToTrainingOptions().Validate();
        }
    }
}
