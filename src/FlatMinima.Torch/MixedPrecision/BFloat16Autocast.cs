using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlatMinima.Torch.MixedPrecision;

/// <summary>
/// bfloat16 mixed precision for any network built of TorchSharp modules, in the manner of <c>torch.autocast</c> with
/// float32 master weights: while <see cref="Enable"/>'s scope is open, every convolution (<see cref="Convolution"/>:
/// <c>Conv1d</c>–<c>Conv3d</c> and the transposed ones) and every <see cref="Linear"/> layer of the network computes in
/// bfloat16 — its float32 input, weight and bias are cast to bfloat16 on the way in, its output back to float32 on the way
/// out. The casts are autograd operations, so the backward pass runs through them: the gradients arrive in float32 in the
/// float32 parameters' <c>.grad</c>, where the optimizer, gradient clipping and SAM's perturbation see them. Everything
/// between the layers (BatchNorm's statistics and affine transform, activations, residual sums, pooling, the loss) sees
/// float32 tensors and computes in float32. No loss scaling is needed: bfloat16 has float32's exponent range.
/// </summary>
/// <remarks>
/// Works through forward hooks (<c>register_forward_pre_hook</c> / <c>register_forward_hook</c>): the pre-hook puts the
/// bfloat16 copy of the weight (and bias) in the layer for the duration of its <c>forward</c>, the post-hook puts the
/// float32 parameter back, so the parameters the network registers — and saves — are never replaced (the state
/// dictionary stays float32 and unchanged). Layers whose parameters are not float32 are left alone. Only calls through
/// <c>Module.call</c> (what every TorchSharp container and the built-in networks use) are cast; <c>forward</c> called
/// directly bypasses hooks. The layer swap is not thread-safe: do not run the network on several threads while a
/// scope is open. Outside a scope the hooks do nothing.
/// </remarks>
public sealed class BFloat16Autocast : IDisposable
{
    private static readonly FieldInfo? ConvolutionWeight = Field(typeof(Convolution), "_weight");
    private static readonly FieldInfo? ConvolutionBias = Field(typeof(Convolution), "_bias");
    private static readonly FieldInfo? LinearWeight = Field(typeof(Linear), "_weight");
    private static readonly FieldInfo? LinearBias = Field(typeof(Linear), "_bias");

    private readonly List<CastLayer> _layers = new();
    private bool _enabled;
    private bool _disposed;

    private BFloat16Autocast(nn.Module network)
    {
        if (ConvolutionWeight is null || ConvolutionBias is null || LinearWeight is null || LinearBias is null)
            throw new NotSupportedException("bfloat16 mixed precision needs the parameter fields _weight and _bias of TorchSharp's Convolution and Linear, " +
                "which this TorchSharp version lacks; use Precision = Float32.");
        foreach (var module in network.modules().Prepend(network).Distinct())
        {
            var layer = module switch
            {
                Convolution convolution => new CastLayer(this, convolution, ConvolutionWeight, ConvolutionBias),
                Linear linear => new CastLayer(this, linear, LinearWeight, LinearBias),
                _ => null,
            };
            if (layer is not null) _layers.Add(layer);
        }
    }

    /// <summary>
    /// Hooks every convolution and linear layer of <paramref name="network"/> (as it is now: layers added later are not
    /// cast). Nothing changes until <see cref="Enable"/>; <see cref="Dispose"/> removes the hooks.
    /// </summary>
    public static BFloat16Autocast Attach(nn.Module network)
    {
        ArgumentNullException.ThrowIfNull(network);
        return new BFloat16Autocast(network);
    }

    /// <summary>The number of layers that compute in bfloat16 while enabled.</summary>
    public int LayerCount => _layers.Count;

    /// <summary>Whether a scope from <see cref="Enable"/> is open.</summary>
    public bool IsEnabled => _enabled;

