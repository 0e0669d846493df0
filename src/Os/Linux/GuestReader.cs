using System.Buffers.Binary;
using Vmi.Core;

namespace Vmi.Os.Linux;

/// <summary>Typed reads of kernel virtual memory under one root, built on <see cref="IGuestMemory"/>.</summary>
internal sealed class GuestReader(IGuestMemory memory, Pa root)
{
    public const int PageSize = 4096;

    public IGuestMemory Memory { get; } = memory;

    public Pa Root { get; } = root;

    public bool TryRead(ulong va, Span<byte> buffer) => Memory.Read(va, Root, buffer) == buffer.Length;

    public bool TryReadU64(ulong va, out ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        bool ok = TryRead(va, b);
        value = ok ? BinaryPrimitives.ReadUInt64LittleEndian(b) : 0;
        return ok;
    }

    public bool TryReadU32(ulong va, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        bool ok = TryRead(va, b);
        value = ok ? BinaryPrimitives.ReadUInt32LittleEndian(b) : 0;
        return ok;
    }

    /// <summary>Reads <paramref name="length"/> bytes; pages that cannot be read are left zero. Returns how many bytes were read from memory.</summary>
    public long ReadZeroFill(ulong va, Span<byte> buffer)
    {
        long got = 0;
        int done = 0;
        while (done < buffer.Length)
        {
            int n = Memory.Read(va + (ulong)done, Root, buffer[done..]);
            got += n;
            done += n;
            if (done >= buffer.Length)
            {
                break;
            }

            // skip what the failed walk proves unmapped (at least the page that faulted)
            ulong at = va + (ulong)done;
            ulong extent = Math.Max(Memory.UnmappedExtent(at, Root), PageSize);
            int skip = (int)Math.Min((ulong)(buffer.Length - done), extent - (at & (extent - 1)));
            buffer.Slice(done, skip).Clear();
            done += skip;
        }

        return got;
    }

    public bool IsMapped(ulong va) => Memory.TryTranslate(va, Root, out _);

    /// <summary>A NUL-terminated string of at most <paramref name="limit"/> bytes (a missing terminator ends it at the limit).</summary>
    public string? ReadCString(ulong va, int limit)
    {
        byte[] buffer = new byte[limit];
        int n = Memory.Read(va, Root, buffer);
        if (n == 0)
        {
            return null;
        }

        return Text.CString(buffer.AsSpan(0, n));
    }
}

internal static class Text
{
    /// <summary>Bytes up to the first NUL (or all of them), as UTF-8 (what the kernel prints).</summary>
    public static string CString(ReadOnlySpan<byte> bytes)
    {
        int end = bytes.IndexOf((byte)0);
        if (end >= 0)
        {
            bytes = bytes[..end];
        }

        return System.Text.Encoding.UTF8.GetString(bytes);
    }
}
