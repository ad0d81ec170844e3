using System.Collections.Generic;
using System.CommandLine;
using System.Globalization;
using System.IO;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.Diagnostics;
using FlatMinima.Plotting;
using Microsoft.ML;

namespace FlatMinima.Cli;

/// <summary>
/// <c>flatminima sharpness --model model.zip &lt;folder&gt;</c>: the library's sharpness report (loss, top Hessian
/// eigenvalue, Hessian trace, worst-case, ε- and adaptive sharpness) on labeled images, and a loss-landscape PNG.
/// </summary>
public static class SharpnessCommand
{
    /// <summary>The command.</summary>
    public static Command Create(CliContext context)
    {
        var model = EvaluateCommand.ModelOption();
        var folder = new Argument<string>("folder") { Description = "Labeled images (one sub-folder per class, named as the model's classes), usually the training images." };
        var maxExamples = new Option<int>("--max-examples") { Description = "Images the measures use (the first of each class in turn).", DefaultValueFactory = _ => 500 };
        var landscape = FlatMinimaApp.Choice("--landscape", "The loss-landscape plot: 1 (a line along one filter-normalized direction), 2 (a heat map over two), or none.", "1", "1", "2", "none");
        var perLayer = new Option<bool>("--per-layer") { Description = "Also the top eigenvalue and trace of each module's Hessian block." };
        var quick = new Option<bool>("--quick") { Description = "Fewer probes for a first look: 5 trace probes, 5 average-case samples, 2 ascent steps (wider error bars)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the probes and directions.", DefaultValueFactory = _ => 0 };
        var output = new Option<string?>("--report") { Description = "The report folder (default: <model>-sharpness next to the model)." };
        var command = new Command("sharpness", "Measure how flat a model's minimum is on labeled images; plot a loss landscape.")
            { model, folder, maxExamples, landscape, perLayer, quick, seed, output };
        command.SetAction(p => FlatMinimaApp.Execute(context, () =>
        {
            int max = p.GetValue(maxExamples);
            if (max < 1) throw CliException.Usage($"--max-examples {max}: must be at least 1.");
            var ml = new MLContext(seed: 1);
            using var file = ModelFile.Load(ml, p.GetRequiredValue(model));
            if (file.IsIncremental)
                throw CliException.DataError($"--model '{file.Path}' is an incremental (F2M) model: it classifies by the nearest class prototype, " +
                    "so it has no softmax training loss whose sharpness could be measured.",
                    "Run sharpness on a model trained with flatminima train (without --incremental).");
            var images = ImageFolder.Read(p.GetRequiredValue(folder), "The image folder", minClasses: 1);
            EvaluationResult.CheckClasses(images.Files, file.Classes, images.Root);
            // Round-robin over the classes, so a small --max-examples still sees every class.
            var files = images.Files.GroupBy(f => f.Label)
                .SelectMany(g => g.Select((f, i) => (f, i)))
                .OrderBy(x => x.i).ThenBy(x => x.f.Label, System.StringComparer.Ordinal)
                .Select(x => x.f).Take(max).ToList();
            var data = ml.Data.LoadFromEnumerable(new ImageRows(files));
            var options = new FlatMinimaSharpnessOptions { MaxExamples = max, PerLayer = p.GetValue(perLayer), Seed = p.GetValue(seed) };
            if (p.GetValue(quick))
            {
                options.TraceProbes = 5;
                options.AverageCaseSamples = 5;
                options.AscentSteps = 2;
                options.PerLayerTraceProbes = 5;
            }
            var report = ml.MulticlassClassification.EvaluateSharpness(file.Model, data, options);
            context.Line($"Sharpness of {Path.GetFullPath(file.Path)} on {report.Examples:N0} images of {images.Root}:");
            context.Line(report.ToString().TrimEnd());
            string folderPath = Path.GetFullPath(p.GetValue(output) ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file.Path))!,
                Path.GetFileNameWithoutExtension(file.Path) + "-sharpness"));
            Directory.CreateDirectory(folderPath);
            var plots = new List<(string, string)>();
            string? png = null;
            if (p.GetValue(landscape) is "1" or "2")
            {
                int dimensions = p.GetValue(landscape) == "1" ? 1 : 2;
                var grid = ml.MulticlassClassification.LossLandscape(file.Model, data, dimensions, span: 1, points: dimensions == 1 ? 21 : 11,
                    maxExamples: max, seed: options.Seed);
                png = Path.Combine(folderPath, $"landscape-{dimensions}d.png");
                LandscapePlots.SavePng(grid, png, $"{Path.GetFileName(file.Path)}: {dimensions}-D loss landscape");
                plots.Add(($"{dimensions}-D loss landscape (filter-normalized directions)", png));
            }
            ReportWriter.Write(folderPath, new ReportContent
            {
                Title = $"flatminima sharpness: {Path.GetFileName(file.Path)}",
                Summary = [$"Model: {Path.GetFullPath(file.Path)} ({file.Network.Architecture}, {file.Classes.Count} classes).",
                    $"Data: {report.Examples:N0} images of {images.Root}."],
                Sections = [("Sharpness report", report.ToString())],
                ExtraPlots = plots,
                Options = file.Run?.Options ?? new(),
            });
            string html = Path.Combine(folderPath, ReportWriter.HtmlFile);
            context.Line($"Report: {html}");
            if (context.Json)
            {
                var c = CultureInfo.InvariantCulture;
                context.WriteJson(new
                {
                    model = Path.GetFullPath(file.Path),
                    examples = report.Examples,
                    parameters = report.Parameters,
                    loss = report.Loss,
                    accuracy = report.Accuracy,
                    topEigenvalues = report.TopEigenvalues?.Values,
                    trace = report.Trace?.Trace,
                    traceStandardError = report.Trace?.StandardError,
                    worstCase = report.WorstCase?.Value,
                    epsilonSharpness = report.EpsilonSharpness?.Value,
                    adaptiveWorstCase = report.AdaptiveWorstCase?.Value,
                    adaptiveAverageCase = report.AdaptiveAverageCase?.Value,
                    perLayer = report.PerLayer.Select(l => new { l.Name, l.Parameters, l.LambdaMax, trace = l.Trace.Trace }),
                    seconds = report.Elapsed.TotalSeconds,
                    landscape = png,
                    report = html,
                });
            }
            return ExitCodes.Success;
        }));
        return command;
    }
}
