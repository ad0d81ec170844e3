using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;

namespace FlatMinima.Benchmarks;

internal sealed record BenchmarkOptions(string[] Modes, int Threads, int CnnSteps, int ResNetSteps, int Images, bool Mallopt,
    string FashionMnist, string? PeerBench)
{
    public DomainGeneralizationOptions DomainGeneralization { get; init; } = DomainGeneralizationOptions.Reduced;

    public IncrementalOptions Incremental { get; init; } = IncrementalOptions.Reduced with { Preset = "reduced" };

    /// <summary>Parts of the hessian mode: hvp (HVP vs gradient), lanczos, power, trace.</summary>
    public string[] HessianParts { get; init; } = { "hvp", "lanczos", "power", "trace" };

    /// <summary>Epochs of each run of the augmentation-accuracy mode.</summary>
    public int AugmentationEpochs { get; init; } = 12;

    /// <summary>Seeds of the augmentation-accuracy mode.</summary>
    public int[] AugmentationSeeds { get; init; } = { 1, 2, 3 };

    /// <summary>Epochs of each run of the efficient-sam mode (--esam-epochs).</summary>
    public int EfficientSamEpochs { get; init; } = 12;

    /// <summary>Seeds of the efficient-sam mode (--esam-seeds).</summary>
    public int[] EfficientSamSeeds { get; init; } = { 1, 2, 3 };

    /// <summary>ResNet-18 step benchmark: input size, batch and rounds (--resnet18-size, --resnet18-batch, --resnet18-rounds).</summary>
    public int ResNet18Size { get; init; } = 112;

    /// <inheritdoc cref="ResNet18Size"/>
    public int ResNet18Batch { get; init; } = 32;

    /// <inheritdoc cref="ResNet18Size"/>
    public int ResNet18Rounds { get; init; } = 8;

    /// <summary>The precision mode: timed rounds, warm-up rounds and models (--precision-rounds, --precision-warmup, --precision-models).</summary>
    public int PrecisionRounds { get; init; } = 6;

    /// <inheritdoc cref="PrecisionRounds"/>
    public int PrecisionWarmup { get; init; } = 2;

    /// <inheritdoc cref="PrecisionRounds"/>
    public string[] PrecisionModels { get; init; } = PrecisionBenchmark.AllModels;

    /// <summary>The precision-runs mode: input side, synthetic images, epochs and methods (--precision-run-size, --precision-run-images,
    /// --precision-run-epochs, --precision-run-methods); the batch is --resnet18-batch.</summary>
    public int PrecisionRunSize { get; init; } = 112;

    /// <inheritdoc cref="PrecisionRunSize"/>
    public int PrecisionRunImages { get; init; } = 640;

    /// <inheritdoc cref="PrecisionRunSize"/>
    public int PrecisionRunEpochs { get; init; } = 2;

    /// <inheritdoc cref="PrecisionRunSize"/>
    public string[] PrecisionRunMethods { get; init; } = PrecisionBenchmark.DefaultRunMethods;

    /// <summary>The onnx-scoring mode: test images scored, architecture and interleaved rounds (--onnx-images, --onnx-arch, --onnx-rounds).</summary>
    public int OnnxImages { get; init; } = 10000;

    /// <inheritdoc cref="OnnxImages"/>
    public FlatMinima.Torch.Models.ImageClassifierArchitecture OnnxArchitecture { get; init; } = FlatMinima.Torch.Models.ImageClassifierArchitecture.SmallCnn;

    /// <inheritdoc cref="OnnxImages"/>
    public int OnnxRounds { get; init; } = 3;

    /// <summary>The repository root (found from the working folder upwards; for benchmarks/peer scripts).</summary>
    public string RepoRoot { get; init; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var dir = new System.IO.DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
            if (System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "FlatMinima.MLNet.sln"))) return dir.FullName;
        return Environment.CurrentDirectory;
    }

    /// <summary>Generated 224×224 JPEGs in the streaming step-time comparison (--stream-photos).</summary>
    public int StreamingPhotos { get; init; } = 512;

    /// <summary>Alternating rounds of the streaming comparison (--stream-rounds).</summary>
    public int StreamingRounds { get; init; } = 2;

    /// <summary>Settings of the transfer mode (--transfer-k, --transfer-seeds, --transfer-size, --transfer-methods, --transfer-out, …).</summary>
    public TransferOptions Transfer { get; init; } = new();

    /// <summary>The label-noise, clean-budget and domain-generalization modes print their protocol and time estimate, then stop (--plan-only).</summary>
    public bool PlanOnly { get; init; }

    /// <summary>Settings of the label-noise mode (--noise-preset, --noise-images, --noise-rates, --noise-methods, --noise-out, …).</summary>
    public LabelNoiseOptions LabelNoise { get; init; } = LabelNoiseOptions.Reduced;

    /// <summary>Settings of the clean-budget mode (--budget-preset, --budget-epochs, --budget-seeds, --budget-methods, --budget-out, …).</summary>
    public CleanBudgetOptions CleanBudget { get; init; } = CleanBudgetOptions.Reduced;

    /// <summary>The configuration of a fit-memory child process (--fm-source fmnist|jpeg, --fm-loading, --fm-rows).</summary>
    public FitMemoryOptions? FitMemory { get; init; }

    public static BenchmarkOptions Parse(string[] args)
    {
        var o = new BenchmarkOptions(new[] { "steps", "scoring", "data" }, 2, 60, 12, 12800, true, FlatMinima.Torch.Data.IdxImageSet.DebianFashionMnistDirectory, null);
        // Presets first, wherever they stand, so that the other --noise-… / --budget-… / --dg-… options override them.
        string dgPreset = "reduced", dgArchitecture = DomainGeneralizationOptions.Cnn;
        for (int i = 0; i + 1 < args.Length; i++)
        {
            if (args[i] == "--noise-preset") o = o with { LabelNoise = LabelNoiseOptions.FromPreset(args[i + 1]) };
            if (args[i] == "--budget-preset") o = o with { CleanBudget = CleanBudgetOptions.FromPreset(args[i + 1]) };
            if (args[i] == "--dg-preset") dgPreset = args[i + 1];
            if (args[i] == "--dg-arch") dgArchitecture = args[i + 1];
        }
        o = o with { DomainGeneralization = DomainGeneralizationOptions.FromPreset(dgPreset, dgArchitecture) };
        // Each network has its own size setting; the other network's would be dropped without a word.
        if (dgArchitecture == DomainGeneralizationOptions.Cnn && args.Contains("--dg-size"))
            throw new ArgumentException("--dg-size sets the pretrained ResNet-18's input side; the CNN takes the 28×28 images as they are (use --dg-width for its size, or --dg-arch resnet18-pretrained).");
        if (dgArchitecture == DomainGeneralizationOptions.ResNet18Pretrained && args.Contains("--dg-width"))
            throw new ArgumentException("--dg-width scales the CNN's channels; the pretrained ResNet-18 has fixed widths (use --dg-size for its input side, or --dg-arch cnn).");
        // --dg-from reports runs already made: the options that shape a training would be dropped without a word.
        if (args.Contains("--dg-from"))
        {
            var training = args.Where(a => a.StartsWith("--dg-", StringComparison.Ordinal) && a is not ("--dg-from" or "--dg-out" or "--dg-results")).Concat(args.Where(a => a == "--plan-only"));
            if (training.FirstOrDefault() is string option)
                throw new ArgumentException($"{option} cannot be combined with --dg-from: the merged files' runs fix the configuration, seeds, test domains and methods (only --dg-out and --dg-results apply).");
        }
        LabelNoiseOptions Noise(LabelNoiseOptions changed) => changed with { Overridden = true };
        CleanBudgetOptions Budget(CleanBudgetOptions changed) => changed with { Overridden = true };
        static double Real(string text) => double.Parse(text, CultureInfo.InvariantCulture);
        static int[] Ints(string text) => text.Split(',').Select(int.Parse).ToArray();
        static bool Augment(string text, string option) => text switch
        {
            "standard" => true,
            "none" => false,
            _ => throw new ArgumentException($"Unknown {option} {text}; use standard or none."),
        };
        static FlatMinima.Torch.Models.ImageClassifierArchitecture Architecture(string text, string option) =>
            Enum.TryParse<FlatMinima.Torch.Models.ImageClassifierArchitecture>(text, ignoreCase: true, out var a)
                ? a : throw new ArgumentException($"Unknown {option} {text}; use SmallCnn or ResNet20.");
        // Sets the shared option `name` of a mode's settings; every one but the output files and -from marks the preset as overridden.
        T Recipe<T>(T o, string prefix, string name, string value) where T : RecipeModeOptions => name switch
        {
            "out" => o with { Output = value },
            "plot" => o with { Plot = value },
            "results" => o with { Results = value },
            "from" => o with { From = value },
            _ => (T)((RecipeModeOptions)o with { Overridden = true } switch
            {
                var r when name == "epochs" => r with { Epochs = int.Parse(value) },
                var r when name == "seeds" => r with { Seeds = Ints(value) },
                var r when name == "methods" => r with { Methods = value.Split(',') },
                var r when name == "arch" => r with { Architecture = Architecture(value, prefix + name) },
                var r when name == "augment" => r with { Augment = Augment(value, prefix + name) },
                var r when name == "batch" => r with { BatchSize = int.Parse(value) },
                var r when name == "lr" => r with { LearningRate = Real(value) },
                var r when name == "rho" => r with { Rho = Real(value) },
                var r when name == "asam-rho" => r with { AsamRho = Real(value) },
                var r => r with { SwaLearningRate = Real(value) },
            }),
        };
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            o = args[i] switch
            {
                "--threads" => o with { Threads = int.Parse(Next()) },
                "--cnn-steps" => o with { CnnSteps = int.Parse(Next()) },
                "--resnet-steps" => o with { ResNetSteps = int.Parse(Next()) },
                "--images" => o with { Images = int.Parse(Next()) },
                "--no-mallopt" => o with { Mallopt = false },
                "--fashion-mnist" => o with { FashionMnist = Next() },
                "--peer-bench" => o with { PeerBench = Next() },
                "--hessian-parts" => o with { HessianParts = Next().Split(',') },
                "--resnet18-size" => o with { ResNet18Size = int.Parse(Next()) },
                "--resnet18-batch" => o with { ResNet18Batch = int.Parse(Next()) },
                "--resnet18-rounds" => o with { ResNet18Rounds = int.Parse(Next()) },
                "--precision-rounds" => o with { PrecisionRounds = int.Parse(Next()) },
                "--precision-warmup" => o with { PrecisionWarmup = int.Parse(Next()) },
                "--precision-models" => o with { PrecisionModels = Next().Split(',') },
                "--precision-run-size" => o with { PrecisionRunSize = int.Parse(Next()) },
                "--precision-run-images" => o with { PrecisionRunImages = int.Parse(Next()) },
                "--precision-run-epochs" => o with { PrecisionRunEpochs = int.Parse(Next()) },
                "--precision-run-methods" => o with { PrecisionRunMethods = Next().Split(',') },
                "--stream-photos" => o with { StreamingPhotos = int.Parse(Next()) },
                "--stream-rounds" => o with { StreamingRounds = int.Parse(Next()) },
                "--fm-source" => o with { FitMemory = (o.FitMemory ?? new()) with { Source = Next() } },
                "--fm-loading" => o with { FitMemory = (o.FitMemory ?? new()) with { Loading = Next() } },
                "--fm-rows" => o with { FitMemory = (o.FitMemory ?? new()) with { Rows = int.Parse(Next()) } },
                "--aug-epochs" => o with { AugmentationEpochs = int.Parse(Next()) },
                "--aug-seeds" => o with { AugmentationSeeds = Next().Split(',').Select(int.Parse).ToArray() },
                "--esam-epochs" => o with { EfficientSamEpochs = int.Parse(Next()) },
                "--esam-seeds" => o with { EfficientSamSeeds = Next().Split(',').Select(int.Parse).ToArray() },
                "--onnx-images" => o with { OnnxImages = int.Parse(Next()) },
                "--onnx-arch" => o with { OnnxArchitecture = Architecture(Next(), "--onnx-arch") },
                "--onnx-rounds" => o with { OnnxRounds = int.Parse(Next()) },
                "--transfer-k" => o with { Transfer = o.Transfer with { ImagesPerClass = Next().Split(',').Select(int.Parse).ToArray() } },
                "--transfer-seeds" => o with { Transfer = o.Transfer with { Seeds = Next().Split(',').Select(int.Parse).ToArray() } },
                "--transfer-size" => o with { Transfer = o.Transfer with { Size = int.Parse(Next()) } },
                "--transfer-methods" => o with { Transfer = o.Transfer with { Methods = Next().Split(',') } },
                "--transfer-augment" => o with { Transfer = o.Transfer with { Augment = Next() } },
                "--transfer-out" => o with { Transfer = o.Transfer with { Output = Next() } },
                "--transfer-test" => o with { Transfer = o.Transfer with { TestImages = int.Parse(Next()) } },
                "--transfer-steps" => o with { Transfer = o.Transfer with { PretrainedSteps = int.Parse(Next()) } },
                "--transfer-scratch-steps" => o with { Transfer = o.Transfer with { ScratchSteps = int.Parse(Next()) } },
                "--transfer-min-epochs" => o with { Transfer = o.Transfer with { MinEpochs = int.Parse(Next()) } },
                "--transfer-lr" => o with { Transfer = o.Transfer with { LearningRate = double.Parse(Next(), CultureInfo.InvariantCulture) } },
                "--transfer-backbone-factor" => o with { Transfer = o.Transfer with { BackboneFactor = double.Parse(Next(), CultureInfo.InvariantCulture) } },
                "--dg-preset" or "--dg-arch" => SkipValue(o, Next()),   // applied before the loop
                "--dg-size" => o with { DomainGeneralization = o.DomainGeneralization with { Size = int.Parse(Next()) } },
                "--dg-steps" => o with { DomainGeneralization = o.DomainGeneralization with { Steps = int.Parse(Next()) } },
                "--dg-batch" => o with { DomainGeneralization = o.DomainGeneralization with { BatchPerDomain = int.Parse(Next()) } },
                "--dg-eval" => o with { DomainGeneralization = o.DomainGeneralization with { EvaluationFrequency = int.Parse(Next()) } },
                "--dg-width" => o with { DomainGeneralization = o.DomainGeneralization with { Width = double.Parse(Next(), CultureInfo.InvariantCulture) } },
                "--dg-images" => o with { DomainGeneralization = o.DomainGeneralization with { ImagesPerDomain = int.Parse(Next()) } },
                "--dg-lr" => o with { DomainGeneralization = o.DomainGeneralization with { LearningRate = double.Parse(Next(), CultureInfo.InvariantCulture) } },
                "--dg-rho" => o with { DomainGeneralization = o.DomainGeneralization with { Rho = double.Parse(Next(), CultureInfo.InvariantCulture) } },
                "--dg-seeds" => o with { DomainGeneralization = o.DomainGeneralization with { Seeds = Next().Split(',').Select(int.Parse).ToArray() } },
                "--dg-test" => o with { DomainGeneralization = o.DomainGeneralization with { TestDomains = Next().Split(',').Select(int.Parse).ToArray() } },
                "--dg-methods" => o with { DomainGeneralization = o.DomainGeneralization with { Methods = Next().Split(',') } },
                "--dg-out" => o with { DomainGeneralization = o.DomainGeneralization with { Output = Next() } },
                "--dg-results" => o with { DomainGeneralization = o.DomainGeneralization with { Results = Next() } },
                "--dg-from" => o with { DomainGeneralization = o.DomainGeneralization with { From = Next().Split(',') } },
                "--f2m-preset" => o with { Incremental = Next() switch
                {
                    "reduced" => IncrementalOptions.Reduced with { Preset = "reduced" },
                    "full" => IncrementalOptions.Full with { Preset = "full" },
                    "paper" => IncrementalOptions.Paper with { Preset = "paper" },
                    var p => throw new ArgumentException($"Unknown --f2m-preset {p}; use reduced, full or paper."),
                } },
                "--f2m-ways" => o with { Incremental = o.Incremental with { Ways = Next().Split(',').Select(int.Parse).ToArray(), Preset = "custom" } },
                "--f2m-session-lr" => o with { Incremental = o.Incremental with { Session = o.Incremental.Session with { LearningRate = double.Parse(Next(), CultureInfo.InvariantCulture) }, Preset = "custom" } },
                "--f2m-session-epochs" => o with { Incremental = o.Incremental with { Session = o.Incremental.Session with { Epochs = int.Parse(Next()) }, Preset = "custom" } },
                "--f2m-rounding" => o with { Incremental = o.Incremental with { Session = IncrementalOptions.WithRounding(o.Incremental.Session, Next()), Preset = "custom" } },
                "--f2m-refresh-prototypes" => o with { Incremental = o.Incremental with { Session = o.Incremental.Session with { RefreshNovelPrototypes = Next() switch
                {
                    "on" => true,
                    "off" => false,
                    var v => throw new ArgumentException($"Unknown --f2m-refresh-prototypes {v}; use on or off."),
                } }, Preset = "custom" } },
                "--f2m-loss-normalization" => o with { Incremental = o.Incremental with { Session = o.Incremental.Session with { LossNormalization = Next() switch
                {
                    "same" => null,
                    var v => Enum.Parse<FlatMinima.Torch.IncrementalFewShot.PrototypeNormalization>(v, ignoreCase: true),
                } }, Preset = "custom" } },
                "--f2m-base-cache" => o with { Incremental = o.Incremental with { BaseCache = Next() } },
                "--f2m-base-per-class" => o with { Incremental = o.Incremental with { BasePerClass = int.Parse(Next()), Preset = "custom" } },
                "--f2m-epochs" => o with { Incremental = o.Incremental with { Epochs = int.Parse(Next()), Preset = "custom" } },
                "--f2m-test-per-class" => o with { Incremental = o.Incremental with { TestPerClass = int.Parse(Next()), Preset = "custom" } },
                "--f2m-seeds" => o with { Incremental = o.Incremental with { Seeds = int.Parse(Next()) } },   // the header names the seeds
                "--f2m-arch" => o with { Incremental = o.Incremental with { Architecture = Enum.Parse<FlatMinima.Torch.Models.ImageClassifierArchitecture>(Next()), Preset = "custom" } },
                "--f2m-out" => o with { Incremental = o.Incremental with { Output = Next() } },
                "--plan-only" => o with { PlanOnly = true },
                "--noise-preset" or "--budget-preset" => SkipValue(o, Next()),   // applied before the loop
                "--noise-images" => o with { LabelNoise = Noise(o.LabelNoise with { Images = int.Parse(Next()) }) },
                "--noise-val" => o with { LabelNoise = Noise(o.LabelNoise with { ValidationFraction = Real(Next()) }) },
                "--noise-test" => o with { LabelNoise = Noise(o.LabelNoise with { TestImages = int.Parse(Next()) }) },
                "--noise-rates" => o with { LabelNoise = Noise(o.LabelNoise with { NoiseRates = Next().Split(',').Select(Real).ToArray() }) },
                "--budget-images" => o with { CleanBudget = Budget(o.CleanBudget with { TrainImages = int.Parse(Next()) }) },
                "--budget-test" => o with { CleanBudget = Budget(o.CleanBudget with { TestImages = int.Parse(Next()) }) },
                _ when RecipeOption(args[i], "--noise-") is string name => o with { LabelNoise = Recipe(o.LabelNoise, "--noise-", name, Next()) },
                _ when RecipeOption(args[i], "--budget-") is string name => o with { CleanBudget = Recipe(o.CleanBudget, "--budget-", name, Next()) },
                var m when !m.StartsWith("--") => o with { Modes = m.Split(',') },
                var other => throw new ArgumentException($"Unknown option {other}"),
            };
        }
        return o;
    }

    // The options every RecipeModeOptions mode takes after its prefix ("--noise-" + "lr").
    private static readonly string[] RecipeOptions = { "epochs", "seeds", "methods", "arch", "augment", "batch", "lr", "rho", "asam-rho", "swa-lr", "out", "plot", "results", "from" };

    private static string? RecipeOption(string arg, string prefix) =>
        arg.StartsWith(prefix, StringComparison.Ordinal) && RecipeOptions.Contains(arg[prefix.Length..]) ? arg[prefix.Length..] : null;

    // A preset option's value was read before the loop; here it is only consumed.
    private static BenchmarkOptions SkipValue(BenchmarkOptions o, string value) => o;
}

