using System.Buffers.Binary;
using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>The formats <see cref="ImageWriter"/> writes.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum ImageFormat
{
    /// <summary>ELF core as QEMU's dump-guest-memory writes it: PT_LOAD per range, NT_PRSTATUS + QEMU CPU-state notes, VMCOREINFO.</summary>
    ElfCore,

    /// <summary>Raw physical memory from address 0 to the last frame; frames that are not stored are holes (a sparse file) where the destination can seek, else zeros.</summary>
    Raw,

    /// <summary>LiME: one range header plus data per readable range.</summary>
    Lime,
}

/// <summary>How far an acquisition has come.</summary>
/// <param name="PagesDone">Frames written so far (data pages, not counting raw zero-fill of holes).</param>
/// <param name="PagesTotal">Frames to write.</param>
/// <param name="BytesWritten">Bytes of the destination so far (holes left in a raw image included).</param>
/// <param name="PagesUnreadable">Frames that were listed as readable but could not be read when written (zero-filled).</param>
public readonly record struct ImageWriteProgress(ulong PagesDone, ulong PagesTotal, long BytesWritten, ulong PagesUnreadable)
{
    public double Fraction => PagesTotal == 0 ? 1 : (double)PagesDone / PagesTotal;

    /// <summary>Bytes of guest memory written so far (pages done x page size).</summary>
    public long BytesData => (long)(PagesDone << Amd64.PageShift);

    /// <summary>Bytes of guest memory to write in all.</summary>
    public long BytesTotal => (long)(PagesTotal << Amd64.PageShift);

    /// <summary>Runs of physical memory stored (zero-filled runs not counted).</summary>
    public int Ranges { get; init; }
}

/// <summary>
/// Acquisition: writes any session's memory (Xen, an image, the mock) to an image, streamed page by page
/// straight from the driver's mapped pages (never the whole image in memory; the engine's caches are bypassed
/// and left as they were). Frames that cannot be read are holes (ELF, LiME) or zeros (raw).
/// </summary>
public static class ImageWriter
{
    private const int ProgressEvery = 1024;
    private static readonly byte[] s_zeroPage = new byte[Amd64.PageSize];

    public static void Write(VmiCore core, Stream destination, ImageFormat format, IProgress<ImageWriteProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(core);
        ArgumentNullException.ThrowIfNull(destination);
        if (!destination.CanWrite)
        {
            throw new ArgumentException("The destination stream is not writable.", nameof(destination));
        }

        if (core.Driver is not IVmiRead read)
        {
            throw new CapabilityNotSupportedException(core.Driver.Name, VmiCapability.Read);
        }

        List<FrameRange> ranges = ReadableFrames(core, read, cancellationToken);
        ulong total = ranges.Where(r => !r.ZeroFill).Aggregate(0UL, (s, r) => s + r.Count);
        var state = new WriteState(destination, read, progress, total, cancellationToken) { Ranges = ranges.Count(r => !r.ZeroFill) };
        // Not disposed: disposing a BufferedStream closes the caller's stream.
        var buffered = new BufferedStream(destination, 1 << 20);
        {
            state.Out = buffered;
            switch (format)
            {
                case ImageFormat.Raw:
                    WriteRaw(core, ranges, state);
                    break;
                case ImageFormat.Lime:
                    WriteLime(ranges, state);
                    break;
                case ImageFormat.ElfCore:
                    WriteElf(core, ranges, state);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(format), format, "Use ElfCore, Raw or Lime.");
            }

            buffered.Flush();
        }

