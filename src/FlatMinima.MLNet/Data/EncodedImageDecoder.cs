using System;
using Microsoft.ML.Data;
using SkiaSharp;

namespace FlatMinima.MLNet;

/// <summary>
/// Decodes encoded image bytes (PNG, JPEG, BMP, GIF, WEBP) into 8-bit RGBA pixels and rejects what would train silently
/// on wrong pixels: truncated or damaged data (the decoder's incomplete-input or invalid-input result, where a plain
/// decode would return the partly filled image) and images too large to decode safely.
/// </summary>
/// <remarks>
/// Uses SkiaSharp's stable surface (<c>SKCodec</c>, <c>SKBitmap</c>, <c>Copy</c>, <c>Bytes</c>), which is the same in
/// SkiaSharp 2.88 and 3.x, so this path keeps working when an app also uses SkiaSharp 3 (e.g. through ScottPlot 5), where
/// ML.NET's own <c>MLImage.Pixels</c> throws <c>MissingMethodException</c>.
/// </remarks>
internal static class EncodedImageDecoder
{
    /// <summary>The largest image a row may decode to: 100 megapixels (400 MB of RGBA), checked from the header before decoding.</summary>
    public const long MaxPixels = 100_000_000;

    /// <summary>The decoded image, or null and <paramref name="problem"/> (completes "the value …").</summary>
    public static DecodedImage? Decode(byte[] encoded, out string problem)
    {
        problem = "";
        using var data = SKData.CreateCopy(encoded);
        using var codec = CreateCodec(data);
        if (codec is null)
        {
            problem = "could not be decoded as an image; PNG, JPEG, BMP, GIF and WEBP are supported";
            return null;
        }
        var info = codec.Info;
        string format = codec.EncodedFormat.ToString().ToUpperInvariant();
        if (info.Width < 1 || info.Height < 1 || (long)info.Width * info.Height > MaxPixels)
        {
            problem = $"is a {info.Width}×{info.Height} {format} image; at most {MaxPixels:N0} pixels are decoded per image";
            return null;
        }
        // As SKBitmap.Decode: premultiplied alpha, no color space; but a partial decode is an error, not an image.
        info.AlphaType = info.AlphaType == SKAlphaType.Unpremul ? SKAlphaType.Premul : info.AlphaType;
        info.ColorSpace = null;
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            problem = result switch
            {
                SKCodecResult.IncompleteInput => $"is a truncated {format} image (the data ends before the image does)",
                SKCodecResult.ErrorInInput => $"is a damaged {format} image (the decoder found invalid data)",
                _ => $"could not be decoded as a {format} image ({result})",
            };
            return null;
        }
        bool ready = bitmap.ColorType is SKColorType.Rgba8888 or SKColorType.Bgra8888 && bitmap.RowBytes == bitmap.Width * 4;
        using var converted = ready ? null : bitmap.Copy(SKColorType.Rgba8888);
        var source = converted ?? bitmap;
        if (source is null || source.RowBytes != source.Width * 4)
        {
            problem = $"is a {format} image whose pixels could not be converted to RGBA ({info.ColorType})";
            return null;
        }
        var pixelFormat = source.ColorType == SKColorType.Bgra8888 ? MLPixelFormat.Bgra32 : MLPixelFormat.Rgba32;
        return new DecodedImage(source.Bytes, pixelFormat, null, 4, source.Height, source.Width);
    }

    /// <summary>
    /// The size of an encoded image read from its header, without decoding any pixel, and whether the header declares
    /// a gray image (8-bit gray color type); null when no codec recognizes the bytes or the image has more than
    /// <see cref="MaxPixels"/> pixels (such a row is not a usable image; decoding it reports why).
    /// </summary>
    public static (int Height, int Width, bool DeclaredGray)? ReadHeader(byte[] encoded)
    {
        if (encoded.Length == 0) return null;
        using var data = SKData.CreateCopy(encoded);
        using var codec = CreateCodec(data);
        if (codec is null) return null;
        var info = codec.Info;
        if (info.Width < 1 || info.Height < 1 || (long)info.Width * info.Height > MaxPixels) return null;
        return (info.Height, info.Width, info.ColorType == SKColorType.Gray8);
    }

    private static SKCodec? CreateCodec(SKData data)
    {
        try
        {
            return SKCodec.Create(data);
        }
        catch (ArgumentException)
        {
            return null; // some SkiaSharp versions throw when no codec recognizes the bytes
        }
    }
}
