using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.MixedPrecision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// Mini-batch training of a classifier with cross-entropy: SGD or AdamW, a learning-rate schedule, optional label
/// smoothing and gradient clipping, a pluggable gradient step (<see cref="IGradientStep"/>: plain, sharpness-aware,
/// flat-region) and optional weight averaging (<see cref="IWeightAverager"/>).
/// </summary>
public sealed class ClassifierTrainer
{
    /// <summary>
    /// Added to <see cref="ClassifierTrainingOptions.Seed"/> to seed the augmentation generator, so its draws are
    /// independent of the shuffling (seeded with the seed itself) and of F2M's noise (seed + 7919); 104729 is the
    /// 10,000th prime.
    /// </summary>
    public const ulong AugmentationSeedOffset = 104729;

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
    /// <param name="train">Training examples (<see cref="TensorDataset"/> in memory, or <see cref="LazyExampleSet"/> loaded ahead of the step
    /// on background threads); with <see cref="IExampleSet.Domains"/> each step takes a batch from every domain.</param>
    /// <param name="validation">Evaluated after every epoch (and every <c>EvaluationFrequency</c> steps for SWAD, which needs it).</param>
    /// <param name="resumeFrom">
    /// A checkpoint written by an earlier run with the same options and data (<see cref="ClassifierTrainingOptions.CheckpointPath"/>):
    /// the model's weights and buffers, the optimizer (and SAM) state, the averaging state, the completed epochs and steps
    /// and the sampler's (and augmentation's) random state are restored and training continues with the next epoch, exactly as the
    /// uninterrupted run (bit-identical on CPU). The reports returned are those of the epochs run now. The file's
    /// SHA-256 and the run's fingerprint (options that change the result, the model's architecture, the data) are checked
    /// before anything is restored: a damaged file or one written by another run gives an <see cref="System.IO.InvalidDataException"/>
    /// naming the file and what differs.
    /// </param>
    /// <remarks>
    /// With <see cref="ClassifierTrainingOptions.OnFailure"/> = <see cref="TrainingFailurePolicy.ReturnLastGoodEpoch"/>, a
    /// divergence or cancellation after at least one completed epoch (counting a resumed checkpoint's) restores that
    /// epoch's weights and buffers and returns; the last report carries <see cref="EpochReport.Interruption"/>.
    /// </remarks>
    public IReadOnlyList<EpochReport> Train(nn.Module<Tensor, Tensor> model, IExampleSet train, IExampleSet? validation = null, string? resumeFrom = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0) throw new ArgumentException("The training data is empty.", nameof(train));
        var o = _options;
        bool hasValidation = validation is not null && validation.Count > 0;
        if (o.Averaging is { NeedsValidation: true } && !hasValidation)
            throw new ArgumentException($"{nameof(ClassifierTrainingOptions.Averaging)}: {o.Averaging.GetType().Name.Replace("Options", "")} needs validation data " +
                "(its loss decides the averaging window); pass a non-empty validation set.", nameof(validation));
        CheckAugmentation(o.Augmentation, train);
        if (o.TuneGlibcMalloc) Native.GlibcMalloc.TuneForTensors();
        using var fineTuning = FineTuningPlan.Apply(model, o.FineTuning);
        var parameters = model.parameters().Where(p => p.requires_grad).ToArray();
        if (parameters.Length == 0) throw new ArgumentException("The model has no trainable parameters.", nameof(model));
        using var optimizer = CreateOptimizer(parameters, fineTuning);
        var precision = PrecisionChoice.For(o.Precision, _device);
        using var autocast = precision.IsBFloat16 ? BFloat16Autocast.Attach(model) : null;
        using var generator = new Generator((ulong)o.Seed, CPU);
        using var sampler = new BatchSampler(train, o.BatchSize, generator);
        using var augmentationGenerator = o.Augmentation is null ? null : new Generator(unchecked((ulong)o.Seed + AugmentationSeedOffset), CPU);
        int stepsPerEpoch = 1 + (sampler.StepsPerEpoch - 1) / o.AccumulationSteps;   // ⌈batches / n⌉ without overflow
        var context = new GradientStepContext(model, optimizer, Loss, o.Seed) { Plan = new TrainingPlan(stepsPerEpoch, o.Epochs) };
        using var gradientStep = o.GradientStep?.CreateStep(context) ?? new PlainGradientStep(context);
        using var averager = o.Averaging?.CreateAverager(model, new TrainingPlan(stepsPerEpoch, o.Epochs));
        var validationDriven = averager as IValidationDrivenAverager;

        var run = o.CheckpointPath is null && resumeFrom is null ? null : RunFingerprint.Of(o with { Precision = precision.Used }, stepsPerEpoch, model, train, hasValidation ? validation : null);
        var state = new TrainingCheckpoint.State(generator, sampler, model, optimizer, gradientStep, averager, augmentationGenerator);
        var done = resumeFrom is null ? default : TrainingCheckpoint.Load(resumeFrom, run!, o.Epochs, state);
        using var lastGood = o.OnFailure == TrainingFailurePolicy.ReturnLastGoodEpoch ? new LastGoodEpoch(model) : null;
        if (done.CompletedEpochs > 0) lastGood?.Capture(done.CompletedEpochs);

