using System.IO;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>Writes and restores the state of a random <see cref="Generator"/> (for training checkpoints).</summary>
internal static class GeneratorState
{
    public static void Write(BinaryWriter writer, Generator generator)
    {
        using var state = generator.get_state();
        var data = state.data<byte>().ToArray();
        writer.Write(data.Length);
        writer.Write(data);
    }

    public static void Read(BinaryReader reader, Generator generator)
    {
        int n = reader.ReadInt32();
        var data = reader.ReadBytes(n);
        if (data.Length != n) throw new EndOfStreamException("The training checkpoint is truncated.");
        using var state = tensor(data, ScalarType.Byte);
        generator.set_state(state);
    }
}
