using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>The training recipe shared by every method of a table (the label-noise and clean-budget modes).</summary>
/// <param name="Architecture">SmallCnn or ResNet20 (1×28×28 inputs).</param>
/// <param name="Augment">Train with <see cref="AugmentationOptions.Standard"/> (pad-4 crop + horizontal flip at 28×28).</param>
/// <param name="Epochs">Epochs of every run.</param>
/// <param name="BatchSize">Batch size.</param>
/// <param name="LearningRate">Peak learning rate (SGD momentum 0.9, weight decay 5e-4, cosine decay to 0).</param>
/// <param name="Rho">SAM's ρ (also SAM+SWA's and SAM+EMA's).</param>
/// <param name="AsamRho">ASAM's ρ.</param>
/// <param name="SwaLearningRate">SWA's constant learning rate from its start; null keeps the cosine schedule.</param>
internal sealed record TrainingRecipe(ImageClassifierArchitecture Architecture, bool Augment, int Epochs, int BatchSize, double LearningRate,
    double Rho, double AsamRho, double? SwaLearningRate)
{
    /// <summary>One line describing the recipe for a report header.</summary>
    public string Describe() =>
        $"{Architecture} 1×28×28, batch {BatchSize}, SGD momentum 0.9, weight decay 5e-4, learning rate {LearningRate:G3} cosine to 0, {Epochs} epochs, " +
        (Augment ? "`AugmentationOptions.Standard()` (pad-4 reflect crop + horizontal flip at 28×28)" : "no augmentation") +
        $"; SAM ρ = {Rho:G3}, ASAM ρ = {AsamRho:G3} (adaptive, weights only); SWA from 75 % of the epochs, one average per epoch end, " +
        (SwaLearningRate is double swa ? $"constant SWA learning rate {swa:G3}" : "learning rate kept on the cosine schedule") +
        "; EMA decay 0.999 with warm-up min(d, (1 + n)/(10 + n)) (effective horizon ≈ n/9 steps); efficient variants at SAM's ρ with their defaults " +
        $"(LookSAM k = {LookSamSchedule.DefaultInterval}, α = {LookSamSchedule.DefaultAlpha}; RST p = {RandomizedSamSchedule.DefaultProbability}; AE-SAM's schedule; " +
        $"MESA λ = {MesaOptions.DefaultWeight}, τ = {MesaOptions.DefaultTemperature}, teacher decay {MesaOptions.DefaultDecay} with warm-up (`mesa-fixed`: without), " +
        $"KL term after min({MesaOptions.DefaultWarmupEpochs}, ⌊epochs / 4⌋) epochs); `-bf16` = bfloat16 mixed precision. Inputs standardized with the " +
        $"Fashion-MNIST training mean {FlatMinimumMethods.PixelMean} and standard deviation {FlatMinimumMethods.PixelStd}.";
}

/// <summary>What one training run gave.</summary>
/// <param name="Model">The trained network (averaged weights for SWA/EMA), in eval mode; the caller disposes it.</param>
/// <param name="Reports">The trainer's epoch reports (noisy-label validation accuracy if validation data was given).</param>
/// <param name="TestAccuracyPerEpoch">Test accuracy after each epoch (empty without a per-epoch test set); the last entry is the final model's.</param>
/// <param name="TrainSeconds">Wall time of training, the benchmark's own per-epoch test evaluations excluded (the trainer's validation included).</param>
/// <param name="EvaluationSeconds">Wall time of the per-epoch test evaluations.</param>
internal sealed record TrainingOutcome(nn.Module<Tensor, Tensor> Model, IReadOnlyList<EpochReport> Reports, double[] TestAccuracyPerEpoch,
    double TrainSeconds, double EvaluationSeconds);

/// <summary>
/// The methods compared side by side with one recipe (<see cref="TrainingRecipe"/>), trained by the Torch layer's
/// <see cref="ClassifierTrainer"/> on in-memory tensors: <c>sgd</c>, <c>sam</c>, <c>asam</c>, <c>sam-swa</c>, <c>sam-ema</c>.
/// </summary>
internal static class FlatMinimumMethods
{
    /// <summary>The classic methods, in table order (the default of the modes).</summary>
    public static readonly string[] All = { "sgd", "sam", "asam", "sam-swa", "sam-ema" };

