using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// SWAD (Cha et al., NeurIPS 2021): the weights after every step go into the current segment's equal average; every
/// <see cref="SwadOptions.EvaluationFrequency"/> steps the online model's validation loss closes the segment and is
/// judged by the <see cref="LossValley"/> rule. The final model is the uniform average of every iterate in the
/// segments of the paper's window [t_s, t_e] (each counted once; see <see cref="LossValley"/> for how this differs
/// from the reference code). Segments are kept only while they can still join the window (at most N_e of them).
/// If the loss never converges, the final model is the last segment's average (as the reference code does).
/// </summary>
public sealed class SwadAverager : IValidationDrivenAverager
{
    private readonly SwadOptions _options;
    private readonly ModelTensors _tensors;
    private readonly RunningAverage _segment;
    private readonly LossValley _valley;
    private readonly Dictionary<int, (FlatBuffer Average, long Count)> _kept = new();
    private readonly List<long> _segmentEnds = new();
    private readonly FlatBuffer _final;
    private long _finalCount, _lastStep;

    /// <summary>Creates the averager; <paramref name="evaluationFrequency"/> is the run's (<see cref="SwadOptions.EvaluationFrequencyFor"/>).</summary>
    public SwadAverager(nn.Module model, SwadOptions options, int evaluationFrequency)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        if (evaluationFrequency < 1)
            throw new ArgumentOutOfRangeException(nameof(evaluationFrequency), evaluationFrequency, "SWAD's evaluation frequency must be ≥ 1 step.");
        EvaluationFrequency = evaluationFrequency;
        _tensors = new ModelTensors(model, includeBuffers: false);
        _segment = new RunningAverage(_tensors);
        _valley = new LossValley(options.OptimumPatience, options.OverfitPatience, options.ToleranceRatio);
        _final = _tensors.NewBuffer();
    }

    /// <summary>The valley rule's state (losses, t_s, t_e, threshold).</summary>
    public LossValley Valley => _valley;

    /// <summary>Iterates in the final average so far.</summary>
    public long FinalCount => _finalCount;

    /// <summary>Segments currently held in memory.</summary>
    public int KeptSegments => _kept.Count;

    /// <inheritdoc />
    public int EvaluationFrequency { get; }

    /// <inheritdoc />
    public bool StopRequested => _options.StopWhenValleyDies && _valley.IsDead;

    /// <inheritdoc />
    public bool HasOpenSegment => _segment.Count > 0 && !_valley.IsDead;

    /// <inheritdoc />
    public void AfterStep(long completedSteps)
    {
        if (_valley.IsDead) return;   // the window is closed; later iterates cannot join it
        _segment.Add();
        _lastStep = completedSteps;
    }

    /// <inheritdoc />
    public void AfterEvaluation(double validationLoss)
    {
        if (_valley.IsDead) return;
        if (_segment.Count == 0) throw new InvalidOperationException("No step was taken since the last evaluation; there is no segment to close.");
        int index = _valley.Losses.Count;
        _kept[index] = (_segment.Buffer.Clone(), _segment.Count);
        _segmentEnds.Add(_lastStep);
        _segment.Reset();
        Include(_valley.Observe(validationLoss));
        Release();
    }

    /// <inheritdoc />
    public AveragingReport Finish()
    {
        bool dead = _valley.IsDead;
        Include(_valley.Finish());
        int segments = _valley.Losses.Count;
        if (_finalCount > 0)
        {
            _final.CopyToModel();
            Release();
            int start = _valley.Start!.Value, end = _valley.End!.Value;
            return new AveragingReport("SWAD", SegmentFirstStep(start), _segmentEnds[end], _finalCount, _valley.Threshold, dead,
                $"segments {start + 1}–{end + 1} of {segments} (1-based, every {EvaluationFrequency} steps), N_s = {_options.OptimumPatience}, N_e = {_options.OverfitPatience}, tolerance ratio {_options.ToleranceRatio:G3}");
        }
        if (segments > 0 && _kept.TryGetValue(segments - 1, out var last))
        {
            last.Average.CopyToModel();
            Release();
            return new AveragingReport("SWAD", SegmentFirstStep(segments - 1), _segmentEnds[segments - 1], last.Count, null, false,
                $"the validation loss never converged in {segments} segments (every {EvaluationFrequency} steps): the last segment's average is used; train longer or evaluate more often");
        }
        Release();
        return new AveragingReport("SWAD", null, null, 0, null, false, "no segment was closed: EvaluationFrequency is larger than the number of training steps");
    }

    /// <inheritdoc />
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write("FlatMinima.SWAD.v1");
        writer.Write(EvaluationFrequency);
        _valley.Save(writer);
        _segment.Save(writer);
        writer.Write(_kept.Count);
        foreach (var (index, (average, count)) in _kept.OrderBy(k => k.Key))
        {
            writer.Write(index); writer.Write(count);
            average.Save(writer);
        }
        writer.Write(_segmentEnds.Count);
        foreach (var end in _segmentEnds) writer.Write(end);
        writer.Write(_finalCount); writer.Write(_lastStep);
        _final.Save(writer);
    }

    /// <inheritdoc />
    public void Load(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadString() != "FlatMinima.SWAD.v1") throw new InvalidDataException("Not a FlatMinima SWAD state (wrong header).");
        int frequency = reader.ReadInt32();
        if (frequency != EvaluationFrequency)
            throw new InvalidDataException($"The saved SWAD state has EvaluationFrequency {frequency}; this averager has {EvaluationFrequency}.");
        _valley.Load(reader);
        _segment.Load(reader);
        foreach (var (average, _) in _kept.Values) average.Dispose();
        _kept.Clear();
        int kept = reader.ReadInt32();
        for (int k = 0; k < kept; k++)
        {
            int index = reader.ReadInt32();
            long count = reader.ReadInt64();
            var average = _tensors.NewBuffer();
            average.Load(reader);
            _kept[index] = (average, count);
        }
        _segmentEnds.Clear();
        int ends = reader.ReadInt32();
        for (int k = 0; k < ends; k++) _segmentEnds.Add(reader.ReadInt64());
        _finalCount = reader.ReadInt64(); _lastStep = reader.ReadInt64();
        _final.Load(reader);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (average, _) in _kept.Values) average.Dispose();
        _kept.Clear();
        _segment.Dispose();
        _final.Dispose();
    }

    private long SegmentFirstStep(int index) => (index == 0 ? 0 : _segmentEnds[index - 1]) + 1;

    // Adds segments From…To to the uniform iterate average: mean ← mean + c/(n + c)·(segment − mean).
    private void Include((int From, int To) range)
    {
        for (int i = range.From; i <= range.To; i++)
        {
            var (average, count) = _kept[i];
            if (_finalCount == 0) _final.CopyFrom(average);
            else _final.LerpTowards(average, (double)count / (_finalCount + count));
            _finalCount += count;
        }
    }

    private void Release()
    {
        int oldest = _valley.OldestNeeded;
        foreach (var index in _kept.Keys.Where(i => i < oldest).ToArray())
        {
            _kept[index].Average.Dispose();
            _kept.Remove(index);
        }
    }
}
