using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>Examples as tensors: inputs <c>[N, C, H, W]</c> (float32, already normalized) and class indices <c>[N]</c> (int64).</summary>
/// <param name="Inputs">The inputs.</param>
/// <param name="Labels">0-based class indices.</param>
public sealed record TensorDataset(Tensor Inputs, Tensor Labels)
{
    /// <summary>Number of examples.</summary>
    public long Count => Labels.shape[0];

    /// <summary>Optional 0-based domain (environment) of each example, int64 <c>[N]</c>. Training data with domains is
    /// sampled one batch per domain per step; validation losses and accuracies are means over domains (DomainBed).</summary>
    public Tensor? Domains { get; init; }
}
