using System.Diagnostics.CodeAnalysis;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>What a driver can be asked to do. Every capability is one interface; a driver implements what it can.</summary>
public enum VmiCapability
{
    Read,
    Write,
    QueryProtection,
    SetProtection,
    QueryRegisters,
    SetRegisters,
    ViewControl,
    EventControl,
    VmControl,
}

/// <summary>
/// A driver: the thing that reaches guest memory, registers and events (Xen, a memory image, the mock).
/// It implements <see cref="IVmiDriver"/> and any of the capability interfaces below.
/// </summary>
public interface IVmiDriver : IDisposable
{
    /// <summary>A short name used in messages, e.g. "Mock", "Xen", "ELF core".</summary>
    string Name { get; }

    VmiInfo Info { get; }
}

/// <summary>Reading guest frames. The one primitive every read is built on.</summary>
public interface IVmiRead
{
    /// <summary>
    /// Maps one guest frame. Returns false when the frame has no backing (a hole in an image, beyond the
    /// guest's memory, not mapped by the hypervisor) — an expected condition, not an error. Throws
    /// <see cref="VmiException"/> for real failures (the hypervisor refused, the file could not be read).
    /// The caller owns the returned page and disposes it.
    /// </summary>
    bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page);
}

/// <summary>Writing guest frames.</summary>
public interface IVmiWrite
{
    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> inside frame <paramref name="gfn"/>; the write does not cross the frame.</summary>
    void WritePage(Gfn gfn, int offset, ReadOnlySpan<byte> data);
}

public interface IVmiQueryProtection
{
    MemoryAccess GetMemoryAccess(Gfn gfn, View view);
}

public interface IVmiSetProtection
{
    void SetMemoryAccess(Gfn gfn, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None);

    /// <summary>Sets the access of <paramref name="count"/> consecutive frames. Drivers that can do this in one call override it.</summary>
    void SetMemoryAccess(Gfn first, ulong count, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None)
    {
        for (ulong i = 0; i < count; i++)
        {
            SetMemoryAccess(first + i, view, access, options);
        }
    }
}

public interface IVmiQueryRegisters
{
    Registers GetRegisters(VcpuId vcpu);
}

public interface IVmiSetRegisters
{
    /// <summary>Sets the vCPU's registers. A driver that must pause the guest to do so resumes it on every path.</summary>
    void SetRegisters(VcpuId vcpu, Registers registers);
}

/// <summary>Second-level address-space views (Xen altp2m).</summary>
public interface IVmiViewControl
{
    View DefaultView { get; }

    /// <summary>The views this session created and has not destroyed (the default view is not listed).</summary>
    IReadOnlyCollection<View> Views { get; }

    View CreateView(MemoryAccess defaultAccess);

    void DestroyView(View view);

    void SwitchToView(View view);

    /// <summary>In <paramref name="view"/>, make accesses to <paramref name="oldGfn"/> reach <paramref name="newGfn"/>.</summary>
    void ChangeViewGfn(View view, Gfn oldGfn, Gfn newGfn);

    void ResetViewGfn(View view, Gfn gfn);
}

/// <summary>Answers one event. Runs on the thread that called <see cref="IVmiEventControl.WaitForEvents"/>.</summary>
public delegate VmiEventResponse VmiEventHandler(VmiEvent vmiEvent);

public interface IVmiEventControl
{
    void EnableMonitor(EventMonitor monitor);

    void DisableMonitor(EventMonitor monitor);

    /// <summary>The monitors enabled through this driver and not yet disabled.</summary>
    IReadOnlyCollection<EventMonitor> EnabledMonitors { get; }

    /// <summary>Events waiting to be handled.</summary>
    int EventsPending { get; }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> for events and hands at most <paramref name="maxEvents"/> pending
    /// ones to <paramref name="handler"/>, answering each with the handler's response; returns how many were
    /// handled (0 on timeout or cancellation). Events beyond <paramref name="maxEvents"/> are not taken: they stay
    /// pending, unanswered, for the next wait. If the handler throws, or <paramref name="cancellationToken"/>
    /// fires, every event already taken is answered (with <see cref="VmiEventResponse.Continue"/> where the
    /// handler gave no answer) before this returns or rethrows: no vCPU is left waiting.
    /// </summary>
    int WaitForEvents(TimeSpan timeout, int maxEvents, VmiEventHandler handler, CancellationToken cancellationToken = default);
}

public interface IVmiVmControl
{
    /// <summary>Pauses the whole guest. Pauses nest: each <see cref="Pause"/> needs one <see cref="Resume"/>.</summary>
    void Pause();

    void Resume();

    /// <summary>Allocates the next free guest frame above the guest's memory.</summary>
    Gfn AllocateGfn();

    /// <summary>Allocates (populates) a frame at <paramref name="gfn"/>.</summary>
    void AllocateGfn(Gfn gfn);

    void FreeGfn(Gfn gfn);

    void InjectInterrupt(VcpuId vcpu, Interrupt interrupt);

    /// <summary>Undoes everything this driver changed: monitors off, access restored, views destroyed, pauses released.</summary>
    void ResetState();
}
