using System.Buffers.Binary;
using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>
/// ELF cores: QEMU's dump-guest-memory and Linux /proc/vmcore (PT_LOAD by p_paddr, registers from the
/// notes), and Xen's <c>xl dump-core</c> (sections .xen_pages with .xen_pfn or .xen_p2m, registers in .xen_prstatus).
/// ELF64 and ELF32, little-endian, x86 only.
/// </summary>
internal static class ElfCoreParser
{
    private const uint PtLoad = 1;
    private const uint PtNote = 4;
    private const ushort EtCore = 4;
    private const ushort EmX8664 = 62;
    private const ushort Em386 = 3;
    private const ushort PnXnum = 0xFFFF;

    private readonly record struct Header(bool Is64, ulong PhOff, ulong ShOff, uint PhEntSize, uint PhNum, uint ShEntSize, uint ShNum, uint ShStrNdx);

    internal readonly record struct Section(string Name, uint Type, ulong Offset, ulong Size, long HeaderAt);

    public static ParsedImage Parse(ImageFile file)
    {
        string path = file.Path;
        Header h = ReadHeader(file);
        List<Section> sections = ReadSections(file, h);
        if (sections.Exists(s => s.Name == ".xen_pages"))
        {
            return XenCoreParser.Parse(file, h.Is64, sections);
        }

        var runs = new List<(Run, string, long)>();
        var notes = new ElfNotes.Collector(path);
        for (uint i = 0; i < h.PhNum; i++)
        {
            long at = (long)h.PhOff + (i * (long)h.PhEntSize);
            ReadOnlySpan<byte> p = file.Span(at, h.PhEntSize, $"program header {i}");
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(p);
            ulong offset, paddr, filesz, memsz;
            if (h.Is64)
            {
                offset = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                paddr = BinaryPrimitives.ReadUInt64LittleEndian(p[24..]);
                filesz = BinaryPrimitives.ReadUInt64LittleEndian(p[32..]);
                memsz = BinaryPrimitives.ReadUInt64LittleEndian(p[40..]);
            }
            else
            {
                offset = BinaryPrimitives.ReadUInt32LittleEndian(p[4..]);
                paddr = BinaryPrimitives.ReadUInt32LittleEndian(p[12..]);
                filesz = BinaryPrimitives.ReadUInt32LittleEndian(p[16..]);
                memsz = BinaryPrimitives.ReadUInt32LittleEndian(p[20..]);
            }

            if (type == PtNote)
            {
                if (!file.Contains((long)Math.Min(offset, long.MaxValue), (long)Math.Min(filesz, long.MaxValue)))
                {
                    throw new VmiFormatException($"the note segment of program header {i} (0x{filesz:x} bytes at 0x{offset:x}) runs past the end of the file ({file.Length} bytes): the image is truncated.", path, at);
                }

                ElfNotes.Walk(file.Span((long)offset, (long)filesz, "a note segment"), (long)offset, path, notes.Add);
            }
            else if (type == PtLoad)
            {
                if (memsz < filesz)
                {
                    throw new VmiFormatException($"program header {i} stores 0x{filesz:x} bytes in a segment of only 0x{memsz:x} bytes (p_filesz > p_memsz).", path, at);
                }

                if (offset > long.MaxValue || !file.Contains((long)offset, (long)Math.Min(filesz, long.MaxValue)))
                {
                    throw new VmiFormatException($"program header {i} says 0x{filesz:x} bytes of memory (physical 0x{paddr:x}) are stored at file offset 0x{offset:x}, past the end of the file ({file.Length} bytes): the image is truncated.", path, at);
                }

                if (paddr >= ImageSource.MaxPhysicalAddress || memsz > ImageSource.MaxPhysicalAddress - paddr)
                {
                    throw new VmiFormatException($"program header {i} describes physical memory 0x{paddr:x}+0x{memsz:x}, beyond the 52-bit physical address space.", path, at);
                }

                runs.Add((new Run(paddr, filesz, (long)offset), $"program header {i}", at));
                if (memsz > filesz)
                {
                    // ELF semantics: the rest of the segment reads as zeros.
                    runs.Add((new Run(paddr + filesz, memsz - filesz, -1), $"program header {i} (zero-filled tail)", at));
                }
            }
        }

        (Registers[] regs, bool hasControl, string source) = notes.Result();
        var sourceImage = new RunSource(file, runs);
        if (!hasControl)
        {
            // General-purpose registers only: no CR3, so not offered as the session's registers.
            return new ParsedImage(MemoryImageFormat.ElfCore, sourceImage, [], source, notes.Vmcoreinfo) { PartialRegisters = regs };
        }

        return new ParsedImage(MemoryImageFormat.ElfCore, sourceImage, regs, source, notes.Vmcoreinfo);
    }

