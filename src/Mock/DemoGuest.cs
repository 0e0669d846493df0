using System.Buffers.Binary;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using L = Vmi.Mock.DemoGuestLayout;

namespace Vmi.Mock;

/// <summary>
/// The guest behind <c>Connect-VmiDomain -Mock</c>, the documentation and the Pester examples: a small
/// Linux-like IA-32e guest with a kernel half, two user processes, strings, a search pattern, a hole for
/// -ZeroFill, four vCPUs and scripted events. Every fact about it is a constant in <see cref="DemoGuestLayout"/>.
/// </summary>
public static class DemoGuest
{
    /// <summary>A fresh demo guest (each call builds a new, independent one).</summary>
    public static MockGuest Create() => Create(null);

    /// <summary>A fresh demo guest whose Linux-like kernel lists <paramref name="linuxTasks"/> (default: <see cref="Linux.DemoLinuxLayout.Tasks"/>).</summary>
    public static MockGuest Create(IReadOnlyList<Linux.DemoTask>? linuxTasks)
    {
        const PageEntryFlags kernelText = PageEntryFlags.Global;
        const PageEntryFlags kernelData = PageEntryFlags.Writable | PageEntryFlags.Global | PageEntryFlags.NoExecute;
        const PageEntryFlags userCode = PageEntryFlags.User;
        const PageEntryFlags userData = PageEntryFlags.User | PageEntryFlags.Writable | PageEntryFlags.NoExecute;

        var b = new MockGuestBuilder(PagingMode.Ia32e, L.VcpuCount, new Gfn(L.MaxGfn), new Pa(L.KernelPageTablesPa));

        // Kernel text: a whole 2 MiB page of populated memory.
        b.Populate(new Pa(L.KernelTextPa), L.KernelTextSize)
            .Map(new Va(L.KernelTextVa), new Pa(L.KernelTextPa), L.KernelTextSize, PageSizeKind.Size2M, kernelText);

        // Kernel data: 16 pages with page 5 left out of the mapping.
        b.Populate(new Pa(L.KernelDataPa), L.KernelDataSize)
            .Map(new Va(L.KernelDataVa), new Pa(L.KernelDataPa), L.KernelDataSize, PageSizeKind.Size4K, kernelData)
            .Unmap(new Va(L.UnmappedVa));

        b.Populate(new Pa(L.KernelStackPa), L.KernelStackSize)
            .Map(new Va(L.KernelStackVa), new Pa(L.KernelStackPa), L.KernelStackSize, PageSizeKind.Size4K, kernelData);

        b.Map(new Va(L.DirectMapVa), new Pa(0), L.DirectMapSize, PageSizeKind.Size1G, kernelData);

        // Contents of the kernel half. The text page is read-only to the guest, but the builder writes memory directly.
        b.Write(new Va(L.KernelEntryVa), L.KernelEntryCode)
            .Write(new Va(L.BreakpointVa), [0xCC])
            .Write(new Va(L.SyscallEntryVa), [0x0F, 0x01, 0xF8]) // swapgs
            .Write(new Va(L.HookedSyscallEntryVa), [0xE9, 0x00, 0x00, 0x00, 0x00]) // jmp
            .WriteString(new Va(L.KernelBannerVa), L.KernelBanner)
            .Write(new Va(L.MagicValueVa), U64(L.MagicValue))
            .Write(new Va(L.PointerVa), U64(L.AsciiStringVa))
            .WriteString(new Va(L.AsciiStringVa), L.AsciiString)
            .WriteWString(new Va(L.WideStringVa), L.WideString)
            .WriteString(new Va(L.CrossPageStringVa), L.CrossPageString)
            .Write(new Va(L.PatternVa), L.Pattern)
            .Write(new Va(L.BeforeHoleVa), Fill(L.BeforeHoleFill))
            .WritePhysical(new Pa(L.UnmappedPa), Fill(L.HiddenFill))
            .Write(new Va(L.AfterHoleVa), Fill(L.AfterHoleFill))
            .Write(new Va(L.VcpuRsp[0]), U64(L.Vcpu0ReturnAddress));

        // Two processes: same user virtual addresses, different frames; the kernel half is shared.
        b.NewAddressSpace(out PageTableBuilder processA, shareUpperHalf: true, tableBase: new Pa(L.ProcessACr3))
            .NewAddressSpace(out PageTableBuilder processB, shareUpperHalf: true, tableBase: new Pa(L.ProcessBCr3));
        BuildProcess(b, processA, L.ProcessACodePa, L.ProcessADataPa, L.ProcessAStackPa, L.ProcessASecret, userCode, userData);
        BuildProcess(b, processB, L.ProcessBCodePa, L.ProcessBDataPa, L.ProcessBStackPa, L.ProcessBSecret, userCode, userData);

        // A small Linux-like kernel over it all: kallsyms, BTF, tasks and modules (Linux.DemoLinuxLayout).
        Linux.DemoLinuxKernel.Build(b, processA, processB, linuxTasks);

        var userCs = new SegmentRegister(0x33, 0, 0xFFFF_FFFF, 0xAFB);
        var userSs = new SegmentRegister(0x2B, 0, 0xFFFF_FFFF, 0xCF3);
        for (int i = 0; i < L.VcpuCount; i++)
        {
            int vcpu = i;
            b.WithRegisters((ushort)vcpu, r =>
            {
                r = r with
                {
                    Cr3 = L.VcpuCr3[vcpu],
                    Rip = L.VcpuRip[vcpu],
                    Rsp = L.VcpuRsp[vcpu],
                    Rax = L.VcpuRax[vcpu],
                    MsrLstar = L.SyscallEntryVa,
                    MsrStar = 0x0023_0010_0000_0000,
                    TscAux = (ulong)vcpu,
                };
                return vcpu >= 2 ? r with { Cs = userCs, Ss = userSs, Ds = userSs, Es = userSs } : r;
            });
        }

        MockGuest guest = b.Build();

        // Scripted events: each arrives once, when its monitor is enabled or its access restricted.
        guest.ScriptControlRegisterWrite((ushort)L.Cr3WriteVcpu, ControlRegister.Cr3, L.ProcessACr3);
        guest.ScriptBreakpoint((ushort)L.BreakpointVcpu, new Va(L.BreakpointVa));
        guest.ScriptMemoryAccess((ushort)L.MemoryAccessVcpu, new Pa(L.WatchedWritePa), MemoryAccess.W, new Va(L.WatchedWriteVa));
        guest.ScriptMsrWrite((ushort)L.LstarWriteVcpu, L.LstarMsr, L.HookedSyscallEntryVa);
        // A test hook: watch the guest's state from outside the process (see MockGuest.StateFile).
        guest.StateFile = Environment.GetEnvironmentVariable("VMI_MOCK_STATE_FILE") is { Length: > 0 } stateFile ? stateFile : null;
        return guest;
    }

    private static void BuildProcess(MockGuestBuilder b, PageTableBuilder space, ulong codePa, ulong dataPa, ulong stackPa, string secret, PageEntryFlags code, PageEntryFlags data)
    {
        b.Populate(new Pa(codePa), L.UserCodeSize)
            .Populate(new Pa(dataPa), Amd64.PageSize)
            .Populate(new Pa(stackPa), L.UserStackTop - L.UserStackVa);
        space.Map(new Va(L.UserCodeVa), new Pa(codePa), L.UserCodeSize, PageSizeKind.Size4K, code)
            .Map(new Va(L.UserDataVa), new Pa(dataPa), Amd64.PageSize, PageSizeKind.Size4K, data)
            .Map(new Va(L.UserStackVa), new Pa(stackPa), L.UserStackTop - L.UserStackVa, PageSizeKind.Size4K, data)
            .Write(new Va(L.UserCodeVa), L.UserCodeMagic)
            .WriteString(new Va(L.UserSecretVa), secret);
    }

    private static byte[] U64(ulong value)
    {
        byte[] bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return bytes;
    }

    private static byte[] Fill(byte value)
    {
        byte[] page = new byte[Amd64.PageSize];
        Array.Fill(page, value);
        return page;
    }
}
