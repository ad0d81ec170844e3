using System;
using System.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Models;

/// <summary>Independent copies of a network: a new instance of the same architecture holding the source's parameters and buffers.</summary>
internal static class NetworkCopy
{
    /// <summary>
    /// A network from <paramref name="create"/> (the same architecture as <paramref name="source"/>) with
    /// <paramref name="source"/>'s state dict, read through a memory stream, on <paramref name="device"/>.
    /// <paramref name="source"/> is only read.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Create(nn.Module source, Func<nn.Module<Tensor, Tensor>> create, Device device)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(create);
        var network = create();
        try
        {
            using (var stream = new MemoryStream())
            {
                source.save(new BinaryWriter(stream));
                stream.Position = 0;
                network.load(new BinaryReader(stream));
            }
            network.to(device);
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }
}
