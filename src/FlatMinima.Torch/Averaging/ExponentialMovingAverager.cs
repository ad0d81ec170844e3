using System;
using System.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// Exponential moving average of the weights after every step: the first step copies, then
/// <c>w̄ ← d·w̄ + (1 − d)·w</c> (one fused <c>lerp_</c> per tensor), with <c>d = min(decay, (1 + n)/(10 + n))</c> at the
/// n-th update when warm-up is on. Buffers are averaged too if <see cref="EmaOptions.AverageBuffers"/> is set.
/// </summary>
public sealed class ExponentialMovingAverager : IWeightAverager
{
    private readonly EmaOptions _options;
    private readonly FlatBuffer _average;
    private long _updates, _firstStep, _lastStep;

    /// <summary>Creates the averager.</summary>
    public ExponentialMovingAverager(nn.Module model, EmaOptions options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        _average = new ModelTensors(model, options.AverageBuffers).NewBuffer();
    }

    /// <summary>The average (meaningless before the first update).</summary>
    internal FlatBuffer Average => _average;

    /// <summary>Number of updates so far.</summary>
    public long Updates => _updates;

    /// <inheritdoc />
    public bool AveragesBuffers => _options.AverageBuffers;

    /// <summary>The decay used at the n-th update (0-based; the 0th copies).</summary>
    public double DecayAt(long n) => _options.Warmup ? Math.Min(_options.Decay, (1.0 + n) / (10.0 + n)) : _options.Decay;

    /// <inheritdoc />
    public void AfterStep(long completedSteps)
    {
        if (_updates == 0) { _average.CopyFromModel(); _firstStep = completedSteps; }
        else _average.LerpTowardsModel(1 - DecayAt(_updates));
        _updates++;
        _lastStep = completedSteps;
    }

    /// <inheritdoc />
    public AveragingReport Finish()
    {
        if (_updates > 0) _average.CopyToModel();
        return new AveragingReport("EMA", _updates > 0 ? _firstStep : null, _updates > 0 ? _lastStep : null, _updates, null, false,
            $"decay {_options.Decay:G4}{(_options.Warmup ? " with warm-up" : "")}{(_options.AverageBuffers ? ", buffers averaged" : "")}");
    }

    /// <inheritdoc />
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write("FlatMinima.EMA.v1");
        writer.Write(_options.Decay); writer.Write(_options.Warmup); writer.Write(_options.AverageBuffers);
        writer.Write(_updates); writer.Write(_firstStep); writer.Write(_lastStep);
        _average.Save(writer);
    }

    /// <inheritdoc />
    public void Load(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadString() != "FlatMinima.EMA.v1") throw new InvalidDataException("Not a FlatMinima EMA state (wrong header).");
        double decay = reader.ReadDouble();
        bool warmup = reader.ReadBoolean(), buffers = reader.ReadBoolean();
        if (decay != _options.Decay || warmup != _options.Warmup || buffers != _options.AverageBuffers)
            throw new InvalidDataException($"The saved EMA state has decay {decay}, warm-up {warmup}, buffers {buffers}; this averager has {_options.Decay}, {_options.Warmup}, {_options.AverageBuffers}.");
        _updates = reader.ReadInt64(); _firstStep = reader.ReadInt64(); _lastStep = reader.ReadInt64();
        _average.Load(reader);
    }

    /// <inheritdoc />
    public void Dispose() => _average.Dispose();
}
