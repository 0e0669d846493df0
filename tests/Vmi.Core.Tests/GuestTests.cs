using System.Diagnostics.CodeAnalysis;
using Vmi.Core.Search;
using Vmi.Core.Tests.Infrastructure;

namespace Vmi.Core.Tests;

/// <summary>The guest object's contract: one lock, read-only by construction, two-phase events, close once.</summary>
public sealed class GuestTests
{
    private static readonly VmiEvent Cpuid = new(new VcpuId(0), View.Default, VmiEventFlags.VcpuPaused, new Registers(), new CpuidReason(1, 0, 2));

    [Fact]
    public void A_read_only_guest_has_only_the_query_capabilities_and_refuses_every_change_with_one_error()
    {
        var driver = new FullDriver();
        driver.Poke(0x1000, [1, 2, 3, 4]);
        using var guest = new VmiGuest(driver, new VmiGuestOptions { ReadOnly = true });

        Assert.Equal([VmiCapability.Read, VmiCapability.QueryProtection, VmiCapability.QueryRegisters], guest.Capabilities);
        Assert.Equal(0x0403_0201u, guest.ReadU32(AccessContext.Direct(new Pa(0x1000))));
        Assert.Equal(MemoryAccess.RWX, guest.GetMemoryAccess(new Gfn(1), View.Default));
        _ = guest.GetRegisters(new VcpuId(0));

        var refused = new (Action Call, VmiCapability Capability)[]
        {
            (() => guest.Write(AccessContext.Direct(new Pa(0x1000)), [9]), VmiCapability.Write),
            (() => guest.SetRegisters(new VcpuId(0), new Registers()), VmiCapability.SetRegisters),
            (() => guest.UpdateRegisters(new VcpuId(0), r => r with { Rax = 1 }), VmiCapability.SetRegisters),
            (() => guest.SetMemoryAccess(new Gfn(1), 1, View.Default, MemoryAccess.R), VmiCapability.SetProtection),
            (() => guest.CreateView(MemoryAccess.RWX), VmiCapability.ViewControl),
            (() => guest.EnableMonitor(EventMonitor.Cpuid), VmiCapability.EventControl),
            (() => guest.TakeEvents(TimeSpan.Zero, 1), VmiCapability.EventControl),
            (guest.Pause, VmiCapability.VmControl),
            (() => guest.FreeGfn(new Gfn(1)), VmiCapability.VmControl),
        };
        foreach ((Action call, VmiCapability capability) in refused)
        {
            GuestReadOnlyException e = Assert.Throws<GuestReadOnlyException>(call);
            Assert.Equal(capability, e.Capability);
            Assert.Contains("read-only", e.Message, StringComparison.Ordinal);
        }

        Assert.Equal([1, 2, 3, 4], driver.Peek(0x1000, 4)); // nothing reached the driver
        Assert.Equal(0, driver.WriteCalls);
        Assert.Equal(0, driver.Pauses);
        Assert.Empty(driver.EnabledMonitors);
    }

    [Fact]
    public void A_capability_the_driver_lacks_is_unsupported_not_read_only()
    {
        using var guest = new VmiGuest(new BareDriver(), new VmiGuestOptions { ReadOnly = true });
        Assert.Empty(guest.Capabilities);
        Assert.Throws<CapabilityNotSupportedException>(() => guest.GetRegisters(new VcpuId(0)));
        Assert.Throws<CapabilityNotSupportedException>(() => guest.Write(AccessContext.Direct(new Pa(0)), [1]));
    }

    [Fact]
    public void Events_are_taken_then_answered_once_and_closing_releases_the_rest()
    {
        var driver = new FullDriver();
        driver.Queue.AddRange([Cpuid, Cpuid with { Vcpu = new VcpuId(1) }]);
        var guest = new VmiGuest(driver);
        IReadOnlyList<VmiPendingEvent> taken = guest.TakeEvents(TimeSpan.Zero, 8);
        Assert.Equal(2, taken.Count);
        Assert.Empty(driver.Responses); // taken: nothing answered yet

        Assert.True(guest.Answer(taken[0], VmiEventResponse.Deny));
        Assert.False(guest.Answer(taken[0], VmiEventResponse.Continue)); // once
        Assert.Throws<ArgumentException>(() => guest.Answer(taken[1], new VmiEventResponse(VmiEventResponseFlags.ToggleFastSinglestep)));
        Assert.Equal([VmiEventResponse.Deny, VmiEventResponse.Continue], driver.Responses); // the invalid answer released its event

        driver.Queue.Add(Cpuid);
        VmiPendingEvent left = Assert.Single(guest.TakeEvents(TimeSpan.Zero, 8));
        Assert.True(guest.Close());
        Assert.False(guest.Answer(left, VmiEventResponse.Deny)); // the close released it first
        Assert.Equal(3, driver.Responses.Count);
        Assert.Equal(VmiEventResponse.Continue, driver.Responses[2]);
        Assert.Equal(1, driver.ResetCalls);
        Assert.True(driver.Disposed);
    }

