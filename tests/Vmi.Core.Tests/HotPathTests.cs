namespace Vmi.Core.Tests;

/// <summary>
/// The hot-path shortcuts behave exactly as the plain structures would: a flush that clears only live entries, the
/// page front in front of the page cache, and the V2P flush that clears only the walk shortcuts in use.
/// </summary>
public class HotPathTests
{
    [Theory]
    [InlineData(8, 0)]
    [InlineData(8, 1)]
    [InlineData(8, 8)]
    [InlineData(100, 3)]
    [InlineData(100, 20)] // more than an eighth live: the full sweep
    [InlineData(1024, 1)]
    [InlineData(1024, 136)] // the boundary of the per-entry clear
    [InlineData(1024, 137)]
    [InlineData(1024, 1024)]
    public void Clear_at_any_fill_leaves_a_cache_that_behaves_as_new(int capacity, int live)
    {
        var released = new List<ulong>();
        var cache = new LruCache<ulong, ulong>("c", capacity, released.Add);
        var rng = new Random(capacity * 31 + live);

        // Keys that collide in the index (multiples of a large power of two) and small ones, some removed again.
        var keys = new HashSet<ulong>();
        while (keys.Count < live)
        {
            keys.Add(rng.Next(2) == 0 ? (ulong)rng.Next(1 << 16) : (ulong)rng.Next(1 << 10) << 24);
        }

        foreach (ulong k in keys)
        {
            cache.Add(k, k * 7);
        }

        ulong[] removed = keys.Where((_, i) => i % 5 == 4).ToArray();
        foreach (ulong k in removed)
        {
            Assert.True(cache.Remove(k));
        }

        released.Clear();
        int before = cache.Count;
        cache.Clear();
        Assert.Equal(before, released.Count); // every live value released exactly once
        Assert.Equal(keys.Except(removed).Select(k => k * 7).Order(), released.Order());
        Assert.Equal(0, cache.Count);
        Assert.Empty(cache.KeysByRecency());
        foreach (ulong k in keys)
        {
            Assert.False(cache.TryPeek(k, out _));
        }

        // Refill past capacity: evictions in LRU order, every key found with its new value.
        var order = new LinkedList<ulong>();
        for (int i = 0; i < capacity + 5; i++)
        {
            ulong k = keys.Count > 0 && i % 3 == 0 ? keys.ElementAt(i % keys.Count) : (ulong)(1 << 20) + (ulong)i;
            if (order.Contains(k))
            {
                continue;
            }

            cache.Add(k, k + 1);
            order.AddFirst(k);
            if (order.Count > capacity)
            {
                order.RemoveLast();
            }
        }

        Assert.Equal(order, cache.KeysByRecency());
        foreach (ulong k in order)
        {
            Assert.True(cache.TryPeek(k, out ulong v));
            Assert.Equal(k + 1, v);
        }
    }

    [Theory]
    [InlineData(1, 16)]
    [InlineData(2, 200)]
    [InlineData(3, 1000)]
    public void Random_operations_with_clears_agree_with_a_model(int seed, int capacity)
    {
        var rng = new Random(seed);
        var cache = new LruCache<ulong, ulong>("s", capacity);
        var order = new LinkedList<ulong>();
        var nodes = new Dictionary<ulong, LinkedListNode<ulong>>();
        for (int step = 0; step < 30000; step++)
        {
            ulong key = rng.Next(2) == 0 ? (ulong)rng.Next(capacity * 2) : (ulong)rng.Next(capacity * 2) << 20;
            int op = rng.Next(100);
            if (op < 45)
            {
                bool hit = cache.TryGet(key, out ulong v);
                Assert.Equal(nodes.ContainsKey(key), hit);
                if (hit)
                {
                    Assert.Equal(key ^ 0x55, v);
                    order.Remove(nodes[key]);
                    order.AddFirst(nodes[key]);
                }
            }
            else if (op < 85)
            {
                if (nodes.TryGetValue(key, out LinkedListNode<ulong>? n))
                {
                    order.Remove(n);
                    order.AddFirst(n);
                }
                else
                {
                    if (nodes.Count >= capacity)
                    {
                        nodes.Remove(order.Last!.Value);
                        order.RemoveLast();
                    }

                    nodes[key] = order.AddFirst(key);
                }

                cache.Add(key, key ^ 0x55);
            }
            else if (op < 99)
            {
                Assert.Equal(nodes.Remove(key, out LinkedListNode<ulong>? n), cache.Remove(key));
                if (n is not null)
                {
                    order.Remove(n);
                }
            }
            else
            {
                cache.Clear();
                nodes.Clear();
                order.Clear();
            }

            Assert.Equal(nodes.Count, cache.Count);
        }

        Assert.Equal(order, cache.KeysByRecency());
    }

    private static (SparseDriver Mem, PageTableBuilder Pt, VmiCore Core) Guest(PageKind pages, int capacity = VmiCore.DefaultCacheCapacity)
    {
        var mem = new SparseDriver { Pages = pages };
        var pt = new PageTableBuilder(mem, PagingMode.Ia32e);
        return (mem, pt, new VmiCore(mem, capacity) { PagingMode = PagingMode.Ia32e });
    }

