using System.Management.Automation;

namespace Vmi.PowerShell.Commands;

/// <summary>Shows the session's caches: the GFN page cache and the V2P translation cache, with hits, misses and evictions.</summary>
[Cmdlet(VerbsCommon.Get, "VmiCache")]
[OutputType(typeof(VmiCacheInfo))]
public sealed class GetVmiCacheCommand : VmiCmdlet
{
    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        (VmiCacheInfo gfn, VmiCacheInfo v2p) = session.Use(core =>
            (new VmiCacheInfo(session, "Gfn", core.GfnCacheStatistics), new VmiCacheInfo(session, "V2P", core.V2PCacheStatistics)));
        WriteObject(gfn);
        WriteObject(v2p);
    }
}
