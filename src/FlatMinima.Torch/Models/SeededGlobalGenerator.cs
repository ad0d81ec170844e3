using System;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Models;

/// <summary>
/// The one place the library uses TorchSharp's process-global generator: code that cannot take a
/// <see cref="Generator"/> (a custom network's constructor) runs with the global generator seeded, under a
/// process-wide lock, and the global generator's previous state is restored afterwards. Callers that go through here
/// do not interleave with each other; another thread drawing from or seeding the global generator at the same time
/// still can change what the code draws.
/// </summary>
internal static class SeededGlobalGenerator
{
    private static readonly object Gate = new();

    /// <summary>Runs <paramref name="create"/> with the global generator seeded with <paramref name="seed"/>.</summary>
    public static T Run<T>(long seed, Func<T> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        lock (Gate)
        {
            using var saved = get_rng_state();
            manual_seed(seed).Dispose();
            try
            {
                return create();
            }
            finally
            {
                set_rng_state(saved);
            }
        }
    }
}
