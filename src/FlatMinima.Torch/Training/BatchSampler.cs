using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// The row indices of each training step. Without domains: a seeded shuffle per epoch cut into batches of
/// <c>batchSize</c> (a 1-row tail is dropped, it breaks BatchNorm). With domains (DomainBed's sampling): every step takes
/// <c>batchSize</c> rows from each domain, each domain cycling through its own reshuffled order, and an epoch is
/// <c>⌈N / (batchSize · domains)⌉</c> steps.
/// </summary>
internal sealed class BatchSampler : IDisposable
{
    private readonly long _count;
    private readonly int _batchSize;
    private readonly Generator _generator;
    private readonly Tensor[]? _members;
    private readonly Tensor?[] _orders;
    private readonly long[] _cursors;

    public BatchSampler(IExampleSet data, int batchSize, Generator generator)
    {
        _count = data.Count;
        _batchSize = batchSize;
        _generator = generator;
        if (data.Domains is Tensor domains)
        {
            using var scope = NewDisposeScope();
            var ids = domains.unique().output.data<long>().ToArray();
            _members = ids.Select(id => nonzero(domains.eq(id)).flatten().DetachFromDisposeScope()).ToArray();
        }
        int d = _members?.Length ?? 0;
        _orders = new Tensor?[d];
        _cursors = new long[d];
        StepsPerEpoch = (int)((_count + (long)batchSize * Math.Max(1, d) - 1) / ((long)batchSize * Math.Max(1, d)));
    }

    /// <summary>Optimizer steps per epoch.</summary>
    public int StepsPerEpoch { get; }

    /// <summary>The batches of one epoch (index tensors, created in the caller's dispose scope).</summary>
    public IEnumerable<Tensor> Epoch()
    {
        if (_members is null)
        {
            var order = randperm(_count, generator: _generator);
            for (int b = 0; b < StepsPerEpoch; b++)
            {
                long start = (long)b * _batchSize, size = Math.Min(_batchSize, _count - start);
                if (size < 2 && b > 0) yield break;
                yield return order.narrow(0, start, size);
            }
            yield break;
        }
        for (int b = 0; b < StepsPerEpoch; b++) yield return DomainBatch();
    }

    private Tensor DomainBatch()
    {
        var parts = new Tensor[_members!.Length];
        for (int d = 0; d < parts.Length; d++)
        {
            long size = _members[d].shape[0], take = Math.Min(_batchSize, size);
            if (_orders[d] is null || _cursors[d] + take > size)
            {
                _orders[d]?.Dispose();
                using (var scope = NewDisposeScope())
                    _orders[d] = _members[d].index_select(0, randperm(size, generator: _generator)).DetachFromDisposeScope();
                _cursors[d] = 0;
            }
            parts[d] = _orders[d]!.narrow(0, _cursors[d], take);
            _cursors[d] += take;
        }
        return cat(parts, 0);
    }

    /// <summary>Writes the per-domain orders and cursors (the shuffles already drawn); nothing without domains.</summary>
    public void Save(System.IO.BinaryWriter writer)
    {
        writer.Write(_orders.Length);
        for (int d = 0; d < _orders.Length; d++)
        {
            var order = _orders[d] is Tensor o ? o.data<long>().ToArray() : Array.Empty<long>();
            writer.Write(order.Length);
            foreach (long i in order) writer.Write(i);
            writer.Write(_cursors[d]);
        }
    }

    /// <summary>Reads a state written by <see cref="Save"/> for the same data.</summary>
    public void Load(System.IO.BinaryReader reader)
    {
        int domains = reader.ReadInt32();
        if (domains != _orders.Length)
            throw new System.IO.InvalidDataException($"The checkpoint's sampler has {domains} domains; this data has {_orders.Length}.");
        for (int d = 0; d < domains; d++)
        {
            int length = CheckpointFile.ReadCount(reader, sizeof(long), $"the sampler's order of domain {d}");
            long members = _members![d].shape[0];
            if (length != 0 && length != members)
                throw new System.IO.InvalidDataException($"The checkpoint's sampler orders {length} rows of domain {d}; this data has {members}.");
            var order = new long[length];
            for (int i = 0; i < order.Length; i++)
            {
                order[i] = reader.ReadInt64();
                if ((ulong)order[i] >= (ulong)_count)
                    throw new System.IO.InvalidDataException($"The checkpoint's sampler holds row {order[i]}; this data has {_count} rows.");
            }
            _orders[d]?.Dispose();
            _orders[d] = order.Length == 0 ? null : tensor(order).DetachFromDisposeScope();
            _cursors[d] = reader.ReadInt64();
            if (_cursors[d] < 0 || _cursors[d] > length)
                throw new System.IO.InvalidDataException($"The checkpoint's sampler cursor {_cursors[d]} of domain {d} is outside its {length} rows.");
        }
    }

    public void Dispose()
    {
        foreach (var t in _orders) t?.Dispose();
        if (_members is not null) foreach (var t in _members) t.Dispose();
    }
}