/// <summary>Timing helpers: medians of wall-clock samples.</summary>
internal static class Timing
{
    public static double Ms(Action action)
    {
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalMilliseconds;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}

/// <summary>Settings of the Rotated Fashion-MNIST domain-generalization benchmark.</summary>
internal sealed record DomainGeneralizationOptions
{
    /// <summary>The network of <c>--dg-arch</c>: DomainBed's MNIST_CNN shape, trained from scratch.</summary>
    public const string Cnn = "cnn";

    /// <summary>The network of <c>--dg-arch</c>: ML.NET's ImageNet ResNet-18, fine-tuned as SWAD fine-tunes its ResNets.</summary>
    public const string ResNet18Pretrained = "resnet18-pretrained";

    /// <summary>SWAD's ResNet setting (its hparams registry for image datasets): Adam 5e-5, batch 32 per domain, no weight
    /// decay, BatchNorm frozen, 5000 steps; SWAD every 100 steps (the RotatedMNIST data set's checkpoint frequency in SWAD's
    /// code); all images, 3 seeds, all six test domains; 32×32 inputs.</summary>
    public static DomainGeneralizationOptions PretrainedFull { get; } = new()
    {
        Architecture = ResNet18Pretrained, BatchPerDomain = 32, LearningRate = 5e-5,
    };

