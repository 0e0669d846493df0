namespace Vmi.Mock;

/// <summary>
/// Every address, value and string of the demo guest (<see cref="DemoGuest.Create"/>), so tests and
/// documentation refer to them by name. IA-32e 4-level paging, 4 vCPUs, 1 GiB of guest-physical
/// address space of which about 2.3 MiB is populated.
/// <code>
/// virtual (kernel half, shared by every address space)      physical
/// 0xffffffff81000000  kernel text, one 2 MiB page (RX)        0x01000000
/// 0xffffffff82000000  kernel data, 16 x 4 KiB (RW, NX)        0x01200000   page 5 is not mapped
/// 0xffffc90000000000  kernel stacks, 4 x 4 KiB (RW, NX)       0x01300000
/// 0xffff888000000000  direct map of all memory, 1 GiB page    0x00000000
/// virtual (user half; process A / process B)
/// 0x0000000000400000  user code, 2 x 4 KiB (user, RX)         0x02000000 / 0x02100000
/// 0x0000000000600000  user data, 1 x 4 KiB (user, RW, NX)     0x02010000 / 0x02110000
/// 0x00007ffffffde000  user stack, 2 x 4 KiB (user, RW, NX)    0x02020000 / 0x02120000
/// </code>
/// </summary>
public static class DemoGuestLayout
{
    // ------------------------------------------------------------------ machine

    /// <summary>Number of vCPUs.</summary>
    public const int VcpuCount = 4;

    /// <summary>The highest guest frame: 1 GiB of guest-physical address space (most of it absent).</summary>
    public const ulong MaxGfn = 0x3_FFFF;

    /// <summary>Page tables of the kernel address space are allocated from here.</summary>
    public const ulong KernelPageTablesPa = 0x0010_0000;

    /// <summary>CR3 of the kernel address space (vCPUs 0 and 1): its PML4 is the first frame of <see cref="KernelPageTablesPa"/>.</summary>
    public const ulong KernelCr3 = KernelPageTablesPa;

    /// <summary>CR3 of user process A (vCPU 3). Its user half differs from process B's; its kernel half is the kernel's.</summary>
    public const ulong ProcessACr3 = 0x0018_0000;

    /// <summary>CR3 of user process B (vCPU 2).</summary>
    public const ulong ProcessBCr3 = 0x001C_0000;

    // ------------------------------------------------------------------ kernel text

    /// <summary>Kernel text: one 2 MiB page, global, read-only, executable.</summary>
    public const ulong KernelTextVa = 0xFFFF_FFFF_8100_0000;

    public const ulong KernelTextPa = 0x0100_0000;

    public const ulong KernelTextSize = 0x20_0000;

    /// <summary>A function entry (vCPU 0's RIP) holding <see cref="KernelEntryCode"/>.</summary>
    public const ulong KernelEntryVa = KernelTextVa + 0x100;

    /// <summary>The bytes at <see cref="KernelEntryVa"/>: push rbp; mov rbp, rsp; nop; nop; leave; ret.</summary>
    public static ReadOnlySpan<byte> KernelEntryCode => [0x55, 0x48, 0x89, 0xE5, 0x90, 0x90, 0xC9, 0xC3];

    /// <summary>An INT3 (0xCC) that vCPU 1 is about to execute (vCPU 1's RIP); the scripted breakpoint event is raised here.</summary>
    public const ulong BreakpointVa = KernelTextVa + 0x2A0;

    /// <summary>The syscall entry point: IA32_LSTAR of every vCPU.</summary>
    public const ulong SyscallEntryVa = KernelTextVa + 0x800;

    /// <summary>Where the scripted LSTAR write (a rootkit-style hook) wants to point the syscall entry.</summary>
    public const ulong HookedSyscallEntryVa = KernelTextVa + 0x900;

    /// <summary>The kernel banner, a NUL-terminated ASCII string (<see cref="KernelBanner"/>).</summary>
    public const ulong KernelBannerVa = KernelTextVa + 0x10_0000;

    public const string KernelBanner = "Linux version 6.6.0-vmi-demo (demo@vmi.powershell) #1 SMP PREEMPT_DYNAMIC";

    // ------------------------------------------------------------------ kernel data

