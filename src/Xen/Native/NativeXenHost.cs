using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Xen.Native;

/// <summary>The Xen libraries behind <see cref="IXenHost"/>: every native call of the driver is made here.</summary>
internal sealed unsafe class NativeXenHost : IXenHost
{
    private const int PageSize = 4096;

    /// <summary>Room for one xc_domaininfo_t of any release (112 bytes in 4.17-4.22).</summary>
    private const int DomainInfoBuffer = 1024;

    private readonly XcInterfaceHandle _xc;
    private readonly ForeignMemoryHandle _fmem;
    private readonly DeviceModelHandle _dmod;
    private readonly delegate* unmanaged<nint, uint, void*, int> _getinfoSingle;
    private readonly delegate* unmanaged<nint, uint, byte, int> _monitorIo;

    private NativeXenHost(XcInterfaceHandle xc, ForeignMemoryHandle fmem, DeviceModelHandle dmod, Version version)
    {
        _xc = xc;
        _fmem = fmem;
        _dmod = dmod;
        Version = version;
        _getinfoSingle = (delegate* unmanaged<nint, uint, void*, int>)XenLibraries.TryGetExport(XenLibraries.XenCtrl, XenCtrl.Optional.DomainGetinfoSingle);
        _monitorIo = (delegate* unmanaged<nint, uint, byte, int>)XenLibraries.TryGetExport(XenLibraries.XenCtrl, XenCtrl.Optional.MonitorIo);
    }

    public Version Version { get; }

    public XenCpuVendor CpuVendor { get; } = DetectCpuVendor();

