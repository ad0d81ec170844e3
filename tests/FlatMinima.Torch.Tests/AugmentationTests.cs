using System;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Augmentation;
using FlatMinima.Torch.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static TorchSharp.torch;
using static FlatMinima.Torch.Tests.TinyTraining;

namespace FlatMinima.Torch.Tests;

/// <summary>
/// Each augmentation op's semantics on tiny tensors, seeding through an explicit generator, option checks, and the
/// training loop: augmented training is reproducible, differs from unaugmented training and resumes bit-identically.
/// </summary>
[TestClass]
public sealed class AugmentationTests
{
    // Distinct values, so that every crop offset gives a different image.
    private static Tensor Batch(long n = 6, long c = 3, long h = 5, long w = 7) => arange(n * c * h * w, ScalarType.Float32).view(n, c, h, w).div_(10);

    private static Generator Seeded(ulong seed = 3) => new(seed, CPU);

    private static float[] Values(Tensor t) => t.contiguous().data<float>().ToArray();

    [TestMethod]
    public void FlipReversesTheWidthIndexExactlyOrLeavesTheImage()
    {
        using var x = Batch();
        using var always = new RandomHorizontalFlip { Probability = 1 }.Apply(x, Seeded());
        for (int w = 0; w < 7; w++)
            CollectionAssert.AreEqual(Values(x.select(3, 6 - w)), Values(always.select(3, w)), $"column {w}");
        using var never = new RandomHorizontalFlip { Probability = 0 }.Apply(x, Seeded());
        CollectionAssert.AreEqual(Values(x), Values(never));
        using var half = new RandomHorizontalFlip().Apply(Batch(64, 1, 2, 3), Seeded());
        using var reference = Batch(64, 1, 2, 3);
        int flipped = Enumerable.Range(0, 64).Count(i => Values(half[i]).SequenceEqual(Values(reference[i].flip(2))));
        int kept = Enumerable.Range(0, 64).Count(i => Values(half[i]).SequenceEqual(Values(reference[i])));
        Assert.AreEqual(64, flipped + kept, "every image is either mirrored or unchanged");
        Assert.IsTrue(flipped is > 16 and < 48, $"{flipped} of 64 mirrored at p = 0.5");
    }

    [TestMethod]
    [DataRow(CropFill.Zero, 2)]
    [DataRow(CropFill.Reflect, 2)]
    [DataRow(CropFill.Zero, 6)]
    public void ACropIsASliceOfThePaddedImageAtAnOffsetWithinBounds(CropFill fill, int padding)
    {
        using var x = Batch(8, 2, 5, 7);
        var crop = new RandomCrop { Padding = padding, Fill = fill };
        using var cropped = crop.Apply(x, Seeded());
        CollectionAssert.AreEqual(x.shape, cropped.shape);
        using var padded = nn.functional.pad(x, new long[] { padding, padding, padding, padding },
            fill == CropFill.Reflect ? TorchSharp.PaddingModes.Reflect : TorchSharp.PaddingModes.Constant);
        var offsets = new System.Collections.Generic.HashSet<(int, int)>();
        for (int i = 0; i < 8; i++)
        {
            var image = Values(cropped[i]);
            var matches = (from dy in Enumerable.Range(0, 2 * padding + 1)
                           from dx in Enumerable.Range(0, 2 * padding + 1)
                           where Values(padded[i].narrow(1, dy, 5).narrow(2, dx, 7)).SequenceEqual(image)
                           select (dy, dx)).ToList();
            Assert.IsTrue(matches.Count >= 1, $"image {i} is an exact slice of its padded image at an offset in [0, {2 * padding}]²");
            offsets.Add(matches[0]);
        }
        Assert.IsTrue(offsets.Count > 1, "the offsets vary between images");
    }

