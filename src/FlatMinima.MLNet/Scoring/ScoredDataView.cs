using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Model.OnnxConverter;

namespace FlatMinima.MLNet;

/// <summary>
/// The output of <c>Transform</c> of the image transformers: the input's columns plus the scores,
/// computed lazily in batches as the cursor moves (and not at all when no score column is requested).
/// </summary>
internal sealed class ScoredDataView : ITransformCanSaveOnnx
{
    private readonly IImageScorer _parent;
    private readonly IDataView _input;

    public ScoredDataView(IImageScorer parent, IDataView input, DataViewSchema schema)
    {
        _parent = parent;
        _input = input;
        Schema = schema;
    }

    public DataViewSchema Schema { get; }

    /// <summary>The scored input (what ML.NET's ONNX export walks back to).</summary>
    public IDataView Source => _input;

    /// <summary>Checks that the model can be written as ONNX; throws saying what cannot be exported and why (rather than
    /// returning false, which ML.NET reports only as a pipeline that "can not be fully converted").</summary>
    bool ICanSaveOnnx.CanSaveOnnx(OnnxContext ctx)
    {
        _parent.CheckOnnxExport();
        return true;
    }

    void ISaveAsOnnx.SaveAsOnnx(OnnxContext ctx) => _parent.SaveAsOnnx(ctx);

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException("Save the transformer (mlContext.Model.Save), not the scored data view.");

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
                if (_scores.Fill(_lookahead!.MoveNext, () => _reader!.TryRead(out _)) == 0 || !_scores.Advance())
                    throw new InvalidOperationException("The input data gave fewer rows on a second cursor; scoring needs an input that can be cursored repeatably.");
            }
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!IsColumnActive(column)) throw new InvalidOperationException($"Column '{column.Name}' was not requested from this cursor.");
            int inputCount = _view._input.Schema.Count;
            return column.Index < inputCount
                ? _main.GetGetter<TValue>(_view._input.Schema[column.Index])
                : _scores!.GetGetter<TValue>(column, inputCount, NoOp);
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
