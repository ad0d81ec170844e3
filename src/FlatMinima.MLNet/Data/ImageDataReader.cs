using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>
/// Images and 0-based labels read from an <see cref="IDataView"/>: float <c>[N, C, H, W]</c> (CPU, not yet normalized).
/// <see cref="SkippedRows"/> rows were left out under <see cref="BadImagePolicy.Skip"/>; <see cref="SkipReasons"/> holds the
/// first few reasons.
/// </summary>
internal sealed record ImageExamples(Tensor Images, long[] Labels, int Channels, int Height, int Width)
{
    public long SkippedRows { get; init; }

    public IReadOnlyList<string> SkipReasons { get; init; } = Array.Empty<string>();

    /// <summary>How the size (and channels) were chosen from a sample of rows, when <c>ImageHeight</c>/<c>ImageWidth</c> were not given; else null.</summary>
    public SampledGeometry? Geometry { get; init; }
}

/// <summary>Reads a whole image column (and a key label column) into tensors, in chunks, with errors that name the row.</summary>
internal static class ImageDataReader
{
    private const int ChunkSize = TrainingImages.ChunkSize;
    private const int KeptReasons = 3;

    /// <summary>
    /// Reads every row. The geometry is <paramref name="channels"/>/<paramref name="height"/>/<paramref name="width"/>
    /// where given. Pixel vectors keep their column's shape. Otherwise, for images, height and width (and channels, when
    /// <paramref name="channels"/> is null) are chosen from a sample of rows by <see cref="ImageGeometrySample.Take"/> (one
    /// extra cursor, which also counts the rows) and checked by <see cref="AutomaticGeometryBudget"/> before any image is
    /// decoded: channels are then 1 if every sampled image is gray, else 3, and a later color row in a 1-channel model is
    /// converted to gray by luminance. With <paramref name="height"/>/<paramref name="width"/> given and
    /// <paramref name="channels"/> null, channels are 1 if every image is gray, else 3 (no sampling pass). Every image is
    /// resized to the model's size as it is decoded, so a single huge image costs only its own decode. Rows whose image
    /// is not usable fail or are skipped as <paramref name="badImages"/> says. A <paramref name="sample"/> already taken
    /// by the caller is used instead of a new sampling pass.
    /// </summary>
    public static ImageExamples Read(IDataView data, ImageInput input, string imageColumn, string labelColumn,
        int? channels, int? height, int? width, long maxRows = long.MaxValue, BadImagePolicy badImages = BadImagePolicy.Error, SampledGeometry? sample = null)
    {
        var imageCol = data.Schema[imageColumn];
        var labelCol = data.Schema[labelColumn];
        bool vector = input.Kind == ImageInputKind.PixelVector;
        sample ??= vector || height is not null ? null : ImageGeometrySample.Take(data, input, imageColumn, chooseChannels: channels is null, maxRows);
        int? modelChannels = channels ?? sample?.Channels;
        if (sample is { Height: > 0 })
            AutomaticGeometryBudget.Check(sample.Rows, modelChannels ?? 3, sample.Height, sample.Width, sample.UsableRows, imageColumn);
        using var cursor = data.GetRowCursor(new[] { imageCol, labelCol });
        var reader = input.CreateReader(cursor, imageCol);
        var getLabel = cursor.GetGetter<uint>(labelCol);
        var labels = new List<long>();
        var chunks = new List<Tensor>();
        var pending = new List<DecodedImage>(ChunkSize);
        var pendingRows = new List<long>(ChunkSize);
        var reasons = new List<string>();
        int h = height ?? (vector ? input.VectorHeight : sample!.Height);
        int w = width ?? (vector ? input.VectorWidth : sample!.Width);
        bool allGray = true;
        uint key = 0;
        long rows = 0, skipped = 0;
        try
        {
            while (rows < maxRows && cursor.MoveNext())
            {
                rows++;
                getLabel(ref key);
                if (key == 0)
                    throw new InvalidOperationException(
                        $"Label column '{labelColumn}', row {cursor.Position}: the label is missing (key 0, e.g. a value MapValueToKey did not know). Remove such rows or map every label value.");
                if (reader.TryRead(out var problem) is not DecodedImage image)
                {
                    if (badImages == BadImagePolicy.Error)
                        throw new InvalidOperationException($"{problem} Fix or remove the row, or set BadImagePolicy = BadImagePolicy.Skip to leave such rows out.");
                    skipped++;
                    if (reasons.Count < KeptReasons) reasons.Add(problem);
                    continue;
                }
                if (h == 0)
                    throw new InvalidOperationException(
                        $"Image column '{imageColumn}', row {cursor.Position}: ImageHeight and ImageWidth are not set and none of the {sample!.SampledRows:N0} sampled rows " +
                        "had a usable image, so no size could be chosen from the data. Set ImageHeight and ImageWidth (e.g. 224 and 224): images are resized to that size.");
                labels.Add(key - 1);
                pending.Add(image);
                pendingRows.Add(cursor.Position);
                if (pending.Count == ChunkSize) Flush();
            }
            if (pending.Count > 0) Flush();
        }
        catch
        {
            foreach (var chunk in chunks) chunk.Dispose();
            throw;
        }
        if (labels.Count == 0)
            throw new InvalidOperationException(skipped == 0
                ? $"The data is empty: no rows in columns '{imageColumn}' and '{labelColumn}'."
                : $"Every one of the {skipped} rows was skipped (BadImagePolicy.Skip): no usable image in column '{imageColumn}'. First: {reasons[0]}");

        int c = vector ? input.VectorChannels : modelChannels ?? (allGray ? 1 : 3);
        using var scope = NewDisposeScope();
        var all = cat(chunks.Select(x => vector ? x : ImageBatch.AdaptChannels(x, c)).ToArray(), 0);
        foreach (var chunk in chunks) chunk.Dispose();
        return new ImageExamples(all.MoveToOuterDisposeScope(), labels.ToArray(), c, h, w) { SkippedRows = skipped, SkipReasons = reasons, Geometry = sample };

        void Flush()
        {
            using var chunkScope = NewDisposeScope();
            var x = ImageBatch.Stack(pending, h, w);
            if (vector)
            {
                var finite = isfinite(x).flatten(1).all(1);
                if (!finite.all().item<bool>())
                {
                    long bad = pendingRows[(int)logical_not(finite).nonzero()[0, 0].item<long>()];
                    throw new InvalidOperationException(
                        $"Image column '{imageColumn}', row {bad}: the pixel vector contains NaN or infinity. Fix or remove that row (e.g. ReplaceMissingValues).");
                }
            }
            else
            {
                if (channels is int given) x = ImageBatch.AdaptChannels(x, given);
                else
                {
                    // Gray chunks keep their first channel (exact); color chunks stay RGB, or become gray by luminance
                    // when the sample chose one channel.
                    bool gray = ImageBatch.IsGray(x);
                    allGray &= gray;
                    x = gray ? x.narrow(1, 0, 1).contiguous() : modelChannels == 1 ? ImageBatch.AdaptChannels(x, 1) : x;
                }
            }
            chunks.Add(x.MoveToOuterDisposeScope());
            pending.Clear();
            pendingRows.Clear();
        }
    }
}
