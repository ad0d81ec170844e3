using System.CommandLine;
using System.IO;
using Microsoft.ML;

namespace FlatMinima.Cli;

/// <summary><c>flatminima evaluate --model model.zip &lt;folder&gt;</c>: ML.NET's metrics, the confusion table and a report.</summary>
public static class EvaluateCommand
{
    /// <summary>The command.</summary>
    public static Command Create(CliContext context)
    {
        var model = ModelOption();
        var folder = new Argument<string>("folder") { Description = "Labeled images: one sub-folder per class, named as the model's classes." };
        var report = new Option<string?>("--report") { Description = "Write a report folder (report.html, confusion matrix, per-class plot) here." };
        var command = new Command("evaluate", "Evaluate a model on a folder of labeled images.") { model, folder, report };
        command.SetAction(p => FlatMinimaApp.Execute(context, () =>
        {
            var ml = new MLContext(seed: 1);
            using var file = ModelFile.Load(ml, p.GetRequiredValue(model));
            var images = ImageFolder.Read(p.GetRequiredValue(folder), "The evaluation folder", minClasses: 1);
            var result = EvaluationResult.Evaluate(ml, file.Model, file.Classes, new ImageRows(images.Files), images.Root);
            EvaluationText.Print(context, result, images.Root);
            string? html = null;
            if (p.GetValue(report) is string reportFolder)
            {
                ReportWriter.Write(reportFolder, new ReportContent
                {
                    Title = $"flatminima evaluate: {Path.GetFileName(file.Path)} on {images.Root}",
                    Summary = [$"Model: {Path.GetFullPath(file.Path)} ({file.Network.Architecture}, {file.Classes.Count} classes).",
                        $"Data: {images.Root}: {images.Files.Count:N0} images of {images.Classes.Count} classes."],
                    Evaluation = result,
                    EvaluationName = Path.GetFileName(images.Root.TrimEnd(Path.DirectorySeparatorChar)),
                    Options = file.Run?.Options ?? new(),
                });
                html = Path.Combine(Path.GetFullPath(reportFolder), ReportWriter.HtmlFile);
                context.Line($"Report: {html}");
            }
            if (context.Json) context.WriteJson(new { model = Path.GetFullPath(file.Path), folder = images.Root, report = html, metrics = result });
            return ExitCodes.Success;
        }));
        return command;
    }

    /// <summary>The required <c>--model</c> option.</summary>
    internal static Option<string> ModelOption() => new("--model") { Description = "The model zip (written by flatminima train).", Required = true };
}
