using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>
/// A scalar loss L(w) of a set of parameters, as the weighted mean of per-batch losses: its value, gradient and
/// Hessian-vector products (by double back-propagation), with the parameters seen as one flat vector.
/// Every sharpness diagnostic works on this.
/// </summary>
public sealed class LossObjective : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly Func<Tensor>[] _batchLosses;
    private readonly double[] _weights;
    private readonly long[] _sizes;
    private readonly Action? _onDispose;
    private readonly IList<Tensor>?[] _graphs;
    private int _cachedGraphBatches = 1;

    /// <summary>Creates an objective over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The parameters w (each must require gradients).</param>
    /// <param name="batchLosses">One closure per batch computing its scalar (mean) loss from the current parameters.</param>
    /// <param name="batchWeights">Relative weight of each batch (e.g. its size); equal when null.</param>
    public LossObjective(IReadOnlyList<Parameter> parameters, IReadOnlyList<Func<Tensor>> batchLosses, IReadOnlyList<double>? batchWeights = null)
        : this(parameters, batchLosses, batchWeights, null)
    {
    }

    private LossObjective(IReadOnlyList<Parameter> parameters, IReadOnlyList<Func<Tensor>> batchLosses, IReadOnlyList<double>? batchWeights, Action? onDispose)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(batchLosses);
        if (parameters.Count == 0 || parameters.Any(p => !p.requires_grad))
            throw new ArgumentException("The model has no trainable parameters (requires_grad) to measure sharpness for.", nameof(parameters));
        if (batchLosses.Count == 0)
            throw new ArgumentException("The data is empty: sharpness needs at least one batch.", nameof(batchLosses));
        if (batchWeights is not null && (batchWeights.Count != batchLosses.Count || batchWeights.Any(w => !(w > 0))))
            throw new ArgumentException("batchWeights must have one positive weight per batch.", nameof(batchWeights));
        _parameters = parameters.ToArray();
        _batchLosses = batchLosses.ToArray();
        double total = batchWeights?.Sum() ?? batchLosses.Count;
        _weights = (batchWeights ?? Enumerable.Repeat(1.0, batchLosses.Count).ToArray()).Select(w => w / total).ToArray();
        _sizes = _parameters.Select(p => p.numel()).ToArray();
        _onDispose = onDispose;
        _graphs = new IList<Tensor>?[_batchLosses.Length];
    }

    /// <summary>
    /// The mean loss of <paramref name="model"/> over <paramref name="batches"/> (weighted by batch size). The model is
    /// put in eval mode (BatchNorm uses its running statistics, dropout is off) unless <paramref name="trainMode"/>; in
    /// train mode BatchNorm uses batch statistics and its running statistics are kept unchanged. Disposing the
    /// objective restores the model's mode.
    /// </summary>
    /// <param name="model">The network.</param>
    /// <param name="loss">(logits, targets) → scalar loss, e.g. <c>(x, y) =&gt; nn.functional.cross_entropy(x, y)</c>.</param>
    /// <param name="batches">Inputs and targets, already on the model's device and in its dtype.</param>
    /// <param name="trainMode">Measure in train mode instead of eval mode.</param>
    /// <param name="parameters">A subset of the model's parameters (all trainable ones when null).</param>
    public static LossObjective ForModel(nn.Module<Tensor, Tensor> model, Func<Tensor, Tensor, Tensor> loss,
        IEnumerable<(Tensor Input, Tensor Target)> batches, bool trainMode = false, IReadOnlyList<Parameter>? parameters = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(batches);
        var list = batches.ToArray();
        bool wasTraining = model.training;
        model.train(trainMode);
        var freeze = trainMode ? new BatchNormStatisticsFreeze(model) : null;
        freeze?.Freeze();
        var closures = list.Select(b => (Func<Tensor>)(() => loss(model.call(b.Input), b.Target))).ToArray();
        var weights = list.Select(b => (double)b.Input.shape[0]).ToArray();
        var ps = parameters ?? model.parameters().Where(p => p.requires_grad).ToArray();
        return new LossObjective(ps, closures, weights.Length > 0 ? weights : null, () =>
        {
            freeze?.Dispose();
            model.train(wasTraining);
        });
    }

    /// <summary>The parameters, in flat-vector order.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Number of scalar parameters (the length of the flat vectors).</summary>
    public long Dimension => _sizes.Sum();

    /// <summary>Number of batches.</summary>
    public int BatchCount => _batchLosses.Length;

    /// <summary>The parameters' dtype.</summary>
    public ScalarType DType => _parameters[0].dtype;

    /// <summary>The parameters' device.</summary>
    public Device Device => _parameters[0].device;

    /// <summary>
    /// How many batches (the first ones) keep their first-order gradient graph between Hessian-vector products, so that
    /// a repeated product costs one double backward on them instead of a forward, a backward with graph and a double
    /// backward. Each kept graph holds the batch's activations and gradient graph in memory (measured for ResNet-20 in
    /// docs/benchmarks.md); the default 1 keeps the first batch's. Use 0 to keep none, <see cref="BatchCount"/> (or
    /// <see cref="int.MaxValue"/>) to keep all of them, or pass the whole data as one batch. Setting it releases the
    /// graphs kept so far.
    /// </summary>
    public int CachedGraphBatches
    {
        get => _cachedGraphBatches;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value, nameof(CachedGraphBatches));
            ReleaseGraph();
            _cachedGraphBatches = value;
        }
    }

    /// <summary>The same loss restricted to <paramref name="subset"/> of the parameters (a diagonal block of the Hessian), with the same <see cref="CachedGraphBatches"/>.</summary>
    public LossObjective Restrict(IReadOnlyList<Parameter> subset) => new(subset, _batchLosses, _weights) { CachedGraphBatches = _cachedGraphBatches };

    /// <summary>One objective per batch (for m-sharpness), each with the batch's own loss; the caller disposes each.</summary>
    internal IEnumerable<LossObjective> PerBatch() => _batchLosses.Select(b => new LossObjective(_parameters, new[] { b }));

    /// <summary>A copy of w as a flat vector.</summary>
    public Tensor GetWeights()
    {
        using var noGrad = no_grad();
        var flat = cat(_parameters.Select(p => p.detach().reshape(-1)).ToArray());
        return _parameters.Length == 1 ? flat.clone() : flat; // cat of one tensor may return a view of the parameter
    }

    /// <summary>Sets w from a flat vector.</summary>
    public void SetWeights(Tensor flat)
    {
        CheckVector(flat);
        ReleaseGraph();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var parts = Split(flat);
        for (int i = 0; i < _parameters.Length; i++) _parameters[i].copy_(parts[i]);
    }

    /// <summary>L(w): the weighted mean batch loss.</summary>
    public double Loss()
    {
        using var noGrad = no_grad();
        double total = 0;
        for (int b = 0; b < _batchLosses.Length; b++)
        {
            using var scope = NewDisposeScope();
            total += _weights[b] * CheckScalar(_batchLosses[b]()).ToDouble();
        }
        return total;
    }

    /// <summary>L(w + δ) for a flat perturbation δ; w is restored afterwards.</summary>
    public double LossAt(Tensor delta)
    {
        using var scope = NewDisposeScope();
        var w = GetWeights();
        try
        {
            SetWeights(w.add(delta));
            return Loss();
        }
        finally
        {
            SetWeights(w);
        }
    }

    /// <summary>∇L(w) as a flat vector.</summary>
    public Tensor Gradient() => LossAndGradient().Gradient;

    /// <summary>L(w) and ∇L(w) (a flat vector) from one forward and backward pass per batch.</summary>
    public (double Loss, Tensor Gradient) LossAndGradient()
    {
        using var scope = NewDisposeScope();
        var total = zeros(Dimension, DType, Device);
        double value = 0;
        for (int b = 0; b < _batchLosses.Length; b++)
        {
            using var batchScope = NewDisposeScope();
            var loss = CheckScalar(_batchLosses[b]());
            var grads = autograd.grad(new[] { loss }, _parameters, allow_unused: true);
            total.add_(Flatten(grads), _weights[b]);
            value += _weights[b] * loss.ToDouble();
        }
        return (value, total.MoveToOuterDisposeScope());
    }

    /// <summary>∇L(w + δ) as a flat vector; w is restored afterwards.</summary>
    public Tensor GradientAt(Tensor delta) => LossAndGradientAt(delta).Gradient;

    /// <summary>L(w + δ) and ∇L(w + δ) from one forward and backward pass per batch; w is restored afterwards.</summary>
    public (double Loss, Tensor Gradient) LossAndGradientAt(Tensor delta)
    {
        using var scope = NewDisposeScope();
        var w = GetWeights();
        try
        {
            SetWeights(w.add(delta));
            var (loss, gradient) = LossAndGradient();
            return (loss, gradient.MoveToOuterDisposeScope());
        }
        finally
        {
            SetWeights(w);
        }
    }

    /// <summary>
    /// The Hessian-vector product H(w)·v, averaged over the batches (double back-propagation). The first
    /// <see cref="CachedGraphBatches"/> batches keep their first-order gradient graph between calls (until
    /// <see cref="SetWeights"/> or <see cref="Dispose"/>), so repeated products cost one double backward on them, as in
    /// PyHessian; do not change the weights by other means while the objective is in use.
    /// </summary>
    public Tensor HessianVectorProduct(Tensor v)
    {
        CheckVector(v);
        using var scope = NewDisposeScope();
        var parts = Split(v);
        var total = zeros(Dimension, DType, Device);
        for (int b = 0; b < _batchLosses.Length; b++)
        {
            using var batchScope = NewDisposeScope();
            var grads = FirstOrderGraph(b);
            Tensor? dot = null;
            for (int i = 0; i < grads.Count; i++)
                if (grads[i] is Tensor g && g.IsInvalid == false && g.requires_grad)
                    dot = dot is null ? g.mul(parts[i]).sum() : dot.add(g.mul(parts[i]).sum());
            if (dot is null) continue; // the loss is linear in w: H = 0 on this batch
            var hv = autograd.grad(new[] { dot }, _parameters, retain_graph: _graphs[b] is not null, allow_unused: true);
            total.add_(Flatten(hv), _weights[b]);
        }
        return total.MoveToOuterDisposeScope();
    }

    // The gradients with their graph (create_graph). Kept for the first CachedGraphBatches batches until SetWeights.
    private IList<Tensor> FirstOrderGraph(int batch)
    {
        if (_graphs[batch] is { } kept) return kept;
        var loss = CheckScalar(_batchLosses[batch]());
        var grads = autograd.grad(new[] { loss }, _parameters, retain_graph: true, create_graph: true, allow_unused: true);
        if (batch >= _cachedGraphBatches) return grads;
        foreach (var g in grads) g?.DetachFromDisposeScope();
        return _graphs[batch] = grads;
    }

    private void ReleaseGraph()
    {
        for (int b = 0; b < _graphs.Length; b++)
        {
            if (_graphs[b] is not { } graph) continue;
            foreach (var g in graph) g?.Dispose();
            _graphs[b] = null;
        }
    }

    /// <summary>Splits a flat vector into views shaped like the parameters.</summary>
    public Tensor[] Split(Tensor flat)
    {
        CheckVector(flat);
        var pieces = flat.split(_sizes);
        return pieces.Select((t, i) => t.view(_parameters[i].shape)).ToArray();
    }

    /// <summary>Restores the model's mode (for objectives made by <see cref="ForModel"/>).</summary>
    public void Dispose()
    {
        ReleaseGraph();
        _onDispose?.Invoke();
    }

    private Tensor Flatten(IList<Tensor> grads) =>
        cat(grads.Select((g, i) => g is null || g.IsInvalid ? zeros(_sizes[i], DType, Device) : g.reshape(-1)).ToArray());

    private void CheckVector(Tensor v)
    {
        if (v.dim() != 1 || v.shape[0] != Dimension)
            throw new ArgumentException($"Expected a flat vector of {Dimension} values; got shape [{string.Join(", ", v.shape)}].", nameof(v));
    }

    private static Tensor CheckScalar(Tensor loss)
    {
        if (loss.numel() != 1)
            throw new InvalidOperationException(
                $"The loss must be a scalar; it has shape [{string.Join(", ", loss.shape)}]. Reduce it (e.g. reduction: mean) before measuring sharpness.");
        return loss.reshape(Array.Empty<long>());
    }
}
