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
/// sampler's and the augmentation's random states — with the run's <see cref="RunFingerprint"/>, written to and read from a file
/// (<see cref="CheckpointFile"/>: atomic, flushed, checksummed), so that a resumed run continues exactly as the
/// uninterrupted one would (bit-identical on CPU).
/// </summary>
internal static class TrainingCheckpoint
{
    /// <summary>Progress stored in a checkpoint.</summary>
    internal readonly record struct Progress(int CompletedEpochs, long CompletedSteps);

    /// <summary>The objects whose state a checkpoint holds.</summary>
    internal sealed record State(Generator Generator, BatchSampler Sampler, nn.Module Model, optim.Optimizer Optimizer,
        IGradientStep GradientStep, IWeightAverager? Averager, Generator? Augmentation = null);

    /// <summary>Writes the state to <paramref name="path"/> (see <see cref="CheckpointFile.Write"/>).</summary>
    public static void Save(string path, RunFingerprint run, Progress progress, State state) =>
        CheckpointFile.Write(path, writer =>
        {
            run.Write(writer);
            writer.Write(progress.CompletedEpochs); writer.Write(progress.CompletedSteps);
            GeneratorState.Write(writer, state.Generator);
            state.Sampler.Save(writer);
            state.Model.save(writer);
            Helper(state.Optimizer).save_state_dict(writer);
            state.GradientStep.Save(writer);
            state.Averager?.Save(writer);
            if (state.Augmentation is not null) GeneratorState.Write(writer, state.Augmentation);
        });

    /// <summary>
    /// Reads a state written by <see cref="Save"/> into the given (freshly created) objects. The file's checksum and the
    /// run's fingerprint are checked before anything is applied: a damaged file or one of another run gives an
    /// <see cref="InvalidDataException"/> naming the file (and what differs).
    /// </summary>
    public static Progress Load(string path, RunFingerprint run, int epochs, State state)
    {
        using var reader = CheckpointFile.OpenVerified(path);
        try
        {
            var differences = run.DifferencesFrom(RunFingerprint.Read(reader));
            if (differences.Count > 0)
                throw new InvalidDataException($"The checkpoint '{path}' was written by a different run: {string.Join("; ", differences)}. " +
                    "Resume with the same options, network and data, or delete the file (or choose another CheckpointPath) to start afresh.");
            var progress = new Progress(reader.ReadInt32(), reader.ReadInt64());
            if (progress.CompletedEpochs < 1 || progress.CompletedEpochs >= epochs || progress.CompletedSteps < 0)
                throw new InvalidDataException($"The checkpoint '{path}' records {progress.CompletedEpochs} completed epochs of {epochs}; nothing to resume.");
            GeneratorState.Read(reader, state.Generator);
            state.Sampler.Load(reader);
            state.Model.load(reader);
            Helper(state.Optimizer).load_state_dict(reader);
            state.GradientStep.Load(reader);
            state.Averager?.Load(reader);
            if (state.Augmentation is not null) GeneratorState.Read(reader, state.Augmentation);
            if (reader.BaseStream.Position != reader.BaseStream.Length)
                throw new InvalidDataException($"{reader.BaseStream.Length - reader.BaseStream.Position} bytes are left over after the training state.");
            return progress;
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException && !e.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"The checkpoint '{path}' could not be applied: {e.Message}", e);
        }
    }

    private static OptimizerHelper Helper(optim.Optimizer optimizer) => optimizer as OptimizerHelper
        ?? throw new NotSupportedException($"Checkpoints need a TorchSharp optimizer derived from OptimizerHelper; got {optimizer.GetType().Name}.");
}
