using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// The flat region around the base-session weights: for each range parameter its base weights θ_base (a copy) and
/// the bound b; sessions keep every range parameter inside <c>[θ_base − b/2, θ_base + b/2]</c> element-wise.
/// </summary>
public sealed class FlatRegionBounds : IDisposable
{
    private readonly Tensor[] _lower;
    private readonly Tensor[] _upper;

    /// <summary>Copies the current values of <paramref name="rangeParameters"/> as θ_base.</summary>
    public FlatRegionBounds(IEnumerable<(string Name, Parameter Parameter)> rangeParameters, double bound)
        : this(rangeParameters.Select(p => (p.Name, (Tensor)p.Parameter)).ToArray(), bound, copy: true)
    {
    }

    private FlatRegionBounds(IReadOnlyList<(string Name, Tensor Weights)> weights, double bound, bool copy)
    {
        if (!(bound > 0) || double.IsInfinity(bound)) throw new ArgumentOutOfRangeException(nameof(bound), bound, "The bound must be a finite number > 0.");
        if (weights.Count == 0) throw new ArgumentException("The flat region needs at least one range parameter.", nameof(weights));
        Bound = bound;
        Names = weights.Select(w => w.Name).ToArray();
        using var scope = NewDisposeScope();
        BaseWeights = weights.Select(w => (copy ? w.Weights.detach().clone() : w.Weights).DetachFromDisposeScope()).ToArray();
        _lower = BaseWeights.Select(w => w.sub(bound / 2).DetachFromDisposeScope()).ToArray();
        _upper = BaseWeights.Select(w => w.add(bound / 2).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>The bound b.</summary>
    public double Bound { get; }

    /// <summary>The range parameters' names (<c>named_parameters</c>).</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>θ_base, one tensor per name (on the device the weights were on).</summary>
    public IReadOnlyList<Tensor> BaseWeights { get; }

    /// <summary>The range parameters of <paramref name="model"/>, in <see cref="Names"/> order (checked against θ_base's shapes).</summary>
    public Parameter[] ParametersOf(nn.Module model)
    {
        var all = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        return Names.Select((name, i) =>
        {
            if (!all.TryGetValue(name, out var p))
                throw new ArgumentException($"The model has no range parameter '{name}'; it is not the network the flat region was made for.", nameof(model));
            if (!p.shape.SequenceEqual(BaseWeights[i].shape))
                throw new ArgumentException($"Range parameter '{name}' has shape [{string.Join(", ", p.shape)}], θ_base has [{string.Join(", ", BaseWeights[i].shape)}].", nameof(model));
            return p;
        }).ToArray();
    }

    /// <summary>Clamps every range parameter of <paramref name="model"/> into <c>[θ_base − b/2, θ_base + b/2]</c>, in place.</summary>
    public void Clamp(nn.Module model)
    {
        var parameters = ParametersOf(model);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        for (int i = 0; i < parameters.Length; i++)
            parameters[i].copy_(minimum(maximum(parameters[i], _lower[i]), _upper[i]));
    }

    /// <summary>The largest |θ − θ_base| over all range elements of <paramref name="model"/> (≤ b/2 inside the region).</summary>
    public double MaxDeviation(nn.Module model)
    {
        var parameters = ParametersOf(model);
        using var scope = NewDisposeScope();
        return parameters.Select((p, i) => p.detach().sub(BaseWeights[i]).abs().max().ToDouble()).Max();
    }

    /// <summary>An independent copy (own tensors).</summary>
    public FlatRegionBounds Clone() => new(Names.Select((n, i) => (n, BaseWeights[i])).ToArray(), Bound, copy: true);

    /// <summary>Writes the bound, names and θ_base.</summary>
    public void Save(BinaryWriter writer)
    {
        writer.Write(Bound);
        writer.Write(Names.Count);
        for (int i = 0; i < Names.Count; i++)
        {
            writer.Write(Names[i]);
            TensorIO.Write(writer, BaseWeights[i]);
        }
    }

    /// <summary>The largest number of range parameters <see cref="Load"/> accepts.</summary>
    internal const int MaxParameters = 100_000;

    /// <summary>The longest parameter name <see cref="Load"/> accepts.</summary>
    internal const int MaxNameLength = 1024;

    /// <summary>Reads what <see cref="Save"/> wrote, onto <paramref name="device"/>; the bound, the count, the names and
    /// each tensor are checked (finite values, <see cref="TensorIO"/>'s limits) and violations throw <see cref="InvalidDataException"/>.</summary>
    public static FlatRegionBounds Load(BinaryReader reader, Device device)
    {
        double bound = reader.ReadDouble();
        if (!(bound > 0) || double.IsInfinity(bound)) throw new InvalidDataException($"The stored flat-region bound {bound} is not a finite number > 0.");
        int n = reader.ReadInt32();
        if (n < 1 || n > MaxParameters) throw new InvalidDataException($"The flat region stores {n} range parameters; 1 to {MaxParameters} are accepted.");
        var weights = new List<(string, Tensor)>();
        try
        {
            for (int i = 0; i < n; i++)
            {
                string name = reader.ReadString();
                if (name.Length == 0 || name.Length > MaxNameLength)
                    throw new InvalidDataException($"Range parameter {i} has a name of {name.Length} characters; 1 to {MaxNameLength} are accepted.");
                var cpu = TensorIO.Read(reader, requireFinite: true);
                if (cpu.dtype != ScalarType.Float32)
                {
                    cpu.Dispose();
                    throw new InvalidDataException($"Range parameter {i} is stored as {cpu.dtype}; θ_base is float32.");
                }
                var moved = cpu.to(device).DetachFromDisposeScope();
                if (!ReferenceEquals(moved, cpu)) cpu.Dispose();
                weights.Add((name, moved));
            }
            return new FlatRegionBounds(weights, bound, copy: false);
        }
        catch
        {
            foreach (var (_, t) in weights) t.Dispose();
            throw;
        }
    }

    /// <summary>Releases θ_base and the clamp bounds.</summary>
    public void Dispose()
    {
        foreach (var t in BaseWeights.Concat(_lower).Concat(_upper)) t.Dispose();
    }
}
