using System;
using System.IO;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// Plain binary (de)serialisation of float32/int64 tensors: dtype, rank, shape, raw bytes. <see cref="Read"/> trusts
/// nothing it reads: the dtype must be float32 or int64, the rank ≤ <see cref="MaxRank"/>, every dimension ≥ 0 and the
/// data size ≤ <see cref="MaxBytes"/> and ≤ what is left in the stream (when it can tell) — all checked before any
/// allocation; violations throw <see cref="InvalidDataException"/>.
/// </summary>
internal static class TensorIO
{
    /// <summary>The largest rank accepted.</summary>
    public const int MaxRank = 8;

    /// <summary>The largest tensor accepted, in bytes (1 GiB).</summary>
    public const long MaxBytes = 1L << 30;

    /// <summary>Writes <paramref name="value"/> (copied to the CPU, contiguous).</summary>
    public static void Write(BinaryWriter writer, Tensor value)
    {
        using var cpu = value.detach().cpu().contiguous();
        writer.Write((int)cpu.dtype);
        writer.Write((int)cpu.dim());
        foreach (long d in cpu.shape) writer.Write(d);
        writer.Write(cpu.bytes);
    }

    /// <summary>Reads a tensor written by <see cref="Write"/> onto the CPU (outside any dispose scope); checks the
    /// header before allocating and, with <paramref name="requireFinite"/>, rejects NaN or ±∞ float values.</summary>
    public static Tensor Read(BinaryReader reader, bool requireFinite = false)
    {
        int rawType = reader.ReadInt32();
        var dtype = (ScalarType)rawType;
        if (dtype != ScalarType.Float32 && dtype != ScalarType.Int64)
            throw new InvalidDataException($"A stored tensor has dtype code {rawType}; only float32 and int64 are stored.");
        int rank = reader.ReadInt32();
        if (rank < 0 || rank > MaxRank) throw new InvalidDataException($"A stored tensor has rank {rank}; ranks 0 to {MaxRank} are accepted.");
        var shape = new long[rank];
        long elementSize = dtype == ScalarType.Float32 ? 4 : 8, bytes = elementSize;
        for (int i = 0; i < rank; i++)
        {
            shape[i] = reader.ReadInt64();
            if (shape[i] < 0) throw new InvalidDataException($"A stored tensor has dimension {i} = {shape[i]} (< 0).");
            if (shape[i] > 0 && bytes > MaxBytes / shape[i])
                throw new InvalidDataException($"A stored tensor of shape [{string.Join(", ", shape[..(i + 1)])}…] exceeds the {MaxBytes >> 20} MiB limit.");
            bytes *= shape[i];
        }
        if (bytes > MaxBytes) throw new InvalidDataException($"A stored tensor of {bytes} bytes exceeds the {MaxBytes >> 20} MiB limit.");
        var stream = reader.BaseStream;
        if (stream.CanSeek && bytes > stream.Length - stream.Position)
            throw new InvalidDataException($"A stored tensor of shape [{string.Join(", ", shape)}] needs {bytes} bytes but only {stream.Length - stream.Position} are left: the data is truncated.");
        var data = reader.ReadBytes((int)bytes);
        if (data.Length != bytes) throw new InvalidDataException("The tensor data is truncated.");
        var result = empty(shape, dtype).DetachFromDisposeScope();
        result.bytes = data;
        if (requireFinite && dtype == ScalarType.Float32 && !AllFinite(result))
        {
            result.Dispose();
            throw new InvalidDataException($"A stored float tensor of shape [{string.Join(", ", shape)}] holds NaN or infinite values.");
        }
        return result;
    }

    /// <summary>True when every element of a floating-point <paramref name="value"/> is finite (always for integers).</summary>
    public static bool AllFinite(Tensor value)
    {
        if (!value.is_floating_point() || value.numel() == 0) return true;
        using var finite = isfinite(value);
        using var all = finite.all();
        return all.item<bool>();
    }
}