    /// <summary>CPUID leaf 0's vendor string: a PV dom0 sees the real CPU's.</summary>
    internal static XenCpuVendor DetectCpuVendor()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported)
        {
            return XenCpuVendor.Unknown;
        }

        (int _, int ebx, int ecx, int edx) = System.Runtime.Intrinsics.X86.X86Base.CpuId(0, 0);
        Span<byte> vendor = stackalloc byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(vendor, ebx);
        BinaryPrimitives.WriteInt32LittleEndian(vendor[4..], edx);
        BinaryPrimitives.WriteInt32LittleEndian(vendor[8..], ecx);
        return Encoding.ASCII.GetString(vendor) switch
        {
            "GenuineIntel" => XenCpuVendor.Intel,
            "AuthenticAMD" or "HygonGenuine" => XenCpuVendor.Amd,
            _ => XenCpuVendor.Unknown,
        };
    }

    /// <summary>Whether this libxenctrl has xc_domain_getinfo_single (4.18+); otherwise xc_domain_getinfolist is used.</summary>
    public bool HasGetinfoSingle => _getinfoSingle != null;

    /// <summary>Checks the host, loads the libraries, opens the handles and checks the Xen version.</summary>
    public static NativeXenHost Open(XenConnectOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        XenEnvironment.CheckHost();
        XenLibraries.EnsureResolver();

        XcInterfaceHandle? xc = null;
        ForeignMemoryHandle? fmem = null;
        DeviceModelHandle? dmod = null;
        bool ok = false;
        try
        {
            xc = XenCtrl.xc_interface_open(0, 0, 0);
            if (xc.IsInvalid)
            {
                throw XenErrors.Create(Marshal.GetLastPInvokeError(), "to open the control interface (xc_interface_open)", 0);
            }

            int v = XenCtrl.xc_version(xc, XenCtrl.XenverVersion, null);
            XenErrors.Check(v, "to report its version (xc_version)", 0);
            var version = new Version(v >> 16, v & 0xFFFF);
            XenEnvironment.CheckVersion(version, XenLibraries.LoadedName(XenLibraries.XenCtrl), options.AllowUntestedXenVersion);

            fmem = XenForeignMemory.xenforeignmemory_open(0, 0);
            if (fmem.IsInvalid)
            {
                throw XenErrors.Create(Marshal.GetLastPInvokeError(), "to open foreign memory mapping (xenforeignmemory_open)", 0);
            }

            dmod = XenDeviceModel.xendevicemodel_open(0, 0);
            if (dmod.IsInvalid)
            {
                throw XenErrors.Create(Marshal.GetLastPInvokeError(), "to open the device-model interface (xendevicemodel_open)", 0);
            }

            var host = new NativeXenHost(xc, fmem, dmod, version);
            ok = true;
            return host;
        }
        finally
        {
            if (!ok)
            {
                dmod?.Dispose();
                fmem?.Dispose();
                xc?.Dispose();
            }
        }
    }

    public IReadOnlyList<XenDomainInfo> ListDomains()
    {
        Dictionary<uint, string> names = ReadDomainNames();
        var list = new List<XenDomainInfo>();
        byte* buffer = stackalloc byte[DomainInfoBuffer];
        uint next = 0;
        while (next < 0x7FF0) // DOMID_FIRST_RESERVED
        {
            new Span<byte>(buffer, DomainInfoBuffer).Clear();
            int n = XenCtrl.xc_domain_getinfolist(_xc, next, 1, buffer);
            XenErrors.Check(n, "to list domains (xc_domain_getinfolist)", next);
            if (n == 0)
            {
                break;
            }

            ref XenDomctlGetdomaininfo info = ref *(XenDomctlGetdomaininfo*)buffer;
            list.Add(ToInfo(info, names.GetValueOrDefault(info.Domain)));
            next = (uint)info.Domain + 1;
        }

        return list;
    }

    public XenDomainInfo? GetDomainInfo(uint domid)
    {
        byte* buffer = stackalloc byte[DomainInfoBuffer];
        new Span<byte>(buffer, DomainInfoBuffer).Clear();
        if (_getinfoSingle != null)
        {
            int rc = _getinfoSingle(_xc.DangerousGetHandle(), domid, buffer);
            if (rc < 0)
            {
                int errno = Marshal.GetLastSystemError();
                if (errno == XenErrors.ESrch)
                {
                    return null;
                }

                XenErrors.Throw(errno, "to describe the domain (xc_domain_getinfo_single)", domid);
            }
        }
        else
        {
            int n = XenCtrl.xc_domain_getinfolist(_xc, domid, 1, buffer);
            XenErrors.Check(n, "to describe the domain (xc_domain_getinfolist)", domid);
            if (n == 0 || ((XenDomctlGetdomaininfo*)buffer)->Domain != domid)
            {
                return null; // the list starts at the next domain when this one does not exist
            }
        }

        ref XenDomctlGetdomaininfo info = ref *(XenDomctlGetdomaininfo*)buffer;
        return ToInfo(info, ReadName(domid));
    }

    private static XenDomainInfo ToInfo(in XenDomctlGetdomaininfo info, string? name)
    {
        uint f = info.Flags;
        uint shutdownReason = (f >> 16) & 0xFF;
        XenDomainState state =
            (f & XenDomctlGetdomaininfo.FlagDying) != 0 ? XenDomainState.Dying :
            (f & XenDomctlGetdomaininfo.FlagShutdown) != 0 ? (shutdownReason == 3 ? XenDomainState.Crashed : XenDomainState.Shutdown) :
            (f & XenDomctlGetdomaininfo.FlagPaused) != 0 ? XenDomainState.Paused :
            (f & XenDomctlGetdomaininfo.FlagRunning) != 0 ? XenDomainState.Running :
            (f & XenDomctlGetdomaininfo.FlagBlocked) != 0 ? XenDomainState.Blocked :
            XenDomainState.Runnable;
        int vcpus = info.MaxVcpuId == uint.MaxValue ? 0 : (int)info.MaxVcpuId + 1;
        return new XenDomainInfo(
            info.Domain,
            name ?? (info.Domain == 0 ? "Domain-0" : string.Create(CultureInfo.InvariantCulture, $"domain-{info.Domain}")),
            vcpus,
            info.TotPages * PageSize,
            state,
            (f & XenDomctlGetdomaininfo.FlagHvmGuest) != 0)
        {
            IsPvh = (f & XenDomctlGetdomaininfo.FlagHvmGuest) != 0 && (info.ArchConfig.EmulationFlags & XenDomctlGetdomaininfo.EmuPic) == 0,
        };
    }

    private static XenStoreHandle? OpenXenStore()
    {
        XenStoreHandle xs = XenStore.xs_open(0);
        if (xs.IsInvalid)
        {
            xs.Dispose();
            return null;
        }

        return xs;
    }

    private static string? ReadName(uint domid)
    {
        using XenStoreHandle? xs = OpenXenStore();
        return xs is null ? null : ReadString(xs, string.Create(CultureInfo.InvariantCulture, $"/local/domain/{domid}/name"));
    }

    public string? ReadStore(string path)
    {
        using XenStoreHandle xs = OpenXenStore() ?? throw NoXenStore();
        return ReadString(xs, path);
    }

    public IReadOnlyList<string> ListStore(string path)
    {
        using XenStoreHandle xs = OpenXenStore() ?? throw NoXenStore();
        byte** entries = XenStore.xs_directory(xs, XenStore.XbtNull, path, out uint count);
        if (entries == null)
        {
            return [];
        }

        try
        {
            var names = new List<string>((int)count);
            for (uint i = 0; i < count; i++)
            {
                if (Marshal.PtrToStringUTF8((nint)entries[i]) is { } name)
                {
                    names.Add(name);
                }
            }

            return names;
        }
        finally
        {
            Libc.free(entries);
        }
    }

    public void WriteStore(string path, string value)
    {
        using XenStoreHandle xs = OpenXenStore() ?? throw NoXenStore();
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        fixed (byte* b = bytes)
        {
            if (!XenStore.xs_write(xs, XenStore.XbtNull, path, b, (uint)bytes.Length))
            {
                XenErrors.Throw(Marshal.GetLastPInvokeError(), $"to write xenstore node {path}", 0);
            }
        }
    }

    public void RemoveStore(string path)
    {
        using XenStoreHandle xs = OpenXenStore() ?? throw NoXenStore();
        if (!XenStore.xs_rm(xs, XenStore.XbtNull, path))
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != XenErrors.ENoEnt)
            {
                XenErrors.Throw(errno, $"to remove xenstore node {path}", 0);
            }
        }
    }

    private static VmiDriverException NoXenStore() =>
        new("xenstore cannot be opened (xs_open): start xenstored in dom0 (the xen-utils service, or xenstored by hand).", XenErrors.ENoEnt);

    private static Dictionary<uint, string> ReadDomainNames()
    {
        var names = new Dictionary<uint, string>();
        using XenStoreHandle? xs = OpenXenStore();
        if (xs is null)
        {
            return names;
        }

        byte** entries = XenStore.xs_directory(xs, XenStore.XbtNull, "/local/domain", out uint count);
        if (entries == null)
        {
            return names;
        }

        try
        {
            for (uint i = 0; i < count; i++)
            {
                string? entry = Marshal.PtrToStringUTF8((nint)entries[i]);
                if (uint.TryParse(entry, NumberStyles.None, CultureInfo.InvariantCulture, out uint id)
                    && ReadString(xs, $"/local/domain/{entry}/name") is { } name)
                {
                    names[id] = name;
                }
            }
        }
        finally
        {
            Libc.free(entries);
        }

        return names;
    }

    private static string? ReadString(XenStoreHandle xs, string path)
    {
        byte* value = XenStore.xs_read(xs, XenStore.XbtNull, path, out uint length);
        if (value == null)
        {
            return null;
        }

        try
        {
            return Encoding.UTF8.GetString(value, (int)Math.Min(length, 4096));
        }
        finally
        {
            Libc.free(value);
        }
    }

    public ulong MaximumGpfn(uint domid)
    {
        int rc = XenCtrl.xc_domain_maximum_gpfn(_xc, domid, out ulong gpfn);
        XenErrors.Check(rc, "to report the highest guest frame (xc_domain_maximum_gpfn)", domid);
        return gpfn;
    }

    public void EnableControlRegisterValues(uint domid)
    {
        XenDomctlMonitorOp op = default;
        op.Cmd = XenDomctlMonitorOp.CmdMonitorOp;
        op.Domain = (ushort)domid;
        op.Op = XenDomctlMonitorOp.OpControlRegisters;
        XenErrors.Check(XenCtrl.xc_domctl(_xc, &op), "to have monitored register writes wait for the answer (XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS)", domid);
    }

    public (bool Blocked, ulong CpuTime) GetVcpuRunState(uint domid, VcpuId vcpu)
    {
        XenDomctlGetvcpuinfo info = default;
        XenErrors.Check(XenCtrl.xc_vcpu_getinfo(_xc, domid, vcpu.Value, &info), $"to read the state of vCPU {vcpu}", domid);
        return (info.Blocked != 0 || info.Online == 0, info.CpuTime); // an offline vCPU has nothing held either
    }

    public void Pause(uint domid) => XenErrors.Check(XenCtrl.xc_domain_pause(_xc, domid), "to pause the domain", domid);

    public void Unpause(uint domid) => XenErrors.Check(XenCtrl.xc_domain_unpause(_xc, domid), "to unpause the domain", domid);

    public MappedPage? MapPage(uint domid, Gfn gfn)
    {
        ulong frame = gfn.Value;
        int err = 0;
        void* p = XenForeignMemory.xenforeignmemory_map(_fmem, domid, XenForeignMemory.ProtRead, 1, &frame, &err);
        if (p == null)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (IsAbsentFrame(errno))
            {
                return null;
            }

            XenErrors.Throw(errno, $"to map guest frame {gfn} (xenforeignmemory_map)", domid);
        }

        if (err != 0)
        {
            XenForeignMemory.xenforeignmemory_unmap(_fmem, p, 1);
            if (IsAbsentFrame(-err))
            {
                return null;
            }

            XenErrors.Throw(-err, $"to map guest frame {gfn} (xenforeignmemory_map)", domid);
        }

        return new ForeignPage(gfn, (byte*)p, _fmem);
    }

    private static bool IsAbsentFrame(int errno) => errno is XenErrors.ENoEnt or XenErrors.EInval or XenErrors.EFault or 6 /* ENXIO */;

    public void WritePage(uint domid, Gfn gfn, int offset, ReadOnlySpan<byte> data)
    {
        ulong frame = gfn.Value;
        int err = 0;
        void* p = XenForeignMemory.xenforeignmemory_map(_fmem, domid, XenForeignMemory.ProtRead | XenForeignMemory.ProtWrite, 1, &frame, &err);
        if (p == null)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (IsAbsentFrame(errno))
            {
                throw new GfnNotPresentException(gfn, "Xen has no frame there to write");
            }

            XenErrors.Throw(errno, $"to map guest frame {gfn} for writing", domid);
        }

        try
        {
            if (err != 0)
            {
                if (IsAbsentFrame(-err))
                {
                    throw new GfnNotPresentException(gfn, "Xen has no frame there to write");
                }

                XenErrors.Throw(-err, $"to map guest frame {gfn} for writing", domid);
            }

            data.CopyTo(new Span<byte>((byte*)p + offset, PageSize - offset));
        }
        finally
        {
            XenForeignMemory.xenforeignmemory_unmap(_fmem, p, 1);
        }
    }

    public byte[] GetHvmContext(uint domid)
    {
        int size = XenCtrl.xc_domain_hvm_getcontext(_xc, domid, null, 0);
        XenErrors.Check(size, "to report the HVM context size (xc_domain_hvm_getcontext)", domid);
        byte[] buffer = new byte[size];
        fixed (byte* b = buffer)
        {
            int written = XenCtrl.xc_domain_hvm_getcontext(_xc, domid, b, (uint)buffer.Length);
            XenErrors.Check(written, "to read the HVM context (xc_domain_hvm_getcontext)", domid);
            return written == buffer.Length ? buffer : buffer.AsSpan(0, written).ToArray();
        }
    }

    public void SetHvmContext(uint domid, byte[] context)
    {
        ArgumentNullException.ThrowIfNull(context);
        fixed (byte* b = context)
        {
            XenErrors.Check(XenCtrl.xc_domain_hvm_setcontext(_xc, domid, b, (uint)context.Length), "to write the HVM context (xc_domain_hvm_setcontext)", domid);
        }
    }

    public ulong GetHvmParam(uint domid, uint param)
    {
        XenErrors.Check(XenCtrl.xc_hvm_param_get(_xc, domid, param, out ulong value), string.Create(CultureInfo.InvariantCulture, $"to read HVM parameter {param}"), domid);
        return value;
    }

    public MemoryAccess GetMemAccess(uint domid, View view, Gfn gfn)
    {
        uint access;
        int rc = view == View.Default
            ? XenCtrl.xc_get_mem_access(_xc, domid, gfn.Value, out access)
            : XenCtrl.xc_altp2m_get_mem_access(_xc, domid, view.Value, gfn.Value, out access);
        XenErrors.Check(rc, $"to read the access of frame {gfn} in view {view}", domid);
        return FromXenAccess(access);
    }

    public void SetMemAccess(uint domid, View view, Gfn first, uint count, MemoryAccess access)
    {
        uint xa = (uint)(access & MemoryAccess.RWX);
        if (view == View.Default)
        {
            XenErrors.Check(XenCtrl.xc_set_mem_access(_xc, domid, xa, first.Value, count), $"to set the access of {count} frame(s) from {first} in view 0", domid);
            return;
        }

        if (count == 1)
        {
            XenErrors.Check(XenCtrl.xc_altp2m_set_mem_access(_xc, domid, view.Value, first.Value, xa), $"to set the access of frame {first} in view {view}", domid);
            return;
        }

        const uint Chunk = 4096;
        byte[] accesses = new byte[Math.Min(count, Chunk)];
        ulong[] gfns = new ulong[accesses.Length];
        accesses.AsSpan().Fill((byte)xa);
        for (uint done = 0; done < count;)
        {
            uint n = Math.Min(Chunk, count - done);
            for (uint i = 0; i < n; i++)
            {
                gfns[i] = first.Value + done + i;
            }

            fixed (byte* a = accesses)
            fixed (ulong* g = gfns)
            {
                XenErrors.Check(
                    XenCtrl.xc_altp2m_set_mem_access_multi(_xc, domid, view.Value, a, g, n),
                    $"to set the access of {n} frame(s) from {first + done} in view {view}",
                    domid);
            }

            done += n;
        }
    }

    /// <summary>xenmem_access_t to our flags; the self-changing kinds are reported by what they allow now.</summary>
    public static MemoryAccess FromXenAccess(uint access) => access switch
    {
        <= 7 => (MemoryAccess)access,
        8 => MemoryAccess.RX, // rx2rw
        9 => MemoryAccess.None, // n2rwx
        _ => MemoryAccess.RWX, // default
    };

    public bool GetAltp2mState(uint domid)
    {
        XenErrors.Check(XenCtrl.xc_altp2m_get_domain_state(_xc, domid, out bool state), "to report the altp2m state", domid);
        return state;
    }

    public void SetAltp2mState(uint domid, bool enabled) =>
        XenErrors.Check(XenCtrl.xc_altp2m_set_domain_state(_xc, domid, enabled), enabled ? "to enable altp2m" : "to disable altp2m", domid);

    public View CreateView(uint domid, MemoryAccess defaultAccess)
    {
        XenErrors.Check(XenCtrl.xc_altp2m_create_view(_xc, domid, (uint)(defaultAccess & MemoryAccess.RWX), out ushort id), "to create an altp2m view", domid);
        return new View(id);
    }

    public void DestroyView(uint domid, View view) =>
        XenErrors.Check(XenCtrl.xc_altp2m_destroy_view(_xc, domid, view.Value), $"to destroy altp2m view {view}", domid);

    public void SwitchToView(uint domid, View view) =>
        XenErrors.Check(XenCtrl.xc_altp2m_switch_to_view(_xc, domid, view.Value), $"to switch every vCPU to view {view}", domid);

    public void ChangeGfn(uint domid, View view, Gfn oldGfn, Gfn? newGfn) =>
        XenErrors.Check(
            XenCtrl.xc_altp2m_change_gfn(_xc, domid, view.Value, oldGfn.Value, newGfn?.Value ?? XenCtrl.InvalidGfn),
            newGfn is { } n ? $"to remap frame {oldGfn} to {n} in view {view}" : $"to reset frame {oldGfn} in view {view}",
            domid);

    public void PopulatePhysmap(uint domid, Gfn gfn)
    {
        ulong frame = gfn.Value;
        XenErrors.Check(XenCtrl.xc_domain_populate_physmap_exact(_xc, domid, 1, 0, 0, &frame), $"to allocate guest frame {gfn}", domid);
    }

    public void DecreaseReservation(uint domid, Gfn gfn)
    {
        ulong frame = gfn.Value;
        XenErrors.Check(XenCtrl.xc_domain_decrease_reservation_exact(_xc, domid, 1, 0, &frame), $"to free guest frame {gfn}", domid);
    }

    public void InjectEvent(uint domid, VcpuId vcpu, Interrupt interrupt)
    {
        int rc = XenDeviceModel.xendevicemodel_inject_event(
            _dmod, (ushort)domid, vcpu.Value, interrupt.Vector, (byte)interrupt.Type, interrupt.ErrorCode ?? uint.MaxValue, (byte)interrupt.InstructionLength, interrupt.Cr2);
        XenErrors.Check(rc, $"to inject {interrupt} into vCPU {vcpu}", domid);
    }

    public IXenMonitorChannel EnableMonitorRing(uint domid) => MonitorChannel.Open(_xc, domid);

    public void DisableMonitorRing(uint domid) =>
        XenErrors.Check(XenCtrl.xc_monitor_disable(_xc, domid), "to disable the monitor ring left behind (xc_monitor_disable)", domid);

    public void SetMonitor(uint domid, EventMonitor monitor, bool enable)
    {
        string what = (enable ? "to enable the " : "to disable the ") + monitor + " monitor";
        int rc;
        switch (monitor.Kind)
        {
            case MonitorKind.ControlRegister:
                rc = XenCtrl.xc_monitor_write_ctrlreg(_xc, domid, ControlRegisterIndex((ControlRegister)monitor.Parameter), enable, sync: true, bitmask: 0, onChangeOnly: false);
                break;
            case MonitorKind.Msr:
                rc = XenCtrl.xc_monitor_mov_to_msr(_xc, domid, monitor.Parameter, enable, onChangeOnly: false);
                break;
            case MonitorKind.Breakpoint:
                rc = XenCtrl.xc_monitor_software_breakpoint(_xc, domid, enable);
                break;
            case MonitorKind.DebugException:
                rc = XenCtrl.xc_monitor_debug_exceptions(_xc, domid, enable, sync: true);
                break;
            case MonitorKind.Singlestep:
                rc = XenCtrl.xc_monitor_singlestep(_xc, domid, enable);
                break;
            case MonitorKind.Cpuid:
                rc = XenCtrl.xc_monitor_cpuid(_xc, domid, enable);
                break;
            case MonitorKind.GuestRequest:
                rc = XenCtrl.xc_monitor_guest_request(_xc, domid, enable, sync: true, allowUserspace: true);
                break;
            case MonitorKind.DescriptorAccess:
                rc = XenCtrl.xc_monitor_descriptor_access(_xc, domid, enable);
                break;
            case MonitorKind.Io:
                if (_monitorIo == null)
                {
                    throw new VmiDriverException($"Monitoring port I/O needs Xen 4.18 or later (xc_monitor_io); this host runs Xen {Version}.", XenErrors.EOpNotSupp);
                }

                rc = _monitorIo(_xc.DangerousGetHandle(), domid, enable ? (byte)1 : (byte)0);
                if (rc < 0)
                {
                    XenErrors.Throw(Marshal.GetLastSystemError(), what, domid);
                }

                return;
            case MonitorKind.Hypercall:
                throw new VmiDriverException("Xen has no monitor for guest hypercalls (VMCALL) on x86; use a breakpoint on the hypercall page, or GuestRequest for requests the guest sends on purpose.", XenErrors.EOpNotSupp);
            default:
                throw new ArgumentOutOfRangeException(nameof(monitor), monitor, "Unknown monitor kind.");
        }

        XenErrors.Check(rc, what, domid);
    }

    /// <summary>VM_EVENT_X86_CR0/CR3/CR4/XCR0.</summary>
    public static ushort ControlRegisterIndex(ControlRegister register) => register switch
    {
        ControlRegister.Cr0 => (ushort)VmEventAbi.X86Cr0,
        ControlRegister.Cr3 => (ushort)VmEventAbi.X86Cr3,
        ControlRegister.Cr4 => (ushort)VmEventAbi.X86Cr4,
        ControlRegister.Xcr0 => (ushort)VmEventAbi.X86Xcr0,
        _ => throw new ArgumentOutOfRangeException(nameof(register), register, "Xen monitors writes to CR0, CR3, CR4 and XCR0 only."),
    };

    public void SetSinglestep(uint domid, VcpuId vcpu, bool enable) =>
        XenErrors.Check(
            XenCtrl.xc_domain_debug_control(_xc, domid, enable ? XenCtrl.DebugOpSingleStepOn : XenCtrl.DebugOpSingleStepOff, vcpu.Value),
            (enable ? "to start" : "to stop") + $" single-stepping vCPU {vcpu}",
            domid);

    public void SetInguestPagefaultDisabled(uint domid, bool disabled) =>
        XenErrors.Check(XenCtrl.xc_monitor_inguest_pagefault(_xc, domid, disabled), "to set in-guest page-walk event reporting", domid);

    public void Dispose()
    {
        _dmod.Dispose();
        _fmem.Dispose();
        _xc.Dispose();
    }

    /// <summary>A frame mapped from the guest: the bytes are the guest's, live. Unmapped when disposed (page-cache eviction).</summary>
    private sealed class ForeignPage : MappedPage
    {
        private readonly ForeignMemoryHandle _fmem;

        public ForeignPage(Gfn gfn, byte* pointer, ForeignMemoryHandle fmem)
            : base(gfn, pointer, PageSize)
        {
            bool added = false;
            fmem.DangerousAddRef(ref added); // the handle outlives every mapping made through it
            _fmem = fmem;
        }

        protected override void Release(byte* pointer, int length)
        {
            XenForeignMemory.xenforeignmemory_unmap(_fmem, pointer, 1);
            _fmem.DangerousRelease();
        }
    }

    /// <summary>The monitor ring from xc_monitor_enable and the event channel bound to its port.</summary>
    private sealed class MonitorChannel : IXenMonitorChannel
    {
        private readonly XcInterfaceHandle _xc;
        private readonly uint _domid;
        private readonly EventChannelHandle _evtchn;
        private readonly uint _localPort;
        private readonly int _fd;
        private byte* _ring;

        private MonitorChannel(XcInterfaceHandle xc, uint domid, byte* ring, EventChannelHandle evtchn, uint localPort, int fd)
        {
            _xc = xc;
            _domid = domid;
            _ring = ring;
            _evtchn = evtchn;
            _localPort = localPort;
            _fd = fd;
        }

        public byte* RingPage => _ring;

        public int RingPageSize => PageSize;

        public static MonitorChannel Open(XcInterfaceHandle xc, uint domid)
        {
            void* ring = XenCtrl.xc_monitor_enable(xc, domid, out uint remotePort);
            if (ring == null)
            {
                throw XenErrors.Create(Marshal.GetLastPInvokeError(), "to enable the monitor ring (xc_monitor_enable)", domid);
            }

            EventChannelHandle? evtchn = null;
            bool ok = false;
            try
            {
                evtchn = XenEvtchn.xenevtchn_open(0, 0);
                if (evtchn.IsInvalid)
                {
                    throw XenErrors.Create(Marshal.GetLastPInvokeError(), "to open the event channel device (xenevtchn_open)", domid);
                }

                int local = XenEvtchn.xenevtchn_bind_interdomain(evtchn, domid, remotePort);
                XenErrors.Check(local, "to bind the monitor ring's event channel", domid);
                int fd = XenEvtchn.xenevtchn_fd(evtchn);
                XenErrors.Check(fd, "to give the event channel's file descriptor", domid);
                ok = true;
                return new MonitorChannel(xc, domid, (byte*)ring, evtchn, (uint)local, fd);
            }
            finally
            {
                if (!ok)
                {
                    evtchn?.Dispose();
                    Libc.munmap(ring, PageSize);
                    XenCtrl.xc_monitor_disable(xc, domid);
                }
            }
        }

        public bool Wait(int timeoutMs)
        {
            Libc.PollFd fd = new() { Fd = _fd, Events = Libc.PollIn | Libc.PollErr };
            int rc = Libc.poll(&fd, 1, timeoutMs);
            if (rc < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EIntr)
                {
                    return false;
                }

                XenErrors.Throw(errno, "to wait on the event channel (poll)", _domid);
            }

            if (rc == 0)
            {
                return false;
            }

            int port = XenEvtchn.xenevtchn_pending(_evtchn);
            XenErrors.Check(port, "to read the pending event channel port", _domid);
            XenErrors.Check(XenEvtchn.xenevtchn_unmask(_evtchn, (uint)port), "to unmask the event channel port", _domid);
            return true;
        }

        public void Notify() => XenErrors.Check(XenEvtchn.xenevtchn_notify(_evtchn, _localPort), "to notify Xen of responses", _domid);

        /// <summary>
        /// Disables monitoring in Xen, then unmaps the ring and closes the channel. When Xen answers EBUSY (vCPUs
        /// still wait for ring slots) nothing is torn down and the exception says so: drain the ring and call again.
        /// </summary>
        public void Dispose()
        {
            if (_ring == null)
            {
                return;
            }

            int rc = XenCtrl.xc_monitor_disable(_xc, _domid);
            int errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
            if (errno == XenErrors.EBusy)
            {
                throw XenErrors.Create(errno, "to disable the monitor ring (xc_monitor_disable): vCPUs still wait for ring slots", _domid);
            }

            byte* ring = _ring;
            _ring = null;
            Libc.munmap(ring, PageSize);
            XenEvtchn.xenevtchn_unbind(_evtchn, _localPort);
            _evtchn.Dispose();
            if (rc < 0)
            {
                XenErrors.Throw(errno, "to disable the monitor ring (xc_monitor_disable)", _domid);
            }
        }
    }
}
