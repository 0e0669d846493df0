using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Mock;

/// <summary>
/// Builds a <see cref="MockGuest"/> with real page tables, fluently:
/// <code>
/// MockGuest guest = new MockGuestBuilder(PagingMode.Ia32e, vcpuCount: 2)
///     .Map(new Va(0xffff_8000_0000_0000), new Pa(0x20_0000), 0x20_0000, PageSizeKind.Size2M)
///     .WriteString(new Va(0xffff_8000_0000_0100), "hello")
///     .WithRegisters(0, r => r with { Rip = 0xffff_8000_0000_0000 })
///     .Build();
/// </code>
/// Every vCPU starts in the chosen paging mode (CR0.PG, CR4.PAE/PSE/LA57 and EFER.LME/LMA/NXE set to match)
/// with CR3 pointing at the default address space (<see cref="AddressSpace"/>). Further address spaces
/// come from <see cref="NewAddressSpace"/>.
/// </summary>
public sealed class MockGuestBuilder
{
    private readonly MockGuest _guest;
    private bool _built;

    public MockGuestBuilder(PagingMode mode = PagingMode.Ia32e, int vcpuCount = 1, Gfn? maxGfn = null, Pa? tableBase = null)
    {
        if (mode == PagingMode.Disabled)
        {
            throw new ArgumentException("A builder makes page tables; for a guest with paging off, use new MockGuest(...) directly.", nameof(mode));
        }

        _guest = new MockGuest(vcpuCount, maxGfn);
        Mode = mode;
        AddressSpace = new PageTableBuilder(_guest.Memory, mode, tableBase);
        for (int i = 0; i < vcpuCount; i++)
        {
            _guest.SetRegistersUnlogged((ushort)i, RegistersFor(mode, AddressSpace.Cr3));
        }
    }

    public PagingMode Mode { get; }

    /// <summary>The default address space: every vCPU's CR3 points here unless changed.</summary>
    public PageTableBuilder AddressSpace { get; }

    /// <summary>The guest being built (usable before <see cref="Build"/>, e.g. to script events).</summary>
    public MockGuest Guest => _guest;

    /// <summary>Registers of a vCPU in <paramref name="mode"/> with CR3 = <paramref name="cr3"/>: ring 0, interrupts on.</summary>
    public static Registers RegistersFor(PagingMode mode, ulong cr3)
    {
        bool longMode = mode is PagingMode.Ia32e or PagingMode.Ia32eLa57;
        ulong cr4 = Amd64.Cr4Pse | (1UL << 7); // PSE, PGE
        ulong efer = 0;
        if (mode != PagingMode.Legacy32)
        {
            cr4 |= Amd64.Cr4Pae | (1UL << 9) | (1UL << 10); // PAE, OSFXSR, OSXMMEXCPT
            efer |= Amd64.EferNxe;
        }

        if (longMode)
        {
            efer |= 1 | Amd64.EferLme | Amd64.EferLma; // SCE, LME, LMA
        }

        if (mode == PagingMode.Ia32eLa57)
        {
            cr4 |= Amd64.Cr4La57;
        }

        ushort codeAttributes = longMode ? (ushort)0xA9B : (ushort)0xC9B; // present DPL0 code, L or D/B, G
        var data = new SegmentRegister(0x18, 0, 0xFFFF_FFFF, 0xC93);
        return new Registers
        {
            Cr0 = Amd64.Cr0Pg | (1UL << 16) | (1UL << 5) | (1UL << 4) | (1UL << 1) | 1, // PG WP NE ET MP PE
            Cr3 = cr3,
            Cr4 = cr4,
            MsrEfer = efer,
            Rflags = 0x202,
            Cs = new SegmentRegister(0x10, 0, 0xFFFF_FFFF, codeAttributes),
            Ss = data,
            Ds = data,
            Es = data,
            MsrPat = 0x0007_0406_0007_0406,
        };
    }

    /// <summary>Maps a range in the default address space (see <see cref="PageTableBuilder.Map"/>).</summary>
    public MockGuestBuilder Map(Va va, Pa pa, ulong size, PageSizeKind pageSize = PageSizeKind.Size4K, PageEntryFlags flags = PageEntryFlags.Writable)
    {
        CheckOpen();
        AddressSpace.Map(va, pa, size, pageSize, flags);
        return this;
    }

