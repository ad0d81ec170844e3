using System;
using System.IO;
using System.Linq;
using FlatMinima.Torch.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.IncrementalFewShot;

/// <summary>
/// An F2M incremental few-shot learner (Shi et al., NeurIPS 2021): the embedding network, the flat region around its
/// base-session range parameters, one prototype per class seen so far (base classes, then each session's new classes)
/// and the exemplars replayed in later sessions. Create it from a base-trained network and the base data
/// (<see cref="FromBaseSession"/>); <see cref="AddSession"/> learns new classes in place (<see cref="Clone"/> first to
/// keep the previous state); <see cref="Logits"/> and <see cref="PredictProbabilities"/> classify by the nearest
/// prototype; <see cref="Save"/> and <see cref="Load"/> persist everything later sessions need.
/// </summary>
/// <remarks>
/// Inputs (base data, sessions, scoring) are network inputs, or raw images when the learner has a
/// <see cref="Standardization"/>. The network stays in eval mode. Owns the network and every tensor it holds.
/// </remarks>
public sealed class IncrementalLearner : IDisposable
{
    private const string FormatSignature = "FlatMinima.IncrementalLearner";
    private const int FormatVersion = 1;
    private readonly Func<nn.Module<Tensor, Tensor>> _createNetwork;
    private readonly IEmbeddingNetwork _embedding;

    /// <summary>
    /// Assembles a learner from its parts (e.g. as read by a custom persistence format), taking ownership of the network,
    /// region, prototypes and exemplars. To start from base training use <see cref="FromBaseSession"/>.
    /// </summary>
    /// <param name="network">The network (an <see cref="IEmbeddingNetwork"/>), on the prototypes' device.</param>
    /// <param name="createNetwork">Creates an untrained network of the same architecture (on the CPU); <see cref="Clone"/> and <see cref="Load"/> use it.</param>
    /// <param name="flatRegion">θ_base of the range parameters and the bound b.</param>
    /// <param name="prototypes">The class prototypes <c>[K, D]</c>, in class order.</param>
    /// <param name="exemplars">The kept exemplars (class indices &lt; K).</param>
    /// <param name="baseClassCount">Classes of the base session (the first prototypes).</param>
    /// <param name="sessionCount">Incremental sessions applied so far.</param>
    /// <param name="normalization">Prototype normalisation of the session loss and of scoring.</param>
    /// <param name="distanceScale">ω in the logits <c>−ω·‖f − p‖²</c>.</param>
    /// <param name="standardization">Maps raw images to network inputs; null if inputs are network inputs already.</param>
    public IncrementalLearner(nn.Module<Tensor, Tensor> network, Func<nn.Module<Tensor, Tensor>> createNetwork, FlatRegionBounds flatRegion,
        Tensor prototypes, ExemplarMemory exemplars, int baseClassCount, int sessionCount, PrototypeNormalization normalization,
        double distanceScale, ChannelStandardization? standardization = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(createNetwork);
        ArgumentNullException.ThrowIfNull(flatRegion);
        ArgumentNullException.ThrowIfNull(prototypes);
        ArgumentNullException.ThrowIfNull(exemplars);
        _embedding = IncrementalFewShot.Prototypes.AsEmbedding(network);
        if (prototypes.dim() != 2 || prototypes.shape[0] < 1)
            throw new ArgumentException($"The prototypes must be a [K, D] tensor with K ≥ 1; got shape [{string.Join(", ", prototypes.shape)}].", nameof(prototypes));
        if (baseClassCount < 1 || baseClassCount > prototypes.shape[0])
            throw new ArgumentOutOfRangeException(nameof(baseClassCount), baseClassCount, $"The base class count must be in 1…{prototypes.shape[0]} (the number of prototypes).");
        if (sessionCount < 0) throw new ArgumentOutOfRangeException(nameof(sessionCount), sessionCount, "The session count must be ≥ 0.");
        if (!Enum.IsDefined(normalization)) throw new ArgumentOutOfRangeException(nameof(normalization), normalization, "Unknown prototype normalisation.");
        if (!(distanceScale > 0) || double.IsInfinity(distanceScale))
            throw new ArgumentOutOfRangeException(nameof(distanceScale), distanceScale, "DistanceScale must be a finite number > 0.");
        if (exemplars.Count > 0 && !InRange(exemplars.Labels, 0, prototypes.shape[0]))
            throw new ArgumentException($"Exemplar labels must be class indices in 0…{prototypes.shape[0] - 1}.", nameof(exemplars));
        flatRegion.ParametersOf(network);
        Network = network;
        _createNetwork = createNetwork;
        FlatRegion = flatRegion;
        Prototypes = prototypes.DetachFromDisposeScope();
        Exemplars = exemplars;
        BaseClassCount = baseClassCount;
        SessionCount = sessionCount;
        Normalization = normalization;
        DistanceScale = distanceScale;
        Standardization = standardization;
        network.eval();
    }

