using System;
using System.IO;
using System.Reflection;
using System.Runtime.ExceptionServices;
using FlatMinima.Torch.Training;
using Microsoft.ML;
using static TorchSharp.torch;

namespace FlatMinima.MLNet;

/// <summary>
/// How FlatMinima models are loaded: the device they load onto, the limits every number read from a model file must
/// respect, and <see cref="Load(MLContext, string, out DataViewSchema)"/>, which returns ML.NET's model or throws one
/// <see cref="InvalidDataException"/> naming the damaged zip entry.
/// </summary>
/// <remarks>
/// <para><b>Device.</b> The device a model was trained on is metadata (<c>DeviceKind</c> of the transformer), not a
/// requirement: a model trained with <c>Device = Cuda</c> loads on a CPU-only machine. The device used at load is
/// <see cref="Device"/> when set, else the environment variable <c>FLATMINIMA_DEVICE</c> (<c>cpu</c>, <c>cuda</c> or
/// <c>auto</c>), else <see cref="DeviceKind.Auto"/> (CUDA when TorchSharp reports it available, else the CPU). Forcing
/// <see cref="DeviceKind.Cuda"/> where no CUDA device is usable fails with an <see cref="InvalidOperationException"/>.</para>
/// <para><b>Errors.</b> A damaged, truncated or foreign model file fails with an <see cref="InvalidDataException"/>
/// whose message starts <c>FlatMinima model entry '&lt;entry&gt;'</c>. <c>mlContext.Model.Load</c> calls our loader
/// through reflection, so there that exception arrives wrapped in <see cref="TargetInvocationException"/>s (read
/// <c>GetBaseException()</c>); <see cref="Load(MLContext, string, out DataViewSchema)"/> unwraps them.</para>
/// </remarks>
public static class FlatMinimaModelLoading
{
    /// <summary>The environment variable read when <see cref="Device"/> is null: <c>cpu</c>, <c>cuda</c> or <c>auto</c>.</summary>
    public const string DeviceEnvironmentVariable = "FLATMINIMA_DEVICE";

    private static volatile StrongBox? _device;

    /// <summary>
    /// The device to load models onto, for the whole process; null (the default) defers to
    /// <see cref="DeviceEnvironmentVariable"/> and then <see cref="DeviceKind.Auto"/>. Read when a model is loaded.
    /// </summary>
    public static DeviceKind? Device
    {
        get => _device?.Value;
        set
        {
            if (value is DeviceKind kind && !Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(value), value, "Unknown device kind.");
            _device = value is DeviceKind k ? new StrongBox(k) : null;
        }
    }

    /// <summary>The device kind models load onto now: <see cref="Device"/>, else <see cref="DeviceEnvironmentVariable"/>, else Auto.</summary>
    public static DeviceKind EffectiveDevice
    {
        get
        {
            if (Device is DeviceKind kind) return kind;
            string? variable = Environment.GetEnvironmentVariable(DeviceEnvironmentVariable);
            if (string.IsNullOrWhiteSpace(variable)) return DeviceKind.Auto;
            return variable.Trim().ToLowerInvariant() switch
            {
                "auto" => DeviceKind.Auto,
                "cpu" => DeviceKind.Cpu,
                "cuda" or "gpu" => DeviceKind.Cuda,
                _ => throw PassThrough(new InvalidOperationException(
                    $"The environment variable {DeviceEnvironmentVariable} is '{ModelReading.Sanitize(variable)}'; use cpu, cuda or auto (or unset it).")),
            };
        }
    }

    /// <summary>
    /// Loads a model zip with <c>mlContext.Model.Load</c>; a damaged or foreign file throws one
    /// <see cref="InvalidDataException"/> naming the entry (or the zip, when ML.NET's own parts or the zip structure
    /// are damaged) instead of ML.NET's nested <see cref="TargetInvocationException"/>s.
    /// </summary>
    public static ITransformer Load(MLContext mlContext, string path, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(path);
        using var stream = File.OpenRead(path);
        return Load(mlContext, stream, $"'{path}'", out inputSchema);
    }

    /// <inheritdoc cref="Load(MLContext, string, out DataViewSchema)"/>
    public static ITransformer Load(MLContext mlContext, Stream stream, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(stream);
        return Load(mlContext, stream, "(stream)", out inputSchema);
    }

    private static ITransformer Load(MLContext mlContext, Stream stream, string zip, out DataViewSchema inputSchema)
    {
        try
        {
            return mlContext.Model.Load(stream, out inputSchema);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
        {
            var inner = e;
            while (inner is TargetInvocationException { InnerException: { } next }) inner = next;
            if (inner is InvalidDataException && inner.Message.StartsWith("FlatMinima model entry", StringComparison.Ordinal)
                || inner.Data.Contains(ModelReading.PassThroughKey))
                ExceptionDispatchInfo.Throw(inner);
            throw new InvalidDataException($"The model zip {zip} could not be read (damaged, truncated or not an ML.NET model): " +
                $"{inner.GetType().Name}: {ModelReading.Sanitize(inner.Message)}", e);
        }
    }

    /// <summary>The device a model saved with <paramref name="cudaIndex"/> loads onto (see <see cref="Device"/>).</summary>
    internal static Device ResolveLoadDevice(int cudaIndex)
    {
        try
        {
            var kind = EffectiveDevice;
            int index = kind == DeviceKind.Cpu || !cuda.is_available() || cudaIndex < 0 || cudaIndex >= cuda.device_count() ? 0 : cudaIndex;
            return Devices.Resolve(kind, index);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw PassThrough(e);
        }
    }

    internal static Exception PassThrough(Exception e)
    {
        e.Data[ModelReading.PassThroughKey] = true;
        return e;
    }

    private sealed class StrongBox(DeviceKind value)
    {
        public DeviceKind Value { get; } = value;
    }
}
