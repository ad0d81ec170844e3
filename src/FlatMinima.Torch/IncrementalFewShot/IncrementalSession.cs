using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>What an incremental session produced.</summary>
/// <param name="NewPrototypes">Prototypes of the session's new classes <c>[K_new, D]</c>, in class order, on the network's device.</param>
/// <param name="Losses">The session loss of each epoch (empty for prototype-only sessions).</param>
/// <param name="MaxDeviation">Largest |θ − θ_base| over the range parameters after the session.</param>
public sealed record IncrementalSessionResult(Tensor NewPrototypes, IReadOnlyList<double> Losses, double MaxDeviation);

/// <summary>
/// One F2M incremental session, in place on the network: every parameter but the range parameters frozen and the network
/// in eval mode (BatchNorm frozen); loss = cross-entropy over <c>−ω·‖f(x) − p‖²</c> logits against [fixed old prototypes ∥
/// new-class prototypes of the current batch]; SGD; after every step the range parameters are clamped into the flat region
/// around the <em>base-session</em> weights. Afterwards the new classes' prototypes are computed from their examples;
/// the old prototypes are never changed.
/// </summary>
public static class IncrementalSession
{
    /// <summary>Runs the session.</summary>
    /// <param name="network">The network, already trained on earlier sessions; an <see cref="Models.IEmbeddingNetwork"/>.</param>
    /// <param name="region">θ_base and the bound b.</param>
    /// <param name="oldPrototypes">The prototypes of the K_old classes seen so far <c>[K_old, D]</c> (not modified).</param>
    /// <param name="inputs">Normalized session images <c>[N, C, H, W]</c>: the new classes' shots plus any exemplars of old classes.</param>
    /// <param name="labels">Global class indices <c>[N]</c>: old classes &lt; K_old, new classes K_old … K_old + K_new − 1, each present.</param>
    /// <param name="options">Session settings.</param>
    public static IncrementalSessionResult Run(nn.Module<Tensor, Tensor> network, FlatRegionBounds region, Tensor oldPrototypes,
        Tensor inputs, Tensor labels, IncrementalSessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(region);
        ArgumentNullException.ThrowIfNull(oldPrototypes);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var embed = Prototypes.AsEmbedding(network);
        long oldCount = oldPrototypes.shape[0];
        if (labels.shape[0] == 0) throw new ArgumentException("The session has no examples.", nameof(labels));
        long newCount = labels.max().item<long>() + 1 - oldCount;
        if (newCount < 1) throw new ArgumentException($"The session has no new class: every label is below K_old = {oldCount}.", nameof(labels));
        var device = oldPrototypes.device;

        var all = network.named_parameters().ToArray();
        var trainable = options.TrainAllParameters ? all.Select(p => p.parameter).ToArray() : region.ParametersOf(network);
        var flags = all.Select(p => p.parameter.requires_grad).ToArray();
        bool wasTraining = network.training;
        var losses = new List<double>();
        using var scope = NewDisposeScope();
        var x = inputs.to(device);
        var y = labels.to(device);
        var isNew = y.ge(oldCount);
        var newRows = isNew.nonzero().flatten();
        var newLabels = y.index_select(0, newRows).sub(oldCount);
        var fixedPrototypes = oldPrototypes.detach();
        try
        {
            foreach (var (_, p) in all) p.requires_grad = false;
            foreach (var p in trainable) p.requires_grad = true;
            network.eval();
            if (options.Epochs > 0)
            {
                using var optimizer = optim.SGD(trainable, options.LearningRate, options.Momentum, 0, options.WeightDecay);
                double? quantum = options.RoundingReduction is int r ? region.Bound / r : null;
                for (int epoch = 0; epoch < options.Epochs; epoch++)
                {
                    using var step = NewDisposeScope();
                    optimizer.zero_grad();
                    var embeddings = embed.Embed(x);
                    var current = Prototypes.ClassMeans(embeddings.index_select(0, newRows), newLabels, newCount);
                    var logits = Prototypes.Logits(embeddings, cat(new[] { fixedPrototypes, current }, 0), options.Normalization, options.DistanceScale);
                    var loss = nn.functional.cross_entropy(logits, y);
                    double value = loss.ToDouble();
                    if (!double.IsFinite(value))
                        throw new InvalidOperationException($"The session loss became {value} at epoch {epoch + 1}; lower the session LearningRate or DistanceScale.");
                    losses.Add(value);
                    loss.backward();
                    var before = quantum is null ? null : trainable.Select(p => p.detach().clone()).ToArray();
                    optimizer.step();
                    using (no_grad())
                    {
                        if (before is not null)
                            for (int i = 0; i < trainable.Length; i++)
                                trainable[i].copy_(before[i].add(trainable[i].sub(before[i]).div(quantum!.Value).round().mul(quantum.Value)));
                    }
                    if (options.ClampToRegion) region.Clamp(network);
                    options.AfterStep?.Invoke(epoch + 1, value);
                }
            }
        }
        finally
        {
            for (int i = 0; i < all.Length; i++) all[i].parameter.requires_grad = flags[i];
            network.train(wasTraining);
        }
        var prototypes = Prototypes.Compute(network, x.index_select(0, newRows), newLabels, newCount, 256, device);
        return new IncrementalSessionResult(prototypes.MoveToOuterDisposeScope(), losses, region.MaxDeviation(network));
    }
}