    /// <summary>Kernel data: 16 pages of 4 KiB, global, writable, no-execute; page 5 (<see cref="UnmappedVa"/>) is not mapped.</summary>
    public const ulong KernelDataVa = 0xFFFF_FFFF_8200_0000;

    public const ulong KernelDataPa = 0x0120_0000;

    public const ulong KernelDataSize = 0x1_0000;

    /// <summary>A little-endian 64-bit value, <see cref="MagicValue"/>.</summary>
    public const ulong MagicValueVa = KernelDataVa + 0x10;

    public const ulong MagicValue = 0x0123_4567_89AB_CDEF;

    /// <summary>A 64-bit pointer whose value is <see cref="AsciiStringVa"/>.</summary>
    public const ulong PointerVa = KernelDataVa + 0x18;

    /// <summary>A NUL-terminated ASCII string, <see cref="AsciiString"/>.</summary>
    public const ulong AsciiStringVa = KernelDataVa + 0x100;

    public const string AsciiString = "Hello from the Vmi.PowerShell demo guest!";

    /// <summary>A NUL-terminated UTF-16LE string, <see cref="WideString"/>.</summary>
    public const ulong WideStringVa = KernelDataVa + 0x200;

    public const string WideString = @"C:\Windows\System32\ntoskrnl.exe";

    /// <summary>A NUL-terminated ASCII string that starts 16 bytes before a page boundary and runs across it.</summary>
    public const ulong CrossPageStringVa = KernelDataVa + 0x1FF0;

    public const string CrossPageString = "this string crosses a page boundary";

    /// <summary>Where <see cref="Pattern"/> lies; it occurs exactly once in the guest's physical memory.</summary>
    public const ulong PatternVa = KernelDataVa + 0x3456;

    /// <summary>The bytes to look for with Find-VmiMemory: "VMI!" then DE AD BE EF CA FE BA BE.</summary>
    public static ReadOnlySpan<byte> Pattern => [0x56, 0x4D, 0x49, 0x21, 0xDE, 0xAD, 0xBE, 0xEF, 0xCA, 0xFE, 0xBA, 0xBE];

    /// <summary>The page before the hole, filled with <see cref="BeforeHoleFill"/>.</summary>
    public const ulong BeforeHoleVa = KernelDataVa + 0x4000;

    public const byte BeforeHoleFill = 0xAA;

    /// <summary>A 4 KiB page inside the kernel-data range that is deliberately not mapped (reads fault; -ZeroFill gives zeros).</summary>
    public const ulong UnmappedVa = KernelDataVa + 0x5000;

    /// <summary>The frame behind the hole is populated (filled with <see cref="HiddenFill"/>) and reachable through the direct map only.</summary>
    public const ulong UnmappedPa = KernelDataPa + 0x5000;

    public const byte HiddenFill = 0x55;

    /// <summary>The page after the hole, filled with <see cref="AfterHoleFill"/>.</summary>
    public const ulong AfterHoleVa = KernelDataVa + 0x6000;

    public const byte AfterHoleFill = 0xBB;

    /// <summary>A kernel-data page vCPU 1 writes to: remove W from its frame (Set-VmiMemoryAccess) and the scripted memory-access event arrives.</summary>
    public const ulong WatchedVa = KernelDataVa + 0x8000;

    public const ulong WatchedPa = KernelDataPa + 0x8000;

    /// <summary>The exact address vCPU 1 writes (8 bytes) in the scripted memory-access event.</summary>
    public const ulong WatchedWriteVa = WatchedVa + 0x10;

    public const ulong WatchedWritePa = WatchedPa + 0x10;

    // ------------------------------------------------------------------ kernel stacks and direct map

    /// <summary>Kernel stacks: 4 pages of 4 KiB (one per vCPU), writable, no-execute.</summary>
    public const ulong KernelStackVa = 0xFFFF_C900_0000_0000;

    public const ulong KernelStackPa = 0x0130_0000;

    public const ulong KernelStackSize = 0x4000;

    /// <summary>The direct map: all of guest-physical memory from PA 0 on one 1 GiB page (writable, no-execute).</summary>
    public const ulong DirectMapVa = 0xFFFF_8880_0000_0000;

    public const ulong DirectMapSize = 0x4000_0000;

