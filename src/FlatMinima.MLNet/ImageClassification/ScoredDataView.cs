using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.MLNet.ImageClassification;

/// <summary>
/// Scores a batch of rows at a time and hands out one row's results per call: the score buffers behind the
/// <c>Score</c> and <c>PredictedLabel</c> getters of both the batched cursor and the one-row mapper.
/// </summary>
internal sealed class BatchScores
{
    private readonly FlatMinimaImageClassificationTransformer _parent;
    private readonly float[] _probabilities;
    private readonly int[] _predicted;
    private readonly List<DecodedImage> _images;
    private int _count;
    private int _current = -1;

    public BatchScores(FlatMinimaImageClassificationTransformer parent, int capacity)
    {
        _parent = parent;
        _probabilities = new float[capacity * parent.Model.ClassCount];
        _predicted = new int[capacity];
        _images = new List<DecodedImage>(capacity);
        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>Reads up to <see cref="Capacity"/> images (while <paramref name="next"/> yields) and scores them; returns how many.</summary>
    public int Fill(Func<DecodedImage?> next)
    {
        _images.Clear();
        while (_images.Count < Capacity && next() is DecodedImage image) _images.Add(image);
        _count = _images.Count;
        _current = -1;
        if (_count > 0) _parent.Score(_images, _probabilities, _predicted);
        _images.Clear();
        return _count;
    }

    /// <summary>Moves to the next scored row; false when the batch is used up.</summary>
    public bool Advance() => ++_current < _count;

    public ValueGetter<VBuffer<float>> ScoreGetter(Action ensureCurrent) => (ref VBuffer<float> dst) =>
    {
        ensureCurrent();
        int k = _parent.Model.ClassCount;
        var editor = VBufferEditor.Create(ref dst, k);
        _probabilities.AsSpan(_current * k, k).CopyTo(editor.Values);
        dst = editor.Commit();
    };

    public ValueGetter<uint> PredictedLabelGetter(Action ensureCurrent) => (ref uint dst) =>
    {
        ensureCurrent();
        dst = (uint)_predicted[_current] + 1;
    };
}

/// <summary>
/// The output of <see cref="FlatMinimaImageClassificationTransformer.Transform"/>: the input's columns plus the scores,
/// computed lazily in batches as the cursor moves (and not at all when no score column is requested).
/// </summary>
internal sealed class ScoredDataView : IDataView
{
    private readonly FlatMinimaImageClassificationTransformer _parent;
    private readonly IDataView _input;

    public ScoredDataView(FlatMinimaImageClassificationTransformer parent, IDataView input, DataViewSchema schema)
    {
        _parent = parent;
        _input = input;
        Schema = schema;
    }

    public DataViewSchema Schema { get; }

    /// <summary>False: the scores are produced in input order (two input cursors must see the same rows).</summary>
    public bool CanShuffle => false;

    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int inputCount = _input.Schema.Count;
        bool scoring = needed.Contains(inputCount) || needed.Contains(inputCount + 1);
        var main = _input.GetRowCursor(needed.Where(i => i < inputCount).Select(i => _input.Schema[i]));
        DataViewRowCursor? lookahead = null;
        if (scoring)
        {
            var imageColumn = _parent.CheckImageColumn(_input.Schema);
            lookahead = _input.GetRowCursor(new[] { imageColumn });
        }
        return new Cursor(this, main, lookahead, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>
    /// Walks the input with one cursor for the pass-through columns and a second one, up to a batch ahead, that reads
    /// the images to score.
    /// </summary>
    private sealed class Cursor : DataViewRowCursor
    {
        private readonly ScoredDataView _view;
        private readonly DataViewRowCursor _main;
        private readonly DataViewRowCursor? _lookahead;
        private readonly RowImageReader? _reader;
        private readonly BatchScores? _scores;
        private readonly HashSet<int> _active;

        public Cursor(ScoredDataView view, DataViewRowCursor main, DataViewRowCursor? lookahead, HashSet<int> active)
        {
            _view = view;
            _main = main;
            _lookahead = lookahead;
            _active = active;
            if (lookahead is not null)
            {
                var parent = view._parent;
                _reader = parent.Input.CreateReader(lookahead, lookahead.Schema[parent.FeatureColumnName]);
                _scores = new BatchScores(parent, parent.ScoringBatchSize);
            }
        }

        public override DataViewSchema Schema => _view.Schema;

        public override long Position => _main.Position;

        public override long Batch => _main.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _main.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override bool MoveNext()
        {
            if (!_main.MoveNext()) return false;
            if (_scores is not null && !_scores.Advance())
            {
                if (_scores.Fill(() => _lookahead!.MoveNext() ? _reader!.Read() : null) == 0 || !_scores.Advance())
                    throw new InvalidOperationException("The input data gave fewer rows on a second cursor; scoring needs an input that can be cursored repeatably.");
            }
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' was not requested from this cursor.");
            int inputCount = _view._input.Schema.Count;
            if (column.Index < inputCount) return _main.GetGetter<TValue>(_view._input.Schema[column.Index]);
            Delegate getter = column.Index == inputCount ? _scores!.ScoreGetter(NoOp) : _scores!.PredictedLabelGetter(NoOp);
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, not {typeof(TValue).Name}.");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _main.Dispose();
                _lookahead?.Dispose();
            }
            base.Dispose(disposing);
        }

        private static void NoOp()
        {
        }
    }
}

/// <summary>The one-row-at-a-time mapper behind <c>PredictionEngine</c>: scores the current input row on first use.</summary>
internal sealed class ScoringRowMapper : IRowToRowMapper
{
    private readonly FlatMinimaImageClassificationTransformer _parent;

    public ScoringRowMapper(FlatMinimaImageClassificationTransformer parent, DataViewSchema inputSchema, DataViewSchema outputSchema)
    {
        _parent = parent;
        InputSchema = inputSchema;
        OutputSchema = outputSchema;
    }

    public DataViewSchema InputSchema { get; }

    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var needed = new List<DataViewSchema.Column>();
        bool scoring = false;
        foreach (var c in dependingColumns)
        {
            if (c.Index < InputSchema.Count) needed.Add(InputSchema[c.Index]);
            else scoring = true;
        }
        if (scoring) needed.Add(_parent.CheckImageColumn(InputSchema));
        return needed.Distinct();
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly ScoringRowMapper _mapper;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private readonly RowImageReader? _reader;
        private readonly BatchScores _scores;
        private long _scoredPosition = -1;

        public Row(ScoringRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            _mapper = mapper;
            _input = input;
            _active = active;
            _scores = new BatchScores(mapper._parent, 1);
            int n = mapper.InputSchema.Count;
            if (active.Contains(n) || active.Contains(n + 1))
                _reader = mapper._parent.Input.CreateReader(input, input.Schema[mapper._parent.FeatureColumnName]);
        }

        public override DataViewSchema Schema => _mapper.OutputSchema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' is not active.");
            int n = _mapper.InputSchema.Count;
            if (column.Index < n) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            Delegate getter = column.Index == n ? _scores.ScoreGetter(EnsureScored) : _scores.PredictedLabelGetter(EnsureScored);
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, not {typeof(TValue).Name}.");
        }

        private void EnsureScored()
        {
            if (_scoredPosition == _input.Position && _input.Position >= 0) return;
            bool read = false;
            _scores.Fill(() =>
            {
                if (read) return null;
                read = true;
                return _reader!.Read();
            });
            _scores.Advance();
            _scoredPosition = _input.Position;
        }
    }
}
