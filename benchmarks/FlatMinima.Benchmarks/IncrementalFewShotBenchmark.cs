using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Globalization;
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
    /// <summary>The reference code's session rules: the scaled gradient rounded to multiples of b/4 with one raise of the
    /// step count when everything rounds to zero, the earlier sessions' prototypes re-estimated from their exemplars, and
    /// raw prototypes in the session loss (scoring still L2-normalises them).</summary>
    public static IncrementalSessionOptions ReferenceSession { get; } = new()
    {
        RoundingReduction = 4, Rounding = SessionRoundingMode.Gradient, RoundingStepIncrease = 1, RefreshNovelPrototypes = true,
        LossNormalization = PrototypeNormalization.None,
    };

    /// <summary>All 6,000 training images per base class, 30 base epochs, all 1,000 test images per class, 10 seeds.</summary>
    public static IncrementalOptions Full { get; } = new() { BasePerClass = 6000, Epochs = 30, TestPerClass = 1000, Seeds = 10 };

    /// <summary>Finishes in about 30 minutes on 2 cores (docs/results-incremental.md).</summary>
    public static IncrementalOptions Reduced { get; } = new() { BasePerClass = 600, Epochs = 5, TestPerClass = 200, Seeds = 5 };

    /// <summary>The paper's protocol as far as Fashion-MNIST allows: N-way 5-shot sessions (2 × 2-way), the reference's
    /// session rules, 15 base epochs on every training image of the base classes, every test image, 10 shot draws.</summary>
    public static IncrementalOptions Paper { get; } = new()
    {
        BasePerClass = 6000, Epochs = 15, TestPerClass = 1000, Seeds = 10, Ways = new[] { 2 }, Session = ReferenceSession,
    };

    public string Preset { get; init; } = "full";
    public int BasePerClass { get; init; }
    public int Epochs { get; init; }
    public int TestPerClass { get; init; }
    public int Seeds { get; init; }
    public int Shots { get; init; } = 5;
    public ImageClassifierArchitecture Architecture { get; init; } = ImageClassifierArchitecture.ResNet20;

    /// <summary>Session protocols, by new classes per session (1: 4 sessions × 1-way; 2: 2 sessions × 2-way).</summary>
    public int[] Ways { get; init; } = { 1, 2 };

    /// <summary>The sessions of F2M and of F2M without the flat region (the library defaults unless a preset or flag says otherwise).</summary>
    public IncrementalSessionOptions Session { get; init; } = new();

    /// <summary>A folder where the two base models are saved after training and loaded from on later runs with the same settings.</summary>
    public string? BaseCache { get; init; }

    public string? Output { get; init; }

    /// <summary>Session options with <paramref name="rounding"/>: off, update (whole update rounded to b/4) or reference
    /// (scaled gradient rounded to b/4, one raise of the step count).</summary>
    public static IncrementalSessionOptions WithRounding(IncrementalSessionOptions session, string rounding) => rounding switch
    {
        "off" => session with { RoundingReduction = null, RoundingStepIncrease = 0, Rounding = SessionRoundingMode.Update },
        "update" => session with { RoundingReduction = 4, RoundingStepIncrease = 0, Rounding = SessionRoundingMode.Update },
        "reference" => session with { RoundingReduction = 4, RoundingStepIncrease = 1, Rounding = SessionRoundingMode.Gradient },
        _ => throw new ArgumentException($"Unknown --f2m-rounding {rounding}; use off, update or reference."),
    };

    /// <summary>The session settings in a few words.</summary>
    public static string Describe(IncrementalSessionOptions s) =>
        $"SGD {s.LearningRate.ToString(CultureInfo.InvariantCulture)}, momentum {s.Momentum.ToString(CultureInfo.InvariantCulture)}, " +
        $"weight decay {s.WeightDecay.ToString(CultureInfo.InvariantCulture)}, {s.Epochs} epochs (one batch each), " +
        (s.RoundingReduction is int r
            ? $"{(s.Rounding == SessionRoundingMode.Gradient ? "lr·gradient" : "update")} rounded to b/{r}" + (s.RoundingStepIncrease > 0 ? $" (step count raised up to {s.RoundingStepIncrease}× when it rounds to 0)" : "")
            : "no rounding") +
        $", earlier sessions' prototypes {(s.RefreshNovelPrototypes ? "re-estimated from their exemplars" : "fixed")}, prototype normalisation {s.Normalization}" +
        (s.LossNormalization is PrototypeNormalization loss && loss != s.Normalization ? $" ({loss} in the loss)" : "");
}

