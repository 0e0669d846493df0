using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Dump.Tests;

/// <summary>
/// A tiny synthetic guest (4-level page tables mapping VA 0x400000.. to data pages) and every image format
/// of it: the seeds of the fuzz corpus and the subject of the format unit tests.
/// </summary>
internal static class Seeds
{
    public const ulong Cr3 = 0x1000;
    public const ulong UserVa = 0x40_0000;
    public const int Frames = 12;
    public const string Vmcoreinfo = "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82001000\nNUMBER(phys_base)=-2145386496\nKERNELOFFSET=0\n";

    /// <summary>Frame contents: tables in frames 1-4, a recognisable pattern elsewhere.</summary>
    public static byte[] Frame(ulong gfn)
    {
        byte[] p = new byte[4096];
        switch (gfn)
        {
            case 1: BinaryPrimitives.WriteUInt64LittleEndian(p, 0x2000 | 7); break; // PML4[0] -> PDPT
            case 2: BinaryPrimitives.WriteUInt64LittleEndian(p, 0x3000 | 7); break; // PDPT[0] -> PD
            case 3: BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(2 * 8), 0x4000 | 7); break; // PD[2] (VA 0x400000) -> PT
            case 4:
                for (int i = 0; i < 4; i++)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(i * 8), ((ulong)(8 + i) << 12) | 7); // VA 0x400000+i*4K -> frame 8+i
                }

                break;
            default:
                for (int i = 0; i < p.Length; i++)
                {
                    p[i] = (byte)((gfn * 31) + (ulong)i);
                }

                break;
        }

        return p;
    }

    public static IReadOnlyList<(ulong Pfn, byte[] Page)> Pages => Enumerable.Range(0, Frames).Select(i => ((ulong)i, Frame((ulong)i))).ToList();

    public static byte[] Raw() => Pages.SelectMany(p => p.Page).ToArray();

    public static Registers Registers => MemoryImage.Synthesize(Cr3, PagingMode.Ia32e) with { Rip = 0x40_1234, Rsp = 0x40_2000, Rax = 0x1111, R15 = 0xF15, ShadowGs = 0xffff_8880_0000_0000 };

    /// <summary>A driver over the synthetic guest: registers and VMCOREINFO, as a session would have.</summary>
    public sealed class Driver : IVmiDriver, IVmiRead, IVmiQueryRegisters, IVmcoreinfoSource
    {
        public string Name => "seed";

        public VmiInfo Info => new(4096, 12, new Gfn(Frames - 1), 2);

        public string? Vmcoreinfo => Seeds.Vmcoreinfo;

        public Registers GetRegisters(VcpuId vcpu) => Registers with { Rax = vcpu.Value };

        public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
        {
            page = gfn.Value is < Frames and not 6 ? new MappedPage(gfn, Frame(gfn.Value)) : null; // frame 6 is a hole
            return page is not null;
        }

        public void Dispose()
        {
        }
    }

    public static byte[] Written(ImageFormat format)
    {
        using var core = new VmiCore(new Driver());
        var s = new MemoryStream();
        ImageWriter.Write(core, s, format, null, CancellationToken.None);
        return s.ToArray();
    }

    public static byte[] Notes()
    {
        using var core = new VmiCore(new Driver());
        return ImageWriter.BuildNotes(core);
    }

    public static byte[] Kdump(bool flattened = false)
    {
        var pages = Pages.Where(p => p.Pfn != 6).ToList();
        byte[] flat = KdumpBuilder.Build(pages, Frames, Notes(), Vmcoreinfo);
        return flattened ? KdumpBuilder.Flatten(flat) : flat;
    }

    public static byte[] Xen()
    {
        var s = new MemoryStream();
        var pages = Pages.Where(p => p.Pfn != 6).ToList();
        XenCoreBuilder.Write(s, pages.Count, i => pages[i], [Registers, Registers]);
        return s.ToArray();
    }

    public static IEnumerable<(string Name, byte[] Bytes)> All()
    {
        yield return ("seed.elf", Written(ImageFormat.ElfCore));
        yield return ("seed.lime", Written(ImageFormat.Lime));
        yield return ("seed.raw", Raw());
        yield return ("seed.kdump", Kdump());
        yield return ("seed-flattened.kdump", Kdump(flattened: true));
        yield return ("seed.xen", Xen());
    }
}
