using System.Runtime.InteropServices;

namespace Vmi.Xen.Native;

/// <summary>libxenctrl. Every function sets errno on failure (SetLastError) and returns -1 (or NULL).</summary>
internal static unsafe partial class XenCtrl
{
    public const int XenverVersion = 0;
    public const int XenverExtraversion = 1;
    public const uint HvmParamAltp2m = 35;
    public const ulong InvalidGfn = ulong.MaxValue;
    public const uint DebugOpSingleStepOff = 0;
    public const uint DebugOpSingleStepOn = 1;

    static XenCtrl() => XenLibraries.EnsureResolver();

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial XcInterfaceHandle xc_interface_open(nint logger, nint dombuildLogger, uint openFlags);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_interface_close(nint xch);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_version(XcInterfaceHandle xch, int cmd, void* arg);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_getinfolist(XcInterfaceHandle xch, uint firstDomain, uint maxDomains, void* info);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_pause(XcInterfaceHandle xch, uint domid);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_unpause(XcInterfaceHandle xch, uint domid);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_debug_control(XcInterfaceHandle xch, uint domid, uint op, uint vcpu);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_maximum_gpfn(XcInterfaceHandle xch, uint domid, out ulong gpfns);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_hvm_getcontext(XcInterfaceHandle xch, uint domid, byte* buffer, uint size);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_hvm_getcontext_partial(XcInterfaceHandle xch, uint domid, ushort typecode, ushort instance, void* buffer, uint size);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_hvm_setcontext(XcInterfaceHandle xch, uint domid, byte* buffer, uint size);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_populate_physmap_exact(XcInterfaceHandle xch, uint domid, ulong nrExtents, uint extentOrder, uint memFlags, ulong* extentStart);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domain_decrease_reservation_exact(XcInterfaceHandle xch, uint domid, ulong nrExtents, uint extentOrder, ulong* extentStart);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_hvm_param_get(XcInterfaceHandle xch, uint domid, uint param, out ulong value);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_set_mem_access(XcInterfaceHandle xch, uint domid, uint access, ulong firstPfn, uint nr);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_get_mem_access(XcInterfaceHandle xch, uint domid, ulong pfn, out uint access);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_get_domain_state(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] out bool state);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_set_domain_state(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool state);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_create_view(XcInterfaceHandle xch, uint domid, uint defaultAccess, out ushort viewId);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_destroy_view(XcInterfaceHandle xch, uint domid, ushort viewId);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_switch_to_view(XcInterfaceHandle xch, uint domid, ushort viewId);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_set_mem_access(XcInterfaceHandle xch, uint domid, ushort viewId, ulong gfn, uint access);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_set_mem_access_multi(XcInterfaceHandle xch, uint domid, ushort viewId, byte* access, ulong* gfns, uint nr);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_get_mem_access(XcInterfaceHandle xch, uint domid, ushort viewId, ulong gfn, out uint access);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_altp2m_change_gfn(XcInterfaceHandle xch, uint domid, ushort viewId, ulong oldGfn, ulong newGfn);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial void* xc_monitor_enable(XcInterfaceHandle xch, uint domid, out uint port);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_disable(XcInterfaceHandle xch, uint domid);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_write_ctrlreg(XcInterfaceHandle xch, uint domid, ushort index, [MarshalAs(UnmanagedType.U1)] bool enable, [MarshalAs(UnmanagedType.U1)] bool sync, ulong bitmask, [MarshalAs(UnmanagedType.U1)] bool onChangeOnly);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_mov_to_msr(XcInterfaceHandle xch, uint domid, uint msr, [MarshalAs(UnmanagedType.U1)] bool enable, [MarshalAs(UnmanagedType.U1)] bool onChangeOnly);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_singlestep(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool enable);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_software_breakpoint(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool enable);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_descriptor_access(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool enable);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_guest_request(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool enable, [MarshalAs(UnmanagedType.U1)] bool sync, [MarshalAs(UnmanagedType.U1)] bool allowUserspace);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_inguest_pagefault(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool disable);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_debug_exceptions(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool enable, [MarshalAs(UnmanagedType.U1)] bool sync);

    /// <summary>int xc_domctl(xc_interface*, struct xen_domctl*): for domctls libxenctrl has no wrapper of.</summary>
    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_domctl(XcInterfaceHandle xch, XenDomctlMonitorOp* domctl);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_vcpu_getinfo(XcInterfaceHandle xch, uint domid, uint vcpu, XenDomctlGetvcpuinfo* info);

    [LibraryImport(XenLibraries.XenCtrl, SetLastError = true)]
    public static partial int xc_monitor_cpuid(XcInterfaceHandle xch, uint domid, [MarshalAs(UnmanagedType.U1)] bool enable);

    /// <summary>Optional exports, present only in some releases: looked up at run time.</summary>
    public static class Optional
    {
        /// <summary>Xen 4.18 and later: int xc_domain_getinfo_single(xc_interface*, uint32_t domid, xc_domaininfo_t*).</summary>
        public const string DomainGetinfoSingle = "xc_domain_getinfo_single";

        /// <summary>Xen 4.17 and earlier (removed in 4.18): int xc_domain_getinfo(xc_interface*, uint32_t first, unsigned max, xc_dominfo_t*).</summary>
        public const string DomainGetinfo = "xc_domain_getinfo";

        /// <summary>Xen 4.18 and later: int xc_monitor_io(xc_interface*, uint32_t domid, bool enable).</summary>
        public const string MonitorIo = "xc_monitor_io";
    }
}

