using Microsoft.VisualStudio.TestTools.UnitTesting;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Tests;

[TestClass]
public sealed class NativeLoadTests
{
    [TestMethod]
    public void TorchSharpLoadsAndComputesOnThisMachine()
    {
        // On Debian 12 this only works because the build marked GLIBCXX_3.4.32 weak in libLibTorchSharp.so.
        using var a = tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var b = a.matmul(a);
        CollectionAssert.AreEqual(new float[] { 7, 10, 15, 22 }, b.data<float>().ToArray());
        using var x = randn(8, 3, 5, 5);
        using var conv = nn.Conv2d(3, 4, 3);
        CollectionAssert.AreEqual(new long[] { 8, 4, 3, 3 }, conv.call(x).shape);
    }
}
