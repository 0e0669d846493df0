using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Vmi.Core;
using Vmi.Dump;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// References for modules' BTF that no one here wrote: the module files the guests load (/lib/modules/&lt;release&gt;),
/// their .BTF sections as binutils' objcopy dumps them, and the layouts gdb reads from the modules' DWARF (Debian's
/// linux-image-&lt;release&gt;-dbg, /usr/lib/debug/lib/modules/&lt;release&gt;).
/// </summary>
internal static class ModuleFiles
{
    /// <summary>The .ko file of <paramref name="module"/> (file names use '-' where module names have '_'), relative to the release's module tree.</summary>
    public static string RelativePath(string release, string module)
    {
        string tree = $"/lib/modules/{release}/kernel";
        Assert.True(Directory.Exists(tree), $"{tree} is missing: the guests run the host's Debian kernel (tests/deps.sh installs linux-image-amd64)");
        string? ko = Directory.EnumerateFiles(tree, "*.ko", SearchOption.AllDirectories)
            .FirstOrDefault(f => Path.GetFileNameWithoutExtension(f).Replace('-', '_') == module);
        Assert.True(ko is not null, $"no {module}.ko under {tree}");
        return Path.GetRelativePath($"/lib/modules/{release}", ko);
    }

    /// <summary>The module file's .BTF section, dumped by objcopy.</summary>
    public static byte[] BtfSection(string release, string module)
    {
        string ko = Path.Combine($"/lib/modules/{release}", RelativePath(release, module));
        string dir = Directory.CreateTempSubdirectory("vmi-ko-btf-").FullName;
        try
        {
            string section = Path.Combine(dir, "btf"), copy = Path.Combine(dir, "copy.ko");
            Run("objcopy", "binutils", ["--dump-section", $".BTF={section}", ko, copy]);
            return File.ReadAllBytes(section);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// gdb's layout of each struct or union named (from the module's DWARF): size, and every member's name (empty:
    /// anonymous), bit offset and bitfield width, as lines "S size N" and "S.member bitpos bitsize".
    /// </summary>
    public static Dictionary<string, List<string>> DwarfLayouts(string release, string module, IEnumerable<(string Name, bool Union)> types)
    {
        string debug = Path.Combine($"/usr/lib/debug/lib/modules/{release}", RelativePath(release, module));
        Assert.True(File.Exists(debug), $"{debug} is missing: tests/deps.sh installs the kernel's -dbg package");
        string dir = Directory.CreateTempSubdirectory("vmi-ko-dwarf-").FullName;
        try
        {
            string script = Path.Combine(dir, "layouts.py");
            var py = new System.Text.StringBuilder();
            py.AppendLine("import gdb");
            py.AppendLine("for name in [" + string.Join(", ", types.Select(t => $"'{(t.Union ? "union" : "struct")} {t.Name}'")) + "]:");
            py.AppendLine("    t = gdb.lookup_type(name)");
            py.AppendLine("    print('VMI %s size %d' % (name.split(' ')[1], t.sizeof))");
            py.AppendLine("    for f in t.fields():");
            py.AppendLine("        print('VMI %s.%s %d %d' % (name.split(' ')[1], f.name or '', f.bitpos, f.bitsize))");
            File.WriteAllText(script, py.ToString());
            string output = Run("gdb", "gdb", ["-batch", "-nx", "-x", script, debug]);
            var layouts = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            foreach (string line in output.Split('\n').Where(l => l.StartsWith("VMI ", StringComparison.Ordinal)))
            {
                string rest = line[4..].TrimEnd('\r');
                string owner = rest.Split(' ')[0].Split('.')[0];
                if (!layouts.TryGetValue(owner, out List<string>? list))
                {
                    layouts[owner] = list = [];
                }

                list.Add(rest);
            }

            return layouts;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Run(string tool, string package, string[] args)
    {
        var psi = new ProcessStartInfo(tool, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {tool}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{tool} is missing: run tests/deps.sh as root ({package}).", e);
        }

        using (p)
        {
            Task<string> err = p.StandardError.ReadToEndAsync();
            Task<string> output = p.StandardOutput.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(5))) // hang guard: well under a second here
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"{tool} took more than 5 minutes");
            }

            Assert.True(p.ExitCode == 0, $"{tool} {string.Join(' ', args)} failed ({p.ExitCode}): {err.Result}");
            return output.Result;
        }
    }
}

