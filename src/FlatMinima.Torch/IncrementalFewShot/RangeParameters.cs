using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>Selects F2M's "range" parameters: those perturbed in base training and the only ones trained (and clamped) in sessions.</summary>
public static class RangeParameters
{
    /// <summary>
    /// The parameters named in <paramref name="names"/>, or else the weights of the last <paramref name="lastConvolutions"/>
    /// <c>Conv2d</c> modules in registration order, skipping shortcut convolutions (module paths containing
    /// <c>downsample</c> or <c>shortcut</c>) — the reference's <c>suffix_conv_weight</c>.
    /// </summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> Select(nn.Module model, int lastConvolutions, IReadOnlyList<string>? names = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var all = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        if (names is not null)
        {
            var missing = names.Where(n => !all.ContainsKey(n)).ToArray();
            if (missing.Length > 0)
                throw new ArgumentException($"RangeParameterNames: the model has no parameter named {string.Join(", ", missing.Select(n => $"'{n}'"))}. " +
                    $"Its parameters are: {string.Join(", ", all.Keys)}.", nameof(names));
            return names.Distinct().Select(n => (n, all[n])).ToArray();
        }
        var convWeights = model.named_modules()
            .Where(m => m.module is Conv2d && !IsShortcut(m.name))
            .Select(m => m.name + ".weight")
            .Where(all.ContainsKey)
            .ToArray();
        if (convWeights.Length == 0)
            throw new ArgumentException("The model has no (non-shortcut) Conv2d layers to use as range parameters; name them with RangeParameterNames.", nameof(model));
        if (lastConvolutions < 1) throw new ArgumentOutOfRangeException(nameof(lastConvolutions), lastConvolutions, "RangeLayerCount must be ≥ 1.");
        return convWeights.Skip(Math.Max(0, convWeights.Length - lastConvolutions)).Select(n => (n, all[n])).ToArray();
    }

    private static bool IsShortcut(string path) =>
        path.Split('.').Any(part => part is "downsample" or "shortcut");
}
