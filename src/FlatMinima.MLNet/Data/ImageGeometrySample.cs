using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML;

namespace FlatMinima.MLNet;

/// <summary>
/// The model's input size (and channels) chosen from a sample of the training rows when <c>ImageHeight</c>/<c>ImageWidth</c>
/// are not set; see <see cref="ImageGeometrySample.Take"/> for the rule.
/// </summary>
/// <param name="Height">The chosen height: the lower median of the sampled images' heights (0 when no sampled row had a usable image).</param>
/// <param name="Width">The chosen width: the lower median of the sampled images' widths (0 when no sampled row had a usable image).</param>
/// <param name="Channels">1 when every image read by the pass is gray, 3 when one is in color; null when channels were not asked for (or no image was usable).</param>
/// <param name="Rows">The number of rows of the data (up to the reader's row limit), counted by the same pass.</param>
/// <param name="Stride">The sample is rows 0, <c>Stride</c>, 2·<c>Stride</c>, …; a power of two.</param>
/// <param name="SampledRows">The number of rows in the sample (rows whose turn came, usable or not).</param>
/// <param name="Sizes">The sizes of the sample's usable images with their counts, most common first (ties: larger area first).</param>
/// <param name="ValuesRead">How many image values the pass read (its cost; at most <c>MaxSampledRows</c> + <c>MaxSampledRows</c>/2 per doubling of the stride).</param>
internal sealed record SampledGeometry(int Height, int Width, int? Channels, long Rows, long Stride, int SampledRows,
    IReadOnlyList<(int Height, int Width, int Count)> Sizes, long ValuesRead)
{
    /// <summary>The number of usable images in the sample.</summary>
    public int UsableRows => Sizes.Sum(s => s.Count);

    /// <summary>
    /// The log line: <c>ImageHeight/ImageWidth not set: 28×28 chosen from 21 sampled rows (every row; median height and
    /// width; sizes seen: 28×28 ×20, 2000×2000 ×1); 3 channels (a sampled image is in color)</c>.
    /// </summary>
    public string Describe()
    {
        string which = Stride == 1 ? "every row" : $"one row in {Stride:N0} of {Rows:N0}";
        string sizes = string.Join(", ", Sizes.Take(5).Select(s => $"{s.Height}×{s.Width} ×{s.Count:N0}")) + (Sizes.Count > 5 ? $", … ({Sizes.Count:N0} sizes)" : "");
        string channels = Channels switch
        {
            1 => "; 1 channel (every sampled image is gray; a later color row is converted to gray by luminance)",
            3 => "; 3 channels (a sampled image is in color)",
            _ => "",
        };
        return $"ImageHeight/ImageWidth not set: {Height}×{Width} chosen from {UsableRows:N0} sampled rows ({which}; median height and width; sizes seen: {sizes}){channels}.";
    }
}

/// <summary>
/// Chooses the model's input size from a bounded, deterministic sample of the training rows, reading image sizes from
/// headers where the column allows it, in one cursor that also counts the rows.
/// </summary>
internal static class ImageGeometrySample
{
    /// <summary>The most rows in the sample: 1,000.</summary>
    public const int MaxSampledRows = 1000;

    /// <summary>
    /// One pass over <paramref name="data"/> (at most <paramref name="maxRows"/> rows) that reads the image column of a
    /// sample of rows and counts all rows.
    /// <para>
    /// <b>Sample</b>: rows 0, k, 2k, … where k is the smallest power of two that leaves at most
    /// <see cref="MaxSampledRows"/> rows in the sample (every row up to 1,000 rows). When the row count is known
    /// (<c>GetRowCount</c>) k is set up front; otherwise the pass starts with k = 1 and doubles k (keeping the sampled
    /// rows that are multiples of the new k) each time the sample would exceed 1,000 rows, which ends with the same rows.
    /// Deterministic, no random generator, spread over the whole data (not the first rows only).
    /// </para>
    /// <para>
    /// <b>Size</b>: the lower median of the sampled images' heights and, separately, of their widths (sorted, the element
    /// at (n − 1) / 2), so a few outliers (one huge photo) never set the size; when all images have one size it is that
    /// size. Sizes come from encoded images' headers (no pixels decoded) or an <c>MLImage</c>'s <c>Height</c>/<c>Width</c>;
    /// sampled rows without a usable image are left out (the decoding pass reports or skips them as
    /// <c>BadImagePolicy</c> says).
    /// </para>
    /// <para>
    /// <b>Channels</b> (with <paramref name="chooseChannels"/>): 1 when every image the pass read is gray (R = G = B), else
    /// 3. A header that declares a gray image needs no decoding; otherwise the image is decoded to compare its channels,
    /// until the first color image is found (then no further image is decoded).
    /// </para>
    /// </summary>
    public static SampledGeometry Take(IDataView data, ImageInput input, string imageColumn, bool chooseChannels, long maxRows = long.MaxValue)
    {
        if (input.Kind == ImageInputKind.PixelVector)
            throw new InvalidOperationException($"Image column '{imageColumn}' is a pixel vector: its size is the column's, not sampled.");
        var column = data.Schema[imageColumn];
        long stride = 1;
        if (data.GetRowCount() is long known)
            while (CeilDiv(Math.Min(known, maxRows), stride) > MaxSampledRows) stride *= 2;

        var sampled = new List<(long Row, int Height, int Width)>();
        bool anyColor = false;
        long rows = 0, valuesRead = 0;
        using (var cursor = data.GetRowCursor(new[] { column }))
        {
            var reader = input.CreateReader(cursor, column);
            for (; rows < maxRows && cursor.MoveNext(); rows++)
            {
                if (rows % stride != 0) continue;
                if (rows / stride == MaxSampledRows)
                {
                    stride *= 2;
                    long s = stride;
                    sampled.RemoveAll(e => e.Row % s != 0);
                }
                valuesRead++;
                if (reader.TryReadSize(chooseChannels && !anyColor) is not { } size) continue;
                sampled.Add((rows, size.Height, size.Width));
                anyColor |= size.Gray == false;
            }
        }

        int sampledRows = (int)CeilDiv(rows, stride);
        var sizes = sampled.GroupBy(e => (e.Height, e.Width))
            .Select(g => (g.Key.Height, g.Key.Width, Count: g.Count()))
            .OrderByDescending(s => s.Count).ThenByDescending(s => (long)s.Height * s.Width).ThenBy(s => s.Height).ToList();
        if (sampled.Count == 0) return new SampledGeometry(0, 0, null, rows, stride, sampledRows, sizes, valuesRead);
        int height = LowerMedian(sampled.Select(e => e.Height));
        int width = LowerMedian(sampled.Select(e => e.Width));
        int? channels = chooseChannels ? anyColor ? 3 : 1 : null;
        return new SampledGeometry(height, width, channels, rows, stride, sampledRows, sizes, valuesRead);
    }

    /// <summary>The lower median: the element at (n − 1) / 2 of the sorted values.</summary>
    public static int LowerMedian(IEnumerable<int> values)
    {
        var sorted = values.ToArray();
        if (sorted.Length == 0) throw new ArgumentException("No values.", nameof(values));
        Array.Sort(sorted);
        return sorted[(sorted.Length - 1) / 2];
    }

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;
}
