using System.Buffers.Binary;
using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Os.Linux;

/// <summary>Limits for walking guest-controlled lists.</summary>
public sealed record LinuxWalkOptions
{
    /// <summary>The most tasks (or modules) a walk visits before it stops with a warning.</summary>
    public int MaxEntries { get; init; } = 65536;

    /// <summary>The longest command line read, in bytes.</summary>
    public int MaxCommandLine { get; init; } = 4096;
}

/// <summary>
/// A Linux guest understood from its own memory, with no profile: the kernel found through the page tables,
/// every symbol from the compressed kallsyms tables and every type from the BTF blob. Build it with
/// <see cref="Open"/>; it then lists processes and modules on demand. Uses its <see cref="IGuestMemory"/>
/// from one thread at a time.
/// </summary>
public sealed partial class LinuxKernel
{
    /// <summary>__START_KERNEL_map: the 1 GiB window the kernel image is mapped in (x86-64).</summary>
    public const ulong KernelMapStart = 0xffff_ffff_8000_0000;

    public const ulong KernelMapEnd = 0xffff_ffff_c000_0000;

    /// <summary>The link address of _text with no KASLR slide.</summary>
    public const ulong TextLinkAddress = 0xffff_ffff_8100_0000;

    private const ulong Chunk = 2 << 20;
    private const int BtfMaxSize = 256 << 20;
    private const ulong MaxStructSize = 1 << 20;
    private const int PtiFeatureBit = 7 * 32 + 11; // X86_FEATURE_PTI

    private readonly IGuestMemory _memory;
    private readonly GuestReader _kernel;

    private LinuxKernel(IGuestMemory memory, GuestReader kernel, KallsymsTable symbols, IKernelTypes? types, LinuxKernelInfo info)
    {
        _memory = memory;
        _kernel = kernel;
        Symbols = symbols;
        Types = types;
        Info = info;
    }

    public LinuxKernelInfo Info { get; }

    public KallsymsTable Symbols { get; }

    /// <summary>
    /// The struct layouts: the profile given to <see cref="Open"/>, else the kernel's BTF; null for a kernel built
    /// without CONFIG_DEBUG_INFO_BTF when no profile was given.
    /// </summary>
    public IKernelTypes? Types { get; }

    /// <summary>
    /// Finds the kernel, its symbols and its types in guest memory. Throws <see cref="LinuxIntrospectionException"/>
    /// saying what is missing. With <paramref name="profile"/>, struct layouts come from that ISF profile instead of
    /// the kernel's BTF (which is then not read), once its banner and symbols are checked against the kernel found.
    /// </summary>
    public static LinuxKernel Open(IGuestMemory memory, IsfProfile? profile = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        PagingMode mode;
        try
        {
            mode = memory.PagingMode;
        }
        catch (VmiException e)
        {
            throw new LinuxIntrospectionException("Cannot tell the guest's paging mode: " + e.Message, e);
        }

        if (mode is not (PagingMode.Ia32e or PagingMode.Ia32eLa57))
        {
            throw new LinuxIntrospectionException($"The guest's paging mode is {mode}; Linux awareness needs a 64-bit kernel (4- or 5-level paging).");
        }

        List<Pa> roots = CandidateRoots(memory);
        if (roots.Count == 0)
        {
            throw new LinuxIntrospectionException("The target gives no page-table root (no vCPU registers with paging on): for a raw image, give its CR3.");
        }

        Dictionary<string, string> vmcoreinfo = ParseVmcoreinfo(memory.Vmcoreinfo);
        var tried = new List<string>();
        var scanned = new HashSet<ulong>();
        foreach (Pa root in roots)
        {
            var reader = new GuestReader(memory, root);
            if (FindText(reader, memory, vmcoreinfo) is not (ulong text, string how))
            {
                tried.Add($"root {root}: no kernel image mapped at 0x{KernelMapStart:x}..0x{KernelMapEnd:x}");
                continue;
            }

            if (memory.TryTranslate(text, root, out Pa textPa) && !scanned.Add(textPa.Value))
            {
                continue; // the same kernel image as a root already searched (processes share the kernel half)
            }

            KallsymsTable? symbols = FindKallsyms(reader, text);
            if (symbols is null)
            {
                tried.Add($"root {root}: kernel at 0x{text:x}, but no kallsyms tables found after it");
                continue;
            }

            return Complete(memory, reader, text, how, symbols, mode, vmcoreinfo, profile);
        }

        throw new LinuxIntrospectionException(
            "No Linux kernel with kallsyms was found in guest memory (" + string.Join("; ", tried) +
            "). The kernel must be x86-64 with CONFIG_KALLSYMS (base-relative tables, Linux 4.6 or later).");
    }

