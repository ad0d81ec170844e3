using System;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Data;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.Benchmarks;

/// <summary>A Fashion-MNIST image as an ML.NET row: a text label and 1×28×28 pixels in [0, 255].</summary>
internal sealed class PixelRow
{
    public string Label { get; set; } = "";

    [VectorType(1, 28, 28)]
    public float[] Pixels { get; set; } = Array.Empty<float>();
}

internal static class BenchmarkData
{
    /// <summary>The first <paramref name="count"/> images of a split of the full Fashion-MNIST.</summary>
    public static IdxImageSet Load(BenchmarkOptions options, bool train, int count)
    {
        if (!Directory.Exists(options.FashionMnist))
            throw new DirectoryNotFoundException(
                $"Fashion-MNIST was not found in '{options.FashionMnist}'. Install it with `sudo apt-get install dataset-fashion-mnist` " +
                "(Debian/Ubuntu) or pass --fashion-mnist DIR with the four idx files.");
        var set = IdxImageSet.LoadSplit(options.FashionMnist, train);
        return set.Subset(Enumerable.Range(0, Math.Min(count, set.Count)).ToArray());
    }

    public static PixelRow[] Rows(IdxImageSet set)
    {
        int size = set.Height * set.Width;
        return Enumerable.Range(0, set.Count).Select(i => new PixelRow
        {
            Label = IdxImageSet.FashionMnistClassNames[set.Labels[i]],
            Pixels = set.Pixels.AsSpan(i * size, size).ToArray().Select(b => (float)b).ToArray(),
        }).ToArray();
    }
}
