using System.Runtime.CompilerServices;

namespace Vmi.Core;

/// <summary>Sizes and counters of one cache, as <c>Get-VmiCache</c> shows them.</summary>
public sealed record CacheStatistics(string Name, bool Enabled, int Capacity, int Count, long Hits, long Misses, long Evictions)
{
    public double HitRatio => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);
}

/// <summary>
/// A least-recently-used cache with a fixed budget and counters. Entries live in one array of nodes (key,
/// value and list links together, so touching an entry touches one cache line; no allocation per entry).
/// The most recently used entry is checked first, so repeated hits on one key cost one compare; then a
/// small direct-mapped table of hints (key hash to slot), so the handful of keys a page walk touches are
/// found without probing the index. The index is an open-addressing table of slot numbers (at most half
/// full, linear probing, deletion by shifting back), so a lookup touches the index and the node and nothing
/// else. Hints never outlive their entry. The arrays grow with the entries (doubling, slot numbers kept), up to the
/// budget: a large budget costs memory only as it fills.
/// Not thread-safe: <see cref="VmiCore"/> is used by one thread at a time.
/// </summary>
internal sealed class LruCache<TKey, TValue>
    where TKey : struct, IEquatable<TKey>
{
    /// <summary>The largest budget a cache takes (16 Mi entries: 64 GiB of mapped pages).</summary>
    public const int MaxCapacity = 1 << 24;

    private const int HintCount = 256;

    /// <summary>How many entries the arrays first hold (or the budget, when smaller); they double as the cache fills.</summary>
    internal const int InitialAllocation = 1024;

    private readonly Action<TValue>? _onRemove;
    private int[] _index;   // open addressing, linear probing: slot + 1 of the entry whose key probes here; 0 = empty
    private int _indexShift; // 32 - log2(_index.Length), for Fibonacci hashing
    private int _count;
    private readonly int[] _hints = new int[HintCount]; // slot + 1 of a live entry whose key hashes here; 0 = none
    private Node[] _nodes;
    private int _head = -1; // most recently used
    private int _tail = -1; // least recently used
    private int _free = -1; // free list through Next
    private int _used;      // slots ever handed out

    private struct Node
    {
        public TKey Key;
        public TValue Value;
        public int Prev;
        public int Next;
    }

    public LruCache(string name, int capacity, Action<TValue>? onRemove = null)
    {
        CheckCapacity(capacity);
        Name = name;
        _onRemove = onRemove;
        Capacity = capacity;
        _nodes = new Node[Math.Min(capacity, InitialAllocation)];
        (_index, _indexShift) = NewIndex(_nodes.Length);
    }

    /// <summary>How many entries the arrays hold now (at most <see cref="Capacity"/>).</summary>
    internal int Allocated => _nodes.Length;

    public string Name { get; }

    public int Capacity { get; private set; }

    public int Count => _count;

    public long Hits { get; private set; }

    public long Misses { get; private set; }

    public long Evictions { get; private set; }

    public CacheStatistics Statistics(bool enabled) => new(Name, enabled, Capacity, Count, Hits, Misses, Evictions);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int HintIndex(in TKey key) => key.GetHashCode() & (HintCount - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryGet(in TKey key, out TValue value)
    {
        int h = _head;
        if (h >= 0)
        {
            ref Node n = ref _nodes[h];
            if (n.Key.Equals(key))
            {
                Hits++;
                value = n.Value;
                return true;
            }
        }

        return TryGetSlow(key, out value);
    }

    private bool TryGetSlow(in TKey key, out TValue value)
    {
        ref int hint = ref _hints[HintIndex(key)];
        int i = hint - 1;
        if ((i >= 0 && _nodes[i].Key.Equals(key)) || (i = Find(key)) >= 0)
        {
            Hits++;
            hint = i + 1;
            MoveToHead(i);
            value = _nodes[i].Value;
            return true;
        }

        Misses++;
        value = default!;
        return false;
    }

    /// <summary>Adds or replaces <paramref name="key"/>; evicts the least recently used entry when full.</summary>
    public void Add(in TKey key, TValue value)
    {
        int existing = Find(key);
        if (existing >= 0)
        {
            Replace(existing, value);
            return;
        }

        AddNew(key, value);
    }

    /// <summary>
    /// Adds <paramref name="key"/>, which the caller knows is not cached (it just missed): one hash lookup fewer
    /// than <see cref="Add"/>. Should the key be cached after all, its value is replaced (after a needless eviction).
    /// </summary>
    public void AddNew(in TKey key, TValue value)
    {
        if (_count >= Capacity)
        {
            Evictions++;
            RemoveAt(_tail);
        }
        else if (_free < 0 && _used == _nodes.Length)
        {
            Grow();
        }

        // Probe for the key or the first empty place (the table is at most half full).
        int mask = _index.Length - 1;
        int at = Home(key);
        while (_index[at] != 0)
        {
            int other = _index[at] - 1;
            if (_nodes[other].Key.Equals(key))
            {
                Replace(other, value);
                return;
            }

            at = (at + 1) & mask;
        }

        int slot;
        if (_free >= 0)
        {
            slot = _free;
            _free = _nodes[slot].Next;
        }
        else
        {
            slot = _used++;
        }

        _index[at] = slot + 1;
        _count++;
        ref Node n = ref _nodes[slot];
        n.Key = key;
        n.Value = value;
        n.Prev = -1;
        n.Next = _head;
        if (_head >= 0)
        {
            _nodes[_head].Prev = slot;
        }

        _head = slot;
        if (_tail < 0)
        {
            _tail = slot;
        }

        _hints[HintIndex(key)] = slot + 1;
    }

    /// <summary>Doubles the arrays (up to the budget): slots keep their numbers, so the list and the hints stay valid; the index is rebuilt.</summary>
    private void Grow()
    {
        Array.Resize(ref _nodes, (int)Math.Min(Capacity, 2L * _nodes.Length));
        (_index, _indexShift) = NewIndex(_nodes.Length);
        int mask = _index.Length - 1;
        for (int i = _head; i >= 0; i = _nodes[i].Next)
        {
            int at = Home(_nodes[i].Key);
            while (_index[at] != 0)
            {
                at = (at + 1) & mask;
            }

            _index[at] = i + 1;
        }
    }

    private static (int[] Index, int Shift) NewIndex(int capacity)
    {
        int bits = Math.Max(4, 64 - (int)ulong.LeadingZeroCount((ulong)capacity * 2 - 1)); // >= 2 x capacity
        return (new int[1 << bits], 32 - bits);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(in TKey key) => (int)(((uint)key.GetHashCode() * 0x9E37_79B9u) >> _indexShift);

    /// <summary>The slot holding <paramref name="key"/>, or -1.</summary>
    private int Find(in TKey key)
    {
        int mask = _index.Length - 1;
        int at = Home(key);
        while (true)
        {
            int s = _index[at] - 1;
            if (s < 0)
            {
                return -1;
            }

            if (_nodes[s].Key.Equals(key))
            {
                return s;
            }

            at = (at + 1) & mask;
        }
    }

    /// <summary>Takes <paramref name="slot"/> out of the index, shifting later entries of its probe run back (no tombstones).</summary>
    private void Unindex(int slot)
    {
        int mask = _index.Length - 1;
        int at = Home(_nodes[slot].Key);
        while (_index[at] != slot + 1)
        {
            at = (at + 1) & mask;
        }

        int hole = at;
        int next = (hole + 1) & mask;
        while (_index[next] != 0)
        {
            int home = Home(_nodes[_index[next] - 1].Key);

            // The entry at `next` may move into the hole unless its home lies cyclically in (hole, next].
            bool stays = hole <= next ? home > hole && home <= next : home > hole || home <= next;
            if (!stays)
            {
                _index[hole] = _index[next];
                hole = next;
            }

            next = (next + 1) & mask;
        }

        _index[hole] = 0;
        _count--;
    }

    private void Replace(int i, TValue value)
    {
        TValue old = _nodes[i].Value;
        _nodes[i].Value = value;
        MoveToHead(i);
        if (!ReferenceEquals(old, value))
        {
            _onRemove?.Invoke(old);
        }
    }

    /// <summary>Makes <paramref name="key"/> the most recently used entry without counting a hit; false if it is not cached.</summary>
    public bool Touch(in TKey key)
    {
        int i = Find(key);
        if (i < 0)
        {
            return false;
        }

        MoveToHead(i);
        return true;
    }

    public bool Remove(in TKey key)
    {
        int i = Find(key);
        if (i < 0)
        {
            return false;
        }

        RemoveAt(i);
        return true;
    }

    /// <summary>Removes every entry for which <paramref name="predicate"/> is true.</summary>
    public int RemoveWhere(Func<TKey, bool> predicate)
    {
        var doomed = new List<TKey>();
        for (int i = _head; i >= 0; i = _nodes[i].Next)
        {
            TKey k = _nodes[i].Key;
            if (predicate(k))
            {
                doomed.Add(k);
            }
        }

        foreach (TKey k in doomed)
        {
            Remove(k);
        }

        return doomed.Count;
    }

    /// <summary>
    /// Removes every entry. Costs O(live entries) when few are live (a flush right after a few inserts, as a
    /// write to a page table causes, touches only those), and one sweep of the arrays when many are.
    /// </summary>
    public void Clear()
    {
        if (_count <= (_nodes.Length >> 3) + 8)
        {
            ClearLive();
        }
        else
        {
            ClearAll();
        }
    }

    private void ClearAll()
    {
        if (_onRemove is not null)
        {
            for (int i = _head; i >= 0; i = _nodes[i].Next)
            {
                _onRemove(_nodes[i].Value);
            }
        }

        Array.Clear(_index);
        Array.Clear(_nodes, 0, _used);
        Array.Clear(_hints);

        _count = 0;
        _head = _tail = _free = -1;
        _used = 0;
    }

    /// <summary>
    /// Clears only what the live entries occupy. First every entry's index cell is found while the probe runs are
    /// intact (its position kept in the node's Prev link, which is discarded anyway), then the cells are zeroed:
    /// zeroing in one pass would cut the probe runs of entries not yet found.
    /// </summary>
    private void ClearLive()
    {
        int mask = _index.Length - 1;
        for (int i = _head; i >= 0; i = _nodes[i].Next)
        {
            int at = Home(_nodes[i].Key);
            while (_index[at] != i + 1)
            {
                at = (at + 1) & mask;
            }

            _nodes[i].Prev = at;
        }

        for (int i = _head; i >= 0;)
        {
            ref Node n = ref _nodes[i];
            _index[n.Prev] = 0;
            ref int hint = ref _hints[HintIndex(n.Key)];
            if (hint == i + 1)
            {
                hint = 0;
            }

            TValue value = n.Value;
            int next = n.Next;
            n = default;
            _onRemove?.Invoke(value);
            i = next;
        }

        // Slots on the free list were cleared when they were freed (RemoveAt): nothing refers to them.
        _count = 0;
        _head = _tail = _free = -1;
        _used = 0;
    }

    public void ResetStatistics()
    {
        Hits = Misses = Evictions = 0;
    }

    /// <summary>Changes the budget; when shrinking, the least recently used entries go (counted as evictions).</summary>
    public void Resize(int capacity)
    {
        CheckCapacity(capacity);
        var order = new List<(TKey Key, TValue Value)>(_count);
        for (int i = _tail; i >= 0; i = _nodes[i].Prev)
        {
            order.Add((_nodes[i].Key, _nodes[i].Value)); // least recent first
        }

        int drop = Math.Max(0, order.Count - capacity);
        for (int i = 0; i < drop; i++)
        {
            Evictions++;
            _onRemove?.Invoke(order[i].Value);
        }

        int keep = order.Count - drop;
        _nodes = new Node[Math.Min(capacity, Math.Max(keep, InitialAllocation))];
        (_index, _indexShift) = NewIndex(_nodes.Length);
        _count = 0;
        Array.Clear(_hints);
        Capacity = capacity;
        _head = _tail = _free = -1;
        _used = 0;
        for (int i = drop; i < order.Count; i++)
        {
            AddNew(order[i].Key, order[i].Value);
        }
    }

    private static void CheckCapacity(int capacity)
    {
        if (capacity is < 1 or > MaxCapacity)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"A cache holds from 1 to {MaxCapacity} entries.");
        }
    }

    /// <summary>The value of <paramref name="key"/> if cached, without counting a hit or a miss and without changing the order.</summary>
    public bool TryPeek(in TKey key, out TValue value)
    {
        int i = Find(key);
        if (i >= 0)
        {
            value = _nodes[i].Value;
            return true;
        }

        value = default!;
        return false;
    }

    /// <summary>Keys from most to least recently used (for tests and diagnostics).</summary>
    public IEnumerable<TKey> KeysByRecency()
    {
        for (int i = _head; i >= 0; i = _nodes[i].Next)
        {
            yield return _nodes[i].Key;
        }
    }

    private void RemoveAt(int i)
    {
        ref Node n = ref _nodes[i];
        TValue value = n.Value;
        ref int hint = ref _hints[HintIndex(n.Key)];
        if (hint == i + 1)
        {
            hint = 0;
        }

        Unindex(i);
        Unlink(i);
        n.Key = default;
        n.Value = default!;
        n.Next = _free;
        _free = i;
        _onRemove?.Invoke(value);
    }

    private void Unlink(int i)
    {
        ref Node n = ref _nodes[i];
        int p = n.Prev;
        int x = n.Next;
        if (p >= 0)
        {
            _nodes[p].Next = x;
        }
        else
        {
            _head = x;
        }

        if (x >= 0)
        {
            _nodes[x].Prev = p;
        }
        else
        {
            _tail = p;
        }
    }

    private void MoveToHead(int i)
    {
        if (i == _head)
        {
            return;
        }

        Unlink(i);
        ref Node n = ref _nodes[i];
        n.Prev = -1;
        n.Next = _head;
        if (_head >= 0)
        {
            _nodes[_head].Prev = i;
        }

        _head = i;
        if (_tail < 0)
        {
            _tail = i;
        }
    }
}
