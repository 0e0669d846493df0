using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Xen.Native;

namespace Vmi.Xen.Events;

/// <summary>
/// The two phases of the vm_event ring: <see cref="Take"/> consumes requests (their vCPUs stay paused) and hands them out
/// as <see cref="VmiPendingEvent"/>s; <see cref="Answer"/> and <see cref="Release"/> put each one's response back. Every
/// request taken is answered on every path: a response that cannot be carried out, a request of another interface
/// version, teardown (<see cref="DrainAndContinue"/> answers what is still outstanding). Not thread-safe: the driver
/// serialises calls.
/// </summary>
internal sealed class VmEventProcessor(VmEventRing ring, Action<VcpuId, Interrupt> reinject)
{
    private readonly HashSet<VmiPendingEvent> _outstanding = [];
    private readonly Queue<VmEventSt> _backlog = new(); // requests consumed from the ring by ContinueWaiting, not yet taken

    public VmEventRing Ring { get; } = ring;

    /// <summary>Requests waiting (in the ring, or consumed from it and kept for <see cref="Take"/>).</summary>
    public int Pending => _backlog.Count + Ring.UnconsumedRequests;

    /// <summary>Events taken and not yet answered.</summary>
    public int Outstanding => _outstanding.Count;

    /// <summary>
    /// Takes at most <paramref name="maxEvents"/> waiting requests. A request of another interface version is answered at
    /// once (so its vCPU goes on) and throws; the requests taken before it in this call are released first.
    /// </summary>
    public IReadOnlyList<VmiPendingEvent> Take(int maxEvents)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        var taken = new List<VmiPendingEvent>();
        while (taken.Count < maxEvents && (_backlog.Count > 0 || Ring.UnconsumedRequests > 0 || Ring.FinalCheckForRequests()))
        {
            VmEventSt request;
            if (_backlog.Count > 0)
            {
                request = _backlog.Dequeue();
            }
            else if (!Ring.TryTakeRequest(out request))
            {
                break;
            }

            if (request.Version != VmEventAbi.InterfaceVersion)
            {
                Ring.PutResponse(VmEventTranslator.MismatchResponse(request));
                foreach (VmiPendingEvent t in taken)
                {
                    t.TryMarkAnswered();
                    Put(t, VmEventTranslator.ContinueResponse(Request(t)));
                }

                Ring.Notify();
                throw new VmiDriverException(string.Format(
                    CultureInfo.InvariantCulture,
                    "Xen sent a vm_event request of interface version {0} (vCPU {1}, reason {2}); this driver reads version {3} (Xen 4.15 to 4.22). " +
                    "The vCPU was released unanswered otherwise. Use a Vmi.Xen build for this Xen release.",
                    request.Version, request.VcpuId, request.Reason, VmEventAbi.InterfaceVersion));
            }

            var pending = new VmiPendingEvent(VmEventTranslator.ToEvent(request), new RequestBox(request));
            _outstanding.Add(pending);
            taken.Add(pending);
        }

