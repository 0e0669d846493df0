using System.Management.Automation;

namespace Vmi.PowerShell.Commands;

/// <summary>Which cache Clear-VmiCache flushes.</summary>
[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmiCacheKind
{
    All,
    Gfn,
    V2P,
}

/// <summary>Flushes the session's caches (after the guest changed memory behind the session's back, for example).</summary>
[Cmdlet(VerbsCommon.Clear, "VmiCache", SupportsShouldProcess = true)]
[OutputType(typeof(VmiCacheInfo))]
public sealed class ClearVmiCacheCommand : VmiCmdlet
{
    [Parameter(Position = 0)]
    public VmiCacheKind Cache { get; set; } = VmiCacheKind.All;

    /// <summary>Also set the hit, miss and eviction counters to zero.</summary>
    [Parameter]
    public SwitchParameter ResetStatistics { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        if (!ShouldProcess(session.Name, Cache == VmiCacheKind.All ? "Flush the GFN and V2P caches" : $"Flush the {Cache} cache"))
        {
            return;
        }

        if (Cache is VmiCacheKind.All or VmiCacheKind.Gfn)
        {
            session.Guest.FlushGfnCache();
        }

        if (Cache is VmiCacheKind.All or VmiCacheKind.V2P)
        {
            session.Guest.FlushV2PCache();
        }

        if (ResetStatistics)
        {
            session.Guest.ResetCacheStatistics();
        }
        if (PassThru)
        {
            WriteObject(new VmiCacheInfo(session, "Gfn", session.Guest.GfnCacheStatistics));
            WriteObject(new VmiCacheInfo(session, "V2P", session.Guest.V2PCacheStatistics));
        }
    }
}
