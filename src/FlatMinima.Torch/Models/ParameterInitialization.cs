using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Models;

/// <summary>
/// (Re)initializes the parameters of a network from a given random <see cref="Generator"/> instead of TorchSharp's
/// process-global one, with PyTorch's default schemes: convolution (transposed included) and linear weights and biases
/// U(−1/√fan_in, 1/√fan_in) — what <c>kaiming_uniform_(a = √5)</c> gives for the weights —, BatchNorm, InstanceNorm,
/// GroupNorm and LayerNorm weights 1 and biases 0, with BatchNorm's running statistics reset. Parameters are drawn in
/// <c>named_parameters()</c> order on the CPU and copied to their device, so the same generator state gives bit-identical
/// weights on every run, whatever other threads draw from the global generator meanwhile. This also initializes
/// TorchSharp's <c>GroupNorm</c>, whose constructor leaves weight and bias uninitialized.
/// </summary>
public static class ParameterInitialization
{
    /// <summary>
    /// Re-draws every parameter of <paramref name="module"/> (and its submodules) that belongs to a layer type listed
    /// above from <paramref name="generator"/> (a CPU generator) and returns the full names of the parameters of other
    /// module types, which keep their values (empty for the built-in architectures).
    /// </summary>
    public static IReadOnlyList<string> Reset(nn.Module module, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(generator);
        var owners = Owners(module);
        var uncovered = new List<string>();
        using var noGrad = no_grad();
        foreach (var (name, parameter) in module.named_parameters())
        {
            var (owner, localName) = owners[name];
            if (!Reset(owner, localName, parameter, generator)) uncovered.Add(name);
        }
        foreach (var norm in module.modules().Prepend(module).OfType<NormBase>().Where(n => n.track_running_stats))
            norm.reset_running_stats();
        return uncovered;
    }

    /// <summary><see cref="Reset(nn.Module, Generator)"/> with a CPU generator seeded with <paramref name="seed"/>.</summary>
    public static IReadOnlyList<string> Reset(nn.Module module, long seed)
    {
        using var generator = new Generator(unchecked((ulong)seed), CPU);
        return Reset(module, generator);
    }

    // Initializes one parameter by its owner's type; false for a type without a known scheme.
    private static bool Reset(nn.Module owner, string localName, Parameter parameter, Generator generator)
    {
        switch (owner, localName)
        {
            case (Convolution or Linear, "weight" or "bias"):
                double fanIn = FanIn(OwnParameters(owner)["weight"]);
                if (fanIn == 0) parameter.zero_();
                else Uniform(parameter, 1 / Math.Sqrt(fanIn), generator);
                return true;
            case (NormBase or GroupNorm or LayerNorm, "weight"):
                parameter.fill_(1);
                return true;
            case (NormBase or GroupNorm or LayerNorm, "bias"):
                parameter.zero_();
                return true;
            default:
                return false;
        }
    }

    // U(−bound, bound) drawn on the CPU in the parameter's dtype, then copied to the parameter's device.
    private static void Uniform(Tensor parameter, double bound, Generator generator)
    {
        using var drawn = empty(parameter.shape, parameter.dtype, CPU).uniform_(-bound, bound, generator);
        parameter.copy_(drawn);
    }

    // PyTorch's fan-in of a weight [out, in, k…] (ConvTranspose: [in, out/groups, k…]): size(1) × the receptive field.
    private static double FanIn(Tensor weight)
    {
        if (weight.Dimensions < 2) throw new ArgumentException($"A weight needs at least 2 dimensions for its fan-in; got shape [{string.Join(", ", weight.shape)}].");
        return weight.shape.Skip(1).Aggregate(1.0, (product, size) => product * size);
    }

    // Every parameter's full name → the module that holds it directly and its name there.
    private static Dictionary<string, (nn.Module Owner, string LocalName)> Owners(nn.Module module)
    {
        var owners = new Dictionary<string, (nn.Module, string)>(StringComparer.Ordinal);
        foreach (var (prefix, m) in module.named_modules().Prepend((string.Empty, module)))
            foreach (var (name, _) in m.named_parameters(recurse: false))
                owners[prefix.Length == 0 ? name : $"{prefix}.{name}"] = (m, name);
        return owners;
    }

    private static Dictionary<string, Parameter> OwnParameters(nn.Module owner) =>
        owner.named_parameters(recurse: false).ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
}