/// <summary>Checks shared by the image and live lanes.</summary>
internal static class ModuleBtfChecks
{
    /// <summary>
    /// Every module the guest lists has BTF in the kernel's btf_modules list; each blob is byte for byte its module
    /// file's .BTF section; each parses as split BTF on the kernel's, with every type id and name it uses resolving and
    /// as many types as the kernel counted. Returns each module's types.
    /// </summary>
    public static Dictionary<string, BtfTypes> AssertModulesBtf(LinuxKernel kernel, IReadOnlyList<TruthModule> modules)
    {
        var warnings = new List<string>();
        List<LinuxModuleBtf> ours = kernel.GetModuleBtf(warning: warnings.Add).ToList();
        Assert.Empty(warnings);
        Assert.Equal(modules.Select(m => m.Name).Order(), ours.Select(m => m.Module).Order());
        var kernelTypes = Assert.IsType<BtfTypes>(kernel.Types);
        var result = new Dictionary<string, BtfTypes>();
        foreach (LinuxModuleBtf m in ours)
        {
            byte[] blob = kernel.ReadModuleBtf(m);
            byte[] file = ModuleFiles.BtfSection(kernel.Info.Release, m.Module);
            Assert.True(file.AsSpan().SequenceEqual(blob), $"{m.Module}: the {blob.Length} bytes at 0x{m.DataAddress:x} are not the {file.Length}-byte .BTF section of its module file");
            Assert.Equal((uint)kernelTypes.LastId + 1, m.StartId);
            Assert.Equal((uint)kernelTypes.StringsLength, m.StartStringOffset);

            BtfTypes types = kernel.ModuleTypes(m.Module, warnings.Add);
            Assert.Empty(warnings);
            Assert.Same(types, kernel.ModuleTypes(m.Module)); // read once, kept
            Assert.Equal(m.TypeCount, (uint)types.Count);
            Assert.Equal(kernelTypes.LastId + 1, types.FirstId);
            Assert.True(types.Count > 0, $"{m.Module}: its BTF holds no types");
            AssertEveryReferenceResolves(types, m.Module);
            result[m.Module] = types;
        }

        // Get-VmiModule's records say which modules have BTF and how many types, without reading it
        List<LinuxModule> listed = kernel.GetModules(warning: warnings.Add).ToList();
        Assert.Empty(warnings);
        Assert.All(listed, l => Assert.Equal((uint)result[l.Name].Count, l.BtfTypeCount));
        return result;
    }

    /// <summary>Every type id a type of <paramref name="types"/> uses is void or a type of the module or the kernel, and every name offset lies in the joint string space.</summary>
    public static void AssertEveryReferenceResolves(BtfTypes types, string what)
    {
        int references = 0;
        foreach ((int id, BtfKind kind, string _) in types.Types())
        {
            Assert.NotEqual(BtfKind.Unknown, kind);
            foreach (int r in types.ReferencesOf(id))
            {
                references++;
                if (r != 0 && !types.Contains(r))
                {
                    Assert.Fail($"{what}: type {id} ({kind}) refers to type {r}, which neither it nor the kernel holds (last id {types.LastId})");
                }
            }

            foreach (uint off in types.NameOffsetsOf(id))
            {
                Assert.True(types.IsStringOffset(off), $"{what}: type {id} ({kind}) names string offset {off}, past the {types.StringsLength} bytes of strings");
            }

            if (kind is BtfKind.Struct or BtfKind.Union)
            {
                Assert.All(types.Members(id), mb => Assert.True(types.Contains(mb.TypeId), $"{what}: {types.NameOf(id)}.{mb.Name} has type {mb.TypeId}, which does not resolve"));
            }
        }

        Assert.True(references > 0, $"{what}: no type refers to another");
    }
}

/// <summary>
/// Modules' split BTF on the real guests' images (the guests of tests/guest/build-guest.sh, one image format each): read
/// from the kernel's btf_modules list, it equals the module files' own .BTF sections, parses on top of the kernel's
/// BTF, and gives the struct layouts gdb reads from the modules' DWARF.
/// </summary>
[Collection("RealGuest")]
public sealed class RealGuestModuleBtfTests(RealGuestFixture fixture)
{
    public static TheoryData<string, string> Images => new() { { "kaslr", "elf" }, { "la57", "kdump" }, { "pti", "raw" } };

