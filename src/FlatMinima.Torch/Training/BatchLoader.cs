using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using static TorchSharp.torch;

namespace FlatMinima.Torch.Training;

/// <summary>
/// Loads the inputs of a sequence of index batches, in order. Sets held in memory are sliced on the caller's thread;
/// for other sets (<see cref="LazyExampleSet"/>) <see cref="IExampleSet.PrepareInputs"/> (reading, decoding) runs up to
/// <c>prefetch</c> batches ahead on <c>workers</c> background threads, so it overlaps with the training step, and
/// <see cref="IExampleSet.AssembleInputs"/> (the tensor operations) on the caller's thread when the batch is taken. The batches and their contents do not depend on the number of
/// workers: each batch is a pure function of its rows and batches are handed out in the order of the index sequence,
/// which the caller enumerates on its own thread (its random draws happen there, in order).
/// </summary>
internal static class BatchLoader
{
    /// <summary>
    /// Yields each index batch of <paramref name="batches"/> with its inputs (the caller disposes the inputs; the index
    /// tensors stay the enumerator's). At most <paramref name="prefetch"/> batches are prepared or waiting at any time, so
    /// memory is bounded by batch size × <paramref name="prefetch"/>. Breaking out of the enumeration stops the workers
    /// and disposes what they loaded ahead; a loader exception is rethrown when its batch is reached.
    /// </summary>
    public static IEnumerable<(Tensor Rows, Tensor Inputs)> Load(IExampleSet source, IEnumerable<Tensor> batches, int workers, int prefetch)
    {
        if (source.IsInMemory || workers <= 0)
        {
            foreach (var rows in batches) yield return (rows, source.LoadInputs(rows));
            yield break;
        }
        using var jobs = new BlockingCollection<Job>();
        using var cancel = new CancellationTokenSource();
        var threads = Enumerable.Range(0, workers).Select(i => new Thread(() => Work(source, jobs, cancel.Token))
        {
            IsBackground = true,
            Name = $"FlatMinima batch loader {i + 1}",
        }).ToArray();
        foreach (var thread in threads) thread.Start();
        var pending = new Queue<Job>();
        using var enumerator = batches.GetEnumerator();
        try
        {
            while (true)
            {
                while (pending.Count < Math.Max(1, prefetch) && enumerator.MoveNext())
                {
                    var job = new Job(enumerator.Current, enumerator.Current.data<long>().ToArray());
                    pending.Enqueue(job);
                    jobs.Add(job);
                }
                if (pending.Count == 0) yield break;
                var next = pending.Dequeue();
                yield return (next.Rows, source.AssembleInputs(next.Indices, next.Result.GetAwaiter().GetResult()));
            }
        }
        finally
        {
            cancel.Cancel();
            jobs.CompleteAdding();
            foreach (var thread in threads) thread.Join();
            foreach (var job in pending) job.DisposeResult();
        }
    }

    private static void Work(IExampleSet source, BlockingCollection<Job> jobs, CancellationToken cancel)
    {
        foreach (var job in jobs.GetConsumingEnumerable())
        {
            if (cancel.IsCancellationRequested)
            {
                job.Cancel();
                continue;
            }
            try
            {
                job.Complete(source.PrepareInputs(job.Indices));
            }
            catch (Exception e)
            {
                job.Fail(e);
            }
        }
    }

    private sealed class Job(Tensor rows, long[] indices)
    {
        private readonly TaskCompletionSource<object?> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Tensor Rows { get; } = rows;

        public long[] Indices { get; } = indices;

        public Task<object?> Result => _result.Task;

        public void Complete(object? prepared) => _result.SetResult(prepared);

        public void Fail(Exception e) => _result.SetException(e);

        public void Cancel() => _result.TrySetCanceled();

        // Disposes what a job the caller will not take prepared (the workers have stopped).
        public void DisposeResult()
        {
            if (_result.Task.IsCompletedSuccessfully) (_result.Task.Result as IDisposable)?.Dispose();
        }
    }
}