/// <summary>
/// F2M on Fashion-MNIST: base session = classes 0–5 (T-shirt/top … Sandal) with their training images; then the four
/// other classes (Shirt, Sneaker, Bag, Ankle boot) arrive as sessions of N new classes (4 × 1-way and/or 2 × 2-way) with
/// 5 shots each, drawn per seed from the training images. After every session: accuracy on the test images of all
/// classes seen so far, by nearest prototype (also split into base-class and novel-class test images). Two base models
/// are trained (flat-region search and plain cross-entropy, same seed and budget) and shared by all seeds, as the
/// reference shares one base model over its few-shot draws. Methods: F2M (flat base, clamped range-parameter sessions),
/// F2M without the flat region (plain base, the same sessions without the clamp), F2M's clamped sessions on the plain base,
/// prototype-only on the plain and on the flat base (no session training), and fine-tuning (plain base, every parameter,
/// no clamp, no rounding).
/// </summary>
internal static class IncrementalFewShotBenchmark
{
    private static readonly int[] BaseClasses = { 0, 1, 2, 3, 4, 5 };
    private static readonly int[] NovelClasses = { 6, 7, 8, 9 };
    private const string F2M = "F2M";
    private const string NoFlatRegion = "F2M w/o flat region (plain base, no clamp)";
    private const string PlainClamped = "F2M sessions on the plain base (clamped)";
    private const string PrototypesPlain = "Prototype only (plain base)";
    private const string PrototypesFlat = "Prototype only (flat base)";
    private const string FineTuning = "Fine-tuning (plain base)";
    private static readonly string[] Methods = { F2M, NoFlatRegion, PlainClamped, PrototypesPlain, PrototypesFlat, FineTuning };

    private static bool UsesFlatBase(string method) => method is F2M or PrototypesFlat;

    public static void Run(BenchmarkOptions options)
    {
        var o = options.Incremental;
        if (o.Ways.Length == 0 || o.Ways.Any(w => w < 1 || NovelClasses.Length % w != 0))
            throw new ArgumentException($"--f2m-ways must list divisors of {NovelClasses.Length} (the novel classes): 1, 2 or 4; got {string.Join(",", o.Ways)}.");
        o.Session.Validate();
        var trainSet = LoadSplit(options.FashionMnist, train: true);
        var testSet = LoadSplit(options.FashionMnist, train: false);
        var clock = Stopwatch.StartNew();
        Console.WriteLine();
        Console.WriteLine($"## F2M incremental few-shot, Fashion-MNIST: {o.Architecture}, base classes 0–5 with {o.BasePerClass} images each, {o.Epochs} base epochs, " +
                          $"{o.Shots} shots, {o.TestPerClass} test images per class, seeds 1–{o.Seeds}; sessions: {IncrementalOptions.Describe(o.Session)}");

        var (mean, std) = Statistics(trainSet);
        var baseData = Select(trainSet, BaseClasses, o.BasePerClass, mean, std);
        var test = Select(testSet, BaseClasses.Concat(NovelClasses).ToArray(), o.TestPerClass, mean, std);
        var novelPool = Select(trainSet, NovelClasses, int.MaxValue, mean, std);

        var flatRegion = new FlatRegionOptions();
        var bases = new Dictionary<bool, (IncrementalLearner Learner, double HeadAccuracy, double Seconds, bool Cached)>();
        foreach (bool flat in new[] { true, false })
        {
            var baseClock = Stopwatch.StartNew();
            manual_seed(1);
            var network = CreateNetwork(o.Architecture);
            string? cache = o.BaseCache is null ? null
                : Path.Combine(o.BaseCache, $"f2m-base-{o.Architecture}-{o.BasePerClass}pc-{o.Epochs}ep-{(flat ? "flat" : "plain")}-seed1.bin");
            bool cached = cache is not null && File.Exists(cache);
            if (cached)
            {
                network.load(cache!);
            }
            else
            {
                var training = new ClassifierTrainingOptions
                {
                    Epochs = o.Epochs, BatchSize = 128, LearningRate = 0.1, WeightDecay = 5e-4, Seed = 1,
                    GradientStep = flat ? flatRegion : null,
                };
                new ClassifierTrainer(training, CPU).Train(network, baseData);
                if (cache is not null)
                {
                    Directory.CreateDirectory(o.BaseCache!);
                    network.save(cache);
                }
            }
            var head = ClassifierEvaluation.Evaluate(network, Restrict(test, BaseClasses.Length), 256, CPU).Accuracy;
            var learner = IncrementalLearner.FromBaseSession(network, () => CreateNetwork(o.Architecture), baseData.Inputs, baseData.Labels, flatRegion);
            bases[flat] = (learner, head, baseClock.Elapsed.TotalSeconds, cached);
            Console.WriteLine($"base model ({(flat ? "flat-region search" : "plain cross-entropy")}{(cached ? ", loaded from " + cache : "")}): softmax-head test accuracy on the 6 base classes {head:P2}, " +
                              $"{baseClock.Elapsed.TotalSeconds:F0} s   [{clock.Elapsed.TotalMinutes:F1} min]");
        }
        // Accuracy after the base session does not depend on the shots: measured once per base model.
        var baseAccuracy = bases.ToDictionary(b => b.Key, b => Accuracy(b.Value.Learner, test));

        var protocols = o.Ways.Select(w => (Name: $"{NovelClasses.Length / w} sessions × {w}-way {o.Shots}-shot", Way: w)).ToArray();
        var results = new List<RunResult>();
        foreach (var (protocol, way) in protocols)
            for (int seed = 1; seed <= o.Seeds; seed++)
            {
                var shots = DrawShots(novelPool, seed, o.Shots);
                foreach (var method in Methods)
                {
                    var runClock = Stopwatch.StartNew();
                    var accuracy = RunSessions(bases[UsesFlatBase(method)].Learner, SessionOptions(method, o.Session), shots, way, test, baseAccuracy[UsesFlatBase(method)]);
                    results.Add(new RunResult(protocol, method, seed, accuracy));
                    var last = accuracy[^1];
                    Console.WriteLine($"{protocol}, seed {seed}, {method}: [{string.Join(", ", accuracy.Select(a => a.All.ToString("P2")))}]; last session: base classes {last.Base:P2}, " +
                                      $"novel classes {last.Novel:P2}; {runClock.Elapsed.TotalSeconds:F1} s   [{clock.Elapsed.TotalMinutes:F1} min]");
                }
                shots.Inputs.Dispose();
                shots.Labels.Dispose();
            }

        foreach (var b in bases.Values) b.Learner.Dispose();
        string report = Report(results, protocols.Select(p => p.Name).ToArray(), bases.ToDictionary(b => b.Key, b => (b.Value.HeadAccuracy, b.Value.Seconds, b.Value.Cached)), o, clock.Elapsed);
        Console.WriteLine();
        Console.WriteLine(report);
        if (o.Output is string path)
        {
            File.WriteAllText(path, report);
            Console.WriteLine($"(written to {path})");
        }
    }

