using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace FlatMinima.Cli;

/// <summary>One image file and its class (the name of its sub-folder; empty when unlabeled).</summary>
public sealed record LabeledFile(string Path, string Label);

/// <summary>
/// A folder of images with one sub-folder per class (<c>folder/cat/1.jpg</c>, <c>folder/dog/2.png</c>), as Model Builder
/// and the <c>mlnet</c> CLI read it: every file with an image extension in a class sub-folder (and its sub-folders) is
/// an example of that class; files with other extensions are counted and ignored.
/// </summary>
public sealed class ImageFolder
{
    /// <summary>The file extensions read as images (lower case, with the dot).</summary>
    public static readonly IReadOnlySet<string> ImageExtensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
        { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    private ImageFolder(string root, IReadOnlyList<LabeledFile> files, IReadOnlyList<string> classes, int ignoredFiles)
    {
        Root = root;
        Files = files;
        Classes = classes;
        IgnoredFiles = ignoredFiles;
    }

    /// <summary>The folder.</summary>
    public string Root { get; }

    /// <summary>The image files, by class then path (ordinal).</summary>
    public IReadOnlyList<LabeledFile> Files { get; }

    /// <summary>The classes that have at least one image, in ordinal order.</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>Files that were not read because their extension is not an image's.</summary>
    public int IgnoredFiles { get; }

    /// <summary>
    /// Reads the class sub-folders of <paramref name="folder"/> (<paramref name="what"/> names it in errors: "the
    /// training folder", "--test"); fails with a <see cref="CliException"/> when it is missing, has no class sub-folder
    /// with an image, or fewer than <paramref name="minClasses"/> classes.
    /// </summary>
    public static ImageFolder Read(string folder, string what, int minClasses = 2)
    {
        if (string.IsNullOrWhiteSpace(folder)) throw CliException.Usage($"{what}: no folder given.");
        string root = Path.GetFullPath(folder);
        if (File.Exists(root))
            throw CliException.DataError($"{what} '{folder}' is a file; a folder with one sub-folder per class is expected.", Layout(folder));
        if (!Directory.Exists(root)) throw CliException.DataError($"{what} '{folder}' does not exist.", Layout(folder));
        var files = new List<LabeledFile>();
        int ignored = 0;
        foreach (string classFolder in Directory.GetDirectories(root).OrderBy(d => d, StringComparer.Ordinal))
        {
            string label = Path.GetFileName(classFolder);
            foreach (string file in Directory.EnumerateFiles(classFolder, "*", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal))
            {
                if (ImageExtensions.Contains(Path.GetExtension(file))) files.Add(new LabeledFile(file, label));
                else ignored++;
            }
        }
        var classes = files.Select(f => f.Label).Distinct().ToList();
        if (classes.Count == 0)
        {
            int loose = Directory.EnumerateFiles(root).Count(f => ImageExtensions.Contains(Path.GetExtension(f)));
            throw CliException.DataError(
                $"{what} '{folder}' has no class sub-folder with images" + (loose > 0 ? $" ({loose} images lie directly in it, without a class)." : "."),
                Layout(folder));
        }
        if (classes.Count < minClasses)
            throw CliException.DataError(
                $"{what} '{folder}' has {classes.Count} class ('{classes[0]}'); a classifier needs images of at least {minClasses} classes.",
                Layout(folder));
        return new ImageFolder(root, files, classes, ignored);
    }

    /// <summary>
    /// The image files of <paramref name="paths"/> (files, or folders searched recursively), unlabeled, in the order
    /// given (folders: ordinal); fails when a path does not exist or nothing is an image.
    /// </summary>
    public static IReadOnlyList<LabeledFile> ReadFiles(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0) throw CliException.Usage("No image files or folders given.", "flatminima predict --model model.zip photo.jpg [more files or folders]");
        var files = new List<LabeledFile>();
        foreach (string path in paths)
        {
            if (File.Exists(path)) files.Add(new LabeledFile(Path.GetFullPath(path), ""));
            else if (Directory.Exists(path))
                files.AddRange(Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => ImageExtensions.Contains(Path.GetExtension(f)))
                    .OrderBy(f => f, StringComparer.Ordinal)
                    .Select(f => new LabeledFile(Path.GetFullPath(f), "")));
            else throw CliException.DataError($"'{path}' does not exist.", "Give image files or folders of images.");
        }
        if (files.Count == 0)
            throw CliException.DataError($"No image files ({string.Join(", ", ImageExtensions.Order())}) in {string.Join(", ", paths.Select(p => $"'{p}'"))}.");
        return files;
    }

    private static string Layout(string folder) =>
        $"Put each class's images in a sub-folder named after the class: {Path.Combine(folder, "cat", "1.jpg")}, {Path.Combine(folder, "dog", "2.jpg")}, ….";
}

/// <summary>A row given to ML.NET: the class name and the encoded image bytes.</summary>
public sealed class ImageRow
{
    /// <summary>The class name (empty when unknown).</summary>
    public string Label { get; set; } = "";

    /// <summary>The encoded image (PNG, JPEG, …); empty when the file could not be read.</summary>
    public byte[] Image { get; set; } = [];
}

/// <summary>
/// The rows of a list of files for <c>LoadFromEnumerable</c>, read lazily on each pass (the encoded bytes are not held);
/// a file that cannot be read becomes an empty image, which training skips and scoring marks as unscored, and is
/// recorded in <see cref="Unreadable"/>.
/// </summary>
public sealed class ImageRows(IReadOnlyList<LabeledFile> files) : IEnumerable<ImageRow>
{
    private readonly ConcurrentDictionary<string, string> _unreadable = new();

    /// <summary>The files.</summary>
    public IReadOnlyList<LabeledFile> Files { get; } = files;

    /// <summary>Files that could not be read, with the reason.</summary>
    public IReadOnlyDictionary<string, string> Unreadable => _unreadable;

    /// <inheritdoc />
    public IEnumerator<ImageRow> GetEnumerator()
    {
        foreach (var file in Files)
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(file.Path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _unreadable[file.Path] = e.Message;
                bytes = [];
            }
            yield return new ImageRow { Label = file.Label, Image = bytes };
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
