using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Models;

namespace FlatMinima.Benchmarks;

/// <summary>
/// What the label-noise and clean-budget modes share: the preset bookkeeping, epochs, seeds, methods and the training
/// recipe every method of a table uses (<c>--noise-…</c> and <c>--budget-…</c> options of the same names).
/// </summary>
internal abstract record RecipeModeOptions
{
    /// <summary>The preset the other settings started from.</summary>
    public string Preset { get; init; } = "reduced";

    /// <summary>Whether an option changed a setting of the preset.</summary>
    public bool Overridden { get; init; }

    /// <summary>"reduced", or "reduced with option overrides".</summary>
    public string PresetText => Overridden ? $"{Preset} with option overrides" : Preset;

    /// <summary>Epochs of every run (<c>-epochs</c>).</summary>
    public int Epochs { get; init; }

    /// <summary>Seeds (<c>-seeds</c>): each sets the initialization, shuffling and augmentation draws (and the mode's own draws).</summary>
    public int[] Seeds { get; init; } = { 1, 2, 3 };

    /// <summary>Methods (<c>-methods</c>), names checked by <see cref="FlatMinimumMethods.Check"/>.</summary>
    public string[] Methods { get; init; } = FlatMinimumMethods.All;

    /// <summary>Network (<c>-arch SmallCnn|ResNet20</c>).</summary>
    public ImageClassifierArchitecture Architecture { get; init; } = ImageClassifierArchitecture.SmallCnn;

    /// <summary>Standard augmentation on or off (<c>-augment standard|none</c>).</summary>
    public bool Augment { get; init; } = true;

    /// <summary>Batch size (<c>-batch</c>).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Peak learning rate (<c>-lr</c>).</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>SAM's ρ (<c>-rho</c>).</summary>
    public double Rho { get; init; } = 0.05;

    /// <summary>ASAM's ρ (<c>-asam-rho</c>).</summary>
    public double AsamRho { get; init; } = 0.5;

    /// <summary>SWA's constant learning rate (<c>-swa-lr</c>); null keeps the cosine schedule.</summary>
    public double? SwaLearningRate { get; init; }

    /// <summary>Also write the markdown report to this file (<c>-out</c>).</summary>
    public string? Output { get; init; }

    /// <summary>Write test accuracy (mean ± SE) against mean training seconds per method as a PNG (<c>-plot FILE.png</c>).</summary>
    public string? Plot { get; init; }

    /// <summary>Write the per-seed results (<c>-results FILE.json</c>, replayable with <c>-from</c>; or <c>FILE.csv</c>, one row per run).</summary>
    public string? Results { get; init; }

    /// <summary>
    /// Prints a regenerated (<c>-from</c>) report and writes the outputs these options name: the report to <c>-out</c> under the heading
    /// <paramref name="title"/>, the results to <c>-results</c>, the plot of <paramref name="plot"/> to <c>-plot</c>.
    /// </summary>
    public void WriteReplay<TFile, TRun>(string title, string from, string recipe, string report, TFile file,
        IReadOnlyList<TRun> runs, (string Name, Func<TRun, object> Value)[] csvColumns, Func<PlotRequest> plot, string repoRoot)
    {
        Console.WriteLine();
        Console.WriteLine($"* **Recipe.** {recipe}");
        Console.Write(report);
        if (Output is string output)
        {
            File.WriteAllText(output, $"# {title} — regenerated from {Path.GetFileName(from)}\n\n* **Recipe.** {recipe}\n" + report);
            Console.WriteLine($"Written to {output}.");
        }
        if (Results is string resultsFile) ResultFiles.Write(resultsFile, file, runs, csvColumns);
        if (Plot is string png) BenchmarkPlots.Save(plot(), png, repoRoot);
    }

    /// <summary>Regenerate the tables (and <see cref="Plot"/>) from a <c>-results</c> JSON file instead of training (<c>-from FILE.json</c>).</summary>
    public string? From { get; init; }

    /// <summary>The recipe every method of the table shares.</summary>
    public TrainingRecipe Recipe => new(Architecture, Augment, Epochs, BatchSize, LearningRate, Rho, AsamRho, SwaLearningRate);

    /// <summary>Throws naming the first invalid shared option, with the mode's <paramref name="prefix"/> (<c>--noise</c>).</summary>
    protected void ValidateRecipe(string prefix)
    {
        if (Epochs < 1) throw new ArgumentException($"{prefix}-epochs {Epochs} must be ≥ 1.");
        if (Seeds.Length == 0 || Seeds.Distinct().Count() != Seeds.Length) throw new ArgumentException($"{prefix}-seeds must list distinct seeds.");
        if (BatchSize < 1) throw new ArgumentException($"{prefix}-batch {BatchSize} must be ≥ 1.");
        if (Architecture == ImageClassifierArchitecture.ResNet18) throw new ArgumentException($"{prefix}-arch: use SmallCnn or ResNet20.");
        FlatMinimumMethods.Check(Methods, $"{prefix}-methods");
        BenchmarkPlots.CheckPng(Plot, $"{prefix}-plot");
        ResultFiles.CheckResults(Results, $"{prefix}-results");
        ResultFiles.CheckSource(From, $"{prefix}-from");
        if (From is not null && Overridden)
            throw new ArgumentException(
                $"{prefix}-from replays the settings stored in {From}; it cannot be combined with options that change the preset's settings " +
                $"(only {prefix}-out, {prefix}-plot and {prefix}-results apply to a replay).");
    }
}

/// <summary>Settings of the label-noise mode (<c>--noise-…</c> options; <c>--noise-preset tiny|reduced|full</c> first, the others override it).</summary>
internal sealed record LabelNoiseOptions : RecipeModeOptions
{
    /// <summary>The reduced preset's epochs.</summary>
    public LabelNoiseOptions() { Epochs = 15; }

