using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net;
using System.Text;
using FlatMinima.Plotting;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Training;

namespace FlatMinima.Cli;

/// <summary>What a report shows; the parts that are null are left out.</summary>
public sealed record ReportContent
{
    /// <summary>The report's title.</summary>
    public required string Title { get; init; }

    /// <summary>Summary lines (data, model, time), shown as a list.</summary>
    public IReadOnlyList<string> Summary { get; init; } = [];

    /// <summary>The evaluation, for the metrics, the confusion matrix and the per-class plot.</summary>
    public EvaluationResult? Evaluation { get; init; }

    /// <summary>Name of the evaluated data in the report ("test part", "folder …").</summary>
    public string EvaluationName { get; init; } = "test data";

    /// <summary>The per-epoch reports, for the curves.</summary>
    public IReadOnlyList<EpochReport> Epochs { get; init; } = [];

    /// <summary>Legend name of the per-epoch validation curve.</summary>
    public string ValidationName { get; init; } = "validation";

    /// <summary>The averager's report and the steps per epoch, for the averaging-window plot.</summary>
    public (AveragingReport Report, double StepsPerEpoch)? Averaging { get; init; }

    /// <summary>Plots written by the caller into the report folder (title, file), shown after the others.</summary>
    public IReadOnlyList<(string Title, string File)> ExtraPlots { get; init; } = [];

    /// <summary>Preformatted text sections (title, text), shown after the metrics.</summary>
    public IReadOnlyList<(string Title, string Text)> Sections { get; init; } = [];

