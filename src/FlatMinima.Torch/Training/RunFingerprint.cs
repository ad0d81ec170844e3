using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Security.Cryptography;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// What identifies a training run for its checkpoints: every <see cref="ClassifierTrainingOptions"/> setting that changes
/// the result (all but <see cref="NotInFingerprint"/>, found by reflection so that a new setting is included), the
/// steps per epoch, the model's architecture (type, and name, dtype and shape of every parameter and buffer) and a
/// SHA-256 of the training and validation tensors. A checkpoint resumes only a run with the same entries; a mismatch
/// names the entries that differ.
/// </summary>
internal sealed partial class RunFingerprint
{
    /// <summary>Settings that do not change the trained weights (callbacks, where checkpoints go, failure handling).</summary>
    internal static readonly IReadOnlySet<string> NotInFingerprint = new HashSet<string>
    {
        nameof(ClassifierTrainingOptions.Progress), nameof(ClassifierTrainingOptions.CancellationToken),
        nameof(ClassifierTrainingOptions.CheckpointPath), nameof(ClassifierTrainingOptions.TuneGlibcMalloc),
        nameof(ClassifierTrainingOptions.OnFailure), nameof(ClassifierTrainingOptions.LoaderWorkers),
        nameof(ClassifierTrainingOptions.PrefetchBatches),
    };

    private const int MaxEntries = 256;
    private const int MaxValueLength = 1 << 20;

    private RunFingerprint(IReadOnlyList<KeyValuePair<string, string>> entries) => Entries = entries;

    /// <summary>Name and description of every identifying value, in a fixed order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Entries { get; }

    /// <summary>The fingerprint of a run of <paramref name="options"/> on <paramref name="model"/> and the data.</summary>
    public static RunFingerprint Of(ClassifierTrainingOptions options, int stepsPerEpoch, nn.Module model, IExampleSet train, IExampleSet? validation)
    {
        var entries = new List<KeyValuePair<string, string>>();
        foreach (var property in typeof(ClassifierTrainingOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
                     .Where(p => p.CanWrite && !NotInFingerprint.Contains(p.Name)))
            entries.Add(new(property.Name, Describe(property.GetValue(options), depth: 0)));
        entries.Add(new("StepsPerEpoch", stepsPerEpoch.ToString(CultureInfo.InvariantCulture)));
        entries.Add(new("Model", Architecture(model)));
        entries.Add(new("TrainingData", DataDigest(train)));
        entries.Add(new("ValidationData", validation is null ? "none" : DataDigest(validation)));
        return new RunFingerprint(entries);
    }

    /// <summary>Writes the entries.</summary>
    public void Write(BinaryWriter writer)
    {
        writer.Write(Entries.Count);
        foreach (var (name, value) in Entries)
        {
            writer.Write(name);
            writer.Write(value);
        }
    }

    /// <summary>Reads entries written by <see cref="Write"/> (counts and lengths bounded).</summary>
    public static RunFingerprint Read(BinaryReader reader)
    {
        int count = reader.ReadInt32();
        if (count < 0 || count > MaxEntries) throw new InvalidDataException($"The training checkpoint is damaged: its run fingerprint has {count} entries.");
        var entries = new List<KeyValuePair<string, string>>(count);
        for (int i = 0; i < count; i++)
        {
            string name = reader.ReadString(), value = reader.ReadString();
            if (name.Length > MaxValueLength || value.Length > MaxValueLength) throw new InvalidDataException("The training checkpoint is damaged: an over-long fingerprint entry.");
            entries.Add(new(name, value));
        }
        return new RunFingerprint(entries);
    }

    /// <summary>The differences from <paramref name="saved"/> as "Name: checkpoint …, this run …" lines; empty when equal.</summary>
    public IReadOnlyList<string> DifferencesFrom(RunFingerprint saved)
    {
        var mine = Entries.ToDictionary(e => e.Key, e => e.Value);
        var theirs = saved.Entries.ToDictionary(e => e.Key, e => e.Value);
        var differences = new List<string>();
        foreach (var name in theirs.Keys.Union(mine.Keys))
        {
            theirs.TryGetValue(name, out var before);
            mine.TryGetValue(name, out var now);
            if (before == now) continue;
            // A checkpoint written before a setting existed lacks its entry (or, inside a nested record, the property):
            // it matches a run that leaves the setting at its default, which is how every run trained then.
            if (before is null && DefaultEntries.TryGetValue(name, out var byDefault) && now == byDefault) continue;
            if (before is not null && now is not null && WithoutNullSettings(before) == WithoutNullSettings(now)) continue;
            differences.Add(name == "Model" && before is not null && now is not null
                ? $"Model: {ModelDifference(before, now)}"
                : $"{name}: checkpoint {Short(before)}, this run {Short(now)}");
        }
        return differences;
    }

    // The entries of a run that sets nothing (the defaults of every setting), by name.
    private static readonly Dictionary<string, string> DefaultEntries = typeof(ClassifierTrainingOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && !NotInFingerprint.Contains(p.Name))
        .ToDictionary(p => p.Name, p => Describe(p.GetValue(new ClassifierTrainingOptions()), depth: 0));

    // A description without its null-valued nested properties ("Efficiency = null"): a property added to a record later
    // with a null default is absent from older checkpoints and means the same.
    private static string WithoutNullSettings(string description) =>
        NullSetting().Replace(description, m => m.Value.StartsWith(',') ? "" : m.Groups["brace"].Value);

    [System.Text.RegularExpressions.GeneratedRegex(@", \w+ = null(?=[,} ])|(?<brace>\{ )\w+ = null(, )?")]
    private static partial System.Text.RegularExpressions.Regex NullSetting();

    // Values print with the invariant culture; records of this assembly print their settable properties (collections by
    // content); other objects (a custom GradientStepOptions) by their ToString, which identifies them.
    private static string Describe(object? value, int depth) => value switch
    {
        null => "null",
        string s => s,
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable items => "[" + string.Join(", ", items.Cast<object?>().Select(i => Describe(i, depth + 1))) + "]",
        _ when depth < 4 && value.GetType().Assembly == typeof(RunFingerprint).Assembly =>
            value.GetType().Name + " { " + string.Join(", ", value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.CanWrite && p.GetIndexParameters().Length == 0)
                .Select(p => $"{p.Name} = {Describe(p.GetValue(value), depth + 1)}")) + " }",
        _ => value.ToString() ?? value.GetType().Name,
    };

