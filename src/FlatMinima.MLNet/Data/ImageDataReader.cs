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
}

/// <summary>Reads a whole image column (and a key label column) into tensors, in chunks, with errors that name the row.</summary>
internal static class ImageDataReader
{
    private const int ChunkSize = 256;
    private const int KeptReasons = 3;

    /// <summary>
    /// Reads every row. The geometry is <paramref name="channels"/>/<paramref name="height"/>/<paramref name="width"/>
    /// where given; otherwise height and width come from the first image (pixel vectors: their shape), within
    /// <see cref="AutomaticGeometryBudget"/>, and channels are 1 if every image is gray, else 3. Rows whose image is not
    /// usable fail or are skipped as <paramref name="badImages"/> says.
    /// </summary>
    public static ImageExamples Read(IDataView data, ImageInput input, string imageColumn, string labelColumn,
        int? channels, int? height, int? width, long maxRows = long.MaxValue, BadImagePolicy badImages = BadImagePolicy.Error)
    {
        var imageCol = data.Schema[imageColumn];
        var labelCol = data.Schema[labelColumn];
        using var cursor = data.GetRowCursor(new[] { imageCol, labelCol });
        var reader = input.CreateReader(cursor, imageCol);
        var getLabel = cursor.GetGetter<uint>(labelCol);
        var labels = new List<long>();
        var chunks = new List<Tensor>();
        var pending = new List<DecodedImage>(ChunkSize);
        var pendingRows = new List<long>(ChunkSize);
        var reasons = new List<string>();
        bool vector = input.Kind == ImageInputKind.PixelVector;
        int h = height ?? (vector ? input.VectorHeight : 0);
        int w = width ?? (vector ? input.VectorWidth : 0);
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
                {
                    (h, w) = (image.Height, image.Width);
                    AutomaticGeometryBudget.Check(AutomaticGeometryBudget.CountRows(data, maxRows), channels ?? 3, h, w, imageColumn);
                }
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

        int c = channels ?? (vector ? input.VectorChannels : allGray ? 1 : 3);
        using var scope = NewDisposeScope();
        var all = cat(chunks.Select(x => vector ? x : ImageBatch.AdaptChannels(x, c)).ToArray(), 0);
        foreach (var chunk in chunks) chunk.Dispose();
        return new ImageExamples(all.MoveToOuterDisposeScope(), labels.ToArray(), c, h, w) { SkippedRows = skipped, SkipReasons = reasons };

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
                bool gray = ImageBatch.IsGray(x);
                allGray &= gray;
                x = channels is int fixedChannels ? ImageBatch.AdaptChannels(x, fixedChannels) : gray ? x.narrow(1, 0, 1).contiguous() : x;
            }
            chunks.Add(x.MoveToOuterDisposeScope());
            pending.Clear();
            pendingRows.Clear();
        }
    }
}
