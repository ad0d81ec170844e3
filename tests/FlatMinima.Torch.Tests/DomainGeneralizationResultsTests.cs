using System;
using System.IO;
using System.Linq;
using FlatMinima.Benchmarks;
using FlatMinima.Torch.Averaging;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Torch.Tests;

/// <summary>The domain-generalization benchmark's results files: parts run separately (test domains 0° and 75°) merge
/// into one report whose averages, paired gaps and counts match a hand computation; bad merges name the file or run.</summary>
[TestClass]
public sealed class DomainGeneralizationResultsTests
{
    private const string Configuration = "300 steps, batch 16 per domain, Adam lr 0.003, SWAD every 15 steps, SAM ρ 0.05, CNN width 0.25, 1000 images per domain";

    private static readonly AveragingReport Window = new("SWAD", 151, 550, 400, 0.6477, true, "N_s = 3") { BatchNormBatches = 3 };

    // ERM and ERM+SWAD, seeds 0 and 1, on one test domain: accuracies in seed order, ERM 10/12 s and SWAD 11/13 s per run.
    private static DomainGeneralizationResults Part(int domain, double[] erm, double[] swad, string configuration = Configuration) =>
        new(DomainGeneralizationResults.ModeName, configuration, 15, new[] { "ERM", "ERM+SWAD" }, 5.0, new[]
        {
            new DomainGeneralizationRun("ERM", 0, domain, erm[0], 0.8, 300, 10, null),
            new DomainGeneralizationRun("ERM+SWAD", 0, domain, swad[0], 0.8, 300, 11, Window),
            new DomainGeneralizationRun("ERM", 1, domain, erm[1], 0.8, 300, 12, null),
            new DomainGeneralizationRun("ERM+SWAD", 1, domain, swad[1], 0.8, 300, 13, Window),
        });

    private static string[] Save(params DomainGeneralizationResults[] parts) => parts.Select(part =>
    {
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-dg-{Guid.NewGuid():N}.json");
        ResultFiles.Write(path, part, part.Runs, DomainGeneralizationResults.CsvColumns);
        return path;
    }).ToArray();

    private static void Delete(string[] paths)
    {
        foreach (var path in paths) File.Delete(path);
    }

    [TestMethod]
    public void PartsMergeIntoTheHandComputedReport()
    {
        var parts = new[] { Part(0, new[] { 0.50, 0.60 }, new[] { 0.56, 0.58 }), Part(5, new[] { 0.70, 0.80 }, new[] { 0.74, 0.90 }) };
        var paths = Save(parts);
        try
        {
            var merged = DomainGeneralizationResults.Merge(paths);
            // Every run comes back as written, SWAD's window included.
            CollectionAssert.AreEqual(parts.SelectMany(p => p.Runs).ToArray(), merged.Runs);
            CollectionAssert.AreEqual(new[] { "ERM", "ERM+SWAD" }, merged.Methods);
            CollectionAssert.AreEqual(new[] { 0, 5 }, merged.TestDomainList());
            CollectionAssert.AreEqual(new[] { 0, 1 }, merged.SeedList());
            Assert.AreEqual(10.0, merged.TotalMinutes, 1e-12);
            var lines = merged.Report().Split('\n');
            // Cells: DomainBed's population SE, e.g. ERM at 0° {50, 60}: 55 ± 5/√2. ERM's seed averages 60 and 70: 65.0 ± 3.5;
            // ERM+SWAD's 65 and 74: 69.5 ± 3.2. Paired gaps 5 and 4: +4.5 ± 0.5 (sample SE). Above ERM on 3 of the 4
            // (seed, domain) pairs (seed 1 at 0°: 58 < 60). 12 s per run vs ERM's 11 s.
            Assert.AreEqual("| ERM | 55.0 ± 3.5 | 75.0 ± 3.5 | **65.0 ± 3.5** | — | — | 11 |",
                lines.Single(l => l.StartsWith("| ERM |", StringComparison.Ordinal)).TrimEnd('\r'));
            Assert.AreEqual("| ERM+SWAD | 57.0 ± 0.7 | 82.0 ± 5.7 | **69.5 ± 3.2** | +4.5 ± 0.5 | 3 of 4 | 12 (1.09×) |",
                lines.Single(l => l.StartsWith("| ERM+SWAD | 5", StringComparison.Ordinal)).TrimEnd('\r'));
            // SWAD's window table: one row per ERM+SWAD run.
            Assert.AreEqual(4, lines.Count(l => l.StartsWith("| ERM+SWAD | ", StringComparison.Ordinal) && l.Contains("| 151–550 |", StringComparison.Ordinal)));
            // Without a SWAD method there is no window table, not an empty one.
            var ermOnly = merged with { Methods = new[] { "ERM" }, Runs = merged.Runs.Where(r => r.Method == "ERM").ToArray() };
            Assert.IsFalse(ermOnly.Report().Contains("SWAD windows", StringComparison.Ordinal));
            StringAssert.Contains(merged.Report(), "SWAD windows");
        }
        finally
        {
            Delete(paths);
        }
    }

    [TestMethod]
    public void MergeRefusesOtherConfigurationsDuplicatesAndGaps()
    {
        var other = Save(Part(0, new[] { 0.5, 0.6 }, new[] { 0.5, 0.6 }), Part(5, new[] { 0.5, 0.6 }, new[] { 0.5, 0.6 }, Configuration.Replace("300 steps", "1500 steps")));
        var twice = Save(Part(0, new[] { 0.5, 0.6 }, new[] { 0.5, 0.6 }), Part(0, new[] { 0.5, 0.6 }, new[] { 0.5, 0.6 }));
        var seedZeroOnly = Part(5, new[] { 0.5, 0.6 }, new[] { 0.5, 0.6 });
        var uneven = Save(Part(0, new[] { 0.5, 0.6 }, new[] { 0.5, 0.6 }), seedZeroOnly with { Runs = seedZeroOnly.Runs.Where(r => r.Seed == 0).ToArray() });
        var badDomain = Save(seedZeroOnly with { Runs = seedZeroOnly.Runs.Select(r => r with { TestDomain = 7 }).ToArray() });
        try
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => DomainGeneralizationResults.Merge(other));
            StringAssert.Contains(e.Message, other[1]);
            StringAssert.Contains(e.Message, "1500 steps");
            e = Assert.ThrowsExactly<InvalidDataException>(() => DomainGeneralizationResults.Merge(twice));
            StringAssert.Contains(e.Message, "ERM, seed 0, test domain 0° appears 2 times");
            e = Assert.ThrowsExactly<InvalidDataException>(() => DomainGeneralizationResults.Merge(uneven));
            StringAssert.Contains(e.Message, "No ERM run with seed 1 and test domain 75°");
            e = Assert.ThrowsExactly<InvalidDataException>(() => DomainGeneralizationResults.Merge(badDomain));
            StringAssert.Contains(e.Message, $"{badDomain[0]}, run 1: test domain 7");

            var part = Part(0, new[] { 0.5, 0.6 }, new[] { 0.5, 0.6 });
            var gap = part with { Runs = part.Runs.Where(r => !(r.Method == "ERM+SWAD" && r.Seed == 1)).ToArray() };
            e = Assert.ThrowsExactly<InvalidDataException>(() => gap.Report());
            StringAssert.Contains(e.Message, "No ERM+SWAD run with seed 1 and test domain 0°");
        }
        finally
        {
            Delete(other);
            Delete(twice);
            Delete(uneven);
            Delete(badDomain);
        }
    }
}
