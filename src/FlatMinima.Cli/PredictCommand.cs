using System;
using System.CommandLine;
using System.Globalization;
using System.Linq;
using Microsoft.ML;

namespace FlatMinima.Cli;

/// <summary><c>flatminima predict --model model.zip &lt;files or folders&gt; [--top 3]</c>: the most likely classes of each image.</summary>
public static class PredictCommand
{
    /// <summary>What ML.NET's scoring gives per row.</summary>
    public sealed class Scored
    {
        /// <summary>Class probabilities in the model's class order (NaN when the image could not be used).</summary>
        public float[] Score { get; set; } = [];

        /// <summary>The predicted class (empty when the image could not be used).</summary>
        public string PredictedLabel { get; set; } = "";
    }

    /// <summary>One class and its probability.</summary>
    public sealed record ClassScore(string Label, double Probability);

    /// <summary>The prediction of one file; <paramref name="Error"/> set when its image could not be used.</summary>
    public sealed record FilePrediction(string File, string? PredictedLabel, ClassScore[] Top, string? Error);

    /// <summary>The command.</summary>
    public static Command Create(CliContext context)
    {
        var model = EvaluateCommand.ModelOption();
        var paths = new Argument<string[]>("images") { Description = "Image files, or folders searched for images.", Arity = ArgumentArity.OneOrMore };
        var top = new Option<int>("--top") { Description = "How many classes to show per image.", DefaultValueFactory = _ => 3 };
        var command = new Command("predict", "Predict the class of images.") { model, paths, top };
        command.SetAction(p => FlatMinimaApp.Execute(context, () =>
        {
            int k = p.GetValue(top);
            if (k < 1) throw CliException.Usage($"--top {k}: must be at least 1.");
            var ml = new MLContext(seed: 1);
            using var file = ModelFile.Load(ml, p.GetRequiredValue(model));
            var files = ImageFolder.ReadFiles(p.GetRequiredValue(paths));
            var rows = new ImageRows(files);
            var predictions = Predict(ml, file, rows, k);
            var c = CultureInfo.InvariantCulture;
            foreach (var prediction in predictions)
                context.Line(prediction.Error is not null
                    ? $"{prediction.File}\t(no prediction: {prediction.Error})"
                    : $"{prediction.File}\t{prediction.PredictedLabel}\t" + string.Join("  ", prediction.Top.Select(t => string.Format(c, "{0} {1:P1}", t.Label, t.Probability))));
            if (context.Json) context.WriteJson(new { model = System.IO.Path.GetFullPath(file.Path), predictions });
            return predictions.All(x => x.Error is null) ? ExitCodes.Success : ExitCodes.DataError;
        }));
        return command;
    }

    /// <summary>Scores <paramref name="rows"/> and returns each file's top <paramref name="k"/> classes.</summary>
    public static FilePrediction[] Predict(MLContext ml, ModelFile model, ImageRows rows, int k)
    {
        var scored = model.Model.Transform(ml.Data.LoadFromEnumerable(rows));
        var results = ml.Data.CreateEnumerable<Scored>(scored, reuseRowObject: false).ToArray();
        var classes = model.Classes;
        return results.Select((r, i) =>
        {
            string path = rows.Files[i].Path;
            if (r.Score.Length != classes.Count || r.Score.Any(float.IsNaN))
                return new FilePrediction(path, null, [], rows.Unreadable.TryGetValue(path, out var reason) ? $"could not read: {reason}" : "not a decodable image");
            var best = r.Score.Select((p, j) => new ClassScore(classes[j], p)).OrderByDescending(s => s.Probability).Take(k).ToArray();
            return new FilePrediction(path, r.PredictedLabel, best, null);
        }).ToArray();
    }
}
