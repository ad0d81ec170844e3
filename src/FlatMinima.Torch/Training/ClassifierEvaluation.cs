using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>Loss and accuracy of a classifier on an <see cref="IExampleSet"/>.</summary>
public static class ClassifierEvaluation
{
    /// <summary>
    /// Mean cross-entropy and accuracy of <paramref name="model"/> in eval mode, in batches (the train/eval mode of the model
    /// and of each of its modules is restored afterwards). With <see cref="IExampleSet.Domains"/>, both are the mean over
    /// domains of each domain's mean (DomainBed's training-domain validation). Sets not held in memory are loaded ahead on
    /// <paramref name="loaderWorkers"/> background threads, <paramref name="prefetchBatches"/> batches ahead.
    /// </summary>
    public static (double Loss, double Accuracy) Evaluate(nn.Module<Tensor, Tensor> model, IExampleSet data, int batchSize, Device device, int loaderWorkers = 0, int prefetchBatches = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Count == 0) throw new ArgumentException("The data is empty.", nameof(data));
        var modes = ModuleModes.Capture(model);
        model.eval();
        using var outer = NewDisposeScope();
        long groups = data.Domains is Tensor dom ? dom.max().item<long>() + 1 : 1;
        var lossSums = zeros(groups, ScalarType.Float64, device);
        var hitSums = zeros(groups, ScalarType.Float64, device);
        var counts = zeros(groups, ScalarType.Float64, device);
        using (no_grad())
        {
            using var batchScope = NewDisposeScope();
            var batches = Enumerable.Range(0, (int)((data.Count + batchSize - 1) / batchSize))
                .Select(b => arange((long)b * batchSize, Math.Min((long)(b + 1) * batchSize, data.Count), dtype: ScalarType.Int64));
            foreach (var (rows, inputs) in BatchLoader.Load(data, batches, loaderWorkers, prefetchBatches))
            {
                using var loaded = inputs;
                using var scope = NewDisposeScope();
                long start = rows[0].item<long>(), size = rows.shape[0];
                var x = loaded.to(device);
                var y = data.Labels.narrow(0, start, size).to(device);
                var group = data.Domains is Tensor d ? d.narrow(0, start, size).to(device) : zeros(size, ScalarType.Int64, device);
                var logits = model.call(x);
                lossSums.index_add_(0, group, nn.functional.cross_entropy(logits, y, reduction: nn.Reduction.None).to_type(ScalarType.Float64), 1.0);
                hitSums.index_add_(0, group, logits.argmax(1).eq(y).to_type(ScalarType.Float64), 1.0);
                counts.index_add_(0, group, ones(size, ScalarType.Float64, device), 1.0);
            }
        }
        modes.Restore();
        var present = counts.gt(0);
        var loss = lossSums.masked_select(present).div(counts.masked_select(present)).mean().item<double>();
        var accuracy = hitSums.masked_select(present).div(counts.masked_select(present)).mean().item<double>();
        return (loss, accuracy);
    }
}
