namespace Vmi.Mock.Linux;

/// <summary>A process of the demo guest's Linux-like kernel, as /proc would list it.</summary>
public sealed record DemoTask(int Pid, int Ppid, string Name, string Comm, string State, uint Uid, ulong StartNs, string? CommandLine, ulong? Cr3);

/// <summary>A module of the demo guest's kernel, as /proc/modules would list it.</summary>
public sealed record DemoModule(string Name, ulong Base, ulong Size);

/// <summary>
/// The demo guest's small Linux-like kernel (written by <see cref="DemoLinuxKernel"/>): compressed kallsyms tables
/// and a BTF blob in its read-only data, a task list, a module list. Every fact is here, so tests and
/// documentation can say what Get-VmiProcess, Get-VmiModule and Get-VmiSymbol must answer.
/// </summary>
public static class DemoLinuxLayout
{
    /// <summary>The kernel's read-only data (kallsyms, BTF) and data (init_task, modules, boot_cpu_data): 256 KiB.</summary>
    public const ulong ImageDataVa = 0xFFFF_FFFF_8220_0000;

    public const ulong ImageDataPa = 0x0140_0000;

    public const ulong ImageDataSize = 0x4_0000;

    public const ulong KallsymsVa = ImageDataVa;

    public const ulong BtfVa = ImageDataVa + 0x2_0000;

    public const ulong InitTaskVa = ImageDataVa + 0x3_0000;

    public const ulong ModulesVa = ImageDataVa + 0x3_8000;

    public const ulong BootCpuDataVa = ImageDataVa + 0x3_9000;

    /// <summary>The BPF subsystem's btf_modules list head, then its entries (struct btf_module, struct btf) and each module's split BTF.</summary>
    public const ulong BtfModulesVa = ImageDataVa + 0x3_A000;

    /// <summary>The modules whose split BTF the kernel keeps (nls_ascii has none).</summary>
    public static IReadOnlyList<string> ModulesWithBtf { get; } = ["vmi_demo", "qemu_fw_cfg"];

    /// <summary>The struct each module with BTF defines in its own BTF: "&lt;module&gt;_ctx" { list_head list; u32 counter; char tag[8]; }, 32 bytes.</summary>
    public static string ModuleStruct(string module) => module + "_ctx";

    /// <summary>Slab memory (tasks, mm_structs, creds, kthreads, modules) reached through the direct map, sized by the task count.</summary>
    public const ulong SlabPa = 0x0150_0000;

    /// <summary>The third process's page tables and data page (systemd).</summary>
    public const ulong ProcessCCr3 = 0x0160_0000;

    public const ulong ProcessCDataPa = 0x0170_0000;

    /// <summary>Where each process keeps its command line (NUL-separated) in its data page.</summary>
    public const ulong CommandLineVa = DemoGuestLayout.UserDataVa + 0x200;

    public const ulong SysOpenatVa = DemoGuestLayout.KernelTextVa + 0x1000;

    /// <summary>Filler functions demo_fn_0000.. so the table has several 256-symbol blocks.</summary>
    public const int FillerSymbols = 600;

    public static IReadOnlyList<DemoTask> Tasks { get; } =
    [
        new(0, 0, "swapper/0", "swapper/0", "R", 0, 0, null, null),
        new(1, 0, "systemd", "systemd", "S", 0, 40_000_000, "/sbin/init splash", ProcessCCr3),
        new(2, 0, "kthreadd", "kthreadd", "S", 0, 40_000_000, null, null),
        new(3, 2, "rcu_tasks_kthread", "rcu_tasks_kthre", "I", 0, 50_000_000, null, null),
        new(412, 1, "sshd", "sshd", "S", 0, 2_500_000_000, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", DemoGuestLayout.ProcessACr3),
        new(1337, 412, "bash", "bash", "R", 1000, 61_230_000_000, "-bash", DemoGuestLayout.ProcessBCr3),
    ];

    public static IReadOnlyList<DemoModule> Modules { get; } =
    [
        new("vmi_demo", 0xFFFF_FFFF_C000_2000, 16384),
        new("nls_ascii", 0xFFFF_FFFF_C000_8000, 16384),
        new("qemu_fw_cfg", 0xFFFF_FFFF_C001_0000, 20480),
    ];

    /// <summary>A module's own symbols (its kallsyms table, after its init): name, type letter as /proc shows it, offset from the module's base.</summary>
    public static IReadOnlyList<(string Name, char Type, ulong Offset)> ModuleSymbols(DemoModule module) =>
        [(module.Name + "_probe", 't', 0x100), (module.Name + "_remove", 't', 0x180), (module.Name + "_table", 'd', 0x2000)];
}
