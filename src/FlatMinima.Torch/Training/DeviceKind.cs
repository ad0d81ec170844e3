using System;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>Where to train and score.</summary>
public enum DeviceKind
{
    /// <summary>CUDA when TorchSharp reports it available, otherwise CPU.</summary>
    Auto,

    /// <summary>The CPU.</summary>
    Cpu,

    /// <summary>A CUDA GPU (needs the TorchSharp-cuda-windows or TorchSharp-cuda-linux backend package). Fails if absent.</summary>
    Cuda,
}

/// <summary>Turns a <see cref="DeviceKind"/> into a TorchSharp device, without silent fallbacks.</summary>
public static class Devices
{
    /// <summary>Resolves <paramref name="kind"/>; <see cref="DeviceKind.Cuda"/> without a usable GPU throws.</summary>
    public static Device Resolve(DeviceKind kind, int cudaIndex = 0)
    {
        switch (kind)
        {
            case DeviceKind.Cpu:
                return CPU;
            case DeviceKind.Auto:
                return cuda.is_available() ? new Device(DeviceType.CUDA, cudaIndex) : CPU;
            case DeviceKind.Cuda:
                if (!cuda.is_available())
                    throw new InvalidOperationException(
                        "Device = Cuda was requested but TorchSharp reports no usable CUDA device. Reference the " +
                        "TorchSharp-cuda-linux or TorchSharp-cuda-windows package (instead of TorchSharp-cpu) on a machine with an NVIDIA GPU, or set Device = Cpu.");
                if (cudaIndex < 0 || cudaIndex >= cuda.device_count())
                    throw new ArgumentOutOfRangeException(nameof(cudaIndex), cudaIndex, $"CUDA device index must be in [0, {cuda.device_count()}).");
                return new Device(DeviceType.CUDA, cudaIndex);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown device kind.");
        }
    }
}
