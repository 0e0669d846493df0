using System.Buffers.Binary;
using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump.Tests;

/// <summary>
/// Writes a Xen <c>xl dump-core</c> ELF from Xen's public headers (no Xen host here): sections .shstrtab,
/// .note.Xen (header note), .xen_prstatus (vcpu_guest_context per vCPU), .xen_pfn or .xen_p2m, .xen_pages.
/// Test-side only: it lets the reader be cross-checked against the raw/ELF views of the same real memory.
/// </summary>
internal static class XenCoreBuilder
{
    public static void Write(string path, IReadOnlyList<(ulong Pfn, byte[] Page)> pages, IReadOnlyList<Registers> vcpus, bool p2m = false, ulong magic = 0xF00FEBEE)
    {
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
        Write(f, pages.Count, i => pages[i], vcpus, p2m, magic);
    }

    public static void Write(Stream f, int count, Func<int, (ulong Pfn, byte[] Page)> page, IReadOnlyList<Registers> vcpus, bool p2m = false, ulong magic = 0xF00FEBEE)
    {
        string[] names = ["", ".shstrtab", ".note.Xen", ".xen_prstatus", p2m ? ".xen_p2m" : ".xen_pfn", ".xen_pages"];
        var strtab = new MemoryStream();
        var nameOffsets = new List<uint>();
        foreach (string n in names)
        {
            nameOffsets.Add((uint)strtab.Length);
            strtab.Write(Encoding.ASCII.GetBytes(n + "\0"));
        }

        var note = new MemoryStream();
        byte[] header = new byte[32];
        BinaryPrimitives.WriteUInt64LittleEndian(header, magic);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), (ulong)vcpus.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(16), (ulong)count);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(24), Amd64.PageSize);
        ImageWriter.AddNote(note, "Xen", 0x2000001, header);
        byte[] version = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(version, 1);
        ImageWriter.AddNote(note, "Xen", 0x2000003, version);

        byte[] prstatus = new byte[vcpus.Count * XenCoreParser.ContextSize];
        for (int v = 0; v < vcpus.Count; v++)
        {
            Context(vcpus[v]).CopyTo(prstatus.AsSpan(v * XenCoreParser.ContextSize));
        }

        int entry = p2m ? 16 : 8;
        byte[] map = new byte[count * entry];
        for (int i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(map.AsSpan(i * entry), page(i).Pfn);
            if (p2m)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(map.AsSpan((i * entry) + 8), page(i).Pfn + 0x100000);
            }
        }

        long off = 64;
        long strOff = off; off += strtab.Length;
        long noteOff = off; off += note.Length;
        long prOff = off; off += prstatus.Length;
        long mapOff = off; off += map.Length;
        long pagesOff = (off + 4095) & ~4095L;
        long shOff = pagesOff + ((long)count * 4096);

        byte[] eh = new byte[64];
        eh[0] = 0x7f; eh[1] = (byte)'E'; eh[2] = (byte)'L'; eh[3] = (byte)'F'; eh[4] = 2; eh[5] = 1; eh[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(16), 4);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(18), 62);
        BinaryPrimitives.WriteUInt32LittleEndian(eh.AsSpan(20), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(eh.AsSpan(40), (ulong)shOff);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(52), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(54), 56);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(58), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(60), (ushort)names.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(eh.AsSpan(62), 1);
        f.Write(eh);
        f.Write(strtab.ToArray());
        f.Write(note.ToArray());
        f.Write(prstatus);
        f.Write(map);
        f.Write(new byte[pagesOff - off]);
        for (int i = 0; i < count; i++)
        {
            f.Write(page(i).Page);
        }

        (long Off, long Size, uint Type)[] sections =
        [
            (0, 0, 0), (strOff, strtab.Length, 3), (noteOff, note.Length, 7), (prOff, prstatus.Length, 1),
            (mapOff, map.Length, 1), (pagesOff, (long)count * 4096, 1),
        ];
        for (int i = 0; i < sections.Length; i++)
        {
            byte[] sh = new byte[64];
            BinaryPrimitives.WriteUInt32LittleEndian(sh, nameOffsets[i]);
            BinaryPrimitives.WriteUInt32LittleEndian(sh.AsSpan(4), sections[i].Type);
            BinaryPrimitives.WriteUInt64LittleEndian(sh.AsSpan(24), (ulong)sections[i].Off);
            BinaryPrimitives.WriteUInt64LittleEndian(sh.AsSpan(32), (ulong)sections[i].Size);
            f.Write(sh);
        }
    }

    /// <summary>vcpu_guest_context (x86-64) with user_regs, ctrlreg and gs_base_kernel filled.</summary>
    public static byte[] Context(Registers r)
    {
        byte[] c = new byte[XenCoreParser.ContextSize];
        Span<byte> u = c.AsSpan(XenCoreParser.UserRegsOffset);
        ulong[] gprs = [r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10, r.R9, r.R8, r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi];
        for (int i = 0; i < gprs.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(u[(i * 8)..], gprs[i]);
        }

        BinaryPrimitives.WriteUInt64LittleEndian(u[128..], r.Rip);
        BinaryPrimitives.WriteUInt16LittleEndian(u[136..], r.Cs.Selector);
        BinaryPrimitives.WriteUInt64LittleEndian(u[144..], r.Rflags);
        BinaryPrimitives.WriteUInt64LittleEndian(u[152..], r.Rsp);
        BinaryPrimitives.WriteUInt16LittleEndian(u[160..], r.Ss.Selector);
        BinaryPrimitives.WriteUInt64LittleEndian(c.AsSpan(XenCoreParser.CtrlRegOffset), r.Cr0);
        BinaryPrimitives.WriteUInt64LittleEndian(c.AsSpan(XenCoreParser.CtrlRegOffset + 16), r.Cr2);
        BinaryPrimitives.WriteUInt64LittleEndian(c.AsSpan(XenCoreParser.CtrlRegOffset + 24), r.Cr3);
        BinaryPrimitives.WriteUInt64LittleEndian(c.AsSpan(XenCoreParser.CtrlRegOffset + 32), r.Cr4);
        BinaryPrimitives.WriteUInt64LittleEndian(c.AsSpan(XenCoreParser.GsBaseKernelOffset), r.ShadowGs);
        return c;
    }
}
