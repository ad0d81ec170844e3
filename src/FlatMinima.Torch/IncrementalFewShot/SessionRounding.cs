using System;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// The rounding of F2M's incremental sessions: a value (a step's update, or the scaled gradient <c>lr·g</c>) is rounded
/// element-wise to multiples of a quantum (b / reduction factor; half-way cases to even, as <c>torch.round</c>). When
/// every element rounds to 0, the value is rounded again as n = 2, 3, … steps at once, up to n = 1 + stepIncrease, until
/// some element is non-zero (the reference code's <c>max_steps</c> rule, applied per parameter tensor).
/// </summary>
public static class SessionRounding
{
    /// <summary>The rounded value <c>q·quantum</c> (same shape, dtype and device as <paramref name="value"/>), created in
    /// the caller's dispose scope.</summary>
    /// <param name="value">The value to round.</param>
    /// <param name="quantum">The grid step, &gt; 0.</param>
    /// <param name="stepIncrease">How far the step count may be raised when everything rounds to 0 (0 = never).</param>
    public static Tensor Round(Tensor value, double quantum, int stepIncrease = 0)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!(quantum > 0) || double.IsInfinity(quantum)) throw new ArgumentOutOfRangeException(nameof(quantum), quantum, "The rounding quantum must be a finite number > 0.");
        if (stepIncrease < 0) throw new ArgumentOutOfRangeException(nameof(stepIncrease), stepIncrease, "RoundingStepIncrease must be ≥ 0.");
        using var scope = NewDisposeScope();
        var steps = value.div(quantum).round();
        for (int n = 2; n <= stepIncrease + 1 && !steps.ne(0).any().item<bool>(); n++)
            steps = value.mul(n).div(quantum).round();
        return steps.mul(quantum).MoveToOuterDisposeScope();
    }
}
