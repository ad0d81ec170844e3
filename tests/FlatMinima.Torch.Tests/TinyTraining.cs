using FlatMinima.Torch.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

/// <summary>Two seeded Gaussian blobs and a small BatchNorm CNN: the training-loop tests' data and network.</summary>
internal static class TinyTraining
{
    /// <summary><paramref name="n"/> examples of two classes (1×4×4, class 1 shifted by +2), optionally in 3 domains.</summary>
    public static TensorDataset Blobs(int n, int seed, bool domains = false)
    {
        manual_seed(seed);
        var y = arange(n, ScalarType.Int64).remainder(2);
        var x = randn(n, 1, 4, 4).add(y.view(-1, 1, 1, 1).to_type(ScalarType.Float32).mul(2));
        return new TensorDataset(x, y) { Domains = domains ? arange(n, ScalarType.Int64).remainder(3) : null };
    }

    /// <summary>conv 3×3 (<paramref name="hidden"/> channels) → BatchNorm → ReLU → linear, initialized from seed 11.</summary>
    public static nn.Module<Tensor, Tensor> Net(int hidden = 4)
    {
        manual_seed(11);
        return nn.Sequential(("conv", nn.Conv2d(1, hidden, 3)), ("bn", nn.BatchNorm2d(hidden)), ("relu", nn.ReLU()), ("flat", nn.Flatten()),
            ("fc", nn.Linear(4 * hidden, 2)));
    }
}
