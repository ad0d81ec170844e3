using System;
using System.Collections.Generic;
using System.Threading;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;

namespace FlatMinima.MLNet.IncrementalFewShot;

/// <summary>What a session does with rows of a class that an earlier session (or the base session) already learned.</summary>
public enum RepeatedClassPolicy
{
    /// <summary>Fail, naming the class and the row.</summary>
    Reject,

    /// <summary>Use the rows as extra examples in the session's fine-tuning loss (against the class's fixed prototype); the class's prototype is not changed.</summary>
    Merge,
}

public sealed partial class FlatMinimaIncrementalFewShotTrainer
{
    /// <summary>
    /// Options of <see cref="FlatMinimaIncrementalFewShotTrainer"/>. Base-session settings (architecture, geometry,
    /// optimizer, flat-region search) apply to <c>Fit(baseData)</c>; <c>Session*</c>, shot and exemplar settings to
    /// <c>Fit(sessionData, previousModel)</c>, which takes the geometry, range parameters and bound b from the previous model.
    /// Defaults are the F2M reference code's CIFAR configuration where it has one.
    /// </summary>
    public sealed class Options : ImageTrainerOptions
    {
        /// <summary>The built-in backbone (reference: ResNet-20 on CIFAR-100), unless <see cref="ImageTrainerOptions.CustomModelFactory"/> is set.</summary>
        public ImageClassifierArchitecture Architecture { get; set; } = ImageClassifierArchitecture.ResNet20;

        /// <summary>Base-session passes over the data.</summary>
        public int Epochs { get; set; } = 10;

        /// <summary>Base-session examples per step.</summary>
        public int BatchSize { get; set; } = 128;

        /// <summary>Base-session peak learning rate (reference: 0.1).</summary>
        public double LearningRate { get; set; } = 0.1;

        /// <summary>Base-session SGD momentum.</summary>
        public double Momentum { get; set; } = 0.9;

        /// <summary>Base-session weight decay.</summary>
        public double WeightDecay { get; set; } = 5e-4;

        /// <summary>Base-session learning-rate schedule after warm-up.</summary>
        public LearningRateScheduleKind LearningRateSchedule { get; set; } = LearningRateScheduleKind.Cosine;

        /// <summary>Search a flat region in base training (F2M). False trains plain cross-entropy — the paper's ablation.</summary>
        public bool FlatRegionSearch { get; set; } = true;

        /// <summary>The bound b: base-training noise and session weights stay within ±b/2 of the base weights (reference: 0.01).</summary>
        public double Bound { get; set; } = 0.01;

        /// <summary>M: noise samples per base-training step (reference: 2).</summary>
        public int NoiseSamples { get; set; } = 2;

        /// <summary>Weight of the standard deviation of the M sample losses in the base objective (reference: 2.0).</summary>
        public double StdWeight { get; set; } = 2.0;

        /// <summary>The noise sampler (reference: discrete Beta).</summary>
        public FlatRegionNoiseKind Noise { get; set; } = FlatRegionNoiseKind.DiscreteBeta;

        /// <summary>L: range parameters are the last L convolution weights, shortcut convolutions excluded (reference: 4).</summary>
        public int RangeLayerCount { get; set; } = 4;

        /// <summary>Explicit range parameters by name; null selects by <see cref="RangeLayerCount"/>.</summary>
        public IReadOnlyList<string>? RangeParameterNames { get; set; }

        /// <summary>Fine-tuning passes per session (the whole session is one batch); 0 = prototypes only.</summary>
        public int SessionEpochs { get; set; } = 6;

        /// <summary>Session SGD learning rate.</summary>
        public double SessionLearningRate { get; set; } = 0.01;

        /// <summary>Session SGD momentum.</summary>
        public double SessionMomentum { get; set; } = 0.9;

        /// <summary>Session weight decay.</summary>
        public double SessionWeightDecay { get; set; } = 5e-4;

        /// <summary>Round session updates to multiples of b/SessionRoundingReduction (reference: on, 4); null disables.</summary>
        public int? SessionRoundingReduction { get; set; }

