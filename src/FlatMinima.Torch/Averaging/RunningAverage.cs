using System;
using System.IO;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// Equal-weight running mean of a model's weights, like <c>torch.optim.swa_utils.AveragedModel</c> with its default
/// average: the first <see cref="Add"/> copies, later ones do <c>w̄ ← w̄ + (w − w̄)/(n + 1)</c> in place.
/// </summary>
internal sealed class RunningAverage : IDisposable
{
    /// <summary>An empty average over <paramref name="tensors"/>.</summary>
    public RunningAverage(ModelTensors tensors)
    {
        Tensors = tensors ?? throw new ArgumentNullException(nameof(tensors));
        Buffer = tensors.NewBuffer();
    }

    /// <summary>What is averaged.</summary>
    public ModelTensors Tensors { get; }

    /// <summary>The current mean (meaningless while <see cref="Count"/> is 0).</summary>
    public FlatBuffer Buffer { get; }

    /// <summary>Number of weight samples averaged.</summary>
    public long Count { get; private set; }

    /// <summary>Adds the model's current weights to the mean.</summary>
    public void Add()
    {
        if (Count == 0) Buffer.CopyFromModel();
        else Buffer.LerpTowardsModel(1.0 / (Count + 1));
        Count++;
    }

    /// <summary>Empties the average.</summary>
    public void Reset() => Count = 0;

    /// <summary>Writes the mean into the model; throws if nothing was averaged.</summary>
    public void CopyToModel()
    {
        if (Count == 0) throw new InvalidOperationException("Nothing has been averaged yet.");
        Buffer.CopyToModel();
    }

    /// <summary>Writes the count and the mean.</summary>
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(Count);
        Buffer.Save(writer);
    }

    /// <summary>Reads a state written by <see cref="Save"/>.</summary>
    public void Load(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        Count = reader.ReadInt64();
        Buffer.Load(reader);
    }

    /// <summary>Releases the buffer.</summary>
    public void Dispose() => Buffer.Dispose();
}
