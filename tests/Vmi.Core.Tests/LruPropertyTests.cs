using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Vmi.Core.Tests;

/// <summary>The LRU cache against a list-based model over random operations (keys collide in the hint table on purpose).</summary>
public class LruPropertyTests
{
    public sealed record Op(int Kind, ulong Key, int Value)
    {
        public override string ToString() => Kind switch { 0 => $"get {Key}", 1 => $"add {Key}={Value}", 2 => $"addnew {Key}={Value}", 3 => $"remove {Key}", 4 => $"resize {Value}", _ => "clear" };
    }

    public static class Arbitraries
    {
        public static Arbitrary<Op[]> Ops() =>
            Gen.ArrayOf(
                from kind in Gen.Frequency((6, Gen.Constant(0)), (4, Gen.Constant(1)), (3, Gen.Constant(2)), (2, Gen.Constant(3)), (1, Gen.Constant(4)), (1, Gen.Constant(5)))
                from key in Gen.Frequency((3, Gen.Choose(0, 12)), (1, Gen.Choose(0, 4).Select(x => x * 256)))
                from value in Gen.Choose(1, 9)
                select new Op(kind, (ulong)key, value)).ToArbitrary();
    }

    [Property(MaxTest = 1500, Arbitrary = [typeof(Arbitraries)])]
    public void Matches_a_list_model(Op[] ops)
    {
        var released = new List<int>();
        var cache = new LruCache<ulong, int>("p", 4, released.Add);
        var model = new List<(ulong Key, int Value)>(); // most recent first
        int capacity = 4;
        long hits = 0, misses = 0, evictions = 0;
        int stamp = 1000;
        foreach (Op op in ops)
        {
            int value = ++stamp; // distinct values, so release order can be checked
            switch (op.Kind)
            {
                case 0:
                {
                    int i = model.FindIndex(e => e.Key == op.Key);
                    bool hit = cache.TryGet(op.Key, out int got);
                    Assert.Equal(i >= 0, hit);
                    if (i >= 0)
                    {
                        hits++;
                        Assert.Equal(model[i].Value, got);
                        var e = model[i];
                        model.RemoveAt(i);
                        model.Insert(0, e);
                    }
                    else
                    {
                        misses++;
                    }

                    break;
                }

                case 1:
                case 2:
                {
                    int i = model.FindIndex(e => e.Key == op.Key);
                    if (i >= 0)
                    {
                        model.RemoveAt(i);
                    }
                    else if (model.Count >= capacity)
                    {
                        evictions++;
                        model.RemoveAt(model.Count - 1);
                    }

                    model.Insert(0, (op.Key, value));
                    if (op.Kind == 1 || i >= 0) // AddNew is only for keys that just missed
                    {
                        cache.Add(op.Key, value);
                    }
                    else
                    {
                        cache.AddNew(op.Key, value);
                    }

                    break;
                }

                case 3:
                {
                    int i = model.FindIndex(e => e.Key == op.Key);
                    Assert.Equal(i >= 0, cache.Remove(op.Key));
                    if (i >= 0)
                    {
                        model.RemoveAt(i);
                    }

                    break;
                }

                case 4:
                    capacity = op.Value;
                    cache.Resize(capacity);
                    while (model.Count > capacity)
                    {
                        evictions++;
                        model.RemoveAt(model.Count - 1);
                    }

                    break;

                default:
                    cache.Clear();
                    model.Clear();
                    break;
            }

            Assert.Equal(model.Select(e => e.Key), cache.KeysByRecency());
            Assert.Equal(model.Count, cache.Count);
            Assert.Equal(hits, cache.Hits);
            Assert.Equal(misses, cache.Misses);
            Assert.Equal(evictions, cache.Evictions);
        }
    }
}

public class LruStressTests
{
    [Theory]
    [InlineData(1, 64, 200)]
    [InlineData(2, 100, 130)]
    [InlineData(3, 7, 4096)]
    [InlineData(4, 1000, 5000)]
    public void Many_inserts_and_removals_agree_with_a_dictionary(int seed, int capacity, int keySpace)
    {
        var rng = new Random(seed);
        var cache = new LruCache<ulong, ulong>("s", capacity);
        var order = new LinkedList<ulong>(); // most recent first
        var nodes = new Dictionary<ulong, LinkedListNode<ulong>>();
        for (int step = 0; step < 20000; step++)
        {
            // Keys that collide in any power-of-two table: multiples of a large power of two, plus small ones.
            ulong key = rng.Next(2) == 0 ? (ulong)rng.Next(keySpace) : (ulong)rng.Next(keySpace) << 20;
            int op = rng.Next(10);
            if (op < 5)
            {
                bool hit = cache.TryGet(key, out ulong v);
                Assert.Equal(nodes.ContainsKey(key), hit);
                if (hit)
                {
                    Assert.Equal(key * 3, v);
                    order.Remove(nodes[key]);
                    order.AddFirst(nodes[key]);
                }
            }
            else if (op < 8)
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

                cache.Add(key, key * 3);
            }
            else
            {
                Assert.Equal(nodes.Remove(key, out LinkedListNode<ulong>? n), cache.Remove(key));
                if (n is not null)
                {
                    order.Remove(n);
                }
            }

            Assert.Equal(nodes.Count, cache.Count);
        }

        Assert.Equal(order, cache.KeysByRecency());
        foreach (ulong k in nodes.Keys)
        {
            Assert.True(cache.TryPeek(k, out ulong v));
            Assert.Equal(k * 3, v);
        }
    }
}