        /// <summary>Prototype normalisation (reference: prototypes L2-normalised, queries not).</summary>
        public PrototypeNormalization PrototypeNormalization { get; set; } = PrototypeNormalization.Prototypes;

        /// <summary>ω in the logits <c>−ω·‖f − p‖²</c>; scales how peaked the probabilities are (reference: 1).</summary>
        public double DistanceScale { get; set; } = 1.0;

        /// <summary>Most rows a new class may have in one session ("shots").</summary>
        public int MaxShotsPerClass { get; set; } = 5;

        /// <summary>Rows kept per few-shot class and replayed in later sessions (reference: 5); 0 keeps none. Saved with the model.</summary>
        public int ExemplarsPerClass { get; set; } = 5;

        /// <summary>What a session does with rows of classes already learned.</summary>
        public RepeatedClassPolicy RepeatedClasses { get; set; } = RepeatedClassPolicy.Reject;

        internal FlatRegionOptions ToFlatRegionOptions() => new()
        {
            Bound = Bound,
            NoiseSamples = NoiseSamples,
            StdWeight = StdWeight,
            Noise = Noise,
            RangeLayerCount = RangeLayerCount,
            RangeParameterNames = RangeParameterNames,
        };

        internal ClassifierTrainingOptions ToTrainingOptions() => new()
        {
            Epochs = Epochs,
            BatchSize = BatchSize,
            LearningRate = LearningRate,
            Momentum = Momentum,
            WeightDecay = WeightDecay,
            Schedule = new LearningRateSchedule { Kind = LearningRateSchedule },
            FlatRegion = FlatRegionSearch ? ToFlatRegionOptions() : null,
            Seed = Seed,
            TuneGlibcMalloc = TuneGlibcMalloc,
            Progress = ProgressCallback,
            CancellationToken = CancellationToken,
        };

        internal IncrementalSessionOptions ToSessionOptions() => new()
        {
            Epochs = SessionEpochs,
            LearningRate = SessionLearningRate,
            Momentum = SessionMomentum,
            WeightDecay = SessionWeightDecay,
            RoundingReduction = SessionRoundingReduction,
            Normalization = PrototypeNormalization,
            DistanceScale = DistanceScale,
        };

        /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
        internal void Validate()
        {
            ValidateCommon();
            if (!Enum.IsDefined(Architecture)) throw new ArgumentOutOfRangeException(nameof(Architecture), Architecture, "Unknown architecture.");
            if (MaxShotsPerClass < 1) throw new ArgumentOutOfRangeException(nameof(MaxShotsPerClass), MaxShotsPerClass, "MaxShotsPerClass must be ≥ 1.");
            if (ExemplarsPerClass < 0) throw new ArgumentOutOfRangeException(nameof(ExemplarsPerClass), ExemplarsPerClass, "ExemplarsPerClass must be ≥ 0.");
            if (!Enum.IsDefined(RepeatedClasses)) throw new ArgumentOutOfRangeException(nameof(RepeatedClasses), RepeatedClasses, "Unknown policy.");
            if (SessionEpochs < 0) throw new ArgumentOutOfRangeException(nameof(SessionEpochs), SessionEpochs, "SessionEpochs must be ≥ 0 (0 = prototypes only).");
            if (!(SessionLearningRate > 0) || double.IsInfinity(SessionLearningRate))
                throw new ArgumentOutOfRangeException(nameof(SessionLearningRate), SessionLearningRate, "SessionLearningRate must be a finite number > 0.");
            if (!(SessionMomentum >= 0 && SessionMomentum < 1)) throw new ArgumentOutOfRangeException(nameof(SessionMomentum), SessionMomentum, "SessionMomentum must be in [0, 1).");
            if (!(SessionWeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(SessionWeightDecay), SessionWeightDecay, "SessionWeightDecay must be ≥ 0.");
            if (SessionRoundingReduction is int r && r < 1)
                throw new ArgumentOutOfRangeException(nameof(SessionRoundingReduction), r, "SessionRoundingReduction must be ≥ 1, or null to disable rounding.");
            ToFlatRegionOptions().Validate();
            ToTrainingOptions().Validate();
            ToSessionOptions().Validate();
        }
    }
}
