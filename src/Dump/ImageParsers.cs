using System.Buffers.Binary;
using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>Recognises a format by its magic bytes and hands the file to that format's parser.</summary>
internal static class ImageParsers
{
    public const uint LimeMagic = 0x4C69_4D45; // "EMiL" on disk

    public static MemoryImageFormat Detect(ReadOnlySpan<byte> header)
    {
        if (header.Length >= 4 && header[0] == 0x7f && header[1] == (byte)'E' && header[2] == (byte)'L' && header[3] == (byte)'F')
        {
            return MemoryImageFormat.ElfCore; // refined to XenCore by the ELF parser (section names)
        }

        if (header.StartsWith("KDUMP   "u8) || header.StartsWith("makedumpfile\0"u8))
        {
            return MemoryImageFormat.Kdump;
        }

        if (header.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(header) == LimeMagic)
        {
            return MemoryImageFormat.Lime;
        }

        return MemoryImageFormat.Raw;
    }

    /// <summary>
    /// Formats that are recognised by their magic but are not memory images we read: what they are, and what to do.
    /// A raw image may begin with any bytes, so only unambiguous magics are listed (and a raw image that happens to
    /// begin with one can still be opened with an explicit memory map).
    /// </summary>
    private static readonly (byte[] Magic, string What)[] s_foreign =
    [
        ([0x1f, 0x8b], "a gzip-compressed file: decompress it first ('gunzip -k FILE' or 'zcat FILE > image') and open the result"),
        ([0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0], "an xz-compressed file: decompress it first ('unxz -k FILE') and open the result"),
        ([0x28, 0xb5, 0x2f, 0xfd], "a zstd-compressed file: decompress it first ('unzstd FILE') and open the result"),
        ([(byte)'B', (byte)'Z', (byte)'h'], "a bzip2-compressed file: decompress it first ('bunzip2 -k FILE') and open the result"),
        ([0x04, 0x22, 0x4d, 0x18], "an LZ4-compressed file: decompress it first ('unlz4 FILE') and open the result"),
        ("PAGEDU64"u8.ToArray(), "a Windows 64-bit crash dump (PAGEDU64), which this reader does not support: convert it to a raw image (e.g. with MemProcFS or volatility's imagecopy)"),
        ("PAGEDUMP"u8.ToArray(), "a Windows 32-bit crash dump (PAGEDUMP), which this reader does not support: convert it to a raw image first"),
        ("MDMP"u8.ToArray(), "a Windows minidump (MDMP): it holds a process, not physical memory"),
        ([(byte)'Q', (byte)'F', (byte)'I', 0xfb], "a qcow2 disk image (a VM's disk, or its saved state), not a memory image: take the guest's memory with 'virsh dump --memory-only' or QEMU's dump-guest-memory"),
        ("KDMP"u8.ToArray(), "a Hyper-V/Windows kernel dump header (KDMP), which this reader does not support"),
    ];

    /// <summary>Magics that we read, for the near-miss check: a damaged magic must not silently become a raw image.</summary>
    private static readonly (byte[] Magic, string What)[] s_ours =
    [
        ([0x7f, (byte)'E', (byte)'L', (byte)'F'], "an ELF core"),
        ("KDUMP   "u8.ToArray(), "a kdump-compressed dump (\"KDUMP   \")"),
        ("makedumpfile\0"u8.ToArray(), "a flattened kdump (\"makedumpfile\")"),
        ([0x45, 0x4d, 0x69, 0x4c], "a LiME image (\"EMiL\")"),
    ];

    /// <summary>Refuses a file whose magic says it is a foreign format, or one of ours with a damaged magic.</summary>
    private static void RefuseForeign(ReadOnlySpan<byte> head, string path)
    {
        foreach ((byte[] magic, string what) in s_foreign)
        {
            if (head.StartsWith(magic))
            {
                throw new VmiFormatException($"the file is {what}.", path, 0);
            }
        }

        foreach ((byte[] magic, string what) in s_ours)
        {
            if (head.Length >= magic.Length)
            {
                int differ = 0;
                for (int i = 0; i < magic.Length; i++)
                {
                    differ += head[i] != magic[i] ? 1 : 0;
                }

                // one damaged byte (for the 4-byte magics, one of the four) and the rest intact
                if (differ == 1)
                {
                    throw new VmiFormatException($"the file begins like {what} but its magic is damaged ({Convert.ToHexString(head[..magic.Length])}): it is not a raw image either. Repair the magic, or open it as raw with an explicit memory map if it really is one.", path, 0);
                }
            }
        }
    }

