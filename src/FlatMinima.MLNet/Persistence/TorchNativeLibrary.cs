using System;
using System.Runtime.InteropServices;
using TorchSharp;

namespace FlatMinima.MLNet;

/// <summary>
/// Makes the first TorchSharp call of a training or a model load, and turns a failure to load TorchSharp's native
/// libraries (LibTorchSharp + libtorch) into one error that says what was tried, on which OS and architecture, and the
/// known causes, instead of a bare <see cref="DllNotFoundException"/> / <see cref="TypeInitializationException"/>.
/// </summary>
internal static class TorchNativeLibrary
{
    /// <summary>The upstream issue of TorchSharp 0.107.0 on Windows.</summary>
    internal const string WindowsIssue = "https://github.com/dotnet/TorchSharp/issues/1567";

    private static volatile bool _loaded;

    /// <summary>Loads the CPU backend once per process (a no-op after the first success).</summary>
    public static void EnsureLoaded()
    {
        if (_loaded) return;
        EnsureLoaded(() => torch.InitializeDeviceType(DeviceType.CPU));
        _loaded = true;
    }

    /// <summary>Runs <paramref name="firstCall"/>; a native-load failure is rethrown as <see cref="InvalidOperationException"/> with the diagnosis.</summary>
    internal static void EnsureLoaded(Action firstCall)
    {
        try
        {
            firstCall();
        }
        catch (Exception e) when (IsNativeLoadFailure(e))
        {
            throw FlatMinimaModelLoading.PassThrough(new InvalidOperationException(Explain(e), e));
        }
    }

    private static bool IsNativeLoadFailure(Exception e) => e switch
    {
        DllNotFoundException or EntryPointNotFoundException or BadImageFormatException => true,
        TypeInitializationException { InnerException: { } inner } => IsNativeLoadFailure(inner) || inner is NotSupportedException,
        NotSupportedException n => n.Message.Contains("libtorch", StringComparison.OrdinalIgnoreCase) || n.Message.Contains("TorchSharp", StringComparison.Ordinal),
        _ => false,
    };

    /// <summary>The diagnosis of a native-load failure <paramref name="e"/>.</summary>
    internal static string Explain(Exception e)
    {
        var root = e;
        while (root.InnerException is { } inner && root is TypeInitializationException) root = inner;
        string first = root.Message.Split('\n')[0].Trim();
        string os = RuntimeInformation.OSDescription, arch = RuntimeInformation.ProcessArchitecture.ToString();
        string text =
            $"TorchSharp's native library could not be loaded ({root.GetType().Name}: {first}). FlatMinima tried to initialize " +
            $"TorchSharp's CPU backend (LibTorchSharp and libtorch from the TorchSharp-cpu / libtorch-cpu-* packages) on {os}, {arch}, " +
            $".NET {Environment.Version}. ";
        if (OperatingSystem.IsWindows())
            text += $"On Windows, TorchSharp 0.107.0's LibTorchSharp.dll fails to load against libtorch 2.10.0 (x64 and ARM64; " +
                $"known upstream issue {WindowsIssue}); the message \"doesn't contain a reference to libtorch-cpu-win-x64\" is " +
                "misleading — the reference is there. Use Linux or WSL, or a TorchSharp release that fixes the issue. ";
        else if (OperatingSystem.IsLinux())
            text += "On Linux, a \"GLIBCXX_… not found\" error means the system libstdc++ is older than libtorch's: applications that " +
                "reference the FlatMinima.MLNet package get the fix from its build targets; with a ProjectReference, import " +
                "FlatMinima's build/FlatMinima.NativeFix.targets in the application's project (an MSBuild <Import>). ";
        text += "Also check that the application references exactly one libtorch backend package and targets a 64-bit runtime.";
        return text;
    }
}
