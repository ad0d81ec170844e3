using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Linq;
using FlatMinima.MLNet.IncrementalFewShot;
using Microsoft.ML;

namespace FlatMinima.MLNet.Tests.Faults;

/// <summary>A model zip as an ordered list of (entry name, uncompressed bytes), to damage and write back.</summary>
internal sealed class ModelZip
{
    public ModelZip(IEnumerable<(string Name, byte[] Bytes)> entries) => Entries = entries.ToList();

    public List<(string Name, byte[] Bytes)> Entries { get; }

    public static ModelZip Read(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        return new ModelZip(archive.Entries.Select(e =>
        {
            using var s = e.Open();
            using var m = new MemoryStream();
            s.CopyTo(m);
            return (e.FullName, m.ToArray());
        }).ToList());
    }

    public ModelZip Clone() => new(Entries.Select(e => (e.Name, (byte[])e.Bytes.Clone())));

    public byte[] ToBytes()
    {
        using var m = new MemoryStream();
        using (var archive = new ZipArchive(m, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, bytes) in Entries)
            {
                using var s = archive.CreateEntry(name, CompressionLevel.Fastest).Open();
                s.Write(bytes);
            }
        return m.ToArray();
    }

    public int IndexOf(string suffix) => Entries.FindIndex(e => e.Name.EndsWith(suffix, StringComparison.Ordinal));

    public byte[] this[string suffix]
    {
        get => Entries[IndexOf(suffix)].Bytes;
        set => Entries[IndexOf(suffix)] = (Entries[IndexOf(suffix)].Name, value);
    }

    /// <summary>The entry name ending in <paramref name="suffix"/>.</summary>
    public string Name(string suffix) => Entries[IndexOf(suffix)].Name;

    /// <summary>The FlatMinima transformer's <c>Model.key</c>: the one whose ML.NET header names one of our loaders.</summary>
    public string OurModelKey => Entries.First(e => e.Name.EndsWith("Model.key", StringComparison.Ordinal)
        && (Contains(e.Bytes, "FMIMGCLS") || Contains(e.Bytes, "FMF2MXFM"))).Name;

    /// <summary>Overwrites the int32 at <paramref name="offset"/> bytes after the start of the model data (ML.NET's FpModel) of entry <paramref name="entry"/>.</summary>
    public void SetModelInt(string entry, int offset, int value)
    {
        var bytes = this[entry];
        long fpModel = BitConverter.ToInt64(bytes, 16);
        BitConverter.TryWriteBytes(bytes.AsSpan((int)fpModel + offset, 4), value);
    }

    public int GetModelInt(string entry, int offset)
    {
        var bytes = this[entry];
        return BitConverter.ToInt32(bytes, (int)BitConverter.ToInt64(bytes, 16) + offset);
    }

    private static bool Contains(byte[] bytes, string ascii) =>
        bytes.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(ascii)) >= 0;
}

/// <summary>The fixture models, their rows and expected scores, and scoring of loaded models.</summary>
internal static class FaultModels
{
    public static string Fixture(string name) => Path.Combine(TestData.RepoRoot, "tests", "FlatMinima.MLNet.Tests", "Fixtures", name);

    /// <summary>The fixture zip bytes as saved by the previous format (0x00010001).</summary>
    public static byte[] OldFormat(string name) => File.ReadAllBytes(Fixture(name + ".zip"));

    /// <summary>The fixture loaded and saved again by this version (format 0x00010002, with checksums).</summary>
    public static byte[] NewFormat(string name)
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Model.Load(Fixture(name + ".zip"), out var schema);
        try
        {
            using var m = new MemoryStream();
            ml.Model.Save(model, schema, m);
            return m.ToArray();
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }
    }

    /// <summary>The first <paramref name="count"/> rows of the fixture's score file, with their expected scores.</summary>
    public static (ImageRow[] Rows, float[][] Expected) Rows(string name, int count = int.MaxValue)
    {
        var lines = File.ReadAllLines(Fixture(name + ".scores.csv")).Skip(1).Where(l => l.Length > 0).Take(count).Select(l => l.Split(',')).ToArray();
        var rows = lines.Select(p => new ImageRow { Label = p[0].Split('/')[1], ImageSource = File.ReadAllBytes(Path.Combine(TestData.Subset, p[0])) }).ToArray();
        var expected = lines.Select(p => p[1].Split(' ').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray()).ToArray();
        return (rows, expected);
    }

    /// <summary>Loads <paramref name="zip"/> with <see cref="FlatMinimaModelLoading.Load(MLContext, Stream, out Microsoft.ML.DataViewSchema)"/> and scores <paramref name="rows"/>.</summary>
    public static float[][] LoadAndScore(byte[] zip, ImageRow[] rows)
    {
        var ml = new MLContext(seed: 1);
        var model = FlatMinimaModelLoading.Load(ml, new MemoryStream(zip), out _);
        try
        {
            if (!ContainsFlatMinima(model)) throw new ForeignModelException();
            var data = ml.Data.LoadFromEnumerable(rows);
            if (model is FlatMinimaIncrementalFewShotTransformer fewShot)
                data = fewShot.MapLabelToKey(ml, "Label").Fit(data).Transform(data);
            return TestData.Scores(model.Transform(data));
        }
        finally
        {
            DisposeAll(model);
        }
    }

    private static bool ContainsFlatMinima(ITransformer model) =>
        model is ImageScoringTransformer<ImageClassification.FlatMinimaImageClassifier> or FlatMinimaIncrementalFewShotTransformer
        || model is IEnumerable<ITransformer> chain && chain.Any(ContainsFlatMinima);

    private static void DisposeAll(ITransformer model)
    {
        if (model is IEnumerable<ITransformer> chain)
            foreach (var t in chain) (t as IDisposable)?.Dispose();
        (model as IDisposable)?.Dispose();
    }
}

/// <summary>The zip loaded, but as a model without a FlatMinima transformer (e.g. an entry swapped in from another model).</summary>
internal sealed class ForeignModelException : Exception
{
    public ForeignModelException() : base("The zip loaded as a model without a FlatMinima transformer.") { }
}
