using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// The run-time state of a <see cref="SamSchedule"/>: after the clean pass, whether the step is sharpness-aware, and what
/// to do with the gradients afterwards. Its state is saved in training checkpoints by the step.
/// </summary>
internal abstract class SamSchedulePolicy : IDisposable
{
    /// <summary>Whether the clean gradient must be kept for <see cref="AfterSharpnessAware"/>.</summary>
    public virtual bool KeepsCleanGradient => false;

    /// <summary>Decides step <paramref name="step"/> from the clean gradient in the parameters' <c>.grad</c> (unchanged).</summary>
    public abstract bool Decide(long step);

    /// <summary>After a sharpness-aware step: <c>.grad</c> holds g_s; <paramref name="clean"/> the clean g when
    /// <see cref="KeepsCleanGradient"/>.</summary>
    public virtual void AfterSharpnessAware(Tensor?[]? clean)
    {
    }

    /// <summary>After the clean pass of a plain step: may change the gradient in <c>.grad</c>.</summary>
    public virtual void AfterPlain()
    {
    }

    public abstract void Save(BinaryWriter writer);

    public abstract void Load(BinaryReader reader);

    public virtual void Dispose()
    {
    }

    /// <summary>The squared global 2-norm of the parameters' gradients, as a 0-d float32 tensor.</summary>
    protected static Tensor SquaredNorm(IEnumerable<Tensor?> tensors, Device device)
    {
        var squares = tensors.Where(t => t is not null).Select(t => linalg.vector_norm(t!).square()).ToArray();
        return squares.Length == 0 ? zeros(Array.Empty<long>(), ScalarType.Float32, device) : stack(squares).sum();
    }
}

/// <summary>LookSAM: see <see cref="LookSamSchedule"/>. Stores g_v (one tensor per parameter) between sharpness-aware steps.</summary>
internal sealed class LookSamPolicy : SamSchedulePolicy
{
    private const double Epsilon = 1e-12;
    private readonly LookSamSchedule _schedule;
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly Tensor?[] _direction;
    private bool _stored;

    public LookSamPolicy(LookSamSchedule schedule, IReadOnlyList<Parameter> parameters)
    {
        _schedule = schedule;
        _parameters = parameters;
        _direction = new Tensor?[parameters.Count];
    }

    public override bool KeepsCleanGradient => true;

    /// <summary>Whether a direction g_v is stored.</summary>
    public bool HasDirection => _stored;

    /// <summary>The stored g_v (for tests).</summary>
    internal IReadOnlyList<Tensor?> Direction => _direction;

    public override bool Decide(long step) => step % _schedule.Interval == 0;

    // g_v = g_s − (g_s·g/‖g‖²)·g over the whole gradient vector.
    public override void AfterSharpnessAware(Tensor?[]? clean)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var dots = new List<Tensor>();
        for (int i = 0; i < _parameters.Count; i++)
            if (_parameters[i].grad is Tensor gs && clean![i] is Tensor g) dots.Add(gs.mul(g).sum());
        var device = _parameters[0].device;
        var dot = dots.Count == 0 ? zeros(Array.Empty<long>(), ScalarType.Float32, device) : stack(dots).sum();
        var coefficient = dot.div(SquaredNorm(clean!, device).add(Epsilon)).neg_();
        for (int i = 0; i < _parameters.Count; i++)
        {
            if (_parameters[i].grad is not Tensor gs) continue;
            var v = _direction[i] ??= zeros_like(gs).DetachFromDisposeScope();
            v.copy_(gs);
            if (clean![i] is Tensor g) v.addcmul_(g, coefficient, 1);
        }
        _stored = true;
    }

    // g ← g + α·(‖g‖/‖g_v‖)·g_v.
    public override void AfterPlain()
    {
        if (!_stored || _schedule.Alpha == 0) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var device = _parameters[0].device;
        var scale = SquaredNorm(_parameters.Select(p => p.grad), device).sqrt()
            .div_(SquaredNorm(_direction, device).sqrt().add_(Epsilon)).mul_(_schedule.Alpha);
        for (int i = 0; i < _parameters.Count; i++)
            if (_parameters[i].grad is Tensor g && _direction[i] is Tensor v) g.addcmul_(v, scale, 1);
    }

    public override void Save(BinaryWriter writer)
    {
        writer.Write("FlatMinima.LookSAM.v1");
        writer.Write(_stored);
        if (!_stored) return;
        writer.Write(_direction.Length);
        foreach (var v in _direction)
        {
            writer.Write(v is not null);
            if (v is null) continue;
            using var cpu = v.cpu();
            var values = cpu.data<float>().ToArray();
            writer.Write(values.Length);
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        }
    }

    public override void Load(BinaryReader reader)
    {
        if (reader.ReadString() != "FlatMinima.LookSAM.v1") throw new InvalidDataException("Not a LookSAM state (wrong header).");
        _stored = reader.ReadBoolean();
        if (!_stored) return;
        int count = reader.ReadInt32();
        if (count != _parameters.Count) throw new InvalidDataException($"The LookSAM state has {count} tensors; this model has {_parameters.Count} trainable parameters.");
        for (int i = 0; i < count; i++)
        {
            if (!reader.ReadBoolean()) continue;
            long expected = _parameters[i].numel();
            int n = CheckpointFile.ReadCount(reader, sizeof(float), "LookSAM's stored direction");
            if (n != expected) throw new InvalidDataException($"LookSAM's stored direction {i} has {n} values; the parameter has {expected}.");
            var bytes = reader.ReadBytes(n * sizeof(float));
            if (bytes.Length != n * sizeof(float)) throw new EndOfStreamException("The LookSAM state is truncated.");
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            using var scope = NewDisposeScope();
            var v = _direction[i] ??= zeros_like(_parameters[i]).DetachFromDisposeScope();
            using (no_grad()) v.copy_(tensor(values).view(_parameters[i].shape));
        }
    }

    public override void Dispose()
    {
        foreach (var v in _direction) v?.Dispose();
    }
}