    /// <summary>
    /// Opens a scope in which the hooked layers compute in bfloat16 (forward and the backward of what ran in it); closing
    /// it restores float32 compute and, should a forward pass have thrown half-way, puts back every float32 parameter.
    /// Scopes do not nest.
    /// </summary>
    public IDisposable Enable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_enabled) throw new InvalidOperationException("The bfloat16 autocast scope is already open; scopes do not nest.");
        _enabled = true;
        return new Scope(this);
    }

    /// <summary>Removes the hooks (restoring any layer a failed forward pass left in bfloat16).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _enabled = false;
        foreach (var layer in _layers) layer.Detach();
        _layers.Clear();
    }

    private void Disable()
    {
        _enabled = false;
        foreach (var layer in _layers) layer.Restore();
    }

    // A layer's parameter field, or null when this TorchSharp version has none of that name and type.
    private static FieldInfo? Field(Type type, string name) =>
        type.GetField(name, BindingFlags.Instance | BindingFlags.NonPublic) is { } field && field.FieldType == typeof(Parameter) ? field : null;

    private sealed class Scope : IDisposable
    {
        private BFloat16Autocast? _owner;

        public Scope(BFloat16Autocast owner) => _owner = owner;

        public void Dispose()
        {
            _owner?.Disable();
            _owner = null;
        }
    }

    // One hooked layer: swaps the bfloat16 copies in before forward and the float32 parameters back after it.
    private sealed class CastLayer
    {
        private readonly BFloat16Autocast _owner;
        private readonly nn.Module<Tensor, Tensor> _module;
        private readonly FieldInfo _weightField;
        private readonly FieldInfo _biasField;
        private readonly nn.Module<Tensor, Tensor>.HookRemover _pre;
        private readonly nn.Module<Tensor, Tensor>.HookRemover _post;
        private Parameter? _weight, _bias, _castWeight, _castBias;
        private Tensor? _castInput;

        public CastLayer(BFloat16Autocast owner, nn.Module<Tensor, Tensor> module, FieldInfo weight, FieldInfo bias)
        {
            (_owner, _module, _weightField, _biasField) = (owner, module, weight, bias);
            _pre = module.register_forward_pre_hook(Before);
            _post = module.register_forward_hook(After);
        }

        // A hook returning null leaves the input (output) as it is.
        private Tensor Before(nn.Module<Tensor, Tensor> module, Tensor input)
        {
            if (!_owner._enabled) return null!;
            Restore();
            var weight = (Parameter?)_weightField.GetValue(_module);
            var bias = (Parameter?)_biasField.GetValue(_module);
            if (weight is null || weight.dtype != ScalarType.Float32 || (bias is not null && bias.dtype != ScalarType.Float32)
                || input.dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
                return null!;
            (_weight, _bias) = (weight, bias);
            _castWeight = CastCopy(weight);
            _castBias = bias is null ? null : CastCopy(bias);
            _weightField.SetValue(_module, _castWeight);
            _biasField.SetValue(_module, _castBias);
            if (input.dtype == ScalarType.BFloat16) return null!;
            _castInput = input.to(ScalarType.BFloat16);
            return _castInput;
        }

        private Tensor After(nn.Module<Tensor, Tensor> module, Tensor input, Tensor output)
        {
            if (_weight is null) return null!;
            Restore();
            if (output.dtype != ScalarType.BFloat16) return null!;
            var result = output.to(ScalarType.Float32);
            output.Dispose();
            return result;
        }

        // The autograd-connected bfloat16 copy of a float32 parameter, typed as a Parameter for the layer's field (it is
        // not registered anywhere); requires grad exactly when the parameter does.
        private static Parameter CastCopy(Parameter parameter)
        {
            var cast = parameter.to(ScalarType.BFloat16);
            return new Parameter(cast, cast.requires_grad);
        }

        public void Restore()
        {
            if (_weight is null) return;
            _weightField.SetValue(_module, _weight);
            _biasField.SetValue(_module, _bias);
            _castWeight?.Dispose();
            _castBias?.Dispose();
            _castInput?.Dispose();
            (_weight, _bias, _castWeight, _castBias, _castInput) = (null, null, null, null, null);
        }

        public void Detach()
        {
            Restore();
            _pre.remove();
            _post.remove();
        }
    }
}