    /// <summary>
    /// The efficient SAM variants (selectable by name): LookSAM, randomized SAM, AE-SAM, MESA (the default teacher, with
    /// its decay warm-up) and <c>mesa-fixed</c> (the reference's fixed teacher decay, for comparison).
    /// </summary>
    public static readonly string[] Efficient = { "looksam", "rst", "aesam", "mesa", "mesa-fixed" };

    /// <summary>Suffix of a method name that trains it with bfloat16 mixed precision (<c>sam-bf16</c>).</summary>
    public const string BFloat16Suffix = "-bf16";

    // Every selectable base method, in table order; each may also carry BFloat16Suffix.
    private static readonly string[] Known = All.Concat(Efficient).ToArray();

    /// <summary>Prefix of a LookSAM method with its own α (<c>looksam-a0.2</c>; <c>looksam</c> uses the default α).</summary>
    public const string LookSamAlphaPrefix = "looksam-a";

    // A method name: a base name, for LookSAM perhaps an α ("looksam-a0.2"), perhaps the bf16 suffix.
    private static (string Base, bool BFloat16, double? Alpha) Parse(string method)
    {
        bool bf16 = method.EndsWith(BFloat16Suffix, StringComparison.Ordinal);
        string name = bf16 ? method[..^BFloat16Suffix.Length] : method;
        if (!name.StartsWith(LookSamAlphaPrefix, StringComparison.Ordinal)) return (name, bf16, null);
        string value = name[LookSamAlphaPrefix.Length..];
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double alpha) || !(alpha >= 0) || double.IsInfinity(alpha))
            throw new ArgumentException($"Method '{method}': LookSAM's α '{value}' must be a finite number ≥ 0 (e.g. {LookSamAlphaPrefix}0.2).");
        return ("looksam", bf16, alpha);
    }

    private static string Choices => $"{string.Join(",", Known)} (each also with {BFloat16Suffix}; LookSAM with its α as {LookSamAlphaPrefix}0.2)";

    /// <summary>Fashion-MNIST training-set pixel mean and standard deviation (of [0, 1] pixels).</summary>
    public const float PixelMean = 0.2860f, PixelStd = 0.3530f;

    /// <summary>Training images/s of SmallCnn at batch 128 on the reference 2-core machine (for the time estimates printed before a run).</summary>
    public const double SmallCnnSgdImagesPerSecond = 4800, SmallCnnSamImagesPerSecond = 2500;

    /// <summary>Assumed eval-mode forward images/s, 3 × the SGD training rate (a forward pass ≈ a third of a step), for the estimates only.</summary>
    public static double? EstimatedEvaluationImagesPerSecond(ImageClassifierArchitecture architecture) => 3 * EstimatedImagesPerSecond("sgd", architecture);

    /// <summary>The table title of a method.</summary>
    public static string Title(string method)
    {
        var (name, bf16, alpha) = Parse(method);
        string title = name switch
        {
            "sgd" => "SGD",
            "sam" => "SAM",
            "asam" => "ASAM",
            "sam-swa" => "SAM+SWA",
            "sam-ema" => "SAM+EMA",
            "looksam" => "LookSAM",
            "rst" => "RST",
            "aesam" => "AE-SAM",
            "mesa" => "MESA",
            "mesa-fixed" => "MESA (fixed decay)",
            _ => throw new ArgumentException($"Unknown method '{method}'; use {Choices}."),
        };
        if (alpha is double a) title += FormattableString.Invariant($" (α = {a:G3})");
        return bf16 ? title + " (bf16)" : title;
    }

    /// <summary>Checks <paramref name="methods"/> against <see cref="All"/>, naming <paramref name="option"/>; returns them in table order.</summary>
    public static string[] Check(string[] methods, string option)
    {
        if (methods.Length == 0) throw new ArgumentException($"{option} names no method; use a subset of {Choices}.");
        var parsed = new List<(string Name, (string Base, bool BFloat16, double? Alpha) Method)>();
        foreach (var m in methods)
        {
            try { parsed.Add((m, Parse(m))); }
            catch (ArgumentException e) { throw new ArgumentException($"{option}: {e.Message}", e); }
        }
        var unknown = parsed.Where(p => !Known.Contains(p.Method.Base)).Select(p => p.Name).ToArray();
        if (unknown.Length > 0) throw new ArgumentException($"Unknown {option} {string.Join(",", unknown)}; use a subset of {Choices}.");
        // One run per configuration: "looksam", "looksam-a0.7" and "looksam-a0.70" are the same method.
        return parsed.GroupBy(p => (p.Method.Base, p.Method.BFloat16, Alpha: p.Method.Base == "looksam" ? p.Method.Alpha ?? LookSamSchedule.DefaultAlpha : 0))
            .Select(g => g.First())
            .OrderBy(p => Array.IndexOf(Known, p.Method.Base)).ThenBy(p => p.Method.Alpha ?? LookSamSchedule.DefaultAlpha).ThenBy(p => p.Method.BFloat16)
            .Select(p => p.Name).ToArray();
    }

    /// <summary>ResNet-20 training images/s from its measured step times at batch 128 (SGD 314.6 ms, SAM 618.1 ms at 3×32×32; 1×28×28 is somewhat faster).</summary>
    public const double ResNet20SgdImagesPerSecond = 128 / 0.3146, ResNet20SamImagesPerSecond = 128 / 0.6181;

    /// <summary>Training images/s of <paramref name="method"/> for the estimates (SmallCnn and ResNet-20; null for other architectures).</summary>
    public static double? EstimatedImagesPerSecond(string method, ImageClassifierArchitecture architecture) => architecture switch
    {
        ImageClassifierArchitecture.SmallCnn => OnePass(method) ? SmallCnnSgdImagesPerSecond : SmallCnnSamImagesPerSecond,
        ImageClassifierArchitecture.ResNet20 => OnePass(method) ? ResNet20SgdImagesPerSecond : ResNet20SamImagesPerSecond,
        _ => null,
    };

    // Methods estimated at the SGD rate (the efficient variants are estimated at SAM's, an upper bound).
    private static bool OnePass(string method) => Parse(method).Base is "sgd";

    /// <summary>The trainer options of <paramref name="method"/> under <paramref name="recipe"/>.</summary>
    public static ClassifierTrainingOptions Options(string method, TrainingRecipe recipe, int seed, Action<EpochReport>? progress) =>
        Options(Parse(method), recipe, seed, progress);

    private static ClassifierTrainingOptions Options((string Base, bool BFloat16, double? Alpha) method, TrainingRecipe recipe, int seed, Action<EpochReport>? progress) => new()
    {
        Precision = method.BFloat16 ? ComputePrecision.BFloat16 : ComputePrecision.Float32,
        Epochs = recipe.Epochs,
        BatchSize = recipe.BatchSize,
        LearningRate = recipe.LearningRate,
        Seed = seed,
        Augmentation = recipe.Augment ? AugmentationOptions.Standard() : null,
        GradientStep = method.Base switch
        {
            "sgd" => null,
            "asam" => SharpnessAwareOptions.Asam(recipe.AsamRho),
            "sam" or "sam-swa" or "sam-ema" => SharpnessAwareOptions.Sam(recipe.Rho),
            "looksam" => SharpnessAwareOptions.LookSam(alpha: method.Alpha ?? LookSamSchedule.DefaultAlpha, rho: recipe.Rho),
            "rst" => SharpnessAwareOptions.RandomizedSam(rho: recipe.Rho),
            "aesam" => SharpnessAwareOptions.AeSam(recipe.Rho),
            "mesa" => Mesa(recipe),
            "mesa-fixed" => Mesa(recipe) with { DecayWarmup = false },
            _ => throw new ArgumentException($"Unknown method '{method.Base}'; use {Choices}."),
        },
        Averaging = method.Base switch
        {
            "sam-swa" => WeightAveragingOptions.Swa(learningRate: recipe.SwaLearningRate),
            "sam-ema" => WeightAveragingOptions.Ema(warmup: true),
            _ => null,
        },
        Progress = progress,
    };

    // MESA with the reference's settings, its KL warm-up shortened to a quarter of short runs.
    private static MesaOptions Mesa(TrainingRecipe recipe) =>
        MesaOptions.Default() with { WarmupEpochs = Math.Min(MesaOptions.DefaultWarmupEpochs, recipe.Epochs / 4) };

    /// <summary>
    /// Trains <paramref name="method"/> from an initialization seeded with <paramref name="seed"/> (the same for every
    /// method of a seed); with <paramref name="perEpochTest"/>, evaluates it after every epoch (for SWA/EMA the online
    /// weights, except after the last epoch, when the model holds the average).
    /// </summary>
    public static TrainingOutcome Train(string method, TrainingRecipe recipe, int seed, TensorDataset train, TensorDataset? validation, TensorDataset? perEpochTest)
    {
        manual_seed(seed);
        var model = ImageClassifierModels.Create(recipe.Architecture, 1, 10, 28, 28);
        var testAccuracy = new List<double>();
        double evaluationSeconds = 0;
        void Progress(EpochReport report)
        {
            if (perEpochTest is null) return;
            var clock = Stopwatch.StartNew();
            testAccuracy.Add(ClassifierEvaluation.Evaluate(model, perEpochTest, EvaluationBatch, CPU).Accuracy);
            evaluationSeconds += clock.Elapsed.TotalSeconds;
        }
        try
        {
            var trainer = new ClassifierTrainer(Options(method, recipe, seed, Progress), CPU);
            var total = Stopwatch.StartNew();
            var reports = trainer.Train(model, train, validation);
            double seconds = total.Elapsed.TotalSeconds - evaluationSeconds;
            model.eval();
            return new TrainingOutcome(model, reports, testAccuracy.ToArray(), seconds, evaluationSeconds);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One untimed epoch of SGD and (if any method uses it) SAM on <paramref name="images"/>, so that the first timed run does
    /// not pay for JIT compilation, native library loading and the allocator's first growth.
    /// </summary>
    public static void WarmUp(Torch.Data.IdxImageSet images, TrainingRecipe recipe, string[] methods)
    {
        var data = images.Subset(Enumerable.Range(0, Math.Min(256, images.Count)).ToArray()).ToTensorDataset(PixelMean, PixelStd);
        try
        {
            foreach (var method in methods.Any(m => !OnePass(m)) ? new[] { "sgd", "sam" } : new[] { "sgd" })
                Train(method, recipe with { Epochs = 1 }, 0, data, data, data).Model.Dispose();
        }
        finally
        {
            data.Inputs.Dispose();
            data.Labels.Dispose();
        }
    }

    /// <summary>Batch size of evaluations and predictions.</summary>
    public const int EvaluationBatch = 1000;

    /// <summary>The predicted class of every input (eval mode, no gradients), int64 <c>[N]</c> on the CPU.</summary>
    public static Tensor Predict(nn.Module<Tensor, Tensor> model, Tensor inputs)
    {
        model.eval();
        using var noGrad = no_grad();
        var parts = new List<Tensor>();
        using (var scope = NewDisposeScope())
        {
            for (long start = 0; start < inputs.shape[0]; start += EvaluationBatch)
                parts.Add(model.call(inputs.narrow(0, start, Math.Min(EvaluationBatch, inputs.shape[0] - start))).argmax(1).MoveToOuterDisposeScope());
        }
        var predictions = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return predictions;
    }

    /// <summary>The fraction of <paramref name="predictions"/> equal to <paramref name="labels"/> (optionally only where <paramref name="mask"/> is true; NaN if none).</summary>
    public static double Accuracy(Tensor predictions, Tensor labels, Tensor? mask = null)
    {
        using var scope = NewDisposeScope();
        var hits = predictions.eq(labels);
        if (mask is not null) hits = hits.masked_select(mask);
        return hits.numel() == 0 ? double.NaN : hits.to_type(ScalarType.Float64).mean().item<double>();
    }
}