    /// <summary>Accuracy on the test images of all classes seen so far, and split into base-class and novel-class images
    /// (Novel is NaN after the base session).</summary>
    private readonly record struct SessionAccuracy(double All, double Base, double Novel);

    private sealed record RunResult(string Protocol, string Method, int Seed, SessionAccuracy[] Accuracy);

    /// <summary>The session settings of each method.</summary>
    private static IncrementalSessionOptions SessionOptions(string method, IncrementalSessionOptions f2m) => method switch
    {
        F2M or PlainClamped => f2m,
        NoFlatRegion => f2m with { ClampToRegion = false },
        PrototypesPlain or PrototypesFlat => f2m with { Epochs = 0 },
        // Fine-tuning keeps the scoring normalisation in its loss: raw distances with every parameter free and no rounding diverge.
        FineTuning => IncrementalOptions.WithRounding(f2m, "off") with { TrainAllParameters = true, ClampToRegion = false, LossNormalization = null },
        _ => throw new ArgumentException($"Unknown method {method}."),
    };

    // One method on one shot draw: accuracy after the base session and after each incremental session.
    private static SessionAccuracy[] RunSessions(IncrementalLearner baseLearner, IncrementalSessionOptions session, TensorDataset shots, int way, TensorDataset test,
        SessionAccuracy baseAccuracy)
    {
        using var scope = NewDisposeScope();
        using var learner = baseLearner.Clone();
        var accuracy = new List<SessionAccuracy> { baseAccuracy };
        for (int first = 0; first < NovelClasses.Length; first += way)
        {
            var rows = shots.Labels.ge(first).logical_and(shots.Labels.lt(first + way)).nonzero().flatten();
            var x = shots.Inputs.index_select(0, rows);
            var y = shots.Labels.index_select(0, rows).add(BaseClasses.Length);
            try
            {
                learner.AddSession(x, y, session, exemplarsPerClass: int.MaxValue); // every shot is replayed in later sessions
            }
            catch (InvalidOperationException e) when (e.Message.Contains("session loss became"))
            {
                // A diverged session is a result (NaN in the tables), not a reason to stop the other methods.
                Console.WriteLine($"  diverged: {e.Message}");
                while (accuracy.Count <= NovelClasses.Length / way) accuracy.Add(new SessionAccuracy(double.NaN, double.NaN, double.NaN));
                break;
            }
            accuracy.Add(Accuracy(learner, test));
        }
        return accuracy.ToArray();
    }

