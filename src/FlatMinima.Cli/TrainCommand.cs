using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using FlatMinima.MLNet;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Pretrained;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms;

namespace FlatMinima.Cli;

/// <summary>The settings of <c>flatminima train</c>, as parsed.</summary>
public sealed record TrainSettings
{
    /// <summary>The training folder (one sub-folder per class).</summary>
    public required string Folder { get; init; }

    /// <summary>A separate test folder, or null to hold out <see cref="TestFraction"/>.</summary>
    public string? TestFolder { get; init; }

    /// <summary>Fraction of each class held out as the test part when there is no <see cref="TestFolder"/>.</summary>
    public double TestFraction { get; init; } = 0.2;

    /// <summary>sgd, sam or asam.</summary>
    public string Method { get; init; } = "sam";

    /// <summary>The neighbourhood radius ρ, or null for the method's default.</summary>
    public double? Rho { get; init; }

    /// <summary>none, swa, ema or swad.</summary>
    public string Averaging { get; init; } = "none";

    /// <summary>smallcnn, resnet20 or resnet18 (from random weights).</summary>
    public string Architecture { get; init; } = "smallcnn";

    /// <summary>resnet18-imagenet or a TorchVision ResNet-18 checkpoint path; null trains from random weights.</summary>
    public string? Pretrained { get; init; }

    /// <summary>Epochs, or null (then <see cref="Time"/>, else 10).</summary>
    public int? Epochs { get; init; }

    /// <summary>A wall-time budget the epoch count is fitted to, or null.</summary>
    public TimeSpan? Time { get; init; }

    /// <summary>Square model input side in pixels, or null (the median of the images; 224 with a pretrained backbone).</summary>
    public int? ImageSize { get; init; }

    /// <summary>none, standard or strong.</summary>
    public string Augment { get; init; } = "none";

    /// <summary>No horizontal flips in the augmentation (digits, text).</summary>
    public bool NoFlip { get; init; }

    /// <summary>Rows per batch, or null for the trainer's default (64).</summary>
    public int? BatchSize { get; init; }

    /// <summary>Peak learning rate, or null for the trainer's default.</summary>
    public double? LearningRate { get; init; }

    /// <summary>Seed of the split, the initialization and the shuffling.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>The model zip to write.</summary>
    public required string Out { get; init; }

    /// <summary>The report folder, or null for <c>&lt;out&gt;-report</c> next to the model.</summary>
    public string? Report { get; init; }

    /// <summary>Continue the run whose checkpoint is next to <see cref="Out"/>.</summary>
    public bool Resume { get; init; }

    /// <summary>Train an F2M incremental few-shot base model (<c>--incremental</c>) that <c>add-classes</c> extends.</summary>
    public bool Incremental { get; init; }

    /// <summary>With <see cref="Incremental"/>: the flat region's bound b, or null for the library's default (0.01).</summary>
    public double? Bound { get; init; }

    /// <summary>With <see cref="Incremental"/>: the last L convolutions whose weights form the flat region, or null for the library's default (4).</summary>
    public int? RangeLayers { get; init; }

    /// <summary>The command line, for the resume hint.</summary>
    public IReadOnlyList<string> Arguments { get; init; } = [];
}

/// <summary><c>flatminima train</c>: folder in; progress, test metrics, model zip and report out.</summary>
public static partial class TrainCommand
{
    private const string ImageColumn = nameof(ImageRow.Image);

    /// <summary>The checkpoint file of a run writing <paramref name="modelPath"/>.</summary>
    public static string CheckpointPath(string modelPath) => Path.GetFullPath(modelPath) + ".checkpoint";

