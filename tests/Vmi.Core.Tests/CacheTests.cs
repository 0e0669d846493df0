namespace Vmi.Core.Tests;

public class LruCacheTests
{
    [Fact]
    public void Evicts_the_least_recently_used_and_counts()
    {
        var removed = new List<string>();
        var c = new LruCache<ulong, string>("t", 3, removed.Add);
        c.Add(1, "a");
        c.Add(2, "b");
        c.Add(3, "c");
        Assert.True(c.TryGet(1, out string? v));
        Assert.Equal("a", v);
        c.Add(4, "d"); // 2 is now the least recently used
        Assert.Equal(["b"], removed);
        Assert.False(c.TryGet(2, out _));
        Assert.Equal([4UL, 1, 3], c.KeysByRecency());
        Assert.Equal(1, c.Hits);
        Assert.Equal(1, c.Misses);
        Assert.Equal(1, c.Evictions);
        Assert.Equal(3, c.Count);
    }

    /// <summary>Issue 10: a budget of 16 Mi entries once allocated 1.15 GB per session up front; memory now grows with the entries.</summary>
    [Fact]
    public void A_large_budget_costs_memory_only_as_it_fills()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var c = new LruCache<ulong, ulong>("t", LruCache<ulong, ulong>.MaxCapacity);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "a cache allocated its whole budget up front");
        Assert.Equal(LruCache<ulong, ulong>.MaxCapacity, c.Capacity);
        Assert.Equal(LruCache<ulong, ulong>.InitialAllocation, c.Allocated);
    }

    [Fact]
    public void Growing_keeps_every_entry_and_its_recency_and_evicts_only_at_the_budget()
    {
        const int Budget = 5000; // grows 1024 -> 2048 -> 4096 -> 5000
        var removed = new List<ulong>();
        var c = new LruCache<ulong, ulong>("t", Budget, removed.Add);
        for (ulong k = 0; k < Budget; k++)
        {
            c.Add(k * 4096, k);
            Assert.True(c.TryGet(k / 2 * 4096, out ulong v) && v == k / 2); // a hit on an older entry while growing
        }

        Assert.Equal(Budget, c.Allocated);
        Assert.Empty(removed);
        for (ulong k = 0; k < Budget; k++)
        {
            Assert.True(c.TryGet(k * 4096, out ulong v), $"entry {k} was lost while growing");
            Assert.Equal(k, v);
        }

        c.Add(Budget * 4096UL, Budget); // full: the least recently used (entry 0, touched first above) goes
        Assert.Equal([0UL], removed);
        Assert.Equal(Budget, c.Count);
        Assert.Equal(Budget, c.Allocated);
        Assert.Equal(Budget * 4096UL, c.KeysByRecency().First());
    }

    [Fact]
    public void A_hit_moves_the_entry_to_the_front()
    {
        var c = new LruCache<ulong, int>("t", 4);
        for (ulong k = 1; k <= 4; k++)
        {
            c.Add(k, (int)k);
        }

        Assert.True(c.TryGet(2, out _));
        Assert.True(c.TryGet(2, out _)); // the most-recent fast path
        Assert.True(c.TryGet(4, out _));
        Assert.Equal([4UL, 2, 3, 1], c.KeysByRecency());
        Assert.Equal(3, c.Hits);
    }

    [Fact]
    public void Replacing_a_value_releases_the_old_one()
    {
        var removed = new List<string>();
        var c = new LruCache<ulong, string>("t", 2, removed.Add);
        c.Add(1, "a");
        c.Add(1, "b");
        Assert.Equal(["a"], removed);
        Assert.Equal(1, c.Count);
        Assert.True(c.TryGet(1, out string? v));
        Assert.Equal("b", v);
    }

    [Fact]
    public void Shrinking_evicts_least_recent_first_and_keeps_order()
    {
        var removed = new List<int>();
        var c = new LruCache<ulong, int>("t", 5, removed.Add);
        for (ulong k = 1; k <= 5; k++)
        {
            c.Add(k, (int)k);
        }

        Assert.True(c.TryGet(1, out _));
        c.Resize(2);
        Assert.Equal([2, 3, 4], removed);
        Assert.Equal([1UL, 5], c.KeysByRecency());
        Assert.Equal(3, c.Evictions);
        Assert.Equal(2, c.Capacity);
        c.Add(6, 6);
        Assert.Equal([6UL, 1], c.KeysByRecency());
        c.Resize(10);
        for (ulong k = 20; k < 28; k++)
        {
            c.Add(k, 0);
        }

        Assert.Equal(10, c.Count);
    }

    [Fact]
    public void Remove_and_clear_release_and_slots_are_reused()
    {
        var removed = new List<int>();
        var c = new LruCache<ulong, int>("t", 3, removed.Add);
        c.Add(1, 1);
        c.Add(2, 2);
        Assert.True(c.Remove(1));
        Assert.False(c.Remove(1));
        Assert.Equal([1], removed);
        for (ulong k = 10; k < 100; k++)
        {
            c.Add(k, (int)k);
        }

        Assert.Equal(3, c.Count);
        Assert.Equal([99UL, 98, 97], c.KeysByRecency());
        c.Clear();
        Assert.Equal(0, c.Count);
        Assert.Empty(c.KeysByRecency());
        Assert.False(c.TryGet(99, out _));
        Assert.Contains(99, removed);
    }

    [Fact]
    public void A_bad_capacity_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LruCache<ulong, int>("t", 0));
        var c = new LruCache<ulong, int>("t", 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Resize(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.Resize(int.MaxValue));
    }
}

