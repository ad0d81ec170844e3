using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Threading;
using FlatMinima.MLNet.ImageClassification;
using FlatMinima.MLNet.IncrementalFewShot;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Averaging;
using FlatMinima.Torch.IncrementalFewShot;
using FlatMinima.Torch.Optimization;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

/// <summary>
/// One option model: every setting of the Torch layer's <see cref="ClassifierTrainingOptions"/> is reachable from both
/// ML.NET trainers under the same name, reaches the Torch record unchanged, and takes its default from it.
/// </summary>
[TestClass]
public sealed class OptionModelTests
{
    // Settings of ClassifierTrainingOptions each family exposes as its own record (or not at all), with the reason.
    private static readonly Dictionary<string, string> Mapped = new()
    {
        [nameof(ClassifierTrainingOptions.GradientStep)] = "SharpnessAware or Mesa (image classification) / FlatRegion + FlatRegionSearch (incremental few-shot)",
        [nameof(ClassifierTrainingOptions.Averaging)] = "image classification only: SWAD needs its ValidationSet / ValidationFraction",
    };

    private static IEnumerable<PropertyInfo> TorchSettings() =>
        typeof(ClassifierTrainingOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.Name != "EqualityContract");

    private static object Distinct(Type type) => type switch
    {
        _ when type == typeof(int) => 7,
        _ when type == typeof(double) => 0.375,
        _ when type == typeof(double?) => 2.5,
        _ when type == typeof(bool) => true,
        _ when type == typeof(BaseOptimizerKind) => BaseOptimizerKind.AdamW,
        _ when type == typeof(LearningRateSchedule) => LearningRateSchedule.StepDecay(new[] { 2 }, 0.5, warmupEpochs: 1),
        _ when type == typeof(Action<EpochReport>) => new Action<EpochReport>(_ => { }),
        _ when type == typeof(CancellationToken) => new CancellationTokenSource().Token,
        _ when type == typeof(string) => "run.checkpoint",
        _ when type == typeof(TrainingFailurePolicy) => TrainingFailurePolicy.ReturnLastGoodEpoch,
        _ when type == typeof(AugmentationOptions) => AugmentationOptions.Strong(flip: false),
        _ when type == typeof(ComputePrecision) => ComputePrecision.BFloat16,
        _ when type == typeof(FineTuningOptions) => FineTuningOptions.LastStages(2, backboneLearningRateFactor: 0.1, freezeBatchNorm: true),
        _ => throw new AssertFailedException($"No distinct test value for {type.Name}; add one."),
    };

    public static IEnumerable<object[]> Families() => new[]
    {
        new object[] { new FlatMinimaImageClassificationTrainer.Options() },
        new object[] { new FlatMinimaIncrementalFewShotTrainer.Options() },
    };

    [TestMethod]
    [DynamicData(nameof(Families))]
    public void EveryTorchTrainingSettingHasTheSameNameAndReachesTheRecord(ImageTrainerOptions options)
    {
        foreach (var setting in TorchSettings().Where(p => !Mapped.ContainsKey(p.Name)))
        {
            var mirror = options.GetType().GetProperty(setting.Name, BindingFlags.Public | BindingFlags.Instance);
            Assert.IsNotNull(mirror, $"{setting.Name} of ClassifierTrainingOptions has no option of the same name in {options.GetType().FullName}; add it to ImageTrainerOptions (or to Mapped with a reason).");
            Assert.AreEqual(setting.PropertyType, mirror!.PropertyType, setting.Name);
            var value = Distinct(setting.PropertyType);
            mirror.SetValue(options, value);
            Assert.AreEqual(value, setting.GetValue(options.ToTrainingOptions()), $"{setting.Name} set on the ML.NET options reaches the Torch record");
            Assert.AreEqual(value, mirror.GetValue(options), setting.Name);
        }
    }

    [TestMethod]
    public void DefaultsComeFromTheTorchRecordsExceptEachTrainersDocumentedStart()
    {
        var record = new ClassifierTrainingOptions();
        var image = new FlatMinimaImageClassificationTrainer.Options().ToTrainingOptions();
        var fewShot = new FlatMinimaIncrementalFewShotTrainer.Options().ToTrainingOptions();
        var imageOverrides = new Dictionary<string, object?> { ["BatchSize"] = 64, ["GradientStep"] = SharpnessAwareOptions.Sam() };
        var fewShotOverrides = new Dictionary<string, object?> { ["LearningRate"] = 0.1, ["GradientStep"] = new FlatRegionOptions() };
        foreach (var setting in TorchSettings())
        {
            Assert.AreEqual(imageOverrides.TryGetValue(setting.Name, out var i) ? i : setting.GetValue(record), setting.GetValue(image), $"image classification: {setting.Name}");
            Assert.AreEqual(fewShotOverrides.TryGetValue(setting.Name, out var f) ? f : setting.GetValue(record), setting.GetValue(fewShot), $"incremental few-shot: {setting.Name}");
        }
        Assert.AreEqual(SharpnessAwareOptions.DefaultRho, ((SharpnessAwareOptions)image.GradientStep!).Rho);
        Assert.AreEqual(new IncrementalSessionOptions(), new FlatMinimaIncrementalFewShotTrainer.Options().Session);
    }