    [Fact]
    public void An_answer_naming_a_view_that_does_not_exist_releases_the_event()
    {
        var driver = new FullDriver();
        driver.Queue.Add(Cpuid);
        using var guest = new VmiGuest(driver);
        VmiPendingEvent e = Assert.Single(guest.TakeEvents(TimeSpan.Zero, 1));
        Assert.Throws<ViewNotFoundException>(() => guest.Answer(e, VmiEventResponse.SwitchView(new View(7))));
        Assert.Equal([VmiEventResponse.Continue], driver.Responses);
    }

    [Fact]
    public async Task Close_runs_once_from_many_threads_and_wakes_a_wait_for_events()
    {
        var driver = new BlockingEventsDriver();
        var guest = new VmiGuest(driver);
        Task<IReadOnlyList<VmiPendingEvent>> waiting = Task.Factory.StartNew(() => guest.TakeEvents(Timeout.InfiniteTimeSpan, 1), TaskCreationOptions.LongRunning);
        Assert.True(driver.Waiting.Wait(TimeSpan.FromSeconds(30)), "the wait never reached the driver");

        using var start = new Barrier(8);
        bool[] results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            return guest.Close();
        }, TaskCreationOptions.LongRunning)));

        Assert.All(results, Assert.True);
        await Assert.ThrowsAsync<GuestClosedException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(30))); // woken, not left blocked in a closed driver
        Assert.Equal(1, driver.ResetCalls);
        Assert.Equal(1, driver.DisposeCalls);
        Assert.False(driver.WaitingAfterDispose);
        Assert.Throws<GuestClosedException>(() => guest.ReadU8(AccessContext.Direct(new Pa(0))));
        guest.Dispose(); // and again: nothing happens, nothing throws
        Assert.Equal(1, driver.DisposeCalls);
    }

    [Fact]
    public async Task No_two_calls_ever_reach_the_driver_at_once()
    {
        const int threads = 8;
        const int iterations = 2000;
        var driver = new ProbeDriver();
        for (ulong p = 0; p < threads; p++)
        {
            driver.Poke(p * 0x1000, new byte[8]);
        }

        using var guest = new VmiGuest(driver, new VmiGuestOptions { CacheCapacity = 4 }); // small caches: evictions too
        await Task.WhenAll(Enumerable.Range(0, threads).Select(t => Task.Factory.StartNew(() =>
        {
            var rng = new Random(t + 1);
            var ctx = AccessContext.Direct(new Pa((ulong)t * 0x1000));
            for (int i = 0; i < iterations; i++)
            {
                switch (rng.Next(5))
                {
                    case 0:
                        ulong value = (ulong)rng.NextInt64();
                        guest.Write(ctx, BitConverter.GetBytes(value));
                        Assert.Equal(value, guest.ReadU64(ctx)); // this thread's page: nobody else writes it
                        break;
                    case 1:
                        _ = guest.ReadU64(AccessContext.Direct(new Pa((ulong)rng.Next(threads) * 0x1000)));
                        break;
                    case 2:
                        guest.UpdateRegisters(new VcpuId((ushort)(t & 1)), r => r with { Rax = r.Rax + 1 });
                        break;
                    case 3:
                        _ = guest.Search(AccessContext.Direct(new Pa(0)), threads * 0x1000UL, BytePattern.FromBytes([0xFF, 0xFE, 0xFD])).Count();
                        break;
                    default:
                        guest.FlushGfnCache();
                        break;
                }
            }
        }, TaskCreationOptions.LongRunning)));

        Assert.Equal(0, driver.Overlaps);
        Assert.True(driver.Calls > threads * iterations);
    }

    [Fact]
    public void Search_streams_hits_across_pages_and_skips_unreadable_ones()
    {
        var driver = new FullDriver();
        driver.Poke(0x1FFE, [0xAB, 0xCD]); // a hit across the page boundary
        driver.Poke(0x2000, [0xEF]);
        driver.Poke(0x5000, [0xAB, 0xCD, 0xEF]); // after a hole (0x3000, 0x4000 have no frames)
        using var guest = new VmiGuest(driver);
        var progress = new List<VmiProgress>();
        SearchHit[] hits = guest.Search(AccessContext.Direct(new Pa(0x1000)), 0x5000, BytePattern.Parse("ab cd ef"), progress: new SyncProgress(progress.Add)).ToArray();
        Assert.Equal([0x1FFEUL, 0x5000UL], hits.Select(h => h.Address));
        Assert.All(hits, h => Assert.Equal(new byte[] { 0xAB, 0xCD, 0xEF }, h.Bytes));
        Assert.Equal(new VmiProgress(0x5000, 0x5000), progress[^1]);

        Assert.Single(guest.Search(AccessContext.Direct(new Pa(0x1000)), 0x5000, BytePattern.Parse("ab cd ef"), maxHits: 1));
    }

    [Fact]
    public void Chunked_reads_zero_fill_and_say_which_pages_they_filled()
    {
        var driver = new FullDriver();
        driver.Poke(0x1000, [1]);
        driver.Poke(0x3000, [3]);
        using var guest = new VmiGuest(driver);
        MemoryChunk[] chunks = guest.ReadChunks(AccessContext.Direct(new Pa(0x1000)), 0x3000, 0x2000, zeroFill: true).ToArray();
        Assert.Equal([0x1000UL, 0x3000UL], chunks.Select(c => c.Address));
        Assert.Equal([0x2000UL], chunks[0].ZeroFilledPages);
        Assert.Empty(chunks[1].ZeroFilledPages);
        Assert.Equal(1, chunks[0].Data[0]);
        Assert.Equal(3, chunks[1].Data[0]);
        Assert.Throws<GfnNotPresentException>(() => guest.ReadChunks(AccessContext.Direct(new Pa(0x1000)), 0x3000, 0x2000, zeroFill: false).ToArray());
    }

    [Fact]
    public void A_virtual_address_without_a_root_on_a_driver_without_registers_says_what_to_give()
    {
        using var guest = new VmiGuest(new SparseDriver());
        NoTranslationRootException e = Assert.Throws<NoTranslationRootException>(() => guest.ContextFor(AddressSpace.Virtual(), 0x1000));
        Assert.Contains("CR3", e.Message, StringComparison.Ordinal);
        Assert.Equal(new Pa(0x5000), guest.ContextFor(AddressSpace.Virtual(cr3: 0x5fff), 0x1000).Mechanism.Root);
        Assert.Null(guest.ContextFor(AddressSpace.Physical, 0x1000).Mechanism.Root);
    }

    private sealed class SyncProgress(Action<VmiProgress> report) : IProgress<VmiProgress>
    {
        public void Report(VmiProgress value) => report(value);
    }

    /// <summary>Counts calls that overlap: a driver that is not thread-safe, guarded only by the guest.</summary>
    private sealed class ProbeDriver : FullDriver, IVmiQueryRegisters, IVmiSetRegisters
    {
        private int _inside;

        public int Overlaps { get; private set; }

        public int Calls { get; private set; }

        public override bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
        {
            Enter();
            try
            {
                return base.TryMapPage(gfn, out page);
            }
            finally
            {
                Exit();
            }
        }

        public override void WritePage(Gfn gfn, int offset, ReadOnlySpan<byte> data)
        {
            Enter();
            try
            {
                base.WritePage(gfn, offset, data);
            }
            finally
            {
                Exit();
            }
        }

        Registers IVmiQueryRegisters.GetRegisters(VcpuId vcpu)
        {
            Enter();
            try
            {
                return GetRegisters(vcpu);
            }
            finally
            {
                Exit();
            }
        }

        void IVmiSetRegisters.SetRegisters(VcpuId vcpu, Registers registers)
        {
            Enter();
            try
            {
                SetRegisters(vcpu, registers);
            }
            finally
            {
                Exit();
            }
        }

        private void Enter()
        {
            if (Interlocked.Increment(ref _inside) != 1)
            {
                Overlaps++;
            }

            Calls++;
            Thread.Yield(); // widen the window another thread would need
        }

        private void Exit() => Interlocked.Decrement(ref _inside);
    }

    /// <summary>Events that never come: a wait blocks in the driver until cancelled.</summary>
    private sealed class BlockingEventsDriver : IVmiDriver, IVmiRead, IVmiEventControl, IVmiVmControl
    {
        private int _disposed;

        public ManualResetEventSlim Waiting { get; } = new();

        public int ResetCalls;

        public int DisposeCalls;

        public bool WaitingAfterDispose { get; private set; }

        public string Name => "Blocking";

        public VmiInfo Info { get; } = new(4096, 12, new Gfn(0xFF), 1);

        public IReadOnlyCollection<EventMonitor> EnabledMonitors => [];

        public int EventsPending => 0;

        public bool TryMapPage(Gfn gfn, [NotNullWhen(true)] out MappedPage? page)
        {
            page = new MappedPage(gfn, new byte[4096]);
            return true;
        }

        public void EnableMonitor(EventMonitor monitor)
        {
        }

        public void DisableMonitor(EventMonitor monitor)
        {
        }

        public bool WaitForPending(TimeSpan timeout, CancellationToken cancellationToken = default)
        {
            Waiting.Set();
            cancellationToken.WaitHandle.WaitOne(timeout);
            WaitingAfterDispose |= Volatile.Read(ref _disposed) != 0;
            return false;
        }

        public IReadOnlyList<VmiPendingEvent> TakeEvents(int maxEvents) => [];

        public void Answer(VmiPendingEvent pending, VmiEventResponse response)
        {
        }

        public void Release(VmiPendingEvent pending)
        {
        }

        public void Pause()
        {
        }

        public void Resume()
        {
        }

        public Gfn AllocateGfn() => new(0);

        public void AllocateGfn(Gfn gfn)
        {
        }

        public void FreeGfn(Gfn gfn)
        {
        }

        public void InjectInterrupt(VcpuId vcpu, Interrupt interrupt)
        {
        }

        public void ResetState() => Interlocked.Increment(ref ResetCalls);

        public void Dispose()
        {
            Interlocked.Increment(ref DisposeCalls);
            Volatile.Write(ref _disposed, 1);
            Waiting.Dispose();
        }
    }

    [Fact]
    public async Task An_acquisition_has_the_guest_to_itself_paused_and_resumed_on_every_way_out()
    {
        var driver = new FullDriver();
        driver.Poke(0x1000, [7]);
        using var guest = new VmiGuest(driver);
        Task<byte>? other = null;
        int result = guest.Acquire((core, token) =>
        {
            Assert.Equal(1, driver.Pauses - driver.Resumes); // paused for the call
            other = Task.Factory.StartNew(() => guest.ReadU8(AccessContext.Direct(new Pa(0x1000))), TaskCreationOptions.LongRunning);
            Assert.False(other.Wait(TimeSpan.FromMilliseconds(200)), "another thread's read ran in the middle of the acquisition");
            return core.ReadU8(AccessContext.Direct(new Pa(0x1000)));
        }, pause: true);
        Assert.Equal(7, result);
        Assert.Equal(7, await other!.WaitAsync(TimeSpan.FromSeconds(30))); // it ran once the acquisition was done
        Assert.Equal(driver.Pauses, driver.Resumes);

        Assert.Throws<InvalidDataException>(() => guest.Acquire<int>((_, _) => throw new InvalidDataException("the writer failed"), pause: true));
        Assert.Equal(2, driver.Pauses);
        Assert.Equal(driver.Pauses, driver.Resumes); // resumed after a failure too
    }

    [Fact]
    public async Task A_close_from_another_thread_stops_an_acquisition_instead_of_waiting_for_it()
    {
        var driver = new FullDriver();
        driver.Poke(0, [1]);
        var guest = new VmiGuest(driver);
        using var inside = new ManualResetEventSlim();
        Task<int> acquiring = Task.Factory.StartNew(() => guest.Acquire((core, token) =>
        {
            inside.Set();
            while (true)
            {
                token.ThrowIfCancellationRequested(); // a writer checks its token between pages
                core.ReadU8(AccessContext.Direct(new Pa(0)));
                Thread.Sleep(1);
            }
#pragma warning disable CS0162 // unreachable: the loop ends by cancellation
            return 0;
#pragma warning restore CS0162
        }, pause: true), TaskCreationOptions.LongRunning);
        Assert.True(inside.Wait(TimeSpan.FromSeconds(30)), "the acquisition never started");

        Assert.True(await Task.Factory.StartNew(() => guest.Close(), TaskCreationOptions.LongRunning).WaitAsync(TimeSpan.FromSeconds(60)));
        await Assert.ThrowsAsync<GuestClosedException>(() => acquiring.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(driver.Pauses, driver.Resumes);
        Assert.Equal(1, driver.ResetCalls);
        Assert.Throws<GuestClosedException>(() => guest.Acquire((_, _) => 0));
    }

    [Fact]
    public void An_acquisition_cancelled_by_its_caller_is_an_OperationCanceledException()
    {
        using var guest = new VmiGuest(new FullDriver());
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        bool ran = false;
        Assert.ThrowsAny<OperationCanceledException>(() => guest.Acquire((_, _) => ran = true, cancellationToken: cts.Token));
        Assert.False(ran);
        Assert.Equal(5, guest.Acquire((_, _) => 5)); // the guest goes on
    }
}
