using System;
using System.IO;
using FlatMinima.Torch.Averaging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// The whole state of a <see cref="ClassifierTrainer"/> run at an epoch boundary — weights and buffers, optimizer
/// state, the gradient step's own state (e.g. F2M's noise generator), averaging state, completed epochs and steps, the
/// sampler's random state — written to and read from a file, so that a resumed run continues exactly as the
/// uninterrupted one would (bit-identical on CPU).
/// </summary>
internal static class TrainingCheckpoint
{
    private const string Header = "FlatMinima.TrainingCheckpoint.v2";

    /// <summary>Identifies a run: a checkpoint only resumes a run with the same values.</summary>
    internal readonly record struct Fingerprint(int Epochs, int StepsPerEpoch, int BatchSize, int Seed, long Examples, string? GradientStep, string? Averaging);

    /// <summary>Progress stored in a checkpoint.</summary>
    internal readonly record struct Progress(int CompletedEpochs, long CompletedSteps);

    /// <summary>The objects whose state a checkpoint holds.</summary>
    internal sealed record State(Generator Generator, BatchSampler Sampler, nn.Module Model, optim.Optimizer Optimizer,
        IGradientStep GradientStep, IWeightAverager? Averager);

    /// <summary>Writes the state to <paramref name="path"/> atomically (a temporary file, then a rename).</summary>
    public static void Save(string path, Fingerprint run, Progress progress, State state)
    {
        string temporary = path + ".tmp";
        using (var writer = new BinaryWriter(File.Create(temporary)))
        {
            writer.Write(Header);
            Write(writer, run);
            writer.Write(progress.CompletedEpochs); writer.Write(progress.CompletedSteps);
            GeneratorState.Write(writer, state.Generator);
            state.Sampler.Save(writer);
            state.Model.save(writer);
            Helper(state.Optimizer).save_state_dict(writer);
            state.GradientStep.Save(writer);
            state.Averager?.Save(writer);
        }
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Reads a state written by <see cref="Save"/> into the given (freshly created) objects.</summary>
    public static Progress Load(string path, Fingerprint run, State state)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The checkpoint '{path}' does not exist.", path);
        using var reader = new BinaryReader(File.OpenRead(path));
        if (reader.ReadString() != Header) throw new InvalidDataException($"'{path}' is not a FlatMinima training checkpoint of this version (wrong header).");
        var saved = Read(reader);
        if (saved != run)
            throw new InvalidDataException($"The checkpoint '{path}' was written by a different run ({saved}); this run is {run}. Resume with the same options and data.");
        var progress = new Progress(reader.ReadInt32(), reader.ReadInt64());
        GeneratorState.Read(reader, state.Generator);
        state.Sampler.Load(reader);
        state.Model.load(reader);
        Helper(state.Optimizer).load_state_dict(reader);
        state.GradientStep.Load(reader);
        state.Averager?.Load(reader);
        return progress;
    }

    private static OptimizerHelper Helper(optim.Optimizer optimizer) => optimizer as OptimizerHelper
        ?? throw new NotSupportedException($"Checkpoints need a TorchSharp optimizer derived from OptimizerHelper; got {optimizer.GetType().Name}.");

    private static void Write(BinaryWriter w, Fingerprint f)
    {
        w.Write(f.Epochs); w.Write(f.StepsPerEpoch); w.Write(f.BatchSize); w.Write(f.Seed); w.Write(f.Examples);
        w.Write(f.GradientStep ?? ""); w.Write(f.Averaging ?? "");
    }

    private static Fingerprint Read(BinaryReader r)
    {
        var f = new Fingerprint(r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt64(), r.ReadString(), r.ReadString());
        return f with { GradientStep = f.GradientStep == "" ? null : f.GradientStep, Averaging = f.Averaging == "" ? null : f.Averaging };
    }
}
