using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>One micro-batch of an optimizer step with gradient accumulation: inputs and 0-based labels on the model's device.</summary>
/// <param name="Inputs">The micro-batch's inputs.</param>
/// <param name="Labels">Its class indices.</param>
public readonly record struct MicroBatch(Tensor Inputs, Tensor Labels)
{
    /// <summary>Rows in the micro-batch.</summary>
    public long Rows => Inputs.shape[0];
}

/// <summary>
/// One forward and backward pass over the micro-batches of a step: each micro-batch's loss is weighted by its share of the
/// step's rows, so the gradients accumulated in <c>.grad</c> are those of the mean loss over all rows (one batch), while
/// only one micro-batch's activations are alive at a time.
/// </summary>
internal static class MicroBatchPass
{
    /// <summary>
    /// Adds the gradient of the rows' mean loss to the parameters' <c>.grad</c> (it does not zero them) and returns that
    /// mean loss (detached, in the caller's dispose scope).
    /// </summary>
    /// <param name="context">The model and the loss.</param>
    /// <param name="batches">The micro-batches.</param>
    /// <param name="correct">When given, the correct predictions are added to it.</param>
    /// <param name="regularizer">When given, a term of the logits and the micro-batch's index added to each micro-batch's
    /// loss before the backward pass; it is not part of the returned loss.</param>
    public static Tensor Run(GradientStepContext context, IReadOnlyList<MicroBatch> batches, Tensor? correct,
        Func<Tensor, int, Tensor?>? regularizer = null)
    {
        long total = 0;
        foreach (var b in batches) total += b.Rows;
        var sum = zeros(Array.Empty<long>(), ScalarType.Float32, batches[0].Inputs.device);
        for (int i = 0; i < batches.Count; i++)
        {
            using var scope = NewDisposeScope();
            var (x, y) = (batches[i].Inputs, batches[i].Labels);
            double weight = batches.Count == 1 ? 1 : (double)batches[i].Rows / total;
            var logits = context.Model.call(x);
            var loss = context.Loss(logits, y);
            var objective = regularizer?.Invoke(logits, i) is Tensor extra ? loss.add(extra) : loss;
            (weight == 1 ? objective : objective.mul(weight)).backward();
            sum.add_(weight == 1 ? loss.detach() : loss.detach().mul(weight));
            correct?.add_(logits.argmax(1).eq(y).sum());
        }
        return sum;
    }
}

/// <summary>
/// Groups the loaded batches of an epoch into optimizer steps of <c>n</c> micro-batches each (the last step of an epoch
/// may have fewer). The micro-batches are the sampler's batches in order, so the rows of a step do not depend on the
/// loader's workers, and with n = 1 each step is one batch exactly as without accumulation.
/// </summary>
internal static class MicroBatchGroups
{
    /// <summary>The loaded micro-batches of one step; disposing it disposes their inputs (the row tensors stay the sampler's).</summary>
    public sealed class Group : IDisposable
    {
        public List<Tensor> Rows { get; } = new();

        public List<Tensor> Inputs { get; } = new();

        public void Dispose()
        {
            foreach (var t in Inputs) t.Dispose();
            Inputs.Clear();
        }
    }

    /// <summary>Yields groups of <paramref name="n"/> loaded batches; the caller disposes each group it receives.</summary>
    public static IEnumerable<Group> Of(IEnumerable<(Tensor Rows, Tensor Inputs)> loaded, int n)
    {
        var group = new Group();
        try
        {
            foreach (var (rows, inputs) in loaded)
            {
                group.Rows.Add(rows);
                group.Inputs.Add(inputs);
                if (group.Rows.Count < n) continue;
                var ready = group;
                group = new Group();
                yield return ready;
            }
            if (group.Rows.Count > 0)
            {
                var last = group;
                group = new Group();
                yield return last;
            }
        }
        finally
        {
            group.Dispose();
        }
    }
}
