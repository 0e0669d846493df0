using System.Management.Automation;
using Vmi.Os.Linux;

namespace Vmi.PowerShell.Commands;

/// <summary>Kernel symbols from the guest's own kallsyms, then the loaded modules' own symbols: by name (wildcards), or the nearest symbol at or below an address.</summary>
[Cmdlet(VerbsCommon.Get, "VmiSymbol", DefaultParameterSetName = ByName)]
[OutputType(typeof(VmiSymbol))]
public sealed class GetVmiSymbolCommand : VmiCmdlet
{
    public const string ByName = "ByName";
    public const string ByAddress = "ByAddress";

    /// <summary>Symbol names; wildcards allowed (case-sensitive, as the kernel's names are). Default: every symbol.</summary>
    [Parameter(Position = 0, ParameterSetName = ByName)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Name { get; set; } = ["*"];

    /// <summary>Addresses to name: each gives the nearest symbol at or below it, with the offset.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByAddress, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Va")]
    [VmiAddressTransformation(Means = AddressMeaning.Virtual)]
    public ulong[] Address { get; set; } = [];

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        LinuxSymbolLookup lookup;
        try
        {
            lookup = new LinuxSymbolLookup(LinuxSessions.Get(session), WriteWarning); // modules read again on every call
        }
        catch (Exception e) when (IsItemError(e))
        {
            ThrowTerminatingError(VmiErrors.FromException(e, session));
            return;
        }

        if (ParameterSetName == ByAddress)
        {
            foreach (ulong address in Address)
            {
                if (lookup.TryFindNearest(address, out LinuxSymbolMatch match))
                {
                    WriteObject(new VmiSymbol(session, match.Symbol, address, match.Module));
                }
                else
                {
                    WriteVmiError(new VmiSymbolNotFoundException($"0x{address:x}"), address);
                }
            }

            return;
        }

        foreach (string name in Name)
        {
            if (!WildcardPattern.ContainsWildcardCharacters(name))
            {
                if (lookup.TryGet(name, out LinuxSymbolMatch match))
                {
                    WriteObject(new VmiSymbol(session, match.Symbol, match.Symbol.Address, match.Module));
                }
                else
                {
                    WriteVmiError(new VmiSymbolNotFoundException(name), name);
                }

                continue;
            }

            var pattern = new WildcardPattern(name, WildcardOptions.None);
            foreach (LinuxSymbolMatch match in lookup.Matching(pattern.IsMatch, StopToken))
            {
                WriteObject(new VmiSymbol(session, match.Symbol, match.Symbol.Address, match.Module));
            }
        }
    }
}
