using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Vmi.Dump.Tests;

/// <summary>
/// Writes kdump-compressed dumps as makedumpfile's diskdump format describes them (header, sub-header with
/// VMCOREINFO and ELF notes, two bitmaps, page descriptors, page data), flat or in the flattened format.
/// Test-side: QEMU's real kdump-zlib output is tested separately; this builder lets the tests reach
/// corners QEMU does not write (LZO flags, version 6 fields, out-of-order flattened records).
/// </summary>
internal static class KdumpBuilder
{
    public static byte[] Build(IReadOnlyList<(ulong Pfn, byte[] Page)> pages, ulong maxMapnr, byte[] notes, string? vmcoreinfo, uint forceFlags = 0, int version = 6)
    {
        const int block = 4096;
        byte[] vi = vmcoreinfo is null ? [] : Encoding.UTF8.GetBytes(vmcoreinfo);
        int subBlocks = 1 + ((vi.Length + notes.Length + block - 1) / block);
        int mapBytes = (int)((maxMapnr + 7) / 8);
        int bitmapBlocks = 2 * ((mapBytes + block - 1) / block);
        long descOffset = (long)(1 + subBlocks + bitmapBlocks) * block;
        long dataOffset = descOffset + (pages.Count * 24L);

        var data = new MemoryStream();
        var descs = new byte[pages.Count * 24];
        byte[] bitmap = new byte[bitmapBlocks * block / 2];
        for (int i = 0; i < pages.Count; i++)
        {
            (ulong pfn, byte[] page) = pages[i];
            bitmap[pfn / 8] |= (byte)(1 << (int)(pfn % 8));
            byte[] stored = page;
            uint flags = 0;
            if (forceFlags != 0)
            {
                flags = forceFlags;
            }
            else
            {
                var z = new MemoryStream();
                using (var zs = new ZLibStream(z, CompressionLevel.Fastest, leaveOpen: true))
                {
                    zs.Write(page);
                }

                if (z.Length < page.Length)
                {
                    stored = z.ToArray();
                    flags = 1;
                }
            }

            BinaryPrimitives.WriteInt64LittleEndian(descs.AsSpan(i * 24), dataOffset + data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(descs.AsSpan((i * 24) + 8), (uint)stored.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(descs.AsSpan((i * 24) + 12), flags);
            data.Write(stored);
        }

        byte[] file = new byte[dataOffset + data.Length];
        Span<byte> h = file;
        "KDUMP   "u8.CopyTo(h);
        BinaryPrimitives.WriteInt32LittleEndian(h[8..], version);
        "Linux"u8.CopyTo(h[12..]);
        BinaryPrimitives.WriteInt32LittleEndian(h[428..], block);
        BinaryPrimitives.WriteInt32LittleEndian(h[432..], subBlocks);
        BinaryPrimitives.WriteUInt32LittleEndian(h[436..], (uint)bitmapBlocks);
        BinaryPrimitives.WriteUInt32LittleEndian(h[440..], (uint)Math.Min(maxMapnr, uint.MaxValue));
        BinaryPrimitives.WriteInt32LittleEndian(h[460..], 1);
        Span<byte> sub = h[block..];
        long viOffset = 2L * block;
        if (vi.Length > 0)
        {
            BinaryPrimitives.WriteInt64LittleEndian(sub[32..], viOffset);
            BinaryPrimitives.WriteInt64LittleEndian(sub[40..], vi.Length);
            vi.CopyTo(file.AsSpan((int)viOffset));
        }

        if (notes.Length > 0)
        {
            BinaryPrimitives.WriteInt64LittleEndian(sub[48..], viOffset + vi.Length);
            BinaryPrimitives.WriteInt64LittleEndian(sub[56..], notes.Length);
            notes.CopyTo(file.AsSpan((int)viOffset + vi.Length));
        }

        BinaryPrimitives.WriteUInt64LittleEndian(sub[96..], maxMapnr);
        long bitmapOffset = (long)(1 + subBlocks) * block;
        bitmap.CopyTo(file.AsSpan((int)bitmapOffset)); // bitmap 1 (valid pages)
        bitmap.CopyTo(file.AsSpan((int)(bitmapOffset + bitmap.Length))); // bitmap 2 (dumped pages)
        descs.CopyTo(file.AsSpan((int)descOffset));
        data.ToArray().CopyTo(file.AsSpan((int)dataOffset));
        return file;
    }

    /// <summary>The flattened format: a 4096-byte header, then big-endian (offset, size) records, written in reverse order.</summary>
    public static byte[] Flatten(byte[] flat, int chunk = 8192)
    {
        var s = new MemoryStream();
        byte[] header = new byte[4096];
        "makedumpfile"u8.CopyTo(header);
        BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(16), 1);
        BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(24), 1);
        s.Write(header);
        Span<byte> r = stackalloc byte[16];
        for (long off = ((flat.Length - 1) / chunk) * (long)chunk; off >= 0; off -= chunk)
        {
            int n = (int)Math.Min(chunk, flat.Length - off);
            BinaryPrimitives.WriteInt64BigEndian(r, off);
            BinaryPrimitives.WriteInt64BigEndian(r[8..], n);
            s.Write(r);
            s.Write(flat, (int)off, n);
        }

        BinaryPrimitives.WriteInt64BigEndian(r, -1);
        BinaryPrimitives.WriteInt64BigEndian(r[8..], -1);
        s.Write(r);
        return s.ToArray();
    }
}
