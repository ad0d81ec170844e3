using System;
using System.Linq;
using FlatMinima.MLNet.Diagnostics;
using FlatMinima.Torch.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.MLNet.Tests;

[TestClass]
public sealed class SharpnessEvaluationTests
{
    private static MLContext _ml = null!;
    private static ITransformer _model = null!;
    private static IDataView _data = null!;

    [ClassInitialize]
    public static void Train(TestContext context)
    {
        _ml = new MLContext(seed: 1);
        var train = _ml.Data.LoadFromEnumerable(TestData.Load("train", TestData.ThreeClasses, 30));
        _model = TestData.Pipeline(_ml, TestData.FastOptions(epochs: 2)).Fit(train);
        _data = _ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 20));
    }

    private static FlatMinimaSharpnessOptions Small(Action<FlatMinimaSharpnessOptions>? change = null)
    {
        var o = new FlatMinimaSharpnessOptions { MaxExamples = 48, BatchSize = 16, TraceProbes = 20, KrylovDimension = 40, MaxIterationsPerEigenvalue = 40, AscentSteps = 3, AverageCaseSamples = 5 };
        change?.Invoke(o);
        return o;
    }

    [TestMethod]
    public void ReportMeasuresTheModelWithoutChangingIt()
    {
        var before = TestData.Scores(_model.Transform(_data));
        var report = _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => { o.PerLayer = true; o.TopEigenvalues = 2; }));
        var after = TestData.Scores(_model.Transform(_data));
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i], "weights unchanged");

        Assert.AreEqual(48, report.Examples);
        var metrics = _ml.MulticlassClassification.Evaluate(_model.Transform(_ml.Data.TakeRows(_data, 48)));
        Assert.AreEqual(metrics.MicroAccuracy, report.Accuracy, 1e-9, "same accuracy as ML.NET's evaluator on the same rows");
        Assert.AreEqual(metrics.LogLoss, report.Loss, 1e-4, "the measured loss is the mean cross-entropy");
        Assert.AreEqual(2, report.TopEigenvalues!.Values.Count);
        Assert.IsTrue(report.TopEigenvalues.Values[0] >= report.TopEigenvalues.Values[1] && report.TopEigenvalues.Values[0] > 0);
        Assert.IsTrue(report.Trace!.Trace > 0);
        Assert.IsTrue(report.WorstCase!.Value >= 0 && report.EpsilonSharpness!.Value >= 0 && report.AdaptiveWorstCase!.Value >= 0);
        // The per-module blocks' traces add up to the full trace.
        double sum = report.PerLayer.Sum(l => l.Trace.Trace);
        double se = Math.Sqrt(report.PerLayer.Sum(l => l.Trace.StandardError * l.Trace.StandardError) + Math.Pow(report.Trace.StandardError, 2));
        Assert.IsTrue(Math.Abs(sum - report.Trace.Trace) <= 5 * se, $"Σ blocks {sum} vs trace {report.Trace}");
        Assert.AreEqual(report.Parameters, report.PerLayer.Sum(l => l.Parameters));
        StringAssert.Contains(report.ToString(), "Hessian trace (Hutchinson)");
    }

    [TestMethod]
    public void Float64ModeRestoresTheModelExactly()
    {
        var before = TestData.Scores(_model.Transform(_data));
        var report = _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => { o.Float64 = true; o.TraceProbes = 0; o.WorstCaseRho = 0; o.KeskarEpsilon = 0; o.AdaptiveRho = 0; }));
        Assert.IsTrue(report.TopEigenvalues!.Values[0] > 0);
        var after = TestData.Scores(_model.Transform(_data));
        for (int i = 0; i < before.Length; i++) CollectionAssert.AreEqual(before[i], after[i]);
    }

    [TestMethod]
    public void LandscapeSliceIsCenteredOnTheModelLoss()
    {
        var grid = _ml.MulticlassClassification.LossLandscape(_model, _data, dimensions: 1, span: 0.5, points: 5, maxExamples: 48);
        var report = _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => { o.TopEigenvalues = 0; o.TraceProbes = 0; o.WorstCaseRho = 0; o.KeskarEpsilon = 0; o.AdaptiveRho = 0; }));
        Assert.AreEqual(0.0, grid.Alphas[2]);
        Assert.AreEqual(report.Loss, grid.Losses[2, 0], 1e-6);
        Assert.IsTrue(grid.Losses[0, 0] > grid.Losses[2, 0] && grid.Losses[4, 0] > grid.Losses[2, 0], "a trained model sits in a basin");
        var grid2 = _ml.MulticlassClassification.LossLandscape(_model, _data, dimensions: 2, span: 0.5, points: 3, maxExamples: 16);
        Assert.AreEqual((3, 3), (grid2.Losses.GetLength(0), grid2.Losses.GetLength(1)));
    }

    [TestMethod]
    public void EachEigenSettingReachesItsSolver()
    {
        static FlatMinimaSharpnessOptions EigenOnly(Action<FlatMinimaSharpnessOptions> change) =>
            Small(o => { o.TraceProbes = 0; o.WorstCaseRho = 0; o.KeskarEpsilon = 0; o.AdaptiveRho = 0; o.EigenTolerance = 1e-12; change(o); });
        var lanczos = _ml.MulticlassClassification.EvaluateSharpness(_model, _data, EigenOnly(o => { o.TopEigenvalues = 2; o.KrylovDimension = 3; })).TopEigenvalues!;
        Assert.AreEqual(3, lanczos.HessianVectorProducts, "Lanczos: KrylovDimension caps the products for all eigenvalues");
        var power = _ml.MulticlassClassification.EvaluateSharpness(_model, _data, EigenOnly(o => { o.TopEigenvalues = 2; o.UseLanczos = false; o.MaxIterationsPerEigenvalue = 2; })).TopEigenvalues!;
        Assert.AreEqual(2 * 2, power.HessianVectorProducts, "power iteration: MaxIterationsPerEigenvalue caps each eigenvalue");
        var defaults = new FlatMinimaSharpnessOptions();
        Assert.AreEqual(EigenOptions.DefaultTolerance, defaults.EigenTolerance, "one default tolerance in both layers");
        Assert.AreEqual(EigenOptions.DefaultKrylovDimension, defaults.KrylovDimension);
        Assert.AreEqual(EigenOptions.DefaultMaxIterationsPerEigenvalue, defaults.MaxIterationsPerEigenvalue);
    }

    [TestMethod]
    public void BadInputsGiveClearErrors()
    {
        var noLabel = _ml.Data.LoadFromEnumerable(TestData.Load("test", TestData.ThreeClasses, 2).Select(r => new { r.ImageSource }));
        StringAssert.Contains(Assert.Throws<ArgumentException>(() => _ml.MulticlassClassification.EvaluateSharpness(_model, noLabel, Small())).Message, "'Label'");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => o.EigenTolerance = 0))).Message, "EigenTolerance");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => o.KrylovDimension = 0))).Message, "KrylovDimension");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => o.MaxIterationsPerEigenvalue = 0))).Message, "MaxIterationsPerEigenvalue");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => o.WorstCaseRho = -1))).Message, "WorstCaseRho");
        var keys = _ml.Transforms.Conversion.MapValueToKey("Label").Fit(_data);
        var empty = _ml.Data.SkipRows(keys.Transform(_data), 1000);
        var xf = ((System.Collections.Generic.IEnumerable<ITransformer>)_model).OfType<ImageClassification.FlatMinimaImageClassificationTransformer>().Single();
        StringAssert.Contains(Assert.ThrowsExactly<InvalidOperationException>(() => _ml.MulticlassClassification.EvaluateSharpness(xf, empty, Small())).Message, "empty");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _ml.MulticlassClassification.EvaluateSharpness(_model, _data, Small(o => { o.TopEigenvalues = 100000; o.UseLanczos = false; }))).Message, "larger than the number of parameters");
    }
}