    [TestMethod]
    public void AResizedCropOfTheWholeImageIsTheIdentity()
    {
        using var x = Batch(4, 3, 6, 6);
        using var y = new RandomResizedCrop { MinScale = 1, MaxScale = 1, MinRatio = 1, MaxRatio = 1 }.Apply(x, Seeded());
        Assert.IsTrue(x.allclose(y, rtol: 0, atol: 1e-5), $"max difference {y.sub(x).abs().max().item<float>()}");
        using var small = new RandomResizedCrop { MinScale = 0.25, MaxScale = 0.25, MinRatio = 1, MaxRatio = 1 }.Apply(x, Seeded());
        CollectionAssert.AreEqual(x.shape, small.shape, "output = input size");
        Assert.IsFalse(x.allclose(small), "a quarter of the image, enlarged, differs");
    }

    [TestMethod]
    public void AnAffineMapOfZeroDegreesAndZeroShiftIsTheIdentity()
    {
        using var x = Batch(4, 1, 5, 7).div(10);
        using var y = new RandomAffine { Degrees = 0, Translate = 0 }.Apply(x, Seeded());
        Assert.IsTrue(x.allclose(y, rtol: 0, atol: 1e-6), $"max difference {y.sub(x).abs().max().item<float>()}");
        using var square = zeros(1, 1, 5, 5);
        square[0, 0, 2, 4] = tensor(1f);
        using var turned = new RandomAffine { Degrees = 90, Translate = 0 }.Apply(square.expand(64, 1, 5, 5).contiguous(), Seeded());
        Assert.IsTrue(turned.ge(0).logical_and(turned.le(1 + 1e-6)).all().item<bool>(), "bilinear resampling with a zero border blends, within the input's range");
        Assert.IsTrue(turned[0, 0, 2, 4].item<float>() < 1 || turned[1, 0, 2, 4].item<float>() < 1, "rotated images move the pixel");
    }

    [TestMethod]
    public void JitterOfStrengthZeroIsTheIdentityAndOtherwiseBlends()
    {
        using var x = Batch(4, 3, 2, 2).sub(1);
        using var same = new ColorJitter { Brightness = 0, Contrast = 0, Saturation = 0 }.Apply(x, Seeded());
        CollectionAssert.AreEqual(Values(x), Values(same));
        using var brighter = new ColorJitter { Brightness = 0.5, Contrast = 0, Saturation = 0 }.Apply(x, Seeded());
        var factor = brighter.div(x.masked_fill(x.eq(0), 1)).masked_fill(x.eq(0), float.NaN);
        for (int i = 0; i < 4; i++)
        {
            var f = Values(factor[i]).Where(float.IsFinite).ToArray();
            Assert.IsTrue(f.Max() - f.Min() < 1e-5 && f[0] >= 0.5 - 1e-6 && f[0] <= 1.5 + 1e-6, $"image {i}: one brightness factor in [0.5, 1.5]");
        }
        using var gray = Batch(3, 1, 2, 2);
        using var grayJitter = new ColorJitter { Brightness = 0, Contrast = 0, Saturation = 1 }.Apply(gray, Seeded());
        CollectionAssert.AreEqual(Values(gray), Values(grayJitter), "saturation skips 1-channel images");
    }

    [TestMethod]
    public void ErasingZeroesOneRectangleWhoseAreaIsInItsRange()
    {
        const int h = 20, w = 24;
        using var x = ones(64, 2, h, w);
        var erasing = new RandomErasing { Probability = 1, MinArea = 0.1, MaxArea = 0.3 };
        using var y = erasing.Apply(x, Seeded());
        for (int i = 0; i < 64; i++)
        {
            var zero = y[i].eq(0);
            CollectionAssert.AreEqual(zero[0].data<bool>().ToArray(), zero[1].data<bool>().ToArray(), "every channel is erased alike");
            var rows = zero[0].any(1);
            var cols = zero[0].any(0);
            long area = zero[0].sum().item<long>(), height = rows.sum().item<long>(), width = cols.sum().item<long>();
            Assert.AreEqual(height * width, area, $"image {i}: the erased pixels form one rectangle");
            // Sides are rounded down to whole pixels: the area is at most MaxArea and at least MinArea less one row and column.
            Assert.IsTrue(area <= 0.3 * h * w && area >= 0.1 * h * w - h - w, $"image {i}: area {area} of {h * w}");
            Assert.IsTrue(y[i].masked_select(zero.logical_not()).eq(1).all().item<bool>(), "the rest is unchanged");
        }
        using var none = (erasing with { Probability = 0 }).Apply(x, Seeded());
        CollectionAssert.AreEqual(Values(x), Values(none));
    }

