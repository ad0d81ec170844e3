using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Xml.Linq;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.CoInstall.Tests;

/// <summary>
/// An application that installs the packed FlatMinima.MLNet package (with FlatMinima.Torch) restores and builds
/// without NuGet warnings about the package's dependencies: in particular no NU1603 (Microsoft.ML.ImageAnalytics 5.0.1
/// asks for SkiaSharp 2.88.8, which the feed does not serve; the package's own SkiaSharp 2.88.9 dependency settles it).
/// The consumer lives in a temporary folder, outside this repository's Directory.*.props, with its own packages folder,
/// and the packages get a version of their own, so nothing cached from an earlier run is used.
/// </summary>
[TestClass]
public sealed class PackageConsumerTests
{
    [TestMethod]
    public void ConsumerOfThePackedPackageBuildsWithoutNU1603()
    {
        string root = RepoRoot.Path;
        string configuration = typeof(PackageConsumerTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        string work = Path.Combine(Path.GetTempPath(), "flatminima-consumer-" + Guid.NewGuid().ToString("N")[..12]);
        string feed = Path.Combine(work, "feed"), app = Path.Combine(work, "app");
        string version = "0.1.0-consumer-" + Path.GetFileName(work)["flatminima-consumer-".Length..];
        Directory.CreateDirectory(feed);
        Directory.CreateDirectory(app);
        try
        {
            // The test project references FlatMinima.MLNet, so both libraries are built in this configuration.
            foreach (string project in new[] { "src/FlatMinima.Torch/FlatMinima.Torch.csproj", "src/FlatMinima.MLNet/FlatMinima.MLNet.csproj" })
            {
                var (code, output) = Dotnet(root, "pack", Path.Combine(root, project), "-c", configuration, "--no-build", "-o", feed,
                    "-p:Version=" + version, "-p:NuspecOutputPath=" + Path.Combine(work, "nuspec") + "/");
                Assert.AreEqual(0, code, $"dotnet pack {project} failed:\n{output}");
            }

            WriteConsumer(root, app, feed, Path.Combine(work, "packages"), version);
            var (exit, build) = Dotnet(app, "build", "-c", "Release");
            Assert.AreEqual(0, exit, "the consumer app did not build:\n" + build);
            var nu1603 = build.Split('\n').Where(l => l.Contains("NU1603", StringComparison.Ordinal)).Distinct().ToArray();
            Assert.AreEqual(0, nu1603.Length, "the consumer's build reports NU1603:\n" + string.Join("\n", nu1603));
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>A console app with one PackageReference to FlatMinima.MLNet, restoring from <paramref name="feed"/> and
    /// the repository's own package sources.</summary>
    private static void WriteConsumer(string root, string app, string feed, string packages, string version)
    {
        // Stop MSBuild's upward search for Directory.Build.* / Directory.Packages.props at the app folder.
        foreach (string name in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
            File.WriteAllText(Path.Combine(app, name), "<Project />\n");

        var sources = XDocument.Load(Path.Combine(root, "nuget.config")).Root!.Element("packageSources")!.Elements("add");
        string globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var config = new XElement("configuration",
            // Our packages go to a folder of this test; everything else is read from the machine's packages folder.
            new XElement("config", new XElement("add", new XAttribute("key", "globalPackagesFolder"), new XAttribute("value", packages))),
            new XElement("fallbackPackageFolders", new XElement("add", new XAttribute("key", "machine"), new XAttribute("value", globalPackages))),
            new XElement("packageSources", new XElement("clear"),
                new XElement("add", new XAttribute("key", "flatminima-packed"), new XAttribute("value", feed)),
                sources.Select(s => new XElement(s))));
        new XDocument(config).Save(Path.Combine(app, "nuget.config"));

        File.WriteAllText(Path.Combine(app, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="FlatMinima.MLNet" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            var options = new FlatMinima.MLNet.ImageClassification.FlatMinimaImageClassificationTrainer.Options { Epochs = 1 };
            System.Console.WriteLine(options.SharpnessAware);
            """);
    }

    /// <summary>Runs the dotnet CLI without the MSBuild variables of the test host's own build.</summary>
    private static (int ExitCode, string Output) Dotnet(string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(key);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', arguments)} did not finish within 5 minutes");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}

/// <summary>The repository root (the folder of FlatMinima.MLNet.sln) above the test's output folder.</summary>
internal static class RepoRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "FlatMinima.MLNet.sln"))) return dir.FullName;
        throw new InvalidOperationException("repository root not found");
    }
}
