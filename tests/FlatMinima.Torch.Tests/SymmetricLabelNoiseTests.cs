using System;
using System.Linq;
using FlatMinima.Benchmarks;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Torch.Tests;

/// <summary>The label-noise benchmark's symmetric noise: rate, never a label to itself, uniform replacements, seeded, nested.</summary>
[TestClass]
public sealed class SymmetricLabelNoiseTests
{
    private const int Classes = 10;

    // 20,000 labels cycling through the classes.
    private static int[] CleanLabels(int count = 20000) => Enumerable.Range(0, count).Select(i => i % Classes).ToArray();

    [TestMethod]
    [DataRow(0.2)]
    [DataRow(0.4)]
    [DataRow(0.6)]
    public void RealizedRateIsCloseToTheRate(double rate)
    {
        var clean = CleanLabels();
        var noisy = SymmetricLabelNoise.Apply(clean, Classes, rate, seed: 3);
        double realized = SymmetricLabelNoise.RealizedRate(clean, noisy);
        // Binomial standard deviation ≤ 0.0035 at n = 20,000; 0.015 is more than 4 of them.
        Assert.AreEqual(rate, realized, 0.015, $"realized {realized}");
        Assert.IsTrue(noisy.All(y => y >= 0 && y < Classes));
    }

    [TestMethod]
    public void AtRateOneEveryLabelMovesToAnotherClassUniformly()
    {
        var clean = CleanLabels();
        var noisy = SymmetricLabelNoise.Apply(clean, Classes, 1.0, seed: 5);
        Assert.AreEqual(1.0, SymmetricLabelNoise.RealizedRate(clean, noisy));
        // Each class's replacements spread over the 9 others: 2,000 labels per class, ≈ 222 per other class.
        for (int c = 0; c < Classes; c++)
        {
            var replacements = Enumerable.Range(0, clean.Length).Where(i => clean[i] == c).Select(i => noisy[i]).ToArray();
            Assert.IsFalse(replacements.Contains(c), $"class {c} mapped to itself");
            var counts = Enumerable.Range(0, Classes).Where(k => k != c).Select(k => replacements.Count(y => y == k)).ToArray();
            Assert.IsTrue(counts.All(n => n > 150 && n < 300), $"class {c}: replacement counts {string.Join(",", counts)}");
        }
    }

    [TestMethod]
    public void RateZeroKeepsEveryLabel()
    {
        var clean = CleanLabels(1000);
        CollectionAssert.AreEqual(clean, SymmetricLabelNoise.Apply(clean, Classes, 0.0, seed: 1));
    }

    [TestMethod]
    public void DeterministicPerSeedAndDifferentAcrossSeeds()
    {
        var clean = CleanLabels(5000);
        CollectionAssert.AreEqual(SymmetricLabelNoise.Apply(clean, Classes, 0.4, seed: 7), SymmetricLabelNoise.Apply(clean, Classes, 0.4, seed: 7));
        CollectionAssert.AreNotEqual(SymmetricLabelNoise.Apply(clean, Classes, 0.4, seed: 7), SymmetricLabelNoise.Apply(clean, Classes, 0.4, seed: 8));
    }

    [TestMethod]
    public void RatesAreNestedForASeed()
    {
        var clean = CleanLabels(5000);
        var low = SymmetricLabelNoise.Apply(clean, Classes, 0.2, seed: 11);
        var high = SymmetricLabelNoise.Apply(clean, Classes, 0.4, seed: 11);
        for (int i = 0; i < clean.Length; i++)
            if (low[i] != clean[i]) Assert.AreEqual(low[i], high[i], $"label {i} is wrong at 0.2 but not the same wrong label at 0.4");
        Assert.IsTrue(SymmetricLabelNoise.RealizedRate(clean, high) > SymmetricLabelNoise.RealizedRate(clean, low));
    }

    [TestMethod]
    public void BadInputsAreRejectedNamingTheArgument()
    {
        var clean = CleanLabels(100);
        Assert.AreEqual("rate", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SymmetricLabelNoise.Apply(clean, Classes, 1.5, 1)).ParamName);
        Assert.AreEqual("rate", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SymmetricLabelNoise.Apply(clean, Classes, double.NaN, 1)).ParamName);
        Assert.AreEqual("classCount", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SymmetricLabelNoise.Apply(clean, 1, 0.2, 1)).ParamName);
        Assert.AreEqual("labels", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SymmetricLabelNoise.Apply(new[] { 0, 10 }, Classes, 0.2, 1)).ParamName);
        Assert.ThrowsExactly<ArgumentException>(() => SymmetricLabelNoise.RealizedRate(new[] { 1, 2 }, new[] { 1 }));
    }
}
