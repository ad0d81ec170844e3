using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// A pretrained image backbone and where its weights come from: <see cref="ResNet18ImageNet"/> (ML.NET's ImageNet
/// ResNet-18 from the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package) or <see cref="FromPyTorch"/> (a PyTorch
/// checkpoint of TorchVision's ResNet-18 or ResNet-50). It creates the network to fine-tune (<see cref="CreateNetwork"/>:
/// the pretrained backbone, its input preparation and a new head sized to the classes) and describes its input
/// (<see cref="Channels"/>, <see cref="DefaultInputSize"/>). The created network holds everything it needs: a saved one
/// is rebuilt by <see cref="CreateSkeleton"/> from <see cref="Name"/> without the original files.
/// </summary>
public sealed record PretrainedBackbone
{
    /// <summary>The <see cref="Name"/> of <see cref="ResNet18ImageNet"/> (also the architecture name a trained model is saved under).</summary>
    public const string ResNet18ImageNetName = "ResNet18ImageNet";

    /// <summary>The <see cref="Name"/> of <see cref="FromPyTorch"/> with <see cref="TorchVisionResNet.ResNet18"/> (also the architecture name a trained model is saved under).</summary>
    public const string TorchVisionResNet18Name = "TorchVisionResNet18";

    /// <summary>The <see cref="Name"/> of <see cref="FromPyTorch"/> with <see cref="TorchVisionResNet.ResNet50"/> (also the architecture name a trained model is saved under).</summary>
    public const string TorchVisionResNet50Name = "TorchVisionResNet50";

    // TorchVision's ImageNet normalization (ResNetPreprocessing.TorchVisionImageNet), RGB order, pixels in [0, 1].
    private static readonly float[] TorchVisionMeans = { 0.485f, 0.456f, 0.406f };
    private static readonly float[] TorchVisionStds = { 0.229f, 0.224f, 0.225f };

    private PretrainedBackbone(string name, string? onnxPath, string? preprocessPath)
    {
        Name = name;
        OnnxPath = onnxPath;
        PreprocessPath = preprocessPath;
    }

    private PretrainedBackbone(string checkpointPath, TorchVisionResNet architecture)
    {
        Name = NameOf(architecture);
        CheckpointPath = checkpointPath;
        TorchVisionArchitecture = architecture;
    }

    /// <summary>
    /// The backbone's name: <see cref="ResNet18ImageNetName"/>, <see cref="TorchVisionResNet18Name"/> or
    /// <see cref="TorchVisionResNet50Name"/>. A trained model is saved under it and rebuilt from it.
    /// </summary>
    public string Name { get; }

    /// <summary>
    /// <see cref="ResNet18ImageNet"/>: the network's ONNX file, or null for the copy the NuGet package puts in the app's
    /// output folder. Null for a PyTorch checkpoint.
    /// </summary>
    public string? OnnxPath { get; init; }

    /// <summary>
    /// <see cref="ResNet18ImageNet"/>: the preprocessing ONNX file (the mean image), or null for the copy in the app's
    /// output folder. Null for a PyTorch checkpoint.
    /// </summary>
    public string? PreprocessPath { get; init; }

    /// <summary><see cref="FromPyTorch"/>: the checkpoint file; null for <see cref="ResNet18ImageNet"/>.</summary>
    public string? CheckpointPath { get; }

    /// <summary><see cref="FromPyTorch"/>: the checkpoint's architecture; null otherwise.</summary>
    public TorchVisionResNet? TorchVisionArchitecture { get; }

    /// <summary>
    /// <see cref="FromNetwork"/>: the input size (height, width) the trained network was built for, which
    /// <see cref="DefaultInputHeight"/> and <see cref="DefaultInputWidth"/> then are; null otherwise.
    /// </summary>
    public (int Height, int Width)? TrainedInputSize { get; }

    // FromNetwork: the trained network's state (TorchSharp's Module.save format) and its class count.
    private readonly byte[]? trainedState;
    private readonly int trainedClasses;

    private PretrainedBackbone(string name, byte[] state, int classes, int height, int width)
    {
        Name = name;
        trainedState = state;
        trainedClasses = classes;
        TrainedInputSize = (height, width);
    }

    /// <summary>The input channels: 3 (RGB; gray images are replicated).</summary>
    public int Channels => 3;

    /// <summary>The input side the backbone was trained at: 224. Smaller inputs (112–160) trade accuracy for CPU time; at least 32.</summary>
    public int DefaultInputSize => DefaultSide;

    private const int DefaultSide = 224;

