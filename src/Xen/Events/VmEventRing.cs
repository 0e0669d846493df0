using System.Runtime.CompilerServices;
using Vmi.Core;
using Vmi.Xen.Native;

namespace Vmi.Xen.Events;

/// <summary>
/// The back end (consumer) of a vm_event ring: the shared page Xen fills with requests and we fill
/// with responses (xen/io/ring.h, DEFINE_RING_TYPES(vm_event, ...)). Pure C# over a memory region, so
/// a test can play the hypervisor on a ring in ordinary memory. Not thread-safe: one consumer.
/// </summary>
/// <remarks>
/// Layout of the page: the shared header (req_prod, req_event, rsp_prod, rsp_event, padding to 64 bytes),
/// then <see cref="Capacity"/> slots of <see cref="VmEventSt.Size"/> bytes, the count rounded down to a power
/// of two. Indexes are free-running 32-bit counters; a slot is <c>index &amp; (Capacity - 1)</c>.
/// </remarks>
internal sealed unsafe class VmEventRing
{
    private readonly byte* _page;
    private readonly Action _notify;
    private uint _reqCons;
    private uint _rspProdPvt;

    /// <param name="page">The ring page (the mapping xc_monitor_enable returned, or test memory).</param>
    /// <param name="length">Bytes in the ring page.</param>
    /// <param name="notify">Tells the other end that responses are ready (the event channel).</param>
    /// <remarks>The shared header is reset as SHARED_RING_INIT does: the ring is fresh, as xc_monitor_enable hands it out.</remarks>
    public VmEventRing(byte* page, int length, Action notify)
    {
        ArgumentNullException.ThrowIfNull(notify);
        if (page == null)
        {
            throw new ArgumentNullException(nameof(page));
        }

        int slots = (length - VmEventSringHeader.Size) / VmEventSt.Size;
        if (slots < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"A vm_event ring needs at least {VmEventSringHeader.Size + VmEventSt.Size} bytes.");
        }

        Capacity = 1 << (31 - int.LeadingZeroCount(slots)); // __RD32: round down to a power of two
        _page = page;
        _notify = notify;
        Header->ReqProd = 0;
        Header->RspProd = 0;
        Header->ReqEvent = 1;
        Header->RspEvent = 1;
        new Span<byte>(page + 16, VmEventSringHeader.Size - 16).Clear();
    }

    /// <summary>Slots in the ring (RING_SIZE).</summary>
    public int Capacity { get; }

    /// <summary>Requests taken from the ring (req_cons).</summary>
    public uint RequestConsumer => _reqCons;

    /// <summary>Responses put on the ring (rsp_prod_pvt).</summary>
    public uint ResponseProducer => _rspProdPvt;

    /// <summary>Requests taken and not yet answered.</summary>
    public int Outstanding => (int)(_reqCons - _rspProdPvt);

    private VmEventSringHeader* Header => (VmEventSringHeader*)_page;

    /// <summary>
    /// Requests Xen has produced that we have not taken (XEN_RING_NR_UNCONSUMED_REQUESTS): never more
    /// than the slots that hold no unread response, so a corrupt producer index cannot make us read
    /// slots twice.
    /// </summary>
    public int UnconsumedRequests
    {
        get
        {
            uint reqProd = Volatile.Read(ref Header->ReqProd);
            uint req = reqProd - _reqCons;
            uint rsp = (uint)Capacity - (_reqCons - _rspProdPvt);
            return (int)Math.Min(req, rsp);
        }
    }

    /// <summary>
    /// Copies the next request out of the ring (the copy is ours; Xen cannot change it under us),
    /// advances req_cons and asks to be notified of the next one. False when none is waiting.
    /// </summary>
    public bool TryTakeRequest(out VmEventSt request)
    {
        if (UnconsumedRequests == 0)
        {
            request = default;
            return false;
        }

        Interlocked.MemoryBarrier(); // read the slot after reading req_prod (xen_rmb)
        request = Unsafe.ReadUnaligned<VmEventSt>(Slot(_reqCons));
        _reqCons++;
        Volatile.Write(ref Header->ReqEvent, _reqCons + 1);
        return true;
    }

    /// <summary>
    /// After draining: re-arm req_event and look once more (RING_FINAL_CHECK_FOR_REQUESTS), so a request
    /// that arrived between the last take and the re-arm is not left waiting for a notification that never comes.
    /// </summary>
    public bool FinalCheckForRequests()
    {
        if (UnconsumedRequests > 0)
        {
            return true;
        }

        Volatile.Write(ref Header->ReqEvent, _reqCons + 1);
        Interlocked.MemoryBarrier();
        return UnconsumedRequests > 0;
    }

    /// <summary>Writes a response into the next response slot and publishes it (RING_PUSH_RESPONSES).</summary>
    public void PutResponse(in VmEventSt response)
    {
        if (_rspProdPvt == _reqCons)
        {
            throw new InvalidOperationException("A vm_event response was put with no request outstanding: every response answers one request taken from the ring.");
        }

        Unsafe.WriteUnaligned(Slot(_rspProdPvt), response);
        _rspProdPvt++;
        Interlocked.MemoryBarrier(); // the front end sees the response before the producer index (xen_wmb)
        Volatile.Write(ref Header->RspProd, _rspProdPvt);
    }

    /// <summary>
    /// Puts one "continue" response per vCPU, answering no request, and notifies Xen. Xen matches responses to no
    /// request: one that says the vCPU was paused unpauses it if it waits for an answer, and does nothing otherwise.
    /// That releases vCPUs a dead consumer left waiting on an earlier ring. Only on a fresh ring that is torn down
    /// right after: the unsolicited responses leave Xen's free-slot count off by as many.
    /// </summary>
    public void ReleasePausedVcpus(int vcpuCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vcpuCount);
        if (_reqCons != 0 || _rspProdPvt != 0 || vcpuCount > Capacity)
        {
            throw new InvalidOperationException($"Releasing {vcpuCount} vCPU(s) needs a fresh ring of at least as many slots (this one has {Capacity} and has been used).");
        }

        for (uint v = 0; v < (uint)vcpuCount; v++)
        {
            VmEventSt rsp = default;
            rsp.Version = VmEventAbi.InterfaceVersion;
            rsp.VcpuId = v;
            rsp.Flags = VmEventAbi.FlagVcpuPaused;
            Unsafe.WriteUnaligned(Slot(_rspProdPvt), rsp);
            _rspProdPvt++;
        }

        Interlocked.MemoryBarrier();
        Volatile.Write(ref Header->RspProd, _rspProdPvt);
        _notify();
    }

    /// <summary>Tells Xen the responses are there (the event channel kick).</summary>
    public void Notify() => _notify();

    private byte* Slot(uint index) => _page + VmEventSringHeader.Size + ((long)(index & (uint)(Capacity - 1)) * VmEventSt.Size);
}