        var reports = new List<EpochReport>();
        long step = done.CompletedSteps;
        double rate = o.LearningRate;
        bool stop = false;
        for (int epoch = done.CompletedEpochs + 1; epoch <= o.Epochs && !stop; epoch++)
        {
            var clock = Stopwatch.StartNew();
            FineTuningPlan.Train(model, fineTuning);
            double lossSum = 0;
            long correct = 0, seen = 0, sharpnessAwareSteps = 0;
            int b = 0;
            try
            {
                using (var epochScope = NewDisposeScope())
                {
                    var loader = BatchLoader.Load(train, sampler.Epoch(), o.LoaderWorkers, o.PrefetchBatches);
                    foreach (var loaded in MicroBatchGroups.Of(loader, o.AccumulationSteps))
                    {
                        using var group = loaded;
                        o.CancellationToken.ThrowIfCancellationRequested();
                        using var scope = NewDisposeScope();
                        long size = 0;
                        b++;
                        var micro = new MicroBatch[group.Rows.Count];
                        for (int m = 0; m < micro.Length; m++)
                        {
                            var x = group.Inputs[m].to(_device);
                            if (o.Augmentation is not null) x = o.Augmentation.Apply(x, augmentationGenerator!);
                            micro[m] = new MicroBatch(x, train.Labels.index_select(0, group.Rows[m]).to(_device));
                            size += group.Rows[m].shape[0];
                        }

                        rate = o.Schedule.At(o.LearningRate, step, stepsPerEpoch, o.Epochs);
                        if (averager is not null) rate = averager.LearningRate(step, rate);
                        LearningRateSchedule.Apply(optimizer, rate);
                        GradientStepResult result;
                        using (autocast?.Enable()) result = gradientStep.Compute(micro, step);
                        var (loss, hits) = result;
                        if (result.SharpnessAware) sharpnessAwareSteps++;
                        double lossValue = loss.item<float>();
                        if (!double.IsFinite(lossValue))
                            throw new TrainingDivergedException(epoch, b, lossValue, o.GradientStep?.DivergenceAdvice ?? GradientStepOptions.PlainDivergenceAdvice);
                        if (o.GradientClipNorm is double clip) nn.utils.clip_grad_norm_(parameters, clip);
                        optimizer.step();
                        step++;
                        lossSum += lossValue * size;
                        correct += hits.item<long>();
                        seen += size;
                        averager?.AfterStep(step);
                        if (validationDriven is not null && step % validationDriven.EvaluationFrequency == 0)
                        {
                            validationDriven.AfterEvaluation(Evaluate(model, validation!).Loss);
                            if (stop = validationDriven.StopRequested) break;
                        }
                    }
                }
            }
            catch (Exception e) when (lastGood is { Epoch: > 0 } && e is TrainingDivergedException or OperationCanceledException)
            {
                lastGood.Restore();
                var reason = e is TrainingDivergedException ? TrainingInterruptionReason.Diverged : TrainingInterruptionReason.Cancelled;
                var interrupted = new EpochReport(epoch, o.Epochs, seen > 0 ? lossSum / seen : double.NaN, seen > 0 ? (double)correct / seen : double.NaN,
                    null, null, rate, clock.Elapsed)
                {
                    Interruption = new TrainingInterruption(reason, epoch, b, lastGood.Epoch, e.Message),
                    Steps = b, SharpnessAwareSteps = sharpnessAwareSteps,
                    Precision = precision.Used,
                    PrecisionWarning = precision.Warning,
                };
                reports.Add(interrupted);
                o.Progress?.Invoke(interrupted);
                model.eval();
                return reports;
            }
            averager?.AfterEpoch(epoch);
            AveragingReport? averaging = null;
            if (averager is not null && (stop || epoch == o.Epochs))
                averaging = FinishAveraging(model, averager, train, validation, generator);
            double? validationLoss = null, validationAccuracy = null;
            if (hasValidation)
                (validationLoss, validationAccuracy) = Evaluate(model, validation!);
            var report = new EpochReport(epoch, o.Epochs, lossSum / seen, (double)correct / seen, validationLoss, validationAccuracy, rate, clock.Elapsed)
            {
                Averaging = averaging, Steps = b, SharpnessAwareSteps = sharpnessAwareSteps,
                Precision = precision.Used,
                PrecisionWarning = precision.Warning,
            };
            reports.Add(report);
            if (o.CheckpointPath is string path && !stop && epoch < o.Epochs)
                TrainingCheckpoint.Save(path, run!, new(epoch, step), state);
            if (!stop && epoch < o.Epochs) lastGood?.Capture(epoch);
            o.Progress?.Invoke(report);
        }
        model.eval();
        return reports;
    }

    // Closes SWAD's open segment, writes the average into the model and recomputes BatchNorm statistics for it.
    private AveragingReport FinishAveraging(nn.Module<Tensor, Tensor> model, IWeightAverager averager, IExampleSet train,
        IExampleSet? validation, Generator generator)
    {
        if (averager is IValidationDrivenAverager { HasOpenSegment: true } validationDriven && validation is not null)
            validationDriven.AfterEvaluation(Evaluate(model, validation).Loss);
        var report = averager.Finish();
        if (report.AveragedSteps == 0 || averager.AveragesBuffers || !_options.Averaging!.RecomputeBatchNorm || !BatchNormRecompute.HasBatchNorm(model))
            return report;
        using var scope = NewDisposeScope();
        var order = randperm(train.Count, generator: generator);
        var batches = Enumerable.Range(0, (int)((train.Count + _options.BatchSize - 1) / _options.BatchSize))
            .Select(b => order.narrow(0, (long)b * _options.BatchSize, Math.Min(_options.BatchSize, train.Count - (long)b * _options.BatchSize)))
            .Where(index => index.shape[0] > 1)
            .Select(index => train.LoadInputs(index).to(_device));
        int used = BatchNormRecompute.Run(model, batches, _options.Averaging.BatchNormBatches);
        return report with { BatchNormBatches = used };
    }

    // The augmentation needs image batches and, for a reflect padding, images larger than the padding.
    private static void CheckAugmentation(AugmentationOptions? augmentation, IExampleSet train)
    {
        if (augmentation is null) return;
        var shape = train.ExampleShape;
        bool floating = train is not TensorDataset tensors || tensors.Inputs.is_floating_point();
        if (shape.Length != 3 || !floating)
            throw new ArgumentException($"{nameof(ClassifierTrainingOptions.Augmentation)} needs floating-point image inputs [N, C, H, W]; " +
                $"the training inputs are {(train is TensorDataset t ? t.Inputs.dtype.ToString() : "")} [N, {string.Join(", ", shape)}].", nameof(train));
        NestedOption.Validate(nameof(ClassifierTrainingOptions.Augmentation), () => augmentation.ValidateFor((int)shape[1], (int)shape[2]));
    }

    private (double Loss, double Accuracy) Evaluate(nn.Module<Tensor, Tensor> model, IExampleSet data) =>
        ClassifierEvaluation.Evaluate(model, data, _options.BatchSize, _device, _options.LoaderWorkers, _options.PrefetchBatches);

    private Tensor Loss(Tensor logits, Tensor y) =>
        nn.functional.cross_entropy(logits, y, label_smoothing: _options.LabelSmoothing);

    // One parameter group; with fine-tuning at a backbone learning-rate factor ≠ 1, a head group and a backbone group
    // whose rate LearningRateSchedule.Apply scales by the factor.
    private optim.Optimizer CreateOptimizer(IEnumerable<Parameter> parameters, FineTuningPlan? fineTuning)
    {
        var o = _options;
        if (fineTuning is null || fineTuning.BackboneLearningRateFactor == 1 || fineTuning.BackboneParameters.Count == 0 || fineTuning.HeadParameters.Count == 0)
        {
            return o.Optimizer switch
            {
                BaseOptimizerKind.Sgd => optim.SGD(parameters, o.LearningRate, o.Momentum, 0, o.WeightDecay, o.Nesterov),
                BaseOptimizerKind.AdamW => optim.AdamW(parameters, o.LearningRate, o.Beta1, o.Beta2, 1e-8, o.WeightDecay),
                _ => throw new ArgumentOutOfRangeException(nameof(ClassifierTrainingOptions.Optimizer), o.Optimizer, "Unknown optimizer."),
            };
        }
        var groups = new[] { (fineTuning.HeadParameters, 1.0), (fineTuning.BackboneParameters, fineTuning.BackboneLearningRateFactor) };
        optim.Optimizer optimizer = o.Optimizer switch
        {
            BaseOptimizerKind.Sgd => optim.SGD(groups.Select(g => new SGD.ParamGroup(g.Item1, o.LearningRate * g.Item2, o.Momentum, 0, o.WeightDecay, o.Nesterov)),
                o.LearningRate, o.Momentum, 0, o.WeightDecay, o.Nesterov),
            BaseOptimizerKind.AdamW => optim.AdamW(groups.Select(g => new AdamW.ParamGroup(g.Item1, o.LearningRate * g.Item2, o.Beta1, o.Beta2, 1e-8, o.WeightDecay)),
                o.LearningRate, o.Beta1, o.Beta2, 1e-8, o.WeightDecay),
            _ => throw new ArgumentOutOfRangeException(nameof(ClassifierTrainingOptions.Optimizer), o.Optimizer, "Unknown optimizer."),
        };
        var created = optimizer.ParamGroups.ToArray();
        for (int i = 0; i < created.Length; i++) LearningRateSchedule.SetFactor(created[i], groups[i].Item2);
        return optimizer;
    }
}