    /// <summary>The reduced budget with the pretrained ResNet-18: 300 steps, 16 per domain, SWAD every 15 steps, 1,000 images
    /// per domain, test domain 75° only, 3 seeds; SWAD's Adam 5e-5 unchanged (Adam's step size does not scale with the batch).</summary>
    public static DomainGeneralizationOptions PretrainedReduced { get; } = new()
    {
        Architecture = ResNet18Pretrained, Steps = 300, BatchPerDomain = 16, EvaluationFrequency = 15, ImagesPerDomain = 1000, LearningRate = 5e-5, TestDomains = new[] { 5 },
    };

    /// <summary>The preset <paramref name="preset"/> (reduced or full) of the network <paramref name="architecture"/> (cnn or resnet18-pretrained).</summary>
    public static DomainGeneralizationOptions FromPreset(string preset, string architecture) => (preset, architecture) switch
    {
        ("reduced", Cnn) => Reduced,
        ("full", Cnn) => Full,
        ("reduced", ResNet18Pretrained) => PretrainedReduced,
        ("full", ResNet18Pretrained) => PretrainedFull,
        (not ("reduced" or "full"), _) => throw new ArgumentException($"Unknown --dg-preset {preset}; use reduced or full."),
        _ => throw new ArgumentException($"Unknown --dg-arch {architecture}; use {Cnn} or {ResNet18Pretrained}."),
    };

