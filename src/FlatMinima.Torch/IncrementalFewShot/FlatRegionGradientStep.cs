using System;
using System.IO;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// F2M's flat-region objective as a gradient step (<see cref="FlatRegionSearch"/>): the reported loss is the mean over
/// the M noisy samples, accuracy is the first sample's. The noise comes from its own generator (seeded from the run's
/// seed), saved in checkpoints.
/// </summary>
internal sealed class FlatRegionGradientStep : IGradientStep
{
    // Offset of the noise generator's seed from the run's seed (the sampler uses the seed itself).
    private const ulong NoiseSeedOffset = 7919;
    private readonly GradientStepContext _context;
    private readonly Generator _noise;
    private readonly FlatRegionSearch _search;

    public FlatRegionGradientStep(GradientStepContext context, FlatRegionOptions options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        _noise = new Generator((ulong)context.Seed + NoiseSeedOffset, CPU);
        try
        {
            _search = new FlatRegionSearch(context.Model, options, _noise);
        }
        catch
        {
            _noise.Dispose();
            throw;
        }
    }

    public GradientStepResult Compute(Tensor inputs, Tensor labels, long step)
    {
        long? correct = null;
        var losses = _search.ComputeGradient(() =>
        {
            var logits = _context.Model.call(inputs);
            correct ??= logits.argmax(1).eq(labels).sum().item<long>();
            return _context.Loss(logits, labels);
        });
        return new(losses.mean().to_type(ScalarType.Float32), tensor(correct ?? 0));
    }

    public void Save(BinaryWriter writer) => GeneratorState.Write(writer, _noise);

    public void Load(BinaryReader reader) => GeneratorState.Read(reader, _noise);

    public void Dispose()
    {
        _search.Dispose();
        _noise.Dispose();
    }
}
