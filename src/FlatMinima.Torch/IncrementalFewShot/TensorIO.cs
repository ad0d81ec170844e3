using System.IO;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>Plain binary (de)serialisation of float32/int64 tensors: dtype, rank, shape, raw bytes.</summary>
internal static class TensorIO
{
    /// <summary>Writes <paramref name="value"/> (copied to the CPU, contiguous).</summary>
    public static void Write(BinaryWriter writer, Tensor value)
    {
        using var cpu = value.detach().cpu().contiguous();
        writer.Write((int)cpu.dtype);
        writer.Write((int)cpu.dim());
        foreach (long d in cpu.shape) writer.Write(d);
        writer.Write(cpu.bytes);
    }

    /// <summary>Reads a tensor written by <see cref="Write"/> onto the CPU (outside any dispose scope).</summary>
    public static Tensor Read(BinaryReader reader)
    {
        var dtype = (ScalarType)reader.ReadInt32();
        int rank = reader.ReadInt32();
        var shape = new long[rank];
        for (int i = 0; i < rank; i++) shape[i] = reader.ReadInt64();
        var result = empty(shape, dtype).DetachFromDisposeScope();
        var bytes = reader.ReadBytes(checked((int)(result.numel() * result.element_size())));
        if (bytes.Length != result.numel() * result.element_size()) throw new EndOfStreamException("The tensor data is truncated.");
        result.bytes = bytes;
        return result;
    }
}
