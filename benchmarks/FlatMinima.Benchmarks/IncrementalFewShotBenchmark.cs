using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using FlatMinima.Torch.Data;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Models;
using FlatMinima.Torch.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Benchmarks;

/// <summary>Settings of the Fashion-MNIST incremental few-shot benchmark.</summary>
internal sealed record IncrementalOptions
{
    /// <summary>All 6,000 training images per base class, 30 base epochs, all 1,000 test images per class, 10 seeds.</summary>
    public static IncrementalOptions Full { get; } = new() { BasePerClass = 6000, Epochs = 30, TestPerClass = 1000, Seeds = 10 };

    /// <summary>Finishes in about 30 minutes on 2 cores (docs/results-incremental.md).</summary>
    public static IncrementalOptions Reduced { get; } = new() { BasePerClass = 600, Epochs = 5, TestPerClass = 200, Seeds = 5 };

    public string Preset { get; init; } = "full";
    public int BasePerClass { get; init; }
    public int Epochs { get; init; }
    public int TestPerClass { get; init; }
    public int Seeds { get; init; }
    public int Shots { get; init; } = 5;
    public ImageClassifierArchitecture Architecture { get; init; } = ImageClassifierArchitecture.ResNet20;
    public string? Output { get; init; }
}

/// <summary>
/// F2M on Fashion-MNIST (issue 5's protocol): base session = classes 0–5 (T-shirt/top … Sandal) with their training
/// images; then the four other classes (Shirt, Sneaker, Bag, Ankle boot) arrive either as 4 sessions of 1 new class or 2
/// sessions of 2 new classes, with 5 shots each, drawn per seed from the training images. After every session: accuracy
/// on the test images of all classes seen so far, by nearest prototype. Methods: F2M (flat-region base, clamped
/// range-parameter sessions), F2M without the flat-region search (plain cross-entropy base), prototype-only (plain base,
/// no session fine-tuning) and naive fine-tuning (plain base, every parameter trained, no clamp). Two base models are
/// trained (flat and plain, same seed and budget) and shared by all seeds.
/// </summary>
internal static class IncrementalFewShotBenchmark
{
    private static readonly int[] BaseClasses = { 0, 1, 2, 3, 4, 5 };
    private static readonly int[] NovelClasses = { 6, 7, 8, 9 };
    private static readonly string[] Methods = { "F2M", "F2M w/o flat-region search", "Prototype only", "Naive fine-tuning" };

    public static void Run(BenchmarkOptions options)
    {
        var o = options.Incremental;
        var trainSet = LoadSplit(options.FashionMnist, train: true);
        var testSet = LoadSplit(options.FashionMnist, train: false);
        var clock = Stopwatch.StartNew();
        Console.WriteLine();
        Console.WriteLine($"## F2M incremental few-shot, Fashion-MNIST: {o.Architecture}, base classes 0–5 with {o.BasePerClass} images each, {o.Epochs} base epochs, " +
                          $"{o.Shots} shots, {o.TestPerClass} test images per class, seeds 1–{o.Seeds}");

        var (mean, std) = Statistics(trainSet);
        var baseData = Select(trainSet, BaseClasses, o.BasePerClass, mean, std);
        var test = Select(testSet, BaseClasses.Concat(NovelClasses).ToArray(), o.TestPerClass, mean, std);
        var novelPool = Select(trainSet, NovelClasses, int.MaxValue, mean, std);

        var flatRegion = new FlatRegionOptions();
        var bases = new Dictionary<bool, (IncrementalLearner Learner, double HeadAccuracy, double Seconds)>();
        foreach (bool flat in new[] { true, false })
        {
            var baseClock = Stopwatch.StartNew();
            manual_seed(1);
            var network = CreateNetwork(o.Architecture);
            var training = new ClassifierTrainingOptions
            {
                Epochs = o.Epochs, BatchSize = 128, LearningRate = 0.1, WeightDecay = 5e-4, Seed = 1,
                GradientStep = flat ? flatRegion : null,
            };
            new ClassifierTrainer(training, CPU).Train(network, baseData);
            var head = ClassifierEvaluation.Evaluate(network, Restrict(test, BaseClasses.Length), 256, CPU).Accuracy;
            var learner = IncrementalLearner.FromBaseSession(network, () => CreateNetwork(o.Architecture), baseData.Inputs, baseData.Labels, flatRegion);
            bases[flat] = (learner, head, baseClock.Elapsed.TotalSeconds);
            Console.WriteLine($"base model ({(flat ? "flat-region search" : "plain cross-entropy")}): softmax-head test accuracy on the 6 base classes {head:P2}, " +
                              $"{baseClock.Elapsed.TotalSeconds:F0} s   [{clock.Elapsed.TotalMinutes:F1} min]");
        }

        var protocols = new[] { ("4 sessions × 1-way 5-shot", 1), ("2 sessions × 2-way 5-shot", 2) };
        var results = new List<(string Protocol, string Method, int Seed, double[] Accuracy)>();
        foreach (var (protocol, way) in protocols)
            for (int seed = 1; seed <= o.Seeds; seed++)
            {
                var shots = DrawShots(novelPool, seed, o.Shots);
                foreach (var method in Methods)
                {
                    var accuracy = RunSessions(bases[method == "F2M"].Learner, method, shots, way, test);
                    results.Add((protocol, method, seed, accuracy));
                    Console.WriteLine($"{protocol}, seed {seed}, {method}: [{string.Join(", ", accuracy.Select(a => a.ToString("P2")))}]   [{clock.Elapsed.TotalMinutes:F1} min]");
                }
                shots.Inputs.Dispose();
                shots.Labels.Dispose();
            }

        foreach (var b in bases.Values) b.Learner.Dispose();
        string report = Report(results, protocols.Select(p => p.Item1).ToArray(), bases.ToDictionary(b => b.Key, b => (b.Value.HeadAccuracy, b.Value.Seconds)), o, clock.Elapsed);
        Console.WriteLine();
        Console.WriteLine(report);
        if (o.Output is string path)
        {
            File.WriteAllText(path, report);
            Console.WriteLine($"(written to {path})");
        }
    }

