using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump;

/// <summary>The formats <see cref="MemoryImage.Open"/> recognises, by content.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum MemoryImageFormat
{
    /// <summary>A raw physical image: file offset = physical address (or an explicit memory map).</summary>
    Raw,

    /// <summary>An ELF core as QEMU's dump-guest-memory (and Linux /proc/vmcore) writes it.</summary>
    ElfCore,

    /// <summary>Xen's <c>xl dump-core</c> ELF (.xen_pages with .xen_pfn or .xen_p2m).</summary>
    XenCore,

    /// <summary>kdump-compressed (makedumpfile's diskdump format, flat or flattened; QEMU's kdump-zlib).</summary>
    Kdump,

    /// <summary>LiME (Linux Memory Extractor) ranges.</summary>
    Lime,
}

/// <summary>A contiguous run of guest physical memory that an image backs.</summary>
public readonly record struct PhysicalRange(Pa Start, ulong Length)
{
    public Pa End => Start + Length;

    /// <summary>
    /// True for memory the image declares but does not store (an ELF segment's p_memsz beyond its p_filesz): it reads
    /// as zeros. Such ranges can be huge at no cost to the file, so writers keep them as holes and searches skip them.
    /// </summary>
    public bool ZeroFill { get; init; }

    public override string ToString() => $"{Start}-{End} ({Length} bytes{(ZeroFill ? ", zero-filled, not stored" : string.Empty)})";
}

/// <summary>For raw images: physical range [Start, Start+Length) is stored at <see cref="FileOffset"/>.</summary>
public readonly record struct RawRegion(Pa Start, ulong Length, long FileOffset);

/// <summary>A driver that knows the guest kernel's VMCOREINFO (the writer puts it in the ELF notes).</summary>
public interface IVmcoreinfoSource
{
    string? Vmcoreinfo { get; }
}

/// <summary>How to open an image.</summary>
public sealed record MemoryImageOptions
{
    /// <summary>Overrides the CR3 the image carries (or supplies one where it carries none).</summary>
    public ulong? Cr3 { get; init; }

    /// <summary>The paging mode to assume with <see cref="Cr3"/> when the image carries no registers (default IA-32e 4-level).</summary>
    public PagingMode? PagingMode { get; init; }

    /// <summary>For raw images: where each physical range lies in the file. Without it, file offset = physical address.</summary>
    public IReadOnlyList<RawRegion>? RawMemoryMap { get; init; }
}

/// <summary>
/// A memory image as a driver: memory-mapped, pages handed out as views of the mapping (zero copy),
/// kdump pages decompressed into pooled buffers. Registers come from the image where it carries
/// them, so virtual addresses translate with no extra input.
/// </summary>
public class MemoryImage : IVmiDriver, IVmiRead, IVmiDirectMemory, IVmcoreinfoSource, IVmiStoredExtent
{
    private readonly ImageSource _source;
    private readonly Registers[] _registers;
    private bool _disposed;

    private protected MemoryImage(string path, MemoryImageFormat format, ImageSource source, Registers[] registers, string? vmcoreinfo, string registerSource)
    {
        Path = path;
        Format = format;
        _source = source;
        _registers = registers;
        Vmcoreinfo = vmcoreinfo;
        RegisterSource = registerSource;
        Ranges = source.Ranges;
        Info = new VmiInfo(Amd64.PageSize, Amd64.PageShift, new Gfn(source.MaxGfn), Math.Max(1, registers.Length));
    }

    public string Path { get; }

    /// <summary>The open file the frames are read from.</summary>
    internal ImageFile File => _source.File;

    public MemoryImageFormat Format { get; }

    public string Name => Format switch
    {
        MemoryImageFormat.Raw => "raw image",
        MemoryImageFormat.ElfCore => "ELF core",
        MemoryImageFormat.XenCore => "Xen dump-core",
        MemoryImageFormat.Kdump => "kdump",
        _ => "LiME",
    };

    public VmiInfo Info { get; }

    /// <summary>The physical memory the image backs, in ascending order, merged where contiguous (stored and zero-filled apart).</summary>
    public IReadOnlyList<PhysicalRange> Ranges { get; }

    /// <summary>The end of the last range the file stores (zero-filled ranges beyond it are not counted).</summary>
    public Pa StoredEnd => Ranges.LastOrDefault(r => !r.ZeroFill).End;

