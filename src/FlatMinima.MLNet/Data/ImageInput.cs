using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>The kinds of image column the trainer accepts.</summary>
public enum ImageInputKind
{
    /// <summary>Encoded image bytes (PNG, JPEG, …): <c>byte[]</c> / <c>Vector&lt;Byte&gt;</c>, e.g. from <c>LoadRawImageBytes</c>.</summary>
    EncodedBytes,

    /// <summary>A decoded <see cref="MLImage"/>, e.g. from <c>LoadImages</c> or <c>ResizeImages</c>.</summary>
    Image,

    /// <summary>A known-size <c>Vector&lt;Single&gt;</c> in CHW order, e.g. from <c>ExtractPixels</c>.</summary>
    PixelVector,
}

/// <summary>How the image column is read: its kind and, for pixel vectors, its C×H×W shape.</summary>
internal sealed record ImageInput(ImageInputKind Kind, int VectorChannels, int VectorHeight, int VectorWidth)
{
    /// <summary>Classifies <paramref name="column"/>; throws naming the column when its type is not supported.</summary>
    public static ImageInput FromColumn(DataViewSchema.Column column, int? channels, int? height, int? width)
    {
        var type = column.Type;
        if (type is ImageDataViewType) return new ImageInput(ImageInputKind.Image, 0, 0, 0);
        if (type is VectorDataViewType v && v.ItemType == NumberDataViewType.Byte && !v.IsKnownSize)
            return new ImageInput(ImageInputKind.EncodedBytes, 0, 0, 0);
        if (type is VectorDataViewType f && f.ItemType == NumberDataViewType.Single)
        {
            if (!f.IsKnownSize)
                throw new ArgumentOutOfRangeException(nameof(column),
                    $"Image column '{column.Name}' is a Vector<Single> of unknown size; pixel vectors need a known size (ExtractPixels gives one: resize the images first with ResizeImages).");
            return FromVectorShape(column.Name, f, channels, height, width);
        }
        throw new ArgumentOutOfRangeException(nameof(column),
            $"Image column '{column.Name}' has type {type}; expected encoded image bytes (byte[] / Vector<Byte>, e.g. from LoadRawImageBytes), " +
            "an image (MLImage, from LoadImages), or a known-size Vector<Single> of pixels in CHW order (from ExtractPixels).");
    }

    private static ImageInput FromVectorShape(string name, VectorDataViewType type, int? channels, int? height, int? width)
    {
        int size = type.Size;
        int c, h, w;
        if (channels is null && height is null && width is null && type.Dimensions.Length == 3)
            (c, h, w) = (type.Dimensions[0], type.Dimensions[1], type.Dimensions[2]);
        else if (channels is int cc && height is int hh && width is int ww)
            (c, h, w) = (cc, hh, ww);
        else if (channels is null && height is int h2 && width is int w2 && h2 > 0 && w2 > 0 && size % ((long)h2 * w2) == 0)
            (c, h, w) = ((int)(size / ((long)h2 * w2)), h2, w2);
        else
            throw new ArgumentOutOfRangeException(nameof(type),
                $"Image column '{name}' is a Vector<Single> of {size} values without C×H×W dimensions; set ImageHeight and ImageWidth " +
                $"(ImageChannels is then {size} / (height × width)), or all three (their product must be {size}).");
        if (c > ModelLimits.MaxVectorChannels || h > ModelLimits.MaxImageSide || w > ModelLimits.MaxImageSide || (long)c * h * w > ModelLimits.MaxInputValues)
            throw new ArgumentOutOfRangeException(nameof(type),
                $"Image column '{name}' is a {c}×{h}×{w} pixel vector, beyond what a model may have ({ModelLimits.MaxVectorChannels} channels, sides up to " +
                $"{ModelLimits.MaxImageSide} pixels, {ModelLimits.MaxInputValues:N0} values per image; ModelLimits).");
        if ((long)c * h * w != size)
            throw new ArgumentOutOfRangeException(nameof(type),
                $"Image column '{name}' has {size} values but channels×height×width = {c}×{h}×{w} = {(long)c * h * w}; fix ImageChannels/ImageHeight/ImageWidth or the vector.");
        return new ImageInput(ImageInputKind.PixelVector, c, h, w);
    }