    public MockGuestBuilder Unmap(Va va, ulong size = Amd64.PageSize)
    {
        CheckOpen();
        AddressSpace.Unmap(va, size);
        return this;
    }

    /// <summary>Writes bytes at a virtual address of the default address space.</summary>
    public MockGuestBuilder Write(Va va, ReadOnlySpan<byte> data)
    {
        CheckOpen();
        AddressSpace.Write(va, data);
        return this;
    }

    public MockGuestBuilder WriteString(Va va, string text)
    {
        CheckOpen();
        AddressSpace.WriteString(va, text);
        return this;
    }

    public MockGuestBuilder WriteWString(Va va, string text)
    {
        CheckOpen();
        AddressSpace.WriteWString(va, text);
        return this;
    }

    /// <summary>Writes bytes at a physical address, populating frames.</summary>
    public MockGuestBuilder WritePhysical(Pa pa, ReadOnlySpan<byte> data)
    {
        CheckOpen();
        _guest.Memory.Write(pa, data);
        return this;
    }

    public MockGuestBuilder WritePhysicalString(Pa pa, string text) => WritePhysical(pa, [.. Encoding.UTF8.GetBytes(text), 0]);

    /// <summary>Populates [<paramref name="pa"/>, +<paramref name="size"/>) with zeros (guest RAM that reads as zeros).</summary>
    public MockGuestBuilder Populate(Pa pa, ulong size)
    {
        CheckOpen();
        if (size == 0)
        {
            return this;
        }

        Gfn first = Amd64.GfnFromPa(pa);
        Gfn last = Amd64.GfnFromPa(new Pa(pa.Value + size - 1));
        _guest.Memory.Populate(first, last.Value - first.Value + 1);
        return this;
    }

    /// <summary>A new address space (a new root); by default its upper (kernel) half shares the default space's tables.</summary>
    public MockGuestBuilder NewAddressSpace(out PageTableBuilder space, bool shareUpperHalf = true, Pa? tableBase = null)
    {
        CheckOpen();
        space = AddressSpace.CreateAddressSpace(shareUpperHalf, tableBase);
        return this;
    }

    /// <summary>Points <paramref name="vcpu"/>'s CR3 at <paramref name="space"/>.</summary>
    public MockGuestBuilder WithAddressSpace(VcpuId vcpu, PageTableBuilder space)
    {
        ArgumentNullException.ThrowIfNull(space);
        CheckOpen();
        if (space.Memory != _guest.Memory || space.Mode != Mode)
        {
            throw new ArgumentException("The address space belongs to another guest or another paging mode: create it with NewAddressSpace.", nameof(space));
        }

        _guest.UpdateRegisters(vcpu, r => r with { Cr3 = space.Cr3 });
        return this;
    }

    /// <summary>Changes <paramref name="vcpu"/>'s registers (applied now, on top of the mode's defaults).</summary>
    public MockGuestBuilder WithRegisters(VcpuId vcpu, Func<Registers, Registers> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        CheckOpen();
        _guest.UpdateRegisters(vcpu, update);
        return this;
    }

    /// <summary>
    /// Gives the guest a physical-address width (MAXPHYADDR, 32 to 52 bits; 52 unless set), reported in its
    /// <see cref="VmiInfo.PhysicalAddressWidth"/>: a <see cref="VmiCore"/> opened on it treats entry bits from
    /// there up to 51 as reserved. The page tables built here are not checked against it.
    /// </summary>
    public MockGuestBuilder WithPhysicalAddressWidth(int bits)
    {
        CheckOpen();
        _guest.Info = _guest.Info with { PhysicalAddressWidth = bits };
        return this;
    }

    /// <summary>Finishes: the guest is returned and this builder can no longer change it (its address spaces still can).</summary>
    public MockGuest Build()
    {
        CheckOpen();
        _built = true;
        return _guest;
    }

    private void CheckOpen()
    {
        if (_built)
        {
            throw new InvalidOperationException("Build() was already called: this builder's guest is finished. Change it through its address spaces or a new builder.");
        }
    }
}
