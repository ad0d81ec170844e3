using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// Resamples a batch through one affine map per image: <c>affine_grid</c> + bilinear <c>grid_sample</c> in normalized
/// coordinates (−1 … 1 across the image, <c>align_corners = false</c>, so the identity map returns the image up to float
/// rounding). Points outside the image read zeros.
/// </summary>
internal static class AffineSampling
{
    /// <summary>
    /// Samples <paramref name="batch"/> <c>[N, C, H, W]</c> at <c>(x, y)_in = A·(x, y)_out + b</c> per image, where the rows of
    /// <c>[A | b]</c> are (<paramref name="a11"/>, <paramref name="a12"/>, <paramref name="b1"/>) and (<paramref name="a21"/>,
    /// <paramref name="a22"/>, <paramref name="b2"/>): float64 tensors <c>[N]</c> on the CPU.
    /// </summary>
    public static Tensor Sample(Tensor batch, Tensor a11, Tensor a12, Tensor b1, Tensor a21, Tensor a22, Tensor b2)
    {
        using var scope = NewDisposeScope();
        var theta = stack(new[] { stack(new[] { a11, a12, b1 }, 1), stack(new[] { a21, a22, b2 }, 1) }, 1)
            .to(batch.dtype, batch.device);
        var grid = nn.functional.affine_grid(theta, batch.shape, align_corners: false);
        return nn.functional.grid_sample(batch, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: false)
            .MoveToOuterDisposeScope();
    }
}
