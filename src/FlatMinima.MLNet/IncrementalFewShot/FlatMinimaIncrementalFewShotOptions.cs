using System;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;

namespace FlatMinima.MLNet.IncrementalFewShot;

/// <summary>What a session does with rows of a class that an earlier session (or the base session) already learned.</summary>
public enum RepeatedClassPolicy
{
    /// <summary>Fail, naming the class and the row.</summary>
    Reject,

    /// <summary>Use the rows as extra examples in the session's fine-tuning loss (against the class's fixed prototype); the class's prototype is not
    /// changed — except for an earlier session's class when <c>Session.RefreshNovelPrototypes</c> is on: its prototype is then re-estimated from
    /// these rows and its exemplars.</summary>
    Merge,
}

public sealed partial class FlatMinimaIncrementalFewShotTrainer
{
    /// <summary>
    /// Options of <see cref="FlatMinimaIncrementalFewShotTrainer"/>. The optimization settings (inherited) and
    /// <see cref="FlatRegion"/> apply to the base session, <c>Fit(baseData)</c>; <see cref="Session"/> and the shot and
    /// exemplar settings to <c>Fit(sessionData, previousModel)</c>, which takes the geometry, range parameters and bound b
    /// from the previous model. This trainer starts from the F2M reference code's CIFAR configuration: ResNet-20,
    /// <see cref="ImageTrainerOptions.LearningRate"/> 0.1, batch size 128, and the records' defaults. With
    /// <see cref="ImageTrainerOptions.Backbone"/> the base session starts from a pretrained network instead (a lower
    /// learning rate, e.g. 0.01, and a smaller <c>FlatRegion.Bound</c>, e.g. 0.002, suit it); its range parameters are its
    /// last convolutions and its prototypes come from its embedding.
    /// </summary>
    public sealed class Options : ImageTrainerOptions
    {
        /// <summary>Creates the options with this trainer's defaults.</summary>
        public Options()
            : base(new ClassifierTrainingOptions { LearningRate = 0.1 }, ImageClassifierArchitecture.ResNet20)
        {
        }

        /// <summary>The flat region: bound b, noise samples M, std weight, noise sampler and the range parameters. It is
        /// searched in base training (unless <see cref="FlatRegionSearch"/> is off) and bounds every session.</summary>
        public FlatRegionOptions FlatRegion { get; set; } = new();

        /// <summary>Search the flat region in base training (F2M). False trains plain cross-entropy — the paper's ablation;
        /// sessions are still clamped to the region.</summary>
        public bool FlatRegionSearch { get; set; } = true;

        /// <summary>How each session fine-tunes: epochs (0 = prototypes only), SGD settings, rounding (and the reference's
        /// step-count rule), whether earlier sessions' prototypes are refreshed, prototype normalization and distance scale.</summary>
        public IncrementalSessionOptions Session { get; set; } = new();

        /// <summary>Most rows a new class may have in one session ("shots").</summary>
        public int MaxShotsPerClass { get; set; } = 5;

        /// <summary>Rows kept per few-shot class and replayed in later sessions (reference: 5); 0 keeps none. Saved with the model.</summary>
        public int ExemplarsPerClass { get; set; } = 5;

        /// <summary>What a session does with rows of classes already learned.</summary>
        public RepeatedClassPolicy RepeatedClasses { get; set; } = RepeatedClassPolicy.Reject;

        /// <inheritdoc />
        internal override ClassifierTrainingOptions ToTrainingOptions() => Training with { GradientStep = FlatRegionSearch ? FlatRegion : null };

        /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
        internal override void Validate()
        {
            base.Validate();
            if (MaxShotsPerClass < 1) throw new ArgumentOutOfRangeException(nameof(MaxShotsPerClass), MaxShotsPerClass, "MaxShotsPerClass must be ≥ 1.");
            if (ExemplarsPerClass < 0) throw new ArgumentOutOfRangeException(nameof(ExemplarsPerClass), ExemplarsPerClass, "ExemplarsPerClass must be ≥ 0.");
            if (!Enum.IsDefined(RepeatedClasses)) throw new ArgumentOutOfRangeException(nameof(RepeatedClasses), RepeatedClasses, "Unknown policy.");
            if (FlatRegion is null) throw new ArgumentNullException(nameof(FlatRegion), "FlatRegion must be set; it also bounds the sessions.");
            if (Session is null) throw new ArgumentNullException(nameof(Session), "Session must be set.");
            ValidateNested(nameof(FlatRegion), FlatRegion.Validate);
            ValidateNested(nameof(Session), Session.Validate);
            ToTrainingOptions().Validate();
        }
    }
}
