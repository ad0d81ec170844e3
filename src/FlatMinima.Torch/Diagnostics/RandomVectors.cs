using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Diagnostics;

/// <summary>Seeded random flat vectors over an objective's parameters, drawn in float64 on the CPU (the same numbers on every device) and moved to the objective's dtype and device.</summary>
internal static class RandomVectors
{
    /// <summary>Standard normal entries.</summary>
    public static Tensor Gaussian(LossObjective objective, Generator generator) =>
        Place(randn(new[] { objective.Dimension }, dtype: ScalarType.Float64, generator: generator), objective);

    /// <summary>Entries ±1 with equal probability.</summary>
    public static Tensor Rademacher(LossObjective objective, Generator generator) =>
        Place(randint(0, 2, new[] { objective.Dimension }, dtype: ScalarType.Float64, generator: generator).mul_(2).sub_(1), objective);

    private static Tensor Place(Tensor v, LossObjective objective) => v.to(objective.DType).to(objective.Device);
}