    // One method on one shot draw: accuracy after the base session and after each incremental session.
    private static double[] RunSessions(IncrementalLearner baseLearner, string method, TensorDataset shots, int way, TensorDataset test)
    {
        using var scope = NewDisposeScope();
        using var learner = baseLearner.Clone();
        var session = method switch
        {
            "Prototype only" => new IncrementalSessionOptions { Epochs = 0 },
            "Naive fine-tuning" => new IncrementalSessionOptions { TrainAllParameters = true, ClampToRegion = false },
            _ => new IncrementalSessionOptions(),
        };
        var accuracy = new List<double> { Accuracy(learner, test) };
        for (int first = 0; first < NovelClasses.Length; first += way)
        {
            var rows = shots.Labels.ge(first).logical_and(shots.Labels.lt(first + way)).nonzero().flatten();
            var x = shots.Inputs.index_select(0, rows);
            var y = shots.Labels.index_select(0, rows).add(BaseClasses.Length);
            learner.AddSession(x, y, session, exemplarsPerClass: int.MaxValue); // every shot is replayed in later sessions
            accuracy.Add(Accuracy(learner, test));
        }
        return accuracy.ToArray();
    }

    // Nearest-prototype accuracy on the test images of the classes the learner has seen.
    private static double Accuracy(IncrementalLearner learner, TensorDataset test)
    {
        using var scope = NewDisposeScope();
        var rows = test.Labels.lt(learner.ClassCount).nonzero().flatten();
        long correct = 0;
        for (long start = 0; start < rows.shape[0]; start += 500)
        {
            using var batch = NewDisposeScope();
            var index = rows.narrow(0, start, Math.Min(500, rows.shape[0] - start));
            correct += learner.Logits(test.Inputs.index_select(0, index)).argmax(1).eq(test.Labels.index_select(0, index)).sum().item<long>();
        }
        return (double)correct / rows.shape[0];
    }

    private static nn.Module<Tensor, Tensor> CreateNetwork(ImageClassifierArchitecture architecture) =>
        ImageClassifierModels.Create(architecture, 1, BaseClasses.Length, 28, 28);

    private static IdxImageSet LoadSplit(string directory, bool train)
    {
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException(
                $"Fashion-MNIST was not found in '{directory}'. The incremental few-shot benchmark needs the full data set: " +
                "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu, installs to /usr/share/datasets/fashion-mnist) or pass --fashion-mnist DIR with the four idx files.");
        return IdxImageSet.LoadSplit(directory, train);
    }

    private static (float Mean, float Std) Statistics(IdxImageSet set)
    {
        double sum = 0, sq = 0;
        foreach (byte b in set.Pixels) { double v = b / 255.0; sum += v; sq += v * v; }
        double mean = sum / set.Pixels.Length;
        return ((float)mean, (float)Math.Sqrt(sq / set.Pixels.Length - mean * mean));
    }

    // The first `perClass` images of each class in `classes`, labelled by their position in `classes`.
    private static TensorDataset Select(IdxImageSet set, int[] classes, int perClass, float mean, float std)
    {
        var rows = classes.SelectMany(c => Enumerable.Range(0, set.Count).Where(i => set.Labels[i] == c).Take(perClass)).ToArray();
        var subset = set.Subset(rows).ToTensorDataset(mean, std);
        var relabel = tensor(rows.Select(i => (long)Array.IndexOf(classes, (int)set.Labels[i])).ToArray());
        subset.Labels.Dispose();
        return subset with { Labels = relabel };
    }

