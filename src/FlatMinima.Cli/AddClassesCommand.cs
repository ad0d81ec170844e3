using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using FlatMinima.MLNet;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.IncrementalFewShot;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace FlatMinima.Cli;

/// <summary>The settings of <c>flatminima add-classes</c>, as parsed.</summary>
public sealed record AddClassesSettings
{
    /// <summary>The incremental model zip to extend (<c>train --incremental</c> or an earlier <c>add-classes</c>).</summary>
    public required string Model { get; init; }

    /// <summary>The session folder: one sub-folder per new class, a few images each.</summary>
    public required string Folder { get; init; }

    /// <summary>The next model zip.</summary>
    public required string Out { get; init; }

    /// <summary>Labeled test images of old and new classes, or null (then the new classes' images beyond the shots).</summary>
    public string? TestFolder { get; init; }

    /// <summary>Images per new class the session learns from (a seeded random choice when a class has more).</summary>
    public int Shots { get; init; } = 5;

    /// <summary>Fine-tuning epochs of the session, or null for the library's default (6; 0 = prototypes only).</summary>
    public int? SessionEpochs { get; init; }

    /// <summary>The session's SGD learning rate, or null for the library's default (0.01).</summary>
    public double? SessionLearningRate { get; init; }

    /// <summary>Shots per new class kept in the model and replayed in later sessions, or null for the library's default (5).</summary>
    public int? Exemplars { get; init; }

    /// <summary>Seed of the choice of shots.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>The report folder, or null for <c>&lt;out&gt;-report</c> next to the model.</summary>
    public string? Report { get; init; }
}

