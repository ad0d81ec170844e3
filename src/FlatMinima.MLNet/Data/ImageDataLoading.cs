namespace FlatMinima.MLNet;

/// <summary>Where the training images live while a FlatMinima trainer trains.</summary>
public enum ImageDataLoading
{
    /// <summary>
    /// <see cref="Streaming"/> when the image column holds encoded bytes and the decoded training images would take more
    /// than <see cref="ImageDataLoadingRule.InMemoryLimitBytes"/> (1 GiB of float pixels: rows × channels × height ×
    /// width × 4 bytes, e.g. about 1,700 RGB images at 224×224 or 340,000 gray images at 28×28); otherwise
    /// <see cref="InMemory"/>. The rule and the estimate are written to the log. Without <c>ImageHeight</c>/<c>ImageWidth</c>
    /// the size taken from the data must fit the same 1 GiB (else Fit fails asking for a size), so streaming is chosen
    /// only at a size you set.
    /// </summary>
    Automatic,

    /// <summary>
    /// Every training image is decoded once into one float tensor (rows × channels × height × width × 4 bytes, about 3.5
    /// times that at the peak while normalizing). Fastest per epoch; memory grows with the number of rows.
    /// </summary>
    InMemory,

    /// <summary>
    /// Only the encoded bytes of each row are kept, in a temporary file (28 bytes per row stay in memory); every batch is
    /// read and decoded — on <c>LoaderWorkers</c> background threads, <c>PrefetchBatches</c> batches ahead of the step,
    /// or on the training thread when <c>LoaderWorkers</c> is 0 (the default on machines with at most 2 processors) —
    /// then resized, converted and normalized on the training thread, so decoded pixels take batch size × prefetch depth
    /// whatever the number of rows. Needs an encoded-bytes image column (e.g. from <c>LoadRawImageBytes</c>). Costs a
    /// decode per image per epoch: about 21 µs for a 28×28 PNG, 0.7 ms for a 256×256 JPEG on the machine in
    /// docs/benchmarks.md. Gives the same model as <see cref="InMemory"/> for the same seed when the training rows fit
    /// in one statistics chunk (256 rows at sizes up to 147×147; 16 MiB of decoded floats); otherwise the per-channel
    /// normalization statistics, accumulated over chunks, differ from the whole-tensor ones by about 1e-7 relative, and
    /// so does training.
    /// </summary>
    Streaming,
}

/// <summary>The rule of <see cref="ImageDataLoading.Automatic"/>.</summary>
public static class ImageDataLoadingRule
{
    /// <summary>Decoded training images above this many bytes of float pixels are streamed: 1 GiB.</summary>
    public const long InMemoryLimitBytes = 1L << 30;

    /// <summary>Whether <paramref name="loading"/> streams <paramref name="rows"/> images of the given geometry from a column of <paramref name="kind"/>.</summary>
    public static bool Streams(ImageDataLoading loading, ImageInputKind kind, long rows, int channels, int height, int width) => loading switch
    {
        ImageDataLoading.Streaming => true,
        ImageDataLoading.InMemory => false,
        _ => kind == ImageInputKind.EncodedBytes && rows * channels * (long)height * width * sizeof(float) > InMemoryLimitBytes,
    };
}