    /// <summary>The network (<c>--dg-arch cnn|resnet18-pretrained</c>).</summary>
    public string Architecture { get; init; } = Cnn;

    /// <summary>Input side of the pretrained ResNet-18 (<c>--dg-size</c>): the 28×28 images, rotated, are resized to it
    /// (bilinear). 32, the backbone's smallest: its ImageNet stem divides the side by 4 before the first stage, and the
    /// step's cost grows with the square of the side (64 costs about 4× as much per step).</summary>
    public int Size { get; init; } = 32;

    /// <summary>Whether the network is the pretrained ResNet-18.</summary>
    public bool Pretrained => Architecture == ResNet18Pretrained;

    /// <summary>The side of the network's input images: 28 for the CNN, <see cref="Size"/> for the ResNet-18.</summary>
    public int InputSide => Pretrained ? Size : 28;

    /// <summary>Throws naming the first invalid option, before any data is loaded.</summary>
    public void Validate()
    {
        if (Architecture is not (Cnn or ResNet18Pretrained)) throw new ArgumentException($"Unknown --dg-arch {Architecture}; use {Cnn} or {ResNet18Pretrained}.");
        if (Steps < 1) throw new ArgumentException($"--dg-steps {Steps} must be ≥ 1.");
        if (BatchPerDomain < 1) throw new ArgumentException($"--dg-batch {BatchPerDomain} must be ≥ 1.");
        if (EvaluationFrequency < 1) throw new ArgumentException($"--dg-eval {EvaluationFrequency} must be ≥ 1.");
        if (!(LearningRate > 0)) throw new ArgumentException($"--dg-lr {LearningRate} must be > 0.");
        if (!(Width > 0)) throw new ArgumentException($"--dg-width {Width} must be > 0.");
        if (ImagesPerDomain is int n && n < 10) throw new ArgumentException($"--dg-images {n} must be ≥ 10 (each domain is split 80/20).");
        if (Pretrained && (Size < 32 || Size > 224)) throw new ArgumentException($"--dg-size {Size} must be in [32, 224] (the pretrained backbone needs at least 32).");
        if (Seeds.Length == 0 || Seeds.Distinct().Count() != Seeds.Length) throw new ArgumentException("--dg-seeds must list distinct seeds.");
        if (TestDomains.Length == 0 || TestDomains.Any(d => d is < 0 or > 5) || TestDomains.Distinct().Count() != TestDomains.Length)
            throw new ArgumentException($"--dg-test {string.Join(",", TestDomains)}: list distinct domains 0–5 (0°, 15°, 30°, 45°, 60°, 75°).");
        if (Methods is not null && (Methods.Length == 0 || Methods.Distinct().Count() != Methods.Length || Methods.Any(m => !DomainGeneralizationResults.AllMethods.Contains(m))))
            throw new ArgumentException($"--dg-methods {string.Join(",", Methods)}: list distinct methods of {string.Join(",", DomainGeneralizationResults.AllMethods)}.");
        ResultFiles.CheckResults(Results, "--dg-results");
        if (From is not null)
        {
            if (From.Length == 0 || From.Distinct().Count() != From.Length) throw new ArgumentException("--dg-from must list distinct .json files.");
            foreach (var path in From) ResultFiles.CheckSource(path, "--dg-from");
        }
    }

