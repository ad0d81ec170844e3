using System;
using System.IO;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Averaging;

/// <summary>
/// The tensors of a module that an average covers — every trainable parameter and, optionally, every floating-point
/// buffer (BatchNorm running statistics) except those of modules whose parameters are all frozen — and flat buffers that hold one value per covered element. A flat buffer is one
/// contiguous tensor on the module's device with a view per model tensor, so averaging updates are one in-place native
/// op per tensor (no allocation, no per-element .NET loop) and copies of a whole average are one <c>clone</c>.
/// </summary>
internal sealed class ModelTensors
{
    private readonly Tensor[] _tensors;

    /// <summary>Collects the tensors of <paramref name="model"/> in <c>named_parameters</c> then <c>named_buffers</c> order.</summary>
    /// <param name="model">The module; its tensors must share one device and be float32.</param>
    /// <param name="includeBuffers">Also cover floating-point buffers (integer counters are never covered).</param>
    public ModelTensors(nn.Module model, bool includeBuffers)
    {
        ArgumentNullException.ThrowIfNull(model);
        // Frozen parameters (requires_grad false, e.g. a fine-tuned network's frozen backbone stages) never change: they
        // are left out, and so are the buffers of modules all of whose own parameters are frozen.
        var parameters = model.parameters().Where(p => p.requires_grad).Select(p => (Tensor)p);
        var frozenOwners = model.named_modules().Where(m => IsFrozen(m.module)).Select(m => m.name).ToHashSet(StringComparer.Ordinal);
        if (IsFrozen(model)) frozenOwners.Add("");
        var buffers = includeBuffers
            ? model.named_buffers().Where(b => b.buffer.is_floating_point() && !frozenOwners.Contains(Owner(b.name))).Select(b => b.buffer)
            : Enumerable.Empty<Tensor>();
        _tensors = parameters.Concat(buffers).ToArray();
        if (_tensors.Length == 0) throw new ArgumentException("The model has no parameters to average.", nameof(model));
        if (_tensors.Any(t => t.dtype != ScalarType.Float32))
            throw new ArgumentException("Weight averaging supports float32 models only.", nameof(model));
        Device = _tensors[0].device;
        Count = _tensors.Sum(t => t.numel());
        IncludesBuffers = includeBuffers;
    }

    private static string Owner(string bufferName) => bufferName.LastIndexOf('.') is int dot and >= 0 ? bufferName[..dot] : "";

    private static bool IsFrozen(nn.Module module)
    {
        var own = module.parameters(recurse: false).ToArray();
        return own.Length > 0 && own.All(p => !p.requires_grad);
    }

    /// <summary>The device of the model's tensors (and of the flat buffers).</summary>
    public Device Device { get; }

    /// <summary>Total number of covered elements.</summary>
    public long Count { get; }

    /// <summary>Whether floating-point buffers are covered.</summary>
    public bool IncludesBuffers { get; }

    /// <summary>A new zero flat buffer (float32, on the model's device, outside any dispose scope).</summary>
    public FlatBuffer NewBuffer() => new(this, zeros(Count, ScalarType.Float32, Device).DetachFromDisposeScope());

    internal Tensor[] Tensors => _tensors;

    internal Tensor[] Views(Tensor flat)
    {
        var views = new Tensor[_tensors.Length];
        long offset = 0;
        for (int i = 0; i < _tensors.Length; i++)
        {
            long n = _tensors[i].numel();
            views[i] = flat.narrow(0, offset, n).view(_tensors[i].shape).DetachFromDisposeScope();
            offset += n;
        }
        return views;
    }
}

/// <summary>One flat float32 buffer shaped like a <see cref="ModelTensors"/>, with a view per model tensor.</summary>
internal sealed class FlatBuffer : IDisposable
{
    private readonly ModelTensors _layout;
    private readonly Tensor[] _views;
    private readonly Tensor _weight;   // lerp_'s weight as a 0-d tensor on the device, refilled in place (no allocation per update)

    internal FlatBuffer(ModelTensors layout, Tensor flat)
    {
        _layout = layout;
        Flat = flat;
        _views = layout.Views(flat);
        _weight = zeros(Array.Empty<long>(), ScalarType.Float32, flat.device).DetachFromDisposeScope();
    }

    /// <summary>The whole buffer as one 1-D tensor.</summary>
    public Tensor Flat { get; }

    /// <summary>Copies the model's current values into this buffer.</summary>
    public void CopyFromModel()
    {
        using var noGrad = no_grad();
        var model = _layout.Tensors;
        for (int i = 0; i < model.Length; i++) _views[i].copy_(model[i]);
    }

    /// <summary>Writes this buffer's values into the model's tensors.</summary>
    public void CopyToModel()
    {
        using var noGrad = no_grad();
        var model = _layout.Tensors;
        for (int i = 0; i < model.Length; i++) model[i].copy_(_views[i]);
    }

    /// <summary>In place: <c>this ← this + weight·(model − this)</c>, one fused <c>lerp_</c> per model tensor.</summary>
    public void LerpTowardsModel(double weight)
    {
        using var noGrad = no_grad();
        SetWeight(weight);
        var model = _layout.Tensors;
        for (int i = 0; i < model.Length; i++) _views[i].lerp_(model[i], _weight);
    }

    /// <summary>In place: <c>this ← this + weight·(other − this)</c>, one fused <c>lerp_</c> over the whole buffer.</summary>
    public void LerpTowards(FlatBuffer other, double weight)
    {
        ArgumentNullException.ThrowIfNull(other);
        using var noGrad = no_grad();
        SetWeight(weight);
        Flat.lerp_(other.Flat, _weight);
    }

    /// <summary>Copies <paramref name="other"/>'s values into this buffer.</summary>
    public void CopyFrom(FlatBuffer other)
    {
        ArgumentNullException.ThrowIfNull(other);
        using var noGrad = no_grad();
        Flat.copy_(other.Flat);
    }

    /// <summary>A copy of this buffer (same layout).</summary>
    public FlatBuffer Clone() => new(_layout, Flat.clone().DetachFromDisposeScope());

    /// <summary>Writes the values (float32, little-endian) to <paramref name="writer"/>.</summary>
    public void Save(BinaryWriter writer)
    {
        using var scope = NewDisposeScope();
        var values = Flat.cpu().data<float>().ToArray();
        writer.Write(values.LongLength);
        writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }

    /// <summary>Reads values written by <see cref="Save"/> into this buffer; the length must match.</summary>
    public void Load(BinaryReader reader)
    {
        long n = reader.ReadInt64();
        if (n != Flat.numel())
            throw new InvalidDataException($"The saved averaging state covers {n} values but this model has {Flat.numel()}; load it into the same architecture.");
        var bytes = reader.ReadBytes(checked((int)(n * sizeof(float))));
        if (bytes.Length != n * sizeof(float)) throw new EndOfStreamException("The averaging state is truncated.");
        var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Flat.copy_(tensor(values));
    }

    private void SetWeight(double weight)
    {
        using var w = weight.ToScalar();
        _weight.fill_(w);
    }

    /// <summary>Releases the buffer and its views.</summary>
    public void Dispose()
    {
        _weight.Dispose();
        foreach (var v in _views) v.Dispose();
        Flat.Dispose();
    }
}
