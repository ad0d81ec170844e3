using System;
using System.Collections.Generic;
using System.Threading;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>The sharpness-aware method used on top of the base optimizer.</summary>
public enum SharpnessAwareMethod
{
    /// <summary>Plain training with the base optimizer.</summary>
    None,

    /// <summary>SAM (Foret et al., 2021): ε = ρ·g/‖g‖₂, gradient at w + ε. Default ρ = 0.05.</summary>
    Sam,

    /// <summary>ASAM (Kwon et al., 2021): ε = ρ·T²g/‖Tg‖₂ with T = |w| + η. Default ρ = 0.5, η = 0.01.</summary>
    Asam,

    /// <summary>SA-GD: <see cref="FlatMinimaImageClassificationTrainer.Options.AscentSteps"/> projected ascent steps inside the ρ-ball. Default ρ = 0.05.</summary>
    SaGd,
}

/// <summary>Creates a custom network: <c>(inChannels, numClasses) → module</c> mapping <c>[N, C, H, W]</c> to logits <c>[N, K]</c>.</summary>
public delegate nn.Module<Tensor, Tensor> ImageClassifierFactory(int inChannels, int numClasses);

public sealed partial class FlatMinimaImageClassificationTrainer
{
    /// <summary>Options of <see cref="FlatMinimaImageClassificationTrainer"/>. Names follow ML.NET's TorchSharp trainers.</summary>
    public sealed class Options : ImageTrainerOptions
    {
        /// <summary>Examples per training step.</summary>
        public int BatchSize { get; set; } = 64;

        /// <summary>Passes over the training data.</summary>
        public int Epochs { get; set; } = 10;

        /// <summary>Peak learning rate.</summary>
        public double LearningRate { get; set; } = 0.05;

        /// <summary>Weight decay (L2 for SGD, decoupled for AdamW).</summary>
        public double WeightDecay { get; set; } = 5e-4;

        /// <summary>Data evaluated after every epoch (loss and accuracy reported through <see cref="ImageTrainerOptions.ProgressCallback"/>
        /// and the log). Same schema as the training data; its labels must be classes seen in training.</summary>
        public IDataView? ValidationSet { get; set; }

        /// <summary>
        /// Weight averaging: null (none), <c>WeightAveragingOptions.Swa(…)</c>, <c>.Ema(…)</c> or <c>.Swad(…)</c>. Combines
        /// with every <see cref="SharpnessAware"/> method (see <see cref="SamSwad"/>). The saved model holds the averaged
        /// weights with recomputed BatchNorm statistics; the window is reported through <see cref="ImageTrainerOptions.ProgressCallback"/>
        /// (<see cref="EpochReport.Averaging"/> of the last report) and the log.
        /// </summary>
        public WeightAveragingOptions? Averaging { get; set; }

        /// <summary>Fraction of the training rows held out (stratified by label and by <see cref="DomainColumnName"/>)
        /// as SWAD's validation data when no <see cref="ValidationSet"/> is given.</summary>
        public double ValidationFraction { get; set; } = 0.2;

        /// <summary>
        /// Optional column naming each row's domain (environment): text, key or integer. Each training step then takes
        /// <see cref="BatchSize"/> rows from every domain (DomainBed's sampling), the held-out validation rows are
        /// stratified by domain, and validation loss and accuracy are means over domains.
        /// </summary>
        public string? DomainColumnName { get; set; }

        /// <summary>SAM + SWAD, the flat-minimum preset: SAM with radius <paramref name="rho"/> and SWAD evaluated every
        /// <paramref name="evaluationFrequency"/> steps (N_s = 3, N_e = 6, tolerance ratio 0.3).</summary>
        public static Options SamSwad(double rho = 0.05, int evaluationFrequency = 100) => new()
        {
            SharpnessAware = SharpnessAwareMethod.Sam,
            Rho = rho,
            Averaging = WeightAveragingOptions.Swad(evaluationFrequency),
        };

        /// <summary>The built-in network, unless <see cref="ImageTrainerOptions.CustomModelFactory"/> is set.</summary>
        public ImageClassifierArchitecture Architecture { get; set; } = ImageClassifierArchitecture.SmallCnn;

        /// <summary>The base optimizer.</summary>
        public BaseOptimizerKind Optimizer { get; set; } = BaseOptimizerKind.Sgd;

        /// <summary>SGD momentum.</summary>
        public double Momentum { get; set; } = 0.9;

        /// <summary>Nesterov momentum for SGD.</summary>
        public bool Nesterov { get; set; }

