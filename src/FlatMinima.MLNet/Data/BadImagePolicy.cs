namespace FlatMinima.MLNet;

/// <summary>
/// What training does with a row whose image cannot be used: encoded bytes that are empty, not an image, truncated or
/// damaged (the decoder reports incomplete or invalid data), larger than 100,000,000
/// pixels, or a missing (null) <c>MLImage</c>. Pixel vectors of the wrong length and pixel vectors with NaN or infinity
/// always fail, naming the row: fix them upstream (e.g. <c>ReplaceMissingValues</c> or <c>FilterRowsByMissingValues</c>).
/// </summary>
public enum BadImagePolicy
{
    /// <summary>Fail, naming the image column, the row and what is wrong with the image (the default).</summary>
    Error,

    /// <summary>
    /// Leave the row out of training (training data, <c>ValidationSet</c>, session data) and log the number of skipped
    /// rows, with the first reasons, as a warning to <c>MLContext.Log</c>. Training fails if every row is skipped.
    /// </summary>
    Skip,
}
