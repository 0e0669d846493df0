using System.Buffers.Binary;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>
/// Xen's <c>xl dump-core</c> ELF, from Xen's public headers (xen/include/public/elfnote.h, tools' xg_core.h):
/// sections .note.Xen (a "Xen" header note: magic, vCPU count, page count, page size), .xen_prstatus
/// (one vcpu_guest_context per vCPU), .xen_pages (the pages), and .xen_pfn (HVM: one u64 PFN per page) or
/// .xen_p2m (PV: {u64 pfn, u64 gmfn} per page). Entry i names the frame of page i. No Xen host is at hand
/// here: this parser is checked against our own writer built from the same headers.
/// </summary>
internal static class XenCoreParser
{
    public const uint NoteHeader = 0x2000001;
    public const ulong MagicPv = 0xF00FEBED;
    public const ulong MagicHvm = 0xF00FEBEE;
    public const ulong InvalidPfn = ulong.MaxValue;

    /// <summary>vcpu_guest_context (x86-64): user_regs at 520, ctrlreg[8] at 4984, gs_base_kernel at 5152; 5168 bytes.</summary>
    public const int ContextSize = 5168;
    public const int UserRegsOffset = 520;
    public const int CtrlRegOffset = 4984;
    public const int GsBaseKernelOffset = 5152;

    public static ParsedImage Parse(ImageFile file, bool is64, List<ElfCoreParser.Section> sections)
    {
        string path = file.Path;
        if (!is64)
        {
            throw new VmiFormatException("a Xen dump-core of a 32-bit toolstack is not supported (ELFCLASS32).", path, 4);
        }

        ElfCoreParser.Section Need(string name) => sections.FindIndex(s => s.Name == name) is int i and >= 0
            ? sections[i]
            : throw new VmiFormatException($"the Xen dump-core has no {name} section.", path, 0);

        ReadOnlySpan<byte> SpanOf(ElfCoreParser.Section s) =>
            s.Offset > long.MaxValue || s.Size > long.MaxValue || !file.Contains((long)s.Offset, (long)s.Size)
                ? throw new VmiFormatException($"section {s.Name} (0x{s.Size:x} bytes at 0x{s.Offset:x}) runs past the end of the file ({file.Length} bytes): the dump is truncated.", path, s.HeaderAt)
                : file.Span((long)s.Offset, (long)s.Size, s.Name);

        ElfCoreParser.Section noteSection = Need(".note.Xen");
        ulong magic = 0, vcpus = 0, pages = 0, pageSize = 0;
        bool found = false;
        ElfNotes.Walk(SpanOf(noteSection), (long)noteSection.Offset, path, (in ElfNote n) =>
        {
            if (n.Name == "Xen" && n.Type == NoteHeader && n.Desc.Length >= 32)
            {
                magic = BinaryPrimitives.ReadUInt64LittleEndian(n.Desc);
                vcpus = BinaryPrimitives.ReadUInt64LittleEndian(n.Desc[8..]);
                pages = BinaryPrimitives.ReadUInt64LittleEndian(n.Desc[16..]);
                pageSize = BinaryPrimitives.ReadUInt64LittleEndian(n.Desc[24..]);
                found = true;
            }
        });
        if (!found)
        {
            throw new VmiFormatException("the .note.Xen section has no Xen dump-core header note (type 0x2000001).", path, (long)noteSection.Offset);
        }

        if (magic != MagicPv && magic != MagicHvm)
        {
            throw new VmiFormatException($"the Xen dump-core header magic is 0x{magic:x}, not 0x{MagicPv:x} (PV) or 0x{MagicHvm:x} (HVM).", path, (long)noteSection.Offset);
        }

        if (pageSize != Amd64.PageSize || vcpus > 4096)
        {
            throw new VmiFormatException($"the Xen dump-core header says page size {pageSize} and {vcpus} vCPUs; x86 uses 4096-byte pages and at most 4096 vCPUs.", path, (long)noteSection.Offset);
        }

        ElfCoreParser.Section pagesSection = Need(".xen_pages");
        int mapIndex = sections.FindIndex(s => s.Name is ".xen_pfn" or ".xen_p2m");
        if (mapIndex < 0)
        {
            throw new VmiFormatException("the Xen dump-core has neither a .xen_pfn nor a .xen_p2m section.", path, 0);
        }

        ElfCoreParser.Section mapSection = sections[mapIndex];

        int entry = mapSection.Name == ".xen_p2m" ? 16 : 8;
        ReadOnlySpan<byte> pfns = SpanOf(mapSection);
        SpanOf(pagesSection);
        if (pages > (ulong)pfns.Length / (ulong)entry || pages > pagesSection.Size / Amd64.PageSize)
        {
            throw new VmiFormatException($"the header promises {pages} pages, but {mapSection.Name} holds {pfns.Length / entry} entries and .xen_pages {pagesSection.Size / Amd64.PageSize} pages.", path, mapSection.HeaderAt);
        }

        var runs = new List<(Run, string, long)>();
        ulong runPfn = 0, runCount = 0;
        long runOffset = 0;
        for (ulong i = 0; i < pages; i++)
        {
            ulong pfn = BinaryPrimitives.ReadUInt64LittleEndian(pfns[(int)(i * (ulong)entry)..]);
            long offset = (long)pagesSection.Offset + (long)(i * Amd64.PageSize);
            if (pfn == InvalidPfn)
            {
                continue;
            }

            if (pfn >= ImageSource.MaxPhysicalAddress >> Amd64.PageShift)
            {
                throw new VmiFormatException($"{mapSection.Name} entry {i} names frame 0x{pfn:x}, beyond the 52-bit physical address space.", path, (long)mapSection.Offset + (long)(i * (ulong)entry));
            }

            if (runCount > 0 && pfn == runPfn + runCount && offset == runOffset + (long)(runCount * Amd64.PageSize))
            {
                runCount++;
                continue;
            }

            if (runCount > 0)
            {
                runs.Add((new Run(runPfn << Amd64.PageShift, runCount << Amd64.PageShift, runOffset), $"{mapSection.Name} entries for frame 0x{runPfn:x}", (long)mapSection.Offset));
            }

            runPfn = pfn;
            runCount = 1;
            runOffset = offset;
        }

        if (runCount > 0)
        {
            runs.Add((new Run(runPfn << Amd64.PageShift, runCount << Amd64.PageShift, runOffset), $"{mapSection.Name} entries for frame 0x{runPfn:x}", (long)mapSection.Offset));
        }

        var regs = new List<Registers>();
        if (sections.FindIndex(s => s.Name == ".xen_prstatus") is int prIndex and >= 0 && vcpus > 0)
        {
            ElfCoreParser.Section pr = sections[prIndex];
            ReadOnlySpan<byte> ctx = SpanOf(pr);
            ulong each = (ulong)ctx.Length / vcpus;
            if (each < ContextSize)
            {
                throw new VmiFormatException($".xen_prstatus holds {ctx.Length} bytes for {vcpus} vCPUs: less than a {ContextSize}-byte vcpu_guest_context each.", path, pr.HeaderAt);
            }

            for (ulong v = 0; v < vcpus; v++)
            {
                regs.Add(ParseContext(ctx.Slice((int)(v * each), ContextSize)));
            }
        }

        return new ParsedImage(MemoryImageFormat.XenCore, new RunSource(file, runs), regs.ToArray(), "the Xen vCPU contexts (.xen_prstatus)", null);
    }

