namespace Vmi.Os.Linux;

/// <summary>Modules' split BTF, from the kernel's btf_modules list (read on demand, never while the kernel is found).</summary>
public sealed partial class LinuxKernel
{
    /// <summary>The largest module BTF read (a large module's is a few hundred KiB).</summary>
    public const uint MaxModuleBtfSize = 16 << 20;

    private readonly Dictionary<(ulong Btf, ulong Data, uint Size), BtfTypes> _moduleTypes = new();

    private sealed record ModuleBtfLayout(
        ulong Head, KernelField List, KernelField Module, KernelField Btf, KernelField ModuleName,
        KernelField Data, KernelField DataSize, KernelField TypeCount, KernelField? StartId, KernelField? StartStringOffset);

    /// <summary>The fields of btf_module, btf and module this needs; null when the kernel keeps no modules' BTF.</summary>
    private ModuleBtfLayout? ModuleBtfFields()
    {
        IKernelTypes b = RequireTypes();
        if (!Symbols.TryGetAddress("btf_modules", out ulong head)
            || !b.TryGetField("btf_module", "list", out KernelField list) || !b.TryGetField("btf_module", "module", out KernelField module)
            || !b.TryGetField("btf_module", "btf", out KernelField btf) || !b.TryGetField("module", "name", out KernelField name)
            || !b.TryGetField("btf", "data", out KernelField data) || !b.TryGetField("btf", "data_size", out KernelField size)
            || !b.TryGetField("btf", "nr_types", out KernelField count))
        {
            return null; // built without CONFIG_DEBUG_INFO_BTF_MODULES, or layouts (a profile) that do not describe it
        }

        return new ModuleBtfLayout(head, list, module, btf, name, data, size, count,
            b.TryGetField("btf", "start_id", out KernelField start) ? start : null,
            b.TryGetField("btf", "start_str_off", out KernelField strings) ? strings : null);
    }

    /// <summary>
    /// Every module's BTF the kernel keeps (the btf_modules list: modules loaded with a .BTF section), in list order.
    /// Nothing is read of the BTF itself (<see cref="ReadModuleBtf"/>, <see cref="ModuleTypes"/>). A kernel without
    /// CONFIG_DEBUG_INFO_BTF_MODULES gives none. A list that loops, points outside readable kernel memory or runs past
    /// <see cref="LinuxWalkOptions.MaxEntries"/> ends with a warning.
    /// </summary>
    public IEnumerable<LinuxModuleBtf> GetModuleBtf(LinuxWalkOptions? options = null, Action<string>? warning = null)
    {
        options ??= new LinuxWalkOptions();
        if (ModuleBtfFields() is not { } l)
        {
            yield break;
        }

        if (!_kernel.TryReadU64(l.Head, out ulong next))
        {
            warning?.Invoke($"The btf_modules list head at 0x{l.Head:x} cannot be read.");
            yield break;
        }

        var seen = new HashSet<ulong>();
        byte[] nameBytes = new byte[(int)Math.Min(l.ModuleName.Size, 256)];
        for (int n = 0; next != l.Head; n++)
        {
            if (n >= options.MaxEntries)
            {
                warning?.Invoke($"The btf_modules list has more than {options.MaxEntries} entries; the walk stopped there.");
                yield break;
            }

            ulong entry = next - l.List.Offset;
            if (!seen.Add(entry))
            {
                warning?.Invoke($"The btf_modules list loops back to 0x{entry:x} after {n} entries; the walk stopped.");
                yield break;
            }

            if (!IsKernelPointer(next) || !_kernel.TryReadU64(next, out ulong following)
                || !_kernel.TryReadU64(entry + l.Module.Offset, out ulong module) || !_kernel.TryReadU64(entry + l.Btf.Offset, out ulong btf))
            {
                warning?.Invoke($"The btf_modules list points at 0x{next:x}, which is not readable kernel memory, after {n} entries; the walk stopped.");
                yield break;
            }

            if (!IsKernelPointer(module) || !IsKernelPointer(btf) || !_kernel.TryRead(module + l.ModuleName.Offset, nameBytes)
                || !_kernel.TryReadU64(btf + l.Data.Offset, out ulong data) || !_kernel.TryReadU32(btf + l.DataSize.Offset, out uint size)
                || !_kernel.TryReadU32(btf + l.TypeCount.Offset, out uint count))
            {
                warning?.Invoke($"The btf_modules entry at 0x{entry:x} points at a module (0x{module:x}) or BTF (0x{btf:x}) that cannot be read; it is left out.");
                next = following;
                continue;
            }

            uint? startId = l.StartId is { } s && _kernel.TryReadU32(btf + s.Offset, out uint id) ? id : null;
            uint? startStr = l.StartStringOffset is { } so && _kernel.TryReadU32(btf + so.Offset, out uint off) ? off : null;
            yield return new LinuxModuleBtf
            {
                Module = Text.CString(nameBytes),
                ModuleAddress = module,
                BtfAddress = btf,
                DataAddress = data,
                DataSize = size,
                TypeCount = count,
                StartId = startId,
                StartStringOffset = startStr,
            };
            next = following;
        }
    }

