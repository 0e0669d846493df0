using Vmi.Core;

namespace Vmi.PowerShell;

/// <summary>Size and metrics of one of the session's caches (the GFN page cache, the V2P translation cache).</summary>
public sealed class VmiCacheInfo
{
    internal VmiCacheInfo(VmiSession session, string cache, CacheStatistics s)
    {
        Session = session;
        Cache = cache;
        Enabled = s.Enabled;
        Capacity = s.Capacity;
        Count = s.Count;
        Hits = s.Hits;
        Misses = s.Misses;
        Evictions = s.Evictions;
        HitRatio = s.HitRatio;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    /// <summary>Gfn (mapped pages) or V2P (translations).</summary>
    public string Cache { get; }

    public bool Enabled { get; }

    public int Capacity { get; }

    public int Count { get; }

    public long Hits { get; }

    public long Misses { get; }

    public long Evictions { get; }

    public double HitRatio { get; }

    public override string ToString() => $"{Cache}: {Count}/{Capacity}";
}
