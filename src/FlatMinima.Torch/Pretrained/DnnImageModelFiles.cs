using System;
using System.IO;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// Finds the ONNX files that ML.NET's <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package copies into an app's output
/// folder (<c>DnnImageModels/ResNet18Onnx/ResNet18.onnx</c> and <c>DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx</c>),
/// or checks a path given instead. Nothing is downloaded.
/// </summary>
public static class DnnImageModelFiles
{
    /// <summary>The NuGet package that ships the files.</summary>
    public const string PackageId = "Microsoft.ML.DnnImageFeaturizer.ResNet18";

    /// <summary>The package version whose files the importer was verified against.</summary>
    public const string PackageVersion = "0.23.1";

    /// <summary>The ResNet-18 feature network, relative to the output folder.</summary>
    public const string ResNet18RelativePath = "DnnImageModels/ResNet18Onnx/ResNet18.onnx";

    /// <summary>The preprocessing graph (RGB → BGR, minus the mean image), relative to the output folder.</summary>
    public const string PreprocessRelativePath = "DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx";

    /// <summary>The path of <c>ResNet18.onnx</c>: <paramref name="path"/> when given, else the app's output folder's copy.</summary>
    /// <exception cref="FileNotFoundException">The file is not there; the message says which package to add.</exception>
    public static string ResNet18(string? path = null) => Locate(path, ResNet18RelativePath, AppContext.BaseDirectory);

    /// <summary>The path of <c>ResNetPreprocess.onnx</c>: <paramref name="path"/> when given, else the app's output folder's copy.</summary>
    /// <exception cref="FileNotFoundException">The file is not there; the message says which package to add.</exception>
    public static string ResNetPreprocess(string? path = null) => Locate(path, PreprocessRelativePath, AppContext.BaseDirectory);

    /// <summary><paramref name="path"/> when given, else <paramref name="relativePath"/> under <paramref name="outputFolder"/>.</summary>
    internal static string Locate(string? path, string relativePath, string outputFolder)
    {
        if (path is not null)
        {
            if (File.Exists(path)) return Path.GetFullPath(path);
            throw new FileNotFoundException(
                $"The ONNX file '{path}' does not exist (ML.NET's ResNet-18 files ship in the NuGet package {PackageId} {PackageVersion}).", path);
        }
        string candidate = Path.Combine(outputFolder, relativePath.Replace('/', Path.DirectorySeparatorChar));
        if (File.Exists(candidate)) return candidate;
        throw new FileNotFoundException(
            $"'{relativePath}' is not in the app's output folder ({outputFolder}). Add the NuGet package " +
            $"{PackageId} {PackageVersion} to the app's project (its build copies the file there), or pass the file's path.",
            candidate);
    }
}
