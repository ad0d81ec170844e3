using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests.Faults;

/// <summary>
/// Seeded random damage to a valid image-classifier zip and an incremental few-shot zip (the fixtures saved again in the
/// current format): byte flips inside entries, truncated entries, edited length/count fields, entries swapped between
/// the zips, removed entries, truncated or flipped zip bytes. Every case must either load and score finite
/// probabilities (or load as a valid non-FlatMinima ML.NET model, when a swapped entry is one), or throw <see cref="InvalidDataException"/> naming an entry (<c>FlatMinima model entry '…'</c>) or the
/// zip (<c>The model zip …</c>) — never another exception, a crash, a hang or a large allocation. Damage to ML.NET's
/// own entries (its transformers' <c>Model.key</c>, vocabularies) may also end in ML.NET's own exceptions; the
/// <c>Schema</c> entry is not damaged (ML.NET's reader of it can hang; documented in docs/reliability.md).
/// CI runs <see cref="DefaultCases"/> cases; <c>FLATMINIMA_FUZZ_CASES=1000 dotnet test --filter LoaderFuzz</c> runs more,
/// <c>FLATMINIMA_FUZZ_SEED</c> replays another seed (the seed and any failing case are printed).
/// </summary>
[TestClass]
public sealed class LoaderFuzzTests
{
    /// <summary>Cases run when FLATMINIMA_FUZZ_CASES is not set.</summary>
    public const int DefaultCases = 240;

    /// <summary>Seed used when FLATMINIMA_FUZZ_SEED is not set.</summary>
    public const int DefaultSeed = 20261129;

    private static readonly string[] Mutations = { "flip", "truncate-entry", "edit-field", "swap-entry", "remove-entry", "truncate-zip", "flip-zip", "flip-mlnet-entry" };

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [Timeout(1_800_000)]
    public void LoaderFuzz_DamagedZipsLoadAndScoreOrFailWithTheDocumentedException()
    {
        int cases = int.TryParse(Environment.GetEnvironmentVariable("FLATMINIMA_FUZZ_CASES"), out int c) && c > 0 ? c : DefaultCases;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("FLATMINIMA_FUZZ_SEED"), out int s) ? s : DefaultSeed;
        int first = int.TryParse(Environment.GetEnvironmentVariable("FLATMINIMA_FUZZ_FIRST"), out int f0) && f0 >= 0 ? f0 : 0;
        TestContext.WriteLine($"Loader fuzz: seed {seed}, cases {first} to {first + cases - 1} (replay: FLATMINIMA_FUZZ_SEED={seed} FLATMINIMA_FUZZ_FIRST={first} FLATMINIMA_FUZZ_CASES={cases}).");

        var bases = new[] { "image-classifier", "incremental-few-shot" }.Select(n => (Name: n, Zip: ModelZip.Read(FaultModels.NewFormat(n)))).ToArray();
        var rows = bases.Select(b => FaultModels.Rows(b.Name, 3).Rows).ToArray();
        foreach (var (b, i) in bases.Select((b, i) => (b, i)))
            Assert.IsTrue(FaultModels.LoadAndScore(b.Zip.ToBytes(), rows[i]).All(r => r.All(float.IsFinite)), $"{b.Name}: the undamaged zip must score");

