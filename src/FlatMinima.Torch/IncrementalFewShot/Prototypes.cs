using System;
using FlatMinima.Torch.Models;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>How prototypes (and queries) are normalised before the squared Euclidean distance.</summary>
public enum PrototypeNormalization
{
    /// <summary>The reference's test-time rule: prototypes divided by their L2 norm, queries left as they are.</summary>
    Prototypes,

    /// <summary>Both prototypes and queries L2-normalised (distance = 2 − 2·cosine).</summary>
    Cosine,

    /// <summary>Raw embeddings on both sides.</summary>
    None,
}

/// <summary>
/// Nearest-class-mean classification: a class prototype is the mean embedding of its examples; logits are
/// <c>−ω·‖f(x) − p_k‖²</c>, so the softmax over them gives probabilities and the argmax is the nearest prototype.
/// </summary>
public static class Prototypes
{
    /// <summary>Mean of <paramref name="embeddings"/> <c>[N, D]</c> per class of <paramref name="labels"/> (0-based,
    /// &lt; <paramref name="classCount"/>): <c>[classCount, D]</c>, differentiable. Every class needs a row.</summary>
    public static Tensor ClassMeans(Tensor embeddings, Tensor labels, long classCount)
    {
        using var scope = NewDisposeScope();
        var counts = zeros(classCount, embeddings.dtype, embeddings.device).index_add(0, labels, ones(labels.shape[0], embeddings.dtype, embeddings.device), 1.0);
        if (counts.eq(0).any().item<bool>())
            throw new ArgumentException($"Class {counts.eq(0).nonzero()[0, 0].item<long>()} has no examples; every class needs at least one to form a prototype.", nameof(labels));
        var sums = zeros(new[] { classCount, embeddings.shape[1] }, embeddings.dtype, embeddings.device).index_add(0, labels, embeddings, 1.0);
        return sums.div(counts.unsqueeze(1)).MoveToOuterDisposeScope();
    }

    /// <summary>Like <see cref="ClassMeans(Tensor, Tensor, long)"/>, but a class without rows takes its row of
    /// <paramref name="fallback"/> <c>[classCount, D]</c> (e.g. its stored prototype) instead of failing.</summary>
    public static Tensor ClassMeans(Tensor embeddings, Tensor labels, long classCount, Tensor fallback)
    {
        ArgumentNullException.ThrowIfNull(fallback);
        if (fallback.dim() != 2 || fallback.shape[0] != classCount || fallback.shape[1] != embeddings.shape[1])
            throw new ArgumentException($"The fallback prototypes must be [{classCount}, {embeddings.shape[1]}]; got [{string.Join(", ", fallback.shape)}].", nameof(fallback));
        using var scope = NewDisposeScope();
        var counts = zeros(classCount, embeddings.dtype, embeddings.device).index_add(0, labels, ones(labels.shape[0], embeddings.dtype, embeddings.device), 1.0);
        var sums = zeros(new[] { classCount, embeddings.shape[1] }, embeddings.dtype, embeddings.device).index_add(0, labels, embeddings, 1.0);
        var means = sums.div(counts.clamp_min(1).unsqueeze(1));
        return where(counts.gt(0).unsqueeze(1), means, fallback.to(embeddings.dtype, embeddings.device)).MoveToOuterDisposeScope();
    }

    /// <summary>Prototypes of <paramref name="network"/>'s embeddings of <paramref name="inputs"/> in eval mode, in batches,
    /// without gradients; on the network's <paramref name="device"/>. The inputs are normalized network inputs, or raw
    /// images that <paramref name="prepare"/> maps to them batch by batch (on the device), e.g. <see cref="ChannelStandardization.Apply"/>.
    /// With <paramref name="fallback"/> <c>[classCount, D]</c>, classes without rows take their row of it instead of failing.</summary>
    public static Tensor Compute(nn.Module<Tensor, Tensor> network, Tensor inputs, Tensor labels, long classCount, int batchSize, Device device,
        Func<Tensor, Tensor>? prepare = null, Tensor? fallback = null)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be ≥ 1.");
        var embed = AsEmbedding(network);
        bool wasTraining = network.training;
        network.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var parts = new System.Collections.Generic.List<Tensor>();
            for (long start = 0; start < inputs.shape[0]; start += batchSize)
            {
                var batch = inputs.narrow(0, start, Math.Min(batchSize, inputs.shape[0] - start)).to(device);
                parts.Add(embed.Embed(prepare is null ? batch : prepare(batch)));
            }
            if (parts.Count == 0 && fallback is not null) return fallback.to(device).clone().MoveToOuterDisposeScope();
            var embeddings = cat(parts, 0);
            return (fallback is null ? ClassMeans(embeddings, labels.to(device), classCount) : ClassMeans(embeddings, labels.to(device), classCount, fallback))
                .MoveToOuterDisposeScope();
        }
        finally
        {
            network.train(wasTraining);
        }
    }

    /// <summary>Logits <c>−ω·‖f − p‖²</c> <c>[N, K]</c> of embeddings <c>[N, D]</c> against prototypes <c>[K, D]</c>.</summary>
    public static Tensor Logits(Tensor embeddings, Tensor prototypes, PrototypeNormalization normalization, double distanceScale)
    {
        using var scope = NewDisposeScope();
        var p = normalization == PrototypeNormalization.None ? prototypes : nn.functional.normalize(prototypes, 2.0, 1);
        var f = normalization == PrototypeNormalization.Cosine ? nn.functional.normalize(embeddings, 2.0, 1) : embeddings;
        var squared = f.pow(2).sum(1, keepdim: true).sub(f.matmul(p.t()).mul(2)).add(p.pow(2).sum(1).unsqueeze(0)).clamp_min(0);
        return squared.mul(-distanceScale).MoveToOuterDisposeScope();
    }

    /// <summary>The network as an <see cref="IEmbeddingNetwork"/>, or a clear error.</summary>
    public static IEmbeddingNetwork AsEmbedding(nn.Module<Tensor, Tensor> network) =>
        network as IEmbeddingNetwork ?? throw new ArgumentException(
            $"The network '{network.GetName()}' does not implement IEmbeddingNetwork; prototype classification needs its embedding (the input of its final linear layer).", nameof(network));
}
