using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>
/// Reads one FlatMinima transformer from an ML.NET model zip, keeping track of the zip entry being read so that every
/// failure becomes an <see cref="InvalidDataException"/> whose message names that entry (and holds no bytes from the
/// file). Entries other than <c>Model.key</c> are read whole into memory (bounded by <see cref="MaxEntryBytes"/>),
/// checked against their stored SHA-256 when the format has one, then parsed.
/// </summary>
internal sealed class ModelReading
{
    /// <summary>The largest binary entry read, in bytes (1 GiB).</summary>
    public const long MaxEntryBytes = 1L << 30;

    /// <summary>The key marking an exception as already naming its entry.</summary>
    private const string EntryKey = "FlatMinima.ModelEntry";

    /// <summary>The key marking an exception that is not about the file's content (e.g. the requested device).</summary>
    internal const string PassThroughKey = "FlatMinima.NotAFileError";

    private readonly ModelLoadContext _ctx;

    private ModelReading(ModelLoadContext ctx)
    {
        _ctx = ctx;
        Current = EntryName("Model.key");
    }

    /// <summary>The full name (path inside the zip) of the entry being read.</summary>
    public string Current { get; private set; }

    /// <summary>The header reader (<c>Model.key</c>).</summary>
    public BinaryReader Reader => _ctx.Reader;

    /// <summary>The model's path inside the zip plus <paramref name="name"/>.</summary>
    public string EntryName(string name) => string.IsNullOrEmpty(_ctx.Directory) ? name : _ctx.Directory.Replace('\\', '/') + "/" + name;

    /// <summary>Runs <paramref name="load"/>; any failure becomes an <see cref="InvalidDataException"/> naming the entry.</summary>
    public static T Run<T>(ModelLoadContext ctx, Func<ModelReading, T> load)
    {
        var reading = new ModelReading(ctx);
        try
        {
            return load(reading);
        }
        catch (Exception e) when (!e.Data.Contains(EntryKey) && !e.Data.Contains(PassThroughKey) && e is not (OutOfMemoryException or OperationCanceledException))
        {
            throw reading.Wrap(e);
        }
    }

    /// <summary>A failure of the current entry: <c>FlatMinima model entry '…': message</c>.</summary>
    public InvalidDataException Fail(string message)
    {
        var e = new InvalidDataException($"FlatMinima model entry '{Current}': {message}");
        e.Data[EntryKey] = Current;
        return e;
    }

    /// <summary>Throws <see cref="Fail"/> unless <paramref name="condition"/>.</summary>
    public void Check(bool condition, string message)
    {
        if (!condition) throw Fail(message);
    }

    private InvalidDataException Wrap(Exception e)
    {
        string what = e switch
        {
            EndOfStreamException => "the entry ends early (truncated or damaged): " + Sanitize(e.Message),
            _ => Sanitize(e.Message),
        };
        var wrapped = new InvalidDataException($"FlatMinima model entry '{Current}' is damaged or not a FlatMinima model: {what}", e);
        wrapped.Data[EntryKey] = Current;
        return wrapped;
    }

    /// <summary>Reads a string from the header's string table, 1 to <paramref name="maxLength"/> printable characters.</summary>
    public string ReadName(string what, int maxLength = ModelLimits.MaxNameLength)
    {
        string value = _ctx.LoadNonEmptyString();
        Check(value.Length <= maxLength, $"the {what} has {value.Length} characters; at most {maxLength} are accepted.");
        Check(value.All(c => !char.IsControl(c) && c != '\uFFFD'), $"the {what} '{Sanitize(value)}' contains control or invalid characters.");
        return value;
    }

    /// <summary>Reads a string or null from the header's string table (null, or at most <paramref name="maxLength"/> printable characters).</summary>
    public string? ReadTextOrNull(string what, int maxLength = ModelLimits.MaxNameLength)
    {
        string? value = _ctx.LoadStringOrNull();
        if (value is null) return null;
        Check(value.Length <= maxLength, $"the {what} has {value.Length} characters; at most {maxLength} are accepted.");
        Check(value.All(c => !char.IsControl(c) && c != '\uFFFD'), $"the {what} '{Sanitize(value)}' contains control or invalid characters.");
        return value;
    }

    /// <summary>
    /// Reads the binary entry <paramref name="name"/> whole (at most <see cref="MaxEntryBytes"/>), makes it the current
    /// entry, and checks its SHA-256 against <paramref name="sha256"/> when given.
    /// </summary>
    public MemoryStream ReadEntry(string name, byte[]? sha256)
    {
        Current = EntryName(name);
        byte[]? bytes = null;
        if (!_ctx.TryLoadBinaryStream(name, r => bytes = ReadBounded(r.BaseStream)))
            throw Fail("the entry is missing from the model zip; the file is incomplete or not a FlatMinima model.");
        if (sha256 is not null)
        {
            var actual = SHA256.HashData(bytes!);
            Check(actual.AsSpan().SequenceEqual(sha256), "the SHA-256 checksum does not match the one stored in Model.key; the entry is damaged.");
        }
        return new MemoryStream(bytes!, writable: false);
    }

