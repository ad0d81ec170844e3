using System;
using System.Collections.Generic;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FlatMinima.Torch.Pretrained;

/// <summary>
/// A classifier on a pretrained backbone: the backbone's input preparation (<c>preprocess</c>, an
/// <see cref="ImagePreprocessingModule"/>) followed by the <see cref="ImageNetResNet"/> (<c>backbone</c>, whose
/// <c>fc</c> is the new head). Its input is RGB in 0–1, <c>[N, 3, H, W]</c> (or gray, replicated), as the ML.NET image
/// reader gives it; every weight and the resized mean image are in its state, so a saved network loads without the
/// backbone's original files. Created by <see cref="PretrainedBackbone"/>.
/// </summary>
public sealed class PretrainedImageNetwork : Module<Tensor, Tensor>, IEmbeddingNetwork, IFineTunableNetwork
{
    private readonly ImagePreprocessingModule preprocess;
    private readonly ImageNetResNet backbone;

    /// <summary>Combines <paramref name="preprocessing"/> and <paramref name="network"/> (both owned from now on).</summary>
    public PretrainedImageNetwork(ImagePreprocessingModule preprocessing, ImageNetResNet network)
        : base(nameof(PretrainedImageNetwork))
    {
        preprocess = preprocessing ?? throw new ArgumentNullException(nameof(preprocessing));
        backbone = network ?? throw new ArgumentNullException(nameof(network));
        RegisterComponents();
    }

    /// <summary>The input preparation.</summary>
    public ImagePreprocessingModule Preprocessing => preprocess;

    /// <summary>The ResNet with its head.</summary>
    public ImageNetResNet Network => backbone;

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<nn.Module>> BackboneStages => backbone.BackboneStages;

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return backbone.call(preprocess.call(input)).MoveToOuterDisposeScope();
    }

    /// <summary>The embedding <c>[N, D]</c> (D = <see cref="ImageNetResNet.EmbeddingWidth"/>: 512 for a ResNet-18, 2048 for a
    /// ResNet-50) of RGB images in 0–1 <c>[N, 3, H, W]</c>: what a prototype classifier (incremental few-shot) compares.</summary>
    public Tensor Embed(Tensor input)
    {
        using var scope = NewDisposeScope();
        return backbone.Embed(preprocess.call(input)).MoveToOuterDisposeScope();
    }
}
