using Vmi.Core;
using Vmi.Mock;

namespace Vmi.Os.Linux.Tests;

/// <summary>The Linux layer over the guest object (<see cref="GuestObjectMemory"/>): one guest call per read, any thread.</summary>
public sealed class GuestObjectMemoryTests
{
    [Fact]
    public async Task Process_lists_read_through_the_guest_from_many_threads_agree_while_another_thread_flushes_its_caches()
    {
        List<(int, int, string)> expected;
        using (var core = new VmiCore(DemoGuest.Create()))
        {
            expected = LinuxKernel.Open(new CoreGuestMemory(core)).GetProcesses().Select(p => (p.Pid, p.Ppid, p.Name)).ToList();
        }

        using var guest = new VmiGuest(DemoGuest.Create(), new VmiGuestOptions { CacheCapacity = 16 }); // small caches: evictions too
        LinuxKernel kernel = LinuxKernel.Open(new GuestObjectMemory(guest));
        Assert.Equal(expected, kernel.GetProcesses().Select(p => (p.Pid, p.Ppid, p.Name)).ToList());

        using var stop = new CancellationTokenSource();
        Task flusher = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                guest.FlushGfnCache(); // each drops the pages (and mappings) another thread's walk may be using
                guest.FlushV2PCache();
            }
        }, TaskCreationOptions.LongRunning);
        List<(int, int, string)>[][] lists = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Factory.StartNew(
            () => Enumerable.Range(0, 10).Select(_ => kernel.GetProcesses().Select(p => (p.Pid, p.Ppid, p.Name)).ToList()).ToArray(),
            TaskCreationOptions.LongRunning)));
        stop.Cancel();
        await flusher.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(lists.SelectMany(l => l), l => Assert.Equal(expected, l));
    }

    [Fact]
    public void A_closed_guest_is_an_error_not_an_empty_process_list()
    {
        var guest = new VmiGuest(DemoGuest.Create());
        LinuxKernel kernel = LinuxKernel.Open(new GuestObjectMemory(guest));
        Assert.NotEmpty(kernel.GetProcesses());
        guest.Close();
        Assert.Throws<GuestClosedException>(() => kernel.GetProcesses().ToList());
    }
}