    /// <summary>The column type this input corresponds to (the transformer's FeatureColumnType).</summary>
    public DataViewType ColumnType => Kind switch
    {
        ImageInputKind.EncodedBytes => new VectorDataViewType(NumberDataViewType.Byte),
        ImageInputKind.Image => new ImageDataViewType(),
        _ => new VectorDataViewType(NumberDataViewType.Single, VectorChannels, VectorHeight, VectorWidth),
    };

    /// <summary>Checks that <paramref name="column"/> can feed a model trained on this input.</summary>
    public void CheckCompatible(DataViewSchema.Column column) => Matching(column);

    /// <summary>
    /// The input of another column (validation or session data, data to score) for a model trained on this input: a
    /// pixel vector takes this input's C×H×W shape. Throws naming the column when it cannot feed the model.
    /// </summary>
    public ImageInput Matching(DataViewSchema.Column column)
    {
        bool vector = Kind == ImageInputKind.PixelVector;
        var other = FromColumn(column, vector ? VectorChannels : null, vector ? VectorHeight : null, vector ? VectorWidth : null);
        if (other.Kind == ImageInputKind.PixelVector && vector && other != this)
            throw new ArgumentOutOfRangeException(nameof(column),
                $"Image column '{column.Name}' is a {other.VectorChannels}×{other.VectorHeight}×{other.VectorWidth} pixel vector; the model was trained on {VectorChannels}×{VectorHeight}×{VectorWidth}.");
        return other;
    }

    /// <summary>Creates a reader of this column's values on <paramref name="row"/>.</summary>
    public RowImageReader CreateReader(DataViewRow row, DataViewSchema.Column column) => new(this, row, column);
}

/// <summary>One decoded image: either 8-bit pixels (HWC, 4 channels in <see cref="Format"/>) or float CHW values.</summary>
internal readonly record struct DecodedImage(byte[]? Pixels, MLPixelFormat Format, float[]? Values, int Channels, int Height, int Width);

/// <summary>Reads the image of the current row of a cursor into a <see cref="DecodedImage"/>.</summary>
internal sealed class RowImageReader
{
    private readonly ImageInput _input;
    private readonly DataViewRow _row;
    private readonly string _columnName;
    private readonly ValueGetter<VBuffer<byte>>? _bytes;
    private readonly ValueGetter<MLImage>? _image;
    private readonly ValueGetter<VBuffer<float>>? _vector;
    private VBuffer<byte> _byteBuffer;
    private VBuffer<float> _floatBuffer;

    public RowImageReader(ImageInput input, DataViewRow row, DataViewSchema.Column column)
    {
        _input = input;
        _row = row;
        _columnName = column.Name;
        switch (input.Kind)
        {
            case ImageInputKind.EncodedBytes: _bytes = row.GetGetter<VBuffer<byte>>(column); break;
            case ImageInputKind.Image: _image = row.GetGetter<MLImage>(column); break;
            default: _vector = row.GetGetter<VBuffer<float>>(column); break;
        }
    }

    /// <summary>
    /// Decodes the current row's image; throws naming the column and the row when the value is not a usable image
    /// (see <see cref="TryRead"/>).
    /// </summary>
    public DecodedImage Read() => TryRead(out var problem) ?? throw new InvalidOperationException(problem);

