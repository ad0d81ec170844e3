using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>Images and 0-based labels read from an <see cref="IDataView"/>: float <c>[N, C, H, W]</c> (CPU, not yet normalized).</summary>
internal sealed record ImageExamples(Tensor Images, long[] Labels, int Channels, int Height, int Width);

/// <summary>Reads a whole image column (and a key label column) into tensors, in chunks, with errors that name the row.</summary>
internal static class ImageDataReader
{
    private const int ChunkSize = 256;

    /// <summary>
    /// Reads every row. The geometry is <paramref name="channels"/>/<paramref name="height"/>/<paramref name="width"/>
    /// where given; otherwise height and width come from the first image (pixel vectors: their shape) and channels are 1
    /// if every image is gray, else 3.
    /// </summary>
    public static ImageExamples Read(IDataView data, ImageInput input, string imageColumn, string labelColumn,
        int? channels, int? height, int? width, long maxRows = long.MaxValue)
    {
        var imageCol = data.Schema[imageColumn];
        var labelCol = data.Schema[labelColumn];
        using var cursor = data.GetRowCursor(new[] { imageCol, labelCol });
        var reader = input.CreateReader(cursor, imageCol);
        var getLabel = cursor.GetGetter<uint>(labelCol);
        var labels = new List<long>();
        var chunks = new List<Tensor>();
        var pending = new List<DecodedImage>(ChunkSize);
        int h = height ?? (input.Kind == ImageInputKind.PixelVector ? input.VectorHeight : 0);
        int w = width ?? (input.Kind == ImageInputKind.PixelVector ? input.VectorWidth : 0);
        bool allGray = true;
        uint key = 0;
        long rows = 0;
        while (rows < maxRows && cursor.MoveNext())
        {
            rows++;
            getLabel(ref key);
            if (key == 0)
                throw new InvalidOperationException(
                    $"Label column '{labelColumn}', row {cursor.Position}: the label is missing (key 0, e.g. a value MapValueToKey did not know). Remove such rows or map every label value.");
            labels.Add(key - 1);
            var image = reader.Read();
            if (h == 0) (h, w) = (image.Height, image.Width);
            pending.Add(image);
            if (pending.Count == ChunkSize) Flush(rows - 1);
        }
        if (pending.Count > 0) Flush(rows - 1);
        if (labels.Count == 0)
            throw new InvalidOperationException($"The data is empty: no rows in columns '{imageColumn}' and '{labelColumn}'.");

        int c = channels ?? (input.Kind == ImageInputKind.PixelVector ? input.VectorChannels : allGray ? 1 : 3);
        using var scope = NewDisposeScope();
        var all = cat(chunks.Select(x => input.Kind == ImageInputKind.PixelVector ? x : ImageBatch.AdaptChannels(x, c)).ToArray(), 0);
        foreach (var chunk in chunks) chunk.Dispose();
        return new ImageExamples(all.MoveToOuterDisposeScope(), labels.ToArray(), c, h, w);

        void Flush(long lastRow)
        {
            using var chunkScope = NewDisposeScope();
            var x = ImageBatch.Stack(pending, h, w);
            if (input.Kind == ImageInputKind.PixelVector)
            {
                var finite = isfinite(x).flatten(1).all(1);
                if (!finite.all().item<bool>())
                {
                    long bad = lastRow - pending.Count + 1 + logical_not(finite).nonzero()[0, 0].item<long>();
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
        }
    }
}
