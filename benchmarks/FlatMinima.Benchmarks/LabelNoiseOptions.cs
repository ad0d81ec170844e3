using System;
using System.Linq;
using FlatMinima.Torch.Models;

namespace FlatMinima.Benchmarks;

/// <summary>Settings of the label-noise mode (<c>--noise-…</c> options; <c>--noise-preset tiny|reduced|full</c> first, the others override it).</summary>
internal sealed record LabelNoiseOptions
{
    /// <summary>A smoke check of every code path in seconds: 500 images, 1 epoch, 1 seed, rates 0 and 0.4, 500 test images.</summary>
    public static LabelNoiseOptions Tiny { get; } = new()
    {
        Preset = "tiny", Images = 500, TestImages = 500, Epochs = 1, Seeds = new[] { 1 }, NoiseRates = new[] { 0.0, 0.4 },
    };

    /// <summary>≈ 23 min on 2 cores (estimate): 5,000 images, 15 epochs, 5,000 test images, 3 seeds, rates 0, 0.2, 0.4, all methods.</summary>
    public static LabelNoiseOptions Reduced { get; } = new() { Preset = "reduced", Images = 5000, TestImages = 5000, Epochs = 15 };

    /// <summary>≈ 61 min on 2 cores (estimate): 10,000 images, 20 epochs, 10,000 test images, 3 seeds, rates 0, 0.2, 0.4, all methods.</summary>
    public static LabelNoiseOptions Full { get; } = new() { Preset = "full", Images = 10000, TestImages = 10000, Epochs = 20 };

    /// <summary>The preset the other settings started from.</summary>
    public string Preset { get; init; } = "reduced";

    /// <summary>Whether an option changed a setting of the preset.</summary>
    public bool Overridden { get; init; }

    /// <summary>"reduced", or "reduced with option overrides".</summary>
    public string PresetText => Overridden ? $"{Preset} with option overrides" : Preset;

    /// <summary>Training images N drawn per seed from the 60,000 (<c>--noise-images</c>); the validation split comes out of them.</summary>
    public int Images { get; init; } = 5000;

    /// <summary>Fraction of the N images held out as noisy-label validation data (<c>--noise-val</c>, 0 = none).</summary>
    public double ValidationFraction { get; init; } = 0.1;

    /// <summary>The first this many images of the test split, with clean labels (<c>--noise-test</c>).</summary>
    public int TestImages { get; init; } = 5000;

    /// <summary>Epochs of every run (<c>--noise-epochs</c>).</summary>
    public int Epochs { get; init; } = 15;

    /// <summary>Seeds (<c>--noise-seeds</c>): each draws other images, other noise and another initialization.</summary>
    public int[] Seeds { get; init; } = { 1, 2, 3 };

    /// <summary>Symmetric noise rates r (<c>--noise-rates</c>).</summary>
    public double[] NoiseRates { get; init; } = { 0.0, 0.2, 0.4 };

    /// <summary>Methods (<c>--noise-methods</c>), a subset of <see cref="FlatMinimumMethods.All"/>.</summary>
    public string[] Methods { get; init; } = FlatMinimumMethods.All;

    /// <summary>Network (<c>--noise-arch SmallCnn|ResNet20</c>).</summary>
    public ImageClassifierArchitecture Architecture { get; init; } = ImageClassifierArchitecture.SmallCnn;

    /// <summary>Standard augmentation on or off (<c>--noise-augment standard|none</c>).</summary>
    public bool Augment { get; init; } = true;

    /// <summary>Batch size (<c>--noise-batch</c>).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Peak learning rate (<c>--noise-lr</c>).</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>SAM's ρ (<c>--noise-rho</c>).</summary>
    public double Rho { get; init; } = 0.05;

    /// <summary>ASAM's ρ (<c>--noise-asam-rho</c>).</summary>
    public double AsamRho { get; init; } = 0.5;

    /// <summary>SWA's constant learning rate (<c>--noise-swa-lr</c>); null keeps the cosine schedule.</summary>
    public double? SwaLearningRate { get; init; }

    /// <summary>Also write the markdown report to this file (<c>--noise-out</c>).</summary>
    public string? Output { get; init; }