/// <summary>RST: see <see cref="RandomizedSamSchedule"/>. One uniform draw per step from its own seeded generator.</summary>
internal sealed class RandomizedSamPolicy : SamSchedulePolicy
{
    /// <summary>Offset of the draws' seed from the run's seed (15485863 is the millionth prime).</summary>
    internal const ulong SeedOffset = 15485863;
    private readonly RandomizedSamSchedule _schedule;
    private readonly long _totalSteps;
    private readonly Generator _generator;

    public RandomizedSamPolicy(RandomizedSamSchedule schedule, GradientStepContext context)
    {
        _schedule = schedule;
        _totalSteps = context.Plan?.TotalSteps ?? 0;
        _generator = new Generator(unchecked((ulong)context.Seed + SeedOffset), CPU);
    }

    public override bool Decide(long step)
    {
        using var draw = rand(1, generator: _generator);
        return draw.item<float>() < _schedule.ProbabilityAt(step, _totalSteps);
    }

    public override void Save(BinaryWriter writer) => GeneratorState.Write(writer, _generator);

    public override void Load(BinaryReader reader) => GeneratorState.Read(reader, _generator);

    public override void Dispose() => _generator.Dispose();
}

/// <summary>AE-SAM: see <see cref="AdaptiveSamSchedule"/>. Keeps μ and σ².</summary>
internal sealed class AdaptiveSamPolicy : SamSchedulePolicy
{
    private readonly AdaptiveSamSchedule _schedule;
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly long _totalSteps;

    public AdaptiveSamPolicy(AdaptiveSamSchedule schedule, GradientStepContext context, IReadOnlyList<Parameter> parameters)
    {
        _schedule = schedule;
        _parameters = parameters;
        _totalSteps = context.Plan?.TotalSteps ?? 0;
    }

    /// <summary>The moving mean μ of ‖g‖².</summary>
    public double Mean { get; private set; }

    /// <summary>The moving variance σ² of ‖g‖².</summary>
    public double Variance { get; private set; }

    public override bool Decide(long step)
    {
        double squared;
        using (var scope = NewDisposeScope())
        using (no_grad())
            squared = SquaredNorm(_parameters.Select(p => p.grad), _parameters[0].device).to_type(ScalarType.Float64).item<double>();
        return Observe(squared, step);
    }

    /// <summary>Updates μ and σ² with ‖g_t‖² = <paramref name="squaredNorm"/> and applies the rule (the decision alone, for tests).</summary>
    internal bool Observe(double squaredNorm, long step)
    {
        double d = _schedule.Decay;
        Mean = d * Mean + (1 - d) * squaredNorm;
        Variance = d * Variance + (1 - d) * (squaredNorm - Mean) * (squaredNorm - Mean);
        return squaredNorm >= Mean + _schedule.ThresholdAt(step, _totalSteps) * Math.Sqrt(Variance);
    }

    public override void Save(BinaryWriter writer)
    {
        writer.Write("FlatMinima.AE-SAM.v1");
        writer.Write(Mean);
        writer.Write(Variance);
    }

    public override void Load(BinaryReader reader)
    {
        if (reader.ReadString() != "FlatMinima.AE-SAM.v1") throw new InvalidDataException("Not an AE-SAM state (wrong header).");
        Mean = reader.ReadDouble();
        Variance = reader.ReadDouble();
        if (!double.IsFinite(Mean) || !(Variance >= 0) || double.IsInfinity(Variance))
            throw new InvalidDataException($"The AE-SAM state is damaged: mean {Mean}, variance {Variance}.");
    }
}