    public static Registers ParseContext(ReadOnlySpan<byte> c)
    {
        ReadOnlySpan<byte> u = c[UserRegsOffset..];
        var r = new Registers
        {
            R15 = Q(u, 0), R14 = Q(u, 8), R13 = Q(u, 16), R12 = Q(u, 24), Rbp = Q(u, 32), Rbx = Q(u, 40), R11 = Q(u, 48), R10 = Q(u, 56),
            R9 = Q(u, 64), R8 = Q(u, 72), Rax = Q(u, 80), Rcx = Q(u, 88), Rdx = Q(u, 96), Rsi = Q(u, 104), Rdi = Q(u, 112),
            Rip = Q(u, 128), Cs = new SegmentRegister(BinaryPrimitives.ReadUInt16LittleEndian(u[136..]), 0, 0, 0),
            Rflags = Q(u, 144), Rsp = Q(u, 152), Ss = new SegmentRegister(BinaryPrimitives.ReadUInt16LittleEndian(u[160..]), 0, 0, 0),
            Cr0 = Q(c, CtrlRegOffset), Cr2 = Q(c, CtrlRegOffset + 16), Cr3 = Q(c, CtrlRegOffset + 24), Cr4 = Q(c, CtrlRegOffset + 32),
            ShadowGs = Q(c, GsBaseKernelOffset),
        };
        return r with { MsrEfer = ElfNotes.InferEfer(r) };
    }

    private static ulong Q(ReadOnlySpan<byte> s, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(s[offset..]);
}
