using System;
using FlatMinima.Torch.Training;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// MESA, the memory-efficient form of "Sharpness-Aware Training for Free" (Du, Zhou, Feng, Tan and Zhou, NeurIPS 2022,
/// arXiv 2205.14083; reference code AngusDujw/SAF <c>MESA_train.py</c>): one backward pass per step on
/// <c>CE(f_θ(x), y) + λ·τ²·KL(softmax(f_θ̄(x)/τ) ‖ softmax(f_θ(x)/τ))</c>, where θ̄ is an exponential moving average of
/// the weights (and BatchNorm statistics) updated after every step, evaluated in eval mode without gradients. The
/// KL term (and the teacher's forward pass) starts after <see cref="WarmupEpochs"/> epochs; the average is kept from
/// the first step. The reported training loss is the cross-entropy alone. The average is saved in checkpoints.
/// <para>
/// The teacher's decay warms up by default (<see cref="DecayWarmup"/>): <c>min(Decay, (1 + n)/(10 + n))</c> at the n-th
/// update, so the average covers roughly the last ninth of the steps so far; it reaches the default 0.9998 after about
/// 45,000 steps. The reference trains ImageNet for 5 epochs of 5,000 steps before its term starts, so its fixed
/// decay has long forgotten the random initialization by then; in a run of a few thousand steps a fixed 0.9998 (a
/// horizon of 5,000 steps) still holds most of the initial weights when the term starts (0.9998^780 ≈ 0.86), and the
/// KL term pulls the network towards an almost untrained teacher. Set <see cref="DecayWarmup"/> to <c>false</c> for
/// the reference's fixed decay.
/// </para>
/// </summary>
public sealed record MesaOptions : GradientStepOptions
{
    /// <summary>λ = 0.8, the reference's MESA ImageNet run (<c>run.sh</c>: <c>--reinforce 0.8</c>; its argument default is 0.3).</summary>
    public const double DefaultWeight = 0.8;

    /// <summary>τ = 5 (the reference's default; "a very stable parameter").</summary>
    public const double DefaultTemperature = 5;

    /// <summary>The average's decay 0.9998 (timm's <c>--model-ema-decay</c> default, which the reference run uses).</summary>
    public const double DefaultDecay = 0.9998;

    /// <summary>5 warm-up epochs (the reference's <c>--kl_start_epoch 5</c>).</summary>
    public const int DefaultWarmupEpochs = 5;

    /// <summary>λ, the weight of the KL term, ≥ 0 (0 trains on cross-entropy alone).</summary>
    public double Weight { get; init; } = DefaultWeight;

    /// <summary>τ, the softmax temperature of both distributions (the term is multiplied by τ²), &gt; 0.</summary>
    public double Temperature { get; init; } = DefaultTemperature;

    /// <summary>The decay d of the teacher's average <c>θ̄ ← d·θ̄ + (1 − d)·θ</c>, in [0, 1); with <see cref="DecayWarmup"/>
    /// (the default) the cap of the warmed-up decay.</summary>
    public double Decay { get; init; } = DefaultDecay;

    /// <summary>
    /// Warm the teacher's decay up as <c>min(Decay, (1 + n)/(10 + n))</c> at the n-th update (default <c>true</c>; the
    /// EMA averager's <c>Warmup</c>), so the teacher forgets the initial weights in runs far shorter than the decay's
    /// horizon <c>1/(1 − Decay)</c>. <c>false</c> keeps the reference's fixed decay from the first step.
    /// </summary>
    public bool DecayWarmup { get; init; } = true;

    /// <summary>
    /// Epochs trained on cross-entropy alone before the KL term starts (≥ 0, less than the run's epochs). The reference
    /// code applies its term when the 0-based epoch exceeds <c>kl_start_epoch</c>, one epoch later than this count.
    /// </summary>
    public int WarmupEpochs { get; init; } = DefaultWarmupEpochs;

    /// <summary>MESA with the reference's settings (λ = 0.8, τ = 5, decay 0.9998, 5 warm-up epochs) and the teacher's
    /// decay warm-up.</summary>
    public static MesaOptions Default() => new();

    /// <inheritdoc />
    protected internal override bool SupportsAccumulation => true;

    /// <inheritdoc />
    protected internal override string DivergenceAdvice => " or MESA's Weight, or set GradientClipNorm.";

    /// <inheritdoc />
    public override void Validate()
    {
        if (!(Weight >= 0) || double.IsInfinity(Weight))
            throw new ArgumentOutOfRangeException(nameof(Weight), Weight, $"Weight (MESA's λ) must be a finite number ≥ 0; the reference uses {DefaultWeight}.");
        if (!(Temperature > 0) || double.IsInfinity(Temperature))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, $"Temperature (MESA's τ) must be a finite number > 0; the reference uses {DefaultTemperature}.");
        if (!(Decay >= 0 && Decay < 1))
            throw new ArgumentOutOfRangeException(nameof(Decay), Decay, $"Decay (of MESA's teacher average) must be in [0, 1); the reference uses {DefaultDecay}.");
        if (WarmupEpochs < 0) throw new ArgumentOutOfRangeException(nameof(WarmupEpochs), WarmupEpochs, "WarmupEpochs must be ≥ 0.");
    }

    /// <summary>Checks that the KL term starts before the run ends.</summary>
    public override void ValidateFor(ClassifierTrainingOptions training)
    {
        ArgumentNullException.ThrowIfNull(training);
        if (WarmupEpochs >= training.Epochs)
            throw new ArgumentOutOfRangeException(nameof(WarmupEpochs), WarmupEpochs,
                $"WarmupEpochs ({WarmupEpochs}) must be less than Epochs ({training.Epochs}), or MESA's term never applies.");
    }

    /// <inheritdoc />
    public override IGradientStep CreateStep(GradientStepContext context) => new MesaGradientStep(context, this);
}
