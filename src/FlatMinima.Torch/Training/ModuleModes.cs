using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// The train/eval flag of every module of a network, so that code switching the whole network to eval (or train) mode
/// can put back a mixed state — BatchNorm layers that fine-tuning holds in eval mode inside a network in training mode.
/// </summary>
internal readonly struct ModuleModes
{
    private readonly nn.Module[] _modules;
    private readonly bool[] _training;

    private ModuleModes(nn.Module[] modules)
    {
        _modules = modules;
        _training = modules.Select(m => m.training).ToArray();
    }

    /// <summary>Records the modes of <paramref name="model"/> and all its submodules.</summary>
    public static ModuleModes Capture(nn.Module model) => new(model.modules().Prepend(model).Distinct().ToArray());

    /// <summary>Puts every recorded module back in the mode it had.</summary>
    public void Restore()
    {
        for (int i = 0; i < _modules.Length; i++) _modules[i].train(_training[i]);
    }
}
