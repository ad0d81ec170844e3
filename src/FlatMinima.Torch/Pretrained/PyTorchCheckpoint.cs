using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using System.Text.Json;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// Reads the tensors of a PyTorch <c>state_dict</c> saved with <c>torch.save</c> (a zip archive, PyTorch ≥ 1.6's default:
/// a pickled dictionary, each tensor's bytes in an entry of its own) or as safetensors (an 8-byte header length, a JSON
/// header, the tensors' bytes), through TorchSharp.PyBridge's unpickler and safetensors reader. The format is told by the file's content, not its extension.
/// A <c>torch.save</c> file may hold the state_dict itself or a dictionary with it under <c>"state_dict"</c> or
/// <c>"model"</c> (a training checkpoint; its other entries are ignored); keys that all start with <c>"module."</c>
/// (saved from <c>DataParallel</c>/<c>DistributedDataParallel</c>) lose that prefix. Not read: PyTorch's legacy (pre-1.6)
/// format, whole pickled modules (<c>torch.save(model)</c>) and TorchScript archives.
/// </summary>
internal static class PyTorchCheckpoint
{
    private const string DataParallelPrefix = "module.";
    private static readonly string[] WrapperKeys = { "state_dict", "model" };

    /// <summary>
    /// The state_dict in <paramref name="path"/>: names → CPU tensors, created in the caller's dispose scope (the caller
    /// disposes them, and any other tensors the file holds, with that scope).
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file is not a readable state_dict; the message names the file.</exception>
    public static Dictionary<string, Tensor> ReadStateDict(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"There is no PyTorch checkpoint at '{path}'.", path);
        using var stream = File.OpenRead(path);
        byte[] head = new byte[9];
        int read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        stream.Position = 0;
        Dictionary<string, Tensor> state;
        if (read >= 4 && head[0] == 0x50 && head[1] == 0x4b && head[2] == 0x03 && head[3] == 0x04)
            state = ReadTorchSave(path, stream);
        else if (read == head.Length && head[8] == (byte)'{' && BitConverter.ToUInt64(head, 0) <= (ulong)stream.Length - 8)
            state = ReadSafetensors(path, stream);
        else if (read >= 2 && head[0] == 0x80 && head[1] <= 5)
            throw new InvalidDataException(
                $"'{path}' is a pickle, not a torch.save zip archive: PyTorch's legacy (pre-1.6) format, which is not supported. " +
                "Re-save it with a current PyTorch: torch.save(torch.load(path), new_path).");
        else
            throw new InvalidDataException($"'{path}' is not a PyTorch checkpoint: neither a torch.save zip archive nor a safetensors file.");
        return StripDataParallelPrefix(state);
    }

    // torch.save: PyBridge's unpickler (tensors read in full), then the state_dict found in the unpickled dictionary.
    private static Dictionary<string, Tensor> ReadTorchSave(string path, Stream stream)
    {
        Hashtable unpickled;
        try
        {
            using (var archive = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true))
            {
                if (!archive.Entries.Any(e => e.Name == "data.pkl"))
                    throw new InvalidDataException("it has no data.pkl entry");
            }
            stream.Position = 0;
            unpickled = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' is a zip archive but not a readable torch.save state_dict: {e.Message}", e);
        }
        var dictionary = (IDictionary)unpickled;
        if (!dictionary.Values.OfType<Tensor>().Any())
        {
            string? wrapper = WrapperKeys.FirstOrDefault(k => dictionary[k] is IDictionary);
            if (wrapper is not null) dictionary = (IDictionary)dictionary[wrapper]!;
        }
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in dictionary)
        {
            if (entry.Key is not string key || entry.Value is not Tensor tensor)
                throw new InvalidDataException(
                    $"'{path}' holds entry '{entry.Key}' ({entry.Value?.GetType().Name ?? "null"}) where a state_dict has a tensor; " +
                    $"expected a state_dict, or a dictionary with one under {string.Join(" or ", WrapperKeys.Select(k => $"\"{k}\""))}.");
            state.Add(key, tensor);
        }
        if (state.Count == 0)
            throw new InvalidDataException($"'{path}' holds no tensors: expected a state_dict, or a dictionary with one under {string.Join(" or ", WrapperKeys.Select(k => $"\"{k}\""))}.");
        return state;
    }

    // Safetensors: the header is checked against the file's length first (PyBridge would read past the end silently).
    private static Dictionary<string, Tensor> ReadSafetensors(string path, Stream stream)
    {
        long headerLength;
        try
        {
            var lengthBytes = new byte[8];
            stream.ReadExactly(lengthBytes);
            headerLength = (long)BitConverter.ToUInt64(lengthBytes);
            var header = new byte[headerLength];
            stream.ReadExactly(header);
            using var json = JsonDocument.Parse(Encoding.UTF8.GetString(header));
            long dataLength = stream.Length - 8 - headerLength;
            foreach (var entry in json.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__") continue;
                long end = entry.Value.GetProperty("data_offsets")[1].GetInt64();
                if (end > dataLength)
                    throw new InvalidDataException($"tensor '{entry.Name}' ends at byte {end} of the data, which has {dataLength} bytes (truncated file?)");
            }
            stream.Position = 0;
            return Safetensors.LoadStateDict(stream, leaveOpen: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' is not a readable safetensors file: {e.Message}", e);
        }
    }

    // "module.layer1.0.conv1.weight" → "layer1.0.conv1.weight" when every key has the prefix.
    private static Dictionary<string, Tensor> StripDataParallelPrefix(Dictionary<string, Tensor> state)
    {
        if (state.Count == 0 || !state.Keys.All(k => k.StartsWith(DataParallelPrefix, StringComparison.Ordinal))) return state;
        return state.ToDictionary(e => e.Key[DataParallelPrefix.Length..], e => e.Value, StringComparer.Ordinal);
    }
}
