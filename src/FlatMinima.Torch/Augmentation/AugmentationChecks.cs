using System;

namespace FlatMinima.Torch.Augmentation;

/// <summary>The argument checks the augmentation records share; each error names the setting.</summary>
internal static class AugmentationChecks
{
    /// <summary>A probability in [0, 1].</summary>
    public static void Probability(double value, string name)
    {
        if (!(value >= 0 && value <= 1)) throw new ArgumentOutOfRangeException(name, value, $"{name} must be a probability in [0, 1].");
    }

    /// <summary>A finite number ≥ 0 (a strength).</summary>
    public static void NonNegative(double value, string name)
    {
        if (!(value >= 0) || double.IsInfinity(value)) throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number ≥ 0.");
    }

    /// <summary>A range <c>lo ≤ min ≤ max ≤ hi</c> with both ends finite and min &gt; lo when <paramref name="lowExclusive"/>.</summary>
    public static void Range(double min, double max, string minName, string maxName, double lo, double hi, bool lowExclusive)
    {
        bool minOk = lowExclusive ? min > lo : min >= lo;
        string low = lowExclusive ? $"> {lo}" : $"≥ {lo}";
        if (!minOk || !(min <= hi) || double.IsInfinity(min))
            throw new ArgumentOutOfRangeException(minName, min, $"{minName} must be a finite number {low} and ≤ {hi}.");
        if (!(max >= min && max <= hi) || double.IsInfinity(max))
            throw new ArgumentOutOfRangeException(maxName, max, $"{maxName} must be ≥ {minName} ({min}) and ≤ {hi}.");
    }
}