    [TestMethod]
    public void TheSameSeedGivesTheSameAugmentationsAndAnotherSeedOthers()
    {
        var strong = AugmentationOptions.Strong();
        using var x = randn(new long[] { 8, 3, 12, 12 }, generator: Seeded(9));
        using var a = strong.Apply(x, Seeded(1));
        using var b = strong.Apply(x, Seeded(1));
        using var c = strong.Apply(x, Seeded(2));
        CollectionAssert.AreEqual(Values(a), Values(b));
        Assert.IsFalse(Values(a).SequenceEqual(Values(c)));
        var generator = Seeded(1);
        using var first = strong.Apply(x, generator);
        using var second = strong.Apply(x, generator);
        Assert.IsFalse(Values(first).SequenceEqual(Values(second)), "the generator advances: each batch draws anew");
    }

    [TestMethod]
    public void TheCropIsChosenByImageSize()
    {
        var standard = AugmentationOptions.Standard(flip: false);
        using var small = ones(2, 1, 8, 8);
        using var smallOut = standard.Apply(small, Seeded());
        Assert.IsTrue(smallOut.eq(0).any().item<bool>() || smallOut.eq(1).all().item<bool>(), "small images: zero-padded crop");
        Assert.IsTrue(smallOut.eq(0).logical_or(smallOut.eq(1)).all().item<bool>(), "a pad-and-crop does not interpolate");
        StringAssert.Contains(standard.ToString(), "Crop(padding 4, zero) up to 64 px, else ResizedCrop");
        Assert.AreEqual("none", new AugmentationOptions().ToString());
        Assert.IsNull(AugmentationOptions.None);
        StringAssert.Contains(AugmentationOptions.Standard().ToString(), "HorizontalFlip(p 0.5)");
        Assert.IsFalse(standard.ToString().Contains("Flip"), "flip is optional");
    }

    [TestMethod]
    public void BadOptionsNameTheSetting()
    {
        string Fails(AugmentationOptions o) => Assert.ThrowsExactly<ArgumentOutOfRangeException>(o.Validate).ParamName!;
        Assert.AreEqual("Crop.Padding", Fails(new() { Crop = new RandomCrop { Padding = -1 } }));
        Assert.AreEqual("HorizontalFlip.Probability", Fails(new() { HorizontalFlip = new RandomHorizontalFlip { Probability = 1.5 } }));
        Assert.AreEqual("Jitter.Contrast", Fails(new() { Jitter = new ColorJitter { Contrast = -0.1 } }));
        Assert.AreEqual("Erasing.Probability", Fails(new() { Erasing = new RandomErasing { Probability = double.NaN } }));
        Assert.AreEqual("Erasing.MaxArea", Fails(new() { Erasing = new RandomErasing { MinArea = 0.5, MaxArea = 0.2 } }));
        Assert.AreEqual("ResizedCrop.MinScale", Fails(new() { ResizedCrop = new RandomResizedCrop { MinScale = 0 } }));
        Assert.AreEqual("ResizedCrop.MaxRatio", Fails(new() { ResizedCrop = new RandomResizedCrop { MinRatio = 2, MaxRatio = 1 } }));
        Assert.AreEqual("Affine.Degrees", Fails(new() { Affine = new RandomAffine { Degrees = -5 } }));
        var reflect = new AugmentationOptions { Crop = new RandomCrop { Padding = 4, Fill = CropFill.Reflect } };
        reflect.Validate();
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => reflect.ValidateFor(4, 4));
        Assert.AreEqual("Crop.Padding", e.ParamName);
        StringAssert.Contains(e.Message, "4×4");

