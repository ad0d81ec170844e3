using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// Per-sample random parameters of a batch, drawn as CPU float64 tensors from an explicit generator (never the global
/// one) and moved to the batch's device by the caller; the draws do not depend on the device, so a seed gives the same
/// augmentations on CPU and GPU.
/// </summary>
internal static class RandomDraws
{
    /// <summary><paramref name="count"/> numbers uniform in [<paramref name="low"/>, <paramref name="high"/>).</summary>
    public static Tensor Uniform(Generator generator, long count, double low, double high) =>
        rand(new[] { count }, ScalarType.Float64, generator: generator).mul_(high - low).add_(low);

    /// <summary><paramref name="count"/> booleans, each true with probability <paramref name="probability"/>.</summary>
    public static Tensor Bernoulli(Generator generator, long count, double probability) =>
        rand(new[] { count }, ScalarType.Float64, generator: generator).lt_(probability).to_type(ScalarType.Bool);

    /// <summary>Integers uniform in [0, <paramref name="bound"/>) per sample (<paramref name="bound"/>: int64 tensor ≥ 1 or a scalar).</summary>
    public static Tensor Below(Generator generator, long count, Tensor bound) =>
        rand(new[] { count }, ScalarType.Float64, generator: generator).mul_(bound).floor_().to_type(ScalarType.Int64).minimum(bound.sub(1));
}
