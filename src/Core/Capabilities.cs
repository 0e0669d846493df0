using System.Diagnostics.CodeAnalysis;
using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>What a driver can be asked to do. Every capability is one interface; a driver implements what it can.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
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

/// <summary>A memory image that stores less than it declares (the rest reads as zeros).</summary>
public interface IVmiStoredExtent
{
    /// <summary>The end of the last range the image stores.</summary>
    Pa StoredEnd { get; }
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

/// <summary>Answers one event (see <see cref="VmiEventControlExtensions.WaitForEvents"/>).</summary>
public delegate VmiEventResponse VmiEventHandler(VmiEvent vmiEvent);

/// <summary>
/// An event a driver has handed out and that is not answered yet: its vCPU waits until it is. Answered exactly
/// once, through <see cref="IVmiEventControl.Answer"/> or <see cref="IVmiEventControl.Release"/>.
/// </summary>
public sealed class VmiPendingEvent
{
    private int _answered;

    /// <param name="vmiEvent">The event as the engine shows it.</param>
    /// <param name="driverState">What the driver needs to answer it (e.g. the ring request it came from).</param>
    public VmiPendingEvent(VmiEvent vmiEvent, object? driverState = null)
    {
        ArgumentNullException.ThrowIfNull(vmiEvent);
        Event = vmiEvent;
        DriverState = driverState;
    }

    public VmiEvent Event { get; }

    public object? DriverState { get; }

    public bool IsAnswered => Volatile.Read(ref _answered) != 0;

    /// <summary>Marks the event answered; false when it already was (a driver then does nothing).</summary>
    public bool TryMarkAnswered() => Interlocked.Exchange(ref _answered, 1) == 0;
}

/// <summary>
/// Events in two phases: take them (the vCPUs wait), then answer each. Nothing runs while a driver call is in
/// progress, so no caller ever holds a lock while someone else's code runs.
/// </summary>
public interface IVmiEventControl
{
    void EnableMonitor(EventMonitor monitor);

    void DisableMonitor(EventMonitor monitor);

    /// <summary>The monitors enabled through this driver and not yet disabled.</summary>
    IReadOnlyCollection<EventMonitor> EnabledMonitors { get; }

    /// <summary>Events waiting to be taken.</summary>
    int EventsPending { get; }

    /// <summary>
    /// Blocks until events may be pending, <paramref name="timeout"/> passes (<see cref="Timeout.InfiniteTimeSpan"/>:
    /// never) or <paramref name="cancellationToken"/> fires; true when events are pending. The one member that
    /// blocks: it is safe to call at the same time as any other member, so the caller need not serialise it.
    /// </summary>
    bool WaitForPending(TimeSpan timeout, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes at most <paramref name="maxEvents"/> pending events without blocking (none: an empty list). Their vCPUs
    /// wait until each is answered or released; the events not taken stay pending.
    /// </summary>
    IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents);

    /// <summary>
    /// Answers a taken event with <paramref name="response"/> (already validated). An answered event is ignored.
    /// When the response cannot be carried out the event is released instead and the error thrown.
    /// </summary>
    void Answer(VmiPendingEvent pending, VmiEventResponse response);

    /// <summary>Lets a taken event's vCPU go on as if nothing had intercepted it: nobody answered it. An answered event is ignored.</summary>
    void Release(VmiPendingEvent pending);
}

/// <summary>The one-call event loop built on the two phases, for code that owns its driver outright.</summary>
public static class VmiEventControlExtensions
{
    /// <summary>
    /// Waits up to <paramref name="timeout"/> for events, takes at most <paramref name="maxEvents"/> and answers each with
    /// <paramref name="handler"/>'s response (validated; null is Continue). If the handler throws, its response is invalid,
    /// or <paramref name="cancellationToken"/> fires, every event taken and not answered is released before this returns
    /// or rethrows. Returns how many the handler answered.
    /// </summary>
    public static int WaitForEvents(this IVmiEventControl events, TimeSpan timeout, int maxEvents, VmiEventHandler handler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        if (cancellationToken.IsCancellationRequested)
        {
            return 0;
        }

        IReadOnlyList<VmiPendingEvent> taken = events.TakeEvents(maxEvents);
        if (taken.Count == 0)
        {
            if (!events.WaitForPending(timeout, cancellationToken) || cancellationToken.IsCancellationRequested)
            {
                return 0;
            }

            taken = events.TakeEvents(maxEvents);
        }

        int handled = 0;
        try
        {
            foreach (VmiPendingEvent pending in taken)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    break;
                }

                VmiEventResponse response = handler(pending.Event) ?? VmiEventResponse.Continue;
                response.Validate(pending.Event);
                events.Answer(pending, response);
                handled++;
            }
        }
        finally
        {
            foreach (VmiPendingEvent pending in taken)
            {
                if (!pending.IsAnswered)
                {
                    events.Release(pending);
                }
            }
        }

        return handled;
    }

    /// <inheritdoc cref="WaitForEvents(IVmiEventControl, TimeSpan, int, VmiEventHandler, CancellationToken)"/>
    public static int WaitForEvents(this IVmiEventControl events, TimeSpan timeout, VmiEventHandler handler, CancellationToken cancellationToken = default) =>
        WaitForEvents(events, timeout, int.MaxValue, handler, cancellationToken);
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
