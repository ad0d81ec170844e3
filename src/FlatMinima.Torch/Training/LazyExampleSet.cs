using System;
using System.Linq;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// Examples whose inputs are computed on demand by a loader (e.g. decoding and resizing encoded images of the rows asked
/// for), so memory holds the labels and whatever the loader keeps, not the decoded inputs. The trainer calls the loader
/// ahead of the step on background threads (<see cref="ClassifierTrainingOptions.LoaderWorkers"/>).
/// </summary>
public sealed class LazyExampleSet : IExampleSet
{
    private readonly Func<long[], Tensor> _load;
    private readonly string _digest;

    /// <summary>Creates the set.</summary>
    /// <param name="labels">0-based class indices, int64 <c>[N]</c> (kept, not copied).</param>
    /// <param name="exampleShape">One input's shape, e.g. <c>[C, H, W]</c>.</param>
    /// <param name="load">
    /// Returns the float inputs <c>[B, …exampleShape]</c> (CPU) of the given 0-based rows, in order; must be a pure function of
    /// the rows and thread-safe (it runs on several threads at once).
    /// </param>
    /// <param name="contentDigest">Identifies what the inputs are computed from (e.g. a SHA-256 of the encoded images and the
    /// decoding settings), for <see cref="InputsDigest"/>.</param>
    public LazyExampleSet(Tensor labels, long[] exampleShape, Func<long[], Tensor> load, string contentDigest)
    {
        Labels = labels ?? throw new ArgumentNullException(nameof(labels));
        ExampleShape = exampleShape?.ToArray() ?? throw new ArgumentNullException(nameof(exampleShape));
        _load = load ?? throw new ArgumentNullException(nameof(load));
        _digest = contentDigest ?? throw new ArgumentNullException(nameof(contentDigest));
        if (labels.dim() != 1) throw new ArgumentException($"Labels must be [N]; got [{string.Join(", ", labels.shape)}].", nameof(labels));
    }

    /// <inheritdoc/>
    public long Count => Labels.shape[0];

    /// <inheritdoc/>
    public Tensor Labels { get; }

    /// <inheritdoc/>
    public Tensor? Domains { get; init; }

    /// <inheritdoc/>
    public long[] ExampleShape { get; }

    /// <inheritdoc/>
    bool IExampleSet.IsInMemory => false;

    /// <inheritdoc/>
    public Tensor LoadInputs(Tensor rows)
    {
        var index = rows.data<long>().ToArray();
        var x = _load(index);
        long[] expected = new[] { (long)index.Length }.Concat(ExampleShape).ToArray();
        if (!x.shape.SequenceEqual(expected))
        {
            var shape = x.shape;
            x.Dispose();
            throw new InvalidOperationException($"The loader returned inputs of shape [{string.Join(", ", shape)}] for {index.Length} rows; expected [{string.Join(", ", expected)}].");
        }
        return x;
    }

    /// <summary>The same examples with <paramref name="domains"/> as their <see cref="Domains"/>.</summary>
    public LazyExampleSet WithDomains(Tensor? domains) => new(Labels, ExampleShape, _load, _digest) { Domains = domains };

    /// <inheritdoc/>
    public string InputsDigest() => $"inputs Float32[{Count},{string.Join(",", ExampleShape)}] {_digest}";
}
