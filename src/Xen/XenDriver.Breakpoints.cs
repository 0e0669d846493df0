using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Events;
using Vmi.Xen.Native;

namespace Vmi.Xen;

/// <summary>
/// Breakpoints on Xen: an INT3 (0xCC) written over the first byte of the instruction, and Xen's software-breakpoint
/// monitor, which stops the vCPU on it with RIP on the INT3. Continuing runs the original instruction without taking
/// the INT3 out (so no other vCPU can slip past it meanwhile): Xen emulates the original bytes given in the answer
/// (VM_EVENT_FLAG_SET_EMUL_INSN_DATA), on Intel and AMD alike — no single-step is needed, which AMD hosts lack.
/// Reads through the engine see the original bytes; writes over an INT3 change the byte it restores. Every INT3 is
/// taken out on reset, dispose, process exit and the handled signals, and by the next session's reclaim after SIGKILL
/// (the session record names each one with its original byte).
/// </summary>
public sealed partial class XenDriver : IVmiBreakpoints
{
    private const byte Int3 = 0xCC;

    private readonly SortedDictionary<int, VmiBreakpoint> _breakpoints = [];
    private readonly Dictionary<ulong, byte> _int3s = []; // physical address -> the byte the INT3 replaced
    private readonly HashSet<VmiPendingEvent> _breakpointHits = []; // taken hits of this session's breakpoints: answered by stepping over
    private readonly HashSet<ulong> _removedInt3s = []; // where this session took an INT3 out: a hit still in the ring is stale
    private int _nextBreakpoint = 1;
    private bool _breakpointMonitorOn; // Xen's software-breakpoint monitor is on (for breakpoints, the user's monitor, or both)

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
            ThrowIfReadOnly("setting a breakpoint");
            request.Validate();
            if (request.IsWatchpoint)
            {
                throw new VmiNotSupportedException(
                    "The Xen driver has no watchpoints: Xen gives dom0 no access to a guest's debug registers, and watching data through page access " +
                    "restrictions (mem_access) is not offered here. Restrict the page's access (Set-VmiMemoryAccess, Intel VT-x hosts) and wait for its events instead.");
            }

            if (request.Kind != BreakpointKind.Software)
            {
                throw new VmiNotSupportedException(
                    "The Xen driver sets software breakpoints (an INT3 in guest memory) only: Xen offers no way for dom0 to program a guest's debug registers for " +
                    "hardware breakpoints. Set a software breakpoint instead.");
            }

            if (request.Vcpu is { } v)
            {
                CheckVcpu(v);
            }

            Pa pa = request.Physical ?? Translate(request.Address, request.Cr3, request.Vcpu ?? new VcpuId(0));
            EnsureRing();
            if (!_breakpointMonitorOn)
            {
                _host.SetMonitor(_domid, EventMonitor.Breakpoint, true);
                _breakpointMonitorOn = true;
            }

            _removedInt3s.Remove(pa.Value);
            if (!_int3s.ContainsKey(pa.Value))
            {
                byte original = ReadPhysicalByte(pa);
                _host.WritePage(_domid, new Gfn(pa.Value >> PageShift), (int)(pa.Value & 0xFFF), [Int3]);
                _int3s[pa.Value] = original;
            }

