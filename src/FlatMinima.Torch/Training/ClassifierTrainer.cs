using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
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

    /// <summary>Trains <paramref name="model"/> (already on the trainer's device) in place and returns the epoch reports.</summary>
    public IReadOnlyList<EpochReport> Train(nn.Module<Tensor, Tensor> model, TensorDataset train, TensorDataset? validation = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0) throw new ArgumentException("The training data is empty.", nameof(train));
        var o = _options;
        if (o.TuneGlibcMalloc) Native.GlibcMalloc.TuneForTensors();
        var parameters = model.parameters().Where(p => p.requires_grad).ToArray();
        if (parameters.Length == 0) throw new ArgumentException("The model has no trainable parameters.", nameof(model));
        using var optimizer = CreateOptimizer(parameters);
        using var sam = o.SharpnessAware is null ? null : new SharpnessAwareMinimizer(model, optimizer, o.SharpnessAware);
        using var generator = new Generator((ulong)o.Seed, CPU);

        long n = train.Count;
        int stepsPerEpoch = (int)((n + o.BatchSize - 1) / o.BatchSize);
        var reports = new List<EpochReport>();
        long step = 0;
        double rate = o.LearningRate;
        for (int epoch = 1; epoch <= o.Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            model.train();
            double lossSum = 0;
            long correct = 0, seen = 0;
            using (var epochScope = NewDisposeScope())
            {
                var order = randperm(n, generator: generator);
                for (int b = 0; b < stepsPerEpoch; b++)
                {
                    o.CancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    long start = (long)b * o.BatchSize, size = Math.Min(o.BatchSize, n - start);
                    if (size < 2 && b > 0) break; // a 1-example tail batch breaks BatchNorm; it is skipped
                    var index = order.narrow(0, start, size);
                    var x = train.Inputs.index_select(0, index).to(_device);
                    var y = train.Labels.index_select(0, index).to(_device);

                    rate = o.Schedule.At(o.LearningRate, step, stepsPerEpoch, o.Epochs);
                    LearningRateSchedule.Apply(optimizer, rate);
                    var (loss, hits) = sam is null ? PlainGradient(model, optimizer, x, y) : SharpnessAwareGradient(model, sam, x, y);
                    double lossValue = loss.item<float>();
                    if (!double.IsFinite(lossValue))
                        throw new TrainingDivergedException(epoch, b + 1, lossValue, sam is not null);
                    if (o.GradientClipNorm is double clip) nn.utils.clip_grad_norm_(parameters, clip);
                    optimizer.step();
                    step++;
                    lossSum += lossValue * size;
                    correct += hits.item<long>();
                    seen += size;
                }
            }
            double? validationLoss = null, validationAccuracy = null;
            if (validation is not null && validation.Count > 0)
            {
                var (vl, va) = Evaluate(model, validation, o.BatchSize, _device);
                validationLoss = vl;
                validationAccuracy = va;
            }
            var report = new EpochReport(epoch, o.Epochs, lossSum / seen, (double)correct / seen, validationLoss, validationAccuracy, rate, clock.Elapsed);
            reports.Add(report);
            o.Progress?.Invoke(report);
        }
        model.eval();
        return reports;
    }

    /// <summary>Mean cross-entropy and accuracy of <paramref name="model"/> in eval mode, in batches.</summary>
    public static (double Loss, double Accuracy) Evaluate(nn.Module<Tensor, Tensor> model, TensorDataset data, int batchSize, Device device)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count == 0) throw new ArgumentException("The data is empty.", nameof(data));
        bool wasTraining = model.training;
        model.eval();
        double lossSum = 0;
        long correct = 0;
        using (no_grad())
        {
            for (long start = 0; start < data.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                long size = Math.Min(batchSize, data.Count - start);
                var x = data.Inputs.narrow(0, start, size).to(device);
                var y = data.Labels.narrow(0, start, size).to(device);
                var logits = model.call(x);
                lossSum += nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.Sum).ToDouble();
                correct += logits.argmax(1).eq(y).sum().item<long>();
            }
        }
        model.train(wasTraining);
        return (lossSum / data.Count, (double)correct / data.Count);
    }

    private (Tensor Loss, Tensor Correct) PlainGradient(nn.Module<Tensor, Tensor> model, optim.Optimizer optimizer, Tensor x, Tensor y)
    {
        optimizer.zero_grad();
        var logits = model.call(x);
        var loss = Loss(logits, y);
        loss.backward();
        return (loss.detach(), logits.argmax(1).eq(y).sum());
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
