using System;
using System.IO;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace FlatMinima.Cli.Tests;

/// <summary>Removes the folders the tests wrote (images, models, reports, generated projects).</summary>
[TestClass]
public static class TestCleanup
{
    [AssemblyCleanup]
    public static void RemoveTemporaryFolders()
    {
        string root = Path.Combine(Path.GetTempPath(), "flatminima-cli-tests-" + Environment.ProcessId);
        try
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
