using System;
using System.Collections.Generic;
using System.IO;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// A sharpness-aware step taken only on the steps its <see cref="SharpnessAwareOptions.Efficiency"/> schedule picks:
/// the clean pass (over all micro-batches) always runs; on a sharpness-aware step the ascent and perturbed passes of
/// <see cref="SharpnessAwareMinimizer"/> follow (ρ, ASAM's adaptive radius and SA-GD's ascent steps as set), otherwise
/// the clean gradient (which the schedule may adjust, e.g. LookSAM's reuse) is the step's gradient. On a
/// sharpness-aware step the operations are exactly those of <see cref="SharpnessAwareGradientStep"/>, so a schedule that
/// always picks it trains bit-identically to SAM.
/// </summary>
internal sealed class ScheduledSharpnessAwareGradientStep : IGradientStep
{
    private readonly GradientStepContext _context;
    private readonly SharpnessAwareMinimizer _minimizer;
    private readonly SamSchedulePolicy _policy;

    public ScheduledSharpnessAwareGradientStep(GradientStepContext context, SharpnessAwareOptions options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        _minimizer = new SharpnessAwareMinimizer(context.Model, context.Optimizer, options);
        try
        {
            _policy = options.Efficiency!.CreatePolicy(context, _minimizer.Parameters);
        }
        catch
        {
            _minimizer.Dispose();
            throw;
        }
    }

    /// <summary>The schedule's state (for tests).</summary>
    internal SamSchedulePolicy Policy => _policy;

    /// <summary>Sharpness-aware steps taken by this step object (since it was created or loaded).</summary>
    public long SharpnessAwareSteps { get; private set; }

    /// <summary>Optimizer steps computed by this step object (since it was created or loaded).</summary>
    public long Steps { get; private set; }

    public GradientStepResult Compute(Tensor inputs, Tensor labels, long step) => Compute(new[] { new MicroBatch(inputs, labels) }, step);

    public GradientStepResult Compute(IReadOnlyList<MicroBatch> microBatches, long step)
    {
        ArgumentNullException.ThrowIfNull(microBatches);
        if (microBatches.Count == 0) throw new ArgumentException("At least one micro-batch is needed.", nameof(microBatches));
        var correct = zeros(1, ScalarType.Int64, microBatches[0].Inputs.device);
        foreach (var p in _minimizer.Parameters) p.grad?.zero_();
        Tensor cleanLoss;
        using (var scope = NewDisposeScope())
            cleanLoss = Pass(microBatches, correct).detach().clone().MoveToOuterDisposeScope();

        bool sharpnessAware = _minimizer.Options.Rho > 0 && _policy.Decide(step);
        Steps++;
        if (!sharpnessAware)
        {
            _policy.AfterPlain();
            return new(cleanLoss, correct.sum());
        }
        SharpnessAwareSteps++;
        Tensor?[]? clean = null;
        try
        {
            if (_policy.KeepsCleanGradient)
            {
                clean = new Tensor?[_minimizer.Parameters.Count];
                for (int i = 0; i < clean.Length; i++) clean[i] = _minimizer.Parameters[i].grad?.detach().clone().DetachFromDisposeScope();
            }
            for (int a = 0; a < _minimizer.Options.AscentSteps; a++)
            {
                _minimizer.FirstStep();
                using var scope = NewDisposeScope();
                Pass(microBatches, null);
            }
            _minimizer.RestoreWeights();
            _policy.AfterSharpnessAware(clean);
        }
        finally
        {
            if (_minimizer.IsPerturbed) _minimizer.RestoreWeights();   // a perturbed pass threw: back to w, BatchNorm unfrozen
            if (clean is not null) foreach (var t in clean) t?.Dispose();
        }
        return new(cleanLoss, correct.sum()) { SharpnessAware = true };
    }

    // One micro-batch: the same operations as SharpnessAwareGradientStep's closure; several: the accumulating pass.
    private Tensor Pass(IReadOnlyList<MicroBatch> microBatches, Tensor? correct)
    {
        if (microBatches.Count > 1) return MicroBatchPass.Run(_context, microBatches, correct);
        var (x, y) = (microBatches[0].Inputs, microBatches[0].Labels);
        var logits = _context.Model.call(x);
        var loss = _context.Loss(logits, y);
        loss.backward();
        correct?.add_(logits.argmax(1).eq(y).sum());
        return loss;
    }

    public void Save(BinaryWriter writer)
    {
        writer.Write("FlatMinima.ScheduledSAM.v1");
        writer.Write(Steps);
        writer.Write(SharpnessAwareSteps);
        _policy.Save(writer);
    }

    public void Load(BinaryReader reader)
    {
        if (reader.ReadString() != "FlatMinima.ScheduledSAM.v1") throw new InvalidDataException("Not a scheduled sharpness-aware step's state (wrong header).");
        Steps = reader.ReadInt64();
        SharpnessAwareSteps = reader.ReadInt64();
        if (Steps < 0 || SharpnessAwareSteps < 0 || SharpnessAwareSteps > Steps)
            throw new InvalidDataException($"The step state is damaged: {SharpnessAwareSteps} sharpness-aware steps of {Steps}.");
        _policy.Load(reader);
    }

    public void Dispose()
    {
        _policy.Dispose();
        _minimizer.Dispose();
    }
}
