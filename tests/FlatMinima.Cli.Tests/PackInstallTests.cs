using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text.Json;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Cli.Tests;

/// <summary>
/// The tool as users get it: <c>dotnet pack</c> of src/FlatMinima.Cli into a local feed, <c>dotnet tool install
/// --tool-path</c> from that feed (with the repository's nuget.config, so nothing but the feed and the configured
/// sources is used), then the installed <c>flatminima train</c> on 2 classes × 8 images of the embedded subset.
/// The package is about 530 MB and the installed tool 2.3 GB (libtorch for three operating systems): under a minute on
/// an idle two-core machine, minutes on a busy one.
/// </summary>
[TestClass]
public sealed class PackInstallTests
{
    [TestMethod]
    [TestCategory("Pack")]
    public void PackedToolInstallsFromALocalFeedAndTrains()
    {
        string root = Cli.RepoRoot;
        string configuration = typeof(PackInstallTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        string work = Path.Combine(Path.GetTempPath(), "flatminima-tool-" + Guid.NewGuid().ToString("N")[..12]);
        string feed = Path.Combine(work, "feed"), tools = Path.Combine(work, "tools");
        // A version of its own, so no package cached by an earlier run can stand in for this one.
        string version = Tool.Version + "-install-" + Path.GetFileName(work)["flatminima-tool-".Length..];
        Directory.CreateDirectory(feed);
        try
        {
            // The test project references the tool, so it is built in this configuration already.
            var clock = Stopwatch.StartNew();
            var (code, output) = Dotnet(root, "pack", Path.Combine(root, "src", "FlatMinima.Cli", "FlatMinima.Cli.csproj"), "-c", configuration, "--no-build",
                "-o", feed, "-p:Version=" + version, "-p:NuspecOutputPath=" + Path.Combine(work, "nuspec") + "/");
            Assert.AreEqual(0, code, "dotnet pack failed:\n" + output);
            string package = Path.Combine(feed, $"FlatMinima.Cli.{version}.nupkg");
            Assert.IsTrue(File.Exists(package), "no package " + package + " in:\n" + output);
            Console.WriteLine($"pack: {clock.Elapsed.TotalSeconds:F0} s, {new FileInfo(package).Length / 1e6:F0} MB");

            clock.Restart();
            (code, output) = Dotnet(work, "tool", "install", "--tool-path", tools, "--configfile", Path.Combine(root, "nuget.config"),
                "--add-source", feed, "FlatMinima.Cli", "--version", version);
            Assert.AreEqual(0, code, "dotnet tool install failed:\n" + output);
            Console.WriteLine($"install: {clock.Elapsed.TotalSeconds:F0} s");

            string images = Cli.ImageFolder("installed-tool", 8, "Bag", "Trouser");
            string model = Path.Combine(work, "out", "model.zip");
            string tool = Path.Combine(tools, OperatingSystem.IsWindows() ? "flatminima.exe" : "flatminima");
            clock.Restart();
            (code, output) = Run(work, tool, "train", images, "--epochs", "1", "--method", "sgd", "--out", model, "--json");
            Assert.AreEqual(ExitCodes.Success, code, "the installed flatminima train failed:\n" + output);
            Console.WriteLine($"train: {clock.Elapsed.TotalSeconds:F0} s");
            Assert.IsTrue(File.Exists(model), output);
            string report = Path.Combine(work, "out", "model-report");
            foreach (string file in new[] { "report.html", "loss.png", "confusion-matrix.png" })
                Assert.IsTrue(File.Exists(Path.Combine(report, file)), $"{file} is missing from {report}");

            (code, output) = Run(work, tool, "info", "--model", model, "--json");
            Assert.AreEqual(ExitCodes.Success, code, output);
            using var info = JsonDocument.Parse(output.Split("\n--- stderr\n")[0]);
            CollectionAssert.AreEqual(new[] { "Bag", "Trouser" }, info.RootElement.GetProperty("classes").EnumerateArray().Select(c => c.GetString()).ToArray());
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Runs the dotnet CLI without the MSBuild variables of the test host's own build.</summary>
    private static (int ExitCode, string Output) Dotnet(string workingDirectory, params string[] arguments) => Run(workingDirectory, "dotnet", arguments);

    private static (int ExitCode, string Output) Run(string workingDirectory, string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(key);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // Generous: packing and extracting the package are mostly disk and compression work, slow on a busy machine.
        if (!process.WaitForExit(TimeSpan.FromMinutes(20)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', arguments)} did not finish within 20 minutes");
        }
        return (process.ExitCode, stdout.Result + (stderr.Result.Length > 0 ? "\n--- stderr\n" + stderr.Result : ""));
    }
}
