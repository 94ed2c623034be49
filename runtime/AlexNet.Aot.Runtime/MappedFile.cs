using System;
using System.Buffers;
using System.IO;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace AlexNet.Aot;

/// <summary>
/// A whole file mapped read-only into memory, kept mapped for as long as any <see cref="Memory{T}"/> made from it is
/// reachable: each <see cref="Range{T}"/> holds a reference to this object, which holds the view; when the last one
/// is collected the view's own safe handle unmaps it. An owner that knows no range outlives its use (the ONNX reader,
/// once it has parsed the file) unmaps it at once with <see cref="Dispose"/>. Nothing ever writes through the view.
/// </summary>
/// <remarks>
/// The pages are the operating system's page cache: untouched pages cost nothing, and every process mapping the same
/// file shares them. A file replaced by rename (as every writer of this project does) leaves the mapped copy intact;
/// a file truncated in place by another program while it is mapped makes reads of the lost pages fault, which is
/// why mapping can be turned off (<see cref="SafeTensorsFile.Load(string, bool)"/>, <c>ALEXNET_MMAP=0</c>).
/// </remarks>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;

    private MappedFile(MemoryMappedViewAccessor view, long length)
    {
        _view = view;
        Length = length;
        _base = (byte*)view.SafeMemoryMappedViewHandle.DangerousGetHandle() + view.PointerOffset;
    }

    /// <summary>The mapped length in bytes (the file's length when it was mapped).</summary>
    public long Length { get; }

    /// <summary>Whether mapping is turned on for this process: on unless the environment variable <c>ALEXNET_MMAP</c> is <c>0</c>.</summary>
    public static bool Enabled => Environment.GetEnvironmentVariable("ALEXNET_MMAP") != "0";

    /// <summary>Maps the first <paramref name="length"/> bytes of the open file <paramref name="handle"/> read-only.</summary>
    public static MappedFile Map(SafeFileHandle handle, long length)
    {
        using MemoryMappedFile file = MemoryMappedFile.CreateFromFile(handle, null, length, MemoryMappedFileAccess.Read,
            HandleInheritability.None, leaveOpen: true);
        // The view outlives the mapping object and the file handle: both may be closed once it exists.
        return new MappedFile(file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read), length);
    }

    /// <summary>Unmaps the file now; every span and memory made from it becomes invalid.</summary>
    public void Dispose() => _view.Dispose();

    /// <summary>The bytes at [<paramref name="offset"/>, +<paramref name="length"/>) as memory that keeps the mapping alive.</summary>
    public ReadOnlyMemory<byte> ByteMemory(long offset, int length)
    {
        Bytes(offset, length); // bounds
        return new Range<byte>(this, _base + offset, length).Memory;
    }

    /// <summary>The bytes at [<paramref name="offset"/>, +<paramref name="length"/>).</summary>
    public ReadOnlySpan<byte> Bytes(long offset, int length)
    {
        if ((ulong)offset > (ulong)Length || (ulong)length > (ulong)(Length - offset)) throw new ArgumentOutOfRangeException(nameof(offset));
        return new ReadOnlySpan<byte>(_base + offset, length);
    }

    /// <summary>
    /// <paramref name="count"/> float32 values at byte <paramref name="offset"/> (a multiple of 4), read in place.
    /// The memory keeps this mapping alive.
    /// </summary>
    public ReadOnlyMemory<float> Floats(long offset, int count)
    {
        if (offset % sizeof(float) != 0 || (ulong)offset > (ulong)Length || (ulong)count * sizeof(float) > (ulong)(Length - offset))
            throw new ArgumentOutOfRangeException(nameof(offset));
        return new Range<float>(this, (float*)(_base + offset), count).Memory;
    }

    /// <summary>A range of the mapping as a <see cref="MemoryManager{T}"/>: the mapping is pinned by nature, so pinning is free.</summary>
    private sealed class Range<T> : MemoryManager<T> where T : unmanaged
    {
        private readonly MappedFile _owner; // keeps the view mapped
        private readonly T* _pointer;
        private readonly int _count;

        public Range(MappedFile owner, T* pointer, int count)
        {
            _owner = owner;
            _pointer = pointer;
            _count = count;
        }

        public override Span<T> GetSpan() => new(_pointer, _count);

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            if ((uint)elementIndex > (uint)_count) throw new ArgumentOutOfRangeException(nameof(elementIndex));
            return new MemoryHandle(_pointer + elementIndex, default, this);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }

        public override string ToString() => $"{_count} {typeof(T).Name} values mapped from a file of {_owner.Length} bytes";
    }
}