    /// <summary>The run's options (name → value).</summary>
    public IReadOnlyDictionary<string, string> Options { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// Writes a report folder: the PNG plots (training curves, confusion matrix, per-class precision and recall, the
/// averaging window) and a self-contained <c>report.html</c> with every image embedded as a base64 data URI.
/// </summary>
public static class ReportWriter
{
    /// <summary>The HTML file's name in the report folder.</summary>
    public const string HtmlFile = "report.html";

    /// <summary>Writes the report into <paramref name="folder"/> (created if needed); returns the files written.</summary>
    public static IReadOnlyList<string> Write(string folder, ReportContent content)
    {
        Directory.CreateDirectory(folder);
        var images = new List<(string Title, string File)>();
        void Plot(string title, string file, Action<string> save)
        {
            string path = Path.Combine(folder, file);
            save(path);
            images.Add((title, path));
        }
        var epochs = content.Epochs;
        if (epochs.Any(r => r.Interruption is null))
        {
            Plot("Loss per epoch", "loss.png", p => TrainingPlots.SaveLossPng(epochs, p, content.ValidationName));
            Plot("Accuracy per epoch", "accuracy.png", p => TrainingPlots.SaveAccuracyPng(epochs, p, content.ValidationName));
        }
        if (content.Averaging is { } averaging && epochs.Any(r => r.ValidationLoss is not null))
            Plot($"{averaging.Report.Method} window", "averaging-window.png",
                p => TrainingPlots.SaveAveragingWindowPng(epochs, averaging.Report, averaging.StepsPerEpoch, p));
        if (content.Evaluation is { } evaluation)
        {
            Plot($"Confusion matrix ({content.EvaluationName})", "confusion-matrix.png",
                p => ClassificationPlots.SaveConfusionMatrixPng(evaluation.Classes, evaluation.Confusion, p, $"Confusion matrix, {content.EvaluationName}"));
            Plot($"Precision and recall per class ({content.EvaluationName})", "per-class.png",
                p => ClassificationPlots.SavePerClassPng(evaluation.Classes, evaluation.Precision, evaluation.Recall, p));
        }
        images.AddRange(content.ExtraPlots.Select(p => (p.Title, Path.GetFullPath(p.File))));
        string html = Path.Combine(folder, HtmlFile);
        File.WriteAllText(html, Html(content, images), new UTF8Encoding(false));
        return images.Select(i => i.File).Append(html).ToList();
    }

    private static string Html(ReportContent content, IReadOnlyList<(string Title, string File)> images)
    {
        static string E(string text) => WebUtility.HtmlEncode(text);
        static string P(double value) => double.IsFinite(value) ? (100 * value).ToString("F2", CultureInfo.InvariantCulture) + " %" : "–";
        var b = new StringBuilder();
        b.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>").Append(E(content.Title)).Append("</title>\n<style>\n")
         .Append("body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\n")
         .Append("h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\n")
         .Append("table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}\n")
         .Append("td.l,th.l{text-align:left}.metric{display:inline-block;margin:0 1.5em .8em 0}.metric b{font-size:1.6em;display:block}\n")
         .Append("figure{display:inline-block;width:48%;margin:.5em 1% .5em 0;vertical-align:top}img{width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}\n")
         .Append("</style>\n</head>\n<body>\n<h1>").Append(E(content.Title)).Append("</h1>\n");
        if (content.Summary.Count > 0)
        {
            b.Append("<ul>\n");
            foreach (string line in content.Summary) b.Append("<li>").Append(E(line)).Append("</li>\n");
            b.Append("</ul>\n");
        }
        if (content.Evaluation is { } ev)
        {
            b.Append("<h2>Metrics: ").Append(E(content.EvaluationName)).Append("</h2>\n")
             .Append("<div class=\"metric\"><b>").Append(P(ev.MicroAccuracy)).Append("</b>micro-accuracy</div>")
             .Append("<div class=\"metric\"><b>").Append(P(ev.MacroAccuracy)).Append("</b>macro-accuracy</div>")
             .Append("<div class=\"metric\"><b>").Append(ev.LogLoss.ToString("F4", CultureInfo.InvariantCulture)).Append("</b>log-loss</div>")
             .Append("<div class=\"metric\"><b>").Append(ev.Rows.ToString("N0", CultureInfo.InvariantCulture)).Append("</b>images evaluated")
             .Append(ev.Skipped > 0 ? $" ({ev.Skipped} unreadable left out)" : "").Append("</div>\n");
            b.Append("<table>\n<tr><th class=\"l\">class</th><th>precision</th><th>recall</th><th>images</th></tr>\n");
            for (int i = 0; i < ev.Classes.Count; i++)
                b.Append("<tr><td class=\"l\">").Append(E(ev.Classes[i])).Append("</td><td>").Append(P(ev.Precision[i])).Append("</td><td>")
                 .Append(P(ev.Recall[i])).Append("</td><td>").Append(ev.Confusion[i].Sum().ToString("0", CultureInfo.InvariantCulture)).Append("</td></tr>\n");
            b.Append("</table>\n");
        }
        foreach (var (title, text) in content.Sections)
            b.Append("<h2>").Append(E(title)).Append("</h2>\n<pre>").Append(E(text.TrimEnd())).Append("</pre>\n");
        if (images.Count > 0)
        {
            b.Append("<h2>Plots</h2>\n");
            foreach (var (title, file) in images)
                b.Append("<figure><img alt=\"").Append(E(title)).Append("\" src=\"data:image/png;base64,")
                 .Append(Convert.ToBase64String(File.ReadAllBytes(file))).Append("\"><figcaption>").Append(E(title))
                 .Append(" (").Append(E(Path.GetFileName(file))).Append(")</figcaption></figure>\n");
        }
        if (content.Epochs.Count > 0)
        {
            b.Append("<h2>Epochs</h2>\n<table>\n<tr><th>epoch</th><th>train loss</th><th>train acc.</th><th>").Append(E(content.ValidationName))
             .Append(" loss</th><th>").Append(E(content.ValidationName)).Append(" acc.</th><th>learning rate</th><th>seconds</th></tr>\n");
            foreach (var r in content.Epochs)
                b.Append("<tr><td>").Append(r.Epoch).Append(r.Interruption is null ? "" : " (stopped)").Append("</td><td>")
                 .Append(r.TrainLoss.ToString("F4", CultureInfo.InvariantCulture)).Append("</td><td>").Append(P(r.TrainAccuracy)).Append("</td><td>")
                 .Append(r.ValidationLoss?.ToString("F4", CultureInfo.InvariantCulture) ?? "–").Append("</td><td>")
                 .Append(r.ValidationAccuracy is double va ? P(va) : "–").Append("</td><td>")
                 .Append(r.LearningRate.ToString("G4", CultureInfo.InvariantCulture)).Append("</td><td>")
                 .Append(r.Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)).Append("</td></tr>\n");
            b.Append("</table>\n");
            if (content.Epochs[^1].Averaging is { } averaging) b.Append("<p>").Append(E(averaging.ToString())).Append("</p>\n");
            if (content.Epochs[^1].Interruption is { } stop) b.Append("<p><b>Stopped early:</b> ").Append(E(stop.ToString())).Append("</p>\n");
        }
        if (content.Options.Count > 0)
        {
            b.Append("<h2>Options</h2>\n<table>\n");
            foreach (var (name, value) in content.Options)
                b.Append("<tr><th class=\"l\">").Append(E(name)).Append("</th><td class=\"l\">").Append(E(value)).Append("</td></tr>\n");
            b.Append("</table>\n");
        }
        b.Append("<p style=\"color:#777;font-size:.85em\">Written by flatminima ").Append(E(Tool.Version)).Append(" on ")
         .Append(DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture)).Append(".</p>\n</body>\n</html>\n");
        return b.ToString();
    }
}