    /// <summary>
    /// Decodes the current row's image, or returns null with <paramref name="problem"/> (a sentence naming the column
    /// and the row) when the value is not a usable image: empty or undecodable, truncated or damaged bytes, a null
    /// <c>MLImage</c>. A pixel vector of the wrong length is never returned: it throws, naming the column and the row,
    /// before any value is copied.
    /// </summary>
    public DecodedImage? TryRead(out string problem)
    {
        problem = "";
        string what;
        switch (_input.Kind)
        {
            case ImageInputKind.EncodedBytes:
            {
                _bytes!(ref _byteBuffer);
                if (_byteBuffer.Length == 0)
                {
                    what = "is empty (no image bytes)";
                    break;
                }
                var dense = _byteBuffer.DenseValues().ToArray();
                if (EncodedImageDecoder.Decode(dense, out what) is DecodedImage decoded) return decoded;
                break;
            }
            case ImageInputKind.Image:
            {
                MLImage image = null!;
                _image!(ref image);
                if (image is not null) return FromImage(image);
                what = "is missing (null image)";
                break;
            }
            default:
            {
                _vector!(ref _floatBuffer);
                var (c, h, w) = (_input.VectorChannels, _input.VectorHeight, _input.VectorWidth);
                long expected = (long)c * h * w;
                if (_floatBuffer.Length != expected)
                    throw new InvalidOperationException(
                        $"Image column '{_columnName}', row {_row.Position}: {_floatBuffer.Length} values, expected {c}×{h}×{w} = {expected}. " +
                        "Every row of a pixel-vector column must have the column's size.");
                var values = new float[expected];
                _floatBuffer.CopyTo(values);
                return new DecodedImage(null, default, values, c, h, w);
            }
        }
        problem = $"Image column '{_columnName}', row {_row.Position}: the value {what}.";
        return null;
    }

    /// <summary>
    /// The current row's image size without decoding pixels where the value allows it (encoded bytes: the header; an
    /// <c>MLImage</c>: its <c>Height</c>/<c>Width</c>), or null when the value is not a usable image (the decoding pass
    /// reports why). With <paramref name="checkGray"/>, <c>Gray</c> tells whether the image is gray (R = G = B): from the
    /// header when it declares a gray image, else from the decoded pixels (compared with torch ops); without it, or when
    /// the pixels cannot be decoded, <c>Gray</c> is true for a header that declares gray and null otherwise. Not for pixel
    /// vectors, whose size is the column's.
    /// </summary>
    public (int Height, int Width, bool? Gray)? TryReadSize(bool checkGray)
    {
        switch (_input.Kind)
        {
            case ImageInputKind.EncodedBytes:
            {
                _bytes!(ref _byteBuffer);
                if (_byteBuffer.Length == 0) return null;
                var dense = _byteBuffer.DenseValues().ToArray();
                if (EncodedImageDecoder.ReadHeader(dense) is not { } header) return null;
                if (header.DeclaredGray) return (header.Height, header.Width, true);
                bool? gray = checkGray && EncodedImageDecoder.Decode(dense, out _) is DecodedImage decoded ? IsGray(decoded) : null;
                return (header.Height, header.Width, gray);
            }
            case ImageInputKind.Image:
            {
                MLImage image = null!;
                _image!(ref image);
                if (image is null) return null;
                return (image.Height, image.Width, checkGray ? IsGray(FromImage(image)) : null);
            }
            default:
                throw new InvalidOperationException($"Image column '{_columnName}' is a pixel vector: its size is the column's, not read per row.");
        }
    }

    /// <summary>Whether every pixel of an 8-bit RGBA/BGRA image has R = G = B (torch ops on the bytes, no per-pixel loop).</summary>
    private static bool IsGray(DecodedImage image)
    {
        using var scope = NewDisposeScope();
        var pixels = tensor(image.Pixels!, new long[] { image.Height, image.Width, 4 });
        var (c0, c1, c2) = (pixels.select(2, 0), pixels.select(2, 1), pixels.select(2, 2));
        return c0.eq(c1).logical_and_(c1.eq(c2)).all().item<bool>();
    }

