using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;
using static FlatMinima.Torch.Tests.TinyTraining;

namespace FlatMinima.Torch.Tests;

/// <summary>The training loop's extension points: gradient steps plug in through <see cref="GradientStepOptions"/>; SWAD's frequency is sized from the run.</summary>
[TestClass]
public sealed class TrainingLoopTests
{
    private static float[] Weights(nn.Module model) => model.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();

    /// <summary>A step defined outside the library: the plain gradient, scaled, recording the step indices it was called with.</summary>
    private sealed record ScaledGradientOptions(double Scale, List<long> Calls) : GradientStepOptions
    {
        public override void Validate()
        {
            if (!(Scale > 0)) throw new ArgumentOutOfRangeException(nameof(Scale), Scale, "Scale must be > 0.");
        }

        public override IGradientStep CreateStep(GradientStepContext context) => new ScaledGradientStep(this, new PlainGradientStep(context), context);
    }

    private sealed class ScaledGradientStep(ScaledGradientOptions options, PlainGradientStep plain, GradientStepContext context) : IGradientStep
    {
        public GradientStepResult Compute(Tensor inputs, Tensor labels, long step)
        {
            options.Calls.Add(step);
            var result = plain.Compute(inputs, labels, step);
            using (no_grad())
                foreach (var p in context.Model.parameters())
                    p.grad?.mul_(options.Scale);
            return result;
        }

        public void Save(BinaryWriter writer) => writer.Write(options.Scale);

        public void Load(BinaryReader reader) => Assert.AreEqual(options.Scale, reader.ReadDouble());

        public void Dispose() => plain.Dispose();
    }

    [TestMethod]
    public void ACustomGradientStepPlugsIntoTheLoop()
    {
        var data = Blobs(40, 1);
        var plain = new ClassifierTrainingOptions { Epochs = 2, BatchSize = 8, LearningRate = 0.05, Momentum = 0, WeightDecay = 0, TuneGlibcMalloc = false };

        var reference = Net();
        new ClassifierTrainer(plain, CPU).Train(reference, data);

        var unit = new ScaledGradientOptions(1.0, new List<long>());
        var same = Net();
        new ClassifierTrainer(plain with { GradientStep = unit }, CPU).Train(same, data);
        CollectionAssert.AreEqual(Weights(reference), Weights(same), "a custom step that returns the plain gradient trains bit-identically to no step");
        CollectionAssert.AreEqual(Enumerable.Range(0, 10).Select(i => (long)i).ToArray(), unit.Calls, "called once per optimizer step, with its 0-based index");

        // Plain SGD without momentum or decay: doubling the gradient equals doubling the learning rate.
        var doubled = Net();
        new ClassifierTrainer(plain with { GradientStep = new ScaledGradientOptions(2.0, new List<long>()) }, CPU).Train(doubled, data);
        var faster = Net();
        new ClassifierTrainer(plain with { LearningRate = 0.1 }, CPU).Train(faster, data);
        var (a, b) = (Weights(doubled), Weights(faster));
        for (int i = 0; i < a.Length; i++) Assert.AreEqual(b[i], a[i], 1e-5f, $"weight {i}");
        Assert.IsFalse(a.SequenceEqual(Weights(reference)), "the scaled step changed training");

        var invalid = plain with { GradientStep = new ScaledGradientOptions(0, new List<long>()) };
        Assert.AreEqual("Scale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassifierTrainer(invalid, CPU)).ParamName);
    }

    [TestMethod]
    public void ACustomStepIsCheckpointedAndResumed()
    {
        var data = Blobs(40, 2);
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-step-{Guid.NewGuid():N}.ckpt");
        try
        {
            var options = new ClassifierTrainingOptions
            {
                Epochs = 3, BatchSize = 8, TuneGlibcMalloc = false, GradientStep = new ScaledGradientOptions(0.5, new List<long>()), CheckpointPath = path,
            };
            var full = Net();
            new ClassifierTrainer(options, CPU).Train(full, data);

            var interrupted = Net();
            var stopping = new ClassifierTrainer(options with { Progress = r => { if (r.Epoch == 2) throw new OperationCanceledException(); } }, CPU);
            Assert.ThrowsExactly<OperationCanceledException>(() => stopping.Train(interrupted, data));
            var calls = new List<long>();
            var resumed = Net();
            new ClassifierTrainer(options with { GradientStep = new ScaledGradientOptions(0.5, calls), CheckpointPath = null }, CPU).Train(resumed, data, resumeFrom: path);
            CollectionAssert.AreEqual(Enumerable.Range(10, 5).Select(i => (long)i).ToArray(), calls, "the resumed run continues at step 10");
            CollectionAssert.AreEqual(Weights(full), Weights(resumed), "resumed = uninterrupted, bit for bit");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    [DataRow(94, 12, 23)]     // 1,128 steps: about 50 evaluations
    [DataRow(100, 50, 100)]   // DomainBed's 5,000 steps: every 100
    [DataRow(3, 2, 1)]        // tiny runs: every step
    public void SwadEvaluationFrequencyIsSizedFromTheRun(int stepsPerEpoch, int epochs, int expected)
    {
        var plan = new TrainingPlan(stepsPerEpoch, epochs);
        Assert.AreEqual(expected, WeightAveragingOptions.Swad().EvaluationFrequencyFor(plan));
        Assert.AreEqual(7, WeightAveragingOptions.Swad(evaluationFrequency: 7).EvaluationFrequencyFor(plan), "an explicit frequency is kept");
        using var model = Net();
        using var averager = WeightAveragingOptions.Swad().CreateAverager(model, plan);
        Assert.AreEqual(expected, ((IValidationDrivenAverager)averager).EvaluationFrequency);
    }

    [TestMethod]
    public void OnlyValidationDrivenAveragersAskForEvaluations()
    {
        using var model = Net();
        var plan = new TrainingPlan(10, 4);
        using var swa = WeightAveragingOptions.Swa().CreateAverager(model, plan);
        using var ema = WeightAveragingOptions.Ema().CreateAverager(model, plan);
        using var swad = WeightAveragingOptions.Swad().CreateAverager(model, plan);
        Assert.IsNotInstanceOfType<IValidationDrivenAverager>(swa);
        Assert.IsNotInstanceOfType<IValidationDrivenAverager>(ema);
        Assert.IsInstanceOfType<IValidationDrivenAverager>(swad);
        Assert.AreEqual(0.125, ema.LearningRate(3, 0.125), "EMA keeps the scheduled rate");
    }

    [TestMethod]
    public void DivergenceNamesWhatToLowerForTheStep()
    {
        var data = Blobs(16, 3);
        var options = new ClassifierTrainingOptions { Epochs = 1, BatchSize = 8, LearningRate = 1e30, TuneGlibcMalloc = false };
        var plain = Assert.ThrowsExactly<TrainingDivergedException>(() => new ClassifierTrainer(options, CPU).Train(Net(), data));
        StringAssert.Contains(plain.Message, "Lower LearningRate, or set GradientClipNorm.");
        var sam = Assert.ThrowsExactly<TrainingDivergedException>(() =>
            new ClassifierTrainer(options with { GradientStep = SharpnessAwareOptions.Sam() }, CPU).Train(Net(), data));
        StringAssert.Contains(sam.Message, "Lower LearningRate or the sharpness radius Rho");
    }
}
