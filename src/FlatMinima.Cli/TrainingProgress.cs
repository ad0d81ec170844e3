using System;
using System.Diagnostics;
using System.Globalization;
using System.Threading;
using FlatMinima.Torch.Training;
using Spectre.Console;

namespace FlatMinima.Cli;

/// <summary>
/// Shows training progress: on an interactive terminal a live Spectre.Console display (an epoch bar with the remaining
/// time, a bar for the running epoch timed from the previous epoch, loss, accuracy, images per second); otherwise one
/// plain line per epoch (standard error under <c>--json</c>). The library reports once per epoch, so the bar within an
/// epoch is an estimate from the last epoch's duration, and indeterminate during the first.
/// </summary>
public sealed class TrainingProgress
{
    private readonly CliContext _context;
    private readonly int _epochs;
    private readonly long _images;
    private readonly Stopwatch _total = Stopwatch.StartNew();

    /// <summary>Creates the display for <paramref name="epochs"/> epochs over <paramref name="images"/> training images.</summary>
    public TrainingProgress(CliContext context, int epochs, long images)
    {
        _context = context;
        _epochs = epochs;
        _images = images;
    }

    /// <summary>Runs <paramref name="train"/>, giving it the per-epoch callback, while the display is shown.</summary>
    public T Run<T>(Func<Action<EpochReport>, T> train)
    {
        if (!_context.Live) return train(Plain);
        T result = default!;
        _context.Console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var epochs = ctx.AddTask($"epochs 0/{_epochs}", maxValue: _epochs);
                var epoch = ctx.AddTask("epoch 1: first epoch, timing it", maxValue: 100);
                epoch.IsIndeterminate = true;
                var epochClock = Stopwatch.StartNew();
                double? lastSeconds = null;
                int current = 1;
                using var timer = new Timer(_ =>
                {
                    if (lastSeconds is double s && s > 0) epoch.Value = Math.Min(99, 100 * epochClock.Elapsed.TotalSeconds / s);
                }, null, 250, 250);
                result = train(report =>
                {
                    lastSeconds = report.Elapsed.TotalSeconds;
                    epochs.Value = report.Epoch;
                    epochs.Description = Markup.Escape($"epochs {report.Epoch}/{report.Epochs} · {Describe(report)}");
                    epoch.Value = 100;
                    if (report.Epoch < report.Epochs && report.Interruption is null)
                    {
                        current = report.Epoch + 1;
                        epoch.IsIndeterminate = false;
                        epoch.Value = 0;
                        epoch.Description = Markup.Escape($"epoch {current} (timed from epoch {report.Epoch}: {report.Elapsed.TotalSeconds:F1} s)");
                        epochClock.Restart();
                    }
                    else epoch.Description = report.Interruption is null ? "done" : Markup.Escape($"stopped at epoch {report.Interruption.Epoch}");
                });
                epochs.StopTask();
                epoch.StopTask();
            });
        return result;
    }

    private void Plain(EpochReport report)
    {
        double remaining = report.Epochs > report.Epoch ? _total.Elapsed.TotalSeconds / report.Epoch * (report.Epochs - report.Epoch) : 0;
        string line = $"epoch {report.Epoch}/{report.Epochs}  {Describe(report)}" +
            (report.Epoch < report.Epochs && report.Interruption is null ? $"  ETA {TimeSpan.FromSeconds(Math.Round(remaining)):c}" : "") +
            (report.Interruption is null ? "" : $"  stopped: {report.Interruption.Reason}");
        _context.Status(line);
    }

    private string Describe(EpochReport r)
    {
        var c = CultureInfo.InvariantCulture;
        string text = string.Format(c, "loss {0:F4}  acc {1:P1}", r.TrainLoss, r.TrainAccuracy);
        if (r.ValidationLoss is double vl) text += string.Format(c, "  val loss {0:F4}  val acc {1:P1}", vl, r.ValidationAccuracy ?? double.NaN);
        if (r.Elapsed.TotalSeconds > 0 && r.Interruption is null) text += string.Format(c, "  {0:N0} img/s", _images / r.Elapsed.TotalSeconds);
        return text;
    }
}
