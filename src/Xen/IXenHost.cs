using Vmi.Core;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Xen;

/// <summary>
/// The hypervisor calls the driver makes, one domain at a time. <see cref="Native.NativeXenHost"/> makes them
/// through the Xen libraries; tests put a simulated Xen behind it to check the driver's bookkeeping (what it
/// restores, that it never leaves the domain paused).
/// </summary>
internal interface IXenHost : IDisposable
{
    /// <summary>The running hypervisor's version (major.minor).</summary>
    Version Version { get; }

    /// <summary>The maker of the host's CPU (VT-x or SVM decides what Xen offers).</summary>
    XenCpuVendor CpuVendor { get; }

    /// <summary>Every domain, with its name from xenstore.</summary>
    IReadOnlyList<XenDomainInfo> ListDomains();

    /// <summary>One domain, or null when there is none with that id.</summary>
    XenDomainInfo? GetDomainInfo(uint domid);

    ulong MaximumGpfn(uint domid);

    void Pause(uint domid);

    void Unpause(uint domid);

    /// <summary>Maps one frame; null when the frame is not backed.</summary>
    MappedPage? MapPage(uint domid, Gfn gfn);

    void WritePage(uint domid, Gfn gfn, int offset, ReadOnlySpan<byte> data);

    /// <summary>The whole HVM context (the save records of every vCPU and device).</summary>
    byte[] GetHvmContext(uint domid);

    void SetHvmContext(uint domid, byte[] context);

    ulong GetHvmParam(uint domid, uint param);

    MemoryAccess GetMemAccess(uint domid, View view, Gfn gfn);

    void SetMemAccess(uint domid, View view, Gfn first, uint count, MemoryAccess access);

    bool GetAltp2mState(uint domid);

    void SetAltp2mState(uint domid, bool enabled);

    View CreateView(uint domid, MemoryAccess defaultAccess);

    void DestroyView(uint domid, View view);

    void SwitchToView(uint domid, View view);

    /// <summary>Remaps <paramref name="oldGfn"/> to <paramref name="newGfn"/> in the view; a null <paramref name="newGfn"/> resets it.</summary>
    void ChangeGfn(uint domid, View view, Gfn oldGfn, Gfn? newGfn);

    void PopulatePhysmap(uint domid, Gfn gfn);

    void DecreaseReservation(uint domid, Gfn gfn);

    void InjectEvent(uint domid, VcpuId vcpu, Interrupt interrupt);

    /// <summary>Enables the monitor ring of the domain and binds its event channel.</summary>
    IXenMonitorChannel EnableMonitorRing(uint domid);

    /// <summary>
    /// xc_monitor_disable without a ring of ours: tears down a ring a dead process left. Xen keeps the vCPUs that
    /// wait for an answer paused (only a response releases them) and the monitors enabled.
    /// </summary>
    void DisableMonitorRing(uint domid);

    /// <summary>Reads a xenstore node; null when it does not exist.</summary>
    string? ReadStore(string path);

    /// <summary>The names of a xenstore directory's children; empty when it does not exist.</summary>
    IReadOnlyList<string> ListStore(string path);

    void WriteStore(string path, string value);

    /// <summary>Removes a xenstore node and its children; nothing when it does not exist.</summary>
    void RemoveStore(string path);

    /// <summary>Turns one event source on or off (the monitor ring must be enabled).</summary>
    void SetMonitor(uint domid, EventMonitor monitor, bool enable);

    /// <summary>Turns hardware single-stepping of one vCPU on or off (xc_domain_debug_control).</summary>
    void SetSinglestep(uint domid, VcpuId vcpu, bool enable);

    /// <summary>xc_monitor_inguest_pagefault: true stops events for the processor's own page-walk accesses.</summary>
    void SetInguestPagefaultDisabled(uint domid, bool disabled);

    /// <summary>
    /// XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS (Xen 4.15 and later): Xen then holds a monitored CR or MSR write until the
    /// event is answered, so a Deny keeps it out. Without it Xen writes the register before it sends the event and a Deny
    /// changes nothing. Only the ring's teardown turns it off again.
    /// </summary>
    void EnableControlRegisterValues(uint domid);

    /// <summary>xc_vcpu_getinfo: whether the vCPU is blocked (halted) or offline, and the CPU time it has run, in nanoseconds.</summary>
    (bool Blocked, ulong CpuTime) GetVcpuRunState(uint domid, VcpuId vcpu);
}

/// <summary>The monitor ring page and its event channel.</summary>
internal unsafe interface IXenMonitorChannel : IDisposable
{
    byte* RingPage { get; }

    int RingPageSize { get; }

    /// <summary>Waits for a notification from Xen; false on timeout. Acknowledges (unmasks) the port.</summary>
    bool Wait(int timeoutMs);

    /// <summary>Kicks Xen to read the responses.</summary>
    void Notify();
}
