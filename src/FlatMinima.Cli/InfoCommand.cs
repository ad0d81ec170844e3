using System.CommandLine;
using System.Globalization;
using System.IO;
using System.Linq;
using Microsoft.ML;

namespace FlatMinima.Cli;

/// <summary><c>flatminima info --model model.zip</c>: what the zip holds.</summary>
public static class InfoCommand
{
    /// <summary>The command.</summary>
    public static Command Create(CliContext context)
    {
        var model = EvaluateCommand.ModelOption();
        var command = new Command("info", "Show a model's architecture, classes, input geometry, training options and metrics.") { model };
        command.SetAction(p => FlatMinimaApp.Execute(context, () =>
        {
            var ml = new MLContext(seed: 1);
            using var file = ModelFile.Load(ml, p.GetRequiredValue(model));
            var m = file.Network;
            var c = CultureInfo.InvariantCulture;
            var input = file.InputSchema.Select(col => $"{col.Name}: {col.Type}").ToArray();
            context.Line($"Model:        {Path.GetFullPath(file.Path)} ({new FileInfo(file.Path).Length / 1024.0 / 1024:F1} MiB)");
            context.Line($"Architecture: {m.Architecture}, {m.ParameterCount.ToString("N0", c)} parameters");
            context.Line($"Input:        {m.Channels}×{m.Height}×{m.Width} (channels × height × width); images of other sizes are resized");
            context.Line($"Columns:      {string.Join(", ", input)} → Score (probabilities), PredictedLabel");
            context.Line($"Classes:      {file.Classes.Count}: {string.Join(", ", file.Classes)}");
            context.Line($"Augmentation: {m.Augmentation ?? "not recorded"}");
            var f2m = file.Incremental?.Model;
            if (f2m is not null)
            {
                context.Line($"Incremental:  F2M, nearest class prototype over {f2m.ClassCount} classes ({f2m.BaseClassCount} base classes, {f2m.SessionCount} session{(f2m.SessionCount == 1 ? "" : "s")}); " +
                    $"flat region b = {f2m.FlatRegion.Bound.ToString("G4", c)}, {f2m.ExemplarCount} exemplars kept; add classes with flatminima add-classes");
                foreach (var session in file.Run?.Incremental?.Sessions ?? [])
                    context.Line($"  session {session.Session}: {session.Describe()}");
            }
            if (file.Run is { } run)
            {
                context.Line($"Trained:      {run.Created.ToString("yyyy-MM-dd HH:mm 'UTC'", c)} by flatminima {run.ToolVersion}; {run.EpochsCompleted} epochs in {run.TrainingSeconds.ToString("F1", c)} s on {run.TrainImages.ToString("N0", c)} images" +
                    (run.SkippedImages > 0 ? $" ({run.SkippedImages} unreadable left out)" : ""));
                if (run.Test is { } t)
                    context.Line(string.Format(c, "Test:         micro-accuracy {0:P2}, macro-accuracy {1:P2}, log-loss {2:F4} on {3:N0} images", t.MicroAccuracy, t.MacroAccuracy, t.LogLoss, t.Rows));
                if (run.Averaging is not null) context.Line($"Averaging:    {run.Averaging}");
                if (run.Interruption is not null) context.Line($"Stopped:      {run.Interruption}");
                context.Line("Options:");
                foreach (var (name, value) in run.Options) context.Line($"  {name}: {value}");
            }
            else context.Line("Run record:   none (the model was not written by flatminima train)");
            if (context.Json)
                context.WriteJson(new
                {
                    model = Path.GetFullPath(file.Path),
                    architecture = m.Architecture,
                    parameters = m.ParameterCount,
                    channels = m.Channels,
                    height = m.Height,
                    width = m.Width,
                    classes = file.Classes,
                    augmentation = m.Augmentation,
                    incremental = f2m is null ? null : new
                    {
                        baseClasses = file.Classes.Take(f2m.BaseClassCount),
                        sessions = f2m.SessionCount,
                        bound = f2m.FlatRegion.Bound,
                        exemplars = f2m.ExemplarCount,
                    },
                    inputColumns = file.InputSchema.Select(col => new { name = col.Name, type = col.Type.ToString() }),
                    run = file.Run,
                });
            return ExitCodes.Success;
        }));
        return command;
    }
}
