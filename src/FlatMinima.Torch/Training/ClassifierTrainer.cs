using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>Examples as tensors: inputs <c>[N, C, H, W]</c> (float32, already normalized) and class indices <c>[N]</c> (int64).</summary>
/// <param name="Inputs">The inputs.</param>
/// <param name="Labels">0-based class indices.</param>
public sealed record TensorDataset(Tensor Inputs, Tensor Labels)
{
    /// <summary>Number of examples.</summary>
    public long Count => Labels.shape[0];

    /// <summary>Optional 0-based domain (environment) of each example, int64 <c>[N]</c>. Training data with domains is
    /// sampled one batch per domain per step; validation losses and accuracies are means over domains (DomainBed).</summary>
    public Tensor? Domains { get; init; }
}

/// <summary>
/// Mini-batch training of a classifier with cross-entropy: SGD or AdamW, a learning-rate schedule, optional
/// label smoothing and gradient clipping, and an optional sharpness-aware step (SAM, ASAM, SA-GD, m-sharpness).
/// </summary>
public sealed class ClassifierTrainer
{
    private readonly ClassifierTrainingOptions _options;
    private readonly Device _device;

    /// <summary>Creates a trainer; the options are validated here.</summary>
    public ClassifierTrainer(ClassifierTrainingOptions options, Device device)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _device = device ?? throw new ArgumentNullException(nameof(device));
        options.Validate();
    }

    /// <summary>
    /// Trains <paramref name="model"/> (already on the trainer's device) in place and returns the epoch reports. With
    /// <see cref="ClassifierTrainingOptions.Averaging"/> the model ends with the averaged weights (and recomputed BatchNorm
    /// statistics); the last report carries <see cref="EpochReport.Averaging"/> and the averaged model's validation metrics.
    /// </summary>
    /// <param name="model">The network.</param>
    /// <param name="train">Training examples; with <see cref="TensorDataset.Domains"/> each step takes a batch from every domain.</param>
    /// <param name="validation">Evaluated after every epoch (and every <c>EvaluationFrequency</c> steps for SWAD, which needs it).</param>
    /// <param name="resumeFrom">
    /// A checkpoint written by an earlier run with the same options and data (<see cref="ClassifierTrainingOptions.CheckpointPath"/>):
    /// the model's weights and buffers, the optimizer (and SAM) state, the averaging state, the completed epochs and steps
    /// and the sampler's random state are restored and training continues with the next epoch, exactly as the
    /// uninterrupted run (bit-identical on CPU). The reports returned are those of the epochs run now.
    /// </param>
    public IReadOnlyList<EpochReport> Train(nn.Module<Tensor, Tensor> model, TensorDataset train, TensorDataset? validation = null, string? resumeFrom = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0) throw new ArgumentException("The training data is empty.", nameof(train));
        var o = _options;
        bool hasValidation = validation is not null && validation.Count > 0;
        if (o.Averaging is { NeedsValidation: true } && !hasValidation)
            throw new ArgumentException($"{nameof(ClassifierTrainingOptions.Averaging)}: {o.Averaging.GetType().Name.Replace("Options", "")} needs validation data " +
                "(its loss decides the averaging window); pass a non-empty validation set.", nameof(validation));
        if (o.TuneGlibcMalloc) Native.GlibcMalloc.TuneForTensors();
        var parameters = model.parameters().Where(p => p.requires_grad).ToArray();
        if (parameters.Length == 0) throw new ArgumentException("The model has no trainable parameters.", nameof(model));
        using var optimizer = CreateOptimizer(parameters);
        using var sam = o.SharpnessAware is null ? null : new SharpnessAwareMinimizer(model, optimizer, o.SharpnessAware);
        using var generator = new Generator((ulong)o.Seed, CPU);
        using var noiseGenerator = new Generator((ulong)o.Seed + 7919, CPU);
        using var flatRegion = o.FlatRegion is null ? null : new FlatRegionSearch(model, o.FlatRegion, noiseGenerator);
        using var sampler = new BatchSampler(train, o.BatchSize, generator);
        int stepsPerEpoch = sampler.StepsPerEpoch;
        using var averager = o.Averaging?.CreateAverager(model, new TrainingPlan(stepsPerEpoch, o.Epochs));

        var run = new TrainingCheckpoint.Fingerprint(o.Epochs, stepsPerEpoch, o.BatchSize, o.Seed, train.Count, o.SharpnessAware is not null, o.Averaging?.ToString(), o.FlatRegion is not null);
        var done = resumeFrom is null ? default
            : TrainingCheckpoint.Load(resumeFrom, run, generator, noiseGenerator, sampler, model, optimizer, sam, averager);

        var reports = new List<EpochReport>();
        long step = done.CompletedSteps;
        double rate = o.LearningRate;
        bool stop = false;
        for (int epoch = done.CompletedEpochs + 1; epoch <= o.Epochs && !stop; epoch++)
        {
            var clock = Stopwatch.StartNew();
            model.train();
            double lossSum = 0;
            long correct = 0, seen = 0;
            int b = 0;
            using (var epochScope = NewDisposeScope())
            {
                foreach (var index in sampler.Epoch())
                {
                    o.CancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    long size = index.shape[0];
                    b++;
                    var x = train.Inputs.index_select(0, index).to(_device);
                    var y = train.Labels.index_select(0, index).to(_device);

                    rate = o.Schedule.At(o.LearningRate, step, stepsPerEpoch, o.Epochs);
                    if (averager is not null) rate = averager.LearningRate(step, rate);
                    LearningRateSchedule.Apply(optimizer, rate);
                    var (loss, hits) = sam is not null ? SharpnessAwareGradient(model, sam, x, y)
                        : flatRegion is not null ? FlatRegionGradient(model, flatRegion, x, y)
                        : PlainGradient(model, optimizer, x, y);
                    double lossValue = loss.item<float>();
                    if (!double.IsFinite(lossValue))
                        throw new TrainingDivergedException(epoch, b, lossValue, sam is not null);
                    if (o.GradientClipNorm is double clip) nn.utils.clip_grad_norm_(parameters, clip);
                    optimizer.step();
                    step++;
                    lossSum += lossValue * size;
                    correct += hits.item<long>();
                    seen += size;
                    if (averager is null) continue;
                    averager.AfterStep(step);
                    if (averager.EvaluationFrequency is int every && step % every == 0)
                    {
                        averager.AfterEvaluation(Evaluate(model, validation!, o.BatchSize, _device).Loss);
                        if (stop = averager.StopRequested) break;
                    }
                }
            }
            averager?.AfterEpoch(epoch);
            AveragingReport? averaging = null;
            if (averager is not null && (stop || epoch == o.Epochs))
                averaging = FinishAveraging(model, averager, train, validation, generator);
            double? validationLoss = null, validationAccuracy = null;
            if (hasValidation)
                (validationLoss, validationAccuracy) = Evaluate(model, validation!, o.BatchSize, _device);
            var report = new EpochReport(epoch, o.Epochs, lossSum / seen, (double)correct / seen, validationLoss, validationAccuracy, rate, clock.Elapsed)
            {
                Averaging = averaging,
            };
            reports.Add(report);
            if (o.CheckpointPath is string path && !stop && epoch < o.Epochs)
                TrainingCheckpoint.Save(path, run, new(epoch, step), generator, noiseGenerator, sampler, model, optimizer, sam, averager);
            o.Progress?.Invoke(report);
        }
        model.eval();
        return reports;
    }

    // Closes SWAD's open segment, writes the average into the model and recomputes BatchNorm statistics for it.
    private AveragingReport FinishAveraging(nn.Module<Tensor, Tensor> model, IWeightAverager averager, TensorDataset train,
        TensorDataset? validation, Generator generator)
    {
        if (averager.HasOpenSegment && validation is not null)
            averager.AfterEvaluation(Evaluate(model, validation, _options.BatchSize, _device).Loss);
        var report = averager.Finish();
        if (report.AveragedSteps == 0 || averager.AveragesBuffers || !_options.Averaging!.RecomputeBatchNorm || !BatchNormRecompute.HasBatchNorm(model))
            return report;
        using var scope = NewDisposeScope();
        var order = randperm(train.Count, generator: generator);
        var batches = Enumerable.Range(0, (int)((train.Count + _options.BatchSize - 1) / _options.BatchSize))
            .Select(b => order.narrow(0, (long)b * _options.BatchSize, Math.Min(_options.BatchSize, train.Count - (long)b * _options.BatchSize)))
            .Where(index => index.shape[0] > 1)
            .Select(index => train.Inputs.index_select(0, index).to(_device));
        int used = BatchNormRecompute.Run(model, batches, _options.Averaging.BatchNormBatches);
        return report with { BatchNormBatches = used };
    }

    /// <summary>
    /// Mean cross-entropy and accuracy of <paramref name="model"/> in eval mode, in batches. With
    /// <see cref="TensorDataset.Domains"/>, both are the mean over domains of each domain's mean (DomainBed's
    /// training-domain validation).
    /// </summary>
    public static (double Loss, double Accuracy) Evaluate(nn.Module<Tensor, Tensor> model, TensorDataset data, int batchSize, Device device)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count == 0) throw new ArgumentException("The data is empty.", nameof(data));
        bool wasTraining = model.training;
        model.eval();
        using var outer = NewDisposeScope();
        long groups = data.Domains is Tensor dom ? dom.max().item<long>() + 1 : 1;
        var lossSums = zeros(groups, ScalarType.Float64, device);
        var hitSums = zeros(groups, ScalarType.Float64, device);
        var counts = zeros(groups, ScalarType.Float64, device);
        using (no_grad())
        {
            for (long start = 0; start < data.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                long size = Math.Min(batchSize, data.Count - start);
                var x = data.Inputs.narrow(0, start, size).to(device);
                var y = data.Labels.narrow(0, start, size).to(device);
                var group = data.Domains is Tensor d ? d.narrow(0, start, size).to(device) : zeros(size, ScalarType.Int64, device);
                var logits = model.call(x);
                lossSums.index_add_(0, group, nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.None).to_type(ScalarType.Float64), 1.0);
                hitSums.index_add_(0, group, logits.argmax(1).eq(y).to_type(ScalarType.Float64), 1.0);
                counts.index_add_(0, group, ones(size, ScalarType.Float64, device), 1.0);
            }
        }
        model.train(wasTraining);
        var present = counts.gt(0);
        var loss = lossSums.masked_select(present).div(counts.masked_select(present)).mean().item<double>();
        var accuracy = hitSums.masked_select(present).div(counts.masked_select(present)).mean().item<double>();
        return (loss, accuracy);
    }

    private (Tensor Loss, Tensor Correct) PlainGradient(nn.Module<Tensor, Tensor> model, optim.Optimizer optimizer, Tensor x, Tensor y)
    {
        optimizer.zero_grad();
        var logits = model.call(x);
        var loss = Loss(logits, y);
        loss.backward();
        return (loss.detach(), logits.argmax(1).eq(y).sum());
    }

    // F2M: the reported loss is the mean over the noisy samples; accuracy is the first sample's.
    private (Tensor Loss, Tensor Correct) FlatRegionGradient(nn.Module<Tensor, Tensor> model, FlatRegionSearch search, Tensor x, Tensor y)
    {
        long? correct = null;
        var losses = search.ComputeGradient(() =>
        {
            var logits = model.call(x);
            correct ??= logits.argmax(1).eq(y).sum().item<long>();
            return Loss(logits, y);
        });
        return (losses.mean().to_type(ScalarType.Float32), tensor(correct ?? 0));
    }

    private (Tensor Loss, Tensor Correct) SharpnessAwareGradient(nn.Module<Tensor, Tensor> model, SharpnessAwareMinimizer sam, Tensor x, Tensor y)
    {
        var xs = _options.ShardCount > 1 ? x.chunk(_options.ShardCount) : new[] { x };
        var ys = _options.ShardCount > 1 ? y.chunk(_options.ShardCount) : new[] { y };
        var correct = zeros(1, ScalarType.Int64, _device);
        var closures = new Func<Tensor>[xs.Length];
        for (int s = 0; s < xs.Length; s++)
        {
            var (xi, yi) = (xs[s], ys[s]);
            bool clean = true;
            closures[s] = () =>
            {
                var logits = model.call(xi);
                var loss = Loss(logits, yi);
                loss.backward();
                if (clean)
                {
                    correct.add_(logits.argmax(1).eq(yi).sum());
                    clean = false;
                }
                return loss;
            };
        }
        var meanLoss = sam.ComputeGradient(closures);
        return (meanLoss, correct.sum());
    }

    private Tensor Loss(Tensor logits, Tensor y) =>
        nn.functional.cross_entropy(logits, y, label_smoothing: _options.LabelSmoothing);

    private optim.Optimizer CreateOptimizer(IEnumerable<Parameter> parameters) => _options.Optimizer switch
    {
        BaseOptimizerKind.Sgd => optim.SGD(parameters, _options.LearningRate, _options.Momentum, 0, _options.WeightDecay, _options.Nesterov),
        BaseOptimizerKind.AdamW => optim.AdamW(parameters, _options.LearningRate, _options.Beta1, _options.Beta2, 1e-8, _options.WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(ClassifierTrainingOptions.Optimizer), _options.Optimizer, "Unknown optimizer."),
    };
}
