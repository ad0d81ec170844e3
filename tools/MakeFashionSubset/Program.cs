// Makes data/fashion-mnist-subset from the full Fashion-MNIST (Debian: apt-get install dataset-fashion-mnist):
// the first N training and M test images of each class, as 28×28 grayscale PNG files in train/<class>/ and test/<class>/.
// Usage: dotnet run --project tools/MakeFashionSubset -- [sourceDir] [outputDir] [trainPerClass] [testPerClass]
using System;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Data;
using System.IO.Compression;

string source = args.Length > 0 ? args[0] : IdxImageSet.DebianFashionMnistDirectory;
string output = args.Length > 1 ? args[1] : Path.Combine("data", "fashion-mnist-subset");
int trainPerClass = args.Length > 2 ? int.Parse(args[2]) : 600, testPerClass = args.Length > 3 ? int.Parse(args[3]) : 100;

foreach (var (split, perClass) in new[] { ("train", trainPerClass), ("test", testPerClass) })
{
    var set = IdxImageSet.LoadSplit(source, split == "train");
    int size = set.Height * set.Width;
    for (int c = 0; c < IdxImageSet.FashionMnistClassNames.Count; c++)
    {
        string dir = Path.Combine(output, split, IdxImageSet.FashionMnistClassNames[c]);
        Directory.CreateDirectory(dir);
        var indices = Enumerable.Range(0, set.Count).Where(i => set.Labels[i] == c).Take(perClass);
        foreach (int i in indices)
        {
            File.WriteAllBytes(Path.Combine(dir, $"{split}-{i:D5}.png"), GrayPng.Encode(set.Pixels.AsSpan(i * size, size), set.Width, set.Height));
        }
    }
    Console.WriteLine($"{split}: {perClass} per class written to {Path.Combine(output, split)}");
}

/// <summary>Minimal 8-bit grayscale PNG encoder (filter 0 on every row, zlib-compressed IDAT).</summary>
static class GrayPng
{
    private static readonly uint[] Crc = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static byte[] Encode(ReadOnlySpan<byte> pixels, int width, int height)
    {
        var raw = new byte[height * (width + 1)];
        for (int y = 0; y < height; y++) pixels.Slice(y * width, width).CopyTo(raw.AsSpan(y * (width + 1) + 1));
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true)) z.Write(raw);
        using var png = new MemoryStream();
        png.Write(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A });
        var header = new byte[13];
        WriteBigEndian(header, 0, (uint)width);
        WriteBigEndian(header, 4, (uint)height);
        header[8] = 8; // bit depth; colour type 0 (grayscale), compression 0, filter 0, interlace 0
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", Array.Empty<byte>());
        return png.ToArray();
    }

    private static void Chunk(Stream output, string type, byte[] data)
    {
        var head = new byte[8];
        WriteBigEndian(head, 0, (uint)data.Length);
        for (int i = 0; i < 4; i++) head[4 + i] = (byte)type[i];
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in head.AsSpan(4)) crc = Crc[(crc ^ b) & 0xFF] ^ (crc >> 8);
        foreach (byte b in data) crc = Crc[(crc ^ b) & 0xFF] ^ (crc >> 8);
        var tail = new byte[4];
        WriteBigEndian(tail, 0, crc ^ 0xFFFFFFFFu);
        output.Write(head);
        output.Write(data);
        output.Write(tail);
    }

    private static void WriteBigEndian(byte[] buffer, int offset, uint value)
    {
        buffer[offset] = (byte)(value >> 24); buffer[offset + 1] = (byte)(value >> 16);
        buffer[offset + 2] = (byte)(value >> 8); buffer[offset + 3] = (byte)value;
    }
}
