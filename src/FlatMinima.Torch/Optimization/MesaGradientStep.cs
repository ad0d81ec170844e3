using System;
using System.Collections.Generic;
using System.IO;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Optimization;

/// <summary>
/// MESA's step (see <see cref="MesaOptions"/>). The teacher θ̄ is an <see cref="ExponentialMovingAverager"/> of the
/// weights and floating-point buffers, updated at the start of each step towards the weights the previous step left
/// (so at step t it averages the weights after steps 0 … t − 1, as timm's <c>ModelEmaV2</c> updated after each step).
/// Its logits come from the model itself: the weights are swapped for the average, the network runs in eval mode
/// without gradients, and the weights, buffers and module modes are put back exactly.
/// </summary>
internal sealed class MesaGradientStep : IGradientStep
{
    private readonly GradientStepContext _context;
    private readonly MesaOptions _options;
    private readonly ExponentialMovingAverager _teacher;
    private readonly FlatBuffer _scratch;
    private readonly long _warmupSteps;

    public MesaGradientStep(GradientStepContext context, MesaOptions options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
        if (options.WarmupEpochs > 0 && context.Plan is null)
            throw new ArgumentException("MESA's WarmupEpochs need the run's length (GradientStepContext.Plan).", nameof(context));
        _warmupSteps = (long)options.WarmupEpochs * (context.Plan?.StepsPerEpoch ?? 0);
        _teacher = new ExponentialMovingAverager(context.Model, new EmaOptions { Decay = options.Decay, Warmup = options.DecayWarmup, AverageBuffers = true });
        _scratch = _teacher.Average.Clone();
    }

    /// <summary>The KL term's value on the last step's micro-batches (mean over rows, before λ; 0 in the warm-up), for tests.</summary>
    internal double LastDivergence { get; private set; }

    public GradientStepResult Compute(Tensor inputs, Tensor labels, long step) => Compute(new[] { new MicroBatch(inputs, labels) }, step);

    public GradientStepResult Compute(IReadOnlyList<MicroBatch> microBatches, long step)
    {
        ArgumentNullException.ThrowIfNull(microBatches);
        if (microBatches.Count == 0) throw new ArgumentException("At least one micro-batch is needed.", nameof(microBatches));
        _teacher.AfterStep(step);
        _context.Optimizer.zero_grad();
        var correct = zeros(Array.Empty<long>(), ScalarType.Int64, microBatches[0].Inputs.device);
        bool distill = step >= _warmupSteps && _options.Weight > 0;
        if (!distill)
        {
            LastDivergence = 0;
            return new(MicroBatchPass.Run(_context, microBatches, correct), correct);
        }
        var targets = TeacherLogProbabilities(microBatches);
        try
        {
            double tau = _options.Temperature, scale = _options.Weight * tau * tau;
            long total = 0;
            foreach (var b in microBatches) total += b.Rows;
            var divergence = zeros(Array.Empty<long>(), ScalarType.Float32, microBatches[0].Inputs.device);
            var loss = MicroBatchPass.Run(_context, microBatches, correct, (logits, i) =>
            {
                var kl = Divergence(logits, targets[i], tau);
                divergence.add_(kl.detach().mul(microBatches[i].Rows / (double)total));
                return kl.mul(scale);
            });
            LastDivergence = divergence.item<float>();
            return new(loss, correct);
        }
        finally
        {
            foreach (var t in targets) t.Dispose();
        }
    }

    /// <summary>KL(p_t ‖ p_s) of the tempered distributions, summed over classes and averaged over rows (before τ² and λ).</summary>
    internal static Tensor Divergence(Tensor studentLogits, Tensor teacherLogProbabilities, double temperature)
    {
        var student = nn.functional.log_softmax(studentLogits.div(temperature), 1);
        return teacherLogProbabilities.exp().mul(teacherLogProbabilities.sub(student)).sum(1).mean();
    }

    // The teacher's tempered log-probabilities for each micro-batch (outside any dispose scope; the caller disposes them).
    private Tensor[] TeacherLogProbabilities(IReadOnlyList<MicroBatch> microBatches)
    {
        var result = new Tensor[microBatches.Count];
        var model = _context.Model;
        var modes = ModuleModes.Capture(model);
        using var noGrad = no_grad();
        _scratch.CopyFromModel();
        _teacher.Average.CopyToModel();
        try
        {
            model.eval();
            for (int i = 0; i < result.Length; i++)
            {
                using var scope = NewDisposeScope();
                result[i] = nn.functional.log_softmax(model.call(microBatches[i].Inputs).div(_options.Temperature), 1).DetachFromDisposeScope();
            }
        }
        finally
        {
            modes.Restore();
            _scratch.CopyToModel();
        }
        return result;
    }

    public void Save(BinaryWriter writer)
    {
        writer.Write("FlatMinima.MESA.v1");
        _teacher.Save(writer);
    }

    public void Load(BinaryReader reader)
    {
        if (reader.ReadString() != "FlatMinima.MESA.v1") throw new InvalidDataException("Not a MESA state (wrong header).");
        _teacher.Load(reader);
    }

    public void Dispose()
    {
        _scratch.Dispose();
        _teacher.Dispose();
    }
}