    // "Type; name:dtype[shape]; …" for every parameter and buffer.
    private static string Architecture(nn.Module model) =>
        model.GetType().Name + "; " + string.Join("; ", model.state_dict().Select(p => $"{p.Key}:{p.Value.dtype}[{string.Join(",", p.Value.shape)}]"));

    private static string ModelDifference(string before, string now)
    {
        var a = before.Split("; ");
        var b = now.Split("; ");
        if (a[0] != b[0]) return $"checkpoint {a[0]}, this run {b[0]}";
        for (int i = 1; i < Math.Min(a.Length, b.Length); i++)
            if (a[i] != b[i]) return $"checkpoint has {a[i]}, this run {b[i]}";
        return $"checkpoint has {a.Length - 1} tensors, this run {b.Length - 1}";
    }

    /// <summary>The inputs' digest (<see cref="IExampleSet.InputsDigest"/>) and the shape and SHA-256 of the labels and
    /// domains, hashed in slices of at most <paramref name="sliceBytes"/> bytes.</summary>
    internal static string DataDigest(IExampleSet data, long sliceBytes = TensorDataset.HashChunkBytes)
    {
        var parts = new List<string> { data is TensorDataset tensors ? TensorDataset.Digest("inputs", tensors.Inputs, sliceBytes) : data.InputsDigest() };
        parts.Add(TensorDataset.Digest("labels", data.Labels, sliceBytes));
        if (data.Domains is Tensor domains) parts.Add(TensorDataset.Digest("domains", domains, sliceBytes));
        return string.Join(", ", parts);
    }

    private static string Short(string? value) => value is null ? "(absent)" : value.Length <= 200 ? value : value[..200] + "…";
}
