using System;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace AlexNet.Aot;

/// <summary>Work run by every member of a <see cref="ThreadTeam"/> at once (SPMD, as an OpenMP parallel region).</summary>
public interface IParallelBody
{
    /// <summary>Does this member's share; <paramref name="worker"/> is 0 for the calling thread.</summary>
    void Work(int worker, int workers);
}

/// <summary>
/// A persistent team of threads for one session: the caller is member 0, the others are background threads
/// that wait between calls. <see cref="Run"/> and <see cref="Barrier"/> allocate nothing.
/// </summary>
public sealed class ThreadTeam : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim[] _start;
    private IParallelBody? _body;
    private int _pending;
    private int _arrived;
    private int _generation;
    private volatile bool _stopping;
    private ExceptionDispatchInfo? _failure;

    /// <summary>Starts <paramref name="size"/> - 1 background threads.</summary>
    public ThreadTeam(int size)
    {
        if (size < 1 || size > 256) throw new ArgumentOutOfRangeException(nameof(size), size, "a team has 1 to 256 members");
        Size = size;
        _threads = new Thread[size - 1];
        _start = new SemaphoreSlim[size - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _start[i] = new SemaphoreSlim(0);
            int worker = i + 1;
            _threads[i] = new Thread(() => Loop(worker)) { IsBackground = true, Name = "AlexNet.Aot worker " + worker };
            _threads[i].Start();
        }
    }

    private long _workerAllocatedBytes;

    /// <summary>Bytes the background members have allocated while running bodies (for the zero-allocation tests:
    /// the caller's own allocations show in <see cref="GC.GetAllocatedBytesForCurrentThread"/>).</summary>
    internal long WorkerAllocatedBytes => Volatile.Read(ref _workerAllocatedBytes);

    /// <summary>The number of members, the caller included.</summary>
    public int Size { get; }

    /// <summary>The number of threads to use when none is given: the machine's processors.</summary>
    public static int DefaultSize => Math.Clamp(Environment.ProcessorCount, 1, 64);

    /// <summary>Runs <paramref name="body"/> on every member and returns when all are done; rethrows a member's exception.</summary>
    public void Run(IParallelBody body)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        _body = body;
        _failure = null;
        Volatile.Write(ref _pending, _threads.Length);
        for (int i = 0; i < _start.Length; i++) _start[i].Release();
        try
        {
            body.Work(0, Size);
        }
        catch (Exception e)
        {
            _failure ??= ExceptionDispatchInfo.Capture(e);
        }
        // Spin (then yield) until the others are done: the members finish together at the last barrier, and a blocking
        // wait would allocate its lock object on this thread the first time it blocks.
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
        _body = null;
        _failure?.Throw();
    }

    /// <summary>Waits until every member has reached this barrier (spinning, then yielding).</summary>
    public void Barrier()
    {
        if (Size == 1) return;
        int gen = Volatile.Read(ref _generation);
        if (Interlocked.Increment(ref _arrived) == Size)
        {
            Volatile.Write(ref _arrived, 0);
            Interlocked.Increment(ref _generation);
            return;
        }
        var spin = new SpinWait();
        while (Volatile.Read(ref _generation) == gen) spin.SpinOnce(sleep1Threshold: -1);
    }

    private void Loop(int worker)
    {
        SemaphoreSlim start = _start[worker - 1];
        while (true)
        {
            start.Wait();
            if (_stopping) return;
            try
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                _body!.Work(worker, Size);
                Interlocked.Add(ref _workerAllocatedBytes, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
            }
            Interlocked.Decrement(ref _pending);
        }
    }

    /// <summary>Stops the background threads.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        foreach (SemaphoreSlim s in _start) s.Release();
        foreach (Thread t in _threads) t.Join();
        foreach (SemaphoreSlim s in _start) s.Dispose();
    }
}
