namespace Vmi.Os.Linux;

/// <summary>A symbol found by <see cref="LinuxSymbolLookup"/>: a kernel image symbol (<see cref="Module"/> null) or a module's own.</summary>
public readonly record struct LinuxSymbolMatch(KernelSymbol Symbol, string? Module);

/// <summary>
/// Symbols by name or address over the kernel image's kallsyms, then the loaded modules' own symbol tables. Modules come
/// and go, so one lookup reads them once, when first needed: a name the kernel image has never reads them. A module list
/// that cannot be read is a warning (module symbols left out); the kernel image's symbols are still answered.
/// </summary>
public sealed class LinuxSymbolLookup(LinuxKernel kernel, Action<string>? warning = null)
{
    private readonly LinuxKernel _kernel = kernel ?? throw new ArgumentNullException(nameof(kernel));
    private List<LinuxModule>? _modules;
    private List<LinuxModuleSymbol>? _moduleSymbols;

    private List<LinuxModuleSymbol> ModuleSymbols()
    {
        if (_moduleSymbols is null)
        {
            try
            {
                _modules = _kernel.GetModules(warning: warning).ToList();
                _moduleSymbols = _kernel.GetModuleSymbols(warning: warning).ToList();
            }
            catch (LinuxIntrospectionException e)
            {
                warning?.Invoke("Module symbols are left out: " + e.Message);
                (_modules, _moduleSymbols) = ([], []);
            }
        }

        return _moduleSymbols;
    }

    /// <summary>
    /// The symbol at or below <paramref name="address"/>: inside a module, that module's nearest own symbol; elsewhere
    /// (or in a module with none below the address) the kernel image's nearest.
    /// </summary>
    public bool TryFindNearest(ulong address, out LinuxSymbolMatch match)
    {
        List<LinuxModuleSymbol> all = ModuleSymbols();
        if (_modules!.FirstOrDefault(m => address >= m.Base && address - m.Base < m.Size) is { Name: not null } module)
        {
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
                match = new LinuxSymbolMatch(found.ToKernelSymbol(), found.Module);
                return true;
            }
        }

        bool ok = _kernel.Symbols.TryFindNearest(address, out KernelSymbol s);
        match = new LinuxSymbolMatch(s, null);
        return ok;
    }

    /// <summary>The symbol of that exact name: the kernel image's first, else the first module's that has it.</summary>
    public bool TryGet(string name, out LinuxSymbolMatch match)
    {
        if (_kernel.Symbols.TryGetSymbol(name, out KernelSymbol symbol))
        {
            match = new LinuxSymbolMatch(symbol, null);
            return true;
        }

        if (ModuleSymbols().FirstOrDefault(m => m.Name == name) is { Name: not null } ms)
        {
            match = new LinuxSymbolMatch(ms.ToKernelSymbol(), ms.Module);
            return true;
        }

        match = default;
        return false;
    }

    /// <summary>Every symbol whose name matches: the kernel image's, then the modules'.</summary>
    public IEnumerable<LinuxSymbolMatch> Matching(Func<string, bool> isMatch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(isMatch);
        foreach (KernelSymbol s in _kernel.Symbols.Symbols)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (isMatch(s.Name))
            {
                yield return new LinuxSymbolMatch(s, null);
            }
        }

        foreach (LinuxModuleSymbol ms in ModuleSymbols())
        {
            if (isMatch(ms.Name))
            {
                yield return new LinuxSymbolMatch(ms.ToKernelSymbol(), ms.Module);
            }
        }
    }
}
