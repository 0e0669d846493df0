namespace Vmi.Core;

/// <summary>
/// One guest frame as a driver hands it out: a view on the driver's mapping (a foreign mapping,
/// a memory-mapped image, the mock's own array), not a copy wherever the driver can map.
/// The page cache owns the pages it holds and disposes them on eviction, which is when a driver
/// releases the mapping.
/// </summary>
public unsafe class MappedPage : IDisposable
{
    private readonly byte[]? _array;
    private byte* _pointer;
    private readonly int _length;
    private int _disposed;

    /// <summary>A page backed by a managed array (the array is the page; it is not copied).</summary>
    public MappedPage(Gfn gfn, byte[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        Gfn = gfn;
        _array = array;
        _length = array.Length;
    }

    /// <summary>A page backed by native memory that stays valid until <see cref="Release"/> runs.</summary>
    protected MappedPage(Gfn gfn, byte* pointer, int length)
    {
        Gfn = gfn;
        _pointer = pointer;
        _length = length;
    }

    public Gfn Gfn { get; }

    /// <summary>The mapping's address for a page backed by native memory (null for an array, or once disposed).</summary>
    internal byte* Pointer => _pointer;

    public int Length => _length;

    /// <summary>True for pages whose bytes are the live guest memory (writes by others show through).</summary>
    public virtual bool IsLive => true;

    public ReadOnlySpan<byte> Span
    {
        get
        {
            if (_array is not null)
            {
                return _array;
            }

            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return new ReadOnlySpan<byte>(_pointer, _length);
        }
    }

    /// <summary>Releases the native mapping. Called once, by <see cref="Dispose()"/>.</summary>
    protected virtual void Release(byte* pointer, int length)
    {
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        byte* p = _pointer;
        _pointer = null;
        if (p != null)
        {
            Release(p, _length);
        }

        GC.SuppressFinalize(this);
    }

    public override string ToString() => $"page {Gfn} ({_length} bytes)";
}
