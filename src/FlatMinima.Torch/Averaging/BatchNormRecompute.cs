using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// Recomputes BatchNorm running statistics for averaged weights, with <c>torch.optim.swa_utils.update_bn</c>
/// semantics: reset every BatchNorm layer's statistics, set its momentum to null (an exact cumulative average over
/// batches), run one pass in training mode without gradients, then restore the momenta and the train/eval mode.
/// Frozen BatchNorm layers are left alone (statistics kept, eval mode during the pass): those whose parameters all have
/// <c>requires_grad = false</c>, and those held in eval mode while the model is in training mode (fine-tuning's
/// <see cref="Training.FineTuningOptions.FreezeBatchNorm"/>).
/// </summary>
public static class BatchNormRecompute
{
    /// <summary>Whether <paramref name="model"/> has BatchNorm layers that track running statistics.</summary>
    public static bool HasBatchNorm(nn.Module model) => Layers(model).Length > 0;

    /// <summary>
    /// Runs up to <paramref name="maxBatches"/> of <paramref name="batches"/> (inputs already on the model's device)
    /// through <paramref name="model"/> and returns how many were used (0 if the model has no BatchNorm).
    /// </summary>
    public static int Run(nn.Module<Tensor, Tensor> model, IEnumerable<Tensor> batches, int maxBatches = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batches);
        if (maxBatches < 1) throw new ArgumentOutOfRangeException(nameof(maxBatches), maxBatches, "maxBatches must be ≥ 1.");
        var layers = Layers(model);
        if (layers.Length == 0) return 0;
        var held = model.training ? layers.Where(l => !l.training).ToHashSet() : new HashSet<BatchNorm>();
        var frozen = layers.Where(l => held.Contains(l) || IsFrozen(l)).ToArray();
        layers = layers.Except(frozen).ToArray();
        if (layers.Length == 0) return 0;
        var momenta = layers.Select(l => l.momentum).ToArray();
        var modes = Training.ModuleModes.Capture(model);
        int used = 0;
        try
        {
            using (no_grad())
            {
                foreach (var layer in layers)
                {
                    layer.reset_running_stats();
                    layer.momentum = null;
                }
                model.train();
                foreach (var layer in frozen) layer.eval();
                foreach (var x in batches)
                {
                    if (used == maxBatches) break;
                    using var scope = NewDisposeScope();
                    model.call(x);
                    used++;
                }
            }
        }
        finally
        {
            for (int i = 0; i < layers.Length; i++) layers[i].momentum = momenta[i];
            modes.Restore();
        }
        return used;
    }

    private static bool IsFrozen(BatchNorm layer)
    {
        var parameters = layer.parameters().ToArray();
        return parameters.Length > 0 && parameters.All(p => !p.requires_grad);
    }

    private static BatchNorm[] Layers(nn.Module model) => model.modules().OfType<BatchNorm>().Where(b => b.track_running_stats).ToArray();
}
