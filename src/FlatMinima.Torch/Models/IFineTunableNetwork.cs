using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Models;

/// <summary>
/// A network made of a backbone and a head, which <see cref="Training.FineTuningOptions"/> can freeze in parts. Every
/// parameter not in <see cref="BackboneStages"/> belongs to the head and always trains.
/// </summary>
public interface IFineTunableNetwork
{
    /// <summary>
    /// The backbone's stages from input to output, each as the modules it consists of (for a ResNet: the stem
    /// <c>conv1</c> + <c>bn1</c>, then <c>layer1</c>–<c>layer4</c>).
    /// </summary>
    IReadOnlyList<IReadOnlyList<nn.Module>> BackboneStages { get; }
}
