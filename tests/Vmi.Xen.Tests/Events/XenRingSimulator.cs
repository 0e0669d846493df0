using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmi.Xen.Events;
using Vmi.Xen.Native;

namespace Vmi.Xen.Tests.Events;

/// <summary>
/// Plays Xen's side (the front end) of a vm_event ring in ordinary memory: puts requests at req_prod,
/// reads responses up to rsp_prod, counts notifications.
/// </summary>
internal sealed unsafe class XenRingSimulator : IDisposable
{
    public const int PageSize = 4096;
    private uint _reqProdPvt;
    private uint _rspCons;

    public XenRingSimulator()
    {
        Page = (byte*)NativeMemory.AlignedAlloc(PageSize, PageSize);
        new Span<byte>(Page, PageSize).Fill(0xCC); // garbage: the back end must initialise the header
        Ring = new VmEventRing(Page, PageSize, () => Notifications++);
    }

    public byte* Page { get; private set; }

    public VmEventRing Ring { get; }

    public int Notifications { get; private set; }

    private VmEventSringHeader* Header => (VmEventSringHeader*)Page;

    /// <summary>Free request slots, as Xen computes them (RING_FREE_REQUESTS).</summary>
    public int FreeSlots => Ring.Capacity - (int)(_reqProdPvt - _rspCons);

    public void Put(VmEventSt request)
    {
        if (FreeSlots == 0)
        {
            throw new InvalidOperationException("ring full: Xen would make the vCPU wait");
        }

        Unsafe.WriteUnaligned(Page + VmEventSringHeader.Size + ((_reqProdPvt & (uint)(Ring.Capacity - 1)) * VmEventSt.Size), request);
        _reqProdPvt++;
        Volatile.Write(ref Header->ReqProd, _reqProdPvt);
    }

    /// <summary>Writes a raw producer index (a misbehaving front end).</summary>
    public void SetReqProd(uint value) => Header->ReqProd = value;

    public List<VmEventSt> TakeResponses()
    {
        var list = new List<VmEventSt>();
        uint prod = Volatile.Read(ref Header->RspProd);
        while (_rspCons != prod)
        {
            list.Add(Unsafe.ReadUnaligned<VmEventSt>(Page + VmEventSringHeader.Size + ((_rspCons & (uint)(Ring.Capacity - 1)) * VmEventSt.Size)));
            _rspCons++;
        }

        return list;
    }

    public uint ReqEvent => Header->ReqEvent;

    public static VmEventSt Request(uint vcpu, uint reason, bool paused = true)
    {
        VmEventSt r = default;
        r.Version = VmEventAbi.InterfaceVersion;
        r.VcpuId = vcpu;
        r.Reason = reason;
        r.Flags = paused ? VmEventAbi.FlagVcpuPaused : 0;
        r.Data.Regs.X86.Rip = 0xfffff800_00001000 + vcpu;
        r.Data.Regs.X86.Cr3 = 0x1aa000;
        r.Data.Regs.X86.Rax = 0x1111 * (vcpu + 1);
        return r;
    }

    public void Dispose()
    {
        if (Page != null)
        {
            NativeMemory.AlignedFree(Page);
            Page = null;
        }
    }
}
