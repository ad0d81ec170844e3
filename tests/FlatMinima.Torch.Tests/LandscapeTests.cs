using System;
using System.IO;
using System.Linq;
using FlatMinima.Plotting;
using FlatMinima.Torch.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class LandscapeTests
{
    [TestMethod]
    public void FilterNormalizedSlicesFollowTheLossAndArePlotted()
    {
        manual_seed(1);
        var model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3));
        var x = randn(32, 4);
        var y = randint(0, 3, new long[] { 32 });
        using var objective = LossObjective.ForModel(model, (logits, t) => nn.functional.cross_entropy(logits, t), new[] { (x, y) });
        var d = LossLandscape.FilterNormalizedDirection(objective, seed: 3);
        // Filter normalization: each row of a weight matrix gets the row's norm; biases get no direction.
        var parts = objective.Split(d);
        var first = objective.Parameters[0];
        Assert.IsTrue(allclose(linalg.vector_norm(parts[0], dims: new long[] { 1 }), linalg.vector_norm(first.detach(), dims: new long[] { 1 }), rtol: 1e-4));
        Assert.AreEqual(0.0, parts[1].abs().sum().ToDouble(), "bias gets no direction");

        var line = LossLandscape.Slice1D(objective, d, span: 1, points: 5);
        Assert.AreEqual(objective.Loss(), line.Losses[2, 0], 1e-6);
        Assert.AreEqual(objective.LossAt(d.mul(0.5)), line.Losses[3, 0], 1e-6);
        var grid = LossLandscape.Slice2D(objective, d, LossLandscape.FilterNormalizedDirection(objective, seed: 4), span: 1, points: 3);
        Assert.AreEqual(objective.Loss(), grid.Losses[1, 1], 1e-6);

        foreach (var (g, name) in new[] { (line, "1d"), (grid, "2d") })
        {
            string path = Path.Combine(Path.GetTempPath(), $"flatminima-landscape-{name}-{Guid.NewGuid():N}.png");
            LandscapePlots.SavePng(g, path, $"test {name}");
            var bytes = File.ReadAllBytes(path);
            CollectionAssert.AreEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, bytes.Take(4).ToArray(), "a PNG file");
            Assert.IsTrue(bytes.Length > 2000);
            File.Delete(path);
        }
    }
}