        var outcomes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        var total = Stopwatch.StartNew();
        TimeSpan slowest = TimeSpan.Zero;
        // The peak is measured from here: earlier tests in this process may have peaked higher (VmHWM reset); where it
        // cannot be reset, only a peak above the earlier one counts.
        bool peakReset = TestData.ResetPeakResident();
        long startWorkingSet = Process.GetCurrentProcess().WorkingSet64, maxAllocated = 0;
        long earlierPeak = peakReset ? 0 : Process.GetCurrentProcess().PeakWorkingSet64;
        for (int k = first; k < first + cases; k++)
        {
            var random = new Random(unchecked(seed * 1_000_003 + k)); // not HashCode.Combine: it is randomized per process
            int which = k % bases.Length;
            var (bytes, description) = Mutate(random, bases[which].Zip, bases[1 - which].Zip);
            string label = $"case {k} ({bases[which].Name}: {description})";
            if (Environment.GetEnvironmentVariable("FLATMINIMA_FUZZ_DUMP") is { Length: > 0 } dump) File.WriteAllBytes(Path.Combine(dump, $"case-{k}.zip"), bytes);
            long allocatedBefore = GC.GetTotalAllocatedBytes(precise: false);
            var watch = Stopwatch.StartNew();
            bool mlnetPart = description.StartsWith("flip-mlnet-entry", StringComparison.Ordinal);
            var task = Task.Run(() => Classify(bytes, rows[which], mlnetPart));
            if (!task.Wait(TimeSpan.FromSeconds(30)))
            {
                failures.Add($"{label}: no result after 30 s (hang)");
                break;
            }
            watch.Stop();
            maxAllocated = Math.Max(maxAllocated, GC.GetTotalAllocatedBytes(precise: false) - allocatedBefore);
            if (watch.Elapsed > slowest) slowest = watch.Elapsed;
            var (outcome, error) = task.Result;
            string key = $"{Mutations.OrderByDescending(m => m.Length).First(m => description.StartsWith(m, StringComparison.Ordinal))} → {outcome}";
            outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
            if (error is not null) failures.Add($"{label}: {error}");
            if (watch.Elapsed > TimeSpan.FromSeconds(5)) failures.Add($"{label}: took {watch.Elapsed.TotalSeconds:F1} s");
        }
        total.Stop();
        var process = Process.GetCurrentProcess();
        long peak = peakReset ? Math.Max(TestData.PeakResidentBytes(), process.WorkingSet64) : Math.Max(process.PeakWorkingSet64, earlierPeak);
        TestContext.WriteLine($"{cases} cases in {total.Elapsed.TotalSeconds:F1} s (slowest {slowest.TotalMilliseconds:F0} ms); " +
            $"largest managed allocation per case {maxAllocated >> 20} MB; working set at start {startWorkingSet >> 20} MB, peak {peak >> 20} MB.");
        foreach (var (key, count) in outcomes) TestContext.WriteLine($"  {key}: {count}");
        foreach (var f in failures.Take(20)) TestContext.WriteLine("FAILED " + f);
        Assert.AreEqual(0, failures.Count, $"{failures.Count} of {cases} cases failed (seed {seed}); first: {failures.FirstOrDefault()}");
        Assert.IsTrue(maxAllocated < 500L << 20, $"A case allocated {maxAllocated >> 20} MB.");
        Assert.IsTrue(peak - Math.Max(startWorkingSet, earlierPeak) < 500L << 20, $"The working set grew from {startWorkingSet >> 20} MB to a peak of {peak >> 20} MB.");
    }

    /// <summary>Loads and scores; returns the outcome and, when it is not an accepted one, what went wrong.</summary>
    /// <remarks>Damage to ML.NET's own entries (<paramref name="mlnetPart"/>) may also end in ML.NET's own exceptions,
    /// e.g. a renamed column of its MapKeyToValue transformer failing at Transform: recorded, not a failure.</remarks>
    private static (string Outcome, string? Error) Classify(byte[] zip, ImageRow[] rows, bool mlnetPart)
    {
        try
        {
            var scores = FaultModels.LoadAndScore(zip, rows);
            if (scores.Length != rows.Length || scores.Any(r => r.Length == 0 || !r.All(float.IsFinite)))
                return ("loaded, non-finite scores", "scores are not finite: " + string.Join(" | ", scores.Select(r => string.Join(" ", r))));
            return ("loaded and scored", null);
        }
        catch (ForeignModelException)
        {
            // A swapped Model.key can be another valid ML.NET model (e.g. MapKeyToValue): not a FlatMinima model to score.
            return ("loaded another (ML.NET) model", null);
        }
        catch (InvalidDataException e) when (e.Message.StartsWith("FlatMinima model entry '", StringComparison.Ordinal))
        {
            return Printable(e.Message) ? ("rejected, entry named", null) : ("rejected, unprintable message", e.Message);
        }
        catch (InvalidDataException e) when (e.Message.StartsWith("The model zip ", StringComparison.Ordinal))
        {
            return Printable(e.Message) ? ("rejected, zip named", null) : ("rejected, unprintable message", e.Message);
        }
        catch (Exception e) when (mlnetPart)
        {
            return ($"ML.NET's own {e.GetType().Name}", null);
        }
        catch (Exception e)
        {
            return ("other exception", $"{e.GetType().Name}: {e.Message}");
        }
    }

    private static bool Printable(string message) => message.All(ch => !char.IsControl(ch) && ch != '\uFFFD');

    /// <summary>One seeded mutation of <paramref name="zip"/> (entries may come from <paramref name="other"/>).</summary>
    private static (byte[] Bytes, string Description) Mutate(Random random, ModelZip zip, ModelZip other)
    {
        var z = zip.Clone();
        // FlatMinima's own entries: the transformer's Model.key and the binary entries.
        string ourKey = z.OurModelKey;
        var ours = z.Entries.Select((e, i) => (e.Name, i)).Where(e => e.Name == ourKey || e.Name.EndsWith(".bin", StringComparison.Ordinal)).Select(e => e.i).ToArray();
        // ML.NET's entries, except Schema: ML.NET's BinaryLoader can spin without end on a damaged Schema entry (e.g. a
        // vector type's dimension count 1 → 56065) before any FlatMinima code runs; see docs/reliability.md.
        var others = Enumerable.Range(0, z.Entries.Count).Except(ours).Where(i => z.Entries[i].Name != "Schema").ToArray();
        int pick = ours[random.Next(ours.Length)];
        var (name, bytes) = z.Entries[pick];
        double roll = random.NextDouble();
        string description;
        if (roll < 0.30)
        {
            int flips = random.Next(1, 5);
            for (int f = 0; f < flips; f++) bytes[random.Next(bytes.Length)] ^= (byte)random.Next(1, 256);
            description = $"flip {flips} byte(s) of {name}";
        }
        else if (roll < 0.42)
        {
            int length = random.Next(bytes.Length);
            z.Entries[pick] = (name, bytes[..length]);
            description = $"truncate-entry {name} to {length} of {bytes.Length} bytes";
        }
        else if (roll < 0.62)
        {
            int[] values = { 0, -1, 1, 2, 3, 255, 4000, 200_000, 200_000_000, int.MaxValue, int.MinValue, random.Next() };
            int value = values[random.Next(values.Length)];
            int start = name == ourKey ? (int)BitConverter.ToInt64(bytes, 16) : 0;
            int end = name == ourKey ? start + (int)BitConverter.ToInt64(bytes, 24) : Math.Min(bytes.Length, 96);
            int offset = start + 4 * random.Next(Math.Max(1, (end - start - 4) / 4));
            if (offset + 4 <= bytes.Length) BitConverter.TryWriteBytes(bytes.AsSpan(offset, 4), value);
            description = $"edit-field int32 at {offset} of {name} = {value}";
        }
        else if (roll < 0.72)
        {
            var donor = other.Entries[random.Next(other.Entries.Count)];
            z.Entries[pick] = (name, (byte[])donor.Bytes.Clone());
            description = $"swap-entry {name} ← {donor.Name} of the other zip";
        }
        else if (roll < 0.78)
        {
            z.Entries.RemoveAt(pick);
            description = $"remove-entry {name}";
        }
        else if (roll < 0.86)
        {
            var raw = z.ToBytes();
            int length = random.Next(raw.Length);
            return (raw[..length], $"truncate-zip to {length} of {raw.Length} bytes");
        }
        else if (roll < 0.93)
        {
            var raw = z.ToBytes();
            int flips = random.Next(1, 4);
            for (int f = 0; f < flips; f++) raw[random.Next(raw.Length)] ^= (byte)random.Next(1, 256);
            return (raw, $"flip-zip {flips} byte(s) of the compressed zip");
        }
        else
        {
            int index = others[random.Next(others.Length)];
            var entry = z.Entries[index];
            if (entry.Bytes.Length > 0) entry.Bytes[random.Next(entry.Bytes.Length)] ^= (byte)random.Next(1, 256);
            description = $"flip-mlnet-entry 1 byte of {entry.Name}";
        }
        return (z.ToBytes(), description);
    }
}