    /// <summary>Registers per vCPU as the image carries them (empty when it carries none and no CR3 was given).</summary>
    public IReadOnlyList<Registers> Registers => _registers;

    /// <summary>Where the registers came from (e.g. "QEMU CPU-state note", "-Cr3 option", "VMCOREINFO swapper_pg_dir").</summary>
    public string RegisterSource { get; }

    /// <summary>The Linux VMCOREINFO text when the image carries it.</summary>
    public string? Vmcoreinfo { get; }

    /// <summary>VMCOREINFO as key/value pairs (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> VmcoreinfoEntries => ParseVmcoreinfo(Vmcoreinfo);

    /// <summary>Opens an image, choosing the format from the file's content (magic bytes), never its name.</summary>
    public static MemoryImage Open(string path, MemoryImageOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new MemoryImageOptions();
        path = System.IO.Path.GetFullPath(path);
        var file = new ImageFile(path);
        bool ok = false;
        try
        {
            ParsedImage parsed = ImageParsers.Parse(file, options);
            MemoryImage image = Create(path, parsed, options);
            ok = true;
            return image;
        }
        finally
        {
            if (!ok)
            {
                file.Dispose();
            }
        }
    }

    /// <summary>The format the file's content says it is (without opening it as an image).</summary>
    public static MemoryImageFormat DetectFormat(ReadOnlySpan<byte> header) => ImageParsers.Detect(header);

    private static MemoryImage Create(string path, ParsedImage parsed, MemoryImageOptions options)
    {
        Registers[] regs = parsed.Registers;
        string from = parsed.RegisterSource;
        Registers[] partial = parsed.PartialRegisters;
        if (options.Cr3 is { } cr3)
        {
            if (regs.Length == 0)
            {
                Registers control = Synthesize(cr3, options.PagingMode ?? PagingMode.Ia32e);
                regs = partial.Length == 0 ? [control] : partial.Select(p => Merge(p, control)).ToArray();
            }
            else
            {
                regs = regs.Select(r => r with { Cr3 = cr3 }).ToArray();
                if (options.PagingMode is { } m)
                {
                    regs = regs.Select(r => WithMode(r, m)).ToArray();
                }
            }

            from = "the -Cr3 option";
        }
        else if (regs.Length == 0 && FromVmcoreinfo(parsed.Vmcoreinfo, out Registers? derived))
        {
            regs = partial.Length == 0 ? [derived] : partial.Select(p => Merge(p, derived)).ToArray();
            from = "VMCOREINFO (swapper_pg_dir, phys_base)" + (partial.Length > 0 ? " with NT_PRSTATUS" : string.Empty);
        }

        return regs.Length > 0
            ? new RegisterMemoryImage(path, parsed.Format, parsed.Source, regs, parsed.Vmcoreinfo, from)
            : new MemoryImage(path, parsed.Format, parsed.Source, regs, parsed.Vmcoreinfo, "none");
    }

    private static Registers Merge(Registers gprs, Registers control) =>
        gprs with { Cr0 = control.Cr0, Cr3 = control.Cr3, Cr4 = control.Cr4, MsrEfer = control.MsrEfer };

    /// <summary>
    /// Registers enough to translate: paging on in <paramref name="mode"/> with <paramref name="cr3"/>. EFER.NXE is
    /// set because an image cannot say otherwise and it is the safe assumption: a guest running without NXE cannot
    /// have bit 63 set in an entry it uses (that is a reserved-bit fault), so assuming NXE never breaks a valid walk,
    /// while assuming it off would fail every no-execute mapping of a modern kernel.
    /// </summary>
    internal static Registers Synthesize(ulong cr3, PagingMode mode) => WithMode(new Registers { Cr3 = cr3, MsrEfer = Amd64.EferNxe }, mode);

