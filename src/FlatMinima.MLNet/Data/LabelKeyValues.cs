using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Data.IO;
using Microsoft.ML.Internal.Utilities;
using Microsoft.ML.Runtime;
namespace FlatMinima.MLNet;

/// <summary>The label column's key values (any item type), kept as the annotations of the output columns and saved with the model.</summary>
internal sealed class LabelKeyValues
{
    private readonly VectorDataViewType? _type;
    private readonly Delegate? _getter;
    private readonly object? _value;

    private LabelKeyValues(VectorDataViewType? type, object? value, IReadOnlyList<string> names)
    {
        _type = type;
        _value = value;
        _getter = type is null ? null : MakeGetterMethod(type.ItemType.RawType).Invoke(null, new[] { value }) as Delegate;
        Names = names;
    }

    public IReadOnlyList<string> Names { get; }

    public bool HasValues => _type is not null;

    /// <summary>Takes the KeyValues annotation of <paramref name="label"/>, if any.</summary>
    public static LabelKeyValues FromColumn(DataViewSchema.Column label, int classCount)
    {
        var column = label.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues);
        if (column is not { Type: VectorDataViewType type } || type.Size != classCount)
            return new LabelKeyValues(null, null, Enumerable.Range(0, classCount).Select(i => i.ToString()).ToArray());
        var method = typeof(LabelKeyValues).GetMethod(nameof(ReadAnnotation), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(type.ItemType.RawType);
        var (value, names) = ((object, string[]))method.Invoke(null, new object[] { label.Annotations, column.Value })!;
        return new LabelKeyValues(type, value, names);
    }

    /// <summary>Text key values with the given class names (what incremental models output as the classes grow).</summary>
    public static LabelKeyValues FromNames(IReadOnlyList<string> names)
    {
        var type = new VectorDataViewType(TextDataViewType.Instance, names.Count);
        var value = new VBuffer<ReadOnlyMemory<char>>(names.Count, names.Select(n => n.AsMemory()).ToArray());
        return new LabelKeyValues(type, value, names.ToArray());
    }

    /// <summary>Whether <paramref name="other"/> has the same classes (used to check validation data).</summary>
    public bool SameClasses(LabelKeyValues other) => Names.SequenceEqual(other.Names);

    public DataViewSchema.Annotations ScoreAnnotations(int classCount)
    {
        var builder = new DataViewSchema.Annotations.Builder();
        if (HasValues)
        {
            var names = Names.Select(n => n.AsMemory()).ToArray();
            builder.AddSlotNames(classCount, (ref VBuffer<ReadOnlyMemory<char>> dst) => new VBuffer<ReadOnlyMemory<char>>(names.Length, names).CopyTo(ref dst));
            builder.Add(AnnotationUtils.Kinds.TrainingLabelValues, _type!, _getter!);
        }
        builder.Add(AnnotationUtils.Kinds.ScoreColumnKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> dst) => dst = AnnotationUtils.Const.ScoreColumnKind.MulticlassClassification.AsMemory());
        builder.Add(AnnotationUtils.Kinds.ScoreValueKind, TextDataViewType.Instance,
            (ref ReadOnlyMemory<char> dst) => dst = AnnotationUtils.Const.ScoreValueKind.Score.AsMemory());
        return builder.ToAnnotations();
    }

    public DataViewSchema.Annotations PredictedLabelAnnotations()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        if (HasValues) builder.Add(AnnotationUtils.Kinds.KeyValues, _type!, _getter!);
        return builder.ToAnnotations();
    }

    public void Save(IHostEnvironment env, BinaryWriter writer)
    {
        writer.Write(HasValues);
        if (!HasValues) return;
        var method = typeof(LabelKeyValues).GetMethod(nameof(WriteValue), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(_type!.ItemType.RawType);
        method.Invoke(null, new[] { env, writer, _type, _value });
    }

    public static LabelKeyValues Load(IHostEnvironment env, BinaryReader reader, int classCount)
    {
        if (!reader.ReadBoolean())
            return new LabelKeyValues(null, null, Enumerable.Range(0, classCount).Select(i => i.ToString()).ToArray());
        var saver = new BinarySaver(env, new BinarySaver.Arguments());
        env.CheckDecode(saver.TryLoadTypeAndValue(reader.BaseStream, out var type, out var value));
        env.CheckDecode(type is VectorDataViewType { Size: var n } && n == classCount && value is not null);
        var vectorType = (VectorDataViewType)type;
        var method = typeof(LabelKeyValues).GetMethod(nameof(NamesOf), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(vectorType.ItemType.RawType);
        return new LabelKeyValues(vectorType, value, (string[])method.Invoke(null, new[] { value })!);
    }

    private static (object, string[]) ReadAnnotation<T>(DataViewSchema.Annotations annotations, DataViewSchema.Column column)
    {
        var value = default(VBuffer<T>);
        annotations.GetGetter<VBuffer<T>>(column)(ref value);
        var copy = default(VBuffer<T>);
        value.CopyTo(ref copy);
        return (copy, ToNames(copy));
    }

    private static string[] ToNames<T>(VBuffer<T> value) => value.DenseValues().Select(v => v?.ToString() ?? "").ToArray();

    private static string[] NamesOf<T>(object value) => ToNames((VBuffer<T>)value);

    private static ValueGetter<VBuffer<T>> MakeGetter<T>(object value)
    {
        var buffer = (VBuffer<T>)value;
        return (ref VBuffer<T> dst) => buffer.CopyTo(ref dst);
    }

    private static System.Reflection.MethodInfo MakeGetterMethod(Type itemType) =>
        typeof(LabelKeyValues).GetMethod(nameof(MakeGetter), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(itemType);

    private static void WriteValue<T>(IHostEnvironment env, BinaryWriter writer, VectorDataViewType type, object value)
    {
        var buffer = (VBuffer<T>)value;
        var saver = new BinarySaver(env, new BinarySaver.Arguments());
        if (!saver.TryWriteTypeAndValue(writer.BaseStream, type, ref buffer, out _))
            throw new NotSupportedException($"Label key values of type {type.ItemType} cannot be saved with the model.");
    }
}
