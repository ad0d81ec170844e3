using System;
using System.Collections.Generic;
using FlatMinima.Torch.Training;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Augmentation;

/// <summary>
/// Seeded data augmentation of training batches <c>[N, C, H, W]</c>, applied per batch with tensor ops (each image draws
/// its own parameters; no per-pixel or per-image .NET loop). Every op is optional (null skips it) and they run in this
/// order: the crop (<see cref="Crop"/> or <see cref="ResizedCrop"/>), <see cref="HorizontalFlip"/>, <see cref="Affine"/>,
/// <see cref="Jitter"/>, <see cref="Erasing"/>. The ops work on the values as given; <c>ClassifierTrainer</c> applies
/// them to the standardized batch, so a 0 fill (padding, the area outside a rotated image, erasing) is the data set's
/// mean. Presets: <see cref="None"/>, <see cref="Standard"/>, <see cref="Strong"/>.
/// </summary>
public sealed record AugmentationOptions
{
    /// <summary>
    /// When both <see cref="Crop"/> and <see cref="ResizedCrop"/> are set (the presets), images whose smaller side is at
    /// most this many pixels (CIFAR's 32, MNIST's 28) get the pad-and-crop and larger ones (ImageNet-scale photos, 224)
    /// the random-resized-crop, as the papers train each.
    /// </summary>
    public const int SmallImageMaxSide = 64;

    /// <summary>Pad-and-random-crop; see <see cref="SmallImageMaxSide"/> when <see cref="ResizedCrop"/> is set too.</summary>
    public RandomCrop? Crop { get; init; }

    /// <summary>Random-resized-crop; see <see cref="SmallImageMaxSide"/> when <see cref="Crop"/> is set too.</summary>
    public RandomResizedCrop? ResizedCrop { get; init; }

    /// <summary>Left–right mirroring; leave null for digits and text.</summary>
    public RandomHorizontalFlip? HorizontalFlip { get; init; }

    /// <summary>Small rotation and translation.</summary>
    public RandomAffine? Affine { get; init; }

    /// <summary>Brightness, contrast and saturation jitter.</summary>
    public ColorJitter? Jitter { get; init; }

    /// <summary>Random erasing (cutout-like).</summary>
    public RandomErasing? Erasing { get; init; }

    /// <summary>No augmentation (null), the default of the training options.</summary>
    public static AugmentationOptions? None => null;

    /// <summary>
    /// The papers' setting (SAM, SWAD, F2M train with it): a crop — pad 4 with zeros and crop back for images of at most
    /// <see cref="SmallImageMaxSide"/> pixels a side, random-resized-crop (scale 0.08–1, ratio 3/4–4/3) for larger ones —
    /// and, when <paramref name="flip"/>, a horizontal flip with probability 0.5 (pass false for digits and text).
    /// </summary>
    public static AugmentationOptions Standard(bool flip = true) => new()
    {
        Crop = new RandomCrop(),
        ResizedCrop = new RandomResizedCrop(),
        HorizontalFlip = flip ? new RandomHorizontalFlip() : null,
    };

    /// <summary><see cref="Standard"/> plus a small affine map (±15°, shift ±10 %), colour jitter (0.4 each) and random
    /// erasing (p 0.5, 2–33 % of the image).</summary>
    public static AugmentationOptions Strong(bool flip = true) => Standard(flip) with
    {
        Affine = new RandomAffine(),
        Jitter = new ColorJitter(),
        Erasing = new RandomErasing(),
    };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting (<c>Crop.Padding</c>, …).</summary>
    public void Validate()
    {
        NestedOption.Validate(nameof(Crop), Crop is null ? null : Crop.Validate);
        NestedOption.Validate(nameof(ResizedCrop), ResizedCrop is null ? null : ResizedCrop.Validate);
        NestedOption.Validate(nameof(HorizontalFlip), HorizontalFlip is null ? null : HorizontalFlip.Validate);
        NestedOption.Validate(nameof(Affine), Affine is null ? null : Affine.Validate);
        NestedOption.Validate(nameof(Jitter), Jitter is null ? null : Jitter.Validate);
        NestedOption.Validate(nameof(Erasing), Erasing is null ? null : Erasing.Validate);
    }

    /// <summary><see cref="Validate"/>, then the checks that need the image size (a reflect padding smaller than the image).</summary>
    public void ValidateFor(int height, int width)
    {
        if (height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(height), $"The image size {height}×{width} is not positive.");
        Validate();
        if (CropFor(height, width) is RandomCrop crop) NestedOption.Validate(nameof(Crop), () => crop.ValidateFor(height, width));
    }

    /// <summary>
    /// Augments <paramref name="batch"/> <c>[N, C, H, W]</c> (floating point, any device) with random draws from
    /// <paramref name="generator"/> (a CPU generator; the same generator state gives the same output). Returns a new
    /// tensor of the same shape, created in the caller's dispose scope.
    /// </summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(generator);
        if (batch.dim() != 4 || !batch.is_floating_point())
            throw new ArgumentException($"Augmentation needs a floating-point image batch [N, C, H, W]; got {batch.dtype} [{string.Join(", ", batch.shape)}].", nameof(batch));
        using var scope = NewDisposeScope();
        var x = batch.alias();
        if (x.shape[0] == 0) return x.MoveToOuterDisposeScope();
        int h = (int)x.shape[2], w = (int)x.shape[3];
        if (CropFor(h, w) is RandomCrop crop) x = crop.Apply(x, generator);
        else if (ResizedCropFor(h, w) is RandomResizedCrop resized) x = resized.Apply(x, generator);
        if (HorizontalFlip is not null) x = HorizontalFlip.Apply(x, generator);
        if (Affine is not null) x = Affine.Apply(x, generator);
        if (Jitter is not null) x = Jitter.Apply(x, generator);
        if (Erasing is not null) x = Erasing.Apply(x, generator);
        return x.MoveToOuterDisposeScope();
    }

    // The pad-and-crop for images of this size, if any (see SmallImageMaxSide).
    private RandomCrop? CropFor(int height, int width) =>
        Crop is not null && (ResizedCrop is null || Math.Min(height, width) <= SmallImageMaxSide) ? Crop : null;

    private RandomResizedCrop? ResizedCropFor(int height, int width) => CropFor(height, width) is null ? ResizedCrop : null;

    /// <summary>The ops in application order, e.g. <c>Crop(padding 4, zero) or ResizedCrop(…) + HorizontalFlip(p 0.5)</c>;
    /// recorded with trained models.</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        if (Crop is not null && ResizedCrop is not null)
            parts.Add($"{Crop} up to {SmallImageMaxSide} px, else {ResizedCrop}");
        else if (((object?)Crop ?? ResizedCrop) is { } crop)
            parts.Add(crop.ToString()!);
        foreach (object? op in new object?[] { HorizontalFlip, Affine, Jitter, Erasing })
            if (op is not null) parts.Add(op.ToString()!);
        return parts.Count == 0 ? "none" : string.Join(" + ", parts);
    }
}
