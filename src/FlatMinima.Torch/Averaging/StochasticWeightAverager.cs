using System;
using System.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// SWA (Izmailov et al., 2018; <c>torch.optim.swa_utils</c>): an equal average of the weights from a start step on,
/// every k steps or at each epoch (or cycle) end, with an optional constant, annealed (<c>SWALR</c>) or cyclic SWA
/// learning rate. Buffers are not averaged: recompute BatchNorm statistics afterwards.
/// </summary>
public sealed class StochasticWeightAverager : IWeightAverager
{
    private readonly SwaOptions _options;
    private readonly RunningAverage _average;
    private readonly long _startStep;
    private double? _rateAtStart;
    private long _firstStep, _lastStep, _completedSteps;

    /// <summary>Creates the averager; <paramref name="plan"/> resolves the default start (75 % of the epochs).</summary>
    public StochasticWeightAverager(nn.Module model, SwaOptions options, TrainingPlan plan)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        ArgumentNullException.ThrowIfNull(plan);
        options.Validate();
        int startEpoch = options.StartEpoch ?? Math.Max(1, (int)Math.Ceiling(0.75 * plan.Epochs));
        if (options.StartStep is null && startEpoch > plan.Epochs)
            throw new ArgumentOutOfRangeException(nameof(SwaOptions.StartEpoch), startEpoch, $"SWA's StartEpoch ({startEpoch}) is after the last epoch ({plan.Epochs}); nothing would be averaged.");
        _startStep = options.StartStep ?? (long)(startEpoch - 1) * plan.StepsPerEpoch;
        if (_startStep >= plan.TotalSteps)
            throw new ArgumentOutOfRangeException(nameof(SwaOptions.StartStep), _startStep, $"SWA's StartStep ({_startStep}) is not before the end of training ({plan.TotalSteps} steps); nothing would be averaged.");
        _average = new RunningAverage(new ModelTensors(model, includeBuffers: false));
    }

    /// <summary>Steps completed before averaging starts.</summary>
    public long StartStep => _startStep;

    /// <summary>The running average.</summary>
    internal RunningAverage Average => _average;

    /// <inheritdoc />
    public double LearningRate(long step, double scheduled)
    {
        if (_options.LearningRate is not double swa || step < _startStep) return scheduled;
        double start = _rateAtStart ??= scheduled;
        long t = step - _startStep;
        if (_options.CycleSteps is int c)
        {
            double f = (double)(t % c + 1) / c;   // timgaripov/swa's cyclic schedule: α₁ → α₂ linearly within each cycle
            return (1 - f) * start + f * swa;
        }
        if (_options.AnnealSteps == 0) return swa;
        double p = Math.Min(1.0, (double)(t + 1) / _options.AnnealSteps);
        double alpha = _options.AnnealStrategy == AnnealStrategy.Cosine ? (1 - Math.Cos(Math.PI * p)) / 2 : p;
        return swa * alpha + start * (1 - alpha);
    }

    /// <inheritdoc />
    public void AfterStep(long completedSteps)
    {
        _completedSteps = completedSteps;
        int? every = _options.CycleSteps ?? _options.EverySteps;
        if (every is int k && completedSteps > _startStep && (completedSteps - _startStep) % k == 0) Sample(completedSteps);
    }

    /// <inheritdoc />
    public void AfterEpoch(int epoch)
    {
        if (_options.CycleSteps is null && _options.EverySteps is null && _completedSteps > _startStep && _lastStep != _completedSteps)
            Sample(_completedSteps);
    }

    /// <inheritdoc />
    public AveragingReport Finish()
    {
        if (_average.Count > 0) _average.CopyToModel();
        string detail = (_options.CycleSteps is int c ? $"cyclic, {c} steps per cycle" : _options.EverySteps is int k ? $"every {k} steps" : "once per epoch") +
                        (_options.LearningRate is double r ? $", SWA learning rate {r:G4}" : "");
        return new AveragingReport("SWA", _average.Count > 0 ? _firstStep : null, _average.Count > 0 ? _lastStep : null, _average.Count, null, false, detail);
    }

    /// <inheritdoc />
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write("FlatMinima.SWA.v1");
        writer.Write(_startStep); writer.Write(_rateAtStart ?? double.NaN);
        writer.Write(_firstStep); writer.Write(_lastStep); writer.Write(_completedSteps);
        _average.Save(writer);
    }

    /// <inheritdoc />
    public void Load(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadString() != "FlatMinima.SWA.v1") throw new InvalidDataException("Not a FlatMinima SWA state (wrong header).");
        long start = reader.ReadInt64();
        if (start != _startStep) throw new InvalidDataException($"The saved SWA state starts at step {start}; this averager starts at {_startStep}.");
        double rate = reader.ReadDouble();
        _rateAtStart = double.IsNaN(rate) ? null : rate;
        _firstStep = reader.ReadInt64(); _lastStep = reader.ReadInt64(); _completedSteps = reader.ReadInt64();
        _average.Load(reader);
    }

    /// <inheritdoc />
    public void Dispose() => _average.Dispose();

    private void Sample(long step)
    {
        if (_average.Count == 0) _firstStep = step;
        _average.Add();
        _lastStep = step;
    }
}
