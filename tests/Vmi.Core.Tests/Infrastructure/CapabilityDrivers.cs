using Vmi.Core;

namespace Vmi.Core.Tests.Infrastructure;

/// <summary>A driver with no capability at all: every capability call must fail naming it.</summary>
public sealed class BareDriver : IVmiDriver
{
    public string Name => "Bare";

    public VmiInfo Info { get; } = new(4096, 12, new Gfn(0xFFFF), 2);

    public void Dispose()
    {
    }
}

/// <summary>Every capability, recording what it was asked.</summary>
public class FullDriver : SparseDriver, IVmiQueryProtection, IVmiSetProtection, IVmiQueryRegisters, IVmiSetRegisters, IVmiViewControl, IVmiEventControl, IVmiVmControl
{
    private readonly Registers[] _regs;
    private readonly List<EventMonitor> _monitors = [];
    private readonly Dictionary<(ulong, ushort), MemoryAccess> _access = [];

    public FullDriver(int vcpus = 2)
        : base("Full", maxGfn: 0xFFFFF, vcpus: vcpus)
    {
        _regs = Enumerable.Range(0, vcpus).Select(_ => new Registers { Cr0 = Amd64.Cr0Pg, Cr4 = Amd64.Cr4Pae, MsrEfer = Amd64.EferLme | Amd64.EferLma }).ToArray();
    }

    public int Pauses { get; private set; }

    public int Resumes { get; private set; }

    public Exception? ResumeFailure { get; set; }

    public List<VmiEvent> Queue { get; } = [];

    public List<VmiEventResponse> Responses { get; } = [];

    public MemoryAccess GetMemoryAccess(Gfn gfn, View view) => _access.TryGetValue((gfn.Value, view.Value), out MemoryAccess a) ? a : MemoryAccess.RWX;

    public void SetMemoryAccess(Gfn gfn, View view, MemoryAccess access, MemoryAccessOptions options = MemoryAccessOptions.None) => _access[(gfn.Value, view.Value)] = access;

    public Registers GetRegisters(VcpuId vcpu) => _regs[vcpu.Value] with { };

    public void SetRegisters(VcpuId vcpu, Registers registers) => _regs[vcpu.Value] = registers with { };

    public View DefaultView => View.Default;

    public IReadOnlyCollection<View> Views { get; } = [];

    public View CreateView(MemoryAccess defaultAccess) => new(1);

    public void DestroyView(View view)
    {
    }

    public void SwitchToView(View view)
    {
    }

    public void ChangeViewGfn(View view, Gfn oldGfn, Gfn newGfn)
    {
    }

    public void ResetViewGfn(View view, Gfn gfn)
    {
    }

    public void EnableMonitor(EventMonitor monitor) => _monitors.Add(monitor);

    public void DisableMonitor(EventMonitor monitor) => _monitors.Remove(monitor);

    public IReadOnlyCollection<EventMonitor> EnabledMonitors => _monitors;

    public int EventsPending => Queue.Count;

    public bool WaitForPending(TimeSpan timeout, CancellationToken cancellationToken = default) => Queue.Count > 0;

    public IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents)
    {
        var taken = new List<VmiPendingEvent>();
        while (Queue.Count > 0 && taken.Count < maxEvents)
        {
            taken.Add(new VmiPendingEvent(Queue[0]));
            Queue.RemoveAt(0);
        }

        return taken;
    }

    public void Answer(VmiPendingEvent pending, VmiEventResponse response)
    {
        if (pending.TryMarkAnswered())
        {
            Responses.Add(response);
        }
    }

    public void Release(VmiPendingEvent pending)
    {
        if (pending.TryMarkAnswered())
        {
            Responses.Add(VmiEventResponse.Continue); // no vCPU left waiting
        }
    }

    public void Pause() => Pauses++;

    public void Resume()
    {
        Resumes++;
        if (ResumeFailure is { } f)
        {
            throw f;
        }
    }

    public Gfn AllocateGfn() => new(0x1000);

    public void AllocateGfn(Gfn gfn)
    {
    }

    public void FreeGfn(Gfn gfn) => RemoveFrame(gfn.Value);

    public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt)
    {
    }

    public int ResetCalls { get; private set; }

    public Exception? ResetFailure { get; set; }

    public void ResetState()
    {
        ResetCalls++;
        if (ResetFailure is { } f)
        {
            throw f;
        }
    }
}
