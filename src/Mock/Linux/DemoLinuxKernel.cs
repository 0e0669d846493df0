using System.Buffers.Binary;
using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using L = Vmi.Mock.DemoGuestLayout;
using X = Vmi.Mock.Linux.DemoLinuxLayout;

namespace Vmi.Mock.Linux;

/// <summary>Writes the demo guest's Linux-like kernel (see <see cref="DemoLinuxLayout"/>) into a guest being built.</summary>
public static class DemoLinuxKernel
{
    // struct layouts, as the BTF below describes them
    private const int TaskSize = 0x800, TaskState = 0x0, TaskFlags = 0x2C, TaskTasks = 0x100, TaskExitState = 0x140, TaskPid = 0x180, TaskTgid = 0x184,
        TaskRealParent = 0x190, TaskStart = 0x1A0, TaskCred = 0x1C0, TaskComm = 0x1D0, TaskMm = 0x200, TaskWorker = 0x208;

    private const int MmSize = 0x400, MmPgd = 0x48, MmArgStart = 0x100, MmArgEnd = 0x108;
    private const int CredSize = 0x80, CredUid = 0x4;
    private const int KthreadSize = 0x80, KthreadFullName = 0x40;
    private const int ModuleSize = 0x400, ModuleState = 0x0, ModuleList = 0x8, ModuleName = 0x18, ModuleCoreLayout = 0x140;

    // each module's own symbol table, inside its struct module: kallsyms points at core_kallsyms (as after the module's
    // init), whose symtab (Elf64_Sym), typetab and strtab follow
    private const int ModuleKallsyms = 0x180, ModuleCoreKallsyms = 0x200, ModuleSymtab = 0x240, ModuleTypetab = 0x2A0, ModuleStrtab = 0x2B0;

    // kernel/bpf/btf.c: struct btf_module { list_head list; module *module; btf *btf; }, struct btf { data; ...; data_size; nr_types; start_id; start_str_off }
    private const int BtfModuleList = 0x0, BtfModuleModule = 0x10, BtfModuleBtf = 0x18;
    private const int BtfSize = 0x60, BtfData = 0x0, BtfNrTypes = 0x40, BtfDataSize = 0x48, BtfStartId = 0x50, BtfStartStrOff = 0x54;

    private static ulong Direct(ulong pa) => L.DirectMapVa + pa;

