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
        WriteObject(new VmiCacheInfo(session, "Gfn", session.Guest.GfnCacheStatistics));
        WriteObject(new VmiCacheInfo(session, "V2P", session.Guest.V2PCacheStatistics));
    }
}
