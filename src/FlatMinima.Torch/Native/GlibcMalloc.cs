using System;
using System.Runtime.InteropServices;

namespace FlatMinima.Torch.Native;

/// <summary>
/// Tunes glibc's allocator for tensor workloads: large mmap and trim thresholds and a top pad, so the many
/// short-lived multi-megabyte activation buffers of a training step are reused instead of being mapped and unmapped
/// every step (measured 15–20 % faster steps on the small CNN; see docs/benchmarks.md). Process-wide; applied once;
/// a no-op off Linux or without glibc.
/// </summary>
public static class GlibcMalloc
{
    private const int MTrimThreshold = -1, MTopPad = -2, MMmapThreshold = -3;
    private static readonly object Gate = new();
    private static bool? _applied;

    /// <summary>Whether the tuning has been applied in this process.</summary>
    public static bool IsTuned => _applied == true;

    /// <summary>Applies the tuning once (mmap threshold 32 MiB, trim threshold 1 GiB, top pad 256 MiB); returns whether it is in effect.</summary>
    public static bool TuneForTensors()
    {
        lock (Gate)
        {
            if (_applied is bool done) return done;
            _applied = false;
            if (!OperatingSystem.IsLinux()) return false;
            try
            {
                _applied = mallopt(MMmapThreshold, 32 << 20) == 1 & mallopt(MTrimThreshold, 1 << 30) == 1 & mallopt(MTopPad, 256 << 20) == 1;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                _applied = false; // not glibc (e.g. musl): leave the allocator alone
            }
            return _applied.Value;
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
