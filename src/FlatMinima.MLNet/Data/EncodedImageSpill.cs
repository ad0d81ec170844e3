using System;
using System.Collections.Generic;
using System.IO;
using Microsoft.Win32.SafeHandles;

namespace FlatMinima.MLNet;

/// <summary>
/// The encoded images of a streamed training set in a temporary file (in <see cref="Path.GetTempPath"/>, deleted when
/// disposed or when the process ends): appended once in row order, then read back by row from any thread (positional
/// reads, no shared file position). Memory: an offset and a length per row; the operating system's page cache, not the
/// process, holds the recently read bytes.
/// </summary>
internal sealed class EncodedImageSpill : IDisposable
{
    private readonly FileStream _file;
    private readonly List<long> _offsets = new();
    private readonly List<int> _lengths = new();
    private long _end;
    private bool _complete;

    public EncodedImageSpill()
    {
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-images-{Guid.NewGuid():N}.bin");
        try
        {
            _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16,
                FileOptions.DeleteOnClose | FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"DataLoading Streaming keeps the encoded training images in a temporary file, and '{path}' could not be created: {e.Message} " +
                                  "Set TMPDIR to a writable folder with room for the encoded images, or use DataLoading = InMemory.", e);
        }
    }

    /// <summary>Rows stored.</summary>
    public int Count => _offsets.Count;

    /// <summary>Bytes stored.</summary>
    public long Bytes => _end;

    /// <summary>Appends one row's encoded bytes (not thread-safe; the reading pass only).</summary>
    public void Add(byte[] encoded)
    {
        try
        {
            _file.Write(encoded);
        }
        catch (IOException e)
        {
            throw new IOException($"DataLoading Streaming: writing the encoded training images to the temporary file '{_file.Name}' failed after {_end:N0} bytes: {e.Message} " +
                                  "Set TMPDIR to a folder with room for them, or use DataLoading = InMemory.", e);
        }
        _offsets.Add(_end);
        _lengths.Add(encoded.Length);
        _end += encoded.Length;
    }

    /// <summary>Ends the writing pass: the buffered bytes go to the file; rows can be read from then on.</summary>
    public void Complete()
    {
        _file.Flush();
        _complete = true;
    }

    /// <summary>The encoded bytes of row <paramref name="row"/> (thread-safe; after <see cref="Complete"/>).</summary>
    public byte[] Read(long row)
    {
        if (!_complete) throw new InvalidOperationException("The encoded images are read before the reading pass completed.");
        var bytes = new byte[_lengths[(int)row]];
        int read = 0;
        SafeFileHandle handle = _file.SafeFileHandle;
        while (read < bytes.Length)
        {
            int n = RandomAccess.Read(handle, bytes.AsSpan(read), _offsets[(int)row] + read);
            if (n == 0) throw new IOException($"The temporary file '{_file.Name}' of the encoded training images ends before row {row}'s bytes.");
            read += n;
        }
        return bytes;
    }

    public void Dispose() => _file.Dispose();
}
