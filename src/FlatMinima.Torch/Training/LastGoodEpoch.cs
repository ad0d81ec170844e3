using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// A copy of a model's parameters and buffers at the end of its last completed epoch, kept for
/// <see cref="TrainingFailurePolicy.ReturnLastGoodEpoch"/>: one tensor per state entry, allocated once and refilled in place.
/// </summary>
internal sealed class LastGoodEpoch : IDisposable
{
    private readonly nn.Module _model;
    private readonly Dictionary<string, Tensor> _copies = new();

    public LastGoodEpoch(nn.Module model) => _model = model;

    /// <summary>The 1-based epoch captured last; 0 before any.</summary>
    public int Epoch { get; private set; }

    /// <summary>Copies the model's current state as the end of <paramref name="epoch"/>.</summary>
    public void Capture(int epoch)
    {
        using var noGrad = no_grad();
        foreach (var (name, value) in _model.state_dict())
        {
            if (_copies.TryGetValue(name, out var copy)) copy.copy_(value);
            else _copies[name] = value.detach().clone().DetachFromDisposeScope();
        }
        Epoch = epoch;
    }

    /// <summary>Writes the captured state back into the model.</summary>
    public void Restore()
    {
        if (Epoch == 0) throw new InvalidOperationException("No epoch was captured.");
        using var noGrad = no_grad();
        foreach (var (name, value) in _model.state_dict()) value.copy_(_copies[name]);
    }

    public void Dispose()
    {
        foreach (var copy in _copies.Values) copy.Dispose();
        _copies.Clear();
    }
}