    /// <summary>The input height used when none is given: <see cref="DefaultInputSize"/>, or the trained network's for <see cref="FromNetwork"/>.</summary>
    public int DefaultInputHeight => TrainedInputSize?.Height ?? DefaultInputSize;

    /// <summary>The input width used when none is given: <see cref="DefaultInputSize"/>, or the trained network's for <see cref="FromNetwork"/>.</summary>
    public int DefaultInputWidth => TrainedInputSize?.Width ?? DefaultInputSize;

    /// <summary>The smallest input side the backbone accepts: 32.</summary>
    public int MinInputSize => 32;

    /// <summary>
    /// The factor the network's 0–1 RGB input is multiplied by before the mean is subtracted: 255 for
    /// <see cref="ResNet18ImageNet"/> (trained on 0–255 pixels), 1 for a PyTorch checkpoint. The input preparation is
    /// RGB 0–1 → × <see cref="PixelScale"/> → BGR when <see cref="Bgr"/> → minus the mean (<see cref="ResNet18ImageNet"/>:
    /// the mean image read from the preprocessing file, resized to the input size; a PyTorch checkpoint:
    /// <see cref="ChannelMeans"/>) → divided by <see cref="ChannelStds"/>.
    /// </summary>
    public double PixelScale => IsPyTorch ? 1 : 255;

    /// <summary>
    /// Whether the backbone reads BGR: true for <see cref="ResNet18ImageNet"/> (its preprocessing graph reorders RGB to
    /// BGR; checked when the file is read), false for a PyTorch checkpoint (TorchVision reads RGB).
    /// </summary>
    public bool Bgr => !IsPyTorch;

    /// <summary>
    /// The per-channel means subtracted, in the backbone's channel order and pixel scale: TorchVision's ImageNet means
    /// (0.485, 0.456, 0.406) for a PyTorch checkpoint; null for <see cref="ResNet18ImageNet"/>, which subtracts a mean
    /// image instead.
    /// </summary>
    public IReadOnlyList<float>? ChannelMeans => IsPyTorch ? Array.AsReadOnly(TorchVisionMeans) : null;

    /// <summary>
    /// The per-channel divisors applied after the mean is subtracted: TorchVision's ImageNet standard deviations
    /// (0.229, 0.224, 0.225) for a PyTorch checkpoint; 1, 1, 1 (no division) for <see cref="ResNet18ImageNet"/>.
    /// </summary>
    public IReadOnlyList<float> ChannelStds => Array.AsReadOnly(IsPyTorch ? TorchVisionStds : new[] { 1f, 1f, 1f });

    /// <summary>The embedding width (the head's input): 512, or 2048 for ResNet-50.</summary>
    public int EmbeddingSize => Name == TorchVisionResNet50Name ? ImageNetResNet.BottleneckEmbeddingSize : ImageNetResNet.EmbeddingSize;

    // TorchVision's layout and normalization (a checkpoint, or a network trained from one).
    private bool IsPyTorch => Name != ResNet18ImageNetName;

    /// <summary>
    /// ML.NET's ImageNet ResNet-18 (blocks [2, 2, 2, 3], CNTK padding; BGR input in 0–255 minus a mean image), read from
    /// <paramref name="onnxPath"/> and <paramref name="preprocessPath"/>, or when null from the files the NuGet package
    /// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> copies into the app's output folder. Nothing is read until a network
    /// is created; a missing file then gives a <see cref="System.IO.FileNotFoundException"/> naming the package to add.
    /// </summary>
    public static PretrainedBackbone ResNet18ImageNet(string? onnxPath = null, string? preprocessPath = null) =>
        new(ResNet18ImageNetName, onnxPath, preprocessPath);

