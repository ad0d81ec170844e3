using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Threading.Tasks;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>
/// Training images kept as their encoded bytes (<see cref="ImageDataLoading.Streaming"/>): one pass over the IDataView
/// appends each row's bytes to a temporary file (<see cref="EncodedImageSpill"/>), checks that it decodes (under
/// <see cref="BadImagePolicy"/>), decides gray or color and accumulates the channel statistics chunk by chunk; example
/// sets then read, decode, resize, convert and normalize the rows of each batch on the trainer's loader threads.
/// Memory: 20 bytes per row (offset, length, label, position) plus one chunk of decoded images during the pass.
/// </summary>
internal sealed class EncodedImages : TrainingImages
{
    private readonly EncodedImageSpill _encoded;
    private readonly long[] _positions;
    private readonly long[] _labels;
    private readonly (float[] Mean, float[] Std) _statistics;
    private readonly string _digest;
    private readonly string _imageColumn;
    private readonly (long, IReadOnlyList<string>, SampledGeometry?) _report;

    private EncodedImages(EncodedImageSpill encoded, long[] positions, long[] labels, int channels, int height, int width,
        (float[], float[]) statistics, string digest, string imageColumn, (long, IReadOnlyList<string>, SampledGeometry?) report)
    {
        (_encoded, _positions, _labels, Geometry, _statistics, _digest, _imageColumn, _report) =
            (encoded, positions, labels, (channels, height, width), statistics, digest, imageColumn, report);
    }

    public override long[] Labels => _labels;

    public override (int Channels, int Height, int Width) Geometry { get; }

    public override (long Skipped, IReadOnlyList<string> Reasons, SampledGeometry? Sampled) Report => _report;

    public override bool Streaming => true;

    /// <summary>The encoded bytes kept in the temporary file.</summary>
    public long EncodedBytes => _encoded.Bytes;

