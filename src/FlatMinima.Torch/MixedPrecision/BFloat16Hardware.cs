using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.MixedPrecision;

/// <summary>
/// Whether a device computes bfloat16 natively: a CPU whose flags (Linux <c>/proc/cpuinfo</c>) include
/// <c>avx512_bf16</c> or <c>amx_bf16</c>, or a CUDA GPU of compute capability 8.0 or higher (Ampere and later, read
/// through the CUDA driver). Where neither can be read (CPUs on Windows and macOS, a GPU without a readable driver) the
/// answer is "not native". The parsing functions take the text as an argument, so the decision is testable on any
/// machine.
/// </summary>
public static class BFloat16Hardware
{
    /// <summary>The CPU flags that mean native bfloat16 arithmetic: AVX-512 BF16 and AMX BF16.</summary>
    public static IReadOnlyList<string> NativeCpuFlags { get; } = Array.AsReadOnly(new[] { "avx512_bf16", "amx_bf16" });

    /// <summary>The lowest CUDA compute capability with native bfloat16 tensor-core arithmetic: 8.0.</summary>
    public const int MinimumCudaMajor = 8;

    private const string CpuInfoPath = "/proc/cpuinfo";

    /// <summary>
    /// The native bfloat16 flags present in the first <c>flags</c> line of <paramref name="cpuInfo"/> (text in the format
    /// of Linux's <c>/proc/cpuinfo</c>); empty when there are none or no such line. Flags are whole words: a flag whose
    /// name only contains <c>avx512_bf16</c> does not count.
    /// </summary>
    public static IReadOnlyList<string> NativeFlagsIn(string? cpuInfo)
    {
        var flags = FlagsLine(cpuInfo);
        if (flags is null) return Array.Empty<string>();
        var words = new HashSet<string>(flags.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        return NativeCpuFlags.Where(words.Contains).ToArray();
    }

    /// <summary>The value of the first <c>flags</c> line of <paramref name="cpuInfo"/> (x86 Linux), or null.</summary>
    public static string? FlagsLine(string? cpuInfo) => Field(cpuInfo, "flags");

    /// <summary>The value of the first <c>model name</c> line of <paramref name="cpuInfo"/>, or null.</summary>
    public static string? CpuModel(string? cpuInfo) => Field(cpuInfo, "model name");

    /// <summary>This machine's <c>/proc/cpuinfo</c>, or null off Linux or when it cannot be read.</summary>
    public static string? ReadCpuInfo()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            return File.ReadAllText(CpuInfoPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Whether a GPU of compute capability <paramref name="major"/>.x computes bfloat16 natively (≥ 8.0).</summary>
    public static bool IsNativeCudaCapability(int major) => major >= MinimumCudaMajor;

    /// <summary>
    /// Whether <paramref name="device"/> computes bfloat16 natively, with a short description of what was found (the
    /// flags, the compute capability, or why it is unknown).
    /// </summary>
    public static (bool Native, string Description) Probe(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.type == DeviceType.CUDA)
        {
            var capability = CudaCapability(device.index < 0 ? 0 : device.index);
            return capability is (int major, int minor)
                ? (IsNativeCudaCapability(major), $"CUDA compute capability {major}.{minor}")
                : (false, "CUDA compute capability unknown (the CUDA driver could not be queried)");
        }
        if (device.type != DeviceType.CPU) return (false, $"{device.type} device");
        var cpuInfo = ReadCpuInfo();
        if (cpuInfo is null) return (false, "CPU flags unknown (no /proc/cpuinfo on this system)");
        var found = NativeFlagsIn(cpuInfo);
        return found.Count > 0
            ? (true, $"CPU flags {string.Join(", ", found)}")
            : (false, $"CPU without {string.Join(" or ", NativeCpuFlags)}");
    }

    /// <summary>The compute capability of CUDA device <paramref name="index"/> from the CUDA driver, or null when it cannot be read.</summary>
    public static (int Major, int Minor)? CudaCapability(int index)
    {
        string library = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        if (!NativeLibrary.TryLoad(library, out var handle)) return null;
        try
        {
            if (!NativeLibrary.TryGetExport(handle, "cuInit", out var init) || !NativeLibrary.TryGetExport(handle, "cuDeviceGet", out var get)
                || !NativeLibrary.TryGetExport(handle, "cuDeviceGetAttribute", out var attribute))
                return null;
            if (Marshal.GetDelegateForFunctionPointer<CuInit>(init)(0) != 0) return null;
            if (Marshal.GetDelegateForFunctionPointer<CuDeviceGet>(get)(out int cuDevice, index) != 0) return null;
            var getAttribute = Marshal.GetDelegateForFunctionPointer<CuDeviceGetAttribute>(attribute);
            if (getAttribute(out int major, ComputeCapabilityMajor, cuDevice) != 0 || getAttribute(out int minor, ComputeCapabilityMinor, cuDevice) != 0)
                return null;
            return (major, minor);
        }
        finally
        {
            NativeLibrary.Free(handle);
        }
    }

    private const int ComputeCapabilityMajor = 75, ComputeCapabilityMinor = 76; // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_*

    [UnmanagedFunctionPointer(CallingConvention.StdCall)]
    private delegate int CuInit(uint flags);

    [UnmanagedFunctionPointer(CallingConvention.StdCall)]
    private delegate int CuDeviceGet(out int device, int ordinal);

    [UnmanagedFunctionPointer(CallingConvention.StdCall)]
    private delegate int CuDeviceGetAttribute(out int value, int attribute, int device);

    private static string? Field(string? cpuInfo, string name)
    {
        if (string.IsNullOrEmpty(cpuInfo)) return null;
        foreach (var line in cpuInfo.Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == name) return line[(colon + 1)..].Trim();
        }
        return null;
    }
}