    /// <summary>
    /// The kernel's own BTF, raw (__start_BTF..__stop_BTF): what /sys/kernel/btf/vmlinux serves. Throws
    /// <see cref="LinuxIntrospectionException"/> when the kernel has none or it is not all readable.
    /// </summary>
    public byte[] ReadKernelBtf()
    {
        if (!Symbols.TryGetAddress("__start_BTF", out ulong start) || !Symbols.TryGetAddress("__stop_BTF", out ulong stop)
            || stop <= start || stop - start > BtfMaxSize)
        {
            throw new LinuxIntrospectionException("The kernel has no BTF (no __start_BTF..__stop_BTF of a plausible size in kallsyms).");
        }

        byte[] blob = new byte[(int)(stop - start)];
        if (!_kernel.TryRead(start, blob))
        {
            throw new LinuxIntrospectionException($"The kernel's BTF at 0x{start:x} ({blob.Length} bytes) is not all readable.");
        }

        return blob;
    }

    /// <summary>
    /// The raw split BTF of one module (btf->data, btf->data_size): byte for byte what the guest's
    /// /sys/kernel/btf/&lt;module&gt; serves. Throws <see cref="LinuxIntrospectionException"/> when it claims more than
    /// <see cref="MaxModuleBtfSize"/> bytes or is not all readable.
    /// </summary>
    public byte[] ReadModuleBtf(LinuxModuleBtf module)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (module.DataSize > MaxModuleBtfSize)
        {
            throw new LinuxIntrospectionException($"Module {module.Module}: its BTF claims {module.DataSize} bytes, more than {MaxModuleBtfSize}; it is not read (a damaged or hostile struct btf at 0x{module.BtfAddress:x}).");
        }

        byte[] blob = new byte[module.DataSize];
        if (!IsKernelPointer(module.DataAddress) || !_kernel.TryRead(module.DataAddress, blob))
        {
            throw new LinuxIntrospectionException($"Module {module.Module}: its BTF at 0x{module.DataAddress:x} ({module.DataSize} bytes) is not all readable.");
        }

        return blob;
    }

    /// <summary>
    /// The types of module <paramref name="moduleName"/>: its split BTF read from guest memory and parsed on top of
    /// the kernel's, so a struct the module defines resolves by name (<c>ModuleTypes("quota_tree").GetField(...)</c>)
    /// and so do the kernel's types its members use. Read once per module load and kept. Throws
    /// <see cref="LinuxIntrospectionException"/> naming what is missing: no such module with BTF, a kernel whose types
    /// come from a profile, a blob that does not parse or does not continue the kernel's BTF.
    /// </summary>
    public BtfTypes ModuleTypes(string moduleName, Action<string>? warning = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(moduleName);
        if (Types is not BtfTypes kernelTypes)
        {
            throw new LinuxIntrospectionException(Types is null
                ? $"Module {moduleName}: a module's BTF builds on the kernel's, and this kernel's BTF was not read ({_btfError ?? "the kernel has no BTF"})."
                : $"Module {moduleName}: a module's BTF builds on the kernel's BTF, but this session's types come from {Types.Description}. Open the kernel without a profile to read modules' BTF.");
        }

        List<LinuxModuleBtf> all = GetModuleBtf(warning: warning).ToList();
        LinuxModuleBtf m = all.FirstOrDefault(x => x.Module == moduleName) ?? throw new LinuxIntrospectionException(all.Count == 0
            ? $"Module {moduleName}: the kernel keeps no modules' BTF (no btf_modules list: built without CONFIG_DEBUG_INFO_BTF_MODULES?)."
            : $"Module {moduleName} has no BTF in the kernel's btf_modules list (not loaded, or built without BTF). Modules with BTF: {string.Join(", ", all.Select(x => x.Module))}.");
        lock (_moduleTypes)
        {
            if (_moduleTypes.TryGetValue((m.BtfAddress, m.DataAddress, m.DataSize), out BtfTypes? known))
            {
                return known;
            }
        }

        if (m.StartId is uint startId && startId != (uint)kernelTypes.LastId + 1
            || m.StartStringOffset is uint startStr && startStr != (uint)kernelTypes.StringsLength)
        {
            throw new LinuxIntrospectionException(
                $"Module {moduleName}: its BTF continues a base that ends at type id {m.StartId - 1} and string offset {m.StartStringOffset}, but the kernel's BTF read from memory ends at {kernelTypes.LastId} and {kernelTypes.StringsLength}.");
        }

        BtfTypes types;
        try
        {
            types = BtfTypes.ParseSplit(ReadModuleBtf(m), kernelTypes);
        }
        catch (LinuxIntrospectionException e)
        {
            throw new LinuxIntrospectionException($"Module {moduleName}: {e.Message}", e);
        }

        if ((uint)types.Count != m.TypeCount)
        {
            warning?.Invoke($"Module {moduleName}: its BTF holds {types.Count} types, but the kernel counted {m.TypeCount}.");
        }

        lock (_moduleTypes)
        {
            _moduleTypes.TryAdd((m.BtfAddress, m.DataAddress, m.DataSize), types);
        }

        return types;
    }
}