/// <summary>
/// <c>flatminima add-classes --model base.zip &lt;folder&gt; --out next.zip</c>: an F2M incremental few-shot session on the
/// folder's new classes (the library's <c>FlatMinimaIncrementalFewShot</c> trainer, <c>Fit(sessionData, previousModel)</c>),
/// then the next model zip and a report of the accuracy on the old and the new classes.
/// </summary>
public static class AddClassesCommand
{
    /// <summary>The command.</summary>
    public static Command Create(CliContext context)
    {
        var model = new Option<string>("--model") { Description = "The incremental model zip to extend (written by train --incremental or add-classes).", Required = true };
        var folder = new Argument<string>("folder") { Description = "The new classes: one sub-folder per class with a few images each (folder/zebra/1.jpg)." };
        var output = new Option<string>("--out") { Description = "The next model zip to write.", Required = true };
        var test = new Option<string?>("--test") { Description = "Labeled test images of old and new classes (sub-folders named as classes); default: each new class's images beyond --shots." };
        var shots = new Option<int>("--shots") { Description = "Images per new class the session learns from (a seeded random choice when a class has more).", DefaultValueFactory = _ => 5 };
        var epochs = new Option<int?>("--session-epochs") { Description = "Fine-tuning epochs of the range parameters (default 6; 0 computes the new prototypes only)." };
        var learningRate = new Option<double?>("--session-learning-rate") { Description = "The session's SGD learning rate (default 0.01)." };
        var exemplars = new Option<int?>("--exemplars") { Description = "Shots per new class kept in the model and replayed in later sessions (default 5; 0 keeps none)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the choice of shots.", DefaultValueFactory = _ => 1 };
        var report = new Option<string?>("--report") { Description = "The report folder (default: <out>-report next to the model)." };
        var command = new Command("add-classes", "Learn new classes from a few images each with an F2M session on an incremental model; write the next model and a report.")
            { model, folder, output, test, shots, epochs, learningRate, exemplars, seed, report };
        command.SetAction(p => FlatMinimaApp.Execute(context, () => Run(context, new AddClassesSettings
        {
            Model = p.GetRequiredValue(model),
            Folder = p.GetRequiredValue(folder),
            Out = p.GetRequiredValue(output),
            TestFolder = p.GetValue(test),
            Shots = p.GetValue(shots),
            SessionEpochs = p.GetValue(epochs),
            SessionLearningRate = p.GetValue(learningRate),
            Exemplars = p.GetValue(exemplars),
            Seed = p.GetValue(seed),
            Report = p.GetValue(report),
        })));
        return command;
    }

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(CliContext context, AddClassesSettings s)
    {
        Check(s);
        var ml = new MLContext(seed: s.Seed);
        using var file = ModelFile.Load(ml, s.Model);
        var previous = file.Incremental
            ?? throw CliException.DataError($"--model '{s.Model}' is an image classifier, not an incremental model: add-classes extends models trained with train --incremental.",
                $"Train the base model with: flatminima train <folder> --incremental --out base.zip");
        var session = ImageFolder.Read(s.Folder, "The session folder", minClasses: 1);
        var known = session.Classes.Where(c => file.Classes.Contains(c)).ToList();
        if (known.Count > 0)
            throw CliException.DataError($"The session folder '{s.Folder}': class{(known.Count > 1 ? "es" : "")} {string.Join(", ", known.Select(k => $"'{k}'"))} " +
                $"{(known.Count > 1 ? "are" : "is")} already known to the model ({string.Join(", ", file.Classes)}); add-classes learns new classes only.",
                "Remove those sub-folders: F2M keeps the known classes' prototypes fixed. To retrain them, train a new base model with train --incremental.");
        string reportFolder = s.Report ?? TrainCommand.DefaultReportFolder(s.Out);
        TrainCommand.CheckOutside(session.Root, s.Out, "--out");
        TrainCommand.CheckOutside(session.Root, reportFolder, s.Report is null ? "--out (its report folder)" : "--report");

        // The shots: up to --shots images per class (seeded); the rest are the new classes' test images without --test.
        var random = new Random(s.Seed);
        var shotFiles = new List<LabeledFile>();
        var beyond = new List<LabeledFile>();
        foreach (var group in session.Files.GroupBy(f => f.Label))
        {
            var files = group.ToArray();
            if (files.Length > s.Shots) random.Shuffle(files);
            shotFiles.AddRange(files.Take(s.Shots).OrderBy(f => f.Path, StringComparer.Ordinal));
            beyond.AddRange(files.Skip(s.Shots).OrderBy(f => f.Path, StringComparer.Ordinal));
        }
        var nextClasses = file.Classes.Concat(session.Classes).ToList();   // the session appends its classes in key (ordinal) order
        IReadOnlyList<LabeledFile> testFiles;
        string? testName;
        if (s.TestFolder is not null)
        {
            var testFolder = ImageFolder.Read(s.TestFolder, "--test", minClasses: 1);
            EvaluationResult.CheckClasses(testFolder.Files, nextClasses, $"--test '{s.TestFolder}'");
            testFiles = testFolder.Files;
            testName = $"test folder {s.TestFolder}";
        }
        else
        {
            testFiles = beyond;
            testName = beyond.Count > 0 ? $"the new classes' {beyond.Count} images beyond the {s.Shots} shots" : null;
        }

        int sessionNumber = previous.Model.SessionCount + 1;
        context.Status($"Session {sessionNumber}: learning {session.Classes.Count} new class{(session.Classes.Count == 1 ? "" : "es")} ({string.Join(", ", session.Classes)}) " +
            $"from {shotFiles.Count} images on {Path.GetFileName(file.Path)} ({file.Classes.Count} classes)" +
            (previous.Model.ExemplarCount > 0 ? $", replaying {previous.Model.ExemplarCount} exemplars of earlier sessions" : "") +
            (s.TestFolder is not null && beyond.Count > 0 ? $"; {beyond.Count} images beyond the shots are not used" : "") + "…");

        var skipped = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning && e.Message.Contains("BadImagePolicy.Skip", StringComparison.Ordinal)) skipped.Add(e.RawMessage);
            else if (context.Verbose && e.Kind is Microsoft.ML.Runtime.ChannelMessageKind.Info or Microsoft.ML.Runtime.ChannelMessageKind.Warning
                     && e.Source.Contains("FlatMinima", StringComparison.Ordinal))
                context.Note($"[{e.Source}] {e.RawMessage}");
        };
        var rows = new ImageRows(shotFiles);
        var data = ml.Data.LoadFromEnumerable(rows);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue).Fit(data).Transform(data);
        var options = new FlatMinimaIncrementalFewShotTrainer.Options
        {
            ImageColumnName = file.ImageColumn,
            LabelColumnName = "Label",
            BadImagePolicy = BadImagePolicy.Skip,
            MaxShotsPerClass = s.Shots,
            Seed = s.Seed,
        };
        options.Session = options.Session with
        {
            Epochs = s.SessionEpochs ?? options.Session.Epochs,
            LearningRate = s.SessionLearningRate ?? options.Session.LearningRate,
        };
        if (s.Exemplars is int kept) options.ExemplarsPerClass = kept;

        var clock = Stopwatch.StartNew();
        using var next = ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(options).Fit(keyed, previous);
        double seconds = clock.Elapsed.TotalSeconds;
        foreach (string warning in skipped) context.Note($"warning: {warning}");
        foreach (var (path, reason) in rows.Unreadable) context.Note($"warning: could not read '{path}': {reason}");
        long shotsUsed = shotFiles.Count - TrainCommand.SkippedCount(skipped);
        var labelMap = next.MapLabelToKey(ml, "Label").Fit(data);
        var chain = new TransformerChain<ITransformer>(labelMap, next,
            ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(next.Transform(labelMap.Transform(data))));
        var added = next.ClassNames.Skip(file.Classes.Count).ToList();
        context.Line($"Session {sessionNumber}: {added.Count} new class{(added.Count == 1 ? "" : "es")} ({string.Join(", ", added)}) learned from {shotsUsed} images in {seconds:F1} s; " +
            $"the model now has {next.ClassCount} classes.");

        EvaluationResult? evaluation = null;
        GroupAccuracy? all = null, old = null, fresh = null, oldBefore = null;
        if (testName is not null)
        {
            var testRows = new ImageRows(testFiles);
            evaluation = EvaluationResult.Evaluate(ml, chain, next.ClassNames, testRows, testName);
            all = new GroupAccuracy(evaluation.MicroAccuracy, evaluation.Rows);
            old = Group(evaluation, 0, file.Classes.Count);
            fresh = Group(evaluation, file.Classes.Count, next.ClassCount);
            var oldFiles = testFiles.Where(f => file.Classes.Contains(f.Label)).ToList();
            if (oldFiles.Count > 0)
            {
                var before = EvaluationResult.Evaluate(ml, file.Model, file.Classes, new ImageRows(oldFiles), "the old classes' test images");
                oldBefore = new GroupAccuracy(before.MicroAccuracy, before.Rows);
            }
            context.Line();
            EvaluationText.Print(context, evaluation, char.ToUpperInvariant(testName[0]) + testName[1..]);
        }
        string? groups = testName is null ? null : GroupText(old, oldBefore, fresh, all);
        if (groups is not null)
        {
            context.Line();
            context.Line(groups.TrimEnd());
        }
        else context.Line("Not evaluated: no test images (pass --test <folder> with images of old and new classes, or give the new classes more images than --shots).");

        var c = CultureInfo.InvariantCulture;
        var sessionOptions = new Dictionary<string, string>
        {
            ["model"] = Path.GetFullPath(s.Model),
            ["folder"] = session.Root,
            ["test"] = s.TestFolder is null ? "the new classes' images beyond the shots" : Path.GetFullPath(s.TestFolder),
            ["shots"] = $"at most {s.Shots} per class (seed {s.Seed})",
            ["session epochs"] = options.Session.Epochs.ToString(c) + (options.Session.Epochs == 0 ? " (prototypes only)" : ""),
            ["session learning rate"] = options.Session.LearningRate.ToString("G4", c),
            ["session optimizer"] = $"SGD, momentum {options.Session.Momentum.ToString(c)}, weight decay {options.Session.WeightDecay.ToString("G3", c)}; range parameters clamped to ±b/2 around the base weights",
            ["exemplars"] = $"{options.ExemplarsPerClass} per new class kept for later sessions",
        };
        var record = new SessionRecord
        {
            Session = sessionNumber,
            Created = DateTimeOffset.UtcNow,
            ToolVersion = Tool.Version,
            NewClasses = added,
            Shots = shotsUsed,
            Options = sessionOptions,
            Test = testName,
            All = all,
            Old = old,
            OldBefore = oldBefore,
            New = fresh,
        };
        var baseRun = file.Run ?? new RunRecord { ToolVersion = Tool.Version, Created = DateTimeOffset.UtcNow };
        var incremental = baseRun.Incremental ?? new IncrementalRecord { BaseClasses = [.. file.Classes.Take(previous.Model.BaseClassCount)] };
        var run = baseRun with { Incremental = incremental with { Sessions = [.. incremental.Sessions, record] } };
        ModelFile.Save(ml, chain, file.InputSchema, s.Out, run);

        var network = next.Model.Backbone;
        ReportWriter.Write(reportFolder, new ReportContent
        {
            Title = $"flatminima add-classes: {Path.GetFileName(Path.GetFullPath(s.Out))}",
            Summary =
            [
                $"Base: {Path.GetFullPath(s.Model)}: {file.Classes.Count} classes ({string.Join(", ", file.Classes)}), {previous.Model.SessionCount} earlier session(s).",
                $"Session {sessionNumber}: {added.Count} new class{(added.Count == 1 ? "" : "es")} ({string.Join(", ", added)}) from {shotsUsed} images of {s.Folder}" +
                    (previous.Model.ExemplarCount > 0 ? $", {previous.Model.ExemplarCount} exemplars of earlier sessions replayed" : "") + $"; {seconds:F1} s.",
                $"Model: F2M on {network.Architecture}, {network.Channels}×{network.Height}×{network.Width} input; nearest prototype over {next.ClassCount} classes.",
                testName is null ? "Not evaluated: no test images." : $"Evaluated on {testName}.",
            ],
            Evaluation = evaluation,
            EvaluationName = testName is null ? "test data" : s.TestFolder is null ? "new classes, beyond the shots" : Path.GetFileName(Path.GetFullPath(s.TestFolder).TrimEnd(Path.DirectorySeparatorChar)),
            Sections = groups is null ? [] : [("Old and new classes", groups)],
            Options = sessionOptions,
        });
        string html = Path.Combine(Path.GetFullPath(reportFolder), ReportWriter.HtmlFile);
        context.Line();
        context.Line($"Model:  {Path.GetFullPath(s.Out)}");
        context.Line($"Report: {html}");
        if (context.Json)
            context.WriteJson(new
            {
                model = Path.GetFullPath(s.Out),
                report = html,
                classes = next.ClassNames,
                newClasses = added,
                session = record,
                test = evaluation,
            });
        return ExitCodes.Success;
    }

    private static void Check(AddClassesSettings s)
    {
        if (string.IsNullOrWhiteSpace(s.Out)) throw CliException.Usage("--out: give the model zip to write.", "e.g. --out next.zip");
        if (s.Shots < 1) throw CliException.Usage($"--shots {s.Shots}: must be at least 1.");
        if (s.SessionEpochs is < 0) throw CliException.Usage($"--session-epochs {s.SessionEpochs}: must be 0 (prototypes only) or more.");
        if (s.SessionLearningRate is double rate && !(rate > 0 && double.IsFinite(rate)))
            throw CliException.Usage($"--session-learning-rate {rate.ToString(CultureInfo.InvariantCulture)}: must be a positive number.");
        if (s.Exemplars is < 0) throw CliException.Usage($"--exemplars {s.Exemplars}: must be 0 or more.");
        if (!string.IsNullOrWhiteSpace(s.Model) && string.Equals(Path.GetFullPath(s.Model), Path.GetFullPath(s.Out), StringComparison.Ordinal))
            throw CliException.Usage($"--out '{s.Out}' is the --model file.", "Write the next model to a new file; the base model stays usable for other sessions.");
    }

    // Accuracy over the test images of the classes with score slots first..end-1 (the confusion matrix's rows).
    private static GroupAccuracy? Group(EvaluationResult e, int first, int end)
    {
        double correct = 0, total = 0;
        for (int i = first; i < end && i < e.Confusion.Count; i++)
        {
            correct += e.Confusion[i][i];
            total += e.Confusion[i].Sum();
        }
        return total == 0 ? null : new GroupAccuracy(correct / total, (long)total);
    }

    private static string GroupText(GroupAccuracy? old, GroupAccuracy? oldBefore, GroupAccuracy? fresh, GroupAccuracy? all)
    {
        var c = CultureInfo.InvariantCulture;
        static string A(GroupAccuracy? g, CultureInfo c) => g is null ? "–" : string.Format(c, "{0,7:P1}  ({1:N0} images)", g.Accuracy, g.Images);
        var lines = new List<string>
        {
            $"old classes  {A(old, c)}" + (oldBefore is null || old is null ? ""
                : string.Format(c, "   before the session {0:P1}, change {1:+0.0;−0.0;0.0} points", oldBefore.Accuracy, 100 * (old.Accuracy - oldBefore.Accuracy))),
            $"new classes  {A(fresh, c)}",
            $"all classes  {A(all, c)}",
        };
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }
}
