namespace FlatMinima.MLNet;

/// <summary>
/// The bounds every FlatMinima model keeps: the trainers refuse options and data beyond them, and the loaders refuse
/// model files that declare more — before allocating anything — so a model that trains also loads.
/// </summary>
public static class ModelLimits
{
    /// <summary>The largest image height or width a model may have (pixels), in training options and in model files.</summary>
    public const int MaxImageSide = 2048;

    /// <summary>The most values one input image may have (channels × height × width).</summary>
    public const int MaxInputValues = 1 << 24;

    /// <summary>The most channels a pixel-vector model may declare (encoded images and <c>MLImage</c> inputs: 1 to 3).</summary>
    public const int MaxVectorChannels = 1024;

    /// <summary>The most classes a model may have.</summary>
    public const int MaxClassCount = 100_000;

    /// <summary>The largest scoring batch size a model may have.</summary>
    public const int MaxScoringBatchSize = 65_536;

    /// <summary>The longest column or architecture name a model may have.</summary>
    public const int MaxNameLength = 1024;
}
