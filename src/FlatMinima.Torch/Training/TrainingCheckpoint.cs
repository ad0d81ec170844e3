using System;
using System.IO;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// The whole state of a <see cref="ClassifierTrainer"/> run at an epoch boundary — weights and buffers, optimizer (and
/// SAM) state, averaging state, completed epochs and steps, the sampler's random state — written to and read from a
/// file, so that a resumed run continues exactly as the uninterrupted one would (bit-identical on CPU).
/// </summary>
internal static class TrainingCheckpoint
{
    private const string Header = "FlatMinima.TrainingCheckpoint.v1";

    /// <summary>Identifies a run: a checkpoint only resumes a run with the same values.</summary>
    internal readonly record struct Fingerprint(int Epochs, int StepsPerEpoch, int BatchSize, int Seed, long Examples, bool SharpnessAware, string? Averaging, bool FlatRegion);

    /// <summary>Progress stored in a checkpoint.</summary>
    internal readonly record struct Progress(int CompletedEpochs, long CompletedSteps);

    /// <summary>Writes the state to <paramref name="path"/> atomically (a temporary file, then a rename).</summary>
    public static void Save(string path, Fingerprint run, Progress progress, Generator generator, Generator noise, BatchSampler sampler,
        nn.Module model, optim.Optimizer optimizer, SharpnessAwareMinimizer? sam, IWeightAverager? averager)
    {
        string temporary = path + ".tmp";
        using (var writer = new BinaryWriter(File.Create(temporary)))
        {
            writer.Write(Header);
            Write(writer, run);
            writer.Write(progress.CompletedEpochs); writer.Write(progress.CompletedSteps);
            WriteBytes(writer, generator.get_state());
            WriteBytes(writer, noise.get_state());
            sampler.Save(writer);
            model.save(writer);
            if (sam is not null) sam.SaveState(writer);
            else Helper(optimizer).save_state_dict(writer);
            averager?.Save(writer);
        }
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Reads a state written by <see cref="Save"/> into the given (freshly created) objects.</summary>
    public static Progress Load(string path, Fingerprint run, Generator generator, Generator noise, BatchSampler sampler,
        nn.Module model, optim.Optimizer optimizer, SharpnessAwareMinimizer? sam, IWeightAverager? averager)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The checkpoint '{path}' does not exist.", path);
        using var reader = new BinaryReader(File.OpenRead(path));
        if (reader.ReadString() != Header) throw new InvalidDataException($"'{path}' is not a FlatMinima training checkpoint (wrong header).");
        var saved = Read(reader);
        if (saved != run)
            throw new InvalidDataException($"The checkpoint '{path}' was written by a different run ({saved}); this run is {run}. Resume with the same options and data.");
        var progress = new Progress(reader.ReadInt32(), reader.ReadInt64());
        using (var state = ReadBytes(reader)) generator.set_state(state);
        using (var state = ReadBytes(reader)) noise.set_state(state);
        sampler.Load(reader);
        model.load(reader);
        if (sam is not null) sam.LoadState(reader);
        else Helper(optimizer).load_state_dict(reader);
        averager?.Load(reader);
        return progress;
    }

    private static OptimizerHelper Helper(optim.Optimizer optimizer) => optimizer as OptimizerHelper
        ?? throw new NotSupportedException($"Checkpoints need a TorchSharp optimizer derived from OptimizerHelper; got {optimizer.GetType().Name}.");

    private static void Write(BinaryWriter w, Fingerprint f)
    {
        w.Write(f.Epochs); w.Write(f.StepsPerEpoch); w.Write(f.BatchSize); w.Write(f.Seed); w.Write(f.Examples);
        w.Write(f.SharpnessAware); w.Write(f.Averaging ?? ""); w.Write(f.FlatRegion);
    }

    private static Fingerprint Read(BinaryReader r)
    {
        var f = new Fingerprint(r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt64(), r.ReadBoolean(), r.ReadString(), r.ReadBoolean());
        return f with { Averaging = f.Averaging == "" ? null : f.Averaging };
    }

    private static void WriteBytes(BinaryWriter writer, Tensor bytes)
    {
        using (bytes)
        {
            var data = bytes.data<byte>().ToArray();
            writer.Write(data.Length);
            writer.Write(data);
        }
    }

    private static Tensor ReadBytes(BinaryReader reader)
    {
        int n = reader.ReadInt32();
        var data = reader.ReadBytes(n);
        if (data.Length != n) throw new EndOfStreamException("The training checkpoint is truncated.");
        return tensor(data, ScalarType.Byte);
    }
}
