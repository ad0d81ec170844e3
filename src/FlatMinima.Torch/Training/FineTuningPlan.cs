using System;
using System.Collections.Generic;
using System.Linq;
using FlatMinima.Torch.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// <see cref="FineTuningOptions"/> applied to a network for one training run: frozen parameters get
/// <c>requires_grad = false</c> (restored by <see cref="Dispose"/>), the trainable parameters are split into a head group
/// and a backbone group (learning-rate factor) and the BatchNorm layers to hold in eval mode are known.
/// </summary>
internal sealed class FineTuningPlan : IDisposable
{
    private readonly (Parameter Parameter, bool Flag)[] _saved;
    private readonly BatchNorm[] _heldInEval;

    private FineTuningPlan((Parameter, bool)[] saved, BatchNorm[] heldInEval, Parameter[] head, Parameter[] backbone, double factor)
    {
        _saved = saved;
        _heldInEval = heldInEval;
        HeadParameters = head;
        BackboneParameters = backbone;
        BackboneLearningRateFactor = factor;
    }

    /// <summary>Trainable parameters outside the backbone.</summary>
    public IReadOnlyList<Parameter> HeadParameters { get; }

    /// <summary>Trainable backbone parameters (their own optimizer group when <see cref="BackboneLearningRateFactor"/> ≠ 1).</summary>
    public IReadOnlyList<Parameter> BackboneParameters { get; }

    /// <summary>The backbone group's learning-rate multiplier.</summary>
    public double BackboneLearningRateFactor { get; }

    /// <summary>
    /// Applies <paramref name="options"/> to <paramref name="model"/>; null when there is nothing to do (no options, or
    /// full training at one rate with BatchNorm training). Throws naming <c>FineTuning</c> when the model has no backbone.
    /// </summary>
    public static FineTuningPlan? Apply(nn.Module model, FineTuningOptions? options)
    {
        if (options is null || options.IsPlain) return null;
        if (model is not IFineTunableNetwork network)
            throw new ArgumentException(
                $"{nameof(ClassifierTrainingOptions.FineTuning)}: {options.Mode} fine-tuning needs a network with a backbone ({nameof(IFineTunableNetwork)}, " +
                $"e.g. one created by a pretrained backbone); {model.GetType().Name} has none. Leave FineTuning null to train every parameter.",
                nameof(ClassifierTrainingOptions.FineTuning));
        var stages = network.BackboneStages;
        int trainable = options.Mode switch
        {
            FineTuningMode.Full => stages.Count,
            FineTuningMode.HeadOnly => 0,
            _ => options.TrainableStages,
        };
        if (trainable > stages.Count)
            throw new ArgumentOutOfRangeException($"{nameof(ClassifierTrainingOptions.FineTuning)}.{nameof(FineTuningOptions.TrainableStages)}", trainable,
                $"FineTuning.TrainableStages is {trainable} but the network's backbone has {stages.Count} stages.");
        var frozenModules = stages.Take(stages.Count - trainable).SelectMany(s => s).ToArray();
        var backboneModules = stages.SelectMany(s => s).ToArray();
        var frozen = Parameters(frozenModules);
        var backbone = Parameters(backboneModules);
        var all = model.parameters().ToArray();
        var saved = all.Select(p => (p, p.requires_grad)).ToArray();
        foreach (var p in all.Where(frozen.Contains)) p.requires_grad = false;
        var held = BatchNorms(options.FreezeBatchNorm ? backboneModules : frozenModules);
        var head = all.Where(p => p.requires_grad && !backbone.Contains(p)).ToArray();
        var trainableBackbone = all.Where(p => p.requires_grad && backbone.Contains(p)).ToArray();
        return new FineTuningPlan(saved, held, head, trainableBackbone, options.BackboneLearningRateFactor);
    }

    /// <summary><c>model.train()</c>, then the held BatchNorm layers back to eval mode.</summary>
    public static void Train(nn.Module model, FineTuningPlan? plan)
    {
        model.train();
        if (plan is null) return;
        foreach (var layer in plan._heldInEval) layer.eval();
    }

    /// <summary>Restores every parameter's <c>requires_grad</c>.</summary>
    public void Dispose()
    {
        foreach (var (parameter, flag) in _saved) parameter.requires_grad = flag;
    }

    private static HashSet<Parameter> Parameters(IEnumerable<nn.Module> modules) =>
        modules.SelectMany(m => m.parameters()).ToHashSet(ReferenceEqualityComparer.Instance as IEqualityComparer<Parameter>);

    private static BatchNorm[] BatchNorms(IEnumerable<nn.Module> modules) =>
        modules.SelectMany(m => m.modules().Prepend(m)).OfType<BatchNorm>().Distinct().ToArray();
}
