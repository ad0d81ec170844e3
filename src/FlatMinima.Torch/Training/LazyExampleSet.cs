using System;
using System.Linq;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// Examples whose inputs are computed on demand (e.g. decoding and resizing the encoded images of the rows asked for),
/// so memory holds the labels and whatever the loader keeps, not the decoded inputs. Loading has two parts: a
/// <c>prepare</c> function the trainer calls ahead of the step on background threads
/// (<see cref="ClassifierTrainingOptions.LoaderWorkers"/>) — reading and decoding, best without tensor operations, which
/// would compete with the step's threads — and an <c>assemble</c> function that turns its result into the batch tensor
/// on the training thread.
/// </summary>
public sealed class LazyExampleSet : IExampleSet
{
    private readonly Func<long[], object?> _prepare;
    private readonly Func<long[], object?, Tensor> _assemble;
    private readonly string _digest;

    /// <summary>Creates the set from one loader that runs entirely on the loader threads.</summary>
    /// <param name="labels">0-based class indices, int64 <c>[N]</c> (kept, not copied).</param>
    /// <param name="exampleShape">One input's shape, e.g. <c>[C, H, W]</c>.</param>
    /// <param name="load">
    /// Returns the float inputs <c>[B, …exampleShape]</c> (CPU) of the given 0-based rows, in order; must be a pure function of
    /// the rows and thread-safe (it runs on several threads at once).
    /// </param>
    /// <param name="contentDigest">Identifies what the inputs are computed from (e.g. a SHA-256 of the encoded images and the
    /// decoding settings), for <see cref="InputsDigest"/>.</param>
    public LazyExampleSet(Tensor labels, long[] exampleShape, Func<long[], Tensor> load, string contentDigest)
        : this(labels, exampleShape, rows => (load ?? throw new ArgumentNullException(nameof(load)))(rows), (rows, prepared) => (Tensor)prepared!, contentDigest)
    {
    }

    /// <summary>Creates the set from a <paramref name="prepare"/> part (loader threads) and an <paramref name="assemble"/> part (training thread).</summary>
    /// <param name="labels">0-based class indices, int64 <c>[N]</c> (kept, not copied).</param>
    /// <param name="exampleShape">One input's shape, e.g. <c>[C, H, W]</c>.</param>
    /// <param name="prepare">Reads and decodes the given rows; thread-safe, a pure function of the rows.</param>
    /// <param name="assemble">Returns the float inputs <c>[B, …exampleShape]</c> (CPU) of the rows from what <paramref name="prepare"/> returned.</param>
    /// <param name="contentDigest">Identifies what the inputs are computed from, for <see cref="InputsDigest"/>.</param>
    public LazyExampleSet(Tensor labels, long[] exampleShape, Func<long[], object?> prepare, Func<long[], object?, Tensor> assemble, string contentDigest)
    {
        Labels = labels ?? throw new ArgumentNullException(nameof(labels));
        ExampleShape = exampleShape?.ToArray() ?? throw new ArgumentNullException(nameof(exampleShape));
        _prepare = prepare ?? throw new ArgumentNullException(nameof(prepare));
        _assemble = assemble ?? throw new ArgumentNullException(nameof(assemble));
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
    public object? PrepareInputs(long[] rows) => _prepare(rows);

    /// <inheritdoc/>
    public Tensor AssembleInputs(long[] rows, object? prepared)
    {
        var x = _assemble(rows, prepared);
        long[] expected = new[] { (long)rows.Length }.Concat(ExampleShape).ToArray();
        if (!x.shape.SequenceEqual(expected))
        {
            var shape = x.shape;
            x.Dispose();
            throw new InvalidOperationException($"The loader returned inputs of shape [{string.Join(", ", shape)}] for {rows.Length} rows; expected [{string.Join(", ", expected)}].");
        }
        return x;
    }

    /// <summary>The same examples with <paramref name="domains"/> as their <see cref="Domains"/>.</summary>
    public LazyExampleSet WithDomains(Tensor? domains) => new(Labels, ExampleShape, _prepare, _assemble, _digest) { Domains = domains };

    /// <inheritdoc/>
    public string InputsDigest() => $"inputs Float32[{Count},{string.Join(",", ExampleShape)}] {_digest}";
}
