namespace FlatMinima.Torch.Training;

/// <summary>
/// The number format of a training step's convolutions and matrix products. Weights, optimizer state, BatchNorm, the
/// loss and every gradient norm stay in float32 whatever is chosen (see <c>docs/mixed-precision.md</c>).
/// </summary>
public enum ComputePrecision
{
    /// <summary>Everything in float32 (the default): results are bit-identical to earlier versions.</summary>
    Float32,

    /// <summary>
    /// bfloat16 mixed precision: convolutions and linear layers compute in bfloat16 on bfloat16 copies of the float32
    /// weights, gradients flow back into the float32 weights. Works on every device; where the hardware has no native
    /// bfloat16 arithmetic (<see cref="MixedPrecision.BFloat16Hardware"/>) it is emulated and usually slower than float32.
    /// </summary>
    BFloat16,

    /// <summary>
    /// <see cref="BFloat16"/> where the hardware computes bfloat16 natively (a CPU with the <c>avx512_bf16</c> or
    /// <c>amx_bf16</c> instructions, as Linux reports them; a CUDA GPU of compute capability 8.0 or higher), otherwise
    /// <see cref="Float32"/>. The choice then depends on the machine, so the same seed can give different weights on
    /// different machines.
    /// </summary>
    Auto,
}
