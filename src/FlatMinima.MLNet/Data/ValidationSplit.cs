using System;
using System.Collections.Generic;
using System.Linq;

namespace FlatMinima.MLNet;

/// <summary>A seeded hold-out of training rows, stratified by label and (optionally) domain.</summary>
internal static class ValidationSplit
{
    /// <summary>
    /// Splits row indices 0…N−1: from each (label, domain) group, <c>round(fraction · size)</c> rows chosen by a seeded
    /// shuffle go to validation, the rest stay for training. Both lists are in ascending row order.
    /// </summary>
    public static (long[] Train, long[] Validation) Stratified(IReadOnlyList<long> labels, IReadOnlyList<long>? domains, double fraction, int seed)
    {
        var random = new Random(seed);
        var held = new List<long>();
        var groups = Enumerable.Range(0, labels.Count).GroupBy(i => (labels[i], domains?[i] ?? 0)).OrderBy(g => g.Key);
        foreach (var group in groups)
        {
            var rows = group.Select(i => (long)i).ToArray();
            random.Shuffle(rows);
            held.AddRange(rows.Take((int)Math.Round(fraction * rows.Length, MidpointRounding.AwayFromZero)));
        }
        var validation = held.OrderBy(i => i).ToArray();
        var isHeld = new bool[labels.Count];
        foreach (var i in validation) isHeld[i] = true;
        var train = Enumerable.Range(0, labels.Count).Where(i => !isHeld[i]).Select(i => (long)i).ToArray();
        return (train, validation);
    }
}
