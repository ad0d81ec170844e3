using System;
using Microsoft.ML;

namespace FlatMinima.MLNet;

/// <summary>
/// Guards the size taken from the first training image (no <c>ImageHeight</c>/<c>ImageWidth</c> set): the decoded set is
/// held in memory as rows × C × H × W float32 values, so one large first image could make a small data set need
/// gigabytes. Checked after the first image is read and before any other is decoded.
/// </summary>
internal static class AutomaticGeometryBudget
{
    /// <summary>The most memory the decoded set may need at a size taken from the first image: 1 GiB.</summary>
    public const long Bytes = 1L << 30;

    /// <summary>
    /// Throws naming <c>ImageHeight</c>/<c>ImageWidth</c> when <paramref name="rows"/> images of
    /// <paramref name="channels"/>×<paramref name="height"/>×<paramref name="width"/> floats exceed <see cref="Bytes"/>.
    /// </summary>
    public static void Check(long rows, int channels, int height, int width, string imageColumn)
    {
        if (height > ModelLimits.MaxImageSide || width > ModelLimits.MaxImageSide || (long)channels * height * width > ModelLimits.MaxInputValues)
            throw new InvalidOperationException(
                $"Image column '{imageColumn}': ImageHeight and ImageWidth are not set, so the model's input size is the first image's, {height}×{width}, " +
                $"beyond what a model may have (sides up to {ModelLimits.MaxImageSide} pixels, at most {ModelLimits.MaxInputValues:N0} values per image; " +
                "ModelLimits). Set ImageHeight and ImageWidth (e.g. 224 and 224): images are resized to that size.");
        long needed = checked(rows * channels * height * width * sizeof(float));
        if (needed <= Bytes) return;
        throw new InvalidOperationException(
            $"Image column '{imageColumn}': ImageHeight and ImageWidth are not set, so the model's input size is the first image's, {height}×{width}; " +
            $"{rows:N0} rows × {channels} channels × {height}×{width} × 4 bytes = {needed / (1024.0 * 1024 * 1024):F2} GiB of decoded images, more than the " +
            $"{Bytes / (1024 * 1024 * 1024)} GiB allowed for a size taken from the data. Set ImageHeight and ImageWidth (e.g. 224 and 224): images are resized to that size.");
    }

    /// <summary>The number of rows of <paramref name="data"/>: its row count when known, else a counting pass (no column is read).</summary>
    public static long CountRows(IDataView data, long maxRows)
    {
        long? known = data.GetRowCount();
        if (known is long n) return Math.Min(n, maxRows);
        long count = 0;
        using var cursor = data.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        while (count < maxRows && cursor.MoveNext()) count++;
        return count;
    }
}
