using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// The exemplars an F2M learner replays in later sessions: a few examples of each few-shot class, kept on the CPU as they
/// were given to the session (raw images when the learner standardizes its inputs), in the order they were kept.
/// Immutable: <see cref="WithNewClasses"/> returns a new memory.
/// </summary>
public sealed class ExemplarMemory : IDisposable
{
    /// <summary>Takes ownership of <paramref name="inputs"/> <c>[E, …]</c> and <paramref name="labels"/> <c>[E]</c> (int64 class indices).</summary>
    public ExemplarMemory(Tensor inputs, Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.dim() != 1 || labels.dtype != ScalarType.Int64)
            throw new ArgumentException($"Exemplar labels must be a 1-D int64 tensor; got {labels.dtype} of shape [{string.Join(", ", labels.shape)}].", nameof(labels));
        if (inputs.dim() < 1 || inputs.shape[0] != labels.shape[0])
            throw new ArgumentException($"There are {labels.shape[0]} exemplar labels for inputs of shape [{string.Join(", ", inputs.shape)}].", nameof(inputs));
        Inputs = inputs.DetachFromDisposeScope();
        Labels = labels.DetachFromDisposeScope();
    }

    /// <summary>An empty memory for examples shaped like the rows of <paramref name="like"/> <c>[N, …]</c>, of its dtype.</summary>
    public static ExemplarMemory Empty(Tensor like)
    {
        ArgumentNullException.ThrowIfNull(like);
        var shape = like.shape.ToArray();
        shape[0] = 0;
        return new ExemplarMemory(zeros(shape, like.dtype), zeros(0, ScalarType.Int64));
    }

    /// <summary>The kept examples <c>[E, …]</c> (CPU). Read-only: do not modify.</summary>
    public Tensor Inputs { get; }

    /// <summary>Their class indices <c>[E]</c> (int64, CPU). Read-only: do not modify.</summary>
    public Tensor Labels { get; }

    /// <summary>Number of exemplars E.</summary>
    public long Count => Labels.shape[0];

    /// <summary>
    /// This memory plus the first <paramref name="perClass"/> rows of each class ≥ <paramref name="firstNewClass"/> in
    /// <paramref name="labels"/>, classes in the order of their first row (rows of earlier classes are not kept).
    /// </summary>
    public ExemplarMemory WithNewClasses(Tensor inputs, Tensor labels, long firstNewClass, int perClass)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        if (perClass < 0) throw new ArgumentOutOfRangeException(nameof(perClass), perClass, "Exemplars per class must be ≥ 0.");
        using var scope = NewDisposeScope();
        var y = labels.cpu();
        var groups = new List<(long FirstRow, Tensor Rows)>();
        for (long c = firstNewClass, last = y.shape[0] == 0 ? -1 : y.max().item<long>(); c <= last; c++)
        {
            var rows = y.eq(c).nonzero().flatten();
            if (rows.shape[0] > 0) groups.Add((rows[0].item<long>(), rows.narrow(0, 0, Math.Min(perClass, rows.shape[0]))));
        }
        var keep = groups.Count == 0 ? zeros(0, ScalarType.Int64) : cat(groups.OrderBy(g => g.FirstRow).Select(g => g.Rows).ToArray(), 0);
        var kept = inputs.index_select(0, keep.to(inputs.device)).cpu();
        var memory = new ExemplarMemory(cat(new[] { Inputs, kept }, 0), cat(new[] { Labels, y.index_select(0, keep) }, 0));
        return memory;
    }

    /// <summary>An independent copy (own tensors).</summary>
    public ExemplarMemory Clone() => new(Inputs.clone(), Labels.clone());

    /// <summary>Writes the inputs, then the labels (<see cref="TensorIO"/>).</summary>
    public void Save(BinaryWriter writer)
    {
        TensorIO.Write(writer, Inputs);
        TensorIO.Write(writer, Labels);
    }

    /// <summary>Reads what <see cref="Save"/> wrote; tensors are checked by <see cref="TensorIO"/> (and must be finite),
    /// the labels must be one int64 per input row and ≥ 0; violations throw <see cref="InvalidDataException"/>.</summary>
    public static ExemplarMemory Load(BinaryReader reader)
    {
        var inputs = TensorIO.Read(reader, requireFinite: true);
        Tensor? labels = null;
        try
        {
            labels = TensorIO.Read(reader);
            if (labels.dim() != 1 || labels.dtype != ScalarType.Int64 || inputs.dim() < 1 || inputs.shape[0] != labels.shape[0])
                throw new InvalidDataException("The stored exemplars are inconsistent: their inputs and labels do not have one row each.");
            if (labels.numel() > 0)
            {
                using var min = labels.min();
                if (min.item<long>() < 0) throw new InvalidDataException("The stored exemplars have a negative class index.");
            }
            return new ExemplarMemory(inputs, labels);
        }
        catch
        {
            inputs.Dispose();
            labels?.Dispose();
            throw;
        }
    }

    /// <summary>Releases the inputs and labels.</summary>
    public void Dispose()
    {
        Inputs.Dispose();
        Labels.Dispose();
    }
}
