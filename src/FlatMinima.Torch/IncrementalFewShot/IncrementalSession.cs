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
/// <param name="RefreshedPrototypes">With <see cref="IncrementalSessionOptions.RefreshNovelPrototypes"/>: the prototypes of
/// the earlier sessions' classes (base class count … K_old − 1) after the session, re-estimated from their rows where the
/// session has any and unchanged otherwise; null without it.</param>
public sealed record IncrementalSessionResult(Tensor NewPrototypes, IReadOnlyList<double> Losses, double MaxDeviation, Tensor? RefreshedPrototypes = null);

/// <summary>
/// One F2M incremental session, in place on the network: every parameter but the range parameters frozen and the network
/// in eval mode (BatchNorm frozen); loss = cross-entropy over <c>−ω·‖f(x) − p‖²</c> logits against [fixed old prototypes ∥
/// new-class prototypes of the current batch]; SGD, optionally with the reference's rounding of each step
/// (<see cref="SessionRounding"/>); after every step the range parameters are clamped into the flat region around the
/// <em>base-session</em> weights. Afterwards the new classes' prototypes are computed from their examples; the old
/// prototypes are not changed, except, with <see cref="IncrementalSessionOptions.RefreshNovelPrototypes"/>, those of
/// earlier sessions' classes, which are then treated like new classes (batch prototypes in the loss, re-estimated after).
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
    /// <param name="baseClassCount">Classes of the base session (the first prototypes); needed with
    /// <see cref="IncrementalSessionOptions.RefreshNovelPrototypes"/>, whose re-estimated classes are those from here to K_old − 1.</param>
    public static IncrementalSessionResult Run(nn.Module<Tensor, Tensor> network, FlatRegionBounds region, Tensor oldPrototypes,
        Tensor inputs, Tensor labels, IncrementalSessionOptions options, int? baseClassCount = null)
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
        long from = oldCount;
        if (options.RefreshNovelPrototypes)
        {
            if (baseClassCount is not int baseCount)
                throw new ArgumentException("RefreshNovelPrototypes needs the base class count (the prototypes that stay fixed).", nameof(baseClassCount));
            if (baseCount < 1 || baseCount > oldCount)
                throw new ArgumentOutOfRangeException(nameof(baseClassCount), baseCount, $"The base class count must be in 1…{oldCount} (K_old).");
            from = baseCount;
        }

        var all = network.named_parameters().ToArray();
        var trainable = options.TrainAllParameters ? all.Select(p => p.parameter).ToArray() : region.ParametersOf(network);
        var flags = all.Select(p => p.parameter.requires_grad).ToArray();
        bool wasTraining = network.training;
        var losses = new List<double>();
        using var scope = NewDisposeScope();
        var x = inputs.to(device);
        var y = labels.to(device);
        var present = zeros(newCount, ScalarType.Int64, device).index_fill_(0, y.masked_select(y.ge(oldCount)).sub(oldCount), 1);
        if (present.eq(0).any().item<bool>())
            throw new ArgumentException($"New class {oldCount + present.eq(0).nonzero()[0, 0].item<long>()} has no example; new classes are numbered " +
                $"{oldCount} … {oldCount + newCount - 1} without gaps.", nameof(labels));
        // Classes from `from` on get prototypes from the batch: the new classes, and with RefreshNovelPrototypes the
        // earlier sessions' classes (those without rows in the batch keep their stored prototype).
        var batchRows = y.ge(from).nonzero().flatten();
        var batchLabels = y.index_select(0, batchRows).sub(from);
        long batchCount = oldCount + newCount - from;
        var fixedPrototypes = oldPrototypes.narrow(0, 0, from).detach();
        var stored = cat(new[] { oldPrototypes.narrow(0, from, oldCount - from).detach(), zeros(new[] { newCount, oldPrototypes.shape[1] }, oldPrototypes.dtype, device) }, 0);
        try
        {
            foreach (var (_, p) in all) p.requires_grad = false;
            foreach (var p in trainable) p.requires_grad = true;
            network.eval();
            if (options.Epochs > 0)
            {
                using var optimizer = optim.SGD(trainable, options.LearningRate, options.Momentum, 0, options.WeightDecay);
                double? quantum = options.RoundingReduction is int r ? region.Bound / r : null;
                bool roundGradient = quantum is not null && options.Rounding == SessionRoundingMode.Gradient;
                bool roundUpdate = quantum is not null && options.Rounding == SessionRoundingMode.Update;
                for (int epoch = 0; epoch < options.Epochs; epoch++)
                {
                    using var step = NewDisposeScope();
                    optimizer.zero_grad();
                    var embeddings = embed.Embed(x);
                    var current = Prototypes.ClassMeans(embeddings.index_select(0, batchRows), batchLabels, batchCount, stored);
                    var logits = Prototypes.Logits(embeddings, cat(new[] { fixedPrototypes, current }, 0), options.LossNormalization ?? options.Normalization, options.DistanceScale);
                    var loss = nn.functional.cross_entropy(logits, y);
                    double value = loss.ToDouble();
                    if (!double.IsFinite(value))
                        throw new InvalidOperationException($"The session loss became {value} at epoch {epoch + 1}; lower the session LearningRate or DistanceScale.");
                    losses.Add(value);
                    loss.backward();
                    if (roundGradient)
                    {
                        // The reference: lr·g rounded to the grid (with its step-count rule), handed back as a gradient.
                        using var noGrad = no_grad();
                        foreach (var p in trainable)
                            if (p.grad is Tensor g) g.copy_(SessionRounding.Round(g.mul(options.LearningRate), quantum!.Value, options.RoundingStepIncrease).div_(options.LearningRate));
                    }
                    var before = roundUpdate ? trainable.Select(p => p.detach().clone()).ToArray() : null;
                    optimizer.step();
                    using (no_grad())
                    {
                        if (before is not null)
                            for (int i = 0; i < trainable.Length; i++)
                                trainable[i].copy_(before[i].add(SessionRounding.Round(trainable[i].sub(before[i]), quantum!.Value, options.RoundingStepIncrease)));
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
        var prototypes = Prototypes.Compute(network, x.index_select(0, batchRows), batchLabels, batchCount, 256, device, fallback: stored);
        var refreshed = options.RefreshNovelPrototypes ? prototypes.narrow(0, 0, oldCount - from).clone().MoveToOuterDisposeScope() : null;
        var newPrototypes = prototypes.narrow(0, oldCount - from, newCount).clone().MoveToOuterDisposeScope();
        return new IncrementalSessionResult(newPrototypes, losses, region.MaxDeviation(network), refreshed);
    }
}