    [Fact]
    public void A_full_flush_forgets_the_walk_shortcuts_of_every_region()
    {
        var (mem, pt, core) = Guest(PageKind.Pointer);
        using (core)
        {
            // 200 pages, each in its own 2 MiB region (all 64 shortcut slots in use), translated once.
            ulong[] vas = Enumerable.Range(0, 200).Select(i => 0x7f00_0000_0000UL + ((ulong)i << 21) + 0x3000).ToArray();
            for (int i = 0; i < vas.Length; i++)
            {
                pt.Map(vas[i], 0x100_0000UL + ((ulong)i << 12));
            }

            foreach (ulong va in vas)
            {
                Assert.True(core.TryTranslateAddress(new AddressContext(new Va(va), pt.RootPa)).Success);
            }

            // The guest takes every page directory entry away behind the engine's back; then the caller flushes.
            foreach (ulong va in vas)
            {
                pt.SetEntry(va, 2, 0);
            }

            core.FlushV2PCache();
            foreach (ulong va in vas)
            {
                TranslationResult r = core.TryTranslateAddress(new AddressContext(new Va(va), pt.RootPa));
                Assert.Equal(WalkFaultKind.NotPresent, r.Fault);
                Assert.Equal(PagingLevel.Pd, r.FaultLevel);
            }
        }
    }

    [Fact]
    public void Flush_then_translate_agrees_with_a_fresh_walk_on_random_addresses()
    {
        var (mem, pt, core) = Guest(PageKind.Pointer);
        using (core)
        {
            var rng = new Random(8);
            var vas = new List<ulong>();
            for (int i = 0; i < 300; i++)
            {
                ulong va = 0x5500_0000_0000UL + ((ulong)rng.Next(1 << 20) << 12);
                if (rng.Next(4) != 0)
                {
                    pt.Map(va, (ulong)rng.Next(1 << 20) << 12);
                }

                vas.Add(va);
            }

            using var reference = new VmiCore(mem) { PagingMode = PagingMode.Ia32e };
            reference.DisableV2PCache();
            foreach (ulong va in vas)
            {
                core.FlushV2PCache();
                var ctx = new AddressContext(new Va(va + 0x18), pt.RootPa);
                Assert.Equal(reference.TryTranslateAddress(ctx), core.TryTranslateAddress(ctx));
                Assert.Equal(reference.TryTranslateAddress(ctx), core.TryTranslateAddress(ctx)); // and from the cache
            }
        }
    }

    [Fact]
    public void A_write_drops_a_copied_page_from_the_front_too()
    {
        // Copied pages are not live: a write must drop the cached copy, including the page front's reference to it.
        var (mem, pt, core) = Guest(PageKind.Copy);
        using (core)
        {
            var ctx = AccessContext.Direct(new Pa(0x5008));
            mem.PokeU64(0x5008, 0x1111);
            Assert.Equal(0x1111UL, core.ReadU64(ctx));
            Assert.Equal(0x1111UL, core.ReadU64(ctx)); // a front hit
            core.WriteU64(ctx, 0x2222);
            Assert.Equal(0x2222UL, core.ReadU64(ctx));
            core.FlushGfnCacheEntry(new Gfn(5));
            mem.PokeU64(0x5008, 0x3333);
            Assert.Equal(0x3333UL, core.ReadU64(ctx));
        }
    }

    [Fact]
    public void Pages_hit_in_the_front_are_not_the_ones_evicted()
    {
        var (mem, _, core) = Guest(PageKind.Pointer, capacity: 4);
        using (core)
        {
            for (ulong f = 0x10; f < 0x14; f++)
            {
                mem.PokeU64(f << 12, f);
                core.ReadU64(AccessContext.Direct(new Pa(f << 12)));
            }

            // 0x10 and 0x11 are used again (page-front hits); 0x12 is now the least recently used page.
            Assert.Equal(0x10UL, core.ReadU64(AccessContext.Direct(new Pa(0x10 << 12))));
            Assert.Equal(0x11UL, core.ReadU64(AccessContext.Direct(new Pa(0x11 << 12))));
            Assert.Equal(0x10UL, core.ReadU64(AccessContext.Direct(new Pa(0x10 << 12))));
            mem.PokeU64(0x20 << 12, 0x20);
            core.ReadU64(AccessContext.Direct(new Pa(0x20 << 12))); // evicts one page
            int maps = mem.MapCalls;
            foreach (ulong f in new ulong[] { 0x10, 0x11, 0x13, 0x20 })
            {
                Assert.Equal(f, core.ReadU64(AccessContext.Direct(new Pa(f << 12))));
            }

            Assert.Equal(maps, mem.MapCalls); // none of them was evicted
            Assert.Equal(0x12UL, core.ReadU64(AccessContext.Direct(new Pa(0x12 << 12))));
            Assert.Equal(maps + 1, mem.MapCalls);
            Assert.Equal(4, mem.LivePages); // evicted mappings were released, none twice
            Assert.Equal(4, core.GfnCacheStatistics.Count);
        }

        Assert.Equal(0, mem.LivePages);
    }

    [Fact]
    public void Front_hits_count_as_page_cache_hits()
    {
        var (mem, _, core) = Guest(PageKind.Pointer);
        using (core)
        {
            mem.PokeU64(0x7000, 1);
            core.ReadU64(AccessContext.Direct(new Pa(0x7000)));
            core.ResetCacheStatistics();
            for (int i = 0; i < 25; i++)
            {
                core.ReadU64(AccessContext.Direct(new Pa(0x7000 + (ulong)(i * 8))));
            }

            Assert.Equal(25, core.GfnCacheStatistics.Hits);
            Assert.Equal(0, core.GfnCacheStatistics.Misses);
        }
    }
}
