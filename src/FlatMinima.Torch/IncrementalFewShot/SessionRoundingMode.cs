namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>What an incremental session rounds to multiples of <c>b / RoundingReduction</c> (see
/// <see cref="IncrementalSessionOptions.RoundingReduction"/>).</summary>
public enum SessionRoundingMode
{
    /// <summary>Each step's whole parameter update (after momentum and weight decay) is rounded, so the range parameters
    /// only ever move by multiples of the quantum.</summary>
    Update,

    /// <summary>The reference code's rule: the scaled gradient <c>lr·g</c> of each range parameter is rounded before the
    /// optimizer step, which then adds momentum and weight decay to it; elements whose <c>|lr·g|</c> is below half a
    /// quantum do not move, so the update is sparse.</summary>
    Gradient,
}
