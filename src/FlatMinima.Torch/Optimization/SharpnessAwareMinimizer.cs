using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// Wraps any TorchSharp optimizer with sharpness-aware minimization: SAM, ASAM and SA-GD (see
/// <see cref="SharpnessAwareOptions"/>), in the style of davda54/sam.
/// <para>Two ways to use it:</para>
/// <list type="bullet">
/// <item><description><see cref="Step(Func{Tensor})"/> with a closure that runs forward, loss and backward (the
/// minimizer zeroes the gradients before each call); or <see cref="ComputeGradient(IReadOnlyList{Func{Tensor}})"/>,
/// which stops before the base step so that the caller can clip gradients or accumulate them.</description></item>
/// <item><description>By hand: backward at w, <see cref="FirstStep"/> (ascent to w + ε), backward again,
/// <see cref="SecondStep"/> (back to w, base step).</description></item>
/// </list>
/// Weights are restored from a saved copy (exact), not by subtracting ε.
/// </summary>
public sealed class SharpnessAwareMinimizer : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly bool[] _adaptive;
    private readonly Tensor[] _weights;
    private readonly Tensor?[] _ascentState;
    private Tensor?[]? _accumulated;
    private readonly BatchNormStatisticsFreeze _batchNorm;
    private int _ascents;

    /// <summary>Wraps <paramref name="baseOptimizer"/> for all trainable parameters of <paramref name="model"/>; its
    /// BatchNorm layers are frozen during perturbed passes when the options ask for it.</summary>
    public SharpnessAwareMinimizer(nn.Module model, optim.Optimizer baseOptimizer, SharpnessAwareOptions options)
        : this(model.named_parameters().Select(p => (p.name, p.parameter)), baseOptimizer, options, model)
    {
    }

    /// <summary>Wraps <paramref name="baseOptimizer"/> for the given named parameters (names decide the adaptive scope).</summary>
    /// <param name="namedParameters">The parameters to perturb; those that do not require gradients are skipped.</param>
    /// <param name="baseOptimizer">The optimizer that takes the descent step (it should own the same parameters).</param>
    /// <param name="options">The sharpness-aware settings; validated here.</param>
    /// <param name="batchNormOwner">A module whose BatchNorm running statistics must not move in perturbed passes.</param>
    public SharpnessAwareMinimizer(IEnumerable<(string name, Parameter parameter)> namedParameters, optim.Optimizer baseOptimizer,
        SharpnessAwareOptions options, nn.Module? batchNormOwner = null)
    {
        ArgumentNullException.ThrowIfNull(namedParameters);
        BaseOptimizer = baseOptimizer ?? throw new ArgumentNullException(nameof(baseOptimizer));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        var trainable = namedParameters.Where(p => p.parameter.requires_grad).ToArray();
        if (trainable.Length == 0)
            throw new ArgumentException("There are no trainable parameters (requires_grad) to perturb.", nameof(namedParameters));
        _parameters = trainable.Select(p => p.parameter).ToArray();
        _adaptive = trainable.Select(p => options.Adaptive &&
            (options.AdaptiveScope == AdaptiveScope.AllParameters || p.name.Contains("weight", StringComparison.Ordinal))).ToArray();
        _weights = _parameters.Select(p => empty_like(p).DetachFromDisposeScope()).ToArray();
        _ascentState = new Tensor?[_parameters.Length];
        _batchNorm = new BatchNormStatisticsFreeze(options.FreezeBatchNormOnPerturbedPass ? batchNormOwner : null);
    }

    /// <summary>The optimizer that takes the descent step (give it to learning-rate schedules).</summary>
    public optim.Optimizer BaseOptimizer { get; }

    /// <summary>The sharpness-aware settings.</summary>
    public SharpnessAwareOptions Options { get; }

    /// <summary>The parameters this minimizer perturbs.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Whether the weights are currently perturbed (between <see cref="FirstStep"/> and <see cref="SecondStep"/>).</summary>
    public bool IsPerturbed => _ascents > 0;

    /// <summary>
    /// One ascent step from the current gradients: the first call saves w and moves to w + ε (ε = ρ·T²g/‖Tg‖, T = 1
    /// for SAM); further calls continue SA-GD's projected ascent inside the ρ-ball. Zeroes the gradients and freezes
    /// BatchNorm statistics for the next (perturbed) pass.
    /// </summary>
    public void FirstStep()
    {
        double rho = Options.Rho, alpha = Options.AscentStepSize ?? rho;
        bool keepState = Options.AscentSteps > 1;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            if (_ascents == 0)
                for (int i = 0; i < _parameters.Length; i++) _weights[i].copy_(_parameters[i]);

            var scales = new Tensor?[_parameters.Length];
            var directions = new Tensor?[_parameters.Length];
            for (int i = 0; i < _parameters.Length; i++)
            {
                var g = _parameters[i].grad;
                if (g is null) continue;
                scales[i] = _adaptive[i] ? _weights[i].abs().add_(Options.Eta) : null;
                directions[i] = scales[i] is Tensor t ? g.mul(t) : g;
            }
            var norm = GlobalNorm(directions);
            if (_ascents == 0)
            {
                // u = α₁·Tg/‖Tg‖ with α₁ = min(α, ρ); ε = T·u. With α = ρ this is SAM / ASAM exactly.
                var step = norm.add(Options.Epsilon).reciprocal_().mul_(Math.Min(alpha, rho));
                for (int i = 0; i < _parameters.Length; i++)
                {
                    if (directions[i] is not Tensor d) continue;
                    _parameters[i].addcmul_(scales[i] is Tensor t ? d.mul(t) : d, step, 1);
                    if (keepState) (_ascentState[i] ??= zeros_like(d).DetachFromDisposeScope()).copy_(d).mul_(step);
                }
            }
            else
            {
                // Projected ascent in the adaptive coordinates u = T⁻¹ε: u ← Π_ρ(u + α·Tg/‖Tg‖), then w + T·u.
                var step = norm.add(Options.Epsilon).reciprocal_().mul_(alpha);
                for (int i = 0; i < _parameters.Length; i++)
                    if (directions[i] is Tensor d && _ascentState[i] is Tensor u) u.addcmul_(d, step, 1);
                var shrink = clamp_max(GlobalNorm(_ascentState).add(Options.Epsilon).reciprocal_().mul_(rho), 1.0);
                for (int i = 0; i < _parameters.Length; i++)
                {
                    if (_ascentState[i] is not Tensor u) continue;
                    u.mul_(shrink);
                    _parameters[i].copy_(_weights[i]);
                    if (scales[i] is Tensor t) _parameters[i].addcmul_(t, u, 1); else _parameters[i].add_(u);
                }
            }
        }
        _ascents++;
        ZeroGradients();
        _batchNorm.Freeze();
    }

    /// <summary>Puts the saved weights w back (keeping the gradients computed at w + ε) and unfreezes BatchNorm.</summary>
    public void RestoreWeights()
    {
        if (_ascents > 0)
        {
            using var noGrad = no_grad();
            for (int i = 0; i < _parameters.Length; i++) _parameters[i].copy_(_weights[i]);
            for (int i = 0; i < _ascentState.Length; i++) _ascentState[i]?.zero_();
        }
        _ascents = 0;
        _batchNorm.Unfreeze();
    }

    /// <summary>Restores w and lets the base optimizer step with the gradients computed at the perturbed point.</summary>
    public void SecondStep()
    {
        RestoreWeights();
        BaseOptimizer.step();
    }

    /// <summary>Sharpness-aware gradient of one batch; see <see cref="ComputeGradient(IReadOnlyList{Func{Tensor}})"/>.</summary>
    public Tensor ComputeGradient(Func<Tensor> closure) => ComputeGradient(new[] { closure });

    /// <summary>
    /// m-sharpness: for each shard, a clean pass at w, <see cref="SharpnessAwareOptions.AscentSteps"/> ascent steps
    /// and a perturbed pass; the shard gradients are <b>averaged</b>. Leaves the weights at w and the result in each
    /// parameter's <c>.grad</c>, without stepping. Each closure runs forward, loss and backward and returns the loss;
    /// gradients are zeroed before each call.
    /// </summary>
    /// <returns>The mean clean loss over the shards (detached).</returns>
    public Tensor ComputeGradient(IReadOnlyList<Func<Tensor>> shardClosures)
    {
        ArgumentNullException.ThrowIfNull(shardClosures);
        if (shardClosures.Count == 0) throw new ArgumentException("At least one closure is needed.", nameof(shardClosures));
        if (Options.ShardCount > 1 && shardClosures.Count != Options.ShardCount)
            throw new ArgumentException($"The options ask for m-sharpness with ShardCount = {Options.ShardCount}: pass {Options.ShardCount} closures, one per shard " +
                $"(got {shardClosures.Count}), or set ShardCount = 1.", nameof(shardClosures));
        int m = shardClosures.Count;
        Tensor? cleanLoss = null;
        for (int s = 0; s < m; s++)
        {
            ZeroGradients();
            // Each pass gets its own scope, so its activations are freed before the next pass runs.
            using (var scope = NewDisposeScope())
            {
                var loss = shardClosures[s]().detach();
                cleanLoss = (cleanLoss is null ? loss.clone() : cleanLoss.add(loss)).MoveToOuterDisposeScope();
            }
            if (Options.Rho > 0)
            {
                for (int a = 0; a < Options.AscentSteps; a++)
                {
                    FirstStep();
                    using var scope = NewDisposeScope();
                    shardClosures[s]();
                }
                RestoreWeights();
            }
            if (m > 1) Accumulate(s == 0, 1.0 / m);
        }
        if (m > 1) WriteAccumulatedGradients();
        return cleanLoss!.div_(m);
    }

    /// <summary>Runs <see cref="ComputeGradient(Func{Tensor})"/> and then the base optimizer's step.</summary>
    /// <returns>The clean loss at w (detached).</returns>
    public Tensor Step(Func<Tensor> closure)
    {
        var loss = ComputeGradient(closure);
        BaseOptimizer.step();
        return loss;
    }

    /// <summary>Writes the options and the base optimizer's state (momentum buffers etc.).</summary>
    public void SaveState(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write("FlatMinima.SAM.v2");
        writer.Write(Options.Rho); writer.Write(Options.Adaptive); writer.Write(Options.Eta);
        writer.Write((int)Options.AdaptiveScope); writer.Write(Options.AscentSteps);
        writer.Write(Options.AscentStepSize ?? double.NaN); writer.Write(Options.Epsilon);
        writer.Write(Options.FreezeBatchNormOnPerturbedPass); writer.Write(Options.ShardCount);
        BaseOptimizerHelper.save_state_dict(writer);
    }

    /// <summary>Reads a state written by <see cref="SaveState"/>; the options must match this minimizer's.</summary>
    public void LoadState(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string header = reader.ReadString();
        if (header is not ("FlatMinima.SAM.v1" or "FlatMinima.SAM.v2")) throw new InvalidDataException("Not a FlatMinima SAM state (wrong header).");
        var saved = Options with
        {
            Rho = reader.ReadDouble(), Adaptive = reader.ReadBoolean(), Eta = reader.ReadDouble(),
            AdaptiveScope = (AdaptiveScope)reader.ReadInt32(), AscentSteps = reader.ReadInt32(),
        };
        if (header == "FlatMinima.SAM.v2")
        {
            double stepSize = reader.ReadDouble();
            saved = saved with
            {
                AscentStepSize = double.IsNaN(stepSize) ? null : stepSize, Epsilon = reader.ReadDouble(),
                FreezeBatchNormOnPerturbedPass = reader.ReadBoolean(), ShardCount = reader.ReadInt32(),
            };
        }
        if (saved != Options)
            throw new InvalidDataException($"The saved state was made with {saved}, but this minimizer has {Options}.");
        BaseOptimizerHelper.load_state_dict(reader);
    }

    /// <summary>Releases the saved-weight buffers and unfreezes BatchNorm.</summary>
    public void Dispose()
    {
        _batchNorm.Dispose();
        foreach (var t in _weights) t.Dispose();
        foreach (var t in _ascentState) t?.Dispose();
        if (_accumulated is not null) foreach (var t in _accumulated) t?.Dispose();
    }

    private OptimizerHelper BaseOptimizerHelper => BaseOptimizer as OptimizerHelper
        ?? throw new NotSupportedException($"Saving state needs a TorchSharp optimizer derived from OptimizerHelper; got {BaseOptimizer.GetType().Name}.");

    private Tensor GlobalNorm(IEnumerable<Tensor?> tensors)
    {
        var norms = tensors.Where(t => t is not null).Select(t => linalg.vector_norm(t!)).ToArray();
        return norms.Length == 0 ? zeros(1, device: _parameters[0].device) : linalg.vector_norm(stack(norms));
    }

    private void ZeroGradients()
    {
        foreach (var p in _parameters) p.grad?.zero_();
    }

    private void Accumulate(bool first, double weight)
    {
        _accumulated ??= new Tensor?[_parameters.Length];
        using var noGrad = no_grad();
        for (int i = 0; i < _parameters.Length; i++)
        {
            var g = _parameters[i].grad;
            if (g is null) continue;
            var acc = _accumulated[i] ??= zeros_like(g).DetachFromDisposeScope();
            if (first) acc.copy_(g).mul_(weight); else acc.add_(g, weight);
        }
    }

    private void WriteAccumulatedGradients()
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _parameters.Length; i++)
            if (_accumulated![i] is Tensor acc) _parameters[i].grad?.copy_(acc);
    }
}
