using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// SWAD's loss-valley rule (Cha et al., 2021, Algorithm 1) on a sequence of validation losses, one per evaluation
/// segment (segments are numbered 0, 1, 2, … in arrival order). Pure bookkeeping: it decides which segments belong to
/// the final average; <see cref="SwadAverager"/> keeps the weights.
/// <list type="bullet">
/// <item><description><b>Start</b>: the first time the oldest of the last N_s losses is their minimum, t_s = that
/// segment and the threshold is <c>(1 + ToleranceRatio) · mean(last N_s losses)</c>.</description></item>
/// <item><description><b>End</b>: afterwards, the first time all of the last N_e losses exceed the threshold the valley
/// is dead: t_e = i − N_e (the segment just before that run) and training should stop. Without a dead valley t_e is
/// the last segment.</description></item>
/// <item><description>The final model is the uniform average of segments t_s … t_e, each counted once.</description></item>
/// </list>
/// <para><b>Difference from the reference code</b> (khanrc/swad <c>LossValley</c>): the reference also seeds the average
/// with pre-convergence segments under the threshold (looking back N_e − N_s segments, but skipping the earliest one
/// by an off-by-one) and adds the convergence segment twice. On the losses 2.0, 1.5, 1.2, 1.0, 0.9, 0.85, 0.8, 0.82,
/// 0.9, 1.0, 1.05, 1.1, 1.2, … the reference averages {4, 5, 6, 6, 7, 8, 9, 10}; this rule averages the paper's window
/// [6, 10].</para>
/// </summary>
public sealed class LossValley
{
    private readonly List<double> _losses = new();
    private int _nextConfirmed;

    /// <summary>Creates the rule; throws naming the invalid setting.</summary>
    public LossValley(int optimumPatience = 3, int overfitPatience = 6, double toleranceRatio = 0.3)
    {
        SwadOptions.ValidatePatience(optimumPatience, overfitPatience, toleranceRatio);
        OptimumPatience = optimumPatience;
        OverfitPatience = overfitPatience;
        ToleranceRatio = toleranceRatio;
    }

    /// <summary>N_s: segments whose oldest must be the minimum to declare convergence.</summary>
    public int OptimumPatience { get; }

    /// <summary>N_e: consecutive segments above the threshold that make the valley dead.</summary>
    public int OverfitPatience { get; }

    /// <summary>r − 1: the threshold is (1 + ratio) times the mean loss of the convergence window.</summary>
    public double ToleranceRatio { get; }

    /// <summary>The losses seen so far, one per segment.</summary>
    public IReadOnlyList<double> Losses => _losses;

    /// <summary>t_s, once converged.</summary>
    public int? Start { get; private set; }

    /// <summary>t_e, once the valley is dead (or after <see cref="Finish"/>).</summary>
    public int? End { get; private set; }

    /// <summary>The loss threshold, once converged.</summary>
    public double? Threshold { get; private set; }

    /// <summary>Whether the valley is dead (training should stop).</summary>
    public bool IsDead { get; private set; }

    /// <summary>Whether <see cref="Finish"/> has been called.</summary>
    public bool IsFinished { get; private set; }

    /// <summary>The oldest segment that may still join the window; older segments can be released.</summary>
    public int OldestNeeded => IsDead || IsFinished ? int.MaxValue
        : Start is null ? Math.Max(0, _losses.Count - OptimumPatience + 1) : _nextConfirmed;

    /// <summary>
    /// Records the next segment's loss and returns the segments now known to be inside the window
    /// (<c>From … To</c>, inclusive; empty when <c>To &lt; From</c>).
    /// </summary>
    public (int From, int To) Observe(double loss)
    {
        if (IsDead || IsFinished) throw new InvalidOperationException("The valley is closed; no more segments can be added.");
        if (!double.IsFinite(loss)) throw new ArgumentOutOfRangeException(nameof(loss), loss, "The validation loss must be finite.");
        int i = _losses.Count;
        _losses.Add(loss);
        if (Start is null)
        {
            if (i + 1 < OptimumPatience) return (0, -1);
            int first = i - OptimumPatience + 1;
            var window = _losses.Skip(first).Take(OptimumPatience).ToArray();
            if (window[0] != window.Min()) return (0, -1);
            Start = first;
            Threshold = window.Average() * (1 + ToleranceRatio);
            _nextConfirmed = first;
        }
        else if (i + 1 >= OverfitPatience && _losses.Skip(i - OverfitPatience + 1).Min() > Threshold)
        {
            IsDead = true;
            End = Math.Max(Start.Value, i - OverfitPatience);   // t_s itself if the threshold is below it (losses ≤ 0)
            return Confirm(End.Value);                         // normally empty: every segment ≤ t_e is confirmed already
        }
        // Not dead at i: the earliest possible death is at i + 1, so t_e ≥ i + 1 − N_e.
        return Confirm(i + 1 - OverfitPatience);
    }

    /// <summary>Training ended without a dead valley: t_e is the last segment. Returns the newly confirmed segments.</summary>
    public (int From, int To) Finish()
    {
        if (IsFinished || IsDead) { IsFinished = true; return (0, -1); }
        var range = Start is null ? (0, -1) : Confirm(_losses.Count - 1);
        if (Start is not null) End = _losses.Count - 1;
        IsFinished = true;
        return range;
    }

    private (int From, int To) Confirm(int through)
    {
        if (through < _nextConfirmed) return (0, -1);
        var range = (_nextConfirmed, through);
        _nextConfirmed = through + 1;
        return range;
    }

    /// <summary>Writes the settings, losses and decisions.</summary>
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(OptimumPatience); writer.Write(OverfitPatience); writer.Write(ToleranceRatio);
        writer.Write(_losses.Count);
        foreach (var l in _losses) writer.Write(l);
        writer.Write(Start ?? -1); writer.Write(End ?? -1); writer.Write(Threshold ?? double.NaN);
        writer.Write(IsDead); writer.Write(IsFinished); writer.Write(_nextConfirmed);
    }

    /// <summary>Reads a state written by <see cref="Save"/>; the settings must match.</summary>
    public void Load(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int ns = reader.ReadInt32(), ne = reader.ReadInt32();
        double ratio = reader.ReadDouble();
        if (ns != OptimumPatience || ne != OverfitPatience || ratio != ToleranceRatio)
            throw new InvalidDataException($"The saved loss valley has N_s = {ns}, N_e = {ne}, ratio {ratio}; this one has {OptimumPatience}, {OverfitPatience}, {ToleranceRatio}.");
        int count = reader.ReadInt32();
        _losses.Clear();
        for (int k = 0; k < count; k++) _losses.Add(reader.ReadDouble());
        int start = reader.ReadInt32(), end = reader.ReadInt32();
        double threshold = reader.ReadDouble();
        Start = start < 0 ? null : start;
        End = end < 0 ? null : end;
        Threshold = double.IsNaN(threshold) ? null : threshold;
        IsDead = reader.ReadBoolean(); IsFinished = reader.ReadBoolean(); _nextConfirmed = reader.ReadInt32();
    }
}