    private static TensorDataset Restrict(TensorDataset data, int classCount)
    {
        var rows = data.Labels.lt(classCount).nonzero().flatten();
        return new TensorDataset(data.Inputs.index_select(0, rows), data.Labels.index_select(0, rows));
    }

    // `shots` images per novel class, drawn with the seed; labels 0..3 in NovelClasses order.
    private static TensorDataset DrawShots(TensorDataset pool, int seed, int shots)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)seed, CPU);
        var rows = new List<Tensor>();
        for (int c = 0; c < NovelClasses.Length; c++)
        {
            var members = pool.Labels.eq(c).nonzero().flatten();
            rows.Add(members.index_select(0, randperm(members.shape[0], generator: generator).narrow(0, 0, shots)));
        }
        var index = cat(rows, 0);
        return new TensorDataset(pool.Inputs.index_select(0, index).MoveToOuterDisposeScope(), pool.Labels.index_select(0, index).MoveToOuterDisposeScope());
    }

    private static string Report(List<(string Protocol, string Method, int Seed, double[] Accuracy)> results, string[] protocols,
        Dictionary<bool, (double HeadAccuracy, double Seconds)> bases, IncrementalOptions o, TimeSpan elapsed)
    {
        var text = new StringBuilder();
        text.AppendLine($"Preset {o.Preset}: {o.Architecture}, base classes 0–5 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal) with {o.BasePerClass} training images each, " +
                        $"{o.Epochs} base epochs (SGD 0.1, cosine, batch 128, weight decay 5e-4); novel classes Shirt, Sneaker, Bag, Ankle boot with {o.Shots} shots each; " +
                        $"{o.TestPerClass} test images per class; seeds 1–{o.Seeds} (shot draws); wall time {elapsed.TotalMinutes:F1} min.");
        text.AppendLine();
        foreach (var (flat, b) in bases.OrderByDescending(b => b.Key))
            text.AppendLine($"- Base model with {(flat ? "the flat-region search (b = 0.01, M = 2, std weight 2, discrete Beta noise, last 4 convs)" : "plain cross-entropy")}: " +
                            $"softmax-head accuracy on the base test classes {b.HeadAccuracy:P2}, trained in {b.Seconds:F0} s.");
        foreach (var protocol in protocols)
        {
            var rows = results.Where(r => r.Protocol == protocol).ToArray();
            int sessions = rows[0].Accuracy.Length;
            text.AppendLine();
            text.AppendLine($"### {protocol}: accuracy (%) on all classes seen so far, mean ± standard error over {o.Seeds} seeds");
            text.AppendLine();
            text.AppendLine("| Method | " + string.Join(" | ", Enumerable.Range(0, sessions).Select(s => s == 0 ? "base (6)" : $"S{s} ({6 + s * (4 / (sessions - 1))})")) + " | Average | Drop (first → last) |");
            text.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", sessions + 2)));
            var averages = new Dictionary<string, double>();
            var drops = new Dictionary<string, double>();
            foreach (var method in Methods)
            {
                var runs = rows.Where(r => r.Method == method).Select(r => r.Accuracy).ToArray();
                var cells = Enumerable.Range(0, sessions).Select(s => MeanSe(runs.Select(a => a[s]).ToArray()));
                var average = runs.Select(a => a.Average()).ToArray();
                var drop = runs.Select(a => a[0] - a[^1]).ToArray();
                averages[method] = average.Average();
                drops[method] = drop.Average();
                text.AppendLine($"| {method} | {string.Join(" | ", cells)} | {MeanSe(average)} | {MeanSe(drop)} |");
            }
            text.AppendLine();
            var beaten = Methods.Skip(1).Where(m => averages["F2M"] >= averages[m]).ToArray();
            text.AppendLine($"F2M's average is ≥ {beaten.Length} of the {Methods.Length - 1} baselines' ({(beaten.Length == 0 ? "none" : string.Join(", ", beaten))}); " +
                            $"its drop is {(drops["F2M"] < drops["Naive fine-tuning"] ? "smaller" : "not smaller")} than naive fine-tuning's " +
                            $"({drops["F2M"] * 100:F2} vs {drops["Naive fine-tuning"] * 100:F2} points).");
        }
        return text.ToString();
    }

    private static string MeanSe(double[] values)
    {
        double mean = values.Average();
        double se = values.Length > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1) / values.Length) : 0;
        return $"{mean * 100:F2} ± {se * 100:F2}";
    }
}
