using System;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
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
        /// for m-sharpness; the efficient schedules <c>.LookSam(k, alpha)</c>, <c>.RandomizedSam(p)</c>, <c>.AeSam()</c>, or any
        /// method <c>with { Efficiency = … }</c> (see docs/efficient-sam.md); null trains with the base optimizer only (or
        /// with <see cref="Mesa"/> when that is set).
        /// </summary>
        public SharpnessAwareOptions? SharpnessAware
        {
            get => Training.GradientStep as SharpnessAwareOptions;
            set
            {
                if (value is null && Training.GradientStep is MesaOptions) return;
                Training = Training with { GradientStep = value };
            }
        }

        /// <summary>
        /// MESA ("Sharpness-Aware Training for Free"): one backward pass per step on cross-entropy plus a KL term towards an
        /// exponential moving average of the weights, <c>MesaOptions.Default()</c> (λ = 0.8, τ = 5, decay 0.9998 with warm-up, 5
        /// warm-up epochs). A run has one gradient step: setting it replaces <see cref="SharpnessAware"/> (which then reads
        /// null); null (the default) leaves <see cref="SharpnessAware"/> in charge.
        /// </summary>
        public MesaOptions? Mesa
        {
            get => Training.GradientStep as MesaOptions;
            set
            {
                if (value is not null) Training = Training with { GradientStep = value };
                else if (Training.GradientStep is MesaOptions) Training = Training with { GradientStep = null };
            }
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

        /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
        internal override void Validate()
        {
            base.Validate();
            if (!Enum.IsDefined(DataLoading)) throw new ArgumentOutOfRangeException(nameof(DataLoading), DataLoading, "Unknown DataLoading.");
            if (!(ValidationFraction >= 0 && ValidationFraction < 1))
                throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "ValidationFraction must be in [0, 1).");
            if (DomainColumnName is not null && string.IsNullOrWhiteSpace(DomainColumnName))
                throw new ArgumentException("DomainColumnName must name a column, or be null.", nameof(DomainColumnName));
            ValidateNested(nameof(SharpnessAware), SharpnessAware is null ? null : () => { SharpnessAware.Validate(); SharpnessAware.ValidateFor(Training); });
            ValidateNested(nameof(Mesa), Mesa is null ? null : () => { Mesa.Validate(); Mesa.ValidateFor(Training); });
            ValidateNested(nameof(Averaging), Averaging is null ? null : Averaging.Validate);
            if (Averaging is { NeedsValidation: true } && ValidationSet is null && ValidationFraction == 0)
                throw new ArgumentException(
                    $"Averaging: {Averaging.GetType().Name.Replace("Options", "")} needs validation data; set ValidationSet, or ValidationFraction > 0 to hold out part of the training data.",
                    nameof(ValidationFraction));
            ToTrainingOptions().Validate();
        }
    }
}