    /// <summary>Makes the header (<c>Model.key</c>) the current entry again.</summary>
    public void BackToHeader() => Current = EntryName("Model.key");

    private byte[] ReadBounded(Stream stream)
    {
        if (stream.CanSeek)
            Check(stream.Length - stream.Position <= MaxEntryBytes, $"the entry has {stream.Length - stream.Position} bytes; at most {MaxEntryBytes} are read.");
        using var copy = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            copy.Write(buffer, 0, read);
            Check(copy.Length <= MaxEntryBytes, $"the entry has more than {MaxEntryBytes} bytes.");
        }
        return copy.ToArray();
    }

    /// <summary>
    /// Checks that <paramref name="weights"/> (TorchSharp's <c>Module.save</c> format) holds exactly the state of
    /// <paramref name="network"/> — the same names, dtypes and shapes, and all the data — without allocating anything
    /// sized by the file, so that <c>Module.load</c> cannot be made to allocate or read past the entry.
    /// </summary>
    public void CheckStateDict(MemoryStream weights, nn.Module network)
    {
        var expected = network.state_dict();
        var reader = new BinaryReader(weights, Encoding.UTF8, leaveOpen: true);
        long start = weights.Position;
        long count = Decode(reader);
        Check(count == expected.Count, $"the weights hold {count} tensors; the network has {expected.Count}.");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < count; i++)
        {
            long nameLength = Decode(reader);
            Check(nameLength >= 0 && nameLength <= ModelLimits.MaxNameLength && nameLength <= weights.Length - weights.Position,
                $"tensor {i} of the weights has a name of {nameLength} bytes.");
            string name = Encoding.UTF8.GetString(reader.ReadBytes((int)nameLength));
            Check(expected.TryGetValue(name, out var target) && seen.Add(name), $"the weights hold a tensor '{Sanitize(name)}' that the network does not have (or twice).");
            long dtype = Decode(reader);
            Check(dtype == (long)target!.dtype, $"tensor '{name}' is stored with dtype code {dtype}; the network's is {target.dtype}.");
            long rank = Decode(reader);
            Check(rank == target.dim(), $"tensor '{name}' is stored with rank {rank}; the network's has rank {target.dim()}.");
            for (int d = 0; d < rank; d++)
            {
                long size = Decode(reader);
                Check(size == target.shape[d], $"tensor '{name}' is stored with dimension {d} = {size}; the network's is {target.shape[d]}.");
            }
            long bytes = target.numel() * target.element_size();
            Check(bytes <= weights.Length - weights.Position, $"tensor '{name}' needs {bytes} bytes but the entry has only {weights.Length - weights.Position} left: it is truncated.");
            weights.Seek(bytes, SeekOrigin.Current);
        }
        weights.Position = start;
    }

    /// <summary>Checks that every floating-point parameter and buffer of <paramref name="network"/> is finite.</summary>
    public void CheckFinite(nn.Module network)
    {
        foreach (var (name, tensor) in network.state_dict())
            Check(FlatMinima.Torch.IncrementalFewShot.TensorIO.AllFinite(tensor), $"tensor '{name}' holds NaN or infinite values.");
    }

    // TorchSharp's 7-bit (LEB128) integer encoding of Module.save.
    private long Decode(BinaryReader reader)
    {
        long value = 0;
        for (int shift = 0; ; shift += 7)
        {
            Check(shift <= 63, "a length field of the weights is malformed.");
            byte b = reader.ReadByte();
            value |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
    }

    /// <summary>The first line of <paramref name="text"/>, at most 200 characters, with control and non-ASCII-printable characters replaced by '?'.</summary>
    public static string Sanitize(string? text)
    {
        if (string.IsNullOrEmpty(text)) return "";
        int newline = text.IndexOfAny(new[] { '\r', '\n' });
        if (newline >= 0) text = text[..newline];
        if (text.Length > 200) text = text[..200] + "…";
        var sb = new StringBuilder(text.Length);
        foreach (char c in text) sb.Append(char.IsControl(c) || c == '\uFFFD' || char.IsSurrogate(c) || (c > '\u007e' && !char.IsLetterOrDigit(c) && !char.IsPunctuation(c) && !char.IsSymbol(c) && c != ' ') ? '?' : c);
        return sb.ToString();
    }
}