    /// <summary>Maps and fills the kernel's data, the task list and the module list; <paramref name="processA"/> and <paramref name="processB"/> are sshd's and bash's address spaces.</summary>
    public static void Build(MockGuestBuilder b, PageTableBuilder processA, PageTableBuilder processB, IReadOnlyList<DemoTask>? taskList = null)
    {
        IReadOnlyList<DemoTask> tasks = taskList ?? X.Tasks;
        if (tasks.Count == 0 || tasks[0].Pid != 0)
        {
            throw new ArgumentException("The task list starts with the idle task (PID 0), which is init_task.", nameof(taskList));
        }

        // slab memory: the tasks, then their mm_structs, two creds, kthread structs, the modules
        IReadOnlyList<DemoModule> modules = X.Modules;
        static ulong Pages(ulong size) => (size + 0xFFF) & ~0xFFFUL;
        ulong n = (ulong)tasks.Count;
        ulong mmBase = X.SlabPa + Pages(n * TaskSize);
        ulong credBase = mmBase + Pages(n * MmSize);
        ulong kthreadBase = credBase + 0x1000;
        ulong moduleBase = kthreadBase + Pages(n * 0x100);
        ulong slabEnd = moduleBase + Pages((ulong)modules.Count * ModuleSize);
        if (slabEnd > X.ProcessCCr3)
        {
            throw new ArgumentException($"{tasks.Count} tasks do not fit in the demo guest's slab memory.", nameof(taskList));
        }

        const PageEntryFlags kernelData = PageEntryFlags.Writable | PageEntryFlags.Global | PageEntryFlags.NoExecute;
        const PageEntryFlags userData = PageEntryFlags.User | PageEntryFlags.Writable | PageEntryFlags.NoExecute;
        b.Populate(new Pa(X.ImageDataPa), X.ImageDataSize)
            .Map(new Va(X.ImageDataVa), new Pa(X.ImageDataPa), X.ImageDataSize, PageSizeKind.Size4K, kernelData)
            .Populate(new Pa(X.SlabPa), slabEnd - X.SlabPa);

        // systemd's own address space, with its command line in its data page
        b.NewAddressSpace(out PageTableBuilder processC, shareUpperHalf: true, tableBase: new Pa(X.ProcessCCr3));
        b.Populate(new Pa(X.ProcessCDataPa), Amd64.PageSize);
        processC.Map(new Va(L.UserDataVa), new Pa(X.ProcessCDataPa), Amd64.PageSize, PageSizeKind.Size4K, userData);
        var spaces = new Dictionary<ulong, PageTableBuilder> { [L.ProcessACr3] = processA, [L.ProcessBCr3] = processB, [X.ProcessCCr3] = processC };

        BtfWriter btfWriter = BuildBtf(out KernelTypeIds ids);
        byte[] btf = btfWriter.ToArray();
        b.Write(new Va(X.BtfVa), btf);
        byte[] kallsyms = KallsymsWriter.Write(Symbols(btf.Length), out _);
        if ((ulong)kallsyms.Length > X.BtfVa - X.KallsymsVa)
        {
            throw new InvalidOperationException("the demo kallsyms tables overflow their space");
        }

        b.Write(new Va(X.KallsymsVa), kallsyms);

        // tasks: init_task in the image, the others in slab memory; one circular list through .tasks
        ulong[] at = new ulong[tasks.Count];
        for (int i = 0; i < tasks.Count; i++)
        {
            at[i] = i == 0 ? X.InitTaskVa : Direct(X.SlabPa + ((ulong)i * TaskSize));
        }

        ulong credRoot = Direct(credBase);
        ulong credUser = credRoot + CredSize;
        b.WritePhysical(new Pa(credBase + CredUid), U32(0))
            .WritePhysical(new Pa(credBase + CredSize + CredUid), U32(1000));
        for (int i = 0; i < tasks.Count; i++)
        {
            DemoTask t = tasks[i];
            byte[] s = new byte[TaskSize];
            Put32(s, TaskState, t.State switch { "R" => 0u, "S" => 1u, "D" => 2u, "I" => 0x402u, _ => 0u });
            bool kthread = t.Cr3 is null;
            Put32(s, TaskFlags, kthread ? 0x0020_0040u : 0x0040_0100u);
            Put64(s, TaskTasks, at[(i + 1) % tasks.Count] + TaskTasks);
            Put64(s, TaskTasks + 8, at[(i + tasks.Count - 1) % tasks.Count] + TaskTasks);
            Put32(s, TaskPid, (uint)t.Pid);
            Put32(s, TaskTgid, (uint)t.Pid);
            int parent = i == 0 ? 0 : Math.Max(0, tasks.ToList().FindIndex(p => p.Pid == t.Ppid));
            Put64(s, TaskRealParent, at[parent]);
            Put64(s, TaskStart, t.StartNs);
            Put64(s, TaskCred, t.Uid == 0 ? credRoot : credUser);
            Encoding.ASCII.GetBytes(t.Comm).CopyTo(s, TaskComm);
            if (t.Name != t.Comm)
            {
                ulong kthreadPa = kthreadBase + ((ulong)i * 0x100);
                b.WritePhysical(new Pa(kthreadPa + KthreadSize), [.. Encoding.ASCII.GetBytes(t.Name), 0])
                    .WritePhysical(new Pa(kthreadPa + KthreadFullName), U64(Direct(kthreadPa + KthreadSize)));
                Put64(s, TaskWorker, Direct(kthreadPa));
            }

            if (t.Cr3 is ulong cr3)
            {
                ulong mmPa = mmBase + ((ulong)i * MmSize);
                byte[] cmd = [.. Encoding.ASCII.GetBytes(t.CommandLine!.Replace(' ', '\0')), 0];
                if (t.Pid == 412)
                {
                    cmd = [.. Encoding.ASCII.GetBytes(t.CommandLine!), 0]; // sshd rewrites its argv as one string
                }

                spaces[cr3].Write(new Va(X.CommandLineVa), cmd);
                b.WritePhysical(new Pa(mmPa + MmPgd), U64(Direct(cr3)))
                    .WritePhysical(new Pa(mmPa + MmArgStart), U64(X.CommandLineVa))
                    .WritePhysical(new Pa(mmPa + MmArgEnd), U64(X.CommandLineVa + (ulong)cmd.Length));
                Put64(s, TaskMm, Direct(mmPa));
            }

            if (i == 0)
            {
                b.Write(new Va(at[0]), s);
            }
            else
            {
                b.WritePhysical(new Pa(X.SlabPa + ((ulong)i * TaskSize)), s);
            }
        }

        // modules: the list head in the image, each struct module in slab memory
        ulong ModuleVa(int i) => Direct(moduleBase + ((ulong)i * ModuleSize));
        b.Write(new Va(X.ModulesVa), [.. U64(ModuleVa(0) + ModuleList), .. U64(ModuleVa(modules.Count - 1) + ModuleList)]);
        for (int i = 0; i < modules.Count; i++)
        {
            byte[] m = new byte[ModuleSize];
            Put32(m, ModuleState, 0);
            Put64(m, ModuleList, i + 1 < modules.Count ? ModuleVa(i + 1) + ModuleList : X.ModulesVa);
            Put64(m, ModuleList + 8, i > 0 ? ModuleVa(i - 1) + ModuleList : X.ModulesVa);
            Encoding.ASCII.GetBytes(modules[i].Name).CopyTo(m, ModuleName);
            Put64(m, ModuleCoreLayout, modules[i].Base);
            Put32(m, ModuleCoreLayout + 8, (uint)modules[i].Size);
            IReadOnlyList<(string Name, char Type, ulong Offset)> syms = X.ModuleSymbols(modules[i]);
            Put64(m, ModuleKallsyms, ModuleVa(i) + ModuleCoreKallsyms);
            Put64(m, ModuleCoreKallsyms, ModuleVa(i) + ModuleSymtab);
            Put32(m, ModuleCoreKallsyms + 8, (uint)syms.Count + 1); // entry 0: the null symbol
            Put64(m, ModuleCoreKallsyms + 16, ModuleVa(i) + ModuleStrtab);
            Put64(m, ModuleCoreKallsyms + 24, ModuleVa(i) + ModuleTypetab);
            int str = 1; // strtab starts with the empty name
            for (int k = 0; k < syms.Count; k++)
            {
                int entry = ModuleSymtab + ((k + 1) * 24);
                Put32(m, entry, (uint)str);
                Put64(m, entry + 8, modules[i].Base + syms[k].Offset);
                m[ModuleTypetab + k + 1] = (byte)syms[k].Type;
                str += Encoding.ASCII.GetBytes(syms[k].Name, m.AsSpan(ModuleStrtab + str)) + 1;
            }

            b.WritePhysical(new Pa(moduleBase + ((ulong)i * ModuleSize)), m);
        }

        // btf_modules: a list of struct btf_module { list; module; btf }, each with a struct btf whose data is the
        // module's split BTF, as kernel/bpf/btf.c keeps them after load
        var withBtf = X.ModulesWithBtf.Select(name => modules.ToList().FindIndex(m => m.Name == name)).ToList();
        ulong EntryVa(int k) => X.BtfModulesVa + 0x40 + ((ulong)k * 0x80);
        ulong next = X.BtfModulesVa + 0x1000;
        b.Write(new Va(X.BtfModulesVa), [.. U64(EntryVa(0)), .. U64(EntryVa(withBtf.Count - 1))]);
        for (int k = 0; k < withBtf.Count; k++)
        {
            byte[] split = BuildModuleBtf(btfWriter, ids, X.ModuleStruct(modules[withBtf[k]].Name), out int types);
            ulong btfVa = EntryVa(k) + 0x20;
            byte[] e = new byte[0x80];
            Put64(e, BtfModuleList, k + 1 < withBtf.Count ? EntryVa(k + 1) : X.BtfModulesVa);
            Put64(e, BtfModuleList + 8, k > 0 ? EntryVa(k - 1) : X.BtfModulesVa);
            Put64(e, BtfModuleModule, ModuleVa(withBtf[k]));
            Put64(e, BtfModuleBtf, btfVa);
            Put64(e, 0x20 + BtfData, next);
            Put32(e, 0x20 + BtfDataSize, (uint)split.Length);
            Put32(e, 0x20 + BtfNrTypes, (uint)types);
            Put32(e, 0x20 + BtfStartId, (uint)btfWriter.LastId + 1);
            Put32(e, 0x20 + BtfStartStrOff, btfWriter.StringsLength);
            b.Write(new Va(EntryVa(k)), e);
            b.Write(new Va(next), split);
            next += ((ulong)split.Length + 0xFF) & ~0xFFUL;
        }
    }

