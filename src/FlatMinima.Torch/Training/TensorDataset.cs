using System;
using System.Security.Cryptography;
using System.Linq;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>Examples as tensors: inputs <c>[N, C, H, W]</c> (float32, already normalized) and class indices <c>[N]</c> (int64).</summary>
/// <param name="Inputs">The inputs.</param>
/// <param name="Labels">0-based class indices.</param>
public sealed record TensorDataset(Tensor Inputs, Tensor Labels) : IExampleSet
{
    // Inputs are hashed in slices of at most this many bytes (a span per slice; tensors may exceed 2 GB).
    internal const long HashChunkBytes = 1 << 26;

    /// <summary>Number of examples.</summary>
    public long Count => Labels.shape[0];

    /// <summary>Optional 0-based domain (environment) of each example, int64 <c>[N]</c>. Training data with domains is
    /// sampled one batch per domain per step; validation losses and accuracies are means over domains (DomainBed).</summary>
    public Tensor? Domains { get; init; }

    /// <inheritdoc/>
    public long[] ExampleShape => Inputs.shape.Skip(1).ToArray();

    /// <inheritdoc/>
    bool IExampleSet.IsInMemory => true;

    /// <inheritdoc/>
    public object? PrepareInputs(long[] rows) => null;

    /// <inheritdoc/>
    public Tensor AssembleInputs(long[] rows, object? prepared)
    {
        using var index = tensor(rows);
        return Inputs.index_select(0, index);
    }

    /// <summary>The inputs at <paramref name="rows"/> (int64 <c>[B]</c>): <c>Inputs.index_select(0, rows)</c>.</summary>
    public Tensor LoadInputs(Tensor rows) => Inputs.index_select(0, rows);

    /// <inheritdoc/>
    public string InputsDigest() => Digest("inputs", Inputs, HashChunkBytes);

    /// <summary>"name dtype[shape] sha256 …" of a tensor's bytes, hashed in slices of at most <paramref name="sliceBytes"/> bytes.</summary>
    internal static string Digest(string name, Tensor tensor, long sliceBytes)
    {
        using var scope = NewDisposeScope();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var flat = tensor.detach().cpu().contiguous().view(-1);
        long chunk = Math.Max(1, sliceBytes / flat.element_size());
        for (long start = 0; start < flat.numel(); start += chunk)
            using (var part = flat.narrow(0, start, Math.Min(chunk, flat.numel() - start)))
                hash.AppendData(part.bytes);
        return $"{name} {tensor.dtype}[{string.Join(",", tensor.shape)}] sha256 {Convert.ToHexStringLower(hash.GetHashAndReset())}";
    }
}
