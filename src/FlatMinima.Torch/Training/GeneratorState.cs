using System.IO;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>Writes and restores the state of a random <see cref="Generator"/> (for training checkpoints): its byte length, then the bytes.</summary>
internal static class GeneratorState
{
    /// <summary>Upper bound of a state's size (a CPU Mersenne-Twister state is about 5 KB).</summary>
    private const int MaxBytes = 1 << 20;

    public static void Write(BinaryWriter writer, Generator generator)
    {
        using var state = generator.get_state();
        var data = state.data<byte>().ToArray();
        writer.Write(data.Length);
        writer.Write(data);
    }

    public static void Read(BinaryReader reader, Generator generator)
    {
        int n = CheckpointFile.ReadCount(reader, 1, "a random generator's state");
        if (n > MaxBytes) throw new InvalidDataException($"The training checkpoint is damaged: a random generator's state of {n} bytes (at most {MaxBytes}).");
        var data = reader.ReadBytes(n);
        if (data.Length != n) throw new EndOfStreamException("The training checkpoint is truncated.");
        using var state = tensor(data, ScalarType.Byte);
        generator.set_state(state);
    }
}