    // ------------------------------------------------------------------ user processes

    /// <summary>User code (2 pages, user, read-only, executable) in both processes; starts with an ELF magic.</summary>
    public const ulong UserCodeVa = 0x40_0000;

    public const ulong UserCodeSize = 0x2000;

    /// <summary>User data (1 page, user, writable, no-execute) in both processes, at the same virtual address.</summary>
    public const ulong UserDataVa = 0x60_0000;

    /// <summary>Each process's secret string: the same virtual address holds <see cref="ProcessASecret"/> under <see cref="ProcessACr3"/> and <see cref="ProcessBSecret"/> under <see cref="ProcessBCr3"/>.</summary>
    public const ulong UserSecretVa = UserDataVa + 0x40;

    public const string ProcessASecret = "process A: the password is hunter2";

    public const string ProcessBSecret = "process B: correct horse battery staple";

    /// <summary>User stack: 2 pages below <see cref="UserStackTop"/>.</summary>
    public const ulong UserStackVa = 0x7FFF_FFFD_E000;

    public const ulong UserStackTop = 0x7FFF_FFFE_0000;

    public const ulong ProcessACodePa = 0x0200_0000;

    public const ulong ProcessADataPa = 0x0201_0000;

    public const ulong ProcessAStackPa = 0x0202_0000;

    public const ulong ProcessBCodePa = 0x0210_0000;

    public const ulong ProcessBDataPa = 0x0211_0000;

    public const ulong ProcessBStackPa = 0x0212_0000;

    /// <summary>The first bytes of user code: an ELF magic and class/data/version bytes.</summary>
    public static ReadOnlySpan<byte> UserCodeMagic => [0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00];

    // ------------------------------------------------------------------ vCPUs

    /// <summary>RIP of each vCPU: 0 and 1 in the kernel, 2 in process B's code, 3 in process A's code.</summary>
    public static IReadOnlyList<ulong> VcpuRip { get; } = [KernelEntryVa, BreakpointVa, UserCodeVa + 0x10, UserCodeVa + 0x40];

    /// <summary>RSP of each vCPU: 0 and 1 on their kernel stacks, 2 and 3 on their processes' user stacks.</summary>
    public static IReadOnlyList<ulong> VcpuRsp { get; } = [KernelStackVa + 0x0FC0, KernelStackVa + 0x1F80, UserStackTop - 0x100, UserStackTop - 0x200];

    /// <summary>CR3 of each vCPU.</summary>
    public static IReadOnlyList<ulong> VcpuCr3 { get; } = [KernelCr3, KernelCr3, ProcessBCr3, ProcessACr3];

    /// <summary>RAX of each vCPU (recognisable values: 0x1000 * (vCPU + 1) + 0xA).</summary>
    public static IReadOnlyList<ulong> VcpuRax { get; } = [0x100A, 0x200A, 0x300A, 0x400A];

    /// <summary>vCPU 0's stack holds this return address at its RSP.</summary>
    public const ulong Vcpu0ReturnAddress = KernelTextVa + 0x123;

    // ------------------------------------------------------------------ scripted events

    /// <summary>Once Cr3 monitoring is on, vCPU <see cref="Cr3WriteVcpu"/> switches to process A (writes <see cref="ProcessACr3"/> to CR3).</summary>
    public const int Cr3WriteVcpu = 0;

    /// <summary>Once breakpoint monitoring is on, vCPU <see cref="BreakpointVcpu"/> executes the INT3 at <see cref="BreakpointVa"/>.</summary>
    public const int BreakpointVcpu = 1;

    /// <summary>Once the frame of <see cref="WatchedPa"/> loses W in vCPU <see cref="MemoryAccessVcpu"/>'s view, that vCPU writes <see cref="WatchedWriteVa"/>.</summary>
    public const int MemoryAccessVcpu = 1;

    /// <summary>Once Msr:0xC0000082 (LSTAR) monitoring is on, vCPU <see cref="LstarWriteVcpu"/> tries to write <see cref="HookedSyscallEntryVa"/> to LSTAR.</summary>
    public const int LstarWriteVcpu = 0;

    /// <summary>IA32_LSTAR.</summary>
    public const uint LstarMsr = 0xC000_0082;
}
