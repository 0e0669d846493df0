using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;
using Vmi.Core;

namespace Vmi.Dump;

/// <summary>
/// A whole image file mapped read-only into the address space once. Pages handed out are views
/// into this one mapping (no copy); every bounds-checked access names the file and the offset.
/// </summary>
internal sealed unsafe class MappedImageFile : IDisposable
{
    private readonly MemoryMappedFile? _file;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly SafeMemoryMappedViewHandle? _handle;
    private byte* _base;

    public MappedImageFile(string path)
    {
        Path = path;
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"The memory image '{path}' does not exist.", path);
        }

        Length = info.Length;
        if (Length == 0)
        {
            throw new VmiFormatException("the file is empty: it is not a memory image.", path, 0);
        }

        bool ok = false;
        try
        {
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            {
                _file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            }

            _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            _handle = _view.SafeMemoryMappedViewHandle;
            byte* p = null;
            _handle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
            ok = true;
        }
        catch (IOException e)
        {
            throw new VmiDriverException($"Cannot map the memory image '{path}': {e.Message}", e.HResult, e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new VmiDriverException($"Cannot read the memory image '{path}': {e.Message} Check the file's permissions.", e.HResult, e);
        }
        finally
        {
            if (!ok)
            {
                Unmap();
            }
        }
    }

    public string Path { get; }

    public long Length { get; }

    public byte* Base
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return _base;
        }
    }

    /// <summary>Bytes [offset, offset+length) of the file; a range outside the file is a format error naming the offset.</summary>
    public ReadOnlySpan<byte> Span(long offset, long length, string what)
    {
        if (offset < 0 || length < 0 || length > int.MaxValue || offset > Length || length > Length - offset)
        {
            throw new VmiFormatException($"{what} ({length} bytes) runs past the end of the file ({Length} bytes): the file is truncated or the header is corrupt.", Path, offset);
        }

        return new ReadOnlySpan<byte>(Base + offset, (int)length);
    }

    public bool Contains(long offset, long length) => offset >= 0 && length >= 0 && offset <= Length && length <= Length - offset;

    private int _references = 1;

    /// <summary>A page handed out keeps the mapping alive until it is disposed, even after the image is.</summary>
    public void AddRef() => Interlocked.Increment(ref _references);

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            Unmap();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Release();
        }
    }

    private int _disposed;

    private void Unmap()
    {
        if (_base != null)
        {
            _handle?.ReleasePointer();
            _base = null;
        }

        _view?.Dispose();
        _file?.Dispose();
    }
}

/// <summary>A page that is a view into a mapped image: no copy. The mapping outlives it (the image owns it).</summary>
internal sealed unsafe class ImagePage : MappedPage
{
    private readonly MappedImageFile _file;

    public ImagePage(Gfn gfn, MappedImageFile file, long offset, int length)
        : base(gfn, file.Base + offset, length)
    {
        _file = file;
        file.AddRef();
    }

    public override bool IsLive => false;

    protected override void Release(byte* pointer, int length) => _file.Release();
}

/// <summary>A page assembled or decompressed into a pooled native buffer, returned to the pool on dispose.</summary>
internal sealed unsafe class PooledPage : MappedPage
{
    private readonly PagePool _pool;

    public PooledPage(Gfn gfn, PagePool pool, byte* buffer)
        : base(gfn, buffer, pool.PageSize)
    {
        _pool = pool;
    }

    public override bool IsLive => false;

    protected override void Release(byte* pointer, int length) => _pool.Return(pointer);
}

/// <summary>A bounded pool of page-sized native buffers (for decompressed and assembled pages).</summary>
internal sealed unsafe class PagePool(int pageSize, int maxPooled = 1024) : IDisposable
{
    private readonly Stack<nint> _free = new();
    private bool _disposed;

    public int PageSize { get; } = pageSize;

    public byte* Rent()
    {
        lock (_free)
        {
            if (_free.TryPop(out nint p))
            {
                return (byte*)p;
            }
        }

        return (byte*)System.Runtime.InteropServices.NativeMemory.Alloc((nuint)PageSize);
    }

    public void Return(byte* p)
    {
        lock (_free)
        {
            if (!_disposed && _free.Count < maxPooled)
            {
                _free.Push((nint)p);
                return;
            }
        }

        System.Runtime.InteropServices.NativeMemory.Free(p);
    }

    public void Dispose()
    {
        lock (_free)
        {
            _disposed = true;
            while (_free.TryPop(out nint p))
            {
                System.Runtime.InteropServices.NativeMemory.Free((void*)p);
            }
        }
    }
}