    /// <summary>
    /// Reads every row of <paramref name="data"/> (one cursor): label (key, not missing), encoded bytes (kept), a decode
    /// check (in parallel over each chunk of <see cref="ChunkRows"/> rows, on up to <paramref name="workers"/>
    /// threads). The geometry is <paramref name="channels"/>/<paramref name="height"/>/<paramref name="width"/> where given,
    /// else the sampled one (<paramref name="sample"/>); channels not given and not sampled are 1 when every image is gray,
    /// else 3.
    /// </summary>
    public static EncodedImages Read(IDataView data, string imageColumn, string labelColumn, int? channels, int height, int width,
        SampledGeometry? sample, BadImagePolicy badImages, int workers)
    {
        var imageCol = data.Schema[imageColumn];
        var labelCol = data.Schema[labelColumn];
        int chunkSize = ChunkRows(height, width);
        using var cursor = data.GetRowCursor(new[] { imageCol, labelCol });
        var getBytes = cursor.GetGetter<VBuffer<byte>>(imageCol);
        var getLabel = cursor.GetGetter<uint>(labelCol);
        var encoded = new EncodedImageSpill();
        var positions = new List<long>();
        var labels = new List<long>();
        var reasons = new List<string>();
        var pending = new List<(byte[] Bytes, long Position, long Label)>(chunkSize);
        var gray = new RunningChannelStatistics();
        var color = new RunningChannelStatistics();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        int? modelChannels = channels ?? sample?.Channels;
        bool allGray = true;
        VBuffer<byte> buffer = default;
        uint key = 0;
        long skipped = 0;
        try
        {
            while (cursor.MoveNext())
            {
                getLabel(ref key);
                if (key == 0)
                    throw new InvalidOperationException(
                        $"Label column '{labelColumn}', row {cursor.Position}: the label is missing (key 0, e.g. a value MapValueToKey did not know). Remove such rows or map every label value.");
                getBytes(ref buffer);
                var bytes = buffer.Length == 0 ? Array.Empty<byte>() : buffer.DenseValues().ToArray();
                pending.Add((bytes, cursor.Position, key - 1));
                if (pending.Count == chunkSize) Flush();
            }
            if (pending.Count > 0) Flush();
            encoded.Complete();
            if (labels.Count == 0)
                throw new InvalidOperationException(skipped == 0
                    ? $"The data is empty: no rows in columns '{imageColumn}' and '{labelColumn}'."
                    : $"Every one of the {skipped} rows was skipped (BadImagePolicy.Skip): no usable image in column '{imageColumn}'. First: {reasons[0]}");
            int c = modelChannels ?? (allGray ? 1 : 3);
            hash.AppendData(BitConverter.GetBytes(c));
            hash.AppendData(BitConverter.GetBytes(height));
            hash.AppendData(BitConverter.GetBytes(width));
            var statistics = (c == 1 ? gray : color).Result();
            string digest = $"from {encoded.Count} encoded images decoded at {c}×{height}×{width}, sha256 {Convert.ToHexStringLower(hash.GetHashAndReset())}";
            return new EncodedImages(encoded, positions.ToArray(), labels.ToArray(), c, height, width, statistics, digest, imageColumn,
                (skipped, reasons, sample));
        }
        catch
        {
            encoded.Dispose();
            throw;
        }

        void Flush()
        {
            var decoded = new DecodedImage?[pending.Count];
            var problems = new string[pending.Count];
            Parallel.For(0, pending.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, workers) },
                i => decoded[i] = pending[i].Bytes.Length == 0 ? null : EncodedImageDecoder.Decode(pending[i].Bytes, out problems[i]));
            var kept = new List<DecodedImage>(pending.Count);
            for (int i = 0; i < pending.Count; i++)
            {
                if (decoded[i] is not DecodedImage image)
                {
                    string what = pending[i].Bytes.Length == 0 ? "is empty (no image bytes)" : problems[i];
                    string problem = $"Image column '{imageColumn}', row {pending[i].Position}: the value {what}.";
                    if (badImages == BadImagePolicy.Error)
                        throw new InvalidOperationException($"{problem} Fix or remove the row, or set BadImagePolicy = BadImagePolicy.Skip to leave such rows out.");
                    skipped++;
                    if (reasons.Count < 3) reasons.Add(problem);
                    continue;
                }
                kept.Add(image);
                labels.Add(pending[i].Label);
                encoded.Add(pending[i].Bytes);
                positions.Add(pending[i].Position);
                hash.AppendData(BitConverter.GetBytes(pending[i].Bytes.Length));
                hash.AppendData(pending[i].Bytes);
            }
            pending.Clear();
            if (kept.Count == 0) return;
            using var scope = NewDisposeScope();
            var rgb = ImageBatch.Stack(kept, height, width);
            var isGray = GrayMask(rgb);
            allGray &= isGray.all().item<bool>();
            if (modelChannels != 3) gray.Add(ToGray(rgb, isGray));
            if (modelChannels != 1) color.Add(rgb);
        }
    }

    public override (float[] Mean, float[] Std) ChannelStatistics(long[]? rows)
    {
        if (rows is null) return _statistics;
        var running = new RunningChannelStatistics();
        int chunkSize = ChunkRows(Geometry.Height, Geometry.Width);
        for (int start = 0; start < rows.Length; start += chunkSize)
        {
            using var chunk = Decode(rows.AsSpan(start, Math.Min(chunkSize, rows.Length - start)).ToArray(), null);
            running.Add(chunk);
        }
        return running.Result();
    }

    public override IExampleSet CreateSet(long[]? rows, float[] mean, float[] std, long[]? domains)
    {
        long[] map = rows ?? Enumerable.Range(0, _labels.Length).Select(i => (long)i).ToArray();
        var standardization = new ChannelStandardization(mean, std);
        var (c, h, w) = Geometry;
        return new LazyExampleSet(tensor(Select(_labels, rows)), new long[] { c, h, w },
            index => DecodeRows(index.Select(i => map[i]).ToArray()),
            (index, prepared) => Assemble((DecodedImage[])prepared!, standardization),
            $"{_digest}, rows sha256 {RowsDigest(map)}, normalized by mean [{string.Join(", ", mean)}] std [{string.Join(", ", std)}]")
        {
            Domains = domains is null ? null : tensor(Select(domains, rows)),
        };
    }

    public override void Dispose() => _encoded.Dispose();

    /// <summary>
    /// Rows per chunk of the statistics (and decode-check) pass at a model size of <paramref name="height"/>×<paramref name="width"/>:
    /// as many as fit 16 MiB of decoded RGB floats, at least 1 and at most <see cref="TrainingImages.ChunkSize"/> (256
    /// rows up to 147×147; 27 rows at 224×224).
    /// </summary>
    public static int ChunkRows(int height, int width) => (int)Math.Clamp((16L << 20) / (3L * height * width * sizeof(float)), 1, ChunkSize);

    // Reads and decodes the given kept rows (no tensor operations: runs on loader threads).
    internal DecodedImage[] DecodeRows(long[] rows)
    {
        var images = new DecodedImage[rows.Length];
        for (int i = 0; i < rows.Length; i++)
            images[i] = EncodedImageDecoder.Decode(_encoded.Read(rows[i]), out var problem)
                ?? throw new InvalidOperationException($"Image column '{_imageColumn}', row {_positions[rows[i]]}: the value {problem} (it decoded when the data was read).");
        return images;
    }

    // Decoded images to [B, C, H, W] floats in [0, 1] at the model's size and channels (then normalized when a standardization is given).
    internal Tensor Assemble(DecodedImage[] images, ChannelStandardization? standardization)
    {
        using var scope = NewDisposeScope();
        var rgb = ImageBatch.Stack(images, Geometry.Height, Geometry.Width);
        var x = Geometry.Channels == 1 ? ToGray(rgb, GrayMask(rgb)) : rgb;
        if (standardization is not null) x = standardization.Apply(x);
        return x.contiguous().MoveToOuterDisposeScope();
    }

    private Tensor Decode(long[] rows, ChannelStandardization? standardization) => Assemble(DecodeRows(rows), standardization);

    // Whether each image of an RGB batch [B, 3, H, W] is gray (R = G = B everywhere), [B] booleans.
    private static Tensor GrayMask(Tensor rgb) =>
        rgb.select(1, 0).eq(rgb.select(1, 1)).logical_and_(rgb.select(1, 1).eq(rgb.select(1, 2))).flatten(1).all(1);

    // One channel per image: a gray image's own channel (exact), a color image's luminance.
    private static Tensor ToGray(Tensor rgb, Tensor isGray) =>
        where(isGray.view(-1, 1, 1, 1), rgb.narrow(1, 0, 1), ImageBatch.AdaptChannels(rgb, 1));

    private static string RowsDigest(long[] rows)
    {
        var bytes = new byte[rows.Length * sizeof(long)];
        Buffer.BlockCopy(rows, 0, bytes, 0, bytes.Length);
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }
}
