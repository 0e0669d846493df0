using Microsoft.Win32.SafeHandles;
using Vmi.Core;

namespace Vmi.Dump;

/// <summary>
/// An image file read with positioned reads (pread), never memory-mapped. A mapping would hand out pointers into
/// the file, and a file that shrinks under an open session (truncated by another program, replaced in place, a
/// removed disk, a failing network share) turns the next touch of such a pointer into SIGBUS, which .NET cannot
/// catch: the process dies and no session is restored. A read cannot fault: a short read or an I/O error becomes a
/// <see cref="ImageChangedException"/> that names the file. The cost is one copy per page-cache miss (see
/// docs/performance.md); pages handed out are copies, so pages already cached stay valid whatever happens to the file.
/// </summary>
internal sealed partial class ImageFile : IDisposable
{
    private const int SeekData = 3;

    private readonly SafeFileHandle _handle;

    public ImageFile(string path)
    {
        Path = path;
        if (Directory.Exists(path))
        {
            throw new VmiFormatException("it is a directory, not a memory image.", path);
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"The memory image '{path}' does not exist.", path);
        }

        try
        {
            _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            Length = RandomAccess.GetLength(_handle);
            if (!Fstat(out _, out _mtimeSec, out _mtimeNsec))
            {
                throw new IOException("fstat failed on the open file.");
            }
        }
        catch (IOException e)
        {
            throw new VmiDriverException($"Cannot open the memory image '{path}': {e.Message}", e.HResult, e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new VmiDriverException($"Cannot read the memory image '{path}': {e.Message} Check the file's permissions.", e.HResult, e);
        }

        if (Length == 0)
        {
            _handle.Dispose();
            throw new VmiFormatException("the file is empty: it is not a memory image.", path, 0);
        }

        Advisor = new StreamAdvisor(Advise);
    }

    /// <summary>Advises the kernel on the pages of long sequential streams of reads (see <see cref="StreamAdvisor"/>).</summary>
    public StreamAdvisor Advisor { get; }

    /// <summary>Called after each piece of advice is given (tests observe the advice here).</summary>
    public Action<FileAdvice, long, long>? AdviceObserver { get; set; }

