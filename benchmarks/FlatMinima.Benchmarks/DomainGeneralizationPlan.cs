using System;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using FlatMinima.Torch.Data;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>
/// The domain-generalization mode's <c>--plan-only</c>: the protocol, the data's size and a cost estimate from step times
/// measured here on synthetic inputs of the configured shape (an untimed and a timed epoch of <see cref="TimedSteps"/>
/// steps, per-epoch overhead included of the real trainer, for one-pass and for SAM steps), without loading the data or training a run.
/// </summary>
internal static class DomainGeneralizationPlan
{
    private const int TrainingDomains = 5, Classes = 10;

    // Steps per measured epoch: a few seconds of work on an idle machine (the CNN's steps are ~50× cheaper than the ResNet-18's).
    private static int TimedSteps(DomainGeneralizationOptions dg) => dg.Pretrained ? 2 : 10;

    // Fashion-MNIST's 70,000 images (train + test) strided into six domains.
    private const int AllImages = 70_000, Domains = 6;

    public static void Print(DomainGeneralizationOptions dg, string[] methods, Func<string, DomainGeneralizationOptions, int, int, ClassifierTrainingOptions> trainingOptions,
        Func<DomainGeneralizationOptions, int, nn.Module<Tensor, Tensor>> createModel)
    {
        int perDomain = Math.Min(dg.ImagesPerDomain ?? int.MaxValue, (AllImages + Domains - 1) / Domains);
        int outCount = (int)(0.2 * perDomain), inCount = perDomain - outCount;
        long imagesPerStep = (long)dg.BatchPerDomain * TrainingDomains;
        int stepsPerEpoch = (int)((TrainingDomains * (long)inCount + imagesPerStep - 1) / imagesPerStep);
        int epochs = (int)Math.Ceiling((double)dg.Steps / stepsPerEpoch);
        long steps = (long)epochs * stepsPerEpoch;
        int side = dg.InputSide;
        double dataMegabytes = (double)Domains * perDomain * side * side * sizeof(float) / 1e6;
        int runs = dg.Seeds.Length * dg.TestDomains.Length;

        Console.WriteLine($"* **Data.** {perDomain:N0} images per domain ({inCount:N0} \"in\" + {outCount:N0} \"out\"); training set {TrainingDomains * inCount:N0} images, " +
                          $"validation {TrainingDomains * outCount:N0}, test {inCount:N0} (the held-out domain's \"in\" split). Inputs 1×{side}×{side} float32, ≈ {dataMegabytes:N0} MB for the six domains" +
                          (dg.Pretrained ? $" (rotated at 28×28, then resized bilinearly to {side}×{side})." : "."));
        Console.WriteLine($"* **Network.** {DomainGeneralizationBenchmark.NetworkText(dg)}." + (dg.Pretrained
            ? " Input preparation inside the network, as the backbone was trained: gray replicated to 3 channels, RGB in 0–1 scaled to 0–255, reordered to BGR, " +
              "minus the backbone's mean image resized to the input size (ML.NET's ResNetPreprocess). BatchNorm in eval mode throughout (SWAD's freeze_bn); " +
              "every weight, BatchNorm affine weights included, trains at the one learning rate."
            : " DomainBed's MNIST_CNN shape (GroupNorm), trained from scratch."));
        Console.WriteLine($"* **Optimization.** Adam (no weight decay), constant learning rate {dg.LearningRate:G3}, {dg.BatchPerDomain} images per domain per step " +
                          $"({imagesPerStep} per step); {dg.Steps:N0} steps asked, {steps:N0} run ({epochs} epoch{(epochs == 1 ? "" : "s")} of {stepsPerEpoch} steps); " +
                          $"SAM ρ = {dg.Rho:G3}; SWAD evaluates the validation loss every {dg.EvaluationFrequency} steps; ERM+SWA averages every {dg.EvaluationFrequency} steps from step {dg.Steps / 2}.");
        Console.WriteLine($"* **Runs.** {runs} (seed, test domain) pairs × methods {string.Join(", ", methods)} = {runs * methods.Length} trainings.");

        bool anySam = methods.Any(m => m.StartsWith("SAM", StringComparison.Ordinal));
        string load = ReportText.LoadAverage();
        int threads = get_num_threads();
        var (plain, sam, perImage) = Measure(dg, anySam, trainingOptions, createModel);
        Console.WriteLine($"* **Measured here** (synthetic inputs of the configured shape, the real trainer: per method {TimedSteps(dg)} untimed then {TimedSteps(dg)} timed steps, " +
                          $"then an evaluation of the same images; {threads} TorchSharp threads, {Environment.ProcessorCount} cores, load average {load} at the start): " +
                          $"one-pass step {plain.Wall:F3} s wall, {plain.Cpu:F3} CPU-s" +
                          (sam is Cost s ? $"; SAM step {s.Wall:F3} s wall, {s.Cpu:F3} CPU-s ({s.Wall / plain.Wall:F2}× the one-pass wall time)" : "") +
                          $"; evaluation {1000 * perImage.Wall:F2} ms wall, {1000 * perImage.Cpu:F2} CPU-ms per image.");

        int validations(string method) => epochs + (DomainGeneralizationResults.UsesSwad(method) ? (int)(steps / dg.EvaluationFrequency) : 0);
        double RunSeconds(string m, Func<Cost, double> pick)
        {
            var step = m.StartsWith("SAM", StringComparison.Ordinal) && sam is Cost s ? s : plain;
            return steps * pick(step) + (validations(m) * (double)TrainingDomains * outCount + inCount) * pick(perImage);
        }
        double Total(Func<Cost, double> pick) => runs * methods.Sum(m => RunSeconds(m, pick));
        Console.WriteLine($"* **Estimate.** Per run at the measured wall times: " + string.Join(", ", methods.Select(m => $"{m} {Minutes(RunSeconds(m, t => t.Wall))}")) +
                          $" ({steps:N0} steps × the step time + {epochs} per-epoch validations (SWAD: + one every {dg.EvaluationFrequency} steps) of " +
                          $"{TrainingDomains * outCount:N0} images and the test evaluation); × {runs} (seed, test domain) pairs ≈ **{Minutes(Total(t => t.Wall))}** in total " +
                          $"at this machine's load during the measurement. On an otherwise idle machine (CPU time ÷ {threads} threads, a rough guess: under load CPU time also grows): ≈ {Minutes(Total(t => t.Cpu / threads))}. " +
                          "Plus data preparation" + (dg.Pretrained ? " and the backbone's import per run (seconds)." : "."));
        Console.WriteLine();
    }

