using System;
using System.Linq;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// A pretrained image backbone and where its weights come from: <see cref="ResNet18ImageNet"/> (ML.NET's ImageNet
/// ResNet-18 from the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package). It creates the network to fine-tune
/// (<see cref="CreateNetwork"/>: the imported backbone, its input preparation and a new head sized to the classes) and
/// describes its input (<see cref="Channels"/>, <see cref="DefaultInputSize"/>). The created network holds everything it
/// needs: a saved one is rebuilt by <see cref="CreateSkeleton"/> without the original files.
/// </summary>
public sealed record PretrainedBackbone
{
    /// <summary>The <see cref="Name"/> of <see cref="ResNet18ImageNet"/> (also the architecture name a trained model is saved under).</summary>
    public const string ResNet18ImageNetName = "ResNet18ImageNet";

    private PretrainedBackbone(string name, string? onnxPath, string? preprocessPath)
    {
        Name = name;
        OnnxPath = onnxPath;
        PreprocessPath = preprocessPath;
    }

    /// <summary>The backbone's name (<see cref="ResNet18ImageNetName"/>).</summary>
    public string Name { get; }

    /// <summary>The network's ONNX file, or null for the copy the NuGet package puts in the app's output folder.</summary>
    public string? OnnxPath { get; init; }

    /// <summary>The preprocessing ONNX file (the mean image), or null for the copy in the app's output folder.</summary>
    public string? PreprocessPath { get; init; }

    /// <summary>The input channels: 3 (RGB; gray images are replicated).</summary>
    public int Channels => 3;

    /// <summary>The input side the backbone was trained at: 224. Smaller inputs (112–160) trade accuracy for CPU time; at least 32.</summary>
    public int DefaultInputSize => 224;

    /// <summary>The smallest input side the backbone accepts: 32.</summary>
    public int MinInputSize => 32;

    /// <summary>
    /// The factor the network's 0–1 RGB input is multiplied by before the mean image is subtracted: 255 (the backbone
    /// was trained on 0–255 pixels). The input preparation is RGB 0–1 → × <see cref="PixelScale"/> → BGR when
    /// <see cref="Bgr"/> → minus the mean image read from the preprocessing file, resized to the input size.
    /// </summary>
    public double PixelScale => 255;

    /// <summary>Whether the backbone reads BGR (it does: the preprocessing graph reorders RGB to BGR; checked when the file is read).</summary>
    public bool Bgr => true;

    /// <summary>The embedding width (the head's input): 512.</summary>
    public int EmbeddingSize => ImageNetResNet.EmbeddingSize;

    /// <summary>
    /// ML.NET's ImageNet ResNet-18 (blocks [2, 2, 2, 3], CNTK padding; BGR input in 0–255 minus a mean image), read from
    /// <paramref name="onnxPath"/> and <paramref name="preprocessPath"/>, or when null from the files the NuGet package
    /// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> copies into the app's output folder. Nothing is read until a network
    /// is created; a missing file then gives a <see cref="System.IO.FileNotFoundException"/> naming the package to add.
    /// </summary>
    public static PretrainedBackbone ResNet18ImageNet(string? onnxPath = null, string? preprocessPath = null) =>
        new(ResNet18ImageNetName, onnxPath, preprocessPath);

    /// <summary>Whether <paramref name="name"/> is the name of a pretrained backbone.</summary>
    public static bool IsBackboneName(string name) => name == ResNet18ImageNetName;

    /// <summary>Throws <see cref="System.IO.FileNotFoundException"/> (naming the NuGet package to add) when a file is missing.</summary>
    public void CheckFiles()
    {
        DnnImageModelFiles.ResNet18(OnnxPath);
        DnnImageModelFiles.ResNetPreprocess(PreprocessPath);
    }

    /// <summary>
    /// The network to fine-tune for <paramref name="numClasses"/> classes and <paramref name="height"/> ×
    /// <paramref name="width"/> inputs, on the CPU in eval mode: the imported backbone, the mean image resized to the input
    /// size (area averaging when shrinking, bilinear otherwise) and a new linear head drawn from <paramref name="headSeed"/>.
    /// </summary>
    public PretrainedImageNetwork CreateNetwork(int numClasses, int height, int width, long headSeed = 0)
    {
        CheckSize(height, width);
        var network = ResNet18OnnxImporter.Import(numClasses, OnnxPath, headSeed);
        try
        {
            using var preprocessing = ResNetPreprocessing.Read(PreprocessPath);
            if (preprocessing.IsBgr != Bgr)
                throw new System.IO.InvalidDataException($"The preprocessing graph reorders the channels as [{string.Join(", ", preprocessing.ChannelOrder)}]; expected BGR [2, 1, 0].");
            using var mean = Resize(preprocessing.MeanImage, height, width);
            var result = new PretrainedImageNetwork(new ImagePreprocessingModule(mean, PixelScale, Bgr), network);
            result.eval();
            return result;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The network of backbone <paramref name="name"/> with untrained weights and a zero mean image, to load a saved
    /// network's state into; reads no file.
    /// </summary>
    public static PretrainedImageNetwork CreateSkeleton(string name, int numClasses, int height, int width)
    {
        if (!IsBackboneName(name)) throw new ArgumentException($"'{name}' is not a pretrained backbone.", nameof(name));
        CheckSize(height, width);
        var network = new ImageNetResNet(ImageNetResNet.MLNetResNet18Blocks, numClasses, StridedPadding.BeginHeavy);
        using var mean = zeros(3, height, width);
        var backbone = ResNet18ImageNet();
        return new PretrainedImageNetwork(new ImagePreprocessingModule(mean, backbone.PixelScale, backbone.Bgr), network);
    }

    private static void CheckSize(int height, int width)
    {
        if (height < 32 || width < 32)
            throw new ArgumentOutOfRangeException(height < 32 ? nameof(height) : nameof(width), Math.Min(height, width),
                $"A ResNet backbone needs inputs of at least 32×32 pixels; got {height}×{width}.");
    }

    private static Tensor Resize(Tensor meanImage, int height, int width)
    {
        if (meanImage.shape[1] == height && meanImage.shape[2] == width) return meanImage.clone();
        using var scope = NewDisposeScope();
        bool shrink = height <= meanImage.shape[1] && width <= meanImage.shape[2];
        var resized = nn.functional.interpolate(meanImage.unsqueeze(0), new long[] { height, width },
            mode: shrink ? InterpolationMode.Area : InterpolationMode.Bilinear, align_corners: shrink ? null : false);
        return resized.squeeze(0).contiguous().MoveToOuterDisposeScope();
    }
}
