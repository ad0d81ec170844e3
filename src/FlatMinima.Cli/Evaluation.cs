using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FlatMinima.Cli;

/// <summary>ML.NET's multiclass metrics of a model on labeled images, with the class names and the rows left out.</summary>
/// <param name="Classes">The model's classes, in the order of the confusion matrix and the per-class lists.</param>
/// <param name="MicroAccuracy">Accuracy over all evaluated rows.</param>
/// <param name="MacroAccuracy">Mean per-class accuracy.</param>
/// <param name="LogLoss">Log-loss.</param>
/// <param name="LogLossReduction">Log-loss reduction relative to the class prior.</param>
/// <param name="Confusion">Counts: Confusion[i][j] rows of class i predicted as class j.</param>
/// <param name="Precision">Per-class precision (NaN for a class never predicted).</param>
/// <param name="Recall">Per-class recall.</param>
/// <param name="Rows">Rows evaluated.</param>
/// <param name="Skipped">Rows left out because their image could not be read or decoded.</param>
/// <param name="ConfusionTable">ML.NET's formatted confusion table.</param>
public sealed record EvaluationResult(IReadOnlyList<string> Classes, double MicroAccuracy, double MacroAccuracy, double LogLoss, double LogLossReduction,
    IReadOnlyList<IReadOnlyList<double>> Confusion, IReadOnlyList<double> Precision, IReadOnlyList<double> Recall, long Rows, long Skipped,
    [property: System.Text.Json.Serialization.JsonIgnore] string ConfusionTable)
{
    /// <summary>The headline numbers, for the run record.</summary>
    public MetricsSummary Summary => new(MicroAccuracy, MacroAccuracy, LogLoss, Rows);

    /// <summary>
    /// Scores <paramref name="rows"/> with <paramref name="model"/> and evaluates with ML.NET's multiclass evaluator. Rows
    /// whose image could not be used (NaN scores) are left out and counted in <see cref="Skipped"/>; labels must be
    /// classes of the model (checked before scoring).
    /// </summary>
    public static EvaluationResult Evaluate(MLContext ml, ITransformer model, IReadOnlyList<string> classes, ImageRows rows, string what)
    {
        CheckClasses(rows.Files, classes, what);
        var data = ml.Data.LoadFromEnumerable(rows);
        // Scored once: the image bytes are dropped and the scores cached for the counts and the evaluator.
        var transformed = model.Transform(data);
        var scored = ml.Data.Cache(ml.Transforms.DropColumns(nameof(ImageRow.Image)).Fit(transformed).Transform(transformed));
        var usable = ml.Data.FilterRowsByMissingValues(scored, "Score");
        long total = Count(scored), kept = Count(usable);
        if (kept == 0)
            throw CliException.DataError($"{what}: none of the {total} images could be read or decoded.", "Check that the files are PNG, JPEG, BMP, GIF or WebP images.");
        var metrics = ml.MulticlassClassification.Evaluate(usable, labelColumnName: "Label", scoreColumnName: "Score");
        var matrix = metrics.ConfusionMatrix;
        return new EvaluationResult(classes, metrics.MicroAccuracy, metrics.MacroAccuracy, metrics.LogLoss, metrics.LogLossReduction,
            matrix.Counts.Select(r => (IReadOnlyList<double>)r.ToArray()).ToArray(), matrix.PerClassPrecision.ToArray(), matrix.PerClassRecall.ToArray(),
            kept, total - kept, matrix.GetFormattedConfusionTable());
    }

    /// <summary>Fails with a data error naming the labels of <paramref name="files"/> that are not among <paramref name="classes"/>.</summary>
    public static void CheckClasses(IReadOnlyList<LabeledFile> files, IReadOnlyList<string> classes, string what)
    {
        var unknown = files.Select(f => f.Label).Distinct().Where(l => !classes.Contains(l)).ToList();
        if (unknown.Count > 0)
            throw CliException.DataError($"{what}: class{(unknown.Count > 1 ? "es" : "")} {string.Join(", ", unknown.Select(u => $"'{u}'"))} " +
                $"{(unknown.Count > 1 ? "are" : "is")} not among the model's classes ({string.Join(", ", classes)}).",
                "Evaluate on folders named after the model's classes (flatminima info --model … lists them).");
    }

    private static long Count(IDataView view)
    {
        using var cursor = view.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        long n = 0;
        while (cursor.MoveNext()) n++;
        return n;
    }
}

/// <summary>Prints an evaluation as text.</summary>
internal static class EvaluationText
{
    /// <summary>The metrics, ML.NET's confusion table and the per-class precision and recall.</summary>
    public static void Print(CliContext context, EvaluationResult e, string what)
    {
        var c = System.Globalization.CultureInfo.InvariantCulture;
        context.Line(string.Format(c, "{0} ({1:N0} images{2}): micro-accuracy {3:P2}, macro-accuracy {4:P2}, log-loss {5:F4}",
            what, e.Rows, e.Skipped > 0 ? $", {e.Skipped} unreadable left out" : "", e.MicroAccuracy, e.MacroAccuracy, e.LogLoss));
        context.Line(e.ConfusionTable.TrimEnd());
        int width = Math.Max(5, e.Classes.Max(n => n.Length));
        context.Line($"{"class".PadRight(width)}  precision  recall");
        for (int i = 0; i < e.Classes.Count; i++)
            context.Line(string.Format(c, "{0}  {1,9}  {2,6}", e.Classes[i].PadRight(width),
                double.IsFinite(e.Precision[i]) ? e.Precision[i].ToString("P1", c) : "–", e.Recall[i].ToString("P1", c)));
    }
}