    public static ParsedImage Parse(ImageFile file, MemoryImageOptions options)
    {
        ReadOnlySpan<byte> head = file.Span(0, Math.Min(file.Length, 64), "the header");
        MemoryImageFormat format = Detect(head);
        if (options.RawMemoryMap is not null && format != MemoryImageFormat.Raw)
        {
            throw new ArgumentException($"A raw memory map was given, but '{file.Path}' is a {format} image, which describes its own memory: leave the memory map out.", nameof(options));
        }

        if (format == MemoryImageFormat.Raw && options.RawMemoryMap is null)
        {
            RefuseForeign(head, file.Path);
        }

        ParsedImage parsed = format switch
        {
            MemoryImageFormat.ElfCore => ElfCoreParser.Parse(file),
            MemoryImageFormat.Kdump => KdumpParser.Parse(file),
            MemoryImageFormat.Lime => ParseLime(file),
            _ => ParseRaw(file, options.RawMemoryMap),
        };

        if (!parsed.Source.Ranges.Any(r => !r.ZeroFill))
        {
            parsed.Source.Dispose();
            throw new VmiFormatException($"the {Describe(parsed.Format)} describes no memory at all (no stored ranges{(parsed.Source.Ranges.Count > 0 ? ", only zero-filled ones" : string.Empty)}): it is damaged, or not a memory image.", file.Path, 0);
        }

        return parsed;
    }

    private static string Describe(MemoryImageFormat f) => f switch
    {
        MemoryImageFormat.ElfCore => "ELF core",
        MemoryImageFormat.XenCore => "Xen dump-core",
        MemoryImageFormat.Kdump => "kdump",
        MemoryImageFormat.Lime => "LiME image",
        _ => "raw image",
    };

    private static ParsedImage ParseRaw(ImageFile file, IReadOnlyList<RawRegion>? map)
    {
        var runs = new List<(Run, string, long)>();
        if (map is null)
        {
            runs.Add((new Run(0, (ulong)file.Length, 0), "the raw image", 0));
        }
        else
        {
            for (int i = 0; i < map.Count; i++)
            {
                RawRegion r = map[i];
                if (r.FileOffset < 0)
                {
                    throw new ArgumentException($"Raw memory map entry {i} has a negative file offset ({r.FileOffset}).", nameof(map));
                }

                runs.Add((new Run(r.Start.Value, r.Length, r.FileOffset), $"raw memory map entry {i}", r.FileOffset));
            }
        }

        return new ParsedImage(MemoryImageFormat.Raw, new RunSource(file, runs), [], "none", null);
    }

    private static ParsedImage ParseLime(ImageFile file)
    {
        var runs = new List<(Run, string, long)>();
        long offset = 0;
        int index = 0;
        while (offset < file.Length)
        {
            ReadOnlySpan<byte> h = file.Span(offset, 32, $"LiME range header {index}");
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(h);
            uint version = BinaryPrimitives.ReadUInt32LittleEndian(h[4..]);
            ulong start = BinaryPrimitives.ReadUInt64LittleEndian(h[8..]);
            ulong last = BinaryPrimitives.ReadUInt64LittleEndian(h[16..]);
            if (magic != LimeMagic)
            {
                throw new VmiFormatException($"LiME range header {index} has magic 0x{magic:x8}, not 0x{LimeMagic:x8}: the image is corrupt or has trailing bytes.", file.Path, offset);
            }

            if (version != 1)
            {
                throw new VmiFormatException($"LiME range header {index} has version {version}; only version 1 is defined.", file.Path, offset + 4);
            }

            if (last < start || last - start >= ImageSource.MaxPhysicalAddress)
            {
                throw new VmiFormatException($"LiME range header {index} ends (0x{last:x}) before it starts (0x{start:x}) or is oversized.", file.Path, offset + 8);
            }

            ulong length = last - start + 1;
            if (length > (ulong)(file.Length - offset - 32))
            {
                throw new VmiFormatException($"LiME range {index} (0x{start:x}-0x{last:x}, {length} bytes) runs past the end of the file ({file.Length} bytes): the image is truncated.", file.Path, offset);
            }

            runs.Add((new Run(start, length, offset + 32), $"LiME range {index}", offset));
            offset += 32 + (long)length;
            index++;
        }

        return new ParsedImage(MemoryImageFormat.Lime, new RunSource(file, runs), [], "none", null);
    }
}

