using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Training;
using Microsoft.ML;

namespace FlatMinima.Cli;

/// <summary>A trained scoring transformer of either kind, with what <c>train</c> reads from it.</summary>
/// <param name="Scorer">The transformer (owned: dispose it).</param>
/// <param name="Classes">The classes in score order.</param>
/// <param name="Network">The network with its geometry (an incremental model's backbone).</param>
/// <param name="Incremental">The F2M transformer when the model is incremental.</param>
internal sealed record ImageScorer(ITransformer Scorer, IReadOnlyList<string> Classes, FlatMinimaImageClassifier Network,
    FlatMinimaIncrementalFewShotTransformer? Incremental)
{
    public static ImageScorer Of(FlatMinimaImageClassificationTransformer t) => new(t, t.ClassNames, t.Model, null);

    public static ImageScorer Of(FlatMinimaIncrementalFewShotTransformer t) => new(t, t.ClassNames, t.Model.Backbone, t);

    public void Dispose() => (Scorer as IDisposable)?.Dispose();
}

/// <summary>
/// <c>train --incremental</c>: the F2M base session (Shi et al., 2021) through the library's
/// <c>FlatMinimaIncrementalFewShot</c> trainer — base training with the flat-region search, then one prototype per class —
/// with the tool's options mapped onto the trainer's.
/// </summary>
internal static class IncrementalTraining
{
    /// <summary>The options of <c>train</c> that do not apply to <c>--incremental</c>, and why.</summary>
    public const string NotApplicable = "the base session trains with F2M's flat-region search, without SAM or weight averaging";

    /// <summary>Checks the incremental options (<c>--bound</c>, <c>--range-layers</c>).</summary>
    public static void Check(TrainSettings s)
    {
        if (!s.Incremental)
        {
            if (s.Bound is not null) throw CliException.Usage("--bound applies to train --incremental.", "Add --incremental to train an F2M base model, or leave out --bound.");
            if (s.RangeLayers is not null) throw CliException.Usage("--range-layers applies to train --incremental.", "Add --incremental to train an F2M base model, or leave out --range-layers.");
            return;
        }
        if (s.Bound is double b && !(b > 0 && b <= 1))
            throw CliException.Usage($"--bound {b.ToString(CultureInfo.InvariantCulture)}: must be > 0 and at most 1.", "The reference uses 0.01 (CIFAR) and 0.016 (miniImageNet).");
        if (s.RangeLayers is < 1) throw CliException.Usage($"--range-layers {s.RangeLayers}: must be at least 1.");
    }

    /// <summary>The trainer's options for the base session: the library's defaults (learning rate 0.1, the reference's
    /// flat region) unless the command line sets them.</summary>
    public static FlatMinimaIncrementalFewShotTrainer.Options BaseOptions(TrainSettings s, int epochs, string? checkpoint, CliContext context)
    {
        var o = new FlatMinimaIncrementalFewShotTrainer.Options
        {
            ImageColumnName = nameof(ImageRow.Image),
            LabelColumnName = "Label",
            Epochs = epochs,
            Seed = s.Seed,
            Architecture = TrainCommand.ArchitectureOf(s),
            Augmentation = TrainCommand.AugmentationOf(s),
            BadImagePolicy = BadImagePolicy.Skip,
            CheckpointPath = checkpoint,
            OnFailure = TrainingFailurePolicy.ReturnLastGoodEpoch,
            CancellationToken = context.Cancellation,
            ImageHeight = s.ImageSize,
            ImageWidth = s.ImageSize,
        };
        o.FlatRegion = o.FlatRegion with
        {
            Bound = s.Bound ?? o.FlatRegion.Bound,
            RangeLayerCount = s.RangeLayers ?? o.FlatRegion.RangeLayerCount,
        };
        if (s.BatchSize is int batch) o.BatchSize = batch;
        if (s.LearningRate is double rate) o.LearningRate = rate;
        if (s.Pretrained is string pretrained) o.Backbone = TrainCommand.Backbone(pretrained);
        return o;
    }