    /// <summary>A smoke check of every code path in seconds: 500 images, 1 epoch, 1 seed, rates 0 and 0.4, 500 test images.</summary>
    public static LabelNoiseOptions Tiny { get; } = new()
    {
        Preset = "tiny", Images = 500, TestImages = 500, Epochs = 1, Seeds = new[] { 1 }, NoiseRates = new[] { 0.0, 0.4 },
    };

    /// <summary>≈ 23 min on 2 cores (estimate): 5,000 images, 15 epochs, 5,000 test images, 3 seeds, rates 0, 0.2, 0.4, all methods.</summary>
    public static LabelNoiseOptions Reduced { get; } = new() { Preset = "reduced", Images = 5000, TestImages = 5000, Epochs = 15 };

    /// <summary>≈ 61 min on 2 cores (estimate): 10,000 images, 20 epochs, 10,000 test images, 3 seeds, rates 0, 0.2, 0.4, all methods.</summary>
    public static LabelNoiseOptions Full { get; } = new() { Preset = "full", Images = 10000, TestImages = 10000, Epochs = 20 };

    /// <summary>Training images N drawn per seed from the 60,000 (<c>--noise-images</c>); the validation split comes out of them.</summary>
    public int Images { get; init; } = 5000;

    /// <summary>Fraction of the N images held out as noisy-label validation data (<c>--noise-val</c>, 0 = none).</summary>
    public double ValidationFraction { get; init; } = 0.1;

    /// <summary>The first this many images of the test split, with clean labels (<c>--noise-test</c>).</summary>
    public int TestImages { get; init; } = 5000;

    /// <summary>Symmetric noise rates r (<c>--noise-rates</c>).</summary>
    public double[] NoiseRates { get; init; } = { 0.0, 0.2, 0.4 };

    /// <summary>The preset named <paramref name="name"/>.</summary>
    public static LabelNoiseOptions FromPreset(string name) => name switch
    {
        "tiny" => Tiny,
        "reduced" => Reduced,
        "full" => Full,
        _ => throw new ArgumentException($"Unknown --noise-preset {name}; use tiny, reduced or full."),
    };

    /// <summary>Throws naming the first invalid option, before any data is loaded.</summary>
    public void Validate()
    {
        int validation = (int)Math.Round(ValidationFraction * Images);
        if (!(ValidationFraction >= 0 && ValidationFraction < 0.5))
            throw new ArgumentException($"--noise-val {ValidationFraction} must be in [0, 0.5).");
        if (Images < 20 || Images > 60000) throw new ArgumentException($"--noise-images {Images} must be in [20, 60000].");
        if (ValidationFraction > 0 && validation < 1) throw new ArgumentException($"--noise-val {ValidationFraction} of {Images} images holds out no image; raise it or pass 0.");
        if (TestImages < 1 || TestImages > 10000) throw new ArgumentException($"--noise-test {TestImages} must be in [1, 10000].");
        ValidateRecipe("--noise");
        if (NoiseRates.Length == 0 || NoiseRates.Any(r => !(r >= 0 && r < 0.9)))
            throw new ArgumentException($"--noise-rates {string.Join(",", NoiseRates)}: every rate must be in [0, 0.9) (at 0.9 symmetric noise leaves no majority of true labels).");
    }
}

/// <summary>Settings of the clean-budget mode (<c>--budget-…</c> options; <c>--budget-preset tiny|reduced|full</c> first, the others override it).</summary>
internal sealed record CleanBudgetOptions : RecipeModeOptions
{
    /// <summary>The reduced preset's epochs; SGD, SAM and SAM+SWA.</summary>
    public CleanBudgetOptions() { Epochs = 8; Methods = new[] { "sgd", "sam", "sam-swa" }; }

    /// <summary>A smoke check in seconds: 500 training and 500 test images, 1 epoch, 1 seed.</summary>
    public static CleanBudgetOptions Tiny { get; } = new() { Preset = "tiny", TrainImages = 500, TestImages = 500, Epochs = 1, Seeds = new[] { 1 } };

    /// <summary>≈ 24 min on 2 cores (estimate): 60,000 images, 8 epochs, 3 seeds, SGD, SAM, SAM+SWA.</summary>
    public static CleanBudgetOptions Reduced { get; } = new() { Preset = "reduced", Epochs = 8 };

    /// <summary>≈ 55 min on 2 cores (estimate): 60,000 images, 18 epochs, 3 seeds, SGD, SAM, SAM+SWA.</summary>
    public static CleanBudgetOptions Full { get; } = new() { Preset = "full", Epochs = 18 };

    /// <summary>The first this many training images (<c>--budget-images</c>, 60,000 = all).</summary>
    public int TrainImages { get; init; } = 60000;

    /// <summary>The first this many test images (<c>--budget-test</c>).</summary>
    public int TestImages { get; init; } = 10000;

    /// <summary>The preset named <paramref name="name"/>.</summary>
    public static CleanBudgetOptions FromPreset(string name) => name switch
    {
        "tiny" => Tiny,
        "reduced" => Reduced,
        "full" => Full,
        _ => throw new ArgumentException($"Unknown --budget-preset {name}; use tiny, reduced or full."),
    };

    /// <summary>Throws naming the first invalid option, before any data is loaded.</summary>
    public void Validate()
    {
        if (TrainImages < 10 || TrainImages > 60000) throw new ArgumentException($"--budget-images {TrainImages} must be in [10, 60000].");
        if (TestImages < 1 || TestImages > 10000) throw new ArgumentException($"--budget-test {TestImages} must be in [1, 10000].");
        ValidateRecipe("--budget");
    }
}
