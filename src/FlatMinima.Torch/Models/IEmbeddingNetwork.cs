using static TorchSharp.torch;

namespace FlatMinima.Torch.Models;

/// <summary>
/// A classifier network that also exposes its embedding: the features its final linear layer reads. Prototype
/// classifiers (F2M's incremental few-shot sessions) classify by distance in this space. The built-in architectures
/// implement it; a custom network used for incremental few-shot learning must too.
/// </summary>
public interface IEmbeddingNetwork
{
    /// <summary>The embedding <c>[N, D]</c> of a normalized input batch <c>[N, C, H, W]</c> (the network's mode applies).</summary>
    Tensor Embed(Tensor input);
}