        state.Report(force: true);
    }

    private sealed class WriteState(Stream destination, IVmiRead read, IProgress<ImageWriteProgress>? progress, ulong total, CancellationToken token)
    {
        public Stream Out { get; set; } = destination;

        public IVmiRead Read { get; } = read;

        public CancellationToken Token { get; } = token;

        public ulong Done { get; set; }

        public ulong Unreadable { get; set; }

        public int Ranges { get; init; }

        public long Bytes { get; set; }

        public void Put(ReadOnlySpan<byte> data)
        {
            Out.Write(data);
            Bytes += data.Length;
        }

        /// <summary>Leaves <paramref name="bytes"/> of zeros: a hole where the destination can seek, written zeros where not.</summary>
        public void Skip(ulong bytes)
        {
            if (Out.CanSeek)
            {
                Out.Seek((long)bytes, SeekOrigin.Current);
                Holes += (long)bytes;
                Bytes += (long)bytes;
                return;
            }

            for (ulong left = bytes; left > 0;)
            {
                int n = (int)Math.Min(left, (ulong)s_zeroPage.Length);
                Put(s_zeroPage.AsSpan(0, n));
                left -= (ulong)n;
                if ((left & ((1UL << 26) - 1)) == 0)
                {
                    Token.ThrowIfCancellationRequested();
                }
            }
        }

        public long Holes { get; set; }

        /// <summary>Writes frame <paramref name="gfn"/> (zeros if it cannot be read now) and counts it.</summary>
        public void PutFrame(ulong gfn, bool counted = true)
        {
            if (Read.TryMapPage(new Gfn(gfn), out MappedPage? page))
            {
                using (page)
                {
                    Put(page.Span);
                }
            }
            else
            {
                Put(s_zeroPage);
                if (counted)
                {
                    Unreadable++;
                }
            }

            if (counted)
            {
                Done++;
            }

            if ((Done & (ProgressEvery - 1)) == 0)
            {
                Token.ThrowIfCancellationRequested();
                Report(force: true);
            }
        }

        public void Report(bool force)
        {
            if (progress is not null && (force || Done % ProgressEvery == 0))
            {
                progress.Report(new ImageWriteProgress(Done, total, Bytes, Unreadable) { Ranges = Ranges });
            }
        }
    }

    /// <summary>A run of frames to write; zero-filled runs (declared, not stored) are written as holes, never as data.</summary>
    private readonly record struct FrameRange(ulong First, ulong Count, bool ZeroFill);

    /// <summary>The frames to write: from the image's own map when the source is an image, else by probing every frame.</summary>
    private static List<FrameRange> ReadableFrames(VmiCore core, IVmiRead read, CancellationToken token)
    {
        var list = new List<FrameRange>();
        void Add(ulong first, ulong count, bool zero)
        {
            if (list.Count > 0 && list[^1].ZeroFill == zero && list[^1].First + list[^1].Count >= first)
            {
                ulong end = Math.Max(list[^1].First + list[^1].Count, first + count);
                list[^1] = list[^1] with { Count = end - list[^1].First };
            }
            else if (list.Count > 0 && list[^1].First + list[^1].Count > first)
            {
                // a stored range and a zero-filled one share a frame (unaligned segments): the frame is stored
                ulong overlap = list[^1].First + list[^1].Count - first;
                if (zero)
                {
                    if (count > overlap)
                    {
                        list.Add(new FrameRange(first + overlap, count - overlap, true));
                    }
                }
                else
                {
                    list[^1] = list[^1] with { Count = list[^1].Count - overlap };
                    if (list[^1].Count == 0)
                    {
                        list.RemoveAt(list.Count - 1);
                    }

                    Add(first, count, false);
                }
            }
            else
            {
                list.Add(new FrameRange(first, count, zero));
            }
        }

        if (core.Driver is MemoryImage image)
        {
            foreach (PhysicalRange r in image.Ranges)
            {
                ulong first = r.Start.Value >> Amd64.PageShift;
                ulong last = (r.End.Value - 1) >> Amd64.PageShift;
                Add(first, last - first + 1, r.ZeroFill);
            }

            return list;
        }

        ulong max = core.Info.MaxGfn.Value;
        for (ulong gfn = 0; gfn <= max; gfn++)
        {
            if ((gfn & 0xFFF) == 0)
            {
                token.ThrowIfCancellationRequested();
            }

            if (read.TryMapPage(new Gfn(gfn), out MappedPage? page))
            {
                page.Dispose();
                Add(gfn, 1, false);
            }
        }

        return list;
    }

    /// <summary>Stored frames at their physical offsets; everything else (gaps, zero-filled ranges) as holes, up to the last frame.</summary>
    private static void WriteRaw(VmiCore core, List<FrameRange> ranges, WriteState s)
    {
        ulong at = 0; // the frame the stream is positioned at
        foreach (FrameRange r in ranges.Where(r => !r.ZeroFill))
        {
            s.Skip((r.First - at) << Amd64.PageShift);
            for (ulong i = 0; i < r.Count; i++)
            {
                s.PutFrame(r.First + i);
            }

            at = r.First + r.Count;
        }

        // To the last frame, except that memory declared but not stored at the end of an image stays out: a
        // raw file that long could exceed what the file system allows (an ELF core may declare petabytes).
        ulong end = ranges.Count > 0 && ranges[^1].ZeroFill ? at : core.Info.MaxGfn.Value + 1;
        if (end > at)
        {
            s.Skip((end - at) << Amd64.PageShift);
            if (s.Out.CanSeek)
            {
                // a trailing hole: seeking alone does not make the file longer
                s.Out.Flush();
                if (s.Out.Position > s.Out.Length)
                {
                    s.Out.SetLength(s.Out.Position);
                }
            }
        }
    }

    /// <summary>LiME has no holes: zero-filled ranges are left out (they read as absent, not as zeros).</summary>
    private static void WriteLime(List<FrameRange> ranges, WriteState s)
    {
        Span<byte> h = stackalloc byte[32];
        foreach ((ulong first, ulong count, _) in ranges.Where(r => !r.ZeroFill))
        {
            h.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(h, ImageParsers.LimeMagic);
            BinaryPrimitives.WriteUInt32LittleEndian(h[4..], 1);
            BinaryPrimitives.WriteUInt64LittleEndian(h[8..], first << Amd64.PageShift);
            BinaryPrimitives.WriteUInt64LittleEndian(h[16..], ((first + count) << Amd64.PageShift) - 1);
            s.Put(h);
            for (ulong i = 0; i < count; i++)
            {
                s.PutFrame(first + i);
            }
        }
    }

    /// <summary>PT_LOAD per range; a zero-filled range is a PT_LOAD with p_filesz 0 (ELF's own hole: nothing written).</summary>
    private static void WriteElf(VmiCore core, List<FrameRange> ranges, WriteState s)
    {
        byte[] notes = BuildNotes(core);
        int phnum = ranges.Count + 1;
        bool xnum = phnum >= 0xFFFF;
        long phoff = 64;
        long shoff = xnum ? phoff + (phnum * 56L) : 0;
        long notesOffset = phoff + (phnum * 56L) + (xnum ? 64 : 0);
        long dataOffset = (notesOffset + notes.Length + (long)Amd64.PageMask) & ~(long)Amd64.PageMask;

        Span<byte> eh = stackalloc byte[64];
        eh.Clear();
        "\x7f"u8.CopyTo(eh);
        "ELF"u8.CopyTo(eh[1..]);
        eh[4] = 2; // ELFCLASS64
        eh[5] = 1; // little-endian
        eh[6] = 1; // EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(eh[16..], 4); // ET_CORE
        BinaryPrimitives.WriteUInt16LittleEndian(eh[18..], 62); // EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(eh[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(eh[32..], (ulong)phoff);
        BinaryPrimitives.WriteUInt64LittleEndian(eh[40..], (ulong)shoff);
        BinaryPrimitives.WriteUInt16LittleEndian(eh[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(eh[54..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(eh[56..], (ushort)(xnum ? 0xFFFF : phnum));
        BinaryPrimitives.WriteUInt16LittleEndian(eh[58..], (ushort)(xnum ? 64 : 0));
        BinaryPrimitives.WriteUInt16LittleEndian(eh[60..], (ushort)(xnum ? 1 : 0));
        s.Put(eh);

        Span<byte> ph = stackalloc byte[56];
        ph.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(ph, 4); // PT_NOTE
        BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], (ulong)notesOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], (ulong)notes.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], (ulong)notes.Length);
        s.Put(ph);
        long offset = dataOffset;
        foreach ((ulong first, ulong count, bool zero) in ranges)
        {
            ph.Clear();
            ulong bytes = count << Amd64.PageShift;
            BinaryPrimitives.WriteUInt32LittleEndian(ph, 1); // PT_LOAD
            BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], 7); // RWX
            BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], (ulong)offset);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], first << Amd64.PageShift);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], zero ? 0 : bytes);
            BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], bytes);
            s.Put(ph);
            offset += zero ? 0 : (long)bytes;
        }

        if (xnum)
        {
            Span<byte> sh = stackalloc byte[64];
            sh.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(sh[44..], (uint)phnum); // sh_info: the real e_phnum
            s.Put(sh);
        }

        s.Put(notes);
        s.Put(s_zeroPage.AsSpan(0, (int)(dataOffset - notesOffset - notes.Length)));
        foreach ((ulong first, ulong count, _) in ranges.Where(r => !r.ZeroFill))
        {
            for (ulong i = 0; i < count; i++)
            {
                s.PutFrame(first + i);
            }
        }
    }

    /// <summary>NT_PRSTATUS for every vCPU, then a QEMU CPU-state note for every vCPU (QEMU's order), then VMCOREINFO.</summary>
    internal static byte[] BuildNotes(VmiCore core)
    {
        var notes = new MemoryStream();
        var regs = new List<Registers>();
        if (core.Supports(VmiCapability.QueryRegisters))
        {
            for (int v = 0; v < core.Info.VcpuCount; v++)
            {
                regs.Add(core.GetRegisters(new VcpuId((ushort)v)));
            }
        }

        for (int v = 0; v < regs.Count; v++)
        {
            AddNote(notes, "CORE", ElfNotes.NtPrstatus, Prstatus(regs[v], v + 1));
        }

        foreach (Registers r in regs)
        {
            AddNote(notes, "QEMU", 0, QemuCpuState(r));
        }

        if (core.Driver is IVmcoreinfoSource { Vmcoreinfo: { } vmcoreinfo })
        {
            AddNote(notes, "VMCOREINFO", 0, Encoding.UTF8.GetBytes(vmcoreinfo));
        }

        return notes.ToArray();
    }

    internal static void AddNote(Stream s, string name, uint type, ReadOnlySpan<byte> desc)
    {
        byte[] n = Encoding.ASCII.GetBytes(name + "\0");
        Span<byte> h = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(h, (uint)n.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], type);
        s.Write(h);
        s.Write(n);
        s.Write(new byte[((n.Length + 3) & ~3) - n.Length]);
        s.Write(desc);
        s.Write(new byte[((desc.Length + 3) & ~3) - desc.Length]);
    }

    internal static byte[] Prstatus(Registers r, int pid)
    {
        byte[] d = new byte[ElfNotes.Prstatus64Size];
        BinaryPrimitives.WriteInt32LittleEndian(d.AsSpan(32), pid);
        ulong[] q =
        [
            r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10, r.R9, r.R8, r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi,
            r.Rax, r.Rip, r.Cs.Selector, r.Rflags, r.Rsp, r.Ss.Selector, r.Fs.Base, r.Gs.Base,
            r.Ds.Selector, r.Es.Selector, r.Fs.Selector, r.Gs.Selector,
        ];
        for (int i = 0; i < q.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(ElfNotes.Prstatus64RegsOffset + (i * 8)), q[i]);
        }

        return d;
    }

    internal static byte[] QemuCpuState(Registers r)
    {
        byte[] d = new byte[ElfNotes.QemuCpuStateSize];
        Span<byte> s = d;
        BinaryPrimitives.WriteUInt32LittleEndian(s, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], ElfNotes.QemuCpuStateSize);
        ulong[] gprs = [r.Rax, r.Rbx, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Rsp, r.Rbp, r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15, r.Rip, r.Rflags];
        for (int i = 0; i < gprs.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(s[(8 + (i * 8))..], gprs[i]);
        }

        // QEMU's note has no EFER; readers infer long mode from CS.L (and more, see ElfNotes.InferEfer). Registers
        // that say long mode but carry no code segment at all (e.g. made from a CR3 alone) get a flat 64-bit CS so
        // that the mode survives the round trip.
        SegmentRegister cs = r.Cs;
        if ((r.MsrEfer & Amd64.EferLma) != 0 && cs == default)
        {
            cs = new SegmentRegister(0x10, 0, 0xFFFF_FFFF, 0x29B); // type 0xB, S, P, L
        }

        SegmentRegister[] segs =
        [
            cs, r.Ds, r.Es, r.Fs, r.Gs, r.Ss, r.Ldtr, r.Tr,
            new SegmentRegister(0, r.Gdtr.Base, r.Gdtr.Limit, 0), new SegmentRegister(0, r.Idtr.Base, r.Idtr.Limit, 0),
        ];
        for (int i = 0; i < segs.Length; i++)
        {
            int o = 152 + (i * 24);
            uint flags = ((uint)(segs[i].Attributes & 0xFF) << 8) | ((uint)(segs[i].Attributes & 0xF00) << 12);
            BinaryPrimitives.WriteUInt32LittleEndian(s[o..], segs[i].Selector);
            BinaryPrimitives.WriteUInt32LittleEndian(s[(o + 4)..], segs[i].Limit);
            BinaryPrimitives.WriteUInt32LittleEndian(s[(o + 8)..], flags);
            BinaryPrimitives.WriteUInt64LittleEndian(s[(o + 16)..], segs[i].Base);
        }

        ulong[] cr = [r.Cr0, 0, r.Cr2, r.Cr3, r.Cr4];
        for (int i = 0; i < cr.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(s[(392 + (i * 8))..], cr[i]);
        }

        BinaryPrimitives.WriteUInt64LittleEndian(s[432..], r.ShadowGs);
        return d;
    }
}
