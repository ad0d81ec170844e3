using System;
using System.IO;
using System.Text.Json;
using FlatMinima.Plotting;

// Usage: FlatMinima.BenchmarkPlots REQUEST.json OUT.png
// REQUEST.json: { "Title": …, "XLabel": …, "YLabel": …, "Series": [ { "Name": …, "Points": [ { "Label": …, "X": …, "Y": …, "YError": … } ] } ] }
if (args.Length != 2)
{
    Console.Error.WriteLine("Usage: FlatMinima.BenchmarkPlots REQUEST.json OUT.png");
    return 2;
}
try
{
    var request = JsonSerializer.Deserialize<PlotRequest>(File.ReadAllText(args[0]))
                  ?? throw new InvalidDataException($"{args[0]} holds no plot request.");
    if (request.Series is null) throw new InvalidDataException($"{args[0]} has no \"Series\".");
    ComparisonPlots.SaveLabelledPointsPng(request.Series, args[1], request.Title ?? "", request.XLabel ?? "", request.YLabel ?? "");
    Console.WriteLine($"Plot written to {args[1]}.");
    return 0;
}
catch (Exception e) when (e is IOException or JsonException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"{args[0]} → {args[1]}: {e.Message}");
    return 1;
}

/// <summary>What to draw: <see cref="ComparisonPlots.SaveLabelledPointsPng"/>'s arguments.</summary>
internal sealed record PlotRequest(string? Title, string? XLabel, string? YLabel, LabelledPointSeries[]? Series);