    /// <summary>DomainBed's RotatedMNIST settings: 5000 steps, 64 per domain, Adam 1e-3, SWAD every 100 steps, full-width
    /// MNIST_CNN, all images, 3 seeds, all six test domains.</summary>
    public static DomainGeneralizationOptions Full { get; } = new();

    /// <summary>A configuration that finishes in ≤ 30 minutes on 2 cores: 300 steps, 16 per domain, width 0.25, 1,000 images
    /// per domain, test domain 75° only, 3 seeds (3.5 min measured, docs/results-domain-generalization.md). All six test
    /// domains (<c>--dg-test 0,1,2,3,4,5</c>) are about 15 min on idle cores, much more on a shared machine.</summary>
    public static DomainGeneralizationOptions Reduced { get; } = new()
    {
        Steps = 300, BatchPerDomain = 16, EvaluationFrequency = 15, Width = 0.25, ImagesPerDomain = 1000, LearningRate = 3e-3, TestDomains = new[] { 5 },
    };

    public int Steps { get; init; } = 5000;
    public int BatchPerDomain { get; init; } = 64;
    public double LearningRate { get; init; } = 1e-3;
    public int EvaluationFrequency { get; init; } = 100;
    public double Width { get; init; } = 1.0;
    public int? ImagesPerDomain { get; init; }
    public double Rho { get; init; } = 0.05;
    public int[] Seeds { get; init; } = { 0, 1, 2 };
    public int[] TestDomains { get; init; } = { 0, 1, 2, 3, 4, 5 };
    public string[]? Methods { get; init; }
    public string? Output { get; init; }

    /// <summary>Where to write every run's result (<c>--dg-results FILE.json|FILE.csv</c>); a JSON file can be merged and
    /// reported again with <see cref="From"/>.</summary>
    public string? Results { get; init; }

    /// <summary>Report from earlier runs' <c>--dg-results</c> JSON files instead of training (<c>--dg-from A.json,B.json</c>):
    /// parts of one configuration, run separately (other test domains or seeds), merged into one table.</summary>
    public string[]? From { get; init; }
}

/// <summary>One fit-memory child: data source (fmnist or jpeg), DataLoading and rows.</summary>
internal sealed record FitMemoryOptions(string Source = "fmnist", string Loading = "Streaming", int Rows = 6000);
