using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Native;

namespace Vmi.Xen.Events;

/// <summary>
/// Takes requests from a <see cref="VmEventRing"/> one at a time, hands each to the handler and puts its
/// answer back, so that every request taken is answered on every path: a handler that throws, a response
/// that cannot be carried out, a request of another interface version, cancellation. Xen is notified once
/// per batch, from a finally block.
/// </summary>
internal sealed class VmEventProcessor(VmEventRing ring, Action<VcpuId, Interrupt> reinject)
{
    public VmEventRing Ring { get; } = ring;

    /// <summary>Requests waiting in the ring.</summary>
    public int Pending => Ring.UnconsumedRequests;

    /// <summary>Handles every waiting request (and those that arrive meanwhile); returns how many were handled.</summary>
    public int Process(VmiEventHandler handler, CancellationToken cancellationToken = default) =>
        Process(handler, int.MaxValue, cancellationToken);

    /// <summary>
    /// Handles waiting requests (and those that arrive meanwhile), at most <paramref name="maxEvents"/>; the rest stay
    /// unconsumed in the ring for the next call. Returns how many were handled.
    /// </summary>
    public int Process(VmiEventHandler handler, int maxEvents, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        int handled = 0;
        bool answered = false;
        try
        {
            while (handled < maxEvents && !cancellationToken.IsCancellationRequested && (Ring.UnconsumedRequests > 0 || Ring.FinalCheckForRequests()))
            {
                if (!Ring.TryTakeRequest(out VmEventSt request))
                {
                    break;
                }

                answered = true;
                Handle(request, handler);
                handled++;
            }
        }
        finally
        {
            if (answered)
            {
                Ring.Notify();
            }
        }

        return handled;
    }

    /// <summary>Answers every waiting request with "continue" (teardown: no vCPU may stay paused). Returns how many.</summary>
    public int DrainAndContinue()
    {
        int n = 0;
        try
        {
            while (Ring.TryTakeRequest(out VmEventSt request) || (Ring.FinalCheckForRequests() && Ring.TryTakeRequest(out request)))
            {
                Ring.PutResponse(request.Version == VmEventAbi.InterfaceVersion ? VmEventTranslator.ContinueResponse(request) : VmEventTranslator.MismatchResponse(request));
                n++;
            }
        }
        finally
        {
            if (n > 0)
            {
                Ring.Notify();
            }
        }

        return n;
    }

    private void Handle(in VmEventSt request, VmiEventHandler handler)
    {
        if (request.Version != VmEventAbi.InterfaceVersion)
        {
            Ring.PutResponse(VmEventTranslator.MismatchResponse(request));
            throw new VmiDriverException(string.Format(
                CultureInfo.InvariantCulture,
                "Xen sent a vm_event request of interface version {0} (vCPU {1}, reason {2}); this driver reads version {3} (Xen 4.15 to 4.22). " +
                "The vCPU was released unanswered otherwise. Use a Vmi.Xen build for this Xen release.",
                request.Version, request.VcpuId, request.Reason, VmEventAbi.InterfaceVersion));
        }

        VmEventSt rsp;
        Exception? failure = null;
        try
        {
            VmiEventResponse response = handler(VmEventTranslator.ToEvent(request)) ?? VmiEventResponse.Continue;
            rsp = VmEventTranslator.ToResponse(request, response);
            if ((response.Flags & VmiEventResponseFlags.ReinjectInterrupt) != 0)
            {
                Interrupt interrupt = VmEventTranslator.ReinjectionFor(request)
                    ?? throw new ArgumentException($"ReinjectInterrupt answers breakpoint and debug-exception events only; this event's reason is {request.Reason}.");
                reinject(new VcpuId((ushort)request.VcpuId), interrupt);
            }
        }
#pragma warning disable CA1031 // the request must be answered whatever went wrong; the failure is rethrown below
        catch (Exception ex)
#pragma warning restore CA1031
        {
            failure = ex;
            rsp = VmEventTranslator.ContinueResponse(request);
        }

        Ring.PutResponse(rsp);
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }
}
