using System;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Torch.MixedPrecision;

/// <summary>
/// The precision a run computes in: the requested <see cref="ComputePrecision"/> resolved for a device.
/// <see cref="ComputePrecision.Auto"/> becomes <see cref="ComputePrecision.BFloat16"/> where the hardware computes
/// bfloat16 natively and <see cref="ComputePrecision.Float32"/> elsewhere; an explicit request is kept as it is (bfloat16
/// on hardware without native support runs, emulated, and <see cref="Warning"/> says so).
/// </summary>
/// <param name="Requested">What the options asked for.</param>
/// <param name="Used">What the run computes in: <see cref="ComputePrecision.Float32"/> or <see cref="ComputePrecision.BFloat16"/>.</param>
/// <param name="NativeHardware">Whether the device computes bfloat16 natively (false when it was not probed: float32 requested).</param>
/// <param name="Hardware">What the probe found (flags, compute capability), or "not probed".</param>
public sealed record PrecisionChoice(ComputePrecision Requested, ComputePrecision Used, bool NativeHardware, string Hardware)
{
    /// <summary>Resolves <paramref name="requested"/> for <paramref name="device"/> (probing it with <see cref="BFloat16Hardware.Probe"/> unless float32 is requested).</summary>
    public static PrecisionChoice For(ComputePrecision requested, Device device)
    {
        Check(requested);
        ArgumentNullException.ThrowIfNull(device);
        if (requested == ComputePrecision.Float32) return new(requested, ComputePrecision.Float32, false, "not probed");
        var (native, hardware) = BFloat16Hardware.Probe(device);
        return Decide(requested, native, hardware);
    }

    /// <summary>The decision for hardware whose native bfloat16 support is <paramref name="native"/> (described by <paramref name="hardware"/>).</summary>
    public static PrecisionChoice Decide(ComputePrecision requested, bool native, string hardware)
    {
        Check(requested);
        var used = requested switch
        {
            ComputePrecision.Auto => native ? ComputePrecision.BFloat16 : ComputePrecision.Float32,
            _ => requested,
        };
        return new(requested, used, native, hardware ?? "");
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming <c>Precision</c> for a value that is not a <see cref="ComputePrecision"/>.</summary>
    public static void Check(ComputePrecision precision)
    {
        if (!Enum.IsDefined(precision))
            throw new ArgumentOutOfRangeException(nameof(ClassifierTrainingOptions.Precision), precision,
                $"Precision must be {string.Join(", ", Enum.GetNames<ComputePrecision>())}.");
    }

    /// <summary>Whether the run computes convolutions and linear layers in bfloat16.</summary>
    public bool IsBFloat16 => Used == ComputePrecision.BFloat16;

    /// <summary>Set when bfloat16 runs on hardware without native support (emulated, usually slower than float32); null otherwise.</summary>
    public string? Warning => IsBFloat16 && !NativeHardware
        ? $"Precision = BFloat16 on hardware without native bfloat16 ({Hardware}): it is emulated and usually slower than Float32; results are as with native bfloat16. Use Float32 or Auto."
        : null;

    /// <summary>"float32", "bfloat16 mixed precision (…)" or "float32 (Auto: …)".</summary>
    public override string ToString() => Used switch
    {
        ComputePrecision.BFloat16 => $"bfloat16 mixed precision ({(Requested == ComputePrecision.Auto ? "Auto, " : "")}{Hardware})",
        _ => Requested == ComputePrecision.Auto ? $"float32 (Auto: {Hardware})" : "float32",
    };
}
