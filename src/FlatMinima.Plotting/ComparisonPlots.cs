using System;
using System.Collections.Generic;
using System.Linq;
using ScottPlot;

namespace FlatMinima.Plotting;

/// <summary>One labelled point of a comparison plot: e.g. a method's mean wall time (x) and mean accuracy (y) ± its standard error.</summary>
/// <param name="Label">The text written next to the point (a method's name).</param>
/// <param name="X">Horizontal position.</param>
/// <param name="Y">Vertical position.</param>
/// <param name="YError">Half-length of the vertical error bar (0 draws none).</param>
public sealed record LabelledPoint(string Label, double X, double Y, double YError = 0);

/// <summary>A named group of <see cref="LabelledPoint"/>s drawn in one color (e.g. one noise rate).</summary>
/// <param name="Name">The legend text (empty: no legend entry).</param>
/// <param name="Points">The points.</param>
public sealed record LabelledPointSeries(string Name, IReadOnlyList<LabelledPoint> Points);

/// <summary>Writes comparisons of methods (accuracy against cost) as PNG files.</summary>
public static class ComparisonPlots
{
    /// <summary>
    /// Saves <paramref name="series"/> as labelled points with vertical error bars to <paramref name="path"/> (PNG): one
    /// color per series (with a legend entry when the series has a name), each point labelled with its
    /// <see cref="LabelledPoint.Label"/>. Typical use: mean test accuracy ± standard error against mean training seconds,
    /// one point per method.
    /// </summary>
    /// <exception cref="ArgumentException">No point, or a coordinate or error bar that is not finite (or a negative error bar).</exception>
    public static void SaveLabelledPointsPng(IReadOnlyList<LabelledPointSeries> series, string path, string title, string xLabel, string yLabel,
        int width = 960, int height = 560)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (series.Any(s => s is null || s.Points is null)) throw new ArgumentException("A series or its point list is null.", nameof(series));
        if (series.Sum(s => s.Points.Count) == 0) throw new ArgumentException("No point to plot.", nameof(series));
        foreach (var s in series)
            foreach (var p in s.Points)
                if (!double.IsFinite(p.X) || !double.IsFinite(p.Y) || !double.IsFinite(p.YError) || p.YError < 0)
                    throw new ArgumentException($"Point '{p.Label}' of series '{s.Name}' has x {p.X}, y {p.Y}, error {p.YError}: each must be finite (the error ≥ 0).", nameof(series));

        var plot = new Plot();
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < series.Count; i++)
        {
            var s = series[i];
            if (s.Points.Count == 0) continue;
            var color = palette.GetColor(i);
            double[] xs = s.Points.Select(p => p.X).ToArray();
            double[] ys = s.Points.Select(p => p.Y).ToArray();
            if (s.Points.Any(p => p.YError > 0))
            {
                var bars = plot.Add.ErrorBar(xs, ys, s.Points.Select(p => p.YError).ToArray());
                bars.Color = color;
            }
            var markers = plot.Add.ScatterPoints(xs, ys, color);
            markers.MarkerSize = 9;
            if (!string.IsNullOrEmpty(s.Name)) markers.LegendText = s.Name;
            foreach (var p in s.Points)
            {
                var text = plot.Add.Text(p.Label, p.X, p.Y);
                text.LabelFontColor = color;
                text.LabelFontSize = 12;
                text.LabelAlignment = Alignment.LowerLeft;
                text.OffsetX = 6;
                text.OffsetY = -4;
            }
        }
        if (series.Any(s => !string.IsNullOrEmpty(s.Name) && s.Points.Count > 0)) plot.ShowLegend(Alignment.LowerRight);
        // Room for the labels right of and above the points (fractions of the data range: left, right, bottom, top).
        plot.Axes.Margins(0.06, 0.22, 0.08, 0.12);
        plot.SavePng(path, width, height);
    }
}