    /// <summary>The default report folder of a run writing <paramref name="modelPath"/>.</summary>
    public static string DefaultReportFolder(string modelPath)
    {
        string full = Path.GetFullPath(modelPath);
        return Path.Combine(Path.GetDirectoryName(full)!, Path.GetFileNameWithoutExtension(full) + "-report");
    }

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(CliContext context, TrainSettings s)
    {
        Check(s);
        var trainFolder = ImageFolder.Read(s.Folder, "The training folder");
        var (trainFiles, testFiles, testName) = Split(trainFolder, s);
        string checkpoint = CheckpointPath(s.Out);
        CheckOutside(trainFolder.Root, s.Out, "--out");
        CheckOutside(trainFolder.Root, s.Report ?? DefaultReportFolder(s.Out), s.Report is null ? "--out (its report folder)" : "--report");
        Directory.CreateDirectory(Path.GetDirectoryName(checkpoint)!);
        if (File.Exists(checkpoint) && !s.Resume)
            throw CliException.Usage($"A checkpoint of an interrupted run exists: '{checkpoint}'.",
                "Add --resume (with the same options) to continue it, or delete the file to start afresh.");
        if (!File.Exists(checkpoint) && s.Resume)
            throw CliException.Usage($"--resume: there is no checkpoint '{checkpoint}' to resume.", "Run without --resume to start a new run.");

        var ml = new MLContext(seed: s.Seed);
        var skipped = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == ChannelMessageKind.Warning && e.Message.Contains("BadImagePolicy.Skip", StringComparison.Ordinal)) skipped.Add(e.RawMessage);
            else if (context.Verbose && e.Kind is ChannelMessageKind.Info or ChannelMessageKind.Warning && e.Source.Contains("FlatMinima", StringComparison.Ordinal))
                context.Note($"[{e.Source}] {e.RawMessage}");
        };
        var trainRows = new ImageRows(trainFiles);
        var testRows = new ImageRows(testFiles);
        var trainData = ml.Data.LoadFromEnumerable(trainRows);
        var testData = ml.Data.LoadFromEnumerable(testRows);
        var keyMap = ml.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue).Fit(trainData);
        var keyedTrain = keyMap.Transform(trainData);
        var keyedTest = keyMap.Transform(testData);

        var averaging = s.Incremental ? null : AveragingOptions(s.Averaging);
        bool heldOut = averaging is { NeedsValidation: true };
        string validationName = heldOut ? "validation (held out)" : testName;

        context.Status((s.Incremental ? "Training an incremental (F2M) base model" : "Training") + $" on {trainFiles.Count:N0} images of {trainFolder.Classes.Count} classes ({string.Join(", ", trainFolder.Classes)}); " +
            $"test: {testFiles.Count:N0} images ({testName})" + (trainFolder.IgnoredFiles > 0 ? $"; {trainFolder.IgnoredFiles} non-image files ignored" : "") + ".");

        var clock = Stopwatch.StartNew();
        int epochs = s.Epochs ?? 10;
        string? timeFit = null;
        if (s.Time is TimeSpan budget)
            (epochs, timeFit) = s.Incremental ? IncrementalTraining.FitEpochs(context, ml, s, trainFiles, budget, clock) : FitEpochs(context, ml, s, trainFiles, budget, clock);

        // The image classifier validates on the test part after every epoch; the F2M base session has no validation data.
        ImageTrainerOptions options = s.Incremental
            ? IncrementalTraining.BaseOptions(s, epochs, checkpoint, context)
            : Options(s, epochs, averaging, heldOut ? null : keyedTest, checkpoint, context);
        var reports = new List<EpochReport>();
        long trainImages = heldOut ? (long)Math.Round(trainFiles.Count * (1 - ((FlatMinimaImageClassificationTrainer.Options)options).ValidationFraction)) : trainFiles.Count;
        ImageScorer trained;
        var progress = new TrainingProgress(context, epochs, trainImages);
        try
        {
            trained = progress.Run(callback =>
            {
                options.Progress = r => { reports.Add(r); callback(r); };
                return options is FlatMinimaImageClassificationTrainer.Options o
                    ? ImageScorer.Of(ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(o).Fit(keyedTrain))
                    : ImageScorer.Of(ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot((FlatMinimaIncrementalFewShotTrainer.Options)options).Fit(keyedTrain));
            });
        }
        catch (OperationCanceledException)
        {
            if (File.Exists(checkpoint))
                throw new CliException(ExitCodes.Cancelled, $"Training stopped (Ctrl+C) before an epoch completed; the checkpoint '{checkpoint}' is kept.",
                    $"Resume with: {ResumeCommand(s, epochs)}");
            throw new CliException(ExitCodes.Cancelled, "Training stopped (Ctrl+C) before the first epoch completed; nothing was saved.",
                "Run the command again to start over.");
        }
        catch (TrainingDivergedException e)
        {
            throw new CliException(ExitCodes.TrainingFailed, e.Message, "Try --learning-rate with a smaller value, or --method sgd.", e);
        }
        var trainingTime = clock.Elapsed;
        // An incremental model maps the labels in its own class order (its sessions append classes), the same order here.
        ITransformer labelMap = trained.Incremental is { } f2m ? f2m.MapLabelToKey(ml, "Label").Fit(trainData) : keyMap;
        var model = new TransformerChain<ITransformer>(labelMap, trained.Scorer,
            ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(trained.Scorer.Transform(labelMap.Transform(trainData))));
        try
        {
            var last = reports.LastOrDefault();
            var interruption = last?.Interruption;
            long skippedTrain = SkippedCount(skipped);
            foreach (string warning in skipped) context.Note($"warning: {warning}");
            foreach (var (file, reason) in trainRows.Unreadable.Concat(testRows.Unreadable)) context.Note($"warning: could not read '{file}': {reason}");

            EvaluationResult? evaluation = null;
            if (interruption is null || !context.Cancellation.IsCancellationRequested)
            {
                context.Line();
                evaluation = EvaluationResult.Evaluate(ml, model, trained.Classes, testRows, testName);
                EvaluationText.Print(context, evaluation, char.ToUpperInvariant(testName[0]) + testName[1..]);
            }
            var classifier = trained.Network;
            var record = new RunRecord
            {
                ToolVersion = Tool.Version,
                Created = DateTimeOffset.UtcNow,
                Options = OptionTable(s, epochs, timeFit, classifier, options),
                TrainImages = trainFiles.Count - skippedTrain,
                TestImages = testFiles.Count,
                SkippedImages = skippedTrain + (evaluation?.Skipped ?? 0),
                EpochsCompleted = interruption?.ReturnedEpoch ?? last?.Epoch ?? 0,
                Interruption = interruption?.ToString(),
                Averaging = last?.Averaging?.ToString(),
                TrainingSeconds = trainingTime.TotalSeconds,
                Test = evaluation?.Summary,
                Incremental = s.Incremental ? new IncrementalRecord { BaseClasses = [.. trained.Classes] } : null,
            };
            ModelFile.Save(ml, model, trainData.Schema, s.Out, record);
            string reportFolder = s.Report ?? DefaultReportFolder(s.Out);
            double stepsPerEpoch = Math.Max(1, Math.Ceiling(trainImages / (double)options.BatchSize));
            ReportWriter.Write(reportFolder, new ReportContent
            {
                Title = $"flatminima train: {Path.GetFileName(Path.GetFullPath(s.Out))}",
                Summary = Summary(trainFolder, s.Folder, trainFiles.Count, testFiles.Count, testName, record, classifier, timeFit),
                Evaluation = evaluation,
                EvaluationName = testName,
                Epochs = reports,
                ValidationName = validationName,
                Averaging = last?.Averaging is { } a ? (a, stepsPerEpoch) : null,
                Options = record.Options,
            });
            string html = Path.Combine(Path.GetFullPath(reportFolder), ReportWriter.HtmlFile);
            string? resume = interruption is null ? null : ResumeCommand(s, epochs);
            context.Line();
            context.Line($"Model:  {Path.GetFullPath(s.Out)}");
            context.Line($"Report: {html}");
            if (interruption is not null)
            {
                bool diverged = interruption.Reason == TrainingInterruptionReason.Diverged;
                context.Line($"Stopped at epoch {interruption.Epoch}, batch {interruption.Batch} ({(diverged ? "the loss diverged" : "Ctrl+C")}); " +
                    $"the model holds epoch {interruption.ReturnedEpoch}." + (File.Exists(checkpoint) ? $" Checkpoint: {checkpoint}" : ""));
                if (File.Exists(checkpoint) && !diverged) context.Line($"Resume with: {resume}");
            }
            if (context.Json)
                context.WriteJson(new
                {
                    model = Path.GetFullPath(s.Out),
                    report = html,
                    checkpoint = File.Exists(checkpoint) ? checkpoint : null,
                    resumeCommand = File.Exists(checkpoint) ? resume : null,
                    classes = trained.Classes,
                    run = record,
                    epochs = reports.Select(r => new
                    {
                        r.Epoch, r.TrainLoss, r.TrainAccuracy, r.ValidationLoss, r.ValidationAccuracy, r.LearningRate, seconds = r.Elapsed.TotalSeconds,
                    }),
                    test = evaluation,
                });
            if (interruption is null) return ExitCodes.Success;
            return interruption.Reason == TrainingInterruptionReason.Diverged ? ExitCodes.TrainingFailed : ExitCodes.Cancelled;
        }
        finally
        {
            trained.Dispose();
        }
    }

    internal static void Check(TrainSettings s)
    {
        IncrementalTraining.Check(s);
        if (string.IsNullOrWhiteSpace(s.Out)) throw CliException.Usage("--out: give the model zip to write.", "e.g. --out model.zip");
        if (s.Epochs is not null && s.Time is not null) throw CliException.Usage("--epochs and --time exclude each other.", "Give one: --epochs 10 or --time 10m.");
        if (s.Epochs is < 1) throw CliException.Usage($"--epochs {s.Epochs}: must be at least 1.");
        if (s.Time is TimeSpan t && t <= TimeSpan.Zero) throw CliException.Usage("--time must be positive.", "e.g. --time 90s, --time 10m, --time 1h30m");
        if (!(s.TestFraction > 0 && s.TestFraction < 1)) throw CliException.Usage($"--test-fraction {s.TestFraction.ToString(CultureInfo.InvariantCulture)}: must be between 0 and 1 (exclusive).");
        if (s.ImageSize is < 8 or > 1024) throw CliException.Usage($"--image-size {s.ImageSize}: must be 8 to 1024 pixels.");
        if (s.BatchSize is < 1) throw CliException.Usage($"--batch-size {s.BatchSize}: must be at least 1.");
    }

    // The model, checkpoint and report must not land in the training folder, where a later run would read them as a class.
    internal static void CheckOutside(string folder, string path, string option)
    {
        string full = Path.GetFullPath(path);
        if (full.StartsWith(folder.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw CliException.Usage($"{option} '{path}' is inside the training folder '{folder}'.",
                "Write the model and the report outside the image folders (a sub-folder there would be read as a class).");
    }

    // The training and test files: the --test folder, or a stratified random fraction of each class (seeded).
    internal static (IReadOnlyList<LabeledFile> Train, IReadOnlyList<LabeledFile> Test, string TestName) Split(ImageFolder folder, TrainSettings s)
    {
        if (s.TestFolder is not null)
        {
            var test = ImageFolder.Read(s.TestFolder, "--test", minClasses: 1);
            var unknown = test.Classes.Except(folder.Classes).ToList();
            if (unknown.Count > 0)
                throw CliException.DataError($"--test '{s.TestFolder}': class{(unknown.Count > 1 ? "es" : "")} {string.Join(", ", unknown.Select(u => $"'{u}'"))} " +
                    "have no training images.", "The test folder's sub-folders must be classes of the training folder.");
            return (folder.Files, test.Files, $"test folder {s.TestFolder}");
        }
        var random = new Random(s.Seed);
        var train = new List<LabeledFile>();
        var held = new List<LabeledFile>();
        foreach (var group in folder.Files.GroupBy(f => f.Label))
        {
            var files = group.ToArray();
            random.Shuffle(files);
            int n = files.Length < 2 ? 0 : Math.Clamp((int)Math.Round(files.Length * s.TestFraction), 1, files.Length - 1);
            held.AddRange(files.Take(n));
            train.AddRange(files.Skip(n));
        }
        if (held.Count == 0)
            throw CliException.DataError($"--test-fraction {s.TestFraction.ToString(CultureInfo.InvariantCulture)} of '{s.Folder}' leaves no test images.",
                "Add images (at least two per class), or give a --test folder.");
        static List<LabeledFile> Ordered(List<LabeledFile> files) =>
            files.OrderBy(f => f.Label, StringComparer.Ordinal).ThenBy(f => f.Path, StringComparer.Ordinal).ToList();
        return (Ordered(train), Ordered(held), $"test part, {s.TestFraction.ToString("P0", CultureInfo.InvariantCulture)} held out");
    }

    private static WeightAveragingOptions? AveragingOptions(string name) => name switch
    {
        "none" => null,
        "swa" => WeightAveragingOptions.Swa(),
        "ema" => WeightAveragingOptions.Ema(),
        "swad" => WeightAveragingOptions.Swad(),
        _ => throw CliException.Usage($"--averaging {name}: unknown; use none, swa, ema or swad."),
    };

    private static FlatMinimaImageClassificationTrainer.Options Options(TrainSettings s, int epochs, WeightAveragingOptions? averaging, IDataView? validation,
        string? checkpoint, CliContext context)
    {
        var o = new FlatMinimaImageClassificationTrainer.Options
        {
            ImageColumnName = ImageColumn,
            LabelColumnName = "Label",
            Epochs = epochs,
            Seed = s.Seed,
            SharpnessAware = s.Method switch
            {
                "sgd" => null,
                "sam" => SharpnessAwareOptions.Sam(s.Rho ?? SharpnessAwareOptions.DefaultRho),
                "asam" => SharpnessAwareOptions.Asam(s.Rho ?? SharpnessAwareOptions.DefaultAdaptiveRho),
                _ => throw CliException.Usage($"--method {s.Method}: unknown; use sgd, sam or asam."),
            },
            Averaging = averaging,
            Architecture = ArchitectureOf(s),
            Augmentation = AugmentationOf(s),
            BadImagePolicy = BadImagePolicy.Skip,
            ValidationSet = validation,
            CheckpointPath = checkpoint,
            OnFailure = TrainingFailurePolicy.ReturnLastGoodEpoch,
            CancellationToken = context.Cancellation,
            ImageHeight = s.ImageSize,
            ImageWidth = s.ImageSize,
        };
        if (s.Method == "sgd" && s.Rho is not null) throw CliException.Usage("--rho applies to --method sam or asam.");
        if (s.BatchSize is int batch) o.BatchSize = batch;
        if (s.LearningRate is double rate) o.LearningRate = rate;
        if (s.Pretrained is string pretrained) o.Backbone = Backbone(pretrained);
        return o;
    }

    /// <summary>The network of <c>--architecture</c>.</summary>
    internal static ImageClassifierArchitecture ArchitectureOf(TrainSettings s) => s.Architecture switch
    {
        "smallcnn" => ImageClassifierArchitecture.SmallCnn,
        "resnet20" => ImageClassifierArchitecture.ResNet20,
        "resnet18" => ImageClassifierArchitecture.ResNet18,
        _ => throw CliException.Usage($"--architecture {s.Architecture}: unknown; use smallcnn, resnet20 or resnet18."),
    };

    /// <summary>The augmentation of <c>--augment</c> and <c>--no-flip</c>.</summary>
    internal static AugmentationOptions? AugmentationOf(TrainSettings s) => s.Augment switch
    {
        "none" => null,
        "standard" => AugmentationOptions.Standard(flip: !s.NoFlip),
        "strong" => AugmentationOptions.Strong(flip: !s.NoFlip),
        _ => throw CliException.Usage($"--augment {s.Augment}: unknown; use none, standard or strong."),
    };

    /// <summary>The pretrained backbone named by <c>--pretrained</c>: resnet18-imagenet or a TorchVision ResNet-18 checkpoint file.</summary>
    internal static PretrainedBackbone Backbone(string pretrained) =>
        pretrained.Equals("resnet18-imagenet", StringComparison.OrdinalIgnoreCase)
            ? PretrainedBackbone.ResNet18ImageNet()
            : File.Exists(pretrained)
                ? PretrainedBackbone.FromPyTorch(pretrained, TorchVisionResNet.ResNet18)
                : throw CliException.Usage($"--pretrained '{pretrained}': neither resnet18-imagenet nor an existing checkpoint file.",
                    "Use --pretrained resnet18-imagenet, or the path of a TorchVision ResNet-18 state_dict (.pt, .pth, .safetensors).");

    // --time: two epochs on a stratified sample are trained and the second is timed (the first also pays for warm-up:
    // JIT, libtorch's first allocations); its time and the reading time are scaled to the training set, and the run gets
    // the epochs that fit in what is left of the budget.
    private static (int Epochs, string Description) FitEpochs(CliContext context, MLContext ml, TrainSettings s, IReadOnlyList<LabeledFile> files,
        TimeSpan budget, Stopwatch clock) =>
        FitEpochs(context, ml, s, files, budget, clock, (keyed, progress) =>
        {
            var options = Options(s, 2, null, null, null, context);
            options.Progress = progress;
            options.OnFailure = TrainingFailurePolicy.Throw;
            return ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options).Fit(keyed);
        });

    /// <summary>Fits the epoch count to <paramref name="budget"/>: <paramref name="trainTwoEpochs"/> trains two epochs on a
    /// stratified sample (keyed label) reporting each epoch; the second epoch's time is scaled to the training set.</summary>
    internal static (int Epochs, string Description) FitEpochs(CliContext context, MLContext ml, TrainSettings s, IReadOnlyList<LabeledFile> files,
        TimeSpan budget, Stopwatch clock, Func<IDataView, Action<EpochReport>, IDisposable> trainTwoEpochs)
    {
        int sampleSize = Math.Min(files.Count, Math.Max(256, files.Count / 10));
        var random = new Random(s.Seed);
        var sample = files.GroupBy(f => f.Label)
            .SelectMany(g => g.OrderBy(_ => random.Next()).Take(Math.Max(2, (int)Math.Round(g.Count() * sampleSize / (double)files.Count))))
            .ToList();
        var data = ml.Data.LoadFromEnumerable(new ImageRows(sample));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue).Fit(data).Transform(data);
        var epochTimes = new List<TimeSpan>();
        context.Status($"--time {Format(budget)}: timing two epochs on {sample.Count:N0} of {files.Count:N0} training images…");
        var probeClock = Stopwatch.StartNew();
        using (trainTwoEpochs(keyed, r => epochTimes.Add(r.Elapsed))) { }
        double scale = files.Count / (double)sample.Count;
        double perEpoch = epochTimes[^1].TotalSeconds * scale;
        double reading = Math.Max(0, probeClock.Elapsed.TotalSeconds - epochTimes.Sum(t => t.TotalSeconds)) * scale;
        double left = budget.TotalSeconds - clock.Elapsed.TotalSeconds - reading;
        int epochs = Math.Clamp((int)Math.Floor(left / perEpoch), 1, 10_000);
        string description = string.Create(CultureInfo.InvariantCulture,
            $"--time {Format(budget)}: one epoch ≈ {perEpoch:F1} s (the second of two on {sample.Count} images, scaled), reading ≈ {reading:F1} s → {epochs} epoch{(epochs == 1 ? "" : "s")}");
        context.Status(description);
        return (epochs, description);
    }

    internal static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s" : $"{t.TotalSeconds:0}s";

    internal static long SkippedCount(IEnumerable<string> warnings) =>
        warnings.Select(w => SkipPattern().Match(w)).Where(m => m.Success).Sum(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));

    [GeneratedRegex(@"left out (\d+) of (\d+) rows of the training data")]
    private static partial Regex SkipPattern();

    private static Dictionary<string, string> OptionTable(TrainSettings s, int epochs, string? timeFit, FlatMinimaImageClassifier model,
        ImageTrainerOptions options)
    {
        var table = options is FlatMinimaImageClassificationTrainer.Options o ? Table(s, o) : IncrementalTraining.BaseTable((FlatMinimaIncrementalFewShotTrainer.Options)options);
        table["architecture"] = model.Architecture;
        table["pretrained"] = s.Pretrained ?? "none";
        table["epochs"] = epochs.ToString(CultureInfo.InvariantCulture) + (timeFit is null ? "" : $" ({timeFit})");
        table["image size"] = $"{model.Channels}×{model.Height}×{model.Width}" + (s.ImageSize is null ? " (chosen from the images)" : "");
        table["augmentation"] = model.Augmentation ?? "none";
        table["batch size"] = options.BatchSize.ToString(CultureInfo.InvariantCulture);
        table["learning rate"] = options.LearningRate.ToString("G4", CultureInfo.InvariantCulture);
        table["optimizer"] = $"{options.Optimizer}, momentum {options.Momentum.ToString(CultureInfo.InvariantCulture)}, weight decay {options.WeightDecay.ToString("G3", CultureInfo.InvariantCulture)}";
        table["seed"] = s.Seed.ToString(CultureInfo.InvariantCulture);
        table["parameters"] = model.ParameterCount.ToString("N0", CultureInfo.InvariantCulture);
        return new Dictionary<string, string> { ["folder"] = Path.GetFullPath(s.Folder), ["test"] = s.TestFolder is null
            ? $"--test-fraction {s.TestFraction.ToString(CultureInfo.InvariantCulture)}" : Path.GetFullPath(s.TestFolder) }
            .Concat(table).ToDictionary();
    }

    private static Dictionary<string, string> Table(TrainSettings s, FlatMinimaImageClassificationTrainer.Options o) => new()
    {
        ["method"] = o.SharpnessAware is { } sam
            ? $"{(sam.Adaptive ? "asam" : "sam")} (ρ {sam.Rho.ToString(CultureInfo.InvariantCulture)}" + (sam.Adaptive ? $", η {sam.Eta.ToString(CultureInfo.InvariantCulture)})" : ")")
            : "sgd (base optimizer only)",
        ["averaging"] = o.Averaging is null ? "none" : s.Averaging + (o.Averaging.NeedsValidation ? $" (window chosen on {o.ValidationFraction:P0} of the training images held out)" : ""),
    };

    private static List<string> Summary(ImageFolder folder, string displayFolder, int train, int test, string testName, RunRecord record, FlatMinimaImageClassifier model, string? timeFit)
    {
        var lines = new List<string>
        {
            $"Data: {displayFolder}: {folder.Classes.Count} classes, {train:N0} training images, {test:N0} test images ({testName})" +
                (record.SkippedImages > 0 ? $", {record.SkippedImages} unreadable images left out" : "") + ".",
            $"Model: {model.Architecture}, {model.Channels}×{model.Height}×{model.Width} input, {model.ParameterCount:N0} parameters; {record.Options["method"]}" +
                (record.Options.TryGetValue("averaging", out var averaging) ? $"; averaging {averaging}." : "."),
            $"Training: {record.EpochsCompleted} epochs in {record.TrainingSeconds:F1} s" + (timeFit is null ? "." : $" ({timeFit})."),
        };
        if (record.Averaging is not null) lines.Add($"Averaging: {record.Averaging}");
        if (record.Interruption is not null) lines.Add($"Stopped early: {record.Interruption}");
        return lines;
    }

    // The command line that continues the run: the same arguments with --time replaced by the epochs it was fitted to
    // (the checkpoint records the epoch count), and --resume.
    internal static string ResumeCommand(TrainSettings s, int epochs)
    {
        var args = new List<string>();
        for (int i = 0; i < s.Arguments.Count; i++)
        {
            string a = s.Arguments[i];
            if (a == "--time") { i++; continue; }
            if (a.StartsWith("--time=", StringComparison.Ordinal) || a == "--resume") continue;
            args.Add(a);
        }
        if (s.Time is not null) args.AddRange(["--epochs", epochs.ToString(CultureInfo.InvariantCulture)]);
        args.Add("--resume");
        return "flatminima " + string.Join(" ", args.Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) || a.Contains('"') ? "\"" + a.Replace("\"", "\\\"") + "\"" : a));
    }
}
