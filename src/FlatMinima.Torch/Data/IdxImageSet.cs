using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Data;

/// <summary>
/// Grayscale images and labels in the idx format of MNIST and Fashion-MNIST (<c>*-idx3-ubyte</c>,
/// <c>*-idx1-ubyte</c>, optionally gzipped). Debian's <c>dataset-fashion-mnist</c> package puts them in
/// <c>/usr/share/datasets/fashion-mnist</c>.
/// </summary>
public sealed class IdxImageSet
{
    /// <summary>The Fashion-MNIST class names, in label order.</summary>
    public static readonly IReadOnlyList<string> FashionMnistClassNames = new[]
    {
        "T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot",
    };

    /// <summary>Where Debian's <c>dataset-fashion-mnist</c> package installs the files.</summary>
    public const string DebianFashionMnistDirectory = "/usr/share/datasets/fashion-mnist";

    private IdxImageSet(byte[] pixels, byte[] labels, int height, int width)
    {
        Pixels = pixels;
        Labels = labels;
        Height = height;
        Width = width;
    }

    /// <summary>All pixels, image after image, row-major (0 = black … 255 = white).</summary>
    public byte[] Pixels { get; }

    /// <summary>The label of each image.</summary>
    public byte[] Labels { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>
    /// Loads the training (<c>train-*</c>) or test (<c>t10k-*</c>) split from <paramref name="directory"/>, gzipped or
    /// not. Throws <see cref="FileNotFoundException"/> with installation advice when the files are missing.
    /// </summary>
    public static IdxImageSet LoadSplit(string directory, bool train)
    {
        string prefix = train ? "train" : "t10k";
        return Load(Find(directory, $"{prefix}-images-idx3-ubyte"), Find(directory, $"{prefix}-labels-idx1-ubyte"));
    }

    /// <summary>Loads an images file and a labels file.</summary>
    public static IdxImageSet Load(string imagesPath, string labelsPath)
    {
        using var images = new BinaryReader(Open(imagesPath));
        if (ReadBigEndian(images) != 0x00000803) throw new InvalidDataException($"{imagesPath} is not an idx3 (uint8 images) file.");
        int count = ReadBigEndian(images), height = ReadBigEndian(images), width = ReadBigEndian(images);
        var pixels = ReadExactly(images, checked(count * height * width), imagesPath);
        using var labelsReader = new BinaryReader(Open(labelsPath));
        if (ReadBigEndian(labelsReader) != 0x00000801) throw new InvalidDataException($"{labelsPath} is not an idx1 (uint8 labels) file.");
        int labelCount = ReadBigEndian(labelsReader);
        if (labelCount != count) throw new InvalidDataException($"{imagesPath} has {count} images but {labelsPath} has {labelCount} labels.");
        return new IdxImageSet(pixels, ReadExactly(labelsReader, count, labelsPath), height, width);
    }

    /// <summary>Images <paramref name="indices"/> as a new set.</summary>
    public IdxImageSet Subset(IReadOnlyList<int> indices)
    {
        int size = Height * Width;
        var pixels = new byte[indices.Count * size];
        for (int i = 0; i < indices.Count; i++) Buffer.BlockCopy(Pixels, indices[i] * size, pixels, i * size, size);
        return new IdxImageSet(pixels, indices.Select(i => Labels[i]).ToArray(), Height, Width);
    }

    /// <summary>
    /// The images as <c>[N, 1, H, W]</c> float32 scaled to [0, 1] and then standardized with <paramref name="mean"/> and
    /// <paramref name="std"/>, with int64 labels (CPU tensors).
    /// </summary>
    public TensorDataset ToTensorDataset(float mean = 0f, float std = 1f)
    {
        var x = tensor(Pixels, ScalarType.Byte).reshape(Count, 1, Height, Width).to_type(ScalarType.Float32).div_(255f).sub_(mean).div_(std);
        var y = tensor(Labels, ScalarType.Byte).to_type(ScalarType.Int64);
        return new TensorDataset(x, y);
    }

    private static string Find(string directory, string stem)
    {
        foreach (var name in new[] { stem + ".gz", stem })
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException(
            $"'{stem}[.gz]' was not found in '{directory}'. On Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist " +
            $"(files go to {DebianFashionMnistDirectory}); elsewhere download the four idx files of Fashion-MNIST into one directory.",
            Path.Combine(directory, stem + ".gz"));
    }

    private static Stream Open(string path)
    {
        var file = File.OpenRead(path);
        int b0 = file.ReadByte(), b1 = file.ReadByte();
        file.Position = 0;
        return b0 == 0x1f && b1 == 0x8b ? new BufferedStream(new GZipStream(file, CompressionMode.Decompress), 1 << 16) : file;
    }

    private static int ReadBigEndian(BinaryReader reader)
    {
        var b = reader.ReadBytes(4);
        if (b.Length < 4) throw new EndOfStreamException("Truncated idx header.");
        return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    }

    private static byte[] ReadExactly(BinaryReader reader, int count, string path)
    {
        var data = reader.ReadBytes(count);
        if (data.Length != count) throw new InvalidDataException($"{path} is truncated: expected {count} bytes, got {data.Length}.");
        return data;
    }
}