    private static List<Pa> CandidateRoots(IGuestMemory memory)
    {
        var roots = new List<Pa>();
        int n = Math.Min(Math.Max(memory.VcpuCount, 1), 64);
        for (int i = 0; i < n; i++)
        {
            if (memory.TryGetRegisters(new VcpuId((ushort)i)) is not { } regs || (regs.Cr0 & 0x8000_0000) == 0 && regs.Cr3 == 0)
            {
                continue;
            }

            Pa root = regs.TranslationRoot;
            // With page-table isolation a vCPU in user mode runs on the user half (kernel PGD + 4 KiB).
            foreach (Pa r in new[] { root, new Pa(root.Value & ~0x1000UL) })
            {
                if (!roots.Contains(r))
                {
                    roots.Add(r);
                }
            }
        }

        return roots;
    }

    private static Dictionary<string, string> ParseVmcoreinfo(string? text)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        if (text is null)
        {
            return d;
        }

        foreach (string line in text.Split('\n'))
        {
            int eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                d.TryAdd(line[..eq], line[(eq + 1)..].Trim());
            }
        }

        return d;
    }

    private static bool TryHex(string? s, out ulong value) =>
        ulong.TryParse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out value);

    /// <summary>_text: from VMCOREINFO's KERNELOFFSET, else down from IA32_LSTAR or the IDT's first gate, else the first mapped 2 MiB of the kernel map.</summary>
    private static (ulong Text, string How)? FindText(GuestReader reader, IGuestMemory memory, Dictionary<string, string> vmcoreinfo)
    {
        if (vmcoreinfo.TryGetValue("KERNELOFFSET", out string? off) && TryHex(off, out ulong slide))
        {
            ulong text = TextLinkAddress + slide;
            if (text >= KernelMapStart && text < KernelMapEnd && reader.IsMapped(text))
            {
                return (text, "VMCOREINFO KERNELOFFSET");
            }
        }

        Registers? regs = memory.TryGetRegisters(new VcpuId(0));
        if (regs is { MsrLstar: ulong lstar } && DownToText(reader, lstar) is ulong fromLstar)
        {
            return (fromLstar, "IA32_LSTAR");
        }

        // gate 0 of the IDT (the divide-error handler) points into kernel text too
        Span<byte> gate = stackalloc byte[16];
        if (regs is { Idtr.Base: ulong idt } && idt != 0 && reader.TryRead(idt, gate))
        {
            ulong handler = BinaryPrimitives.ReadUInt16LittleEndian(gate)
                | ((ulong)BinaryPrimitives.ReadUInt16LittleEndian(gate[6..]) << 16)
                | ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(gate[8..]) << 32);
            if (DownToText(reader, handler) is ulong fromIdt)
            {
                return (fromIdt, "IDT");
            }
        }

        for (ulong va = KernelMapStart; va < KernelMapEnd; va += Chunk)
        {
            if (reader.IsMapped(va))
            {
                return (va, "kernel-map page-table scan");
            }
        }

        return null;
    }

    /// <summary>From an address inside kernel text, down in 2 MiB steps while the kernel map stays mapped: _text (cleanup_highmap unmaps below it).</summary>
    private static ulong? DownToText(GuestReader reader, ulong inText)
    {
        if (inText < KernelMapStart || inText >= KernelMapEnd || !reader.IsMapped(inText))
        {
            return null;
        }

        ulong text = inText & ~(Chunk - 1);
        while (text - Chunk >= KernelMapStart && reader.IsMapped(text - Chunk))
        {
            text -= Chunk;
        }

        return text;
    }

    /// <summary>Scans the kernel image from _text for the token table's digits, then decodes the tables around it.</summary>
    private static KallsymsTable? FindKallsyms(GuestReader reader, ulong text)
    {
        ReadOnlySpan<byte> digits = KallsymsDecoder.DigitTokens;
        int overlap = digits.Length;
        byte[] chunk = new byte[(int)Chunk + overlap];
        for (ulong va = text; va < KernelMapEnd; va += Chunk)
        {
            ulong hole = reader.Memory.UnmappedExtent(va, reader.Root);
            if (hole >= Chunk)
            {
                va = (va & ~(hole - 1)) + hole - Chunk; // the walk proved the whole region unmapped
                continue;
            }

            if (reader.ReadZeroFill(va, chunk) == 0)
            {
                continue;
            }

            int from = 0;
            while (true)
            {
                int hit = chunk.AsSpan(from).IndexOf(digits);
                if (hit < 0)
                {
                    break;
                }

                hit += from;
                from = hit + 1;
                ulong hitVa = va + (ulong)hit;
                if (TryAt(reader, hitVa, text) is { } table)
                {
                    return table;
                }
            }
        }

        return null;
    }

    private static KallsymsTable? TryAt(GuestReader reader, ulong hitVa, ulong text)
    {
        const int before = 4096;
        byte[] window = new byte[before + 16384];
        ulong windowVa = hitVa - before;
        reader.ReadZeroFill(windowVa, window);
        if (!KallsymsDecoder.TryTokenTableAt(window, windowVa, before, out ulong tokenTable, out ulong tokenIndex, out string[] tokens))
        {
            return null;
        }

        foreach (int span in new[] { 16 << 20, KallsymsDecoder.MaxTablesSpan })
        {
            ulong start = Math.Max(text, tokenTable - (ulong)Math.Min((ulong)span, tokenTable - text));
            byte[] region = new byte[(int)(tokenTable - start)];
            reader.ReadZeroFill(start, region);
            if (KallsymsDecoder.TryDecode(region, start, tokenTable, tokenIndex, tokens) is { } table)
            {
                return table;
            }

            if (start == text)
            {
                break;
            }
        }

        return null;
    }

    private static LinuxKernel Complete(IGuestMemory memory, GuestReader found, ulong text, string how, KallsymsTable symbols, PagingMode mode, Dictionary<string, string> vmcoreinfo, IsfProfile? profile)
    {
        // The kernel's own top-level table maps all of the kernel (the vCPU's may be a process's, or PTI's user half).
        GuestReader kernel = found;
        if ((symbols.TryGetAddress("init_top_pgt", out ulong pgt) || symbols.TryGetAddress("swapper_pg_dir", out pgt))
            && memory.TryTranslate(pgt, found.Root, out Pa pgtPa))
        {
            var candidate = new GuestReader(memory, pgtPa);
            if (candidate.IsMapped(text))
            {
                kernel = candidate;
            }
        }

        string banner = symbols.TryGetAddress("linux_banner", out ulong bannerVa) ? kernel.ReadCString(bannerVa, 512)?.TrimEnd('\n') ?? string.Empty : string.Empty;
        string[] words = banner.Split(' ', 4);
        string release = words.Length >= 3 && words[0] == "Linux" && words[1] == "version" ? words[2] : string.Empty;

        IKernelTypes? types = null;
        string? typeSource = null;
        string? btfError = null;
        if (profile is not null)
        {
            types = profile;
            typeSource = $"ISF profile '{profile.Name}' ({profile.Count} types; {CheckProfile(profile, symbols, text, banner)})";
        }
        else if (symbols.TryGetAddress("__start_BTF", out ulong btfStart) && symbols.TryGetAddress("__stop_BTF", out ulong btfStop)
            && btfStop > btfStart && btfStop - btfStart <= BtfMaxSize)
        {
            byte[] blob = new byte[(int)(btfStop - btfStart)];
            if (kernel.ReadZeroFill(btfStart, blob) == blob.Length)
            {
                try
                {
                    types = BtfTypes.Parse(blob);
                    typeSource = $"BTF in guest memory at 0x{btfStart:x} ({types.Count} types)";
                }
                catch (LinuxIntrospectionException e)
                {
                    // symbols still work without types; the lists say why they cannot
                    btfError = $"the BTF blob at 0x{btfStart:x} could not be parsed: {e.Message}";
                }
            }
            else
            {
                btfError = $"the BTF blob at 0x{btfStart:x} ({blob.Length} bytes) is not all readable";
            }
        }

        bool pti = false;
        if (types is not null && symbols.TryGetAddress("boot_cpu_data", out ulong bootCpu)
            && types.TryGetField("cpuinfo_x86", "x86_capability", out KernelField caps)
            && kernel.TryReadU32(bootCpu + caps.Offset + (PtiFeatureBit / 32 * 4), out uint word))
        {
            pti = (word & (1u << (PtiFeatureBit % 32))) != 0;
        }

        bool? agrees = null;
        if (vmcoreinfo.TryGetValue("SYMBOL(_stext)", out string? stext) && TryHex(stext, out ulong stextVa))
        {
            agrees = symbols.TryGetAddress("_stext", out ulong ours) && ours == stextVa;
        }

        var info = new LinuxKernelInfo
        {
            Banner = banner,
            Release = release,
            TextBase = text,
            Slide = (long)(text - TextLinkAddress),
            PagingMode = mode,
            KernelCr3 = kernel.Root.Value,
            PtiEnabled = pti,
            TextFoundBy = how,
            SymbolSource = $"kallsyms in guest memory at 0x{symbols.Layout.TokenTable:x} ({symbols.Count} symbols)",
            SymbolCount = symbols.Count,
            TypeSource = typeSource,
            TypeCount = types?.Count ?? 0,
            VmcoreinfoAgrees = agrees,
        };
        return new LinuxKernel(memory, kernel, symbols, types, info) { _btfError = btfError };
    }

    private string? _btfError;

    /// <summary>Symbols whose place relative to _text a profile must share with the kernel found.</summary>
    private static readonly string[] s_profileChecks = ["_stext", "init_task", "modules", "linux_banner", "init_top_pgt", "boot_cpu_data"];

    /// <summary>
    /// Checks that <paramref name="profile"/> describes this kernel: its banner equals the one in memory and its
    /// symbols sit at the same offsets from _text as kallsyms says. Throws naming the first difference; returns what was checked.
    /// </summary>
    private static string CheckProfile(IsfProfile profile, KallsymsTable symbols, ulong text, string banner)
    {
        const string fix = "Make a profile from this kernel's own debug info (docs/linux.md says how), or leave -Profile out to use the kernel's BTF.";
        bool bannerChecked = false;
        if (profile.Banner is { } theirs && banner.Length > 0)
        {
            if (theirs != banner)
            {
                throw new LinuxIntrospectionException($"The profile '{profile.Name}' is for another kernel: it was made for \"{theirs}\", but the guest runs \"{banner}\". {fix}");
            }

            bannerChecked = true;
        }

        ulong profileText = profile.Symbols.TryGetValue("_text", out ulong t) && t != 0 ? t : TextLinkAddress;
        int n = 0;
        foreach (string name in s_profileChecks)
        {
            if (!profile.Symbols.TryGetValue(name, out ulong at) || at == 0 || !symbols.TryGetAddress(name, out ulong ours))
            {
                continue;
            }

            if (at - profileText != ours - text)
            {
                throw new LinuxIntrospectionException(
                    $"The profile '{profile.Name}' does not match this kernel: it puts {name} at _text+0x{at - profileText:x}, the guest's kallsyms at _text+0x{ours - text:x} (a profile of another build?). {fix}");
            }

            n++;
        }

        return (bannerChecked, n) switch
        {
            (false, 0) => "not checked: the profile has neither linux_banner's text nor the symbols _stext, init_task, modules",
            (true, 0) => "banner agrees",
            (false, _) => $"{n} symbols agree",
            _ => $"banner and {n} symbols agree",
        };
    }

    private IKernelTypes RequireTypes() => Types ?? throw new LinuxIntrospectionException(_btfError is { } why
        ? $"Process and module lists need the kernel's struct layouts, but {why}. A Volatility 3 ISF profile of this kernel can give them instead (-Profile)."
        : "The kernel has no BTF (built without CONFIG_DEBUG_INFO_BTF): process and module lists need struct layouts, which this kernel does not carry. Give a Volatility 3 ISF profile of this kernel instead (-Profile; docs/linux.md says how to make one).");

    // ---------------------------------------------------------------- processes

    private sealed record TaskLayout(
        ulong Size, KernelField Tasks, KernelField Pid, KernelField Tgid, KernelField Comm, KernelField RealParent, KernelField Mm,
        KernelField? Cred, KernelField? State, KernelField? ExitState, KernelField? Start,
        KernelField MmPgd, KernelField MmArgStart, KernelField MmArgEnd, KernelField? CredUid,
        KernelField? Flags, KernelField? WorkerPrivate, KernelField? KthreadFullName);

    private TaskLayout? _taskLayout;

    private TaskLayout Tasks()
    {
        if (_taskLayout is { } t)
        {
            return t;
        }

        IKernelTypes b = RequireTypes();
        KernelField? Opt(string s, params string[] paths)
        {
            foreach (string p in paths)
            {
                if (b.TryGetField(s, p, out KernelField f))
                {
                    return f;
                }
            }

            return null;
        }

        KernelField tasks = b.GetField("task_struct", "tasks");
        KernelField pid = b.GetField("task_struct", "pid");
        KernelField tgid = b.GetField("task_struct", "tgid");
        KernelField comm = b.GetField("task_struct", "comm");
        KernelField parent = b.GetField("task_struct", "real_parent");
        KernelField mm = b.GetField("task_struct", "mm");
        KernelField? cred = Opt("task_struct", "cred");
        KernelField? state = Opt("task_struct", "__state", "state");
        KernelField? exit = Opt("task_struct", "exit_state");
        KernelField? start = Opt("task_struct", "start_boottime", "real_start_time");
        KernelField? uid = Opt("cred", "uid.val", "uid");
        KernelField? flags = Opt("task_struct", "flags");
        KernelField? worker = Opt("task_struct", "worker_private", "set_child_tid");
        KernelField? fullName = Opt("kthread", "full_name");
        ulong size = new[] { tasks, pid, tgid, comm, parent, mm, cred, state, exit, start, flags, worker }
            .Where(f => f is not null).Max(f => f!.Value.Offset + f.Value.Size);
        if (size > MaxStructSize || comm.Size is 0 or > 256)
        {
            throw new LinuxIntrospectionException($"The layout of task_struct in {b.Description} is implausible (fields up to byte {size}, comm of {comm.Size} bytes): the types do not describe this kernel.");
        }

        _taskLayout = new TaskLayout(size, tasks, pid, tgid, comm, parent, mm, cred, state, exit, start,
            b.GetField("mm_struct", "pgd"), b.GetField("mm_struct", "arg_start"), b.GetField("mm_struct", "arg_end"), uid,
            flags, worker, fullName);
        return _taskLayout;
    }

    /// <summary>
    /// Walks init_task.tasks: every thread-group leader (the processes /proc lists) and the idle task (PID 0).
    /// A list that loops, points outside readable kernel memory or runs past <see cref="LinuxWalkOptions.MaxEntries"/>
    /// ends the walk with a warning through <paramref name="warning"/>.
    /// </summary>
    public IEnumerable<LinuxProcess> GetProcesses(LinuxWalkOptions? options = null, Action<string>? warning = null)
    {
        options ??= new LinuxWalkOptions();
        TaskLayout l = Tasks();
        ulong init = Symbols.GetAddress("init_task");
        ulong head = init + l.Tasks.Offset;
        var seen = new HashSet<ulong>();
        ulong task = init;
        byte[] buffer = new byte[(int)l.Size];
        for (int count = 0; ; count++)
        {
            if (count >= options.MaxEntries)
            {
                warning?.Invoke($"The task list has more than {options.MaxEntries} entries; the walk stopped there (a corrupt or hostile list?).");
                yield break;
            }

            if (!seen.Add(task))
            {
                warning?.Invoke($"The task list loops back to task 0x{task:x} after {count} tasks without returning to init_task; the walk stopped.");
                yield break;
            }

            if (!IsKernelPointer(task) || _kernel.Memory.Read(task, _kernel.Root, buffer) != buffer.Length)
            {
                warning?.Invoke($"The task list points at 0x{task:x}, which is not readable kernel memory, after {count} tasks; the walk stopped.");
                yield break;
            }

            yield return ReadProcess(task, buffer, l, options);
            ulong next = UInt(buffer, l.Tasks with { Size = 8 });
            if (next == head)
            {
                yield break;
            }

            task = next - l.Tasks.Offset;
        }
    }

    private static bool IsKernelPointer(ulong va) => va >= 0xff00_0000_0000_0000UL && va % 8 == 0;

    private static ulong UInt(byte[] b, in KernelField f) => f.Offset + f.Size > (ulong)b.Length ? 0 : f.Size switch
    {
        1 => b[(int)f.Offset],
        2 => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan((int)f.Offset)),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((int)f.Offset)),
        8 => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((int)f.Offset)),
        _ => 0,
    };

    private LinuxProcess ReadProcess(ulong task, byte[] b, TaskLayout l, LinuxWalkOptions options)
    {
        int pid = (int)UInt(b, l.Pid);
        int tgid = (int)UInt(b, l.Tgid);
        string comm = Text.CString(b.AsSpan((int)l.Comm.Offset, (int)l.Comm.Size));
        string name = comm;
        const ulong pfKthread = 0x0020_0000;
        const ulong pfWqWorker = 0x0000_0020; // workqueue workers keep comm (/proc adds the queue's name)
        if (l.Flags is { } fl && (UInt(b, fl) & (pfKthread | pfWqWorker)) == pfKthread && comm.Length == (int)l.Comm.Size - 1
            && l.WorkerPrivate is { } wp && l.KthreadFullName is { } fn
            && UInt(b, wp) is ulong kthread && IsKernelPointer(kthread)
            && _kernel.TryReadU64(kthread + fn.Offset, out ulong full) && full != 0 && IsKernelPointer(full)
            && _kernel.ReadCString(full, 256) is { Length: > 0 } fullName && fullName.StartsWith(comm, StringComparison.Ordinal))
        {
            // Linux 5.17+ keeps a kernel thread's whole name in struct kthread (comm holds 15 bytes): /proc shows it
            name = fullName;
        }

        ulong parent = UInt(b, l.RealParent);
        int ppid = 0;
        if (parent != task && IsKernelPointer(parent) && _kernel.TryReadU32(parent + l.Tgid.Offset, out uint ptgid))
        {
            ppid = (int)ptgid;
        }

        ulong state = l.State is { } s ? UInt(b, s) : 0;
        ulong exitState = l.ExitState is { } e ? UInt(b, e) : 0;
        ulong start = l.Start is { } st ? UInt(b, st) : 0;
        uint? uid = null;
        if (l.Cred is { } c && l.CredUid is { } u && UInt(b, c) is ulong cred && IsKernelPointer(cred) && _kernel.TryReadU32(cred + u.Offset, out uint v))
        {
            uid = v;
        }

        ulong mm = UInt(b, l.Mm);
        ulong? cr3 = null;
        string? cmdline = null;
        if (mm != 0 && IsKernelPointer(mm) && _kernel.TryReadU64(mm + l.MmPgd.Offset, out ulong pgd)
            && _memory.TryTranslate(pgd, _kernel.Root, out Pa pgdPa))
        {
            cr3 = pgdPa.Value;
            cmdline = ReadCommandLine(mm, l, new Pa(pgdPa.Value), options.MaxCommandLine);
        }

        return new LinuxProcess
        {
            Pid = pid,
            Tgid = tgid,
            Ppid = ppid,
            Name = name,
            Comm = comm,
            State = StateLetter(state, exitState),
            StartTime = TimeSpan.FromTicks((long)Math.Min(start / 100, (ulong)TimeSpan.MaxValue.Ticks)),
            Uid = uid,
            TaskAddress = task,
            MmAddress = mm,
            Cr3 = cr3,
            UserCr3 = cr3 is ulong k && Info.PtiEnabled ? k | 0x1000 : cr3,
            CommandLine = cmdline,
        };
    }

    private string? ReadCommandLine(ulong mm, TaskLayout l, Pa root, int max)
    {
        if (!_kernel.TryReadU64(mm + l.MmArgStart.Offset, out ulong start) || !_kernel.TryReadU64(mm + l.MmArgEnd.Offset, out ulong end) || end <= start)
        {
            return null;
        }

        int length = (int)Math.Min(end - start, (ulong)max);
        byte[] bytes = new byte[length];
        int n = _memory.Read(start, root, bytes);
        if (n == 0)
        {
            return null;
        }

        string[] args = System.Text.Encoding.UTF8.GetString(bytes, 0, n).TrimEnd('\0').Split('\0');
        return string.Join(' ', args);
    }

    /// <summary>The letter /proc shows (fs/proc/array.c task_state_array, TASK_REPORT bits, TASK_IDLE as I).</summary>
    internal static string StateLetter(ulong state, ulong exitState)
    {
        const ulong taskIdle = 0x0002 | 0x0400; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
        if (state == taskIdle)
        {
            return "I";
        }

        ulong report = (state | exitState) & 0x7F;
        int index = report == 0 ? 0 : 64 - System.Numerics.BitOperations.LeadingZeroCount(report);
        return "RSDTtXZPI"[index].ToString();
    }

    // ---------------------------------------------------------------- modules

    /// <summary>Walks the kernel's modules list, bounded like <see cref="GetProcesses"/>.</summary>
    public IEnumerable<LinuxModule> GetModules(LinuxWalkOptions? options = null, Action<string>? warning = null)
    {
        options ??= new LinuxWalkOptions();
        IKernelTypes b = RequireTypes();
        KernelField list = b.GetField("module", "list");
        KernelField name = b.GetField("module", "name");
        KernelField state = b.GetField("module", "state");
        ulong head = Symbols.GetAddress("modules");
        (ulong Offset, ulong Stride, int Count)? mem = null;
        KernelField baseField = default, sizeField = default;
        if (b.TryGetStructArray("module", "mem", out KernelField memField, out string elementName, out ulong elementSize, out uint count))
        {
            // Linux 6.4+: mod->mem[MOD_TEXT].base, size = the sum over every memory type
            baseField = b.GetField(elementName, "base");
            sizeField = b.GetField(elementName, "size");
            mem = (memField.Offset, elementSize, (int)Math.Min(count, 16));
        }
        else
        {
            baseField = b.GetField("module", "core_layout.base");
            sizeField = b.GetField("module", "core_layout.size");
        }

        // which modules the kernel keeps BTF for: a short list walk, the BTF itself is read only when asked for
        var btf = new Dictionary<ulong, uint>();
        foreach (LinuxModuleBtf mb in GetModuleBtf(options, warning))
        {
            btf.TryAdd(mb.ModuleAddress, mb.TypeCount);
        }

        var seen = new HashSet<ulong>();
        if (!_kernel.TryReadU64(head, out ulong next))
        {
            warning?.Invoke($"The modules list head at 0x{head:x} cannot be read.");
            yield break;
        }

        for (int n = 0; next != head; n++)
        {
            if (n >= options.MaxEntries)
            {
                warning?.Invoke($"The modules list has more than {options.MaxEntries} entries; the walk stopped there.");
                yield break;
            }

            ulong module = next - list.Offset;
            if (!seen.Add(module))
            {
                warning?.Invoke($"The modules list loops back to 0x{module:x} after {n} modules; the walk stopped.");
                yield break;
            }

            byte[] nameBytes = new byte[(int)Math.Min(name.Size, 256)];
            if (!IsKernelPointer(next) || _kernel.Memory.Read(module + name.Offset, _kernel.Root, nameBytes) != nameBytes.Length
                || !_kernel.TryReadU32(module + state.Offset, out uint st) || !_kernel.TryReadU64(next, out ulong following))
            {
                warning?.Invoke($"The modules list points at 0x{next:x}, which is not readable kernel memory, after {n} modules; the walk stopped.");
                yield break;
            }

            ulong baseVa = 0, size = 0;
            if (mem is { } m)
            {
                _kernel.TryReadU64(module + m.Offset + baseField.Offset, out baseVa);
                for (int i = 0; i < m.Count; i++)
                {
                    _kernel.TryReadU32(module + m.Offset + ((ulong)i * m.Stride) + sizeField.Offset, out uint s);
                    size += s;
                }
            }
            else
            {
                _kernel.TryReadU64(module + baseField.Offset, out baseVa);
                _kernel.TryReadU32(module + sizeField.Offset, out uint s);
                size = s;
            }

            yield return new LinuxModule
            {
                Name = Text.CString(nameBytes),
                Base = baseVa,
                Size = size,
                State = st switch { 0 => "Live", 1 => "Coming", 2 => "Going", 3 => "Unformed", _ => $"Unknown({st})" },
                ModuleAddress = module,
                BtfTypeCount = btf.TryGetValue(module, out uint types) ? types : null,
            };
            next = following;
        }
    }

    // ---------------------------------------------------------------- module symbols

    /// <summary>The most symbols read from one module's table (a large module has some thousands).</summary>
    private const uint MaxModuleSymbols = 1 << 20;

    private const int ElfSymSize = 24; // Elf64_Sym: st_name u32, st_info, st_other, st_shndx u16, st_value u64, st_size u64
    private const int KsymNameLen = 512; // KSYM_NAME_LEN

    /// <summary>
    /// Every module's own symbols, as /proc/kallsyms lists them with "[module]": from each module's
    /// <c>kallsyms</c> table (after init, <c>core_kallsyms</c>: symtab, strtab and typetab), in module-list order and
    /// table order, without the unnamed entries. A table that cannot be read ends that module's symbols with a warning.
    /// Types without <c>module.kallsyms</c> (a kernel built without CONFIG_KALLSYMS) give none.
    /// </summary>
    public IEnumerable<LinuxModuleSymbol> GetModuleSymbols(LinuxWalkOptions? options = null, Action<string>? warning = null)
    {
        IKernelTypes b = RequireTypes();
        if (!b.TryGetField("module", "kallsyms", out KernelField kallsyms))
        {
            yield break; // a kernel without CONFIG_KALLSYMS keeps no module symbols
        }

        KernelField symtab = b.GetField("mod_kallsyms", "symtab");
        KernelField count = b.GetField("mod_kallsyms", "num_symtab");
        KernelField strtab = b.GetField("mod_kallsyms", "strtab");
        KernelField? typetab = b.TryGetField("mod_kallsyms", "typetab", out KernelField t) ? t : null; // Linux 5.2+
        foreach (LinuxModule m in GetModules(options, warning))
        {
            if (!_kernel.TryReadU64(m.ModuleAddress + kallsyms.Offset, out ulong table) || !IsKernelPointer(table)
                || !_kernel.TryReadU64(table + symtab.Offset, out ulong syms) || !_kernel.TryReadU32(table + count.Offset, out uint n)
                || !_kernel.TryReadU64(table + strtab.Offset, out ulong strings))
            {
                warning?.Invoke($"Module {m.Name}: its symbol table (module.kallsyms at 0x{m.ModuleAddress + kallsyms.Offset:x}) cannot be read.");
                continue;
            }

            if (n > MaxModuleSymbols)
            {
                warning?.Invoke($"Module {m.Name}: its symbol table claims {n} symbols, more than {MaxModuleSymbols}; it is not read.");
                continue;
            }

            byte[] entries = new byte[(int)n * ElfSymSize];
            byte[] types = new byte[(int)n];
            ulong typesVa = 0;
            if (_kernel.Memory.Read(syms, _kernel.Root, entries) != entries.Length
                || (typetab is { } tt && (!_kernel.TryReadU64(table + tt.Offset, out typesVa) || _kernel.Memory.Read(typesVa, _kernel.Root, types) != types.Length)))
            {
                warning?.Invoke($"Module {m.Name}: its {n} symbols at 0x{syms:x} cannot be read.");
                continue;
            }

            HashSet<(string, ulong)> exports = Exports(b, m);
            uint maxName = 0;
            for (int i = 0; i < (int)n; i++)
            {
                maxName = Math.Max(maxName, BinaryPrimitives.ReadUInt32LittleEndian(entries.AsSpan(i * ElfSymSize)));
            }

            // the string table as one block, up to the last name plus its longest possible length
            byte[] names = new byte[(int)Math.Min((ulong)maxName + KsymNameLen, 16UL << 20)];
            int got = _kernel.Memory.Read(strings, _kernel.Root, names);
            for (int i = 0; i < (int)n; i++)
            {
                ReadOnlySpan<byte> e = entries.AsSpan(i * ElfSymSize, ElfSymSize);
                uint nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(e);
                if (nameOffset >= got)
                {
                    continue;
                }

                ReadOnlySpan<byte> rest = names.AsSpan((int)nameOffset, Math.Min(got - (int)nameOffset, KsymNameLen));
                int end = rest.IndexOf((byte)0);
                string name = System.Text.Encoding.UTF8.GetString(end < 0 ? rest : rest[..end]);
                if (name.Length == 0)
                {
                    continue; // the null symbol (index 0), which /proc/kallsyms leaves out
                }

                // /proc/kallsyms shows a module symbol upper case when the module exports it (same name and value), else lower case
                char type = typetab is null ? '?' : (char)types[i];
                ulong value = BinaryPrimitives.ReadUInt64LittleEndian(e[8..]);
                type = exports.Contains((name, value)) ? char.ToUpperInvariant(type) : char.ToLowerInvariant(type);
                yield return new LinuxModuleSymbol(m.Name, name, value, type);
            }
        }
    }

    /// <summary>
    /// The (name, value) pairs a module exports (module.syms and gpl_syms: struct kernel_symbol, with 32-bit relative
    /// offsets on x86-64, or absolute pointers where the types say so), bounded like its symbol table.
    /// </summary>
    private HashSet<(string, ulong)> Exports(IKernelTypes b, LinuxModule m)
    {
        var set = new HashSet<(string, ulong)>();
        bool relative = b.TryGetField("kernel_symbol", "value_offset", out KernelField valueField) & b.TryGetField("kernel_symbol", "name_offset", out KernelField nameField);
        if (!relative && !(b.TryGetField("kernel_symbol", "value", out valueField) & b.TryGetField("kernel_symbol", "name", out nameField)))
        {
            return set;
        }

        ulong stride = relative ? 12UL : 24UL; // int value_offset, name_offset, namespace_offset | unsigned long value, const char *name, *namespace
        foreach ((string table, string count) in new[] { ("syms", "num_syms"), ("gpl_syms", "num_gpl_syms") })
        {
            if (!b.TryGetField("module", table, out KernelField t) || !b.TryGetField("module", count, out KernelField c)
                || !_kernel.TryReadU64(m.ModuleAddress + t.Offset, out ulong at) || !_kernel.TryReadU32(m.ModuleAddress + c.Offset, out uint n)
                || n > MaxModuleSymbols || at == 0)
            {
                continue;
            }

            byte[] entries = new byte[(int)(n * stride)];
            if (_kernel.Memory.Read(at, _kernel.Root, entries) != entries.Length)
            {
                continue;
            }

            for (ulong i = 0; i < n; i++)
            {
                ulong entry = at + (i * stride);
                ReadOnlySpan<byte> e = entries.AsSpan((int)(i * stride), (int)stride);
                ulong value, nameVa;
                if (relative)
                {
                    value = entry + valueField.Offset + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(e[(int)valueField.Offset..]);
                    nameVa = entry + nameField.Offset + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(e[(int)nameField.Offset..]);
                }
                else
                {
                    value = BinaryPrimitives.ReadUInt64LittleEndian(e[(int)valueField.Offset..]);
                    nameVa = BinaryPrimitives.ReadUInt64LittleEndian(e[(int)nameField.Offset..]);
                }

                if (_kernel.ReadCString(nameVa, KsymNameLen) is { Length: > 0 } name)
                {
                    set.Add((name, value));
                }
            }
        }

        return set;
    }
}