    /// <summary>The option rows specific to the base session (the method and the flat region).</summary>
    public static Dictionary<string, string> BaseTable(FlatMinimaIncrementalFewShotTrainer.Options o)
    {
        var c = CultureInfo.InvariantCulture;
        var r = o.FlatRegion;
        return new()
        {
            ["method"] = $"F2M base session: flat-region search (b {r.Bound.ToString(c)}, M {r.NoiseSamples}, std weight {r.StdWeight.ToString(c)}, {r.Noise} noise)",
            ["range parameters"] = r.RangeParameterNames is null ? $"the last {r.RangeLayerCount} convolutions' weights" : string.Join(", ", r.RangeParameterNames),
            ["classifier"] = $"nearest prototype ({o.Session.Normalization} normalization, distance scale {o.Session.DistanceScale.ToString(c)})",
        };
    }

    /// <summary>--time for the base session: two epochs of the F2M trainer on a sample are timed.</summary>
    public static (int Epochs, string Description) FitEpochs(CliContext context, MLContext ml, TrainSettings s, IReadOnlyList<LabeledFile> files,
        TimeSpan budget, Stopwatch clock) =>
        TrainCommand.FitEpochs(context, ml, s, files, budget, clock, (keyed, progress) =>
        {
            var options = BaseOptions(s, 2, null, context);
            options.Progress = progress;
            options.OnFailure = TrainingFailurePolicy.Throw;
            return ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(options).Fit(keyed);
        });
}

/// <summary>What the tool records of an incremental (F2M) model: its base classes and each <c>add-classes</c> session.</summary>
public sealed record IncrementalRecord
{
    /// <summary>The classes of the base session (<c>train --incremental</c>).</summary>
    public IReadOnlyList<string> BaseClasses { get; init; } = [];

    /// <summary>The sessions applied since, in order.</summary>
    public IReadOnlyList<SessionRecord> Sessions { get; init; } = [];
}

/// <summary>Accuracy on a group of classes: the share of their test images predicted correctly.</summary>
/// <param name="Accuracy">Correct / images.</param>
/// <param name="Images">Test images of the group.</param>
public sealed record GroupAccuracy(double Accuracy, long Images);

/// <summary>One <c>add-classes</c> session.</summary>
public sealed record SessionRecord
{
    /// <summary>1 for the first session after the base session.</summary>
    public int Session { get; init; }

    /// <summary>When the session ran (UTC).</summary>
    public DateTimeOffset Created { get; init; }

    /// <summary>The tool version that ran it.</summary>
    public string ToolVersion { get; init; } = "";

    /// <summary>The classes the session added, in score order.</summary>
    public IReadOnlyList<string> NewClasses { get; init; } = [];

    /// <summary>Images (shots) the session learned from.</summary>
    public long Shots { get; init; }

    /// <summary>The session's options (folder, shots, epochs, learning rate, …).</summary>
    public Dictionary<string, string> Options { get; init; } = new();

    /// <summary>What was evaluated ("--test folder …", "images beyond the shots"), or null when nothing was.</summary>
    public string? Test { get; init; }

    /// <summary>Accuracy on every test image.</summary>
    public GroupAccuracy? All { get; init; }

    /// <summary>Accuracy on the test images of the classes known before the session.</summary>
    public GroupAccuracy? Old { get; init; }

    /// <summary>The previous model's accuracy on the same old-class images (before the session), for forgetting.</summary>
    public GroupAccuracy? OldBefore { get; init; }

    /// <summary>Accuracy on the test images of the session's new classes.</summary>
    public GroupAccuracy? New { get; init; }

    /// <summary>One line: the classes added and the accuracies.</summary>
    public string Describe()
    {
        var c = CultureInfo.InvariantCulture;
        static string A(GroupAccuracy? g, CultureInfo c) => g is null ? "–" : string.Format(c, "{0:P1} of {1:N0}", g.Accuracy, g.Images);
        return $"+{string.Join(", ", NewClasses)} from {Shots} shots on {Created.ToString("yyyy-MM-dd HH:mm 'UTC'", c)}" + (Test is null ? "; not evaluated"
            : $"; accuracy: all {A(All, c)}, old classes {A(Old, c)}" + (OldBefore is null ? "" : $" (before: {A(OldBefore, c)})") + $", new classes {A(New, c)}");
    }
}