    private void Advise(FileAdvice advice, long offset, long length)
    {
        _ = Fadvise(_handle, offset, length, (int)advice); // a hint: failure (a file system that ignores it) changes nothing
        AdviceObserver?.Invoke(advice, offset, length);
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int Fadvise(SafeFileHandle fd, long offset, long length, int advice);

    public string Path { get; }

    /// <summary>The length of the file when it was opened; every range is checked against it.</summary>
    public long Length { get; }

    /// <summary>Bytes [offset, offset+length) of the file (a copy); a range outside the file is a format error naming the offset.</summary>
    public ReadOnlySpan<byte> Span(long offset, long length, string what)
    {
        Check(offset, length, what);
        byte[] buffer = new byte[length];
        Read(offset, buffer, what);
        return buffer;
    }

    /// <summary>Fills <paramref name="destination"/> from <paramref name="offset"/>; a range outside the file is a format error.</summary>
    public void Read(long offset, Span<byte> destination, string what)
    {
        Check(offset, destination.Length, what);
        int done = 0;
        try
        {
            while (done < destination.Length)
            {
                int n = RandomAccess.Read(_handle, destination[done..], offset + done);
                if (n == 0)
                {
                    throw Changed(offset + done, what, null);
                }

                done += n;
            }
        }
        catch (IOException e)
        {
            throw Changed(offset + done, what, e);
        }

        Advisor.Observe(offset, destination.Length);
    }

    /// <summary>
    /// A guard for data read long after opening (pages): the file must still have its length and modification time.
    /// One fstat(2); a file rewritten in place (same length, other bytes) is caught by its modification time.
    /// </summary>
    public void CheckUnchanged(long offset, string what)
    {
        if (!Fstat(out long length, out long mtimeSec, out long mtimeNsec))
        {
            throw Changed(offset, what, new IOException($"fstat failed: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(System.Runtime.InteropServices.Marshal.GetLastPInvokeError())}"));
        }

        if (length < Length || mtimeSec != _mtimeSec || mtimeNsec != _mtimeNsec)
        {
            throw Changed(offset, what, null);
        }
    }

    private readonly long _mtimeSec;
    private readonly long _mtimeNsec;

    /// <summary>st_size and st_mtim from fstat(2): offsets 48 and 88 in struct stat on both x86-64 and arm64 Linux.</summary>
    private unsafe bool Fstat(out long size, out long mtimeSec, out long mtimeNsec)
    {
        byte* buffer = stackalloc byte[256];
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            if (FstatNative((int)_handle.DangerousGetHandle(), buffer) != 0)
            {
                size = mtimeSec = mtimeNsec = 0;
                return false;
            }
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }

        size = *(long*)(buffer + 48);
        mtimeSec = *(long*)(buffer + 88);
        mtimeNsec = *(long*)(buffer + 96);
        return true;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static unsafe partial int FstatNative(int fd, byte* buffer);

    private void Check(long offset, long length, string what)
    {
        if (offset < 0 || length < 0 || length > Array.MaxLength || offset > Length || length > Length - offset)
        {
            throw new VmiFormatException($"{what} ({length} bytes) runs past the end of the file ({Length} bytes): the file is truncated or the header is corrupt.", Path, offset);
        }
    }

    private ImageChangedException Changed(long offset, string what, IOException? cause)
    {
        long now = -1;
        try
        {
            now = RandomAccess.GetLength(_handle);
        }
        catch (IOException)
        {
        }

        return new ImageChangedException(Path, offset, what, Length, now, cause);
    }

    /// <summary>
    /// The first offset at or after <paramref name="offset"/> that the file system stores data for (lseek SEEK_DATA):
    /// everything before it is a hole and reads as zeros. <see cref="Length"/> when only holes follow; the offset
    /// itself when the file system cannot say.
    /// </summary>
    public long NextData(long offset)
    {
        long at = Lseek(_handle, offset, SeekData);
        if (at >= 0)
        {
            return Math.Max(offset, Math.Min(at, Length));
        }

        return System.Runtime.InteropServices.Marshal.GetLastPInvokeError() == 6 /* ENXIO: no data after offset */ ? Length : offset;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long Lseek(SafeFileHandle fd, long offset, int whence);

    public bool Contains(long offset, long length) => offset >= 0 && length >= 0 && offset <= Length && length <= Length - offset;

    public void Dispose() => _handle.Dispose();
}

/// <summary>
/// The image file changed (shrank, was rewritten in place, or its device failed) after it was opened: what was read
/// before stays valid, what is read now cannot be trusted. Names the file and what happened.
/// </summary>
public sealed class ImageChangedException : VmiDriverException
{
    public ImageChangedException(string path, long offset, string what, long lengthAtOpen, long lengthNow, IOException? cause)
        : base(Describe(path, offset, what, lengthAtOpen, lengthNow, cause), cause?.HResult ?? 0, cause)
    {
        Path = path;
    }

    public string Path { get; }

    private static string Describe(string path, long offset, string what, long lengthAtOpen, long lengthNow, IOException? cause) =>
        cause is not null
            ? $"The memory image '{path}' cannot be read any more ({what} at offset 0x{offset:x}): {cause.Message} The file or its device failed after it was opened; reconnect once it is readable again."
            : lengthNow >= 0 && lengthNow < lengthAtOpen
                ? $"The memory image '{path}' changed after it was opened: it is now {lengthNow} bytes, was {lengthAtOpen}, so {what} at offset 0x{offset:x} is gone. Another program truncated or replaced it; reconnect to the file as it is now."
                : $"The memory image '{path}' changed after it was opened (it was modified in place), so {what} at offset 0x{offset:x} cannot be trusted. Reconnect to the file as it is now.";
}

/// <summary>A page assembled, read or decompressed into a pooled native buffer, returned to the pool on dispose.</summary>
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