    private static string Minutes(double seconds) =>
        seconds < 120 ? $"{seconds.ToString("F0", CultureInfo.InvariantCulture)} s" : seconds < 7200 ? $"{(seconds / 60).ToString("F1", CultureInfo.InvariantCulture)} min" : $"{(seconds / 3600).ToString("F1", CultureInfo.InvariantCulture)} h";

    // Wall and process CPU seconds per step of one-pass (ERM) and SAM steps, and per evaluated image, on one network: each
    // method trains 2 epochs of TimedSteps steps, the first untimed (set-up, first allocations), the second timed from the
    // trainer's progress callbacks; then an untimed and a timed evaluation.
    private static (Cost Plain, Cost? Sam, Cost PerImage) Measure(DomainGeneralizationOptions dg, bool sam,
        Func<string, DomainGeneralizationOptions, int, int, ClassifierTrainingOptions> trainingOptions, Func<DomainGeneralizationOptions, int, nn.Module<Tensor, Tensor>> createModel)
    {
        using var model = createModel(dg, 0);
        using var scope = NewDisposeScope();
        var data = Synthetic(dg, TimedSteps(dg));
        var process = Process.GetCurrentProcess();
        Cost Steps(string method)
        {
            var clock = new Stopwatch();
            TimeSpan cpu = default;
            Cost cost = default;
            void Progress(EpochReport report)
            {
                process.Refresh();
                if (report.Epoch == 1)
                {
                    cpu = process.TotalProcessorTime;
                    clock.Restart();
                }
                else
                    cost = new Cost(clock.Elapsed.TotalSeconds / Math.Max(1, report.Steps), (process.TotalProcessorTime - cpu).TotalSeconds / Math.Max(1, report.Steps));
            }
            var options = trainingOptions(method, dg, 2, 0) with { Averaging = null, Progress = Progress };
            new ClassifierTrainer(options, CPU).Train(model, data, null);
            return cost;
        }
        var plain = Steps("ERM");
        Cost? samCost = sam ? Steps("SAM") : null;
        ClassifierEvaluation.Evaluate(model, data, dg.BatchPerDomain, CPU);
        process.Refresh();
        var cpuStart = process.TotalProcessorTime;
        var evaluation = Stopwatch.StartNew();
        ClassifierEvaluation.Evaluate(model, data, dg.BatchPerDomain, CPU);
        process.Refresh();
        return (plain, samCost, new Cost(evaluation.Elapsed.TotalSeconds / data.Count, (process.TotalProcessorTime - cpuStart).TotalSeconds / data.Count));
    }

    // Wall-clock and process CPU seconds.
    private readonly record struct Cost(double Wall, double Cpu);

    // `steps` batches per training domain of uniform [0, 1) images of the configured shape, labelled at random.
    private static TensorDataset Synthetic(DomainGeneralizationOptions dg, int steps)
    {
        long n = (long)dg.BatchPerDomain * steps;
        using var generator = new Generator(0, CPU);
        return new TensorDataset(rand(new[] { TrainingDomains * n, 1, dg.InputSide, dg.InputSide }, generator: generator),
            randint(0, Classes, new[] { TrainingDomains * n }, generator: generator))
        {
            Domains = arange(TrainingDomains).repeat_interleave(n),
        };
    }
}
