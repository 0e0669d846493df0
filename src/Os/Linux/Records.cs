using Vmi.Core.Arch.Amd64;

namespace Vmi.Os.Linux;

/// <summary>What was learnt about the guest's kernel, and where each fact came from.</summary>
public sealed record LinuxKernelInfo
{
    public required string Banner { get; init; }

    /// <summary>The release (uname -r), from the banner.</summary>
    public required string Release { get; init; }

    /// <summary>The runtime address of _text.</summary>
    public required ulong TextBase { get; init; }

    /// <summary>The KASLR slide: _text minus its link address 0xffffffff81000000.</summary>
    public required long Slide { get; init; }

    public required PagingMode PagingMode { get; init; }

    /// <summary>The physical address of the kernel's own top-level page table (init_top_pgt / swapper_pg_dir).</summary>
    public required ulong KernelCr3 { get; init; }

    /// <summary>Page-table isolation is on (the kernel and user halves of each process have separate tables).</summary>
    public required bool PtiEnabled { get; init; }

    /// <summary>How _text was found: "VMCOREINFO KERNELOFFSET", "IA32_LSTAR", "IDT" or "kernel-map page-table scan".</summary>
    public required string TextFoundBy { get; init; }

    /// <summary>Where the symbols came from, e.g. "kallsyms in guest memory at 0x... (94431 symbols)".</summary>
    public required string SymbolSource { get; init; }

    /// <summary>Where the types came from, e.g. "BTF in guest memory at 0x... (123456 types)"; null when the kernel has no BTF.</summary>
    public string? TypeSource { get; init; }

    public required int SymbolCount { get; init; }

    public int TypeCount { get; init; }

    /// <summary>When the target carries VMCOREINFO: whether its SYMBOL(_stext) equals the _stext kallsyms gives (null: no VMCOREINFO).</summary>
    public bool? VmcoreinfoAgrees { get; init; }
}

/// <summary>One task (a thread-group leader: what /proc lists) from the kernel's task list.</summary>
public sealed record LinuxProcess
{
    public required int Pid { get; init; }

    /// <summary>The parent's thread-group id (real_parent->tgid), what /proc/PID/stat and ps show.</summary>
    public required int Ppid { get; init; }

    public required int Tgid { get; init; }

    /// <summary>The name /proc shows: task_struct.comm, or for a kernel thread with a longer name its whole name (struct kthread's full_name).</summary>
    public required string Name { get; init; }

    /// <summary>task_struct.comm itself (at most 15 bytes).</summary>
    public required string Comm { get; init; }

    /// <summary>The state letter as /proc shows it: R, S, D, T, t, X, Z, P, I.</summary>
    public required string State { get; init; }

    /// <summary>Time since boot when the task started (task_struct.start_boottime).</summary>
    public required TimeSpan StartTime { get; init; }

    /// <summary>cred->uid, or null when the cred could not be read.</summary>
    public uint? Uid { get; init; }

    /// <summary>The task_struct's virtual address.</summary>
    public required ulong TaskAddress { get; init; }

    /// <summary>The mm_struct's virtual address; 0 for kernel threads.</summary>
    public ulong MmAddress { get; init; }

    /// <summary>Physical address of the process's page tables (mm->pgd): maps its user half and the kernel. Null for kernel threads.</summary>
    public ulong? Cr3 { get; init; }

    /// <summary>With page-table isolation, the user half's root (Cr3 + 0x1000); else the same as <see cref="Cr3"/>.</summary>
    public ulong? UserCr3 { get; init; }

    /// <summary>The command line (NUL-separated arguments joined with spaces), read through the process's own page tables; null for kernel threads or when unreadable.</summary>
    public string? CommandLine { get; init; }

    public bool IsKernelThread => MmAddress == 0;

    public override string ToString() => $"{Pid} {Name}";
}

/// <summary>A loaded kernel module from the kernel's modules list.</summary>
public sealed record LinuxModule
{
    public required string Name { get; init; }

    /// <summary>Where its core (text) lies: what /proc/modules shows.</summary>
    public required ulong Base { get; init; }

    /// <summary>Its size as /proc/modules shows it.</summary>
    public required ulong Size { get; init; }

    /// <summary>Live, Coming, Going or Unformed.</summary>
    public required string State { get; init; }

    /// <summary>The struct module's virtual address.</summary>
    public required ulong ModuleAddress { get; init; }

    /// <summary>
    /// How many types the module's own BTF holds (the kernel's count, from its btf_modules list); null when the kernel
    /// keeps no BTF for it. The types themselves are read on demand: <see cref="LinuxKernel.ModuleTypes"/>.
    /// </summary>
    public uint? BtfTypeCount { get; init; }

    /// <summary>The kernel keeps split BTF for this module (its types resolve through <see cref="LinuxKernel.ModuleTypes"/>).</summary>
    public bool HasBtf => BtfTypeCount is not null;

    public override string ToString() => Name;
}

/// <summary>A symbol of a loaded module, as /proc/kallsyms shows it: "address type name\t[module]".</summary>
public readonly record struct LinuxModuleSymbol(string Module, string Name, ulong Address, char Type)
{
    public KernelSymbol ToKernelSymbol() => new(Name, Address, Type);

    public override string ToString() => $"{Name} [{Module}]";
}

/// <summary>
/// A module's BTF as the kernel keeps it after load: one entry of the BPF subsystem's <c>btf_modules</c> list
/// (kernel/bpf/btf.c, CONFIG_DEBUG_INFO_BTF_MODULES), whose <c>struct btf</c> holds the module's split BTF, the bytes
/// /sys/kernel/btf/&lt;module&gt; serves.
/// </summary>
public sealed record LinuxModuleBtf
{
    /// <summary>The module's name (its struct module's name).</summary>
    public required string Module { get; init; }

    /// <summary>The struct module's virtual address.</summary>
    public required ulong ModuleAddress { get; init; }

    /// <summary>The struct btf's virtual address.</summary>
    public required ulong BtfAddress { get; init; }

    /// <summary>Where the raw split BTF lies (btf->data).</summary>
    public required ulong DataAddress { get; init; }

    /// <summary>Its length in bytes (btf->data_size).</summary>
    public required uint DataSize { get; init; }

    /// <summary>How many types the module's BTF holds, as the kernel counted them (btf->nr_types).</summary>
    public required uint TypeCount { get; init; }

    /// <summary>The first type id of the module's BTF (btf->start_id): the kernel's last id plus one.</summary>
    public uint? StartId { get; init; }

    /// <summary>Where the module's string offsets start (btf->start_str_off): the length of the kernel's string section.</summary>
    public uint? StartStringOffset { get; init; }

    public override string ToString() => Module;
}