    /// <summary>A module's split BTF: its own "&lt;module&gt;_ctx" struct, built on the kernel's list_head, u32 and char.</summary>
    private static byte[] BuildModuleBtf(BtfWriter kernel, KernelTypeIds ids, string structName, out int types)
    {
        var w = new BtfWriter(kernel.LastId, kernel.StringsLength);
        int tag = w.Array(ids.Char, ids.Int, 8);
        w.Struct(structName, 32, new("list", ids.ListHead, 0), new("counter", ids.UInt, 128), new("tag", tag, 192));
        types = w.LastId - kernel.LastId;
        return w.ToArray();
    }

    /// <summary>The kernel's types a module's split BTF uses.</summary>
    private readonly record struct KernelTypeIds(int Char, int Int, int UInt, int ListHead);

    /// <summary>The kernel's symbols: a per-CPU absolute one, text, data, the BTF bounds and filler functions.</summary>
    public static IReadOnlyList<(char Type, string Name, ulong Address)> Symbols(int btfLength)
    {
        var s = new List<(char, string, ulong)>
        {
            ('A', "fixed_percpu_data", 0),
            ('A', "cpu_number", 0x1_F000),
            ('T', "_text", L.KernelTextVa),
            ('T', "startup_64", L.KernelTextVa),
            ('T', "_stext", L.KernelTextVa),
            ('T', "demo_kernel_entry", L.KernelEntryVa),
            ('t', "demo_breakpoint_site", L.BreakpointVa),
            ('T', "entry_SYSCALL_64", L.SyscallEntryVa),
            ('T', "__x64_sys_openat", X.SysOpenatVa),
            ('T', "__x64_sys_read", X.SysOpenatVa + 0x100),
            ('T', "__x64_sys_write", X.SysOpenatVa + 0x200),
            ('T', "__x64_sys_execve", X.SysOpenatVa + 0x300),
            ('T', "_etext", L.KernelTextVa + 0xF_F000),
            ('D', "linux_banner", L.KernelBannerVa),
            ('D', "demo_magic_value", L.MagicValueVa),
            ('d', "demo_ascii_string", L.AsciiStringVa),
            ('R', "__start_BTF", X.BtfVa),
            ('R', "__stop_BTF", X.BtfVa + (ulong)btfLength),
            ('D', "init_task", X.InitTaskVa),
            ('D', "modules", X.ModulesVa),
            ('D', "boot_cpu_data", X.BootCpuDataVa),
            ('d', "btf_modules", X.BtfModulesVa),
            ('B', "_end", X.ImageDataVa + X.ImageDataSize),
        };
        for (int i = 0; i < X.FillerSymbols; i++)
        {
            s.Add(((i % 3) == 0 ? 't' : 'T', $"demo_fn_{i:D4}", L.KernelTextVa + 0x2000 + ((ulong)i * 0x40)));
        }

        return s;
    }