        // The training loop checks against the data's size and names the option.
        var training = new ClassifierTrainingOptions { Epochs = 1, BatchSize = 8, TuneGlibcMalloc = false, Augmentation = reflect };
        var loop = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ClassifierTrainer(training, CPU).Train(Net(), Blobs(16, 1)));
        Assert.AreEqual("Augmentation.Crop.Padding", loop.ParamName);
        Assert.AreEqual("Affine.Translate", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => new ClassifierTrainer(training with { Augmentation = new() { Affine = new RandomAffine { Translate = 2 } } }, CPU)).ParamName);
        var flat = new TensorDataset(randn(8, 16), zeros(8, ScalarType.Int64));
        Assert.ThrowsExactly<ArgumentException>(() => new ClassifierTrainer(training with { Augmentation = AugmentationOptions.Standard() }, CPU)
            .Train(nn.Sequential(nn.Linear(16, 2)), flat));
    }

    private static readonly ClassifierTrainingOptions Training = new() { Epochs = 3, BatchSize = 8, TuneGlibcMalloc = false };

    private static float[] Weights(nn.Module model) =>
        model.state_dict().Values.Where(t => t.is_floating_point()).SelectMany(t => t.detach().data<float>().ToArray()).ToArray();

    private static float[] Train(ClassifierTrainingOptions options, TensorDataset data, TensorDataset? validation = null)
    {
        using var model = Net();
        new ClassifierTrainer(options, CPU).Train(model, data, validation);
        return Weights(model);
    }

    [TestMethod]
    public void TrainingWithStandardIsReproducibleAndDiffersFromNone()
    {
        var data = Blobs(40, 1);
        var validation = Blobs(16, 2);
        var standard = Training with { Augmentation = AugmentationOptions.Standard() };
        var a = Train(standard, data, validation);
        CollectionAssert.AreEqual(a, Train(standard, data, validation), "same seed, bit-identical weights");
        Assert.IsFalse(a.SequenceEqual(Train(Training, data, validation)), "augmentation changes training");
        Assert.IsFalse(a.SequenceEqual(Train(standard with { Seed = 2 }, data, validation)), "another seed, other weights");
        Assert.IsTrue(a.All(float.IsFinite));
        var strong = Train(Training with { Augmentation = AugmentationOptions.Strong() }, data);
        Assert.IsTrue(strong.All(float.IsFinite));
    }

    [TestMethod]
    public void ResumingAnAugmentedRunIsBitIdentical()
    {
        var data = Blobs(40, 2);
        string path = Path.Combine(Path.GetTempPath(), $"flatminima-aug-{Guid.NewGuid():N}.ckpt");
        try
        {
            var options = Training with { Augmentation = AugmentationOptions.Strong(), CheckpointPath = path };
            var full = Train(options, data);
            var interrupted = Net();
            var stopping = new ClassifierTrainer(options with { Progress = r => { if (r.Epoch == 2) throw new OperationCanceledException(); } }, CPU);
            Assert.ThrowsExactly<OperationCanceledException>(() => stopping.Train(interrupted, data));
            using var resumed = Net();
            new ClassifierTrainer(options with { CheckpointPath = null }, CPU).Train(resumed, data, resumeFrom: path);
            CollectionAssert.AreEqual(full, Weights(resumed), "resumed = uninterrupted, bit for bit");

            var other = Assert.ThrowsExactly<InvalidDataException>(() =>
                new ClassifierTrainer(options with { CheckpointPath = null, Augmentation = AugmentationOptions.Standard() }, CPU).Train(Net(), data, resumeFrom: path));
            StringAssert.Contains(other.Message, "Augmentation");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