    // Nearest-prototype accuracy on the test images of the classes the learner has seen (all, base classes, novel classes).
    private static SessionAccuracy Accuracy(IncrementalLearner learner, TensorDataset test)
    {
        using var scope = NewDisposeScope();
        var rows = test.Labels.lt(learner.ClassCount).nonzero().flatten();
        var correct = new List<Tensor>();
        for (long start = 0; start < rows.shape[0]; start += 500)
        {
            var index = rows.narrow(0, start, Math.Min(500, rows.shape[0] - start));
            correct.Add(learner.Logits(test.Inputs.index_select(0, index)).argmax(1).eq(test.Labels.index_select(0, index)));
        }
        var hits = cat(correct, 0).to_type(ScalarType.Float64);
        var isBase = test.Labels.index_select(0, rows).lt(BaseClasses.Length);
        double Mean(Tensor mask) => mask.any().item<bool>() ? hits.masked_select(mask).mean().ToDouble() : double.NaN;
        return new SessionAccuracy(hits.mean().ToDouble(), Mean(isBase), Mean(isBase.logical_not()));
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

    private static string Report(List<RunResult> results, string[] protocols, Dictionary<bool, (double HeadAccuracy, double Seconds, bool Cached)> bases,
        IncrementalOptions o, TimeSpan elapsed)
    {
        var text = new StringBuilder();
        text.AppendLine($"Preset {o.Preset}: {o.Architecture}, base classes 0–5 (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal) with {o.BasePerClass} training images each, " +
                        $"{o.Epochs} base epochs (SGD 0.1, cosine, batch 128, weight decay 5e-4); novel classes Shirt, Sneaker, Bag, Ankle boot with {o.Shots} shots each; " +
                        $"{o.TestPerClass} test images per class; seeds 1–{o.Seeds} (shot draws; the base models are shared); sessions of F2M: {IncrementalOptions.Describe(o.Session)}; " +
                        $"wall time {elapsed.TotalMinutes:F1} min.");
        text.AppendLine();
        foreach (var (flat, b) in bases.OrderByDescending(b => b.Key))
            text.AppendLine($"- Base model with {(flat ? "the flat-region search (b = 0.01, M = 2, std weight 2, discrete Beta noise, last 4 convs)" : "plain cross-entropy")}: " +
                            $"softmax-head accuracy on the base test classes {b.HeadAccuracy:P2}, {(b.Cached ? "loaded from the base cache" : $"trained in {b.Seconds:F0} s")}.");
        foreach (var protocol in protocols)
        {
            var rows = results.Where(r => r.Protocol == protocol).ToArray();
            int sessions = rows[0].Accuracy.Length;
            int way = NovelClasses.Length / (sessions - 1);
            text.AppendLine();
            text.AppendLine($"### {protocol}: accuracy (%) on all classes seen so far, mean ± standard error over {o.Seeds} seeds");
            text.AppendLine();
            text.AppendLine("| Method | " + string.Join(" | ", Enumerable.Range(0, sessions).Select(s => s == 0 ? "base (6)" : $"S{s} ({6 + s * way})")) +
                            " | Average | Drop (first → last) | Last: base classes | Last: novel classes |");
            text.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", sessions + 4)));
            var averages = new Dictionary<string, double>();
            foreach (var method in Methods)
            {
                var runs = rows.Where(r => r.Method == method).Select(r => r.Accuracy).ToArray();
                var cells = Enumerable.Range(0, sessions).Select(s => MeanSe(runs.Select(a => a[s].All).ToArray()));
                var average = runs.Select(a => a.Average(x => x.All)).ToArray();
                var drop = runs.Select(a => a[0].All - a[^1].All).ToArray();
                averages[method] = average.Average();
                text.AppendLine($"| {method} | {string.Join(" | ", cells)} | {MeanSe(average)} | {MeanSe(drop)} | " +
                                $"{MeanSe(runs.Select(a => a[^1].Base).ToArray())} | {MeanSe(runs.Select(a => a[^1].Novel).ToArray())} |");
            }
            text.AppendLine();
            var beaten = Methods.Skip(1).Where(m => averages[F2M] >= averages[m]).ToArray();
            var paired = rows.Where(r => r.Method == F2M).Join(rows.Where(r => r.Method == PrototypesPlain), r => r.Seed, r => r.Seed,
                (f, p) => f.Accuracy.Average(x => x.All) - p.Accuracy.Average(x => x.All)).ToArray();
            text.AppendLine($"F2M's average is ≥ {beaten.Length} of the {Methods.Length - 1} other methods' ({(beaten.Length == 0 ? "none" : string.Join(", ", beaten))}); " +
                            $"F2M − prototype-only (plain base), paired by seed: {MeanSe(paired)} points.");
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
