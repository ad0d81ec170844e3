using System;
using System.Collections.Generic;
using System.IO;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// The sharpness-aware gradient of a batch (SAM, ASAM, SA-GD) through <see cref="SharpnessAwareMinimizer"/>; with
/// m-sharpness each of <see cref="SharpnessAwareOptions.ShardCount"/> shards is perturbed separately and the shard
/// gradients are averaged. The reported loss is the mean clean loss; accuracy counts the clean passes.
/// </summary>
internal sealed class SharpnessAwareGradientStep : IGradientStep
{
    private readonly GradientStepContext _context;
    private readonly SharpnessAwareMinimizer _minimizer;

    public SharpnessAwareGradientStep(GradientStepContext context, SharpnessAwareOptions options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        _minimizer = new SharpnessAwareMinimizer(context.Model, context.Optimizer, options);
    }

    public GradientStepResult Compute(Tensor inputs, Tensor labels, long step)
    {
        int shards = _minimizer.Options.ShardCount;
        var xs = shards > 1 ? inputs.chunk(shards) : new[] { inputs };
        var ys = shards > 1 ? labels.chunk(shards) : new[] { labels };
        var correct = zeros(1, ScalarType.Int64, inputs.device);
        var closures = new Func<Tensor>[xs.Length];
        for (int s = 0; s < xs.Length; s++)
        {
            var (xi, yi) = (xs[s], ys[s]);
            bool clean = true;
            closures[s] = () =>
            {
                var logits = _context.Model.call(xi);
                var loss = _context.Loss(logits, yi);
                loss.backward();
                if (clean)
                {
                    correct.add_(logits.argmax(1).eq(yi).sum());
                    clean = false;
                }
                return loss;
            };
        }
        var meanLoss = _minimizer.ComputeGradient(closures);
        return new(meanLoss, correct.sum()) { SharpnessAware = _minimizer.Options.Rho > 0 };
    }

    /// <summary>
    /// Gradient accumulation: the clean gradient is accumulated over all micro-batches, ε is computed once from it, and
    /// the perturbed gradient is accumulated over the same micro-batches at w + ε (m-sharpness is not combined with it).
    /// </summary>
    public GradientStepResult Compute(IReadOnlyList<MicroBatch> microBatches, long step)
    {
        ArgumentNullException.ThrowIfNull(microBatches);
        if (microBatches.Count == 1) return Compute(microBatches[0].Inputs, microBatches[0].Labels, step);
        var correct = zeros(Array.Empty<long>(), ScalarType.Int64, microBatches[0].Inputs.device);
        bool clean = true;
        var meanLoss = _minimizer.ComputeGradient(() =>
        {
            var loss = MicroBatchPass.Run(_context, microBatches, clean ? correct : null);
            clean = false;
            return loss;
        });
        return new(meanLoss, correct) { SharpnessAware = _minimizer.Options.Rho > 0 };
    }

    // The minimizer keeps no state between steps: the base optimizer's state is saved by the checkpoint, and the
    // checkpoint's run fingerprint already holds these options.
    public void Save(BinaryWriter writer)
    {
    }

    public void Load(BinaryReader reader)
    {
    }

    public void Dispose() => _minimizer.Dispose();
}