        return taken;
    }

    /// <summary>
    /// Puts <paramref name="response"/> for a taken event (and re-injects its interrupt when asked); Xen is kicked unless
    /// <paramref name="notify"/> is false. A response that cannot be carried out answers Continue and throws.
    /// </summary>
    public void Answer(VmiPendingEvent pending, VmiEventResponse response, bool notify = true)
    {
        ArgumentNullException.ThrowIfNull(pending);
        ArgumentNullException.ThrowIfNull(response);
        VmEventSt request = Request(pending);
        if (!_outstanding.Contains(pending) || !pending.TryMarkAnswered())
        {
            return;
        }

        VmEventSt rsp;
        Exception? failure = null;
        try
        {
            response.Validate(pending.Event); // registers: only the general-purpose ones may differ from the event's
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

        Put(pending, rsp);
        if (notify || failure is not null)
        {
            Ring.Notify();
        }

        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }

    /// <summary>
    /// Answers "continue" to every waiting request that <paramref name="matches"/> (the requests of a monitor just turned
    /// off, which nobody may wait for again: their vCPUs would stay paused until the ring goes); the other waiting requests
    /// are kept, in order, for <see cref="Take"/>. Returns how many were answered.
    /// </summary>
    public int ContinueWaiting(Func<VmEventSt, bool> matches)
    {
        ArgumentNullException.ThrowIfNull(matches);
        var keep = new Queue<VmEventSt>();
        int n = 0;
        void Sort(in VmEventSt request)
        {
            if (request.Version == VmEventAbi.InterfaceVersion && matches(request))
            {
                Ring.PutResponse(VmEventTranslator.ContinueResponse(request));
                n++;
            }
            else
            {
                keep.Enqueue(request);
            }
        }

        try
        {
            while (_backlog.Count > 0)
            {
                Sort(_backlog.Dequeue());
            }

            while (Ring.TryTakeRequest(out VmEventSt request) || (Ring.FinalCheckForRequests() && Ring.TryTakeRequest(out request)))
            {
                Sort(request);
            }
        }
        finally
        {
            while (keep.Count > 0)
            {
                _backlog.Enqueue(keep.Dequeue());
            }

            if (n > 0)
            {
                Ring.Notify();
            }
        }

        return n;
    }

    /// <summary>Answers a taken event with a response the driver built (a breakpoint's step-over); ignored once answered.</summary>
    public void AnswerWith(VmiPendingEvent pending, in VmEventSt response, bool notify = true)
    {
        ArgumentNullException.ThrowIfNull(pending);
        _ = Request(pending);
        if (!_outstanding.Contains(pending) || !pending.TryMarkAnswered())
        {
            return;
        }

        Put(pending, response);
        if (notify)
        {
            Ring.Notify();
        }
    }

    /// <summary>The ring request a taken event came from.</summary>
    public static VmEventSt RequestOf(VmiPendingEvent pending) => Request(pending);

    /// <summary>Answers a taken event with Continue: nobody answered it.</summary>
    public void Release(VmiPendingEvent pending, bool notify = true)
    {
        ArgumentNullException.ThrowIfNull(pending);
        VmEventSt request = Request(pending);
        if (!_outstanding.Contains(pending) || !pending.TryMarkAnswered())
        {
            return;
        }

        Put(pending, VmEventTranslator.ContinueResponse(request));
        if (notify)
        {
            Ring.Notify();
        }
    }

    /// <summary>Handles every waiting request (and those that arrive meanwhile); returns how many were handled.</summary>
    public int Process(VmiEventHandler handler, CancellationToken cancellationToken = default) =>
        Process(handler, int.MaxValue, cancellationToken);

    /// <summary>
    /// Takes and answers waiting requests one at a time (and those that arrive meanwhile), at most
    /// <paramref name="maxEvents"/>; the rest stay unconsumed. If the handler throws, its event is released and the
    /// exception rethrown. Xen is kicked once per batch. Returns how many were handled.
    /// </summary>
    public int Process(VmiEventHandler handler, int maxEvents, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        int handled = 0;
        bool answered = false;
        try
        {
            while (handled < maxEvents && !cancellationToken.IsCancellationRequested)
            {
                IReadOnlyList<VmiPendingEvent> one = Take(1);
                if (one.Count == 0)
                {
                    break;
                }

                answered = true;
                VmiPendingEvent pending = one[0];
                try
                {
                    Answer(pending, handler(pending.Event) ?? VmiEventResponse.Continue, notify: false);
                }
                finally
                {
                    Release(pending, notify: false);
                }

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

    /// <summary>Answers every outstanding event and every waiting request with "continue" (teardown: no vCPU may stay paused). Returns how many.</summary>
    public int DrainAndContinue()
    {
        int n = 0;
        try
        {
            foreach (VmiPendingEvent pending in _outstanding.ToArray())
            {
                if (pending.TryMarkAnswered())
                {
                    Put(pending, VmEventTranslator.ContinueResponse(Request(pending)));
                    n++;
                }
            }

            _outstanding.Clear();
            while (_backlog.Count > 0)
            {
                VmEventSt request = _backlog.Dequeue();
                Ring.PutResponse(request.Version == VmEventAbi.InterfaceVersion ? VmEventTranslator.ContinueResponse(request) : VmEventTranslator.MismatchResponse(request));
                n++;
            }

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

    private void Put(VmiPendingEvent pending, in VmEventSt response)
    {
        _outstanding.Remove(pending);
        Ring.PutResponse(response);
    }

    private static VmEventSt Request(VmiPendingEvent pending) =>
        (pending.DriverState as RequestBox ?? throw new ArgumentException("The event was not taken from this Xen ring.", nameof(pending))).Request;

    /// <summary>The ring request an event came from (a struct, boxed once).</summary>
    private sealed class RequestBox(VmEventSt request)
    {
        public VmEventSt Request { get; } = request;
    }
}