    /// <summary>The recipe every method of the table shares.</summary>
    public TrainingRecipe Recipe => new(Architecture, Augment, Epochs, BatchSize, LearningRate, Rho, AsamRho, SwaLearningRate);

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
        if (Epochs < 1) throw new ArgumentException($"--noise-epochs {Epochs} must be ≥ 1.");
        if (Seeds.Length == 0 || Seeds.Distinct().Count() != Seeds.Length) throw new ArgumentException("--noise-seeds must list distinct seeds.");
        if (NoiseRates.Length == 0 || NoiseRates.Any(r => !(r >= 0 && r < 0.9)))
            throw new ArgumentException($"--noise-rates {string.Join(",", NoiseRates)}: every rate must be in [0, 0.9) (at 0.9 symmetric noise leaves no majority of true labels).");
        if (BatchSize < 1) throw new ArgumentException($"--noise-batch {BatchSize} must be ≥ 1.");
        if (Architecture == ImageClassifierArchitecture.ResNet18) throw new ArgumentException("--noise-arch: use SmallCnn or ResNet20.");
        FlatMinimumMethods.Check(Methods, "--noise-methods");
    }
}

/// <summary>Settings of the clean-budget mode (<c>--budget-…</c> options; <c>--budget-preset tiny|reduced|full</c> first, the others override it).</summary>
internal sealed record CleanBudgetOptions
{
    /// <summary>A smoke check in seconds: 500 training and 500 test images, 1 epoch, 1 seed.</summary>
    public static CleanBudgetOptions Tiny { get; } = new() { Preset = "tiny", TrainImages = 500, TestImages = 500, Epochs = 1, Seeds = new[] { 1 } };

    /// <summary>≈ 24 min on 2 cores (estimate): 60,000 images, 8 epochs, 3 seeds, SGD, SAM, SAM+SWA.</summary>
    public static CleanBudgetOptions Reduced { get; } = new() { Preset = "reduced", Epochs = 8 };

    /// <summary>≈ 55 min on 2 cores (estimate): 60,000 images, 18 epochs, 3 seeds, SGD, SAM, SAM+SWA.</summary>
    public static CleanBudgetOptions Full { get; } = new() { Preset = "full", Epochs = 18 };

    /// <summary>The preset the other settings started from.</summary>
    public string Preset { get; init; } = "reduced";

    /// <summary>Whether an option changed a setting of the preset.</summary>
    public bool Overridden { get; init; }

    /// <summary>"reduced", or "reduced with option overrides".</summary>
    public string PresetText => Overridden ? $"{Preset} with option overrides" : Preset;

    /// <summary>The first this many training images (<c>--budget-images</c>, 60,000 = all).</summary>
    public int TrainImages { get; init; } = 60000;

    /// <summary>The first this many test images (<c>--budget-test</c>).</summary>
    public int TestImages { get; init; } = 10000;

    /// <summary>Epochs of every run (<c>--budget-epochs</c>).</summary>
    public int Epochs { get; init; } = 8;

    /// <summary>Seeds (<c>--budget-seeds</c>): initialization, shuffling and augmentation draws.</summary>
    public int[] Seeds { get; init; } = { 1, 2, 3 };

    /// <summary>Methods (<c>--budget-methods</c>), a subset of <see cref="FlatMinimumMethods.All"/>.</summary>
    public string[] Methods { get; init; } = { "sgd", "sam", "sam-swa" };

    /// <summary>Network (<c>--budget-arch SmallCnn|ResNet20</c>).</summary>
    public ImageClassifierArchitecture Architecture { get; init; } = ImageClassifierArchitecture.SmallCnn;

    /// <summary>Standard augmentation on or off (<c>--budget-augment standard|none</c>).</summary>
    public bool Augment { get; init; } = true;

    /// <summary>Batch size (<c>--budget-batch</c>).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Peak learning rate (<c>--budget-lr</c>).</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>SAM's ρ (<c>--budget-rho</c>).</summary>
    public double Rho { get; init; } = 0.05;

    /// <summary>ASAM's ρ (<c>--budget-asam-rho</c>).</summary>
    public double AsamRho { get; init; } = 0.5;

    /// <summary>SWA's constant learning rate (<c>--budget-swa-lr</c>); null keeps the cosine schedule.</summary>
    public double? SwaLearningRate { get; init; }

    /// <summary>Also write the markdown report to this file (<c>--budget-out</c>).</summary>
    public string? Output { get; init; }

    /// <summary>The recipe every method of the table shares.</summary>
    public TrainingRecipe Recipe => new(Architecture, Augment, Epochs, BatchSize, LearningRate, Rho, AsamRho, SwaLearningRate);

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
        if (Epochs < 1) throw new ArgumentException($"--budget-epochs {Epochs} must be ≥ 1.");
        if (Seeds.Length == 0 || Seeds.Distinct().Count() != Seeds.Length) throw new ArgumentException("--budget-seeds must list distinct seeds.");
        if (BatchSize < 1) throw new ArgumentException($"--budget-batch {BatchSize} must be ≥ 1.");
        if (Architecture == ImageClassifierArchitecture.ResNet18) throw new ArgumentException("--budget-arch: use SmallCnn or ResNet20.");
        FlatMinimumMethods.Check(Methods, "--budget-methods");
    }
}