    /// <summary>
    /// A PyTorch checkpoint of TorchVision's <paramref name="architecture"/> (ResNet-18 or ResNet-50) at
    /// <paramref name="path"/>: a <c>torch.save</c> file (<c>.pt</c>, <c>.pth</c>) or a safetensors file holding the
    /// network's <c>state_dict</c> with TorchVision's keys, read as <see cref="TorchVisionResNetLoader"/> reads it. The
    /// network keeps TorchVision's layout (symmetric padding) and gets a new linear head sized to the classes (the
    /// checkpoint's <c>fc.*</c> entries are ignored). Its input preparation is TorchVision's ImageNet normalization
    /// (RGB in 0–1, minus <see cref="ChannelMeans"/>, divided by <see cref="ChannelStds"/>), a module inside the network, so
    /// a trained model is saved under <see cref="TorchVisionResNet18Name"/> or <see cref="TorchVisionResNet50Name"/> and
    /// loads without the checkpoint. Nothing is read here: <see cref="CheckFiles"/> throws
    /// <see cref="FileNotFoundException"/> naming <paramref name="path"/> when there is no file, and
    /// <see cref="CreateNetwork"/> reads the checkpoint, throwing <see cref="InvalidDataException"/> naming the file and
    /// each missing, unexpected or mis-shaped key.
    /// </summary>
    public static PretrainedBackbone FromPyTorch(string path, TorchVisionResNet architecture)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("The checkpoint path must not be empty.", nameof(path));
        if (!Enum.IsDefined(architecture)) throw new ArgumentOutOfRangeException(nameof(architecture), architecture, "Unknown TorchVision ResNet.");
        return new PretrainedBackbone(path, architecture);
    }

    /// <summary>
    /// The backbone of <paramref name="network"/>, a network trained on the pretrained backbone named
    /// <paramref name="name"/> (<see cref="ResNet18ImageNetName"/>, <see cref="TorchVisionResNet18Name"/> or
    /// <see cref="TorchVisionResNet50Name"/>: the architecture name its model is saved under), to start a new task from:
    /// <see cref="CreateNetwork"/> gives its trained backbone and input preparation with a new head sized to the new
    /// classes. The network's weights are copied now (into managed memory), so the network may be disposed afterwards.
    /// The backbone keeps <paramref name="name"/>, so a model trained on it is saved under that name and loads like one
    /// trained on the original backbone. Its default input size (<see cref="DefaultInputHeight"/> ×
    /// <see cref="DefaultInputWidth"/>) is <paramref name="inputHeight"/> × <paramref name="inputWidth"/>, the size the
    /// network was trained at; when null, the size of its mean image, or <see cref="DefaultInputSize"/> for per-channel
    /// normalization. At another size a mean image (<see cref="ResNet18ImageNet"/>) is resized from the network's (area
    /// averaging when shrinking, bilinear otherwise).
    /// </summary>
    /// <exception cref="ArgumentException">
    /// <paramref name="name"/> is not a backbone name, the network does not have its layout, or the input size given
    /// does not fit the network's mean image.
    /// </exception>
    public static PretrainedBackbone FromNetwork(string name, PretrainedImageNetwork network, int? inputHeight = null, int? inputWidth = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(network);
        if (!IsBackboneName(name)) throw new ArgumentException($"'{name}' is not a pretrained backbone.", nameof(name));
        var head = network.Network.Head as TorchSharp.Modules.Linear
            ?? throw new ArgumentException("The network's head is not a linear layer.", nameof(network));
        int classes = (int)head.weight!.shape[0];
        var preprocessing = network.Preprocessing;
        int height = inputHeight ?? (preprocessing.AcceptsAnySize ? DefaultSide : (int)preprocessing.Height);
        int width = inputWidth ?? (preprocessing.AcceptsAnySize ? DefaultSide : (int)preprocessing.Width);
        if (!preprocessing.AcceptsAnySize && (height != preprocessing.Height || width != preprocessing.Width))
            throw new ArgumentException(
                $"The input size {height}×{width} does not fit the network's {preprocessing.Height}×{preprocessing.Width} mean image.", inputHeight is null ? nameof(inputWidth) : nameof(inputHeight));
        CheckSize(height, width);
        using (var skeleton = CreateSkeleton(name, classes, height, width))
        {
            var expected = skeleton.state_dict();
            var actual = network.state_dict();
            var mismatch = expected.Where(e => !actual.TryGetValue(e.Key, out var t) || !t.shape.SequenceEqual(e.Value.shape)).Select(e => e.Key)
                .Concat(actual.Keys.Where(k => !expected.ContainsKey(k))).FirstOrDefault();
            if (mismatch is not null)
                throw new ArgumentException($"The network does not have the layout of the backbone {name} (state entry '{mismatch}').", nameof(network));
        }
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) network.save(writer);
        return new PretrainedBackbone(name, stream.ToArray(), classes, height, width);
    }

    /// <summary>Whether <paramref name="name"/> is the name of a pretrained backbone.</summary>
    public static bool IsBackboneName(string name) => name is ResNet18ImageNetName or TorchVisionResNet18Name or TorchVisionResNet50Name;

    /// <summary>
    /// Throws <see cref="FileNotFoundException"/> when a file is missing: for <see cref="ResNet18ImageNet"/> naming the
    /// NuGet package to add (or the missing path), for <see cref="FromPyTorch"/> naming the checkpoint's path. Only
    /// checks that the files exist; their content is read by <see cref="CreateNetwork"/>.
    /// </summary>
    public void CheckFiles()
    {
        if (trainedState is not null) return;
        if (CheckpointPath is { } checkpoint)
        {
            if (!File.Exists(checkpoint))
                throw new FileNotFoundException($"There is no PyTorch checkpoint at '{checkpoint}' (PretrainedBackbone.FromPyTorch).", checkpoint);
            return;
        }
        DnnImageModelFiles.ResNet18(OnnxPath);
        DnnImageModelFiles.ResNetPreprocess(PreprocessPath);
    }

    /// <summary>
    /// The network to fine-tune for <paramref name="numClasses"/> classes and <paramref name="height"/> ×
    /// <paramref name="width"/> inputs, on the CPU in eval mode, with a new linear head drawn from
    /// <paramref name="headSeed"/>. <see cref="ResNet18ImageNet"/>: the imported backbone and the mean image resized to
    /// the input size (area averaging when shrinking, bilinear otherwise). <see cref="FromPyTorch"/>: the checkpoint's
    /// backbone and TorchVision's per-channel normalization (which fits any input size).
    /// </summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="InvalidDataException">
    /// A file is not what it should be; for a PyTorch checkpoint, the message names the file and each missing,
    /// unexpected or mis-shaped key (nothing large is allocated beyond the checkpoint's tensors and the network).
    /// </exception>
    public PretrainedImageNetwork CreateNetwork(int numClasses, int height, int width, long headSeed = 0)
    {
        CheckSize(height, width);
        if (trainedState is not null) return CreateFromTrained(numClasses, height, width, headSeed);
        if (TorchVisionArchitecture is { } architecture)
        {
            CheckFiles();
            var loaded = TorchVisionResNetLoader.Load(CheckpointPath!, architecture, numClasses, headSeed);
            try
            {
                var result = new PretrainedImageNetwork(TorchVisionPreprocessing(), loaded);
                result.eval();
                return result;
            }
            catch
            {
                loaded.Dispose();
                throw;
            }
        }
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
        if (name is TorchVisionResNet18Name or TorchVisionResNet50Name)
        {
            var resNet = TorchVisionResNetLoader.Create(name == TorchVisionResNet18Name ? TorchVisionResNet.ResNet18 : TorchVisionResNet.ResNet50, numClasses);
            try
            {
                return new PretrainedImageNetwork(TorchVisionPreprocessing(), resNet);
            }
            catch
            {
                resNet.Dispose();
                throw;
            }
        }
        var network = new ImageNetResNet(ImageNetResNet.MLNetResNet18Blocks, numClasses, StridedPadding.BeginHeavy);
        using var mean = zeros(3, height, width);
        var backbone = ResNet18ImageNet();
        return new PretrainedImageNetwork(new ImagePreprocessingModule(mean, backbone.PixelScale, backbone.Bgr), network);
    }

    // FromNetwork: the trained network's state in a skeleton, copied into a skeleton for the new classes and size, with a new head.
    private PretrainedImageNetwork CreateFromTrained(int numClasses, int height, int width, long headSeed)
    {
        var (trainedHeight, trainedWidth) = TrainedInputSize!.Value;
        using var source = CreateSkeleton(Name, trainedClasses, trainedHeight, trainedWidth);
        using (var stream = new MemoryStream(trainedState!, writable: false))
        using (var reader = new BinaryReader(stream))
            source.load(reader);
        var target = CreateSkeleton(Name, numClasses, height, width);
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var from = source.state_dict();
            foreach (var (key, value) in target.state_dict())
            {
                if (key.StartsWith("backbone.fc.", StringComparison.Ordinal)) continue;
                var copied = from[key];
                if (!copied.shape.SequenceEqual(value.shape)) copied = Resize(copied, height, width);   // the mean image at another size
                value.copy_(copied);
            }
            ParameterInitialization.Reset(target.Network.Head, headSeed);
            target.eval();
            return target;
        }
        catch
        {
            target.Dispose();
            throw;
        }
    }

    private static string NameOf(TorchVisionResNet architecture) => architecture switch
    {
        TorchVisionResNet.ResNet18 => TorchVisionResNet18Name,
        TorchVisionResNet.ResNet50 => TorchVisionResNet50Name,
        _ => throw new ArgumentOutOfRangeException(nameof(architecture), architecture, "Unknown TorchVision ResNet."),
    };

    // TorchVision's ImageNet normalization as a module: RGB in 0–1, minus the means, divided by the standard deviations, any size.
    private static ImagePreprocessingModule TorchVisionPreprocessing()
    {
        using var means = tensor(TorchVisionMeans, new long[] { 3, 1, 1 });
        using var stds = tensor(TorchVisionStds, new long[] { 3, 1, 1 });
        return new ImagePreprocessingModule(means, pixelScale: 1, bgr: false, stds);
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