            var bp = new VmiBreakpoint(_nextBreakpoint++, request.Address, BreakpointKind.Software, request.Cr3, request.Vcpu, pa, 0);
            _breakpoints[bp.Id] = bp;
            SaveRecord();
            return bp;
        }
    }

    public bool RemoveBreakpoint(int id)
    {
        lock (_gate)
        {
            ThrowIfReadOnly("removing a breakpoint");
            if (!_breakpoints.Remove(id, out VmiBreakpoint? bp))
            {
                return false;
            }

            try
            {
                ulong pa = bp.Physical!.Value.Value;
                if (!_breakpoints.Values.Any(b => b.Physical!.Value.Value == pa))
                {
                    RestoreInt3(pa);
                }

                if (_breakpoints.Count == 0 && _breakpointMonitorOn && !_monitors.Contains(EventMonitor.Breakpoint))
                {
                    _host.SetMonitor(_domid, EventMonitor.Breakpoint, false);
                    _breakpointMonitorOn = false;
                }
            }
            finally
            {
                SaveRecord();
            }

            return true;
        }
    }

    /// <summary>Puts the original byte back where this session wrote an INT3 (unless something else overwrote the INT3 meanwhile).</summary>
    private void RestoreInt3(ulong pa)
    {
        if (_int3s.Remove(pa, out byte original))
        {
            _removedInt3s.Add(pa);
            if (ReadPhysicalByte(new Pa(pa)) == Int3)
            {
                _host.WritePage(_domid, new Gfn(pa >> PageShift), (int)(pa & 0xFFF), [original]);
            }
        }
    }

    private byte ReadPhysicalByte(Pa pa)
    {
        using MappedPage page = _host.MapPage(_domid, new Gfn(pa.Value >> PageShift))
            ?? throw new VmiDriverException($"Guest physical address {pa} is not backed by memory in domain {_domid} ('{Domain.Name}'): no breakpoint can be written there.");
        return page.Span[(int)(pa.Value & 0xFFF)];
    }

    /// <summary>The physical address of <paramref name="va"/> under <paramref name="cr3"/> (or the vCPU's current CR3), by a walk of the guest's page tables.</summary>
    private Pa Translate(Va va, Pa? cr3, VcpuId vcpu)
    {
        Registers regs = HvmContext.GetRegisters(_host.GetHvmContext(_domid), vcpu, Info.VcpuCount);
        PagingMode mode = regs.PagingMode;
        Pa root = cr3 ?? regs.TranslationRoot;
        var reader = new HostPageReader(_host, _domid);
        TranslationResult t = Amd64.Translate(ref reader, mode, root, va);
        if (t.Fault != WalkFaultKind.None)
        {
            throw new VmiDriverException(
                $"Virtual address {va} is not mapped under page-table root {root} ({t.Fault} at {t.FaultLevel}): no breakpoint can be written there. " +
                "Set it when the code is paged in, or give its physical address.");
        }

        return t.Pa;
    }

    /// <summary>Reads page-table entries straight from the host's mappings (the driver has no engine cache).</summary>
    private readonly struct HostPageReader(IXenHost host, uint domid) : IPageTableReader
    {
        public bool TryReadU64(ulong pa, out ulong value)
        {
            Span<byte> b = stackalloc byte[8];
            bool ok = TryRead(pa, b);
            value = ok ? BitConverter.ToUInt64(b) : 0;
            return ok;
        }

        public bool TryReadU32(ulong pa, out uint value)
        {
            Span<byte> b = stackalloc byte[4];
            bool ok = TryRead(pa, b);
            value = ok ? BitConverter.ToUInt32(b) : 0;
            return ok;
        }

        private bool TryRead(ulong pa, Span<byte> into)
        {
            using MappedPage? page = host.MapPage(domid, new Gfn(pa >> PageShift));
            int offset = (int)(pa & 0xFFF);
            if (page is null || offset + into.Length > page.Length)
            {
                return false;
            }

            page.Span.Slice(offset, into.Length).CopyTo(into);
            return true;
        }
    }

    // ---------------------------------------------------------------- what the rest of the driver asks of breakpoints

    /// <summary>A page that holds INT3s of this session, as the guest wrote it: a copy with the original bytes.</summary>
    private MappedPage? WithOriginalBytes(Gfn gfn, MappedPage? page)
    {
        if (page is null || _int3s.Count == 0)
        {
            return page;
        }

        ulong start = gfn.Value << PageShift;
        byte[]? copy = null;
        foreach ((ulong pa, byte original) in _int3s)
        {
            if (pa >> PageShift == gfn.Value)
            {
                copy ??= page.Span.ToArray();
                copy[(int)(pa - start)] = original;
            }
        }

        if (copy is null)
        {
            return page;
        }

        page.Dispose();
        return new PatchedPage(gfn, copy);
    }

    /// <summary>A write over an INT3 of this session changes the byte it restores; the INT3 stays in memory.</summary>
    private ReadOnlySpan<byte> KeepInt3s(Gfn gfn, int offset, ReadOnlySpan<byte> data)
    {
        if (_int3s.Count == 0)
        {
            return data;
        }

        ulong start = (gfn.Value << PageShift) + (ulong)offset;
        byte[]? copy = null;
        foreach (ulong pa in _int3s.Keys.ToArray())
        {
            if (pa >= start && pa < start + (ulong)data.Length)
            {
                copy ??= data.ToArray();
                int i = (int)(pa - start);
                _int3s[pa] = copy[i];
                copy[i] = Int3;
            }
        }

        return copy ?? data;
    }

    /// <summary>
    /// Sorts the events just taken: a hit of this session's breakpoint that its filters (CR3, vCPU) leave out is stepped
    /// over at once; a hit whose INT3 was removed meanwhile continues (the original instruction is back); an INT3 the
    /// guest placed itself goes back to the guest when only breakpoints turned Xen's monitor on. The rest is returned.
    /// </summary>
    private IReadOnlyList<VmiPendingEvent> SortBreakpointHits(IReadOnlyList<VmiPendingEvent> taken)
    {
        if ((!_breakpointMonitorOn && _removedInt3s.Count == 0) || !taken.Any(p => p.Event.Reason is SoftwareBreakpointReason))
        {
            return taken;
        }

        var result = new List<VmiPendingEvent>(taken.Count);
        foreach (VmiPendingEvent p in taken)
        {
            if (p.Event.Reason is not SoftwareBreakpointReason hit)
            {
                result.Add(p);
                continue;
            }

            ulong pa = (hit.Gfn.Value << PageShift) | (hit.Va.Value & 0xFFF);
            if (_int3s.ContainsKey(pa))
            {
                Pa root = p.Event.Registers.TranslationRoot;
                VmiBreakpoint[] matching = _breakpoints.Values
                    .Where(b => b.Physical!.Value.Value == pa && (b.Cr3 is null || b.Cr3 == root) && (b.Vcpu is null || b.Vcpu == p.Event.Vcpu))
                    .ToArray();
                if (matching.Length == 0)
                {
                    StepOver(p); // filtered out: the guest never notices
                    continue;
                }

                foreach (VmiBreakpoint b in matching)
                {
                    _breakpoints[b.Id] = b with { Hits = b.Hits + 1 };
                }

                _breakpointHits.Add(p);
                result.Add(p);
            }
            else if (_removedInt3s.Contains(pa))
            {
                _processor!.Release(p); // a breakpoint removed after the vCPU hit it: RIP is on the original instruction again
            }
            else if (!_monitors.Contains(EventMonitor.Breakpoint))
            {
                _processor!.Answer(p, VmiEventResponse.ReinjectInterrupt); // the guest's own INT3, and nobody asked for those
            }
            else
            {
                result.Add(p);
            }
        }

        return result;
    }

    /// <summary>
    /// Answers a hit of this session's breakpoint, or returns false for any other event. Continue (with or without a view)
    /// runs the original instruction; an answer that moves RIP elsewhere, emulates or re-injects goes to Xen as asked.
    /// </summary>
    private bool TryAnswerBreakpointHit(VmiPendingEvent pending, VmiEventResponse? response)
    {
        if (!_breakpointHits.Remove(pending))
        {
            return false;
        }

        if (response is null || ((response.Flags & ~VmiEventResponseFlags.Continue) == 0 && response.View is null && response.Registers is null))
        {
            StepOver(pending);
            return true;
        }

        if (response.Registers is { } regs && regs.Rip == pending.Event.Registers.Rip)
        {
            StepOver(pending);
            throw new ArgumentException(
                "A breakpoint hit on Xen is continued by emulating the original instruction, which cannot be combined with setting registers while RIP stays " +
                "on the breakpoint (Xen's answer carries one or the other). The hit was continued without the registers; move RIP to skip the instruction, or " +
                "set the registers at the next event.");
        }

        if ((response.Flags & VmiEventResponseFlags.ReinjectInterrupt) != 0)
        {
            StepOver(pending);
            throw new ArgumentException("This INT3 is a breakpoint of this session, not the guest's: re-injecting it would give the guest a #BP it never set. The hit was continued.");
        }

        _processor!.Answer(pending, response);
        return true;
    }

    /// <summary>Answers a breakpoint hit with the emulation of the original instruction at RIP (read through the guest's page tables).</summary>
    private void StepOver(VmiPendingEvent pending)
    {
        VmEventSt request = VmEventProcessor.RequestOf(pending);
        Span<byte> insn = stackalloc byte[VmEventEmulInsnData.Size];
        int got = ReadInstruction(pending.Event.Registers, insn);
        _processor!.AnswerWith(pending, VmEventTranslator.StepOverResponse(request, insn[..got]));
    }

    /// <summary>Up to 16 bytes at RIP with this session's INT3s replaced by their original bytes; returns how many could be read.</summary>
    private int ReadInstruction(Registers regs, Span<byte> into)
    {
        var reader = new HostPageReader(_host, _domid);
        PagingMode mode = regs.PagingMode;
        Pa root = regs.TranslationRoot;
        ulong rip = regs.Rip;
        int got = 0;
        while (got < into.Length)
        {
            var va = new Va(rip + (ulong)got);
            TranslationResult t = Amd64.Translate(ref reader, mode, root, va);
            if (t.Fault != WalkFaultKind.None)
            {
                break;
            }

            int n = Math.Min(into.Length - got, 4096 - (int)(t.Pa.Value & 0xFFF));
            using MappedPage? page = _host.MapPage(_domid, new Gfn(t.Pa.Value >> PageShift));
            if (page is null)
            {
                break;
            }

            page.Span.Slice((int)(t.Pa.Value & 0xFFF), n).CopyTo(into[got..]);
            for (int i = 0; i < n; i++)
            {
                if (_int3s.TryGetValue(t.Pa.Value + (ulong)i, out byte original))
                {
                    into[got + i] = original;
                }
            }

            got += n;
        }

        return got;
    }

    /// <summary>Reset: every INT3 out (before the ring goes, so the vCPUs it releases run the original instructions), breakpoints forgotten.</summary>
    private void RemoveAllBreakpoints(Action<Action> step)
    {
        foreach (ulong pa in _int3s.Keys.ToArray())
        {
            step(() => RestoreInt3(pa));
        }

        _int3s.Clear();
        _removedInt3s.Clear();
        _breakpoints.Clear();
        _breakpointHits.Clear();
        if (_breakpointMonitorOn && !_monitors.Contains(EventMonitor.Breakpoint))
        {
            step(() => _host.SetMonitor(_domid, EventMonitor.Breakpoint, false));
        }

        _breakpointMonitorOn = false;
    }

    /// <summary>The INT3s as the session record keeps them: "pa:original" in hex.</summary>
    private string[] Int3Record() =>
        [.. _int3s.OrderBy(kv => kv.Key).Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key:x}:{kv.Value:x2}"))];

    /// <summary>Reclaim after a killed session: puts back the original byte of each INT3 it left (where the INT3 is still there).</summary>
    private void RestoreDeadInt3s(IEnumerable<string> int3s, Func<string, Action, bool> step)
    {
        foreach (string entry in int3s)
        {
            string[] f = entry.Split(':');
            if (f.Length != 2 || !ulong.TryParse(f[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong pa)
                || !byte.TryParse(f[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte original))
            {
                continue;
            }

            step($"removed its INT3 at physical 0x{pa:x}", () =>
            {
                if (ReadPhysicalByte(new Pa(pa)) == Int3)
                {
                    _host.WritePage(_domid, new Gfn(pa >> PageShift), (int)(pa & 0xFFF), [original]);
                }
            });
        }
    }

    /// <summary>A page copied from the guest with the original bytes under this session's INT3s (not the live memory).</summary>
    private sealed class PatchedPage(Gfn gfn, byte[] bytes) : MappedPage(gfn, bytes)
    {
        public override bool IsLive => false;
    }
}
