using System;
using System.Collections.Generic;

namespace FlatMinima.Benchmarks;

/// <summary>
/// Symmetric label noise at rate r: each label is, with probability r, replaced by a class drawn uniformly from the
/// K − 1 <em>other</em> classes (it never maps to itself), so the expected fraction of changed labels is r. (Some papers
/// draw the replacement from all K classes; their "r" changes only r·(K − 1)/K of the labels.)
/// </summary>
/// <remarks>
/// Deterministic per seed, and nested across rates: for a seed, example i draws u_i ~ U[0, 1) and an offset
/// k_i ∈ {1, …, K − 1} once, whatever the rate, and its label becomes (y_i + k_i) mod K when u_i &lt; r. So the examples
/// corrupted at rate 0.2 are also corrupted at 0.4, with the same wrong label, and rates compare on the same draws.
/// </remarks>
internal static class SymmetricLabelNoise
{
    /// <summary>The labels with symmetric noise at <paramref name="rate"/> (a new array; the input is not changed).</summary>
    /// <param name="labels">Clean labels in [0, <paramref name="classCount"/>).</param>
    /// <param name="classCount">Number of classes K ≥ 2.</param>
    /// <param name="rate">Probability r ∈ [0, 1] of replacing a label.</param>
    /// <param name="seed">Seed of the draws (<see cref="Random(int)"/>, stable across runs and platforms).</param>
    public static int[] Apply(IReadOnlyList<int> labels, int classCount, double rate, int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (classCount < 2) throw new ArgumentOutOfRangeException(nameof(classCount), classCount, "Symmetric label noise needs at least 2 classes.");
        if (!(rate >= 0 && rate <= 1)) throw new ArgumentOutOfRangeException(nameof(rate), rate, "The noise rate must be in [0, 1].");
        var random = new Random(seed);
        var noisy = new int[labels.Count];
        for (int i = 0; i < noisy.Length; i++)
        {
            int y = labels[i];
            if (y < 0 || y >= classCount)
                throw new ArgumentOutOfRangeException(nameof(labels), y, $"Label {i} is {y}, outside [0, {classCount}).");
            double u = random.NextDouble();
            int offset = 1 + random.Next(classCount - 1);   // both drawn for every example: nested across rates
            noisy[i] = u < rate ? (y + offset) % classCount : y;
        }
        return noisy;
    }

    /// <summary>The fraction of positions where <paramref name="noisy"/> differs from <paramref name="clean"/>.</summary>
    public static double RealizedRate(IReadOnlyList<int> clean, IReadOnlyList<int> noisy)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(noisy);
        if (clean.Count != noisy.Count) throw new ArgumentException($"{clean.Count} clean labels but {noisy.Count} noisy labels.", nameof(noisy));
        if (clean.Count == 0) return 0;
        int changed = 0;
        for (int i = 0; i < clean.Count; i++) if (clean[i] != noisy[i]) changed++;
        return (double)changed / clean.Count;
    }
}
