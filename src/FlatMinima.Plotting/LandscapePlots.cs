using System;
using System.Linq;
using FlatMinima.Torch.Diagnostics;
using ScottPlot;

namespace FlatMinima.Plotting;

/// <summary>Writes loss-landscape slices (<see cref="LandscapeGrid"/>) as PNG files.</summary>
public static class LandscapePlots
{
    /// <summary>
    /// Saves a 1-D slice as a line plot, or a 2-D slice as a heat map with contour lines, to <paramref name="path"/>
    /// (PNG, <paramref name="width"/>×<paramref name="height"/> pixels).
    /// </summary>
    public static void SavePng(LandscapeGrid grid, string path, string title = "Loss landscape", int width = 640, int height = 480)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var plot = new Plot();
        plot.Title(title);
        if (grid.Betas.Length == 0)
        {
            var losses = Enumerable.Range(0, grid.Alphas.Length).Select(i => grid.Losses[i, 0]).ToArray();
            plot.Add.Scatter(grid.Alphas, losses);
            plot.XLabel("α (filter-normalized direction)");
            plot.YLabel("loss");
        }
        else
        {
            // Heatmap rows go top to bottom: row 0 is the largest β.
            int n = grid.Betas.Length, m = grid.Alphas.Length;
            var values = new double[n, m];
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) values[n - 1 - j, i] = grid.Losses[i, j];
            var heatmap = plot.Add.Heatmap(values);
            heatmap.Extent = new CoordinateRect(grid.Alphas[0], grid.Alphas[^1], grid.Betas[0], grid.Betas[^1]);
            plot.Add.ColorBar(heatmap);
            plot.XLabel("α");
            plot.YLabel("β");
        }
        plot.SavePng(path, width, height);
    }
}
