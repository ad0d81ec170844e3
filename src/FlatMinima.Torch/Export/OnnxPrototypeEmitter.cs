using System;
using FlatMinima.Torch.IncrementalFewShot;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Export;

/// <summary>
/// Writes a prototype classifier's logits <c>−ω·‖f − p_k‖²</c> (<see cref="Prototypes.Logits"/>) into an
/// <see cref="IOnnxGraphSink"/>: the prototypes (normalized as <see cref="PrototypeNormalization"/> says) are constants,
/// the queries are L2-normalized in the graph for <see cref="PrototypeNormalization.Cosine"/>, and the squared distance
/// is <c>‖f‖² − 2 f·pᵀ + ‖p‖²</c> clamped at 0, as the Torch code computes it. Ops: MatMul, Mul, Sub, Add, Max,
/// ReduceL2, Div — the same in opsets 12 and 13.
/// </summary>
public static class OnnxPrototypeEmitter
{
    /// <summary>Writes the logits of <paramref name="embedding"/> <c>[N, D]</c> against <paramref name="prototypes"/> <c>[K, D]</c>; returns their name.</summary>
    public static string EmitLogits(IOnnxGraphSink sink, string embedding, Tensor prototypes, PrototypeNormalization normalization, double distanceScale, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(sink);
        ArgumentNullException.ThrowIfNull(prototypes);
        if (prototypes.dim() != 2) throw new ArgumentException($"The prototypes must be [K, D]; got [{string.Join(", ", prototypes.shape)}].", nameof(prototypes));
        if (!(distanceScale > 0) || !double.IsFinite(distanceScale))
            throw new ArgumentOutOfRangeException(nameof(distanceScale), distanceScale, "The distance scale must be a finite number > 0.");
        var w = new OnnxGraphWriter(sink, prefix);
        long k = prototypes.shape[0], d = prototypes.shape[1];
        string transposed, squaredNorms;
        using (var scope = NewDisposeScope())
        {
            var p = prototypes.detach().cpu().to_type(ScalarType.Float32);
            if (normalization != PrototypeNormalization.None) p = nn.functional.normalize(p, 2.0, 1);
            transposed = w.Weight("prototypes.t", p.t().contiguous());
            squaredNorms = w.Weight("prototypes.squared_norms", p.pow(2).sum(1).unsqueeze(0).contiguous());
        }
        string f = embedding;
        if (normalization == PrototypeNormalization.Cosine)
        {
            // F.normalize: f / max(‖f‖₂, 1e-12).
            string norm = w.Node("ReduceL2", "query.norm", new[] { f }, OnnxAttribute.Of("axes", new long[] { 1 }), OnnxAttribute.Of("keepdims", 1L));
            norm = w.Node("Max", "query.norm.clamped", new[] { norm, w.Constant("query.eps", new[] { 1e-12f }, 1) });
            f = w.Node("Div", "query.normalized", new[] { f, norm });
        }
        string ff = w.Node("MatMul", "query.squared_norms", new[] { w.Node("Mul", "query.squared", new[] { f, f }), w.Constant("ones", Ones(d), d, 1) });
        string fp = w.Node("Mul", "query.dot2", new[] { w.Node("MatMul", "query.dot", new[] { f, transposed }), w.Constant("two", new[] { 2f }, 1) });
        string squared = w.Node("Add", "distance.sum", new[] { w.Node("Sub", "distance.diff", new[] { ff, fp }), squaredNorms });
        squared = w.Node("Max", "distance", new[] { squared, w.Constant("zero", new[] { 0f }, 1) });
        return w.Node("Mul", "prototype.logits", new[] { squared, w.Constant("minus_scale", new[] { (float)-distanceScale }, 1) });
    }

    private static float[] Ones(long count)
    {
        var ones = new float[count];
        Array.Fill(ones, 1f);
        return ones;
    }
}