public class VmiCoreCacheTests
{
    private static (SparseDriver Mem, PageTableBuilder Pt, VmiCore Core) Guest(PageKind pages = PageKind.Array, int capacity = VmiCore.DefaultCacheCapacity)
    {
        var mem = new SparseDriver { Pages = pages };
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e);
        pt.MapRange(0x40_0000, 16 * 4096, 0x800);
        return (mem, pt, new VmiCore(mem, capacity) { PagingMode = PagingMode.Ia32e });
    }

    [Fact]
    public void Defaults_are_8192_entries_each_and_enabled()
    {
        using VmiCore core = Guest().Core;
        Assert.Equal(8192, core.GfnCacheStatistics.Capacity);
        Assert.Equal(8192, core.V2PCacheStatistics.Capacity);
        Assert.True(core.GfnCacheEnabled);
        Assert.True(core.V2PCacheEnabled);
    }

    [Fact]
    public void A_warm_read_hits_both_caches_and_maps_nothing()
    {
        var (mem, pt, core) = Guest();
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(0x40_0010), pt.RootPa);
            core.ReadU64(ctx);
            int maps = mem.MapCalls;
            core.ResetCacheStatistics();
            for (int i = 0; i < 10; i++)
            {
                core.ReadU64(ctx);
            }

            Assert.Equal(maps, mem.MapCalls);
            Assert.Equal(10, core.V2PCacheStatistics.Hits);
            Assert.Equal(0, core.V2PCacheStatistics.Misses);
            Assert.Equal(10, core.GfnCacheStatistics.Hits);
            Assert.Equal(0, core.GfnCacheStatistics.Misses);
            Assert.Equal(1.0, core.V2PCacheStatistics.HitRatio);
        }
    }

    [Fact]
    public void V2P_is_keyed_by_root_and_page_not_by_address()
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            core.TranslateAddress(new AddressContext(new Va(0x40_0010), pt.RootPa));
            core.TranslateAddress(new AddressContext(new Va(0x40_0ff8), pt.RootPa));
            Assert.Equal(1, core.V2PCacheStatistics.Misses);
            Assert.Equal(1, core.V2PCacheStatistics.Hits);
            Assert.Equal(1, core.V2PCacheStatistics.Count);

            // Another root is another address space, even for the same VA.
            var mem2 = new PageTableBuilder((SparseDriver)core.Driver, PagingMode.Ia32e, firstTableFrame: 0x300);
            mem2.Map(0x40_0000, 0x9_9000);
            Assert.Equal(new Pa(0x9_9010), core.TranslateAddress(new AddressContext(new Va(0x40_0010), mem2.RootPa)));
            Assert.Equal(2, core.V2PCacheStatistics.Misses);
        }
    }

    [Fact]
    public void A_cached_page_is_a_view_on_the_drivers_memory_not_a_copy()
    {
        foreach (PageKind kind in new[] { PageKind.Array, PageKind.Pointer })
        {
            var (mem, pt, core) = Guest(kind);
            using (core)
            {
                var ctx = AccessContext.Paging(new Va(0x40_0000), pt.RootPa);
                Assert.Equal(0UL, core.ReadU64(ctx));
                mem.PokeU64(0x80_0000, 0xfeed); // another vCPU writes; no flush
                Assert.Equal(0xfeedUL, core.ReadU64(ctx));
            }
        }
    }

    [Fact]
    public void Evicted_and_flushed_mappings_are_released()
    {
        var (mem, pt, core) = Guest(PageKind.Pointer, capacity: 4);
        using (core)
        {
            for (ulong p = 0; p < 16; p++)
            {
                core.ReadU8(AccessContext.Paging(new Va(0x40_0000 + (p * 4096)), pt.RootPa));
            }

            Assert.Equal(4, mem.LivePages); // the cache's budget, no more
            Assert.True(core.GfnCacheStatistics.Evictions > 0);
            core.FlushGfnCache();
            Assert.Equal(0, mem.LivePages);
            core.ReadU8(AccessContext.Direct(new Pa(0x80_0000)));
            core.DisableGfnCache();
            Assert.Equal(0, mem.LivePages);
            core.ReadU8(AccessContext.Direct(new Pa(0x80_0000)));
            Assert.Equal(0, mem.LivePages); // uncached pages go at once
        }

        Assert.Equal(0, mem.LivePages);
    }

    [Fact]
    public void Resizing_the_page_cache_keeps_the_most_recent_pages()
    {
        var (mem, _, core) = Guest();
        using (core)
        {
            for (ulong f = 0x800; f < 0x808; f++)
            {
                core.ReadU8(AccessContext.Direct(new Pa(f << 12)));
            }

            core.ReadU8(AccessContext.Direct(new Pa(0x800 << 12))); // 0x800 becomes most recent
            core.ResizeGfnCache(2);
            Assert.Equal(2, core.GfnCacheStatistics.Count);
            Assert.Equal(6, core.GfnCacheStatistics.Evictions);
            int maps = mem.MapCalls;
            core.ReadU8(AccessContext.Direct(new Pa(0x800 << 12)));
            core.ReadU8(AccessContext.Direct(new Pa(0x807 << 12)));
            Assert.Equal(maps, mem.MapCalls);
            core.ReadU8(AccessContext.Direct(new Pa(0x801 << 12)));
            Assert.Equal(maps + 1, mem.MapCalls);
        }
    }

    [Fact]
    public void Flushing_one_page_remaps_only_that_page()
    {
        var (mem, _, core) = Guest();
        using (core)
        {
            core.ReadU8(AccessContext.Direct(new Pa(0x800_000)));
            core.ReadU8(AccessContext.Direct(new Pa(0x801_000)));
            Assert.True(core.FlushGfnCacheEntry(new Gfn(0x800)));
            Assert.False(core.FlushGfnCacheEntry(new Gfn(0x800)));
            int maps = mem.MapCalls;
            core.ReadU8(AccessContext.Direct(new Pa(0x801_000)));
            Assert.Equal(maps, mem.MapCalls);
            core.ReadU8(AccessContext.Direct(new Pa(0x800_000)));
            Assert.Equal(maps + 1, mem.MapCalls);
        }
    }

    [Fact]
    public void A_disabled_page_cache_maps_every_time_and_can_be_enabled_again()
    {
        var (mem, _, core) = Guest();
        using (core)
        {
            core.DisableGfnCache();
            Assert.False(core.GfnCacheEnabled);
            int maps = mem.MapCalls;
            core.ReadU8(AccessContext.Direct(new Pa(0x800_000)));
            core.ReadU8(AccessContext.Direct(new Pa(0x800_000)));
            Assert.Equal(maps + 2, mem.MapCalls);
            Assert.Equal(0, core.GfnCacheStatistics.Count);
            core.EnableGfnCache();
            core.ReadU8(AccessContext.Direct(new Pa(0x800_000)));
            core.ReadU8(AccessContext.Direct(new Pa(0x800_000)));
            Assert.Equal(maps + 3, mem.MapCalls);
        }
    }

    [Fact]
    public void V2P_flush_one_flush_all_disable_resize()
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            var a = new AddressContext(new Va(0x40_0000), pt.RootPa);
            var b = new AddressContext(new Va(0x40_1000), pt.RootPa);
            core.TranslateAddress(a);
            core.TranslateAddress(b);
            Assert.Equal(2, core.V2PCacheStatistics.Count);
            Assert.True(core.FlushV2PCacheEntry(a with { Va = new Va(0x40_0123) })); // any address in the page
            Assert.Equal(1, core.V2PCacheStatistics.Count);
            core.FlushV2PCache();
            Assert.Equal(0, core.V2PCacheStatistics.Count);

            core.DisableV2PCache();
            core.TranslateAddress(a);
            core.TranslateAddress(a);
            Assert.Equal(0, core.V2PCacheStatistics.Count);
            core.EnableV2PCache();
            core.ResizeV2PCache(1);
            core.TranslateAddress(a);
            core.TranslateAddress(b);
            Assert.Equal(1, core.V2PCacheStatistics.Count);
            Assert.Equal(1, core.V2PCacheStatistics.Evictions);
        }
    }

    [Fact]
    public void Writes_do_not_disturb_the_counters()
    {
        var (_, pt, core) = Guest();
        using (core)
        {
            var ctx = AccessContext.Paging(new Va(0x40_0000), pt.RootPa);
            core.ReadU64(ctx);
            core.ResetCacheStatistics();
            core.WriteU64(ctx, 1);
            CacheStatistics g = core.GfnCacheStatistics;
            Assert.Equal(0, g.Hits + g.Misses);
        }
    }
}