    [TestMethod]
    public void MethodRecordsPassThroughUnchanged()
    {
        var sam = SharpnessAwareOptions.Asam(rho: 0.7) with { ShardCount = 2 };
        var swad = WeightAveragingOptions.Swad(evaluationFrequency: 9);
        var image = new FlatMinimaImageClassificationTrainer.Options { SharpnessAware = sam, Averaging = swad };
        Assert.AreSame(sam, image.ToTrainingOptions().GradientStep);
        Assert.AreSame(swad, image.ToTrainingOptions().Averaging);
        image.SharpnessAware = null;
        Assert.IsNull(image.ToTrainingOptions().GradientStep, "no sharpness-aware step: the plain gradient");

        var region = new FlatRegionOptions { Bound = 0.02, RangeLayerCount = 2 };
        var fewShot = new FlatMinimaIncrementalFewShotTrainer.Options { FlatRegion = region };
        Assert.AreSame(region, fewShot.ToTrainingOptions().GradientStep);
        fewShot.FlatRegionSearch = false;
        Assert.IsNull(fewShot.ToTrainingOptions().GradientStep, "the ablation trains plain cross-entropy");
    }

    [TestMethod]
    public void ErrorsNameTheOptionTheUserSet()
    {
        var trainers = new MLContext(seed: 1).MulticlassClassification.Trainers;
        string Fails(Action<FlatMinimaImageClassificationTrainer.Options> change)
        {
            var o = new FlatMinimaImageClassificationTrainer.Options();
            change(o);
            return Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainers.FlatMinimaImageClassification(o)).ParamName!;
        }
        Assert.AreEqual("SharpnessAware.Rho", Fails(o => o.SharpnessAware = SharpnessAwareOptions.Sam(-1)));
        Assert.AreEqual("SharpnessAware.Eta", Fails(o => o.SharpnessAware = SharpnessAwareOptions.Asam(eta: double.NaN)));
        Assert.AreEqual("SharpnessAware.AscentSteps", Fails(o => o.SharpnessAware = SharpnessAwareOptions.SaGd(ascentSteps: 0)));
        Assert.AreEqual("SharpnessAware.ShardCount", Fails(o => { o.BatchSize = 8; o.SharpnessAware = SharpnessAwareOptions.Sam() with { ShardCount = 9 }; }));
        Assert.AreEqual("Averaging.EvaluationFrequency", Fails(o => o.Averaging = WeightAveragingOptions.Swad(evaluationFrequency: 0)));
        Assert.AreEqual("Averaging.Decay", Fails(o => o.Averaging = WeightAveragingOptions.Ema(decay: 1)));
        Assert.AreEqual("Schedule.WarmupEpochs", Fails(o => o.Schedule = LearningRateSchedule.CosineDecay(warmupEpochs: -1)));
        Assert.AreEqual("SharpnessAware.Efficiency.Interval", Fails(o => o.SharpnessAware = SharpnessAwareOptions.LookSam(interval: 0)));
        Assert.AreEqual("SharpnessAware.Efficiency.Probability", Fails(o => o.SharpnessAware = SharpnessAwareOptions.RandomizedSam(probability: 1.5)));
        Assert.AreEqual("SharpnessAware.Efficiency.Decay", Fails(o => o.SharpnessAware = SharpnessAwareOptions.AeSam() with { Efficiency = new AdaptiveSamSchedule { Decay = 1 } }));
        Assert.AreEqual("Mesa.Temperature", Fails(o => o.Mesa = MesaOptions.Default() with { Temperature = 0 }));
        Assert.AreEqual("Mesa.WarmupEpochs", Fails(o => { o.Epochs = 5; o.Mesa = MesaOptions.Default(); }), "the term would never apply");
        Assert.AreEqual("AccumulationSteps", Fails(o => o.AccumulationSteps = 0));
        Assert.AreEqual("Momentum", Fails(o => o.Momentum = 1));
        Assert.AreEqual("Beta2", Fails(o => o.Beta2 = -0.5));
        Assert.AreEqual("LabelSmoothing", Fails(o => o.LabelSmoothing = 1));
        Assert.AreEqual("ScoringBatchSize", Fails(o => o.ScoringBatchSize = ModelLimits.MaxScoringBatchSize + 1), "a model that trains must also load");
        Assert.AreEqual("OnFailure", Fails(o => o.OnFailure = (TrainingFailurePolicy)7));
        Assert.AreEqual("Precision", Fails(o => o.Precision = (ComputePrecision)7));
        Assert.AreEqual("Augmentation.Crop.Padding", Fails(o => o.Augmentation = new AugmentationOptions { Crop = new RandomCrop { Padding = -1 } }));
        Assert.AreEqual("Augmentation.HorizontalFlip.Probability", Fails(o => o.Augmentation = new AugmentationOptions { HorizontalFlip = new RandomHorizontalFlip { Probability = 2 } }));
        Assert.AreEqual("Augmentation.Crop.Padding", Fails(o =>
        {
            (o.ImageHeight, o.ImageWidth) = (8, 8);
            o.Augmentation = new AugmentationOptions { Crop = new RandomCrop { Padding = 8, Fill = CropFill.Reflect } };
        }), "a crop larger than the image, known from ImageHeight and ImageWidth");
    }

    [TestMethod]
    public void EfficientStepsMesaAndAccumulationReachTheTorchRecord()
    {
        var look = SharpnessAwareOptions.LookSam(interval: 3, alpha: 0.5);
        var image = new FlatMinimaImageClassificationTrainer.Options { SharpnessAware = look, AccumulationSteps = 4 };
        Assert.AreSame(look, image.ToTrainingOptions().GradientStep);
        Assert.AreEqual(4, image.ToTrainingOptions().AccumulationSteps);

        var mesa = MesaOptions.Default() with { Weight = 0.3 };
        image.Mesa = mesa;
        Assert.AreSame(mesa, image.ToTrainingOptions().GradientStep, "one gradient step per run: MESA replaces SAM");
        Assert.IsNull(image.SharpnessAware);
        image.SharpnessAware = null;
        Assert.AreSame(mesa, image.Mesa, "clearing the (already empty) SharpnessAware leaves MESA in charge");
        image.Mesa = null;
        Assert.IsNull(image.ToTrainingOptions().GradientStep, "no MESA and no SAM: the plain gradient");
        image.SharpnessAware = look;
        image.Mesa = null;
        Assert.AreSame(look, image.SharpnessAware, "clearing an unset Mesa leaves SAM in charge");

        // F2M's flat-region step does not accumulate: the incremental few-shot trainer names the setting.
        var trainers = new MLContext(seed: 1).MulticlassClassification.Trainers;
        var fewShot = new FlatMinimaIncrementalFewShotTrainer.Options { AccumulationSteps = 2 };
        Assert.AreEqual("AccumulationSteps", Assert.ThrowsExactly<ArgumentException>(() => trainers.FlatMinimaIncrementalFewShot(fewShot)).ParamName);
        fewShot.FlatRegionSearch = false;
        Assert.IsNotNull(trainers.FlatMinimaIncrementalFewShot(fewShot), "plain cross-entropy accumulates");
    }

    [TestMethod]
    public void AnEfficientStepWithGradientAccumulationAndMesaFit()
    {
        var ml = new MLContext(seed: 1);
        var rows = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 4));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows);
        var reports = new List<EpochReport>();
        var options = new FlatMinimaImageClassificationTrainer.Options
        {
            ImageColumnName = "ImageSource", Epochs = 2, BatchSize = 4, AccumulationSteps = 2, Device = DeviceKind.Cpu,
            SharpnessAware = SharpnessAwareOptions.LookSam(interval: 2), Progress = reports.Add,
        };
        using (var model = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options).Fit(keyed))
            Assert.AreEqual(3, model.ClassCount);
        Assert.AreEqual(2, reports.Count);
        Assert.AreEqual(2, reports[0].Steps, "12 rows: micro-batches of 4, two per step (4 + 4, then 4)");
        Assert.AreEqual(1, reports[0].SharpnessAwareSteps, "LookSAM k = 2: steps 0 and 2 are sharpness-aware");

        reports.Clear();
        options.Mesa = MesaOptions.Default() with { WarmupEpochs = 1 };
        using (var model = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options).Fit(keyed))
            Assert.AreEqual(3, model.ClassCount);
        Assert.AreEqual(0, reports.Sum(r => r.SharpnessAwareSteps), "MESA takes one backward pass per step");
    }

    [TestMethod]
    public void ATrainerKeepsTheOptionsItWasCreatedWith()
    {
        var ml = new MLContext(seed: 1);
        var options = new FlatMinimaImageClassificationTrainer.Options { ImageColumnName = "ImageSource", Epochs = 1, BatchSize = 8, Device = DeviceKind.Cpu };
        var trainer = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(options);
        options.BatchSize = 0;                                        // invalid, but the trainer was already created and validated
        options.SharpnessAware = SharpnessAwareOptions.Sam(-1);
        var rows = ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 4));
        using var model = trainer.Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows));
        Assert.AreEqual(3, model.ClassCount, "trained with the options as they were at creation");
    }

    [TestMethod]
    public void TheSimpleOverloadsKeepTheTrainersDefaults()
    {
        var ml = new MLContext(seed: 1);
        var sam = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(imageColumnName: "ImageSource");
        var off = ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(imageColumnName: "ImageSource", rho: 0, epochs: 3);
        Assert.IsNotNull(sam);
        Assert.IsNotNull(off);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.FlatMinimaImageClassification(rho: -0.1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.FlatMinimaIncrementalFewShot(bound: 0));
    }
}
