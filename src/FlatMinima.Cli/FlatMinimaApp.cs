using System;
using System.Collections.Generic;
using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using FlatMinima.Torch.Training;
using Spectre.Console;

namespace FlatMinima.Cli;

/// <summary>
/// The <c>flatminima</c> command line: parses the arguments (System.CommandLine), runs the command and maps failures to
/// one readable error line, a hint and an exit code (<see cref="ExitCodes"/>). Callable in-process with any console
/// and writers, so the commands can be tested without a child process.
/// </summary>
public static partial class FlatMinimaApp
{
    /// <summary>Runs <paramref name="args"/> with plain-text output to <paramref name="output"/> and errors to <paramref name="error"/>.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error, CancellationToken cancellation = default) =>
        Run(args, AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        }), error, cancellation);

    /// <summary>Runs <paramref name="args"/> on <paramref name="console"/> (a live display when it is an interactive terminal); returns the exit code.</summary>
    public static int Run(string[] args, IAnsiConsole console, TextWriter error, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        var context = new CliContext(console, error, cancellation);
        var root = BuildCommands(context, args);
        var invocation = new InvocationConfiguration
        {
            Output = context.Out,
            Error = error,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,
        };
        if (args.Length == 0)
        {
            root.Parse(["--help"]).Invoke(invocation);   // no command: the overview, as a usage error
            return ExitCodes.UsageError;
        }
        var parse = root.Parse(args);
        context.Json = parse.GetValue<bool>("--json");
        context.Verbose = parse.GetValue<bool>("--verbose");
        if (parse.Errors.Count > 0)
        {
            string command = parse.CommandResult.Command == root ? "" : " " + parse.CommandResult.Command.Name;
            return Fail(context, CliException.Usage(string.Join("; ", parse.Errors.Select(e => e.Message).Distinct()), $"See flatminima{command} --help."));
        }
        return parse.Invoke(invocation);
    }

    private static RootCommand BuildCommands(CliContext context, string[] args)
    {
        var json = new Option<bool>("--json") { Description = "Write one JSON document to standard output (for scripts).", Recursive = true };
        var verbose = new Option<bool>("--verbose") { Description = "Show the library's log and the stack of errors.", Recursive = true };
        var root = new RootCommand("flatminima: flat-minimum image classification (SAM, ASAM, SWA, EMA, SWAD) from folders of images.");
        root.Options.Add(json);
        root.Options.Add(verbose);
        root.Subcommands.Add(Train(context, args));
        root.Subcommands.Add(EvaluateCommand.Create(context));
        root.Subcommands.Add(PredictCommand.Create(context));
        root.Subcommands.Add(InfoCommand.Create(context));
        root.Subcommands.Add(CodegenCommand.Create(context));
        root.Subcommands.Add(SharpnessCommand.Create(context));
        root.Subcommands.Add(AddClassesCommand.Create(context));
        return root;
    }

    private static Command Train(CliContext context, string[] args)
    {
        var folder = new Argument<string>("folder") { Description = "Training images: one sub-folder per class (folder/cat/1.jpg, folder/dog/2.jpg)." };
        var test = new Option<string?>("--test") { Description = "A test folder with the same class sub-folders (instead of --test-fraction)." };
        var testFraction = new Option<double>("--test-fraction") { Description = "Fraction of each class held out for testing.", DefaultValueFactory = _ => 0.2 };
        var method = Choice("--method", "The gradient step: sgd (plain), sam or asam (sharpness-aware).", "sam", "sgd", "sam", "asam");
        var rho = new Option<double?>("--rho") { Description = "SAM/ASAM neighbourhood radius ρ (default 0.05 for sam, 0.5 for asam)." };
        var averaging = Choice("--averaging", "Weight averaging: none, swa, ema or swad (swad holds out 20 % of the training images for its window).", "none", "none", "swa", "ema", "swad");
        var architecture = Choice("--architecture", "The network trained from random weights (default smallcnn; resnet20 with --incremental).", "smallcnn", "smallcnn", "resnet20", "resnet18");
        var pretrained = new Option<string?>("--pretrained") { Description = "Start from a pretrained ResNet-18: resnet18-imagenet, or a TorchVision ResNet-18 checkpoint (.pt, .pth, .safetensors)." };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs (default 10)." };
        var time = new Option<string?>("--time") { Description = "Time budget instead of --epochs: 90s, 10m, 1h30m; the epochs are fitted from two timed epochs on a sample." };
        var imageSize = new Option<int?>("--image-size") { Description = "Model input side in pixels (default: the images' median size; 224 with --pretrained)." };
        var augment = Choice("--augment", "Data augmentation of the training batches.", "none", "none", "standard", "strong");
        var noFlip = new Option<bool>("--no-flip") { Description = "No horizontal flips in --augment (digits, text)." };
        var batchSize = new Option<int?>("--batch-size") { Description = "Images per batch (default 64)." };
        var learningRate = new Option<double?>("--learning-rate") { Description = "Peak learning rate (default 0.05)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the split, the initialization and the shuffling.", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "The model zip to write.", Required = true };
        var report = new Option<string?>("--report") { Description = "The report folder (default: <out>-report next to the model)." };
        var resume = new Option<bool>("--resume") { Description = "Continue the interrupted run whose checkpoint (<out>.checkpoint) is next to the model." };
        var incremental = new Option<bool>("--incremental") { Description = "Train an F2M incremental few-shot base model (flat-region search, nearest-prototype classifier) that add-classes extends." };
        var bound = new Option<double?>("--bound") { Description = "With --incremental: the flat region's bound b (default 0.01)." };
        var rangeLayers = new Option<int?>("--range-layers") { Description = "With --incremental: the last L convolutions whose weights form the flat region (default 4)." };
        var command = new Command("train", "Train a classifier on a folder of images; write the model zip and a report.");
        command.Arguments.Add(folder);
        foreach (var option in new Option[] { test, testFraction, method, rho, averaging, architecture, pretrained, epochs, time, imageSize, augment, noFlip,
                     batchSize, learningRate, seed, output, report, resume, incremental, bound, rangeLayers })
            command.Options.Add(option);
        command.SetAction(p => Execute(context, () =>
        {
            if (p.GetResult(test) is not null && p.GetResult(testFraction) is { Implicit: false })
                throw CliException.Usage("--test and --test-fraction exclude each other.", "Give a test folder, or the fraction of the training folder to hold out.");
            if (p.GetValue(incremental))
                foreach (var option in new Option[] { method, rho, averaging })
                    if (p.GetResult(option) is { Implicit: false })
                        throw CliException.Usage($"{option.Name} does not apply to --incremental: {IncrementalTraining.NotApplicable}.",
                            $"Leave out {option.Name}; --bound and --range-layers set the flat region.");
            var settings = new TrainSettings
            {
                Folder = p.GetRequiredValue(folder),
                TestFolder = p.GetValue(test),
                TestFraction = p.GetValue(testFraction),
                Method = p.GetValue(method)!,
                Rho = p.GetValue(rho),
                Averaging = p.GetValue(averaging)!,
                // F2M's reference network is ResNet-20 (the library's default for incremental few-shot); SmallCnn's two convolutions make a poor flat region.
                Architecture = p.GetValue(incremental) && p.GetResult(architecture) is null or { Implicit: true } ? "resnet20" : p.GetValue(architecture)!,
                Pretrained = p.GetValue(pretrained),
                Epochs = p.GetValue(epochs),
                Time = p.GetValue(time) is string t ? ParseDuration(t) : null,
                ImageSize = p.GetValue(imageSize),
                Augment = p.GetValue(augment)!,
                NoFlip = p.GetValue(noFlip),
                BatchSize = p.GetValue(batchSize),
                LearningRate = p.GetValue(learningRate),
                Seed = p.GetValue(seed),
                Out = p.GetRequiredValue(output),
                Report = p.GetValue(report),
                Resume = p.GetValue(resume),
                Incremental = p.GetValue(incremental),
                Bound = p.GetValue(bound),
                RangeLayers = p.GetValue(rangeLayers),
                Arguments = args,
            };
            return TrainCommand.Run(context, settings);
        }));
        return command;
    }

    /// <summary>An option whose value must be one of <paramref name="choices"/>.</summary>
    internal static Option<string> Choice(string name, string description, string defaultValue, params string[] choices)
    {
        var option = new Option<string>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.AcceptOnlyFromAmong(choices);
        return option;
    }

    /// <summary>Parses a duration: 90s, 10m, 1h30m, 1.5h, or hh:mm:ss.</summary>
    public static TimeSpan ParseDuration(string text)
    {
        var match = DurationPattern().Match(text.Trim());
        if (match.Success && match.Groups.Cast<Group>().Skip(1).Any(g => g.Success))
        {
            double Part(int i) => match.Groups[i].Success ? double.Parse(match.Groups[i].Value, CultureInfo.InvariantCulture) : 0;
            return TimeSpan.FromHours(Part(1)) + TimeSpan.FromMinutes(Part(2)) + TimeSpan.FromSeconds(Part(3));
        }
        if (text.Contains(':') && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span)) return span;
        throw CliException.Usage($"--time '{text}': not a duration.", "Use e.g. 90s, 10m, 1h30m or 00:10:00.");
    }

    [GeneratedRegex(@"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")]
    private static partial Regex DurationPattern();

    /// <summary>Runs a command body, turning its failures into an error line, a hint and an exit code.</summary>
    internal static int Execute(CliContext context, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            return Fail(context, Classify(e));
        }
    }

    private static CliException Classify(Exception e)
    {
        while (e is System.Reflection.TargetInvocationException { InnerException: { } inner }) e = inner;
        return e switch
        {
            CliException cli => cli,
            OperationCanceledException => new CliException(ExitCodes.Cancelled, "Stopped (Ctrl+C).", null, e),
            TrainingDivergedException => new CliException(ExitCodes.TrainingFailed, e.Message, "Try a smaller --learning-rate, or --method sgd.", e),
            FileNotFoundException f => CliException.DataError(f.Message, f.Message.Contains("Microsoft.ML.DnnImageFeaturizer.ResNet18", StringComparison.Ordinal)
                ? "resnet18-imagenet needs the ONNX files of that package next to the tool." : null, e),
            InvalidDataException => CliException.DataError(e.Message, null, e),
            ArgumentException => new CliException(ExitCodes.UsageError, e.Message, "Check the option named in the message (flatminima <command> --help).", e),
            InvalidOperationException => new CliException(ExitCodes.TrainingFailed, e.Message, "Run with --verbose for the library's log.", e),
            IOException or UnauthorizedAccessException => CliException.DataError(e.Message, "Check the path and its permissions.", e),
            _ => new CliException(ExitCodes.InternalError, $"{e.GetType().Name}: {e.Message}", "Run with --verbose for the stack, and report it if it persists.", e),
        };
    }

    private static int Fail(CliContext context, CliException e)
    {
        string message = OneLine(e.Message);
        context.Error.WriteLine($"error: {message}");
        if (e.Hint is not null) context.Error.WriteLine($"hint: {OneLine(e.Hint)}");
        if (context.Verbose && e.InnerException is not null) context.Error.WriteLine(e.InnerException.ToString());
        if (context.Json) context.WriteJson(new { error = message, hint = e.Hint, exitCode = e.ExitCode });
        return e.ExitCode;
    }

    private static string OneLine(string text) => string.Join(" ", text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
}
