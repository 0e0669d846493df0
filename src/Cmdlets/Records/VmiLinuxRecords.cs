using Vmi.Core.Arch.Amd64;
using Vmi.Os.Linux;

namespace Vmi.PowerShell;

/// <summary>The guest's Linux kernel as found in its memory: banner, KASLR slide, paging mode, and where symbols and types came from.</summary>
public sealed class VmiKernel
{
    internal VmiKernel(VmiSession session, LinuxKernelInfo info)
    {
        Session = session;
        Banner = info.Banner;
        Release = info.Release;
        TextBase = info.TextBase;
        Slide = info.Slide;
        PagingMode = info.PagingMode;
        KernelCr3 = info.KernelCr3;
        PtiEnabled = info.PtiEnabled;
        TextFoundBy = info.TextFoundBy;
        SymbolSource = info.SymbolSource;
        TypeSource = info.TypeSource;
        SymbolCount = info.SymbolCount;
        TypeCount = info.TypeCount;
        VmcoreinfoAgrees = info.VmcoreinfoAgrees;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public string Banner { get; }

    public string Release { get; }

    /// <summary>The runtime address of _text.</summary>
    public ulong TextBase { get; }

    /// <summary>The KASLR slide (_text minus 0xffffffff81000000).</summary>
    public long Slide { get; }

    public PagingMode PagingMode { get; }

    /// <summary>The physical address of the kernel's own top-level page table.</summary>
    public ulong KernelCr3 { get; }

    public bool PtiEnabled { get; }

    public string TextFoundBy { get; }

    public string SymbolSource { get; }

    /// <summary>Null when the kernel carries no BTF.</summary>
    public string? TypeSource { get; }

    public int SymbolCount { get; }

    public int TypeCount { get; }

    /// <summary>Whether VMCOREINFO's SYMBOL(_stext) agrees with kallsyms (null: the target has no VMCOREINFO).</summary>
    public bool? VmcoreinfoAgrees { get; }
}

/// <summary>A kernel symbol. <see cref="Address"/> binds to -Address of the next cmdlet (Read-VmiMemory, Resolve-VmiAddress, ...).</summary>
public sealed class VmiSymbol
{
    internal VmiSymbol(VmiSession session, KernelSymbol symbol, ulong address, string? module = null)
    {
        Session = session;
        Name = symbol.Name;
        Type = symbol.Type;
        SymbolAddress = symbol.Address;
        Address = address;
        Module = module;
    }

    internal VmiSymbol(VmiSession session, LinuxModuleSymbol symbol, ulong address)
        : this(session, symbol.ToKernelSymbol(), address, symbol.Module)
    {
    }

    /// <summary>The module the symbol belongs to ("[module]" in /proc/kallsyms); null for the kernel image's own symbols.</summary>
    public string? Module { get; }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public string Name { get; }

    /// <summary>The type letter /proc/kallsyms shows (T text, D data, R read-only, B bss, A absolute; lower case: local).</summary>
    public char Type { get; }

    /// <summary>The address asked about (for -Address lookups), else the symbol's own address.</summary>
    public ulong Address { get; }

    /// <summary>Where the symbol starts.</summary>
    public ulong SymbolAddress { get; }

    /// <summary>How far <see cref="Address"/> lies past the symbol's start.</summary>
    public ulong Offset => Address - SymbolAddress;

    public override string ToString() => (Offset == 0 ? Name : $"{Name}+0x{Offset:x}") + (Module is null ? string.Empty : $" [{Module}]");
}

/// <summary>A process from the guest kernel's task list. <see cref="Cr3"/> binds to -Cr3, so piping into Read-VmiMemory reads inside the process.</summary>
public sealed class VmiProcess
{
    internal VmiProcess(VmiSession session, LinuxProcess p)
    {
        Session = session;
        Pid = p.Pid;
        Ppid = p.Ppid;
        Name = p.Name;
        Comm = p.Comm;
        State = p.State;
        StartTime = p.StartTime;
        Uid = p.Uid;
        Cr3 = p.Cr3;
        UserCr3 = p.UserCr3;
        CommandLine = p.CommandLine;
        TaskAddress = p.TaskAddress;
        MmAddress = p.MmAddress;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public int Pid { get; }

    public int Ppid { get; }

    public string Name { get; }

    public string Comm { get; }

    public string State { get; }

    /// <summary>Time since boot when the process started.</summary>
    public TimeSpan StartTime { get; }

    public uint? Uid { get; }

    /// <summary>The process's page-table root (maps its user half and the kernel); null for kernel threads.</summary>
    public ulong? Cr3 { get; }

    /// <summary>With page-table isolation, the user half's root; else equal to <see cref="Cr3"/>.</summary>
    public ulong? UserCr3 { get; }

    public string? CommandLine { get; }

    public ulong TaskAddress { get; }

    public ulong MmAddress { get; }

    public bool IsKernelThread => MmAddress == 0;

    public override string ToString() => $"{Pid} {Name}";
}

/// <summary>A loaded kernel module. <see cref="Address"/> (its base) binds to -Address of the next cmdlet.</summary>
public sealed class VmiModule
{
    internal VmiModule(VmiSession session, LinuxModule m)
    {
        Session = session;
        Name = m.Name;
        Base = m.Base;
        Size = m.Size;
        State = m.State;
        ModuleAddress = m.ModuleAddress;
        BtfTypeCount = m.BtfTypeCount;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    public string Name { get; }

    public ulong Base { get; }

    /// <summary>Same as <see cref="Base"/>, for binding by property name.</summary>
    public ulong Address => Base;

    public ulong Size { get; }

    public string State { get; }

    /// <summary>The struct module's virtual address.</summary>
    public ulong ModuleAddress { get; }

    /// <summary>How many types the module's own (split) BTF holds, as the kernel counted them; null when the kernel keeps no BTF for it.</summary>
    public uint? BtfTypeCount { get; }

    /// <summary>The kernel keeps the module's BTF: <see cref="GetBtf"/> resolves the structs it defines.</summary>
    public bool HasBtf => BtfTypeCount is not null;

    /// <summary>
    /// The module's own types: its split BTF, read from guest memory on this first call (and kept for the session),
    /// parsed on top of the kernel's BTF, so <c>GetBtf().GetField('struct', 'member.path')</c> gives a member's offset
    /// and size in a struct the module defines.
    /// </summary>
    public BtfTypes GetBtf() => LinuxSessions.Get(Session).ModuleTypes(Name);

    public override string ToString() => Name;
}
