using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>
/// The training images read from an IDataView, held either decoded in memory (<see cref="InMemoryImages"/>) or as encoded
/// bytes decoded batch by batch (<see cref="EncodedImages"/>): the labels, the geometry, and example sets over any subset
/// of the rows (training part, held-out validation part), normalized with given channel statistics.
/// </summary>
internal abstract class TrainingImages : IDisposable
{
    /// <summary>Rows per chunk of the streaming statistics pass (and of reading in memory).</summary>
    public const int ChunkSize = 256;

    /// <summary>0-based labels of the kept rows.</summary>
    public abstract long[] Labels { get; }

    /// <summary>The model's input channels, height and width.</summary>
    public abstract (int Channels, int Height, int Width) Geometry { get; }

    /// <summary>Rows left out under <c>BadImagePolicy.Skip</c>, the first reasons, and the sampled size (when chosen from the data).</summary>
    public abstract (long Skipped, IReadOnlyList<string> Reasons, SampledGeometry? Sampled) Report { get; }

    /// <summary>Whether the images are streamed (decoded per batch).</summary>
    public abstract bool Streaming { get; }

    /// <summary>Per-channel mean and population standard deviation of <paramref name="rows"/> (all rows when null).</summary>
    public abstract (float[] Mean, float[] Std) ChannelStatistics(long[]? rows);

    /// <summary>The examples at <paramref name="rows"/> (all rows when null), normalized with <paramref name="mean"/>/<paramref name="std"/>; the caller disposes them.</summary>
    public abstract IExampleSet CreateSet(long[]? rows, float[] mean, float[] std, long[]? domains);

    /// <summary>Releases the images.</summary>
    public abstract void Dispose();

    /// <summary>Disposes the tensors of an example set made by <see cref="CreateSet"/>.</summary>
    public static void DisposeSet(IExampleSet? set)
    {
        if (set is null) return;
        if (set is TensorDataset tensors) tensors.Inputs.Dispose();
        set.Labels.Dispose();
        set.Domains?.Dispose();
    }

    protected static long[] Select(long[] values, long[]? rows) => rows is null ? values : rows.Select(i => values[i]).ToArray();
}

/// <summary>Training images decoded into one float tensor <c>[N, C, H, W]</c> (<see cref="ImageDataLoading.InMemory"/>).</summary>
internal sealed class InMemoryImages(ImageExamples examples) : TrainingImages
{
    public override long[] Labels => examples.Labels;

    public override (int Channels, int Height, int Width) Geometry => (examples.Channels, examples.Height, examples.Width);

    public override (long Skipped, IReadOnlyList<string> Reasons, SampledGeometry? Sampled) Report => (examples.SkippedRows, examples.SkipReasons, examples.Geometry);

    public override bool Streaming => false;

    public override (float[] Mean, float[] Std) ChannelStatistics(long[]? rows)
    {
        using var part = Part(rows);
        return ImageTrainingData.ChannelStatistics(part);
    }

    public override IExampleSet CreateSet(long[]? rows, float[] mean, float[] std, long[]? domains)
    {
        using var part = Part(rows);
        return new TensorDataset(ImageTrainingData.Normalize(part, mean, std), tensor(Select(examples.Labels, rows)))
        {
            Domains = domains is null ? null : tensor(Select(domains, rows)),
        };
    }

    public override void Dispose() => examples.Images.Dispose();

    private Tensor Part(long[]? rows)
    {
        if (rows is null || rows.Length == examples.Labels.Length && rows.Select((r, i) => r == i).All(same => same)) return examples.Images.alias();
        using var index = tensor(rows);
        return examples.Images.index_select(0, index);
    }
}