    /// <summary>
    /// A learner over the base classes of a base-trained <paramref name="network"/>: selects its range parameters and
    /// copies them as θ_base (<paramref name="flatRegion"/>'s <c>RangeLayerCount</c>/<c>RangeParameterNames</c> and
    /// <c>Bound</c>, normally the options the network was trained with), and computes one prototype per class from the
    /// base data. The learner owns <paramref name="network"/> once this returns.
    /// </summary>
    /// <param name="network">The base-trained network (an <see cref="IEmbeddingNetwork"/>), on the device the learner is to use.</param>
    /// <param name="createNetwork">Creates an untrained network of the same architecture (on the CPU); <see cref="Clone"/> and <see cref="Load"/> use it.</param>
    /// <param name="inputs">The base data <c>[N, …]</c> (raw images if <paramref name="standardization"/> is given).</param>
    /// <param name="labels">Base class indices <c>[N]</c> (int64), 0 … K − 1, each present.</param>
    /// <param name="flatRegion">Which parameters are range parameters, and the bound b.</param>
    /// <param name="normalization">Prototype normalisation of the session loss and of scoring (reference: prototypes L2-normalised).</param>
    /// <param name="distanceScale">ω in the logits <c>−ω·‖f − p‖²</c> (reference: 1).</param>
    /// <param name="standardization">Maps raw images to network inputs; null if the inputs are network inputs already.</param>
    /// <param name="batchSize">Examples per forward pass when computing the prototypes.</param>
    public static IncrementalLearner FromBaseSession(nn.Module<Tensor, Tensor> network, Func<nn.Module<Tensor, Tensor>> createNetwork,
        Tensor inputs, Tensor labels, FlatRegionOptions flatRegion, PrototypeNormalization normalization = PrototypeNormalization.Prototypes,
        double distanceScale = 1.0, ChannelStandardization? standardization = null, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(createNetwork);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(flatRegion);
        IncrementalFewShot.Prototypes.AsEmbedding(network);
        CheckLabels(inputs, labels, "base data");
        long classCount = MaxLabel(labels) + 1;
        if (!InRange(labels, 0, classCount)) throw new ArgumentException("Base class indices must be ≥ 0.", nameof(labels));
        network.eval();
        var device = network.parameters().First().device;
        var region = new FlatRegionBounds(RangeParameters.Select(network, flatRegion.RangeLayerCount, flatRegion.RangeParameterNames), flatRegion.Bound);
        Tensor? prototypes = null;
        ExemplarMemory? exemplars = null;
        try
        {
            prototypes = IncrementalFewShot.Prototypes.Compute(network, inputs, labels, classCount, batchSize, device, standardization is null ? null : standardization.Apply);
            exemplars = ExemplarMemory.Empty(inputs);
            return new IncrementalLearner(network, createNetwork, region, prototypes, exemplars, checked((int)classCount), 0,
                normalization, distanceScale, standardization);
        }
        catch
        {
            region.Dispose();
            prototypes?.Dispose();
            exemplars?.Dispose();
            throw;
        }
    }

    /// <summary>The network, in eval mode. Sessions fine-tune its range parameters.</summary>
    public nn.Module<Tensor, Tensor> Network { get; }

    /// <summary>θ_base of the range parameters and the bound b; sessions keep the range parameters within ±b/2 of θ_base.</summary>
    public FlatRegionBounds FlatRegion { get; }

    /// <summary>The class prototypes <c>[K, D]</c> on <see cref="Device"/>, in class order. Read-only: do not modify;
    /// <see cref="AddSession"/> replaces it (and disposes the previous tensor).</summary>
    public Tensor Prototypes { get; private set; }

