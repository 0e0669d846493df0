using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Qemu;

/// <summary>How to connect to a QEMU VM.</summary>
public sealed record QemuConnectOptions
{
    /// <summary>Map guest RAM read-only and refuse writes, register changes and breakpoints.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>A gdbstub already listening (unix socket path or HOST:PORT). Null: the driver starts one on a private unix socket through QMP.</summary>
    public string? GdbEndpoint { get; init; }

    /// <summary>Restore the VM on process exit and SIGTERM (a killed session leaves no breakpoint and no paused VM).</summary>
    public bool HookProcessExit { get; init; } = true;

    /// <summary>How long one QMP command or gdbstub reply may take before QEMU is declared hung.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Use gdbstub memory packets even when guest RAM is a shared file (for tests and comparison).</summary>
    public bool ForcePacketMemory { get; init; }
}

/// <summary>
/// The QEMU/KVM driver: QMP for the run state, the RAM backend and the physical layout; guest RAM mapped from the
/// shared memory-backend file (zero copy) or, when RAM is not shared, read through gdbstub memory packets; the gdbstub
/// for registers, breakpoints the guest cannot see and single-step. Callers are serialised by the guest object: the
/// driver locks only its sockets. Everything it changed is undone on <see cref="Dispose"/>, process exit and SIGTERM:
/// breakpoints removed, the gdbstub detached (and stopped if the driver started it), the VM resumed if it ran before.
/// </summary>
public sealed unsafe class QemuDriver :
    IVmiDriver, IVmiRead, IVmiWrite, IVmiQueryRegisters, IVmiSetRegisters, IVmiEventControl, IVmiVmControl, IVmiBreakpoints
{
    private const int PageShift = 12;
    private const int PageSize = 1 << PageShift;

    private static readonly string[] GpNames =
    [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rip", "eflags", "cr0", "cr2", "cr3", "cr4", "efer", "fs_base", "gs_base", "k_gs_base",
    ];

    private readonly QmpClient _qmp;
    private readonly GdbRemote _gdb;
    private readonly QemuConnectOptions _options;
    private readonly GdbRegisterLayout _layout;
    private readonly IReadOnlyList<string> _threads;
    private readonly int[] _cpuIndexes;
    private readonly RamMapping[] _ram;
    private readonly List<(MemoryMappedFile File, MemoryMappedViewAccessor View)> _maps = [];
    private readonly string? _privateDir;
    private readonly bool _startedGdbServer;
    private readonly bool _wasRunning;
    private readonly bool _packetMemory;
    private bool _kvm;
    private readonly SortedDictionary<int, VmiBreakpoint> _breakpoints = [];
    private readonly Dictionary<ulong, int> _pointsAt = []; // address -> breakpoints there (one Z point each address)
    private readonly Dictionary<(ulong Address, BreakpointAccess Access, int Length), int> _watchesAt = []; // one Z2-Z4 point each
    private readonly HashSet<EventMonitor> _monitors = [];
    private readonly List<IDisposable> _exitHooks = [];
    private int _nextBreakpoint = 1;
    private int _pauses;
    private bool _stopped;
    private bool _inEvent;
    private bool _pauseStoppedVm;
    private bool _stepRequested;
    private string? _steppingThread;
    private ulong? _reinsertAfterStep;
    private string? _lastStopThread;
    private GdbStopReply? _unreported; // the stop reply that ended the last run when it is an event not yet taken
    private (string Thread, ulong Address)? _resumeOver; // a vCPU stopped on one of our breakpoints: step it over before running
    private int _restored;

    /// <summary>
    /// Run control and every gdbstub exchange, also against the restore that SIGTERM and process exit run on other
    /// threads. The guest object serialises its callers; this lock makes the driver safe without it.
    /// </summary>
    private readonly object _gate = new();

    private QemuDriver(
        QmpClient qmp, GdbRemote gdb, QemuConnectOptions options, GdbRegisterLayout layout, IReadOnlyList<string> threads,
        int[] cpuIndexes, RamMapping[] ram, string? privateDir, bool startedGdbServer, bool wasRunning, bool packetMemory,
        VmiInfo info, string description)
    {
        _qmp = qmp;
        _gdb = gdb;
        _options = options;
        _layout = layout;
        _threads = threads;
        _cpuIndexes = cpuIndexes;
        _ram = ram;
        _privateDir = privateDir;
        _startedGdbServer = startedGdbServer;
        _wasRunning = wasRunning;
        _packetMemory = packetMemory;
        Info = info;
        Description = description;
        _stopped = true; // attaching the gdbstub stopped the VM
    }

    public string Name => "QEMU";

    public VmiInfo Info { get; }

    /// <summary>What this session reaches and how: QEMU version, the RAM file (or the slow packet path) and the gdbstub.</summary>
    public string Description { get; }

    /// <summary>True when guest memory goes through gdbstub packets (RAM is not a shared file), which is far slower.</summary>
    public bool UsesPacketMemory => _packetMemory;

    /// <summary>The guest-physical RAM ranges found in QEMU's memory tree.</summary>
    public IReadOnlyList<RamRange> RamRanges => [.. _ram.Select(r => r.Range)];

    public bool IsReadOnly => _options.ReadOnly;

    /// <summary>The QMP client (tests ask QEMU's own monitor through it).</summary>
    public QmpClient Qmp => _qmp;

    /// <summary>Where failures that cannot be thrown (cleanup on exit) are reported.</summary>
    public Action<string> Log { get; set; } = static m => Trace.WriteLine(m, "Vmi.Qemu");

    /// <summary>Connects to the VM behind a QMP socket (unix path or HOST:PORT).</summary>
    public static QemuDriver Connect(string qmpEndpoint, QemuConnectOptions? options = null)
    {
        options ??= new QemuConnectOptions();
        QmpClient qmp = QmpClient.Connect(qmpEndpoint, options.Timeout);
        GdbRemote? gdb = null;
        string? privateDir = null;
        bool startedGdb = false;
        var maps = new List<(MemoryMappedFile, MemoryMappedViewAccessor)>();
        bool ok = false;
        try
        {
            string status = qmp.Status();
            bool stale = status == "debug"; // stopped at a breakpoint of a session that died (SIGKILL): ours to clean up
            bool wasRunning = status == "running" || stale;

            // ---- RAM: backends, their files, and where they sit in guest-physical space
            var backends = new Dictionary<string, (bool Share, ulong Size, string? Path)>(StringComparer.Ordinal);
            foreach (JsonNode? m in qmp.Execute("query-memdev").AsArray())
            {
                string id = (string?)m?["id"] ?? "";
                string? path = null;
                try
                {
                    path = (string?)qmp.Execute("qom-get", new JsonObject { ["path"] = "/objects/" + id, ["property"] = "mem-path" });
                }
                catch (QmpException)
                {
                    // not a file backend (memory-backend-ram, memfd)
                }

                backends[id] = ((bool?)m?["share"] ?? false, (ulong?)m?["size"] ?? 0, path);
            }

            string mtree = qmp.Hmp("info mtree -f");
            IReadOnlyList<RamRange> ranges = QemuMemoryLayout.Parse(mtree, backends.Keys.ToHashSet(StringComparer.Ordinal));
            if (ranges.Count == 0)
            {
                throw new VmiDriverException($"QEMU's memory tree shows no RAM of the backends {string.Join(", ", backends.Keys)}: start QEMU with -object memory-backend-file,id=ram,...,share=on -machine memory-backend=ram.");
            }

            var bases = new Dictionary<string, IntPtr>(StringComparer.Ordinal);
            var why = new List<string>();
            foreach ((string id, (bool share, ulong size, string? path)) in backends)
            {
                if (options.ForcePacketMemory)
                {
                    why.Add("packet memory was asked for");
                    continue;
                }

                if (!share || path is null || !File.Exists(path))
                {
                    why.Add(!share ? $"backend '{id}' is not shared (share=off)" : path is null ? $"backend '{id}' has no file (not memory-backend-file)" : $"backend '{id}' file '{path}' is not reachable from here");
                    continue;
                }

                var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, options.ReadOnly ? MemoryMappedFileAccess.Read : MemoryMappedFileAccess.ReadWrite);
                MemoryMappedViewAccessor view;
                try
                {
                    view = file.CreateViewAccessor(0, (long)size, options.ReadOnly ? MemoryMappedFileAccess.Read : MemoryMappedFileAccess.ReadWrite);
                }
                catch
                {
                    file.Dispose();
                    throw;
                }

                maps.Add((file, view));
                byte* p = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
                bases[id] = (IntPtr)(p + view.PointerOffset);
            }

            bool packetMemory = ranges.Any(r => !bases.ContainsKey(r.Backend));
            RamMapping[] ram = [.. ranges.Select(r => new RamMapping(r, bases.TryGetValue(r.Backend, out IntPtr b) ? (byte*)b + r.Offset : null))];

            // ---- vCPUs and the physical-address width
            JsonArray cpus = qmp.Execute("query-cpus-fast").AsArray();
            int[] cpuIndexes = [.. cpus.Select(c => (int?)c?["cpu-index"] ?? 0).Order()];
            int physBits = Amd64.MaxPhysicalAddressWidth;
            string? qomPath = (string?)cpus.FirstOrDefault()?["qom-path"];
            if (qomPath is not null)
            {
                try
                {
                    physBits = (int?)qmp.Execute("qom-get", new JsonObject { ["path"] = qomPath, ["property"] = "phys-bits" }) ?? physBits;
                }
                catch (QmpException)
                {
                    // older QEMU: keep the architectural maximum
                }
            }

            // ---- the gdbstub: the one given, or our own on a private unix socket
            string gdbEndpoint;
            if (options.GdbEndpoint is string given)
            {
                gdbEndpoint = given;
            }
            else
            {
                privateDir = Directory.CreateTempSubdirectory("vmi-qemu-").FullName; // 0700: only this user reaches the stub
                gdbEndpoint = Path.Combine(privateDir, "gdb.sock");
                string said = qmp.Hmp($"gdbserver unix:{gdbEndpoint},server=on,wait=off");
                if (!File.Exists(gdbEndpoint))
                {
                    // A gdbstub socket left by a session that was killed: QEMU 7.2 cannot replace it ("duplicate yank
                    // instance") until it is stopped. Replacing a stub detaches whoever was on it, as "gdbserver" itself does.
                    qmp.Hmp("gdbserver none");
                    said = qmp.Hmp($"gdbserver unix:{gdbEndpoint},server=on,wait=off");
                }

                if (!File.Exists(gdbEndpoint))
                {
                    throw new VmiDriverException($"QEMU did not start a gdbstub on {gdbEndpoint}: {said.Trim()}");
                }

                startedGdb = true;
            }

            gdb = GdbRemote.Connect(gdbEndpoint, options.Timeout);
            gdb.Handshake();

            // "?" is what a debugger sends on attach; QEMU answers it by removing every breakpoint left by an
            // earlier client (a session that was killed), which is exactly the clean-up a new session needs.
            gdb.Send("?");
            WaitForTrap(gdb, options.Timeout, "the attach query '?'");
            gdb.DrainStops();
            if (packetMemory)
            {
                gdb.CommandOk("Qqemu.PhyMemMode:1", "switch memory packets to physical addresses");
            }

            GdbRegisterLayout layout = GdbRegisterLayout.Load(annex => gdb.ReadXfer("features", annex));
            foreach (string name in GpNames)
            {
                layout.Get(name);
            }

            IReadOnlyList<string> threads = gdb.Threads();
            if (threads.Count != cpuIndexes.Length)
            {
                throw new VmiDriverException($"The gdbstub lists {threads.Count} threads but QMP {cpuIndexes.Length} vCPUs.");
            }

            ulong maxGfn = ranges.Max(r => r.End) >> PageShift;
            var info = new VmiInfo(PageSize, PageShift, new Gfn(maxGfn), cpuIndexes.Length) { PhysicalAddressWidth = Math.Clamp(physBits, 32, Amd64.MaxPhysicalAddressWidth) };
            string memory = packetMemory
                ? $"RAM through gdbstub memory packets (slow: {string.Join("; ", why.Distinct())}; start QEMU with -object memory-backend-file,...,share=on for memory speed)"
                : $"RAM mapped from {string.Join(", ", backends.Values.Select(b => b.Path).Distinct())} (zero copy)";
            string description = $"QEMU {qmp.Version} at {qmpEndpoint}: {cpuIndexes.Length} vCPU(s), {memory}; gdbstub {(startedGdb ? "started by this session" : gdbEndpoint)}{(stale ? "; removed breakpoints left by a session that was killed" : "")}";

            bool kvm = (bool?)qmp.Execute("query-kvm")["enabled"] ?? false;
            var driver = new QemuDriver(qmp, gdb, options, layout, threads, cpuIndexes, ram, privateDir, startedGdb, wasRunning, packetMemory, info, description + (kvm ? "; KVM" : "; TCG"));
            driver._kvm = kvm;
            driver._maps.AddRange(maps);
            if (wasRunning)
            {
                driver.RunVm();
            }

            if (options.HookProcessExit)
            {
                driver.HookProcessExit();
            }

            ok = true;
            return driver;
        }
        finally
        {
            if (!ok)
            {
                // Partial failure: leave QEMU as we found it.
                try
                {
                    if (gdb is not null)
                    {
                        try
                        {
                            gdb.Command("D;1");
                        }
                        catch (VmiException)
                        {
                        }

                        gdb.Dispose();
                    }

                    if (startedGdb)
                    {
                        qmp.Hmp("gdbserver none");
                    }
                }
                catch (VmiException)
                {
                }

                foreach ((MemoryMappedFile f, MemoryMappedViewAccessor v) in maps)
                {
                    v.SafeMemoryMappedViewHandle.ReleasePointer();
                    v.Dispose();
                    f.Dispose();
                }

                qmp.Dispose();
                if (privateDir is not null)
                {
                    TryDeleteDirectory(privateDir);
                }
            }
        }
    }

    // ------------------------------------------------------------------ memory

    public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
    {
        ulong pa = gfn.Value << PageShift;
        int i = FindRange(pa);
        if (i < 0)
        {
            page = null;
            return false;
        }

        RamMapping r = _ram[i];
        if (r.Base != null)
        {
            page = new RamPage(gfn, r.Base + (pa - r.Range.Start), PageSize);
            return true;
        }

        byte[] bytes = new byte[PageSize];
        lock (_gate)
        {
            WithStopped(() => _gdb.ReadMemory(pa, bytes));
        }
        page = new PacketPage(gfn, bytes);
        return true;
    }

    public void WritePage(Gfn gfn, int offset, ReadOnlySpan<byte> data)
    {
        if (_options.ReadOnly)
        {
            throw new VmiNotSupportedException("This QEMU session is read-only: connect without -ReadOnly to write guest memory.");
        }

        if (offset < 0 || offset + data.Length > PageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), "The write must stay inside one 4 KiB frame.");
        }

        ulong pa = (gfn.Value << PageShift) + (ulong)offset;
        int i = FindRange(pa);
        if (i < 0)
        {
            throw new GfnNotPresentException(gfn, "not RAM in QEMU's memory tree");
        }

        RamMapping r = _ram[i];
        if (r.Base != null)
        {
            data.CopyTo(new Span<byte>(r.Base + (pa - r.Range.Start), data.Length));
            return;
        }

        byte[] copy = data.ToArray();
        lock (_gate)
        {
            WithStopped(() => _gdb.WriteMemory(pa, copy));
        }
    }

    private int FindRange(ulong pa)
    {
        int lo = 0, hi = _ram.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            RamRange r = _ram[mid].Range;
            if (pa < r.Start)
            {
                hi = mid - 1;
            }
            else if (pa > r.End)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }

        return -1;
    }

    // ------------------------------------------------------------------ registers

    public Registers GetRegisters(VcpuId vcpu)
    {
        string thread = Thread(vcpu);
        lock (_gate)
        {
            return WithStopped(() => ReadRegisters(vcpu, thread));
        }
    }

    public void SetRegisters(VcpuId vcpu, Registers registers)
    {
        ArgumentNullException.ThrowIfNull(registers);
        if (_options.ReadOnly)
        {
            throw new VmiNotSupportedException("This QEMU session is read-only: connect without -ReadOnly to set registers.");
        }

        string thread = Thread(vcpu);
        lock (_gate)
        {
            SetRegistersLocked(vcpu, thread, registers);
        }
    }

    private void SetRegistersLocked(VcpuId vcpu, string thread, Registers registers)
    {
        WithStopped(() =>
        {
            Registers current = ReadRegisters(vcpu, thread);
            var refused = new List<string>();
            if (registers.Cs != current.Cs || registers.Ds != current.Ds || registers.Es != current.Es || registers.Ss != current.Ss ||
                registers.Tr != current.Tr || registers.Ldtr != current.Ldtr || registers.Idtr != current.Idtr || registers.Gdtr != current.Gdtr)
            {
                refused.Add("segment registers and descriptor tables");
            }

            if (registers.Dr0 != current.Dr0 || registers.Dr1 != current.Dr1 || registers.Dr2 != current.Dr2 || registers.Dr3 != current.Dr3 || registers.Dr6 != current.Dr6 || registers.Dr7 != current.Dr7)
            {
                refused.Add("debug registers (use breakpoints: the gdbstub owns them)");
            }

            if (registers.MsrStar != current.MsrStar || registers.MsrLstar != current.MsrLstar || registers.MsrCstar != current.MsrCstar ||
                registers.MsrSyscallMask != current.MsrSyscallMask || registers.SysenterCs != current.SysenterCs || registers.SysenterEsp != current.SysenterEsp ||
                registers.SysenterEip != current.SysenterEip || registers.MsrPat != current.MsrPat || registers.TscAux != current.TscAux || registers.Xcr0 != current.Xcr0)
            {
                refused.Add("MSRs other than EFER and KERNEL_GS_BASE, and XCR0");
            }

            if (refused.Count > 0)
            {
                throw new VmiNotSupportedException($"QEMU's gdbstub cannot set {string.Join(", ", refused)}; it sets the general-purpose registers, RIP, RFLAGS, CR0/2/3/4, EFER and the FS/GS/KERNEL_GS bases.");
            }

            _gdb.CommandOk("Hg" + thread, $"select vCPU {vcpu}");
            foreach (string name in GpNames)
            {
                ulong want = Get(registers, name);
                if (want != Get(current, name))
                {
                    GdbRegister reg = _layout.Get(name);
                    _gdb.CommandOk(string.Create(CultureInfo.InvariantCulture, $"P{reg.Number:x}={GdbRegisterLayout.ToLittleEndianHex(want, reg.BitSize / 8)}"), $"set {name} of vCPU {vcpu}");
                }
            }
        });
    }

    private Registers ReadRegisters(VcpuId vcpu, string thread)
    {
        _gdb.CommandOk("Hg" + thread, $"select vCPU {vcpu}");
        string g = _gdb.Command("g");
        if (g.Length == 0 || g[0] == 'E')
        {
            throw new VmiDriverException($"The gdbstub cannot read the registers of vCPU {vcpu} ('{g}').");
        }

        var r = new Registers();
        foreach (string name in GpNames)
        {
            GdbRegister reg = _layout.Get(name);
            ulong? v = GdbRegisterLayout.ValueFrom(g, reg);
            if (v is null)
            {
                string p = _gdb.Command(string.Create(CultureInfo.InvariantCulture, $"p{reg.Number:x}"));
                if (p.Length == 0 || p[0] == 'E')
                {
                    throw new VmiDriverException($"The gdbstub cannot read {name} of vCPU {vcpu} ('{p}').");
                }

                v = GdbRegisterLayout.LittleEndian(p.AsSpan(0, Math.Min(p.Length, 16)));
            }

            r = With(r, name, v.Value);
        }

        // Segments, descriptor tables and debug registers: the gdbstub gives selectors only; QEMU's monitor has the rest.
        string text = _qmp.Hmp("info registers", _cpuIndexes[vcpu.Value]);
        Dictionary<string, SegmentRegister> seg = HmpRegisters.Segments(text);
        Dictionary<string, DescriptorTable> tables = HmpRegisters.Tables(text);
        Dictionary<string, ulong> values = HmpRegisters.Values(text);
        return r with
        {
            Cs = seg.GetValueOrDefault("CS"),
            Ds = seg.GetValueOrDefault("DS"),
            Es = seg.GetValueOrDefault("ES"),
            Fs = seg.GetValueOrDefault("FS"),
            Gs = seg.GetValueOrDefault("GS"),
            Ss = seg.GetValueOrDefault("SS"),
            Tr = seg.GetValueOrDefault("TR"),
            Ldtr = seg.GetValueOrDefault("LDT"),
            Gdtr = tables.GetValueOrDefault("GDT"),
            Idtr = tables.GetValueOrDefault("IDT"),
            Dr0 = values.GetValueOrDefault("DR0"),
            Dr1 = values.GetValueOrDefault("DR1"),
            Dr2 = values.GetValueOrDefault("DR2"),
            Dr3 = values.GetValueOrDefault("DR3"),
            Dr6 = values.GetValueOrDefault("DR6"),
            Dr7 = values.GetValueOrDefault("DR7"),
        };
    }

    private static ulong Get(Registers r, string name) => name switch
    {
        "rax" => r.Rax, "rbx" => r.Rbx, "rcx" => r.Rcx, "rdx" => r.Rdx, "rsi" => r.Rsi, "rdi" => r.Rdi, "rbp" => r.Rbp, "rsp" => r.Rsp,
        "r8" => r.R8, "r9" => r.R9, "r10" => r.R10, "r11" => r.R11, "r12" => r.R12, "r13" => r.R13, "r14" => r.R14, "r15" => r.R15,
        "rip" => r.Rip, "eflags" => r.Rflags, "cr0" => r.Cr0, "cr2" => r.Cr2, "cr3" => r.Cr3, "cr4" => r.Cr4, "efer" => r.MsrEfer,
        "fs_base" => r.Fs.Base, "gs_base" => r.Gs.Base, "k_gs_base" => r.ShadowGs,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    private static Registers With(Registers r, string name, ulong v) => name switch
    {
        "rax" => r with { Rax = v },
        "rbx" => r with { Rbx = v },
        "rcx" => r with { Rcx = v },
        "rdx" => r with { Rdx = v },
        "rsi" => r with { Rsi = v },
        "rdi" => r with { Rdi = v },
        "rbp" => r with { Rbp = v },
        "rsp" => r with { Rsp = v },
        "r8" => r with { R8 = v },
        "r9" => r with { R9 = v },
        "r10" => r with { R10 = v },
        "r11" => r with { R11 = v },
        "r12" => r with { R12 = v },
        "r13" => r with { R13 = v },
        "r14" => r with { R14 = v },
        "r15" => r with { R15 = v },
        "rip" => r with { Rip = v },
        "eflags" => r with { Rflags = v },
        "cr0" => r with { Cr0 = v },
        "cr2" => r with { Cr2 = v },
        "cr3" => r with { Cr3 = v },
        "cr4" => r with { Cr4 = v },
        "efer" => r with { MsrEfer = v },
        "fs_base" => r with { Fs = r.Fs with { Base = v } },
        "gs_base" => r with { Gs = r.Gs with { Base = v } },
        "k_gs_base" => r with { ShadowGs = v },
        _ => r,
    };

    private ulong ReadRip(string thread)
    {
        _gdb.CommandOk("Hg" + thread, "select a vCPU");
        GdbRegister rip = _layout.Get("rip");
        string p = _gdb.Command(string.Create(CultureInfo.InvariantCulture, $"p{rip.Number:x}"));
        return GdbRegisterLayout.LittleEndian(p.AsSpan(0, Math.Min(p.Length, 16)));
    }

    private string Thread(VcpuId vcpu) =>
        vcpu.Value < _threads.Count ? _threads[vcpu.Value] : throw new VcpuNotFoundException(vcpu, _threads.Count);

    private VcpuId VcpuOf(string? thread)
    {
        if (thread is null)
        {
            return new VcpuId(0);
        }

        int tid = ThreadNumber(thread);
        for (int i = 0; i < _threads.Count; i++)
        {
            if (ThreadNumber(_threads[i]) == tid)
            {
                return new VcpuId((ushort)i);
            }
        }

        return new VcpuId(0);
    }

    private static int ThreadNumber(string thread)
    {
        int dot = thread.LastIndexOf('.');
        string t = dot >= 0 ? thread[(dot + 1)..] : thread;
        return int.Parse(t, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    // ------------------------------------------------------------------ run control

    public void Pause()
    {
        lock (_gate)
        {
            if (_pauses++ == 0)
            {
                _pauseStoppedVm = !_stopped;
                StopVm();
            }
        }
    }

    public void Resume()
    {
        lock (_gate)
        {
            if (_pauses == 0)
            {
                RunVm(); // resume a VM paused by someone else, as QMP "cont" would (not one stopped at an event)
                return;
            }

            if (--_pauses == 0 && _pauseStoppedVm)
            {
                RunVm(); // only a VM our pause stopped: one paused by someone else stays paused
            }
        }
    }

    public Gfn AllocateGfn() => throw new VmiNotSupportedException("QEMU cannot add guest frames from outside: hot-plug memory with QMP object-add/device_add (pc-dimm) instead.");

    public void AllocateGfn(Gfn gfn) => AllocateGfn();

    public void FreeGfn(Gfn gfn) => throw new VmiNotSupportedException("QEMU cannot remove single guest frames: unplug a pc-dimm with QMP device_del instead.");

    public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt) =>
        throw new VmiNotSupportedException("QEMU cannot inject an exception into a vCPU through QMP or the gdbstub; QMP inject-nmi delivers an NMI to every vCPU.");

    /// <summary>Undoes what this session changed without disconnecting: breakpoints removed, monitors off, pauses released.</summary>
    public void ResetState()
    {
        lock (_gate)
        {
            _monitors.Clear();
            _stepRequested = false;
            if (_breakpoints.Count > 0)
            {
                WithStopped(RemoveAllPoints);
            }

            if (_pauses > 0)
            {
                _pauses = 0;
                if (_pauseStoppedVm)
                {
                    RunVm();
                }
            }
        }
    }

    // Run control goes through the gdbstub only. QEMU 7.2's gdbstub (gdb_read_byte) treats any byte that arrives while
    // the VM runs as an interrupt: it stops the VM and drops the byte, so a packet sent to a running VM is lost and its
    // answer never comes. And each stop of the VM, whatever caused it (a breakpoint, a step, an interrupt, QMP "stop"),
    // sends exactly one stop reply (gdb_vm_state_change); a stop request that finds the VM already stopped sends none.
    // So: packets are sent only while the VM is stopped; the VM is stopped with the interrupt byte, and the one stop
    // reply that follows says why it stopped: T02 for our interrupt, T05 when a breakpoint or step won the race (then
    // it is an event, kept for TakeEvents). Stopping with QMP "stop" instead left a breakpoint's T05 queued behind the
    // pause, which was later taken for the end of a step, and the next packet went to a running VM.

    /// <summary>How long a stop waits for a single-step in flight to end by itself before interrupting it.</summary>
    private static readonly TimeSpan StepGrace = TimeSpan.FromSeconds(2);

    /// <summary>Stops the VM (if it runs) through the gdbstub and takes the one stop reply that says why.</summary>
    private void StopVm()
    {
        if (_stopped)
        {
            return;
        }

        GdbStopReply? stop = null;
        if (_steppingThread is not null)
        {
            _gdb.TryTakeStop(StepGrace, out stop); // a step ends at once unless its vCPU halts
        }

        if (stop is null)
        {
            _gdb.Interrupt();
            if (!_gdb.TryTakeStop(_options.Timeout, out stop) || stop is null)
            {
                if (_qmp.Status() == "running")
                {
                    throw new VmiDriverException($"The gdbstub did not report the VM stopped within {_options.Timeout.TotalSeconds:0} s of an interrupt: is the VM's QEMU hung?");
                }

                _stopped = true; // stopped by someone else and its stop reply already taken: nothing more will come
                return;
            }
        }

        _stopped = true;
        if (stop.Kind is 'W' or 'X' || stop.Signal == GdbStopReply.SigTrap)
        {
            _unreported = stop; // a breakpoint, a step or the end of the VM: an event for TakeEvents
        }
    }

    /// <summary>
    /// Lets the VM run, unless an event is waiting to be taken or answered (the VM stays stopped at it): steps the vCPU
    /// stopped on one of our breakpoints over it first, or single-steps a vCPU when asked.
    /// </summary>
    private void RunVm()
    {
        if (!_stopped || _inEvent || _unreported is not null)
        {
            return;
        }

        bool step = _stepRequested || _steppingThread is not null || _monitors.Contains(EventMonitor.Singlestep);
        string stepThread = _steppingThread ?? _lastStopThread ?? _threads[0];
        (string Thread, ulong Address)? over = null;
        if (_resumeOver is (string t, ulong a) && _pointsAt.ContainsKey(a) && ReadRip(t) == a)
        {
            over = (t, a);
        }

        _resumeOver = null;
        if (over is (string ot, ulong oa) && !(step && ThreadNumber(ot) == ThreadNumber(stepThread)))
        {
            // Step the vCPU over the breakpoint it stopped on (only it runs), then put the breakpoint back.
            RemovePoint(oa);
            _gdb.Send("vCont;s:" + ot);
            GdbStopReply end = TakeStop(_gdb, _options.Timeout, "a step over a breakpoint");
            InsertPoint(oa, KindAt(oa));
            if (end.Kind is 'W' or 'X' || WatchHit(end) is not null)
            {
                _unreported = end; // the VM ended, or the stepped instruction hit a watchpoint: an event to report
                return;
            }

            over = null;
        }

        if (step)
        {
            if (over is (string, ulong at))
            {
                RemovePoint(at); // the step leaves the breakpoint; the stop at its end puts it back
                _reinsertAfterStep = at;
            }

            _stepRequested = false;
            _steppingThread = stepThread;
            _gdb.Send("vCont;s:" + stepThread);
            _stopped = false;
            return;
        }

        _gdb.Send("vCont;c");
        _stopped = false;
    }

    /// <summary>Takes the next stop reply, whatever its signal; throws when none comes in time.</summary>
    private static GdbStopReply TakeStop(GdbRemote gdb, TimeSpan timeout, string what) =>
        gdb.TryTakeStop(timeout, out GdbStopReply? stop) && stop is not null
            ? stop
            : throw new VmiDriverException($"The gdbstub did not report the end of {what} within {timeout.TotalSeconds:0} s.");

    private static GdbStopReply WaitForTrap(GdbRemote gdb, TimeSpan timeout, string what)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (gdb.TryTakeStop(deadline - DateTime.UtcNow, out GdbStopReply? stop) && stop is not null)
        {
            if (stop.Kind is 'W' or 'X')
            {
                throw new VmiDriverException($"The VM ended ({stop.Raw}) during {what}.");
            }

            if (stop.Signal == GdbStopReply.SigTrap)
            {
                return stop;
            }

            if (DateTime.UtcNow >= deadline)
            {
                break;
            }
        }

        throw new VmiDriverException($"The gdbstub did not report the end of {what} within {timeout.TotalSeconds:0} s.");
    }

    private T WithStopped<T>(Func<T> action)
    {
        bool stopHere = !_stopped;
        StopVm();
        try
        {
            return action();
        }
        finally
        {
            if (stopHere)
            {
                RunVm();
            }
        }
    }

    private void WithStopped(Action action) => WithStopped<bool>(() =>
    {
        action();
        return true;
    });

    // ------------------------------------------------------------------ breakpoints

    public IReadOnlyList<VmiBreakpoint> Breakpoints
    {
        get
        {
            lock (_gate)
            {
                return [.. _breakpoints.Values];
            }
        }
    }

    public VmiBreakpoint SetBreakpoint(BreakpointRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        lock (_gate)
        {
            return SetBreakpointLocked(request);
        }
    }

    private VmiBreakpoint SetBreakpointLocked(BreakpointRequest request)
    {
        if (request.Physical is not null)
        {
            throw new VmiNotSupportedException("QEMU's gdbstub breaks on virtual addresses only: set the breakpoint on the virtual address, with a CR3 to limit it to one address space.");
        }

        if (_options.ReadOnly)
        {
            throw new VmiNotSupportedException("This QEMU session is read-only: connect without -ReadOnly to set breakpoints.");
        }

        request.Validate();
        if (request.IsWatchpoint)
        {
            return SetWatchpointLocked(request);
        }

        if (_kvm && request.Kind == BreakpointKind.Software)
        {
            // Under KVM, QEMU's software breakpoints are INT3 bytes written into guest memory: the guest could see them.
            throw new VmiNotSupportedException("Under KVM, QEMU's software breakpoints write INT3 into guest memory, where the guest can see it: set a hardware breakpoint (Set-VmiBreakpoint -Hardware; 4 at most), which the guest cannot see.");
        }

        if (request.Vcpu is VcpuId v)
        {
            Thread(v);
        }

        ulong address = request.Address.Value;
        if (_pointsAt.TryGetValue(address, out int count))
        {
            if (KindAt(address) != request.Kind)
            {
                throw new ArgumentException($"A {KindAt(address)} breakpoint is already set at 0x{address:x}: remove it first to set a {request.Kind} one there.", nameof(request));
            }

            _pointsAt[address] = count + 1;
        }
        else
        {
            var kind = request.Kind;
            WithStopped(() => InsertPoint(address, kind));
            _pointsAt[address] = 1;
        }

        var bp = new VmiBreakpoint(_nextBreakpoint++, request.Address, request.Kind, request.Cr3, request.Vcpu, null, 0);
        _breakpoints[bp.Id] = bp;
        return bp;
    }

    private VmiBreakpoint SetWatchpointLocked(BreakpointRequest request)
    {
        if (_kvm && request.Access == BreakpointAccess.Read)
        {
            throw new VmiNotSupportedException("Under KVM, QEMU watches data with the x86 debug registers, which cannot watch reads alone: watch ReadWrite (reads and writes) instead.");
        }

        if (request.Vcpu is VcpuId v)
        {
            Thread(v);
        }

        var key = (request.Address.Value, request.Access, request.Length);
        if (_watchesAt.TryGetValue(key, out int count))
        {
            _watchesAt[key] = count + 1;
        }
        else
        {
            WithStopped(() => InsertWatch(key.Value, key.Access, key.Length));
            _watchesAt[key] = 1;
        }

        var bp = new VmiBreakpoint(_nextBreakpoint++, request.Address, BreakpointKind.Hardware, request.Cr3, request.Vcpu, null, 0)
        {
            Access = request.Access,
            Length = request.Length,
        };
        _breakpoints[bp.Id] = bp;
        return bp;
    }

    /// <summary>The gdbstub's watchpoint type: Z2 write, Z3 read, Z4 access.</summary>
    private static int WatchType(BreakpointAccess access) => access switch
    {
        BreakpointAccess.Write => 2,
        BreakpointAccess.Read => 3,
        BreakpointAccess.ReadWrite => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(access), access, "not a watchpoint access"),
    };

    private void InsertWatch(ulong address, BreakpointAccess access, int length)
    {
        string reply = _gdb.Command(string.Create(CultureInfo.InvariantCulture, $"Z{WatchType(access)},{address:x},{length:x}"));
        if (reply != "OK")
        {
            throw new VmiDriverException(_kvm
                ? $"QEMU refused a {access} watchpoint of {length} bytes at 0x{address:x} ('{reply}'): under KVM the 4 debug registers hold every hardware breakpoint and watchpoint; remove one."
                : $"QEMU refused a {access} watchpoint of {length} bytes at 0x{address:x} ('{reply}').");
        }
    }

    private void RemoveWatch(ulong address, BreakpointAccess access, int length)
    {
        string reply = _gdb.Command(string.Create(CultureInfo.InvariantCulture, $"z{WatchType(access)},{address:x},{length:x}"));
        if (reply != "OK")
        {
            Log($"QEMU did not remove the {access} watchpoint at 0x{address:x} ('{reply}').");
        }
    }

    /// <summary>Removes every breakpoint and watchpoint from QEMU (the VM stopped) and forgets them.</summary>
    private void RemoveAllPoints()
    {
        foreach (ulong address in _pointsAt.Keys.ToArray())
        {
            RemovePoint(address);
        }

        foreach ((ulong address, BreakpointAccess access, int length) in _watchesAt.Keys.ToArray())
        {
            RemoveWatch(address, access, length);
        }

        _pointsAt.Clear();
        _watchesAt.Clear();
        _breakpoints.Clear();
        _reinsertAfterStep = null;
        _resumeOver = null;
    }

    public bool RemoveBreakpoint(int id)
    {
        lock (_gate)
        {
            return RemoveBreakpointLocked(id);
        }
    }

    private bool RemoveBreakpointLocked(int id)
    {
        if (!_breakpoints.Remove(id, out VmiBreakpoint? bp))
        {
            return false;
        }

        if (bp.Access != BreakpointAccess.Execute)
        {
            var key = (bp.Address.Value, bp.Access, bp.Length);
            if (--_watchesAt[key] == 0)
            {
                _watchesAt.Remove(key);
                WithStopped(() => RemoveWatch(key.Value, key.Access, key.Length));
            }

            return true;
        }

        ulong address = bp.Address.Value;
        if (--_pointsAt[address] == 0)
        {
            _pointsAt.Remove(address);
            if (_reinsertAfterStep == address)
            {
                _reinsertAfterStep = null; // stepping over it: simply do not put it back
            }
            else
            {
                WithStopped(() => RemovePoint(address, bp.Kind));
            }
        }

        return true;
    }

    private BreakpointKind KindAt(ulong address) =>
        _breakpoints.Values.FirstOrDefault(b => b.Address.Value == address)?.Kind ?? BreakpointKind.Software;

    private void InsertPoint(ulong address, BreakpointKind kind)
    {
        string reply = _gdb.Command(string.Create(CultureInfo.InvariantCulture, $"Z{(kind == BreakpointKind.Hardware ? 1 : 0)},{address:x},1"));
        if (reply != "OK")
        {
            throw new VmiDriverException(kind == BreakpointKind.Hardware
                ? $"QEMU refused a hardware breakpoint at 0x{address:x} ('{reply}'): under KVM there are 4 debug registers; use a software breakpoint."
                : $"QEMU refused a breakpoint at 0x{address:x} ('{reply}').");
        }
    }

    private void RemovePoint(ulong address) => RemovePoint(address, KindAt(address));

    private void RemovePoint(ulong address, BreakpointKind kind)
    {
        string reply = _gdb.Command(string.Create(CultureInfo.InvariantCulture, $"z{(kind == BreakpointKind.Hardware ? 1 : 0)},{address:x},1"));
        if (reply != "OK")
        {
            Log($"QEMU did not remove the breakpoint at 0x{address:x} ('{reply}').");
        }
    }

    // ------------------------------------------------------------------ events

    public IReadOnlyCollection<EventMonitor> EnabledMonitors
    {
        get
        {
            lock (_gate)
            {
                return [.. _monitors];
            }
        }
    }

    public int EventsPending => 0;

    public void EnableMonitor(EventMonitor monitor)
    {
        lock (_gate)
        {
            switch (monitor.Kind)
            {
                case MonitorKind.Breakpoint:
                    _monitors.Add(monitor); // breakpoint hits are reported whether or not this is on
                    return;
                case MonitorKind.Singlestep:
                    if (_options.ReadOnly)
                    {
                        throw new VmiNotSupportedException("This QEMU session is read-only: connect without -ReadOnly to single-step.");
                    }

                    _monitors.Add(monitor);
                    if (!_stopped && _pauses == 0)
                    {
                        StopVm();
                        RunVm(); // now a step
                    }

                    return;
                default:
                    throw new VmiNotSupportedException(monitor.Kind switch
                    {
                        MonitorKind.ControlRegister or MonitorKind.Msr => $"QEMU cannot report {monitor} writes (neither QMP nor the gdbstub has such an event): poll the register with GetRegisters, or use Xen.",
                        MonitorKind.DebugException => "QEMU's gdbstub owns the debug exceptions: use breakpoints and single-step instead.",
                        _ => $"QEMU cannot report {monitor.Kind} events (neither QMP nor the gdbstub has them): use breakpoints on the guest code that does it, or Xen.",
                    });
            }
        }
    }

    public void DisableMonitor(EventMonitor monitor)
    {
        lock (_gate)
        {
            _monitors.Remove(monitor);
        }
    }

    /// <summary>
    /// Waits for a stop reply from the gdbstub without taking it, or for a stop that another call took while stopping
    /// the VM (safe beside every other call: it takes neither the driver's lock nor any stop reply).
    /// </summary>
    public bool WaitForPending(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Volatile.Read(ref _unreported) is not null || _gdb.WaitForStop(timeout, cancellationToken, () => Volatile.Read(ref _unreported) is not null);

    /// <summary>
    /// Takes the next event, if the VM stopped at one: QEMU stops the whole VM at an event, so there is at most one until
    /// it is answered. Stops that are not events (pauses, filtered or foreign traps) are consumed on the way.
    /// </summary>
    public IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        lock (_gate)
        {
            while (!_inEvent && NextStop() is GdbStopReply stop)
            {
                if (stop.Kind is 'W' or 'X')
                {
                    throw new VmiDriverException($"The VM ended ({stop.Raw}).");
                }

                if (stop.Signal != GdbStopReply.SigTrap)
                {
                    continue; // a pause by another client (QMP "stop"): not an event, and the VM stays paused
                }

                string thread = stop.Thread ?? _threads[0];
                _lastStopThread = thread;
                if (_reinsertAfterStep is ulong again)
                {
                    _reinsertAfterStep = null;
                    if (_pointsAt.ContainsKey(again))
                    {
                        InsertPoint(again, KindAt(again));
                    }
                }

                bool wasStep = _steppingThread is not null;
                _steppingThread = null;
                VcpuId vcpu = VcpuOf(thread);
                Registers regs = ReadRegisters(vcpu, thread);
                EventReason reason;
                if (WatchHit(stop) is (ulong watched, BreakpointAccess access))
                {
                    // QEMU stops after the accessing instruction: nothing to step over.
                    Pa root = regs.TranslationRoot;
                    VmiBreakpoint[] hits = [.. _breakpoints.Values.Where(b => b.Access == access && b.Address.Value == watched && (b.Cr3 is null || b.Cr3 == root) && (b.Vcpu is null || b.Vcpu == vcpu))];
                    if (hits.Length == 0)
                    {
                        RunIfNotPaused(); // filtered out, or a watchpoint already removed
                        continue;
                    }

                    foreach (VmiBreakpoint b in hits)
                    {
                        _breakpoints[b.Id] = b with { Hits = b.Hits + 1 };
                    }

                    reason = new WatchpointReason(new Va(watched), access, hits.Max(b => b.Length));
                }
                else if (wasStep)
                {
                    reason = new SinglestepReason(GfnOf(vcpu, regs.Rip), new Va(regs.Rip));
                }
                else if (_pointsAt.ContainsKey(regs.Rip))
                {
                    _resumeOver = (thread, regs.Rip); // running on steps this vCPU over the breakpoint first
                    Pa root = regs.TranslationRoot;
                    VmiBreakpoint[] hits = [.. _breakpoints.Values.Where(b => b.Address.Value == regs.Rip && (b.Cr3 is null || b.Cr3 == root) && (b.Vcpu is null || b.Vcpu == vcpu))];
                    if (hits.Length == 0)
                    {
                        RunIfNotPaused(); // filtered out (another address space or vCPU): step over silently
                        continue;
                    }

                    foreach (VmiBreakpoint b in hits)
                    {
                        _breakpoints[b.Id] = b with { Hits = b.Hits + 1 };
                    }

                    reason = new SoftwareBreakpointReason(GfnOf(vcpu, regs.Rip), new Va(regs.Rip), 0);
                }
                else
                {
                    RunIfNotPaused(); // a trap that is not ours (a breakpoint already removed, another debugger's)
                    continue;
                }

                _inEvent = true; // the VM stays stopped until the answer
                var evt = new VmiEvent(vcpu, View.Default, VmiEventFlags.VcpuPaused, regs, reason);
                return [new VmiPendingEvent(evt, new TakenStop(vcpu, thread, regs))];
            }

            return [];
        }
    }

    private static readonly (string Field, BreakpointAccess Access)[] WatchFields =
        [("watch", BreakpointAccess.Write), ("rwatch", BreakpointAccess.Read), ("awatch", BreakpointAccess.ReadWrite)];

    /// <summary>The watched address and access of a stop reply that reports a watchpoint ("watch:", "rwatch:", "awatch:"), or null.</summary>
    private static (ulong Address, BreakpointAccess Access)? WatchHit(GdbStopReply stop)
    {
        foreach ((string field, BreakpointAccess access) in WatchFields)
        {
            if (stop.Fields.TryGetValue(field, out string? value) && ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong address))
            {
                return (address, access);
            }
        }

        return null;
    }

    /// <summary>The stop reply that ended the last run, if it was not taken yet: the one kept by a stop, or one that arrived.</summary>
    private GdbStopReply? NextStop()
    {
        if (_unreported is GdbStopReply kept)
        {
            _unreported = null;
            return kept;
        }

        if (_gdb.TryTakeStop(TimeSpan.Zero, out GdbStopReply? stop) && stop is not null)
        {
            _stopped = true; // every stop reply means the VM stopped
            return stop;
        }

        return null;
    }

    /// <summary>Carries out the response (registers, single-step) and lets the VM run on, unless this session paused it.</summary>
    public void Answer(VmiPendingEvent pending, VmiEventResponse response)
    {
        ArgumentNullException.ThrowIfNull(pending);
        ArgumentNullException.ThrowIfNull(response);
        lock (_gate)
        {
            if (pending.DriverState is not TakenStop taken || !pending.TryMarkAnswered() || _restored != 0)
            {
                return;
            }

            EndEvent();
            try
            {
                Apply(taken.Vcpu, taken.Thread, taken.Registers, response);
            }
            finally
            {
                RunIfNotPaused();
            }
        }
    }

    /// <summary>Lets the VM run on from a taken event with nothing changed.</summary>
    public void Release(VmiPendingEvent pending)
    {
        ArgumentNullException.ThrowIfNull(pending);
        lock (_gate)
        {
            if (pending.DriverState is not TakenStop || !pending.TryMarkAnswered() || _restored != 0)
            {
                return;
            }

            EndEvent();
            RunIfNotPaused();
        }
    }

    private void EndEvent()
    {
        _inEvent = false;
        if (_pauses > 0)
        {
            _pauseStoppedVm = true; // the VM stays stopped for the pause now, and its Resume lets it run
        }
    }

    /// <summary>Where an event stopped the VM: what its answer needs.</summary>
    private sealed record TakenStop(VcpuId Vcpu, string Thread, Registers Registers);

    private void RunIfNotPaused()
    {
        if (_pauses == 0)
        {
            RunVm();
        }
    }

    private void Apply(VcpuId vcpu, string thread, Registers regs, VmiEventResponse response)
    {
        if (response.Registers is { } wanted)
        {
            SetRegistersStopped(vcpu, thread, regs, regs.WithGeneralPurpose(wanted)); // validated: only these differ from the event's
        }

        if ((response.Flags & VmiEventResponseFlags.ToggleSinglestep) != 0)
        {
            _stepRequested = true;
        }

        VmiEventResponseFlags unsupported = response.Flags & (VmiEventResponseFlags.Deny | VmiEventResponseFlags.Emulate | VmiEventResponseFlags.ReinjectInterrupt | VmiEventResponseFlags.ToggleFastSinglestep);
        if (unsupported != 0 || (response.View is View v && v != View.Default))
        {
            throw new VmiNotSupportedException($"QEMU cannot answer an event with {(unsupported != 0 ? unsupported.ToString() : "a view switch")}: it continues, single-steps and sets registers.");
        }
    }

    private void SetRegistersStopped(VcpuId vcpu, string thread, Registers current, Registers wanted)
    {
        _gdb.CommandOk("Hg" + thread, $"select vCPU {vcpu}");
        foreach (string name in GpNames)
        {
            ulong want = Get(wanted, name);
            if (want != Get(current, name))
            {
                GdbRegister reg = _layout.Get(name);
                _gdb.CommandOk(string.Create(CultureInfo.InvariantCulture, $"P{reg.Number:x}={GdbRegisterLayout.ToLittleEndianHex(want, reg.BitSize / 8)}"), $"set {name} of vCPU {vcpu}");
            }
        }
    }

    private Gfn GfnOf(VcpuId vcpu, ulong va)
    {
        string text = _qmp.Hmp(string.Create(CultureInfo.InvariantCulture, $"gva2gpa 0x{va:x}"), _cpuIndexes[vcpu.Value]);
        int at = text.IndexOf("gpa: 0x", StringComparison.Ordinal);
        return at >= 0 && ulong.TryParse(text.AsSpan(at + 7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong gpa)
            ? new Gfn(gpa >> PageShift)
            : default;
    }

    // ------------------------------------------------------------------ restore

    private void HookProcessExit()
    {
        EventHandler onExit = (_, _) => Restore("process exit");
        AppDomain.CurrentDomain.ProcessExit += onExit;
        _exitHooks.Add(new Unhook(() => AppDomain.CurrentDomain.ProcessExit -= onExit));
        if (!OperatingSystem.IsWindows())
        {
            _exitHooks.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => Restore("SIGTERM")));
        }
    }

    /// <summary>Removes every breakpoint, detaches the gdbstub (stopping it if we started it), resumes the VM if it ran when we connected. Once; never throws.</summary>
    private void Restore(string why)
    {
        if (Interlocked.Exchange(ref _restored, 1) != 0)
        {
            return;
        }

        // SIGTERM and process exit come on other threads: wait for a call in progress (each exchange is bounded by the
        // timeout) so that the two never interleave packets on the gdbstub.
        bool locked = false;
        try
        {
            Monitor.TryEnter(_gate, _options.Timeout + _options.Timeout, ref locked);
            if (!locked)
            {
                Log($"Restoring the QEMU VM on {why}: a call into the driver did not end within {(2 * _options.Timeout).TotalSeconds:0} s; restoring anyway.");
            }

            RestoreLocked();
        }
        catch (Exception e) when (e is VmiException or IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
        {
            Log($"Restoring the QEMU VM on {why} failed: {e.Message}. If the VM stays stopped, run QMP 'cont'; 'gdbserver none' stops the gdbstub.");
        }
        finally
        {
            if (locked)
            {
                Monitor.Exit(_gate);
            }
        }
    }

    private void RestoreLocked()
    {
        try
        {
            StopVm();
            RemoveAllPoints();
            if (_wasRunning)
            {
                // Detach: QEMU removes every breakpoint and watchpoint and lets the VM run.
                string reply = _gdb.Command("D;1");
                if (reply != "OK")
                {
                    _gdb.Command("D");
                }

                _stopped = false;
            }
        }
        finally
        {
            _gdb.Dispose();
        }

        if (_startedGdbServer)
        {
            _qmp.Hmp("gdbserver none");
        }

        if (_wasRunning && _qmp.Status() != "running")
        {
            _qmp.Execute("cont");
        }
    }

    public void Dispose()
    {
        Restore("dispose");
        foreach (IDisposable h in _exitHooks)
        {
            h.Dispose();
        }

        _exitHooks.Clear();
        _qmp.Dispose();
        foreach ((MemoryMappedFile f, MemoryMappedViewAccessor v) in _maps)
        {
            v.SafeMemoryMappedViewHandle.ReleasePointer();
            v.Dispose();
            f.Dispose();
        }

        _maps.Clear();
        if (_privateDir is not null)
        {
            TryDeleteDirectory(_privateDir);
        }
    }

    private static void TryDeleteDirectory(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private readonly struct RamMapping(RamRange range, byte* b)
    {
        public RamRange Range { get; } = range;

        public byte* Base { get; } = b;
    }

    private sealed class RamPage(Gfn gfn, byte* pointer, int length) : MappedPage(gfn, pointer, length);

    private sealed class PacketPage(Gfn gfn, byte[] bytes) : MappedPage(gfn, bytes)
    {
        public override bool IsLive => false;
    }

    private sealed class Unhook(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
