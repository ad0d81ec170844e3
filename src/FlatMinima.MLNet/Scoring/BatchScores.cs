using System;
using System.Collections.Generic;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.MLNet;

/// <summary>
/// Scores a batch of rows at a time and hands out one row's results per call: the score buffers behind the
/// <c>Score</c> and <c>PredictedLabel</c> getters of both the batched cursor and the one-row mapper.
/// </summary>
internal sealed class BatchScores
{
    private readonly IImageScorer _parent;
    private readonly float[] _probabilities;
    private readonly int[] _predicted;
    private readonly List<DecodedImage?> _images;
    private int _count;
    private int _current = -1;

    public BatchScores(IImageScorer parent, int capacity)
    {
        _parent = parent;
        _probabilities = new float[capacity * parent.ClassCount];
        _predicted = new int[capacity];
        _images = new List<DecodedImage?>(capacity);
        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>
    /// Reads up to <see cref="Capacity"/> rows (while <paramref name="moveNext"/> finds one, each with
    /// <paramref name="read"/>: the image, or null when the row's value is not a usable image) and scores them; returns
    /// how many rows were read.
    /// </summary>
    public int Fill(Func<bool> moveNext, Func<DecodedImage?> read)
    {
        _images.Clear();
        while (_images.Count < Capacity && moveNext()) _images.Add(read());
        _count = _images.Count;
        _current = -1;
        if (_count > 0) _parent.Score(_images, _probabilities, _predicted);
        _images.Clear();
        return _count;
    }

    /// <summary>Moves to the next scored row; false when the batch is used up.</summary>
    public bool Advance() => ++_current < _count;

    /// <summary>The getter of output column <paramref name="column"/>: the score (index <paramref name="inputCount"/>) or the predicted label (the next index).</summary>
    public ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column, int inputCount, Action ensureCurrent)
    {
        Delegate getter = column.Index == inputCount ? ScoreGetter(ensureCurrent) : PredictedLabelGetter(ensureCurrent);
        return getter as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, not {typeof(TValue).Name}.");
    }

    private ValueGetter<VBuffer<float>> ScoreGetter(Action ensureCurrent) => (ref VBuffer<float> dst) =>
    {
        ensureCurrent();
        int k = _parent.ClassCount;
        var editor = VBufferEditor.Create(ref dst, k);
        _probabilities.AsSpan(_current * k, k).CopyTo(editor.Values);
        dst = editor.Commit();
    };

    private ValueGetter<uint> PredictedLabelGetter(Action ensureCurrent) => (ref uint dst) =>
    {
        ensureCurrent();
        dst = (uint)(_predicted[_current] + 1); // -1 (no usable input) is the missing key 0
    };
}