/// <summary>One ELF note.</summary>
internal readonly ref struct ElfNote(string name, uint type, ReadOnlySpan<byte> desc, long offset)
{
    public string Name { get; } = name;

    public uint Type { get; } = type;

    public ReadOnlySpan<byte> Desc { get; } = desc;

    public long Offset { get; } = offset;
}

/// <summary>ELF notes (4-byte aligned names and descriptors) and the register notes QEMU and Linux write.</summary>
internal static class ElfNotes
{
    public const uint NtPrstatus = 1;
    public const int Prstatus64Size = 336;
    public const int Prstatus64RegsOffset = 112;
    public const int QemuCpuStateSize = 440;

    public delegate void NoteHandler(in ElfNote note);

    /// <summary>Walks the notes in <paramref name="data"/> (which starts at file offset <paramref name="at"/>).</summary>
    public static void Walk(ReadOnlySpan<byte> data, long at, string path, NoteHandler handler)
    {
        int pos = 0;
        while (pos < data.Length)
        {
            if (data.Length - pos < 12)
            {
                // Trailing padding is tolerated only when it is all zero.
                if (data[pos..].ContainsAnyExcept((byte)0))
                {
                    throw new VmiFormatException($"a note header needs 12 bytes; only {data.Length - pos} remain in the note segment.", path, at + pos);
                }

                return;
            }

            uint nameSize = BinaryPrimitives.ReadUInt32LittleEndian(data[pos..]);
            uint descSize = BinaryPrimitives.ReadUInt32LittleEndian(data[(pos + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(data[(pos + 8)..]);
            long nameEnd = pos + 12L + Align4(nameSize);
            long descEnd = nameEnd + Align4(descSize);
            if (nameSize > int.MaxValue || descSize > int.MaxValue || descEnd > data.Length)
            {
                throw new VmiFormatException($"a note (name {nameSize} bytes, descriptor {descSize} bytes) runs past the end of its note segment ({data.Length} bytes).", path, at + pos);
            }

            if (nameSize == 0 && descSize == 0 && type == 0)
            {
                pos += 12; // empty note (padding)
                continue;
            }

            ReadOnlySpan<byte> nameBytes = data.Slice(pos + 12, (int)nameSize);
            int nul = nameBytes.IndexOf((byte)0);
            string name = Encoding.ASCII.GetString(nul >= 0 ? nameBytes[..nul] : nameBytes);
            handler(new ElfNote(name, type, data.Slice((int)nameEnd, (int)descSize), at + nameEnd));
            pos = (int)descEnd;
        }
    }

    private static long Align4(uint n) => (n + 3L) & ~3L;

    /// <summary>Collects the register notes and VMCOREINFO of one note area.</summary>
    internal sealed class Collector(string path)
    {
        public List<Registers> Prstatus { get; } = [];

        public List<Registers> Qemu { get; } = [];

        public string? Vmcoreinfo { get; private set; }

        public void Add(in ElfNote note)
        {
            if (note.Name == "CORE" && note.Type == NtPrstatus)
            {
                Prstatus.Add(ParsePrstatus(note.Desc, note.Offset, path));
            }
            else if (note.Name == "QEMU" && note.Type == 0)
            {
                Qemu.Add(ParseQemuCpuState(note.Desc, note.Offset, path));
            }
            else if (note.Name == "VMCOREINFO")
            {
                Vmcoreinfo = Encoding.UTF8.GetString(note.Desc).TrimEnd('\0');
            }
        }

        /// <summary>The registers per vCPU, and whether they include control registers (CR3 above all).</summary>
        public (Registers[] Registers, bool HasControl, string Source) Result()
        {
            if (Qemu.Count > 0)
            {
                // QEMU writes every vCPU's NT_PRSTATUS, then every vCPU's QEMU note, in the same order.
                // The QEMU note is a superset of NT_PRSTATUS; segments and control registers only it has.
                return (Qemu.ToArray(), true, "the QEMU CPU-state note");
            }

            return (Prstatus.ToArray(), false, "NT_PRSTATUS (general-purpose registers only)");
        }
    }

    /// <summary>x86-64 elf_prstatus: pr_reg (27 qwords, user_regs_struct order) at offset 112; i386: 17 dwords at 72.</summary>
    public static Registers ParsePrstatus(ReadOnlySpan<byte> d, long at, string path)
    {
        if (d.Length >= Prstatus64RegsOffset + (27 * 8))
        {
            ulong[] q = new ulong[27];
            for (int i = 0; i < q.Length; i++)
            {
                q[i] = BinaryPrimitives.ReadUInt64LittleEndian(d[(Prstatus64RegsOffset + (i * 8))..]);
            }

            ulong Q(int i) => q[i];
            return new Registers
            {
                R15 = Q(0), R14 = Q(1), R13 = Q(2), R12 = Q(3), Rbp = Q(4), Rbx = Q(5), R11 = Q(6), R10 = Q(7),
                R9 = Q(8), R8 = Q(9), Rax = Q(10), Rcx = Q(11), Rdx = Q(12), Rsi = Q(13), Rdi = Q(14),
                Rip = Q(16), Cs = new SegmentRegister((ushort)Q(17), 0, 0, 0), Rflags = Q(18), Rsp = Q(19),
                Ss = new SegmentRegister((ushort)Q(20), 0, 0, 0),
                Fs = new SegmentRegister((ushort)Q(25), Q(21), 0, 0), Gs = new SegmentRegister((ushort)Q(26), Q(22), 0, 0),
                Ds = new SegmentRegister((ushort)Q(23), 0, 0, 0), Es = new SegmentRegister((ushort)Q(24), 0, 0, 0),
            };
        }

        if (d.Length >= 72 + (17 * 4))
        {
            uint[] q = new uint[17];
            for (int i = 0; i < q.Length; i++)
            {
                q[i] = BinaryPrimitives.ReadUInt32LittleEndian(d[(72 + (i * 4))..]);
            }

            uint D(int i) => q[i];
            return new Registers
            {
                Rbx = D(0), Rcx = D(1), Rdx = D(2), Rsi = D(3), Rdi = D(4), Rbp = D(5), Rax = D(6),
                Ds = new SegmentRegister((ushort)D(7), 0, 0, 0), Es = new SegmentRegister((ushort)D(8), 0, 0, 0),
                Fs = new SegmentRegister((ushort)D(9), 0, 0, 0), Gs = new SegmentRegister((ushort)D(10), 0, 0, 0),
                Rip = D(12), Cs = new SegmentRegister((ushort)D(13), 0, 0, 0), Rflags = D(14), Rsp = D(15),
                Ss = new SegmentRegister((ushort)D(16), 0, 0, 0),
            };
        }

        throw new VmiFormatException($"an NT_PRSTATUS note of {d.Length} bytes is too short for x86-64 ({Prstatus64Size}) or i386 (144) registers.", path, at);
    }

    /// <summary>
    /// QEMU's QEMUCPUState (target/i386/arch_dump.c): version, size, 16 GPRs (rax rbx rcx rdx rsi rdi rsp rbp r8-r15),
    /// rip, rflags, ten segments {u32 selector, limit, flags, pad; u64 base} (cs ds es fs gs ss ldt tr gdt idt),
    /// cr[5], and from version 1 kernel_gs_base.
    /// </summary>
    public static Registers ParseQemuCpuState(ReadOnlySpan<byte> d, long at, string path)
    {
        const int CrOffset = 392;
        if (d.Length < CrOffset + 40)
        {
            throw new VmiFormatException($"a QEMU CPU-state note of {d.Length} bytes is too short (at least {CrOffset + 40} bytes hold the control registers).", path, at);
        }

        uint size = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]);
        if (size > d.Length || size < CrOffset + 40)
        {
            throw new VmiFormatException($"the QEMU CPU-state note says it is {size} bytes, but its descriptor holds {d.Length}.", path, at + 4);
        }

        byte[] bytes = d[..(int)size].ToArray();
        ulong Q(int off) => BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(off));
        SegmentRegister Seg(int index)
        {
            ReadOnlySpan<byte> b = bytes;
            int o = 152 + (index * 24);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(b[(o + 8)..]);
            // QEMU keeps the descriptor's high-dword bits (type at 8, S 12, DPL 13-14, P 15, AVL 20, L 21, D/B 22, G 23);
            // Registers uses the packed form (type S DPL P in bits 0-7, AVL L D/B G in bits 8-11).
            var attributes = (ushort)(((flags >> 8) & 0xFF) | ((flags >> 12) & 0xF00));
            return new SegmentRegister((ushort)BinaryPrimitives.ReadUInt32LittleEndian(b[o..]), Q(o + 16), BinaryPrimitives.ReadUInt32LittleEndian(b[(o + 4)..]), attributes);
        }

        SegmentRegister gdt = Seg(8), idt = Seg(9);
        var regs = new Registers
        {
            Rax = Q(8), Rbx = Q(16), Rcx = Q(24), Rdx = Q(32), Rsi = Q(40), Rdi = Q(48), Rsp = Q(56), Rbp = Q(64),
            R8 = Q(72), R9 = Q(80), R10 = Q(88), R11 = Q(96), R12 = Q(104), R13 = Q(112), R14 = Q(120), R15 = Q(128),
            Rip = Q(136), Rflags = Q(144),
            Cs = Seg(0), Ds = Seg(1), Es = Seg(2), Fs = Seg(3), Gs = Seg(4), Ss = Seg(5), Ldtr = Seg(6), Tr = Seg(7),
            Gdtr = new DescriptorTable(gdt.Base, (ushort)gdt.Limit), Idtr = new DescriptorTable(idt.Base, (ushort)idt.Limit),
            Cr0 = Q(CrOffset), Cr2 = Q(CrOffset + 16), Cr3 = Q(CrOffset + 24), Cr4 = Q(CrOffset + 32),
            ShadowGs = size >= 440 ? Q(432) : 0,
        };
        return regs with { MsrEfer = InferEfer(regs) };
    }

