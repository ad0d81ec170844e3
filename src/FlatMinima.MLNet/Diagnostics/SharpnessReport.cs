using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using FlatMinima.Torch.Diagnostics;

namespace FlatMinima.MLNet.Diagnostics;

/// <summary>How flat a trained model is on some data: loss, accuracy, Hessian spectrum and sharpness measures.</summary>
public sealed record SharpnessReport
{
    /// <summary>Examples measured.</summary>
    public int Examples { get; init; }

    /// <summary>Trainable parameters.</summary>
    public long Parameters { get; init; }

    /// <summary>Mean cross-entropy on the examples (the loss every measure below differentiates).</summary>
    public double Loss { get; init; }

    /// <summary>Accuracy on the examples.</summary>
    public double Accuracy { get; init; }

    /// <summary>Top Hessian eigenvalues (null when skipped).</summary>
    public EigenResult? TopEigenvalues { get; init; }

    /// <summary>Hutchinson trace estimate (null when skipped).</summary>
    public TraceEstimate? Trace { get; init; }

    /// <summary>SAM-style worst-case ℓ₂ sharpness max_{‖δ‖≤ρ} L(w+δ) − L(w) (null when skipped).</summary>
    public SharpnessValue? WorstCase { get; init; }

    /// <summary>Keskar et al.'s ε-sharpness, in percent (null when skipped).</summary>
    public SharpnessValue? EpsilonSharpness { get; init; }

    /// <summary>Adaptive worst-case ℓ₂ sharpness, c = |w| (null when skipped).</summary>
    public SharpnessValue? AdaptiveWorstCase { get; init; }

    /// <summary>Adaptive average-case sharpness, δ ~ N(0, ρ²diag(w²)) (null when skipped).</summary>
    public SharpnessValue? AdaptiveAverageCase { get; init; }

    /// <summary>Per-module λ_max and trace (empty unless requested).</summary>
    public IReadOnlyList<LayerSharpnessValue> PerLayer { get; init; } = Array.Empty<LayerSharpnessValue>();

    /// <summary>The options used.</summary>
    public FlatMinimaSharpnessOptions Options { get; init; } = new();

    /// <summary>Wall time of the whole evaluation.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>The report as a plain-text table.</summary>
    public override string ToString()
    {
        var c = CultureInfo.InvariantCulture;
        var rows = new List<(string, string)>
        {
            ("examples / parameters", $"{Examples:N0} / {Parameters:N0}"),
            ("mode", $"{(Options.TrainMode ? "train" : "eval")}, {(Options.Float64 ? "float64" : "float32")}"),
            ("loss (cross-entropy)", Loss.ToString("F5", c)),
            ("accuracy", Accuracy.ToString("P2", c)),
        };
        if (TopEigenvalues is { } e)
            rows.Add(($"top-{e.Values.Count} Hessian eigenvalues ({(e.Order == EigenvalueOrder.LargestAlgebraic ? "largest algebraic" : "largest magnitude")})",
                string.Join(", ", e.Values.Select(v => v.ToString("G5", c))) + $" ({e.HessianVectorProducts} HVPs{(e.Converged ? "" : ", NOT converged")})"));
        if (Trace is { } t) rows.Add(("Hessian trace (Hutchinson)", $"{t.Trace.ToString("G5", c)} ± {t.StandardError.ToString("G3", c)} ({t.Probes} probes)"));
        if (WorstCase is { } w) rows.Add(($"worst-case ℓ₂ sharpness, ρ = {Options.WorstCaseRho.ToString(c)}", w.Value.ToString("G5", c)));
        if (EpsilonSharpness is { } k) rows.Add(($"ε-sharpness (Keskar, %), ε = {Options.KeskarEpsilon.ToString(c)}", k.Value.ToString("G5", c)));
        if (AdaptiveWorstCase is { } a) rows.Add(($"adaptive worst-case ℓ₂, ρ = {Options.AdaptiveRho.ToString(c)}", a.Value.ToString("G5", c)));
        if (AdaptiveAverageCase is { } g) rows.Add(($"adaptive average-case, ρ = {Options.AdaptiveRho.ToString(c)}", $"{g.Value.ToString("G5", c)} ± {g.StandardError.ToString("G3", c)}"));
        rows.Add(("elapsed", $"{Elapsed.TotalSeconds.ToString("F1", c)} s"));
        int width = rows.Max(r => r.Item1.Length);
        var text = new StringBuilder();
        foreach (var (name, value) in rows) text.Append(name.PadRight(width)).Append(" | ").AppendLine(value);
        if (PerLayer.Count > 0)
        {
            text.AppendLine().AppendLine("per module: name | parameters | λ_max | trace ± SE");
            foreach (var l in PerLayer)
                text.AppendLine($"  {l.Name} | {l.Parameters:N0} | {l.LambdaMax.ToString("G4", c)} | {l.Trace.Trace.ToString("G4", c)} ± {l.Trace.StandardError.ToString("G2", c)}");
        }
        return text.ToString();
    }
}
