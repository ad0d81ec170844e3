using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using TorchSharp;

namespace FlatMinima.Torch.Training;

/// <summary>Shape of the learning-rate schedule after warm-up.</summary>
public enum LearningRateScheduleKind
{
    /// <summary>The base learning rate throughout.</summary>
    Constant,

    /// <summary>Cosine decay from the base rate to <see cref="LearningRateSchedule.MinLearningRate"/> at the last step.</summary>
    Cosine,

    /// <summary>Multiply by <see cref="LearningRateSchedule.StepFactor"/> at each milestone epoch.</summary>
    Step,
}

/// <summary>A per-step learning-rate schedule: linear warm-up, then constant, cosine or step decay.</summary>
public sealed record LearningRateSchedule
{
    /// <summary>The shape after warm-up.</summary>
    public LearningRateScheduleKind Kind { get; init; } = LearningRateScheduleKind.Cosine;

    /// <summary>Epochs of linear warm-up from 0 to the base rate (fractions allowed).</summary>
    public double WarmupEpochs { get; init; }

    /// <summary>Final rate of the cosine schedule.</summary>
    public double MinLearningRate { get; init; }

    /// <summary>Epochs at which the step schedule multiplies the rate by <see cref="StepFactor"/>.</summary>
    public IReadOnlyList<int> StepEpochs { get; init; } = Array.Empty<int>();

    /// <summary>The default multiplier of the step schedule.</summary>
    public const double DefaultStepFactor = 0.1;

    /// <summary>The multiplier of the step schedule.</summary>
    public double StepFactor { get; init; } = DefaultStepFactor;

    /// <summary>The base rate throughout, after an optional linear warm-up.</summary>
    public static LearningRateSchedule Constant(double warmupEpochs = 0) =>
        new() { Kind = LearningRateScheduleKind.Constant, WarmupEpochs = warmupEpochs };

    /// <summary>Cosine decay to <paramref name="minLearningRate"/> at the last step, after an optional linear warm-up.</summary>
    public static LearningRateSchedule CosineDecay(double warmupEpochs = 0, double minLearningRate = 0) =>
        new() { Kind = LearningRateScheduleKind.Cosine, WarmupEpochs = warmupEpochs, MinLearningRate = minLearningRate };

    /// <summary>Multiply the rate by <paramref name="factor"/> at each of <paramref name="epochs"/>, after an optional linear warm-up.</summary>
    public static LearningRateSchedule StepDecay(IReadOnlyList<int> epochs, double factor = DefaultStepFactor, double warmupEpochs = 0) =>
        new() { Kind = LearningRateScheduleKind.Step, StepEpochs = epochs, StepFactor = factor, WarmupEpochs = warmupEpochs };

    /// <summary>The learning rate at optimizer step <paramref name="step"/> (0-based).</summary>
    public double At(double baseRate, long step, int stepsPerEpoch, int epochs)
    {
        double epoch = (double)step / stepsPerEpoch;
        if (WarmupEpochs > 0 && epoch < WarmupEpochs)
            return baseRate * (step + 1) / (WarmupEpochs * stepsPerEpoch);
        return Kind switch
        {
            LearningRateScheduleKind.Constant => baseRate,
            LearningRateScheduleKind.Step => baseRate * Math.Pow(StepFactor, StepEpochs.Count(e => epoch >= e)),
            LearningRateScheduleKind.Cosine => CosineAt(baseRate, epoch, epochs),
            _ => throw new InvalidOperationException($"Unknown schedule {Kind}."),
        };
    }

    /// <summary>
    /// Sets every parameter group of <paramref name="optimizer"/> to <paramref name="rate"/> times the group's factor
    /// (1 unless set by <see cref="SetFactor"/>, e.g. fine-tuning's backbone learning-rate factor).
    /// </summary>
    public static void Apply(torch.optim.Optimizer optimizer, double rate)
    {
        foreach (var group in optimizer.ParamGroups)
            group.LearningRate = Factors.TryGetValue(group, out var factor) ? rate * factor.Value : rate;
    }

    /// <summary>Makes <see cref="Apply"/> give <paramref name="group"/> <paramref name="factor"/> × the schedule's rate.</summary>
    internal static void SetFactor(torch.optim.ILearningRateController group, double factor) => Factors.AddOrUpdate(group, new StrongBox<double>(factor));

    private static readonly ConditionalWeakTable<torch.optim.ILearningRateController, StrongBox<double>> Factors = new();

    /// <summary>Throws naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!(WarmupEpochs >= 0)) throw new ArgumentOutOfRangeException(nameof(WarmupEpochs), WarmupEpochs, "WarmupEpochs must be ≥ 0.");
        if (!(MinLearningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(MinLearningRate), MinLearningRate, "MinLearningRate must be ≥ 0.");
        if (!(StepFactor > 0)) throw new ArgumentOutOfRangeException(nameof(StepFactor), StepFactor, "StepFactor must be > 0.");
        ArgumentNullException.ThrowIfNull(StepEpochs, nameof(StepEpochs));
        if (!Enum.IsDefined(Kind)) throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown schedule kind.");
        if (StepEpochs.Any(e => e < 0)) throw new ArgumentOutOfRangeException(nameof(StepEpochs), "StepEpochs must be ≥ 0.");
    }

    private double CosineAt(double baseRate, double epoch, int epochs)
    {
        double span = Math.Max(epochs - WarmupEpochs, 1e-9);
        double t = Math.Clamp((epoch - WarmupEpochs) / span, 0, 1);
        return MinLearningRate + (baseRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * t));
    }
}