        /// <summary>Learning-rate schedule after warm-up.</summary>
        public LearningRateScheduleKind LearningRateSchedule { get; set; } = LearningRateScheduleKind.Cosine;

        /// <summary>Epochs of linear learning-rate warm-up.</summary>
        public double WarmupEpochs { get; set; }

        /// <summary>Epochs at which the step schedule multiplies the rate by <see cref="StepDecayFactor"/>.</summary>
        public IReadOnlyList<int> StepDecayEpochs { get; set; } = Array.Empty<int>();

        /// <summary>Multiplier of the step schedule.</summary>
        public double StepDecayFactor { get; set; } = 0.1;

        /// <summary>Label smoothing of the training loss, in [0, 1).</summary>
        public double LabelSmoothing { get; set; }

        /// <summary>Clip the gradient's global 2-norm to this value; null disables.</summary>
        public double? GradientClipNorm { get; set; }

        /// <summary>The sharpness-aware method.</summary>
        public SharpnessAwareMethod SharpnessAware { get; set; } = SharpnessAwareMethod.Sam;

        /// <summary>Neighbourhood radius ρ; null uses the method's default (SAM/SA-GD 0.05, ASAM 0.5).</summary>
        public double? Rho { get; set; }

        /// <summary>ASAM's η in T = |w| + η.</summary>
        public double AsamEta { get; set; } = 0.01;

        /// <summary>Which parameters ASAM normalizes: weights only (official ASAM) or all (davda54, use with <see cref="AsamEta"/> = 0).</summary>
        public AdaptiveScope AsamScope { get; set; } = AdaptiveScope.WeightsOnly;

        /// <summary>SA-GD's number of projected ascent steps (used when <see cref="SharpnessAware"/> is SaGd).</summary>
        public int AscentSteps { get; set; } = 3;

        /// <summary>m-sharpness: split each batch into this many shards, perturb each separately, average the gradients.</summary>
        public int ShardCount { get; set; } = 1;

        internal SharpnessAwareOptions? ToSharpnessAwareOptions() => SharpnessAware switch
        {
            SharpnessAwareMethod.None => null,
            SharpnessAwareMethod.Sam => SharpnessAwareOptions.Sam(Rho ?? 0.05),
            SharpnessAwareMethod.Asam => SharpnessAwareOptions.Asam(Rho ?? 0.5, AsamEta) with { AdaptiveScope = AsamScope },
            SharpnessAwareMethod.SaGd => SharpnessAwareOptions.SaGd(AscentSteps, Rho ?? 0.05),
            _ => throw new ArgumentOutOfRangeException(nameof(SharpnessAware), SharpnessAware, "Unknown sharpness-aware method."),
        };

        internal ClassifierTrainingOptions ToTrainingOptions() => new()
        {
            Epochs = Epochs,
            BatchSize = BatchSize,
            LearningRate = LearningRate,
            WeightDecay = WeightDecay,
            Optimizer = Optimizer,
            Momentum = Momentum,
            Nesterov = Nesterov,
            Schedule = new LearningRateSchedule
            {
                Kind = LearningRateSchedule, WarmupEpochs = WarmupEpochs, StepEpochs = StepDecayEpochs, StepFactor = StepDecayFactor,
            },
            LabelSmoothing = LabelSmoothing,
            GradientClipNorm = GradientClipNorm,
            SharpnessAware = ToSharpnessAwareOptions(),
            ShardCount = ShardCount,
            Averaging = Averaging,
            Seed = Seed,
            TuneGlibcMalloc = TuneGlibcMalloc,
            Progress = ProgressCallback,
            CancellationToken = CancellationToken,
        };

        /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
        internal void Validate()
        {
            ValidateCommon();
            if (!Enum.IsDefined(Architecture)) throw new ArgumentOutOfRangeException(nameof(Architecture), Architecture, "Unknown architecture.");
            if (!(ValidationFraction >= 0 && ValidationFraction < 1))
                throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "ValidationFraction must be in [0, 1).");
            if (DomainColumnName is not null && string.IsNullOrWhiteSpace(DomainColumnName))
                throw new ArgumentException("DomainColumnName must name a column, or be null.", nameof(DomainColumnName));
            if (Averaging is { NeedsValidation: true } && ValidationSet is null && ValidationFraction == 0)
                throw new ArgumentException(
                    $"Averaging: {Averaging.GetType().Name.Replace("Options", "")} needs validation data; set ValidationSet, or ValidationFraction > 0 to hold out part of the training data.",
                    nameof(ValidationFraction));
            ToTrainingOptions().Validate();
        }
    }
}