    private DecodedImage FromImage(MLImage image)
    {
        if (image.PixelFormat != MLPixelFormat.Bgra32 && image.PixelFormat != MLPixelFormat.Rgba32)
            throw new NotSupportedException($"Image column '{_columnName}', row {_row.Position}: unsupported pixel format {image.PixelFormat} (Bgra32 or Rgba32 expected).");
        return new DecodedImage(image.Pixels.ToArray(), image.PixelFormat, null, 4, image.Height, image.Width);
    }
}

/// <summary>Turns decoded images into model-ready batches <c>[B, C, H, W]</c> with torch operations (no per-pixel .NET loops).</summary>
internal static class ImageBatch
{
    private static readonly float[] Luminance = { 0.299f, 0.587f, 0.114f };

    /// <summary>
    /// Images as float <c>[B, c, H, W]</c> on the CPU, resized to <paramref name="height"/>×<paramref name="width"/>: pixel
    /// images in [0, 1] with RGB channels (c = 3), pixel vectors as given (c = their channels).
    /// </summary>
    public static Tensor Stack(IReadOnlyList<DecodedImage> images, int height, int width)
    {
        if (images.Count == 0) throw new ArgumentException("No images.", nameof(images));
        using var scope = NewDisposeScope();
        var first = images[0];
        bool uniform = images.All(i => i.Height == first.Height && i.Width == first.Width && i.Channels == first.Channels &&
                                       i.Format == first.Format && (i.Pixels is null) == (first.Pixels is null));
        Tensor batch = uniform ? StackUniform(images) : cat(images.Select(i => StackUniform(new[] { i })).ToArray(), 0);
        return batch.MoveToOuterDisposeScope();

        Tensor StackUniform(IReadOnlyList<DecodedImage> group)
        {
            var g = group[0];
            Tensor x;
            if (g.Pixels is not null)
            {
                // Copy each image straight into the tensor's memory (no large managed batch array per call).
                var bytes = empty(new long[] { group.Count, g.Height, g.Width, 4 }, ScalarType.Byte);
                var target = bytes.bytes;
                for (int i = 0; i < group.Count; i++) group[i].Pixels.AsSpan().CopyTo(target.Slice(i * g.Pixels.Length));
                var rgb = g.Format == MLPixelFormat.Bgra32 ? new long[] { 2, 1, 0 } : new long[] { 0, 1, 2 };
                x = bytes.index_select(3, tensor(rgb)).permute(0, 3, 1, 2).to_type(ScalarType.Float32).div_(255f);
            }
            else
            {
                x = empty(group.Count, g.Channels, g.Height, g.Width);
                var target = MemoryMarshal.Cast<byte, float>(x.bytes);
                for (int i = 0; i < group.Count; i++) group[i].Values.AsSpan().CopyTo(target.Slice(i * g.Values!.Length));
            }
            if (g.Height != height || g.Width != width)
                x = nn.functional.interpolate(x, new long[] { height, width }, mode: InterpolationMode.Bilinear, align_corners: false,
                    antialias: g.Height > height || g.Width > width);
            return x.contiguous();
        }
    }

    /// <summary>Whether every image of an RGB batch <c>[B, 3, H, W]</c> is gray (R = G = B).</summary>
    public static bool IsGray(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        return rgb.shape[1] == 1 || (rgb.shape[1] == 3 && rgb.select(1, 0).eq(rgb.select(1, 1)).logical_and_(rgb.select(1, 1).eq(rgb.select(1, 2))).all().item<bool>());
    }

    /// <summary>Converts a batch to <paramref name="channels"/> channels: RGB → gray by luminance, gray → RGB by replication.</summary>
    public static Tensor AdaptChannels(Tensor x, int channels)
    {
        long have = x.shape[1];
        if (have == channels) return x;
        if (have == 3 && channels == 1)
            return x.mul(tensor(Luminance, device: x.device).view(1, 3, 1, 1)).sum(1, keepdim: true);
        if (have == 1 && channels == 3) return x.expand(-1, 3, -1, -1).contiguous();
        throw new InvalidOperationException($"Cannot convert images with {have} channels to the model's {channels} channels.");
    }
}
