using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// Stops BatchNorm layers from updating their running statistics while frozen (momentum 0, and the batch counter put
/// back on <see cref="Unfreeze"/>). The forward pass still normalizes with batch statistics in training mode, as in
/// davda54/sam's <c>disable_running_stats</c>, and the statistics stay bit-identical.
/// </summary>
internal sealed class BatchNormStatisticsFreeze : IDisposable
{
    private readonly BatchNorm[] _layers;
    private readonly double?[] _momentum;
    private readonly Tensor?[] _batchesTracked;
    private bool _frozen;

    /// <summary>Collects the BatchNorm layers of <paramref name="model"/> (none: freezing is a no-op).</summary>
    public BatchNormStatisticsFreeze(nn.Module? model)
    {
        _layers = model is null ? Array.Empty<BatchNorm>()
            : model.modules().OfType<BatchNorm>().Where(b => b.track_running_stats).ToArray();
        _momentum = new double?[_layers.Length];
        _batchesTracked = new Tensor?[_layers.Length];
    }

    /// <summary>Whether the statistics are currently frozen.</summary>
    public bool IsFrozen => _frozen;

    /// <summary>Freezes the running statistics of every BatchNorm layer.</summary>
    public void Freeze()
    {
        if (_frozen) return;
        using var noGrad = no_grad();
        for (int i = 0; i < _layers.Length; i++)
        {
            _momentum[i] = _layers[i].momentum;
            _layers[i].momentum = 0.0;
            var tracked = _layers[i].num_batches_tracked;
            if (tracked is not null)
            {
                _batchesTracked[i] ??= tracked.detach().clone().DetachFromDisposeScope();
                _batchesTracked[i]!.copy_(tracked);
            }
        }
        _frozen = true;
    }

    /// <summary>Restores the momentum and batch counters saved by <see cref="Freeze"/>.</summary>
    public void Unfreeze()
    {
        if (!_frozen) return;
        using var noGrad = no_grad();
        for (int i = 0; i < _layers.Length; i++)
        {
            _layers[i].momentum = _momentum[i];
            if (_batchesTracked[i] is Tensor saved) _layers[i].num_batches_tracked?.copy_(saved);
        }
        _frozen = false;
    }

    /// <summary>Unfreezes and releases the saved counters.</summary>
    public void Dispose()
    {
        Unfreeze();
        foreach (var t in _batchesTracked) t?.Dispose();
    }
}
