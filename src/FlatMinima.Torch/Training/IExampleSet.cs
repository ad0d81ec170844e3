using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// Labelled examples for <see cref="ClassifierTrainer"/> and <see cref="ClassifierEvaluation"/>: labels (and domains)
/// in memory, inputs produced batch by batch by <see cref="LoadInputs"/> — sliced from one tensor
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
    /// True when <see cref="LoadInputs"/> only slices tensors already in memory: the trainer then loads on its own thread;
    /// otherwise batches are loaded ahead of the step on <see cref="ClassifierTrainingOptions.LoaderWorkers"/> background threads.
    /// </summary>
    bool IsInMemory { get; }

    /// <summary>
    /// The float inputs <c>[B, …]</c> (CPU, normalized, the caller owns and disposes them) of the examples at
    /// <paramref name="rows"/> (int64 <c>[B]</c>, CPU), in that order. A pure function of the rows (the same rows give
    /// the same values, bit for bit) and safe to call from several threads at once.
    /// </summary>
    Tensor LoadInputs(Tensor rows);

    /// <summary>
    /// Identifies the inputs' content for training checkpoints (their shape and a hash of what they are computed from):
    /// two sets with the same digest give the same inputs.
    /// </summary>
    string InputsDigest();
}
