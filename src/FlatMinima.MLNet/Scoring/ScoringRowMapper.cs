using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.MLNet;

/// <summary>The one-row-at-a-time mapper behind <c>PredictionEngine</c>: scores the current input row on first use.</summary>
internal sealed class ScoringRowMapper : IRowToRowMapper
{
    private readonly IImageScorer _parent;

    public ScoringRowMapper(IImageScorer parent, DataViewSchema inputSchema, DataViewSchema outputSchema)
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
            return column.Index < n ? _input.GetGetter<TValue>(_input.Schema[column.Index]) : _scores.GetGetter<TValue>(column, n, EnsureScored);
        }

        private void EnsureScored()
        {
            if (_scoredPosition == _input.Position && _input.Position >= 0) return;
            bool moved = false;
            _scores.Fill(() => !moved && (moved = true), () => _reader!.TryRead(out _));
            _scores.Advance();
            _scoredPosition = _input.Position;
        }
    }
}
