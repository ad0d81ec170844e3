using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Cli.Tests;

/// <summary>
/// codegen writes a project whose C# compiles against the library as it is and predicts what <c>flatminima predict</c>
/// predicts. The sources are compiled in-process with Roslyn (with the project's implicit usings); building the project
/// with <c>dotnet build</c> from a packed feed is the manual check described in docs/cli.md.
/// </summary>
[TestClass]
public sealed class CodegenTests
{
    private static string _folder = "";
    private static string _model = "";

    [ClassInitialize]
    public static void TrainOnce(TestContext _)
    {
        _folder = Cli.ImageFolder("codegen", 12, "Bag", "Trouser");
        _model = Cli.TempPath("codegen-out/model.zip");
        var train = Cli.Run("train", _folder, "--epochs", "1", "--method", "sgd", "--out", _model);
        Assert.AreEqual(ExitCodes.Success, train.ExitCode, train.ToString());
    }

    [TestMethod]
    public void GeneratedCodeCompilesAndPredictsWhatPredictPredicts()
    {
        string folder = _folder, model = _model;
        string project = Cli.TempPath("codegen-out/Contoso.Photos");
        if (Directory.Exists(project)) Directory.Delete(project, true);

        var generated = Cli.Run("codegen", "--model", model, "--name", "Contoso.Photos", "--out", project, "--package-source", Cli.TempPath("feed"));
        Assert.AreEqual(ExitCodes.Success, generated.ExitCode, generated.ToString());
        string csproj = File.ReadAllText(Path.Combine(project, "Contoso.Photos.csproj"));
        StringAssert.Contains(csproj, "<PackageReference Include=\"FlatMinima.MLNet\" Version=\"" + Tool.Version + "\" />");
        StringAssert.Contains(csproj, "<PackageReference Include=\"TorchSharp-cpu\"");
        StringAssert.Contains(File.ReadAllText(Path.Combine(project, "nuget.config")), Cli.TempPath("feed"));
        Assert.IsTrue(File.Exists(Path.Combine(project, "model.zip")));
        string input = File.ReadAllText(Path.Combine(project, "ModelInput.cs"));
        StringAssert.Contains(input, "public byte[] Image { get; set; }");
        StringAssert.Contains(input, "public string Label { get; set; }");

        var assembly = Compile(Directory.GetFiles(project, "*.cs"));
        var helper = assembly.GetType("Contoso.Photos.PhotosModel", throwOnError: true)!;
        helper.GetProperty("ModelPath")!.SetValue(null, Path.Combine(project, "model.zip"));

        string image = Directory.GetFiles(Path.Combine(folder, "Trouser")).Order(StringComparer.Ordinal).First();
        var predicted = Cli.Run("predict", "--model", model, image);
        Assert.AreEqual(ExitCodes.Success, predicted.ExitCode, predicted.ToString());
        var console = Console.Out;
        var captured = new StringWriter();
        try
        {
            Console.SetOut(captured);
            var exit = assembly.EntryPoint!.Invoke(null, [new[] { Path.GetFullPath(image) }]);
            Assert.AreEqual(0, exit);
        }
        finally
        {
            Console.SetOut(console);
        }
        Assert.AreEqual(predicted.Output.Trim(), captured.ToString().Trim(), "the generated program prints what flatminima predict prints");
        var classes = (IReadOnlyList<string>)helper.GetProperty("ClassNames")!.GetValue(null)!;
        CollectionAssert.AreEqual(new[] { "Bag", "Trouser" }, classes.ToArray());
    }

    [TestMethod]
    public void CodegenRefusesANonEmptyFolderABadNameAndAMissingModel()
    {
        string folder = Cli.TempPath("codegen-busy");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "keep.txt"), "mine");
        var busy = Cli.Run("codegen", "--model", _model, "--name", "App", "--out", folder);
        Assert.AreEqual(ExitCodes.UsageError, busy.ExitCode, busy.ToString());
        StringAssert.Contains(busy.Error, "is not empty");
        Assert.AreEqual("mine", File.ReadAllText(Path.Combine(folder, "keep.txt")));
        var badName = Cli.Run("codegen", "--model", _model, "--name", "1App", "--out", Cli.TempPath("codegen-bad-name"));
        Assert.AreEqual(ExitCodes.UsageError, badName.ExitCode, badName.ToString());
        StringAssert.Contains(badName.Error, "not a C# identifier");
        var missing = Cli.Run("codegen", "--model", Cli.TempPath("codegen-none/model.zip"), "--name", "App", "--out", Cli.TempPath("codegen-new"));
        Assert.AreEqual(ExitCodes.DataError, missing.ExitCode, missing.ToString());
    }

    private static Assembly Compile(IEnumerable<string> files)
    {
        const string implicitUsings = "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
            "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";
        var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), path: f)).Append(CSharpSyntaxTree.ParseText(implicitUsings)).ToArray();
        // The framework, and the libraries the generated project references (with their dependencies' public surface).
        string[] prefixes = ["FlatMinima.", "Microsoft.ML", "TorchSharp"];
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => !prefixes.Any(x => Path.GetFileName(p).StartsWith(x, StringComparison.Ordinal)))
            .Concat(Directory.GetFiles(AppContext.BaseDirectory, "*.dll").Where(p => prefixes.Any(x => Path.GetFileName(p).StartsWith(x, StringComparison.Ordinal))))
            .Where(IsManaged)
            .Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("GeneratedConsumer", trees, references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var stream = new MemoryStream();
        var result = compilation.Emit(stream);
        var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToArray();
        Assert.IsTrue(result.Success, "the generated code does not compile:\n" + string.Join("\n", errors.Select(e => e.ToString())));
        var warnings = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Warning && d.Id.StartsWith("CS8", StringComparison.Ordinal)).ToArray();
        Assert.AreEqual(0, warnings.Length, "nullable warnings in the generated code:\n" + string.Join("\n", warnings.Select(w => w.ToString())));
        return Assembly.Load(stream.ToArray());
    }

    private static bool IsManaged(string path)
    {
        try
        {
            AssemblyName.GetAssemblyName(path);
            return true;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}
