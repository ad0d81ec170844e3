using System;
using System.Collections.Generic;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.MLNet;

/// <summary>Reads a domain column (text, key or integer) as 0-based domain ids, in row order.</summary>
internal static class DomainReader
{
    /// <summary>
    /// The domain id of each row. <paramref name="names"/> maps domain values (as text) to ids; values not in it get the
    /// next id. <paramref name="what"/> names the data set in error messages.
    /// </summary>
    public static long[] Read(IDataView data, string columnName, Dictionary<string, long> names, string what)
    {
        var column = data.Schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException(nameof(columnName), $"{what}: domain column '{columnName}' was not found (set DomainColumnName).");
        using var cursor = data.GetRowCursor(new[] { column });
        Func<string?> read = column.Type switch
        {
            TextDataViewType => Getter<ReadOnlyMemory<char>>(cursor, column, v => v.Length == 0 ? null : v.ToString()),
            KeyDataViewType k when k.RawType == typeof(uint) => Getter<uint>(cursor, column, v => v == 0 ? null : v.ToString()),
            var t when t == NumberDataViewType.Int32 => Getter<int>(cursor, column, v => v.ToString()),
            var t when t == NumberDataViewType.Int64 => Getter<long>(cursor, column, v => v.ToString()),
            var t when t == NumberDataViewType.UInt32 => Getter<uint>(cursor, column, v => v.ToString()),
            var t when t == NumberDataViewType.Single => Getter<float>(cursor, column, v => float.IsNaN(v) ? null : v.ToString("R")),
            var t => throw new ArgumentOutOfRangeException(nameof(columnName),
                $"{what}: domain column '{columnName}' has type {t}; use text, a key or an integer column."),
        };
        var ids = new List<long>();
        while (cursor.MoveNext())
        {
            string value = read() ?? throw new InvalidOperationException(
                $"{what}: domain column '{columnName}', row {cursor.Position}: the domain is missing. Give every row a domain or remove such rows.");
            if (!names.TryGetValue(value, out long id)) names[value] = id = names.Count;
            ids.Add(id);
        }
        return ids.ToArray();
    }

    private static Func<string?> Getter<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Func<T, string?> format)
    {
        var get = cursor.GetGetter<T>(column);
        T value = default!;
        return () => { get(ref value); return format(value); };
    }
}