    /// <summary>The exemplars of earlier sessions' new classes, replayed in every later session; <see cref="AddSession"/>
    /// replaces it (and disposes the previous one).</summary>
    public ExemplarMemory Exemplars { get; private set; }

    /// <summary>Number of classes seen so far (K).</summary>
    public int ClassCount => (int)Prototypes.shape[0];

    /// <summary>Number of classes of the base session.</summary>
    public int BaseClassCount { get; }

    /// <summary>Number of incremental sessions applied after the base session.</summary>
    public int SessionCount { get; private set; }

    /// <summary>Prototype normalisation used in sessions and in scoring.</summary>
    public PrototypeNormalization Normalization { get; }

    /// <summary>ω in the logits <c>−ω·‖f − p‖²</c>.</summary>
    public double DistanceScale { get; }

    /// <summary>Maps raw images to network inputs; null if the learner takes network inputs.</summary>
    public ChannelStandardization? Standardization { get; }

    /// <summary>The device of the network and the prototypes.</summary>
    public Device Device => Prototypes.device;

    /// <summary>
    /// Learns the new classes of a session, in place: fine-tunes the range parameters inside the flat region
    /// (<see cref="IncrementalSession.Run"/>) on the session plus the kept exemplars, appends the new classes' prototypes
    /// (the old ones are not changed, except with <see cref="IncrementalSessionOptions.RefreshNovelPrototypes"/>, which
    /// re-estimates those of earlier sessions' classes from their rows and exemplars) and keeps the first
    /// <paramref name="exemplarsPerClass"/> rows of each new class. Rows of classes already learned are extra examples
    /// against their fixed prototypes (base classes always; earlier sessions' classes unless their prototypes are refreshed). If the session fails, the
    /// network may be partly fine-tuned: run it on a <see cref="Clone"/> to keep the previous state.
    /// </summary>
    /// <param name="inputs">The session's examples <c>[N, …]</c> (raw images if the learner has a <see cref="Standardization"/>).</param>
    /// <param name="labels">Global class indices <c>[N]</c> (int64): old classes &lt; <see cref="ClassCount"/>; new classes
    /// <see cref="ClassCount"/> … <see cref="ClassCount"/> + K_new − 1, each present.</param>
    /// <param name="options">Session settings; their <c>Normalization</c> and <c>DistanceScale</c> must be the learner's.</param>
    /// <param name="exemplarsPerClass">Rows of each new class kept for later sessions (reference: 5); 0 keeps none.</param>
    /// <returns>The session's losses and largest deviation from θ_base; its <c>NewPrototypes</c> (and <c>RefreshedPrototypes</c>)
    /// are views of the new (refreshed) rows of <see cref="Prototypes"/> (read-only).</returns>
    public IncrementalSessionResult AddSession(Tensor inputs, Tensor labels, IncrementalSessionOptions options, int exemplarsPerClass = 5)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.Normalization != Normalization || options.DistanceScale != DistanceScale)
            throw new ArgumentException($"The session options have Normalization = {options.Normalization} and DistanceScale = {options.DistanceScale}, " +
                $"but this learner's prototypes are compared with Normalization = {Normalization} and DistanceScale = {DistanceScale}; sessions must use the learner's.", nameof(options));
        if (exemplarsPerClass < 0) throw new ArgumentOutOfRangeException(nameof(exemplarsPerClass), exemplarsPerClass, "Exemplars per class must be ≥ 0.");
        long oldCount = ClassCount, newCount = CheckSessionLabels(inputs, labels);

        using var scope = NewDisposeScope();
        var x = cat(new[] { inputs, Exemplars.Inputs.to(inputs.device) }, 0);
        var y = cat(new[] { labels, Exemplars.Labels.to(labels.device) }, 0);
        var result = IncrementalSession.Run(Network, FlatRegion, Prototypes, Prepare(x), y, options, BaseClassCount);
        var exemplars = Exemplars.WithNewClasses(inputs, labels, oldCount, exemplarsPerClass);
        var kept = result.RefreshedPrototypes is Tensor refreshed ? cat(new[] { Prototypes.narrow(0, 0, BaseClassCount), refreshed }, 0) : Prototypes;
        var prototypes = cat(new[] { kept, result.NewPrototypes }, 0).DetachFromDisposeScope();
        Prototypes.Dispose();
        Exemplars.Dispose();
        Prototypes = prototypes;
        Exemplars = exemplars;
        SessionCount++;
        return result with
        {
            NewPrototypes = prototypes.narrow(0, oldCount, newCount).MoveToOuterDisposeScope(),
            RefreshedPrototypes = result.RefreshedPrototypes is null ? null : prototypes.narrow(0, BaseClassCount, oldCount - BaseClassCount).MoveToOuterDisposeScope(),
        };
    }

    /// <summary>Logits <c>−ω·‖f(x) − p_k‖²</c> <c>[N, K]</c> on <see cref="Device"/> of a batch <c>[N, …]</c>, in one
    /// forward pass without gradients (created in the caller's dispose scope).</summary>
    public Tensor Logits(Tensor inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        bool wasTraining = Network.training;
        Network.eval();
        try
        {
            var features = _embedding.Embed(Prepare(inputs.to(Device)));
            return IncrementalFewShot.Prototypes.Logits(features, Prototypes, Normalization, DistanceScale).MoveToOuterDisposeScope();
        }
        finally
        {
            Network.train(wasTraining);
        }
    }

    /// <summary>Class probabilities <c>[N, K]</c> (softmax of <see cref="Logits"/>) on <see cref="Device"/>; the nearest
    /// prototype has the largest.</summary>
    public Tensor PredictProbabilities(Tensor inputs)
    {
        using var scope = NewDisposeScope();
        return nn.functional.softmax(Logits(inputs), 1).MoveToOuterDisposeScope();
    }

    /// <summary>An independent copy: a new network (from the architecture factory) with this one's weights, and copies of
    /// the region, prototypes and exemplars.</summary>
    public IncrementalLearner Clone()
    {
        var network = NetworkCopy.Create(Network, _createNetwork, Device);
        FlatRegionBounds? region = null;
        Tensor? prototypes = null;
        ExemplarMemory? exemplars = null;
        try
        {
            region = FlatRegion.Clone();
            prototypes = Prototypes.clone().DetachFromDisposeScope();
            exemplars = Exemplars.Clone();
            return new IncrementalLearner(network, _createNetwork, region, prototypes, exemplars, BaseClassCount,
                SessionCount, Normalization, DistanceScale, Standardization);
        }
        catch
        {
            network.Dispose();
            region?.Dispose();
            prototypes?.Dispose();
            exemplars?.Dispose();
            throw;
        }
    }

    /// <summary>Writes everything later sessions and scoring need: counts, scoring settings, standardization, network
    /// weights, flat region, prototypes and exemplars.</summary>
    public void Save(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(FormatSignature);
        writer.Write(FormatVersion);
        writer.Write(BaseClassCount);
        writer.Write(SessionCount);
        writer.Write((int)Normalization);
        writer.Write(DistanceScale);
        writer.Write(Standardization is not null);
        Standardization?.Save(writer);
        Network.save(writer);
        FlatRegion.Save(writer);
        TensorIO.Write(writer, Prototypes);
        Exemplars.Save(writer);
    }

    /// <summary>Reads what <see cref="Save"/> wrote into a network from <paramref name="createNetwork"/> (the same
    /// architecture), on <paramref name="device"/> (default: the CPU).</summary>
    public static IncrementalLearner Load(BinaryReader reader, Func<nn.Module<Tensor, Tensor>> createNetwork, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(createNetwork);
        device ??= CPU;
        if (reader.ReadString() != FormatSignature) throw new InvalidDataException("The stream does not hold an incremental learner.");
        int version = reader.ReadInt32();
        if (version != FormatVersion) throw new InvalidDataException($"Incremental learner format {version} is not supported (this version reads {FormatVersion}).");
        int baseClassCount = reader.ReadInt32(), sessionCount = reader.ReadInt32();
        var normalization = (PrototypeNormalization)reader.ReadInt32();
        double distanceScale = reader.ReadDouble();
        if (baseClassCount < 1 || sessionCount < 0 || !Enum.IsDefined(normalization) || !(distanceScale > 0) || double.IsInfinity(distanceScale))
            throw new InvalidDataException($"The stored learner settings are out of range: base classes {baseClassCount}, sessions {sessionCount}, " +
                $"normalisation {(int)normalization}, distance scale {distanceScale}.");
        var standardization = reader.ReadBoolean() ? ChannelStandardization.Load(reader) : null;
        var network = createNetwork();
        FlatRegionBounds? region = null;
        Tensor? prototypes = null;
        ExemplarMemory? exemplars = null;
        try
        {
            network.load(reader);
            network.to(device);
            region = FlatRegionBounds.Load(reader, device);
            prototypes = TensorIO.Read(reader, requireFinite: true).to(device).DetachFromDisposeScope();
            exemplars = ExemplarMemory.Load(reader);
            if (prototypes.dim() != 2 || prototypes.shape[0] < baseClassCount)
                throw new InvalidDataException($"The stored prototypes have shape [{string.Join(", ", prototypes.shape)}]; expected [K ≥ {baseClassCount}, D].");
            return new IncrementalLearner(network, createNetwork, region, prototypes, exemplars, baseClassCount, sessionCount, normalization,
                distanceScale, standardization);
        }
        catch
        {
            network.Dispose();
            region?.Dispose();
            prototypes?.Dispose();
            exemplars?.Dispose();
            throw;
        }
    }

    /// <summary>Releases the network, flat region, prototypes and exemplars.</summary>
    public void Dispose()
    {
        Network.Dispose();
        FlatRegion.Dispose();
        Prototypes.Dispose();
        Exemplars.Dispose();
    }

    private Tensor Prepare(Tensor inputs) => Standardization is null ? inputs : Standardization.Apply(inputs);

    // Checks a session's rows against the learner's classes and exemplars; returns the number of new classes.
    private long CheckSessionLabels(Tensor inputs, Tensor labels)
    {
        CheckLabels(inputs, labels, "session");
        if (!inputs.shape.Skip(1).SequenceEqual(Exemplars.Inputs.shape.Skip(1)) || inputs.dtype != Exemplars.Inputs.dtype)
            throw new ArgumentException($"The session's examples are {inputs.dtype} [{string.Join(", ", inputs.shape.Skip(1))}] but the learner's are " +
                $"{Exemplars.Inputs.dtype} [{string.Join(", ", Exemplars.Inputs.shape.Skip(1))}] (the base data's shape).", nameof(inputs));
        long newCount = MaxLabel(labels) + 1 - ClassCount;
        if (!InRange(labels, 0, ClassCount + newCount)) throw new ArgumentException("Class indices must be ≥ 0.", nameof(labels));
        if (newCount < 1)
            throw new ArgumentException($"The session has no new class: every label is below the class count K = {ClassCount}; new classes are numbered from K.", nameof(labels));
        using var scope = NewDisposeScope();
        var present = zeros(newCount, ScalarType.Int64, labels.device).index_fill_(0, labels.masked_select(labels.ge(ClassCount)).sub(ClassCount), 1);
        if (present.eq(0).any().item<bool>())
            throw new ArgumentException($"New classes must be numbered {ClassCount} … {ClassCount + newCount - 1} without gaps; class " +
                $"{ClassCount + present.eq(0).nonzero()[0, 0].item<long>()} has no example.", nameof(labels));
        return newCount;
    }

    private static long MaxLabel(Tensor labels)
    {
        using var max = labels.max();
        return max.item<long>();
    }

    // Whether every label lies in [from, to).
    private static bool InRange(Tensor labels, long from, long to)
    {
        using var scope = NewDisposeScope();
        return labels.ge(from).logical_and(labels.lt(to)).all().item<bool>();
    }

    private static void CheckLabels(Tensor inputs, Tensor labels, string what)
    {
        if (labels.dim() != 1 || labels.dtype != ScalarType.Int64)
            throw new ArgumentException($"The {what} labels must be a 1-D int64 tensor of class indices; got {labels.dtype} of shape [{string.Join(", ", labels.shape)}].", nameof(labels));
        if (inputs.dim() < 1 || inputs.shape[0] != labels.shape[0])
            throw new ArgumentException($"The {what} has {labels.shape[0]} labels for inputs of shape [{string.Join(", ", inputs.shape)}].", nameof(labels));
        if (labels.shape[0] == 0) throw new ArgumentException($"The {what} has no examples.", nameof(labels));
    }
}
