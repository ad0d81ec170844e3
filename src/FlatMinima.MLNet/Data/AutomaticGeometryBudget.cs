using System;

namespace FlatMinima.MLNet;

/// <summary>
/// Guards the size chosen from a sample of the training images (no <c>ImageHeight</c>/<c>ImageWidth</c> set; see
/// <see cref="ImageGeometrySample"/>): the model must stay within <see cref="ModelLimits"/>, and the decoded set, held in
/// memory as rows × C × H × W float32 values, within <see cref="Bytes"/>. Checked after the sampling pass, before any
/// image is decoded for training.
/// </summary>
internal static class AutomaticGeometryBudget
{
    /// <summary>The most memory the decoded set may need at a size taken from the data: 1 GiB.</summary>
    public const long Bytes = 1L << 30;

    /// <summary>
    /// Throws naming <c>ImageHeight</c>/<c>ImageWidth</c> when <paramref name="height"/>×<paramref name="width"/> (chosen
    /// from <paramref name="sampledRows"/> sampled rows) is beyond <see cref="ModelLimits"/>, or when
    /// <paramref name="rows"/> images of <paramref name="channels"/>×<paramref name="height"/>×<paramref name="width"/>
    /// floats exceed <see cref="Bytes"/> and the images are to be held in memory (<paramref name="inMemory"/>).
    /// </summary>
    public static void Check(long rows, int channels, int height, int width, int sampledRows, string imageColumn, bool inMemory = true)
    {
        string chosen = $"Image column '{imageColumn}': ImageHeight and ImageWidth are not set, so the model's input size is the median size of " +
                        $"{sampledRows:N0} sampled rows, {height}×{width}";
        if (height > ModelLimits.MaxImageSide || width > ModelLimits.MaxImageSide || (long)channels * height * width > ModelLimits.MaxInputValues)
            throw new InvalidOperationException(
                $"{chosen}, beyond what a model may have (sides up to {ModelLimits.MaxImageSide} pixels, at most {ModelLimits.MaxInputValues:N0} values per image; " +
                "ModelLimits). Set ImageHeight and ImageWidth (e.g. 224 and 224): images are resized to that size.");
        long needed = checked(rows * channels * height * width * sizeof(float));
        if (needed <= Bytes || !inMemory) return;
        throw new InvalidOperationException(
            $"{chosen}; {rows:N0} rows × {channels} channels × {height}×{width} × 4 bytes = {needed / (1024.0 * 1024 * 1024):F2} GiB of decoded images, more than the " +
            $"{Bytes / (1024 * 1024 * 1024)} GiB allowed in memory for a size taken from the data. Set ImageHeight and ImageWidth (e.g. 224 and 224): images are resized to that size; " +
            "or stream the images (DataLoading = ImageDataLoading.Streaming, for encoded image bytes).");
    }
}