    private static Header ReadHeader(ImageFile file)
    {
        string path = file.Path;
        ReadOnlySpan<byte> id = file.Span(0, 16, "the ELF identification");
        bool is64 = id[4] switch
        {
            2 => true,
            1 => false,
            _ => throw new VmiFormatException($"ELF class {id[4]} is neither 32-bit (1) nor 64-bit (2).", path, 4),
        };
        if (id[5] != 1)
        {
            throw new VmiFormatException($"ELF data encoding {id[5]} is not little-endian (1): only x86 cores are supported.", path, 5);
        }

        ReadOnlySpan<byte> e = file.Span(0, is64 ? 64 : 52, "the ELF header");
        // e_phentsize, not e_ehsize, says which class the header really is: QEMU 7.2's dump-guest-memory writes an
        // e_ehsize of 8 (the size of a pointer), while its program headers are right.
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(e[(is64 ? 54 : 42)..]);
        if (phentsize != (is64 ? 56 : 32))
        {
            // A flipped class byte reads every later field at the wrong offset.
            string real = file.Length >= 56 && BinaryPrimitives.ReadUInt16LittleEndian(file.Span(is64 ? 42 : 54, 2, "e_phentsize")) == (is64 ? 32 : 56)
                ? $" It reads as a {(is64 ? 32 : 64)}-bit header: the class byte (offset 4) is damaged."
                : string.Empty;
            throw new VmiFormatException($"e_phentsize is {phentsize}, but a {(is64 ? 64 : 32)}-bit ELF program header (class byte {id[4]}) is {(is64 ? 56 : 32)} bytes.{real}", path, is64 ? 54 : 42);
        }

        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(e[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(e[18..]);
        if (type != EtCore)
        {
            throw new VmiFormatException($"the ELF file has type {type}, not a core file (ET_CORE = 4): it is a program or library, not a memory image.", path, 16);
        }

        if (machine != EmX8664 && machine != Em386)
        {
            throw new VmiFormatException($"the ELF core is for machine {machine}, not x86-64 (62) or i386 (3).", path, 18);
        }

        Header h = is64
            ? new Header(true, BinaryPrimitives.ReadUInt64LittleEndian(e[32..]), BinaryPrimitives.ReadUInt64LittleEndian(e[40..]),
                BinaryPrimitives.ReadUInt16LittleEndian(e[54..]), BinaryPrimitives.ReadUInt16LittleEndian(e[56..]),
                BinaryPrimitives.ReadUInt16LittleEndian(e[58..]), BinaryPrimitives.ReadUInt16LittleEndian(e[60..]), BinaryPrimitives.ReadUInt16LittleEndian(e[62..]))
            : new Header(false, BinaryPrimitives.ReadUInt32LittleEndian(e[28..]), BinaryPrimitives.ReadUInt32LittleEndian(e[32..]),
                BinaryPrimitives.ReadUInt16LittleEndian(e[42..]), BinaryPrimitives.ReadUInt16LittleEndian(e[44..]),
                BinaryPrimitives.ReadUInt16LittleEndian(e[46..]), BinaryPrimitives.ReadUInt16LittleEndian(e[48..]), BinaryPrimitives.ReadUInt16LittleEndian(e[50..]));

        uint wantPh = is64 ? 56u : 32u;
        uint wantSh = is64 ? 64u : 40u;
        if (h.PhNum > 0 && h.PhEntSize != wantPh)
        {
            throw new VmiFormatException($"e_phentsize is {h.PhEntSize}; a {(is64 ? 64 : 32)}-bit program header is {wantPh} bytes.", path, is64 ? 54 : 42);
        }

        if (h.ShNum > 0 && h.ShEntSize != wantSh)
        {
            throw new VmiFormatException($"e_shentsize is {h.ShEntSize}; a {(is64 ? 64 : 32)}-bit section header is {wantSh} bytes.", path, is64 ? 58 : 46);
        }

        if (h.PhNum == PnXnum || (h.ShNum == 0 && h.ShOff != 0))
        {
            // More than 0xfffe program headers: the real count is in section 0's sh_info (QEMU does this on large guests).
            if (h.ShOff == 0)
            {
                throw new VmiFormatException("e_phnum is PN_XNUM (0xffff) but there is no section header 0 holding the real count.", path, is64 ? 56 : 44);
            }

            ReadOnlySpan<byte> s0 = file.Span((long)Math.Min(h.ShOff, long.MaxValue), wantSh, "section header 0");
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(s0[(is64 ? 44 : 28)..]);
            ulong shSize = is64 ? BinaryPrimitives.ReadUInt64LittleEndian(s0[32..]) : BinaryPrimitives.ReadUInt32LittleEndian(s0[20..]);
            h = h with
            {
                PhNum = h.PhNum == PnXnum ? info : h.PhNum,
                ShNum = h.ShNum == 0 ? (uint)Math.Min(shSize, uint.MaxValue) : h.ShNum,
                ShEntSize = wantSh,
            };
        }

        if (h.PhNum > 0 && (h.PhOff > long.MaxValue || !file.Contains((long)h.PhOff, h.PhNum * (long)wantPh)))
        {
            throw new VmiFormatException($"the {h.PhNum} program headers at 0x{h.PhOff:x} run past the end of the file ({file.Length} bytes): the image is truncated.", path, is64 ? 32 : 28);
        }

        if (h.ShNum > 0 && (h.ShOff > long.MaxValue || !file.Contains((long)h.ShOff, h.ShNum * (long)wantSh)))
        {
            throw new VmiFormatException($"the {h.ShNum} section headers at 0x{h.ShOff:x} run past the end of the file ({file.Length} bytes): the image is truncated.", path, is64 ? 40 : 32);
        }

        return h with { PhEntSize = wantPh };
    }

    private static List<Section> ReadSections(ImageFile file, Header h)
    {
        var list = new List<Section>();
        if (h.ShNum == 0 || h.ShStrNdx == 0)
        {
            return list; // no sections, or no section names (SHN_UNDEF): QEMU's cores
        }

        if (h.ShStrNdx >= h.ShNum)
        {
            // Silently ignoring the sections would turn a Xen dump-core into an "ELF core" with no memory.
            throw new VmiFormatException($"e_shstrndx is {h.ShStrNdx}, but the file has only {h.ShNum} section headers: the section-name table is missing and the header is corrupt.", file.Path, h.Is64 ? 62 : 50);
        }

        (uint nameOff, uint type, ulong offset, ulong size) Read(uint i, out long at)
        {
            at = (long)h.ShOff + (i * (long)h.ShEntSize);
            ReadOnlySpan<byte> s = file.Span(at, h.ShEntSize, $"section header {i}");
            return h.Is64
                ? (BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]), BinaryPrimitives.ReadUInt64LittleEndian(s[24..]), BinaryPrimitives.ReadUInt64LittleEndian(s[32..]))
                : (BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]), BinaryPrimitives.ReadUInt32LittleEndian(s[16..]), BinaryPrimitives.ReadUInt32LittleEndian(s[20..]));
        }

        (_, _, ulong strOff, ulong strSize) = Read(h.ShStrNdx, out long strAt);
        if (strOff > long.MaxValue || strSize > int.MaxValue || !file.Contains((long)strOff, (long)strSize))
        {
            throw new VmiFormatException($"the section-name table (0x{strSize:x} bytes at 0x{strOff:x}) runs past the end of the file.", file.Path, strAt);
        }

        ReadOnlySpan<byte> names = file.Span((long)strOff, (long)strSize, "the section-name table");
        for (uint i = 0; i < h.ShNum; i++)
        {
            (uint nameOff, uint type, ulong offset, ulong size) = Read(i, out long at);
            string name = string.Empty;
            if (nameOff < names.Length)
            {
                ReadOnlySpan<byte> n = names[(int)nameOff..];
                int nul = n.IndexOf((byte)0);
                name = Encoding.ASCII.GetString(nul >= 0 ? n[..nul] : n);
            }

            list.Add(new Section(name, type, offset, size, at));
        }

        return list;
    }
}
