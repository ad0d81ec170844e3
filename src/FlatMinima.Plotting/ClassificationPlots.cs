using System;
using System.Collections.Generic;
using System.Linq;
using ScottPlot;

namespace FlatMinima.Plotting;

/// <summary>Writes classification metrics (a confusion matrix, per-class precision and recall) as PNG files.</summary>
public static class ClassificationPlots
{
    /// <summary>
    /// Saves a confusion matrix as a heat map to <paramref name="path"/> (PNG): one row per true class (first class at
    /// the top), one column per predicted class, each cell colored by the share of its row (recall-normalized, so rare
    /// classes stay visible) and labeled with its count. <paramref name="counts"/>[i][j] counts the rows of class i
    /// predicted as class j, in the order of <paramref name="classes"/>.
    /// </summary>
    public static void SaveConfusionMatrixPng(IReadOnlyList<string> classes, IReadOnlyList<IReadOnlyList<double>> counts, string path, string title = "Confusion matrix",
        int? size = null)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(counts);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        int k = classes.Count;
        if (k == 0) throw new ArgumentException("No classes.", nameof(classes));
        if (counts.Count != k || counts.Any(row => row is null || row.Count != k))
            throw new ArgumentException($"counts must be a {k}×{k} matrix (one row and one column per class).", nameof(counts));
        var shares = new double[k, k];
        for (int i = 0; i < k; i++)
        {
            double total = counts[i].Sum();
            for (int j = 0; j < k; j++) shares[i, j] = total > 0 ? counts[i][j] / total : 0;
        }
        var plot = new Plot();
        plot.Title(title);
        var heatmap = plot.Add.Heatmap(shares);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        heatmap.ManualRange = new ScottPlot.Range(0, 1);
        // Row 0 of the intensities is drawn at the top: true class i sits at y = k − 1 − i.
        heatmap.Rectangle = new CoordinateRect(-0.5, k - 0.5, -0.5, k - 0.5);   // the cells' outer edges
        float fontSize = k <= 10 ? 12 : k <= 20 ? 9 : 7;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                var text = plot.Add.Text(counts[i][j].ToString("0"), j, k - 1 - i);
                text.Alignment = Alignment.MiddleCenter;
                text.LabelFontSize = fontSize;
                text.LabelFontColor = shares[i, j] > 0.5 ? Colors.Black : Colors.White;
            }
        var colorBar = plot.Add.ColorBar(heatmap);
        colorBar.Label = "share of the true class";
        double[] positions = Enumerable.Range(0, k).Select(i => (double)i).ToArray();
        plot.Axes.Bottom.SetTicks(positions, classes.ToArray());
        plot.Axes.Left.SetTicks(positions.Select(p => k - 1 - p).ToArray(), classes.ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = -45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Bottom.MinimumSize = 90;
        plot.XLabel("predicted");
        plot.YLabel("true");
        plot.Axes.SetLimits(-0.5, k - 0.5, -0.5, k - 0.5);
        int side = size ?? Math.Clamp(200 + 45 * k, 420, 1400);
        plot.SavePng(path, side + 120, side);
    }

    /// <summary>
    /// Saves per-class precision and recall (0–1, in the order of <paramref name="classes"/>) as grouped bars, in percent,
    /// to <paramref name="path"/> (PNG).
    /// </summary>
    public static void SavePerClassPng(IReadOnlyList<string> classes, IReadOnlyList<double> precision, IReadOnlyList<double> recall, string path,
        string title = "Precision and recall per class", int? width = null, int height = 420)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(precision);
        ArgumentNullException.ThrowIfNull(recall);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        int k = classes.Count;
        if (precision.Count != k || recall.Count != k)
            throw new ArgumentException($"precision and recall need one value per class ({k}); got {precision.Count} and {recall.Count}.");
        var plot = new Plot();
        plot.Title(title);
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        for (int i = 0; i < k; i++)
        {
            bars.Add(new Bar { Position = 3 * i, Value = 100 * Safe(precision[i]), FillColor = palette.GetColor(0), Size = 0.9 });
            bars.Add(new Bar { Position = 3 * i + 1, Value = 100 * Safe(recall[i]), FillColor = palette.GetColor(1), Size = 0.9 });
        }
        plot.Add.Bars(bars);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "precision", FillColor = palette.GetColor(0) });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "recall", FillColor = palette.GetColor(1) });
        plot.ShowLegend(Alignment.LowerRight);
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, k).Select(i => 3 * i + 0.5).ToArray(), classes.ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = -45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Bottom.MinimumSize = 90;
        plot.Axes.SetLimits(-1, 3 * k - 1, 0, 105);
        plot.YLabel("%");
        plot.SavePng(path, width ?? Math.Clamp(160 + 60 * k, 480, 1600), height);
    }

    // NaN (a class never predicted has no precision) is drawn as 0.
    private static double Safe(double value) => double.IsFinite(value) ? value : 0;
}