/// <summary>libxenforeignmemory.</summary>
internal static unsafe partial class XenForeignMemory
{
    public const int ProtRead = 1;
    public const int ProtWrite = 2;

    static XenForeignMemory() => XenLibraries.EnsureResolver();

    [LibraryImport(XenLibraries.ForeignMemory, SetLastError = true)]
    public static partial ForeignMemoryHandle xenforeignmemory_open(nint logger, uint openFlags);

    [LibraryImport(XenLibraries.ForeignMemory, SetLastError = true)]
    public static partial int xenforeignmemory_close(nint fmem);

    [LibraryImport(XenLibraries.ForeignMemory, SetLastError = true)]
    public static partial void* xenforeignmemory_map(ForeignMemoryHandle fmem, uint domid, int prot, nuint pages, ulong* gfns, int* errors);

    [LibraryImport(XenLibraries.ForeignMemory, SetLastError = true)]
    public static partial int xenforeignmemory_unmap(ForeignMemoryHandle fmem, void* address, nuint pages);
}

/// <summary>libxendevicemodel.</summary>
internal static partial class XenDeviceModel
{
    static XenDeviceModel() => XenLibraries.EnsureResolver();

    [LibraryImport(XenLibraries.DeviceModel, SetLastError = true)]
    public static partial DeviceModelHandle xendevicemodel_open(nint logger, uint openFlags);

    [LibraryImport(XenLibraries.DeviceModel, SetLastError = true)]
    public static partial int xendevicemodel_close(nint dmod);

    [LibraryImport(XenLibraries.DeviceModel, SetLastError = true)]
    public static partial int xendevicemodel_inject_event(DeviceModelHandle dmod, ushort domid, int vcpu, byte vector, byte type, uint errorCode, byte instructionLength, ulong extra);
}

/// <summary>libxenevtchn.</summary>
internal static partial class XenEvtchn
{
    static XenEvtchn() => XenLibraries.EnsureResolver();

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial EventChannelHandle xenevtchn_open(nint logger, uint openFlags);

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial int xenevtchn_close(nint xce);

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial int xenevtchn_fd(EventChannelHandle xce);

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial int xenevtchn_bind_interdomain(EventChannelHandle xce, uint domid, uint remotePort);

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial int xenevtchn_unbind(EventChannelHandle xce, uint port);

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial int xenevtchn_notify(EventChannelHandle xce, uint port);

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial int xenevtchn_pending(EventChannelHandle xce);

    [LibraryImport(XenLibraries.EventChannel, SetLastError = true)]
    public static partial int xenevtchn_unmask(EventChannelHandle xce, uint port);
}

/// <summary>libxenstore.</summary>
internal static unsafe partial class XenStore
{
    public const uint XbtNull = 0;

    static XenStore() => XenLibraries.EnsureResolver();

    [LibraryImport(XenLibraries.XenStore, SetLastError = true)]
    public static partial XenStoreHandle xs_open(nuint flags);

    [LibraryImport(XenLibraries.XenStore)]
    public static partial void xs_close(nint handle);

    /// <summary>Returns a malloc'd array of <paramref name="count"/> string pointers (one block: free it once).</summary>
    [LibraryImport(XenLibraries.XenStore, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial byte** xs_directory(XenStoreHandle handle, uint transaction, string path, out uint count);

    /// <summary>Returns a malloc'd buffer of <paramref name="length"/> bytes (free it).</summary>
    [LibraryImport(XenLibraries.XenStore, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial byte* xs_read(XenStoreHandle handle, uint transaction, string path, out uint length);

    [LibraryImport(XenLibraries.XenStore, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static partial bool xs_write(XenStoreHandle handle, uint transaction, string path, byte* data, uint length);

    [LibraryImport(XenLibraries.XenStore, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [return: MarshalAs(UnmanagedType.U1)]
    public static partial bool xs_rm(XenStoreHandle handle, uint transaction, string path);
}

/// <summary>The few libc calls the Xen libraries' conventions need.</summary>
internal static unsafe partial class Libc
{
    public const short PollIn = 0x001;
    public const short PollErr = 0x008;
    public const int EIntr = 4;

    static Libc() => XenLibraries.EnsureResolver();

    [LibraryImport(XenLibraries.Libc)]
    public static partial void free(void* pointer);

    [LibraryImport(XenLibraries.Libc, SetLastError = true)]
    public static partial int munmap(void* address, nuint length);

    [LibraryImport(XenLibraries.Libc, SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }
}
