using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Training;
using ScottPlot;

namespace FlatMinima.Plotting;

/// <summary>Writes the per-epoch training curves of a run (<see cref="EpochReport"/>s) as PNG files.</summary>
public static class TrainingPlots
{
    /// <summary>
    /// Saves the training loss per epoch, and the validation loss where the reports have one, as a line plot to
    /// <paramref name="path"/> (PNG). <paramref name="validationName"/> names the validation curve in the legend.
    /// </summary>
    public static void SaveLossPng(IReadOnlyList<EpochReport> epochs, string path, string validationName = "validation", int width = 640, int height = 400) =>
        SaveCurves(epochs, path, "Loss per epoch", "loss (cross-entropy)", r => r.TrainLoss, r => r.ValidationLoss, validationName, 1, Alignment.UpperRight, width, height);

    /// <summary>
    /// Saves the training accuracy per epoch, and the validation accuracy where the reports have one, in percent, as a
    /// line plot to <paramref name="path"/> (PNG).
    /// </summary>
    public static void SaveAccuracyPng(IReadOnlyList<EpochReport> epochs, string path, string validationName = "validation", int width = 640, int height = 400) =>
        SaveCurves(epochs, path, "Accuracy per epoch", "accuracy (%)", r => r.TrainAccuracy, r => r.ValidationAccuracy, validationName, 100, Alignment.LowerRight, width, height);

    /// <summary>
    /// Saves the validation loss per epoch with the steps a weight averager averaged (SWAD's window, SWA's or EMA's
    /// averaging phase, <paramref name="averaging"/>) shaded, to <paramref name="path"/> (PNG). Steps are placed on the
    /// epoch axis with <paramref name="stepsPerEpoch"/> (step s ends at epoch s / stepsPerEpoch).
    /// </summary>
    public static void SaveAveragingWindowPng(IReadOnlyList<EpochReport> epochs, AveragingReport averaging, double stepsPerEpoch, string path,
        int width = 640, int height = 400)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        ArgumentNullException.ThrowIfNull(averaging);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!(stepsPerEpoch > 0)) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), stepsPerEpoch, "stepsPerEpoch must be > 0.");
        var plot = new Plot();
        plot.Title($"{averaging.Method}: averaged steps on the validation loss");
        var withValidation = epochs.Where(r => r.ValidationLoss is not null).ToArray();
        if (averaging.StartStep is long start && averaging.EndStep is long end)
        {
            var span = plot.Add.HorizontalSpan((start - 1) / stepsPerEpoch, end / stepsPerEpoch, Colors.Orange.WithAlpha(0.25));
            span.LegendText = $"averaged: steps {start}–{end} ({averaging.AveragedSteps} samples)";
        }
        if (withValidation.Length > 0)
        {
            var line = plot.Add.Scatter(withValidation.Select(r => (double)r.Epoch).ToArray(), withValidation.Select(r => r.ValidationLoss!.Value).ToArray());
            line.LegendText = "validation loss";
        }
        if (averaging.Threshold is double threshold)
        {
            var limit = plot.Add.HorizontalLine(threshold);
            limit.LinePattern = LinePattern.Dashed;
            limit.LegendText = $"loss threshold {threshold:F4}";
        }
        EpochTicks(plot, epochs.Count == 0 ? 0 : epochs.Max(r => r.Epoch));
        plot.XLabel("epoch");
        plot.YLabel("validation loss");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, width, height);
    }

    // Whole epochs on the axis when there are few of them (ScottPlot would otherwise label 1.5, 2.5, …).
    private static void EpochTicks(Plot plot, int epochs)
    {
        if (epochs is > 0 and <= 20) plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(1);
    }

    private static void SaveCurves(IReadOnlyList<EpochReport> epochs, string path, string title, string yLabel, Func<EpochReport, double> train,
        Func<EpochReport, double?> validation, string validationName, double scale, Alignment legend, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(epochs);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        // An interrupted epoch (its report carries Interruption) measured only part of an epoch: left out.
        var complete = epochs.Where(r => r.Interruption is null).ToArray();
        var plot = new Plot();
        plot.Title(title);
        double[] xs = complete.Select(r => (double)r.Epoch).ToArray();
        var trainLine = plot.Add.Scatter(xs, complete.Select(r => train(r) * scale).ToArray());
        trainLine.LegendText = "training";
        var withValidation = complete.Where(r => validation(r) is not null).ToArray();
        if (withValidation.Length > 0)
        {
            var validationLine = plot.Add.Scatter(withValidation.Select(r => (double)r.Epoch).ToArray(),
                withValidation.Select(r => validation(r)!.Value * scale).ToArray());
            validationLine.LegendText = validationName;
        }
        EpochTicks(plot, complete.Length == 0 ? 0 : complete.Max(r => r.Epoch));
        plot.XLabel("epoch");
        plot.YLabel(yLabel);
        plot.ShowLegend(legend);
        plot.SavePng(path, width, height);
    }
}
