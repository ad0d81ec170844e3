using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// Per-channel standardization of image batches, <c>(x − mean_c) / std_c</c>: how raw images become network inputs. An
/// <see cref="IncrementalLearner"/> with one takes raw images everywhere (base data, sessions, scoring) and keeps its
/// exemplars raw. Immutable.
/// </summary>
public sealed class ChannelStandardization
{
    private readonly float[] _mean;
    private readonly float[] _std;

    /// <summary>Creates the standardization from one mean and one standard deviation (&gt; 0) per channel.</summary>
    public ChannelStandardization(IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Count == 0 || mean.Count != std.Count)
            throw new ArgumentException($"Give one mean and one standard deviation per channel (got {mean.Count} and {std.Count}).", nameof(std));
        if (mean.Any(m => !float.IsFinite(m)) || std.Any(s => !(s > 0) || float.IsInfinity(s)))
            throw new ArgumentException("The means must be finite and the standard deviations finite and > 0.", nameof(std));
        _mean = mean.ToArray();
        _std = std.ToArray();
    }

    /// <summary>The per-channel means.</summary>
    public IReadOnlyList<float> Mean => _mean;

    /// <summary>The per-channel standard deviations.</summary>
    public IReadOnlyList<float> Std => _std;

    /// <summary>A new tensor <c>(images − mean) / std</c> per channel of a batch <c>[N, C, …]</c>, on the batch's device
    /// (created in the caller's dispose scope).</summary>
    public Tensor Apply(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() < 2 || images.shape[1] != _mean.Length)
            throw new ArgumentException($"The batch has shape [{string.Join(", ", images.shape)}]; the standardization expects {_mean.Length} channel(s) in dimension 1.", nameof(images));
        var shape = new long[images.dim()];
        Array.Fill(shape, 1L);
        shape[1] = _mean.Length;
        using var meanValues = tensor(_mean, device: images.device);
        using var stdValues = tensor(_std, device: images.device);
        using var mean = meanValues.view(shape);
        using var std = stdValues.view(shape);
        return images.sub(mean).div_(std);
    }

    /// <summary>Writes the channel count, the means and the standard deviations.</summary>
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(_mean.Length);
        foreach (float v in _mean.Concat(_std)) writer.Write(v);
    }

    /// <summary>The most channels <see cref="Load"/> accepts.</summary>
    internal const int MaxChannels = 4096;

    /// <summary>Reads what <see cref="Save"/> wrote (at most <see cref="MaxChannels"/> channels).</summary>
    public static ChannelStandardization Load(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        int channels = reader.ReadInt32();
        if (channels < 1 || channels > MaxChannels) throw new InvalidDataException($"The standardization has {channels} channels; 1 to {MaxChannels} are accepted.");
        float[] Read() => Enumerable.Range(0, channels).Select(_ => reader.ReadSingle()).ToArray();
        float[] mean = Read(), std = Read();
        return new ChannelStandardization(mean, std);
    }
}