    /// <summary>
    /// EFER is not in QEMU's note. Long mode (LME|LMA) is inferred when paging with PAE is on and any of:
    /// CS.L (64-bit code), CR4.LA57 (only valid in IA-32e), or a linear address above 4 GiB in IDTR, GDTR,
    /// RIP or the kernel GS base (impossible for a PAE-mode guest, whose linear addresses are 32-bit: this
    /// catches a vCPU stopped in 32-bit compatibility-mode user code under a 64-bit kernel).
    /// NXE is set for PAE and IA-32e paging: translation honours it (without NXE bit 63 is a reserved bit), and
    /// assuming it is safe — a guest running without NXE cannot have bit 63 set in an entry it uses.
    /// </summary>
    internal static ulong InferEfer(Registers r)
    {
        if ((r.Cr0 & Amd64.Cr0Pg) == 0 || (r.Cr4 & Amd64.Cr4Pae) == 0)
        {
            return 0;
        }

        bool csL = (r.Cs.Attributes & 0x200) != 0;
        bool high = r.Idtr.Base > uint.MaxValue || r.Gdtr.Base > uint.MaxValue || r.Rip > uint.MaxValue || r.ShadowGs > uint.MaxValue;
        return csL || (r.Cr4 & Amd64.Cr4La57) != 0 || high ? Amd64.EferLme | Amd64.EferLma | Amd64.EferNxe : Amd64.EferNxe;
    }
}
