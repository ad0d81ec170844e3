using System;
using System.Linq;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// Labelled examples for <see cref="ClassifierTrainer"/> and <see cref="ClassifierEvaluation"/>: labels (and domains)
/// in memory, inputs produced batch by batch (<see cref="PrepareInputs"/> then <see cref="AssembleInputs"/>) — sliced from one tensor
/// (<see cref="TensorDataset"/>) or decoded on demand (<see cref="LazyExampleSet"/>), so that memory need not grow with
/// the number of examples.
/// </summary>
public interface IExampleSet
{
    /// <summary>Number of examples.</summary>
    long Count { get; }

    /// <summary>0-based class indices, int64 <c>[N]</c> on the CPU.</summary>
    Tensor Labels { get; }

    /// <summary>Optional 0-based domain (environment) of each example, int64 <c>[N]</c>; see <see cref="TensorDataset.Domains"/>.</summary>
    Tensor? Domains { get; }

    /// <summary>The shape of one example's input, e.g. <c>[C, H, W]</c>.</summary>
    long[] ExampleShape { get; }

    /// <summary>
    /// True when the inputs are sliced from tensors already in memory: the trainer then loads on its own thread;
    /// otherwise <see cref="PrepareInputs"/> runs ahead of the step on <see cref="ClassifierTrainingOptions.LoaderWorkers"/>
    /// background threads and <see cref="AssembleInputs"/> on the training thread.
    /// </summary>
    bool IsInMemory { get; }

    /// <summary>
    /// The part of loading the examples at <paramref name="rows"/> that runs ahead of the step on loader threads:
    /// reading and decoding, without tensor operations (those would compete with the step's own threads). Returns what
    /// <see cref="AssembleInputs"/> needs, which takes it over; a result never assembled (training stopped early)
    /// is disposed by the trainer if it is <see cref="IDisposable"/>.
    /// Safe to call from several threads at once.
    /// </summary>
    object? PrepareInputs(long[] rows);

    /// <summary>
    /// The float inputs <c>[B, …]</c> (CPU, normalized; the caller owns and disposes them) of the examples at
    /// <paramref name="rows"/>, in that order, from what <see cref="PrepareInputs"/> returned for the same rows; runs on
    /// the training thread. Loading is a pure function of the rows: the same rows give the same values, bit for bit.
    /// </summary>
    Tensor AssembleInputs(long[] rows, object? prepared);

    /// <summary>Loads the inputs of <paramref name="rows"/> (int64 <c>[B]</c>, CPU) on the calling thread: prepare, then assemble.</summary>
    Tensor LoadInputs(Tensor rows)
    {
        var index = rows.data<long>().ToArray();
        return AssembleInputs(index, PrepareInputs(index));
    }

    /// <summary>
    /// Identifies the inputs' content for training checkpoints (their shape and a hash of what they are computed from):
    /// two sets with the same digest give the same inputs.
    /// </summary>
    string InputsDigest();
}