    private static BtfWriter BuildBtf(out KernelTypeIds ids)
    {
        var w = new BtfWriter();
        int intT = w.Int("int", 4, signed: true);
        int uintT = w.Int("unsigned int", 4);
        int ulongT = w.Int("long unsigned int", 8);
        int charT = w.Int("char", 1, signed: true);
        int u64 = w.Typedef("u64", ulongT);
        int pidT = w.Typedef("pid_t", intT);
        int uidT = w.Typedef("uid_t", uintT);
        int voidPtr = w.Pointer(0);
        int listHead = w.NextId;
        int listPtr = listHead + 1;
        w.Struct("list_head", 16, new("next", listPtr, 0), new("prev", listPtr, 64));
        w.Pointer(listHead);
        int comm = w.Array(charT, intT, 16);
        int kuidS = w.Struct(string.Empty, 4, new BtfWriter.Member("val", uidT, 0));
        int kuid = w.Typedef("kuid_t", kuidS);
        int cred = w.Struct("cred", CredSize, new("usage", intT, 0), new("uid", kuid, CredUid * 8));
        int credPtr = w.Pointer(w.Const(cred));
        int pgdT = w.Struct(string.Empty, 8, new BtfWriter.Member("pgd", ulongT, 0));
        int pgdPtr = w.Pointer(w.Typedef("pgd_t", pgdT));
        int mmInner = w.Struct(string.Empty, 0x200, new("mmap_base", ulongT, 0), new("pgd", pgdPtr, MmPgd * 8),
            new("arg_start", ulongT, MmArgStart * 8), new("arg_end", ulongT, MmArgEnd * 8));
        int mm = w.Struct("mm_struct", MmSize, new BtfWriter.Member(string.Empty, mmInner, 0));
        int mmPtr = w.Pointer(mm);
        int task = w.NextId;
        int taskPtr = task + 1;
        w.Struct("task_struct", TaskSize,
            new("__state", uintT, TaskState * 8), new("flags", uintT, TaskFlags * 8), new("tasks", listHead, TaskTasks * 8),
            new("exit_state", intT, TaskExitState * 8), new("pid", pidT, TaskPid * 8), new("tgid", pidT, TaskTgid * 8),
            new("real_parent", taskPtr, TaskRealParent * 8), new("start_boottime", u64, TaskStart * 8),
            new("cred", credPtr, TaskCred * 8), new("comm", comm, TaskComm * 8), new("mm", mmPtr, TaskMm * 8),
            new("worker_private", voidPtr, TaskWorker * 8));
        w.Pointer(task);
        w.Struct("kthread", KthreadSize, new("flags", ulongT, 0), new("full_name", w.Pointer(charT), KthreadFullName * 8));
        int state = w.Enum("module_state", ("MODULE_STATE_LIVE", 0), ("MODULE_STATE_COMING", 1), ("MODULE_STATE_GOING", 2), ("MODULE_STATE_UNFORMED", 3));
        int layout = w.Struct("module_layout", 0x40, new("base", voidPtr, 0), new("size", uintT, 64));
        int name = w.Array(charT, intT, 56);
        int modKallsyms = w.Struct("mod_kallsyms", 32, new("symtab", voidPtr, 0), new("num_symtab", uintT, 64),
            new("strtab", w.Pointer(charT), 128), new("typetab", w.Pointer(charT), 192));
        int module = w.Struct("module", ModuleSize, new("state", state, ModuleState * 8), new("list", listHead, ModuleList * 8),
            new("name", name, ModuleName * 8), new("core_layout", layout, ModuleCoreLayout * 8),
            new("kallsyms", w.Pointer(modKallsyms), ModuleKallsyms * 8), new("core_kallsyms", modKallsyms, ModuleCoreKallsyms * 8));
        int caps = w.Array(uintT, intT, 22);
        w.Struct("cpuinfo_x86", 0x100, new("x86", w.Int("unsigned char", 1), 0), new("x86_capability", caps, 0x20 * 8));
        int btf = w.Struct("btf", BtfSize, new("data", voidPtr, BtfData * 8), new("nr_types", uintT, BtfNrTypes * 8),
            new("data_size", uintT, BtfDataSize * 8), new("start_id", uintT, BtfStartId * 8), new("start_str_off", uintT, BtfStartStrOff * 8));
        w.Struct("btf_module", 0x20, new("list", listHead, BtfModuleList * 8), new("module", w.Pointer(module), BtfModuleModule * 8),
            new("btf", w.Pointer(btf), BtfModuleBtf * 8));
        ids = new KernelTypeIds(charT, intT, uintT, listHead);
        return w;
    }

    private static void Put32(byte[] b, int at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), v);

    private static void Put64(byte[] b, int at, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at), v);

    private static byte[] U32(uint v) => BitConverter.GetBytes(v);

    private static byte[] U64(ulong v) => BitConverter.GetBytes(v);
}