    private static Registers WithMode(Registers r, PagingMode mode)
    {
        ulong cr0 = r.Cr0 | 1; // PE
        ulong cr4 = r.Cr4 & ~(Amd64.Cr4Pae | Amd64.Cr4La57 | Amd64.Cr4Pse);
        ulong efer = r.MsrEfer & ~(Amd64.EferLma | Amd64.EferLme);
        switch (mode)
        {
            case PagingMode.Disabled: cr0 &= ~Amd64.Cr0Pg; break;
            case PagingMode.Legacy32: cr0 |= Amd64.Cr0Pg; cr4 |= Amd64.Cr4Pse; break;
            case PagingMode.Pae: cr0 |= Amd64.Cr0Pg; cr4 |= Amd64.Cr4Pae; break;
            case PagingMode.Ia32e: cr0 |= Amd64.Cr0Pg; cr4 |= Amd64.Cr4Pae; efer |= Amd64.EferLma | Amd64.EferLme; break;
            default: cr0 |= Amd64.Cr0Pg; cr4 |= Amd64.Cr4Pae | Amd64.Cr4La57; efer |= Amd64.EferLma | Amd64.EferLme; break;
        }

        return r with { Cr0 = cr0, Cr4 = cr4, MsrEfer = efer };
    }

    /// <summary>
    /// Linux x86-64 publishes SYMBOL(swapper_pg_dir) (a kernel-image virtual address), NUMBER(phys_base) and
    /// NUMBER(pgtable_l5_enabled): the kernel's page-table root is swapper_pg_dir - __START_KERNEL_map + phys_base.
    /// </summary>
    private static bool FromVmcoreinfo(string? text, [NotNullWhen(true)] out Registers? registers)
    {
        registers = null;
        IReadOnlyDictionary<string, string> v = ParseVmcoreinfo(text);
        if (!v.TryGetValue("SYMBOL(swapper_pg_dir)", out string? pgd) && !v.TryGetValue("SYMBOL(init_top_pgt)", out pgd))
        {
            return false;
        }

        if (!ulong.TryParse(pgd, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong va) || va < 0xffff_ffff_8000_0000UL)
        {
            return false;
        }

        ulong physBase = 0;
        if (v.TryGetValue("NUMBER(phys_base)", out string? pb) && !long.TryParse(pb, NumberStyles.Integer, CultureInfo.InvariantCulture, out long pbl))
        {
            return false;
        }
        else if (pb is not null)
        {
            physBase = (ulong)long.Parse(pb, CultureInfo.InvariantCulture);
        }

        bool la57 = v.TryGetValue("NUMBER(pgtable_l5_enabled)", out string? l5) && l5 == "1";
        registers = Synthesize(va - 0xffff_ffff_8000_0000UL + physBase, la57 ? PagingMode.Ia32eLa57 : PagingMode.Ia32e);
        return true;
    }

    internal static IReadOnlyDictionary<string, string> ParseVmcoreinfo(string? text)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        if (text is null)
        {
            return d;
        }

        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                d[line[..eq]] = line[(eq + 1)..].TrimEnd('\0', '\r');
            }
        }

        return d;
    }

    public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _source.TryMapPage(gfn.Value, out page);
    }

    /// <summary>Memory stored as is (raw, ELF, LiME, Xen core) read straight into the caller's buffer, a run at a time; 0 for compressed or assembled frames.</summary>
    public int ReadDirect(ulong pa, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _source.ReadDirect(pa, destination);
    }

    internal Registers GetRegistersCore(VcpuId vcpu)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (vcpu.Value >= _registers.Length)
        {
            throw new VcpuNotFoundException(vcpu, _registers.Length);
        }

        return _registers[vcpu.Value] with { };
    }

    public override string ToString() => $"{Name} {Path} ({Ranges.Sum(r => (decimal)r.Length) / (1024 * 1024):0.#} MiB, {_registers.Length} vCPU register set(s))";

    protected virtual void Dispose(bool disposing)
    {
        if (!_disposed && disposing)
        {
            _source.Dispose();
        }

        _disposed = true;
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }
}

/// <summary>An image that carries registers (or was given a CR3): it answers register queries.</summary>
internal sealed class RegisterMemoryImage(string path, MemoryImageFormat format, ImageSource source, Registers[] registers, string? vmcoreinfo, string registerSource)
    : MemoryImage(path, format, source, registers, vmcoreinfo, registerSource), IVmiQueryRegisters
{
    public Registers GetRegisters(VcpuId vcpu) => GetRegistersCore(vcpu);
}

/// <summary>What a parser found.</summary>
internal sealed record ParsedImage(MemoryImageFormat Format, ImageSource Source, Registers[] Registers, string RegisterSource, string? Vmcoreinfo)
{
    /// <summary>Registers without control registers (NT_PRSTATUS only): completed from VMCOREINFO or -Cr3 when possible.</summary>
    public Registers[] PartialRegisters { get; init; } = [];
}
