using System;
using System.Buffers.Binary;
using System.IO;
using System.Security.Cryptography;

namespace FlatMinima.Torch.Training;

/// <summary>
/// The envelope of a training checkpoint file: an 8-byte magic, the payload's length and its SHA-256, then the payload.
/// Written to a unique temporary file in the same folder, flushed to disk and renamed over the target (atomic on the
/// same volume); read back only after the length and checksum of the whole payload are verified.
/// </summary>
internal static class CheckpointFile
{
    /// <summary>Identifies the format (and its version) in the first 8 bytes.</summary>
    private static readonly byte[] Magic = "FMCKPT03"u8.ToArray();

    private const int HashSize = 32;

    /// <summary>Bytes before the payload: magic, payload length (int64), SHA-256.</summary>
    internal const int HeaderSize = 8 + sizeof(long) + HashSize;

    /// <summary>Temporary files not written to for this long and not open by a writer are removed as stale.</summary>
    internal static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Writes <paramref name="writePayload"/>'s bytes to <paramref name="path"/> atomically: a temporary file named
    /// <c>path.&lt;guid&gt;.tmp</c> (unique, so runs writing the same path do not collide), flushed to disk, then renamed
    /// over <paramref name="path"/>. The temporary file is deleted if anything fails; stale temporary files of the same
    /// path (from killed runs) are removed afterwards.
    /// </summary>
    public static void Write(string path, Action<BinaryWriter> writePayload)
    {
        string full = Path.GetFullPath(path);
        string temporary = $"{full}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None))
            {
                file.Write(Magic);
                file.Write(new byte[sizeof(long) + HashSize]);
                using (var writer = new BinaryWriter(file, System.Text.Encoding.UTF8, leaveOpen: true))
                    writePayload(writer);
                long length = file.Length - HeaderSize;
                file.Position = HeaderSize;
                byte[] hash = SHA256.HashData(file);
                file.Position = Magic.Length;
                var lengthBytes = new byte[sizeof(long)];
                BinaryPrimitives.WriteInt64LittleEndian(lengthBytes, length);
                file.Write(lengthBytes);
                file.Write(hash);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
        RemoveStaleTemporaries(full);
    }

    /// <summary>
    /// Opens <paramref name="path"/> and verifies its magic, length and SHA-256 before anything is read from it; returns
    /// a reader positioned at the payload. Damaged files give an <see cref="InvalidDataException"/> naming the file.
    /// </summary>
    public static BinaryReader OpenVerified(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The checkpoint '{path}' does not exist.", path);
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            Verify(path, file);
            file.Position = HeaderSize;
            return new BinaryReader(file, System.Text.Encoding.UTF8, leaveOpen: false);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static void Verify(string path, FileStream file)
    {
        string damaged = $"The checkpoint '{path}' is not a FlatMinima training checkpoint of this version or is damaged";
        if (file.Length < HeaderSize) throw new InvalidDataException($"{damaged}: {file.Length} bytes, shorter than its {HeaderSize}-byte header. Delete it to start the run afresh.");
        var header = new byte[HeaderSize];
        file.ReadExactly(header);
        if (!header.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new InvalidDataException($"{damaged} (wrong magic bytes). Delete it to start the run afresh.");
        long length = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(Magic.Length));
        if (length != file.Length - HeaderSize)
            throw new InvalidDataException($"{damaged}: its header announces {length} bytes of state but the file holds {file.Length - HeaderSize} (truncated or appended to). Delete it to start the run afresh.");
        byte[] hash = SHA256.HashData(file);
        if (!hash.AsSpan().SequenceEqual(header.AsSpan(Magic.Length + sizeof(long), HashSize)))
            throw new InvalidDataException($"{damaged}: the SHA-256 checksum of its contents does not match (bytes changed on disk). Delete it to start the run afresh.");
    }

    /// <summary>
    /// Reads a count written before <paramref name="elementSize"/>-byte elements and checks it against the bytes left in
    /// the stream, so that a damaged count never drives an allocation.
    /// </summary>
    internal static int ReadCount(BinaryReader reader, int elementSize, string what)
    {
        int count = reader.ReadInt32();
        long left = reader.BaseStream.CanSeek ? reader.BaseStream.Length - reader.BaseStream.Position : long.MaxValue;
        if (count < 0 || (long)count * elementSize > left)
            throw new InvalidDataException($"The training checkpoint is damaged: {what} announces {count} elements of {elementSize} bytes with {left} bytes left.");
        return count;
    }

    // Removes path.<32 hex>.tmp files of killed runs: not written for StaleAfter and not open by a writer.
    private static void RemoveStaleTemporaries(string full)
    {
        string? folder = Path.GetDirectoryName(full);
        if (folder is null || !Directory.Exists(folder)) return;
        string prefix = Path.GetFileName(full) + ".";
        foreach (string candidate in Directory.EnumerateFiles(folder, prefix + "*.tmp"))
        {
            string middle = Path.GetFileName(candidate)[prefix.Length..^".tmp".Length];
            if (middle.Length != 32 || !Guid.TryParseExact(middle, "N", out _)) continue;
            try
            {
                if (DateTime.UtcNow - File.GetLastWriteTimeUtc(candidate) < StaleAfter) continue;
                // A writer holds its temporary file with FileShare.None: opening fails while it writes.
                using var probe = new FileStream(candidate, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
