using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vmi.Core;

/// <summary>Sizes and counters of one cache, as <c>Get-VmiCache</c> shows them.</summary>
public sealed record CacheStatistics(string Name, bool Enabled, int Capacity, int Count, long Hits, long Misses, long Evictions)
{
    public double HitRatio => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);
}

/// <summary>
/// A least-recently-used cache with a fixed budget and counters. Nodes live in arrays (no allocation per
/// entry); the most recently used entry is checked first, so repeated hits on one key cost one compare,
/// and then a small direct-mapped table of hints (key hash to slot), so the handful of keys a page walk
/// touches are found without hashing into the dictionary. Hints never outlive their entry.
/// Not thread-safe: <see cref="VmiCore"/> is used by one thread at a time.
/// </summary>
internal sealed class LruCache<TKey, TValue>
    where TKey : struct, IEquatable<TKey>
{
    private readonly Action<TValue>? _onRemove;
    private readonly Dictionary<TKey, int> _map;
    private TKey[] _keys;
    private TValue[] _values;
    private int[] _prev;
    private int[] _next;
    private int _head = -1; // most recently used
    private int _tail = -1; // least recently used
    private int _free = -1; // free list through _next
    private int _used;      // slots ever handed out
    private const int HintCount = 256;
    private readonly int[] _hints = new int[HintCount]; // slot + 1 of a live entry whose key hashes here; 0 = none

    /// <summary>The largest budget a cache takes (16 Mi entries: 64 GiB of mapped pages).</summary>
    public const int MaxCapacity = 1 << 24;

    public LruCache(string name, int capacity, Action<TValue>? onRemove = null)
    {
        CheckCapacity(capacity);
        Name = name;
        _onRemove = onRemove;
        Capacity = capacity;
        _map = new Dictionary<TKey, int>(capacity);
        _keys = new TKey[capacity];
        _values = new TValue[capacity];
        _prev = new int[capacity];
        _next = new int[capacity];
    }

    public string Name { get; }

    public int Capacity { get; private set; }

    public int Count => _map.Count;

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
        if (h >= 0 && _keys[h].Equals(key))
        {
            Hits++;
            value = _values[h];
            return true;
        }

        return TryGetSlow(key, out value);
    }

    private bool TryGetSlow(in TKey key, out TValue value)
    {
        ref int hint = ref _hints[HintIndex(key)];
        int i = hint - 1;
        if ((i >= 0 && _keys[i].Equals(key)) || _map.TryGetValue(key, out i))
        {
            Hits++;
            hint = i + 1;
            MoveToHead(i);
            value = _values[i];
            return true;
        }

        Misses++;
        value = default!;
        return false;
    }

    /// <summary>Adds or replaces <paramref name="key"/>; evicts the least recently used entry when full.</summary>
    public void Add(in TKey key, TValue value)
    {
        if (_map.TryGetValue(key, out int existing))
        {
            TValue old = _values[existing];
            _values[existing] = value;
            MoveToHead(existing);
            if (!ReferenceEquals(old, value))
            {
                _onRemove?.Invoke(old);
            }

            return;
        }

        if (_map.Count >= Capacity)
        {
            Evictions++;
            RemoveAt(_tail);
        }

        int slot;
        if (_free >= 0)
        {
            slot = _free;
            _free = _next[slot];
        }
        else
        {
            slot = _used++;
        }

        _keys[slot] = key;
        _values[slot] = value;
        _prev[slot] = -1;
        _next[slot] = _head;
        if (_head >= 0)
        {
            _prev[_head] = slot;
        }

        _head = slot;
        if (_tail < 0)
        {
            _tail = slot;
        }

        _map.Add(key, slot);
        _hints[HintIndex(key)] = slot + 1;
    }

    /// <summary>
    /// Adds <paramref name="key"/>, which the caller knows is not cached (it just missed): one hash lookup fewer
    /// than <see cref="Add"/>. Should the key be cached after all, its value is replaced (after a needless eviction).
    /// </summary>
    public void AddNew(in TKey key, TValue value)
    {
        if (_map.Count >= Capacity)
        {
            Evictions++;
            RemoveAt(_tail);
        }

        ref int mapped = ref CollectionsMarshal.GetValueRefOrAddDefault(_map, key, out bool exists);
        if (exists)
        {
            // Not new after all: replace, as Add would.
            int i = mapped;
            TValue old = _values[i];
            _values[i] = value;
            MoveToHead(i);
            if (!ReferenceEquals(old, value))
            {
                _onRemove?.Invoke(old);
            }

            return;
        }

        int slot;
        if (_free >= 0)
        {
            slot = _free;
            _free = _next[slot];
        }
        else
        {
            slot = _used++;
        }

        mapped = slot;
        _keys[slot] = key;
        _values[slot] = value;
        _prev[slot] = -1;
        _next[slot] = _head;
        if (_head >= 0)
        {
            _prev[_head] = slot;
        }

        _head = slot;
        if (_tail < 0)
        {
            _tail = slot;
        }

        _hints[HintIndex(key)] = slot + 1;
    }

    public bool Remove(in TKey key)
    {
        if (!_map.TryGetValue(key, out int i))
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
        foreach (TKey k in _map.Keys)
        {
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

    public void Clear()
    {
        if (_onRemove is not null)
        {
            for (int i = _head; i >= 0; i = _next[i])
            {
                _onRemove(_values[i]);
            }
        }

        _map.Clear();
        Array.Clear(_keys);
        Array.Clear(_values);
        Array.Clear(_hints);
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
        var order = new List<(TKey Key, TValue Value)>(_map.Count);
        for (int i = _tail; i >= 0; i = _prev[i])
        {
            order.Add((_keys[i], _values[i])); // least recent first
        }

        int drop = Math.Max(0, order.Count - capacity);
        for (int i = 0; i < drop; i++)
        {
            Evictions++;
            _onRemove?.Invoke(order[i].Value);
        }

        _map.Clear();
        _map.EnsureCapacity(capacity);
        Array.Clear(_hints);
        Capacity = capacity;
        _keys = new TKey[capacity];
        _values = new TValue[capacity];
        _prev = new int[capacity];
        _next = new int[capacity];
        _head = _tail = _free = -1;
        _used = 0;
        for (int i = drop; i < order.Count; i++)
        {
            Add(order[i].Key, order[i].Value);
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
        if (_map.TryGetValue(key, out int i))
        {
            value = _values[i];
            return true;
        }

        value = default!;
        return false;
    }

    /// <summary>Keys from most to least recently used (for tests and diagnostics).</summary>
    public IEnumerable<TKey> KeysByRecency()
    {
        for (int i = _head; i >= 0; i = _next[i])
        {
            yield return _keys[i];
        }
    }

    private void RemoveAt(int i)
    {
        TValue value = _values[i];
        ref int hint = ref _hints[HintIndex(_keys[i])];
        if (hint == i + 1)
        {
            hint = 0;
        }

        _map.Remove(_keys[i]);
        Unlink(i);
        _keys[i] = default;
        _values[i] = default!;
        _next[i] = _free;
        _free = i;
        _onRemove?.Invoke(value);
    }

    private void Unlink(int i)
    {
        int p = _prev[i];
        int n = _next[i];
        if (p >= 0)
        {
            _next[p] = n;
        }
        else
        {
            _head = n;
        }

        if (n >= 0)
        {
            _prev[n] = p;
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
        _prev[i] = -1;
        _next[i] = _head;
        if (_head >= 0)
        {
            _prev[_head] = i;
        }

        _head = i;
        if (_tail < 0)
        {
            _tail = i;
        }
    }
}