    private static (VmiCore Core, LinuxKernel Kernel) Open(RealGuest g, string format) => RealGuestTruthTests.Open(g, format);

    [Theory]
    [MemberData(nameof(Images))]
    public void Every_modules_btf_equals_its_module_files_btf_section_and_resolves(string variant, string format)
    {
        RealGuest g = fixture.Get(variant);
        (VmiCore core, LinuxKernel kernel) = Open(g, format);
        using (core)
        {
            Assert.True(g.Modules.Count >= 5, $"the guest printed {g.Modules.Count} modules");
            ModuleBtfChecks.AssertModulesBtf(kernel, g.Modules);
        }
    }

    [Fact]
    public void Structs_a_module_defines_have_the_layout_of_its_dwarf()
    {
        RealGuest g = fixture.Get("kaslr");
        (VmiCore core, LinuxKernel kernel) = Open(g, "elf");
        using (core)
        {
            int structs = 0, members = 0;
            foreach (LinuxModuleBtf m in kernel.GetModuleBtf())
            {
                BtfTypes types = kernel.ModuleTypes(m.Module);
                var own = types.Types().Where(t => t.Kind is BtfKind.Struct or BtfKind.Union && t.Name.Length > 0).ToList();
                if (own.Count == 0)
                {
                    continue;
                }

                Dictionary<string, List<string>> dwarf = ModuleFiles.DwarfLayouts(kernel.Info.Release, m.Module, own.Select(t => (t.Name, t.Kind == BtfKind.Union)));
                foreach ((int id, BtfKind _, string name) in own)
                {
                    var ours = new List<string> { $"{name} size {types.SizeOf(id)}" };
                    ours.AddRange(types.Members(id).Select(mb => string.Create(CultureInfo.InvariantCulture, $"{name}.{mb.Name} {mb.BitOffset} {mb.BitfieldSize}")));
                    Assert.True(dwarf.ContainsKey(name), $"{m.Module}: gdb found no {name} in the module's DWARF");
                    Assert.Equal(dwarf[name], ours);
                    structs++;
                    members += ours.Count - 1;
                }
            }

            Assert.True(structs >= 3 && members >= 10, $"only {structs} module structs with {members} members were compared");

            // a module's struct, with a member whose type is the kernel's: fw_cfg_sysfs_entry { struct kobject kobj; u32 size; u16 select; char name[56]; struct list_head list; }
            BtfTypes fw = kernel.ModuleTypes("qemu_fw_cfg");
            Assert.True(fw.TryFindStruct("fw_cfg_sysfs_entry", out int entry) && entry >= fw.FirstId);
            BtfField kobj = fw.GetField("fw_cfg_sysfs_entry", "kobj");
            Assert.True(kobj.TypeId < fw.FirstId, "struct kobject is the kernel's type");
            Assert.Equal("kobject", fw.NameOf(fw.Resolve(kobj.TypeId)));
            Assert.Equal(kobj.Size + 6, fw.GetField("fw_cfg_sysfs_entry", "name").Offset);
            Assert.Equal(56UL, fw.GetField("fw_cfg_sysfs_entry", "name").Size);
            Assert.Equal(8UL, fw.GetField("fw_cfg_sysfs_entry", "list.prev").Offset - fw.GetField("fw_cfg_sysfs_entry", "list").Offset);
        }
    }

    [Fact]
    public void A_module_without_btf_gets_an_error_that_lists_those_with()
    {
        RealGuest g = fixture.Get("kaslr");
        (VmiCore core, LinuxKernel kernel) = Open(g, "elf");
        using (core)
        {
            var e = Assert.Throws<LinuxIntrospectionException>(() => kernel.ModuleTypes("no_such_module"));
            Assert.Contains("no BTF in the kernel's btf_modules list", e.Message, StringComparison.Ordinal);
            Assert.Contains("qemu_fw_cfg", e.Message, StringComparison.Ordinal); // it lists those that have
        }
    }
}
