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
    [VmiAddressTransformation]
    public ulong[] Address { get; set; } = [];

    protected override void ProcessVmiRecord()
    {
        VmiSession session = ActiveSession;
        KallsymsTable symbols;
        LinuxKernel kernel;
        try
        {
            kernel = LinuxSessions.Get(session);
            symbols = kernel.Symbols;
        }
        catch (Exception e) when (IsItemError(e))
        {
            ThrowTerminatingError(VmiErrors.FromException(e, session));
            return;
        }

        // Modules come and go: their symbols are read again on every call, after the kernel image's own.
        List<LinuxModule>? modules = null;
        List<LinuxModuleSymbol>? moduleSymbols = null;
        List<LinuxModuleSymbol> ModuleSymbols()
        {
            if (moduleSymbols is null)
            {
                var warnings = new List<string>();
                try
                {
                    (modules, moduleSymbols) = session.Guest.Exclusive(_ => (kernel.GetModules(warning: warnings.Add).ToList(), kernel.GetModuleSymbols(warning: warnings.Add).ToList()));
                }
                catch (Vmi.Os.Linux.LinuxIntrospectionException e)
                {
                    warnings.Add("Module symbols are left out: " + e.Message);
                    (modules, moduleSymbols) = ([], []);
                }

                warnings.ForEach(WriteWarning);
            }

            return moduleSymbols;
        }

        if (ParameterSetName == ByAddress)
        {
            foreach (ulong address in Address)
            {
                List<LinuxModuleSymbol> all = ModuleSymbols();
                if (modules!.FirstOrDefault(m => address >= m.Base && address - m.Base < m.Size) is { } module)
                {
                    // inside a module: the nearest of that module's own symbols at or below the address
                    LinuxModuleSymbol? best = null;
                    foreach (LinuxModuleSymbol ms in all)
                    {
                        if (ms.Module == module.Name && ms.Address <= address && (best is null || ms.Address > best.Value.Address))
                        {
                            best = ms;
                        }
                    }

                    if (best is { } found)
                    {
                        WriteObject(new VmiSymbol(session, found, address));
                        continue;
                    }
                }

                if (symbols.TryFindNearest(address, out KernelSymbol s))
                {
                    WriteObject(new VmiSymbol(session, s, address));
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
                if (symbols.TryGetSymbol(name, out KernelSymbol symbol))
                {
                    WriteObject(new VmiSymbol(session, symbol, symbol.Address));
                }
                else if (ModuleSymbols().FirstOrDefault(m => m.Name == name) is { Name: not null } ms)
                {
                    WriteObject(new VmiSymbol(session, ms, ms.Address));
                }
                else
                {
                    WriteVmiError(new VmiSymbolNotFoundException(name), name);
                }

                continue;
            }

            var pattern = new WildcardPattern(name, WildcardOptions.None);
            foreach (KernelSymbol s in symbols.Symbols)
            {
                StopToken.ThrowIfCancellationRequested();
                if (pattern.IsMatch(s.Name))
                {
                    WriteObject(new VmiSymbol(session, s, s.Address));
                }
            }

            foreach (LinuxModuleSymbol ms in ModuleSymbols())
            {
                if (pattern.IsMatch(ms.Name))
                {
                    WriteObject(new VmiSymbol(session, ms, ms.Address));
                }
            }
        }
    }
}
