using System.Diagnostics;
using System.Text.Json.Nodes;
using Vmi.Core;
using Vmi.Dump;
using Vmi.Tests.Guest;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// An ISF profile of the real guests' kernel, made by tests/guest/make-isf.py from the DWARF of Debian's
/// linux-image-&lt;version&gt;-dbg package through gdb (not from BTF, not by our code): once per clean checkout,
/// keyed by the script's hash and the kernel's name.
/// </summary>
public sealed class ProfileFixture
{
    private readonly Lazy<string> _path = new(Make);

    public string Path => _path.Value;

    private static string Make()
    {
        string root = GuestBuild.RepositoryRoot;
        string kernel = Directory.GetFiles("/boot", "vmlinuz-*-amd64").Order(StringComparer.Ordinal).LastOrDefault()
            ?? throw new InvalidOperationException("No Debian kernel in /boot (vmlinuz-*-amd64): run tests/deps.sh as root (linux-image-amd64).");
        string version = System.IO.Path.GetFileName(kernel)["vmlinuz-".Length..];
        string vmlinux = $"/usr/lib/debug/boot/vmlinux-{version}";
        if (!File.Exists(vmlinux))
        {
            throw new InvalidOperationException($"{vmlinux} is missing, so no profile can be made from the kernel's DWARF: run tests/deps.sh as root (linux-image-{version}-dbg).");
        }

        string script = System.IO.Path.Combine(root, "tests", "guest", "make-isf.py");
        string hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(script)))[..16];
        string dir = System.IO.Path.Combine(root, "tests", "data", "generated", "isf");
        Directory.CreateDirectory(dir);
        string output = System.IO.Path.Combine(dir, $"{version}-{hash}.json");
        if (File.Exists(output))
        {
            return output;
        }

        string temp = output + $".{Environment.ProcessId}.tmp";
        var psi = new ProcessStartInfo("gdb", ["-batch", "-nx", "-ex", $"python out = '{temp}'", "-x", script, vmlinux])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start gdb");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("gdb is missing, so no profile can be made from the kernel's DWARF: run tests/deps.sh as root (gdb).", e);
        }

        using (p)
        {
            Task<string> err = p.StandardError.ReadToEndAsync();
            Task<string> stdout = p.StandardOutput.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(15))) // hang guard: about 10 s here
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException("make-isf.py under gdb took more than 15 minutes");
            }

            if (p.ExitCode != 0 || !File.Exists(temp))
            {
                throw new InvalidOperationException($"make-isf.py failed (exit {p.ExitCode}): {err.Result}\n{stdout.Result}");
            }
        }

        File.Move(temp, output, overwrite: true);
        return output;
    }
}

/// <summary>Reads as the inner memory does, except that a range of kernel addresses reads as zeros: a kernel whose BTF is gone.</summary>
internal sealed class BlankedMemory(IGuestMemory inner, ulong start, ulong end) : IGuestMemory
{
    public Vmi.Core.Arch.Amd64.PagingMode PagingMode => inner.PagingMode;

    public int VcpuCount => inner.VcpuCount;

    public string? Vmcoreinfo => inner.Vmcoreinfo;

    public int Read(ulong va, Pa root, Span<byte> buffer)
    {
        int n = inner.Read(va, root, buffer);
        for (int i = 0; i < n; i++)
        {
            if (va + (ulong)i >= start && va + (ulong)i < end)
            {
                buffer[i] = 0;
            }
        }

        return n;
    }

    public bool TryTranslate(ulong va, Pa root, out Pa pa) => inner.TryTranslate(va, root, out pa);

    public ulong UnmappedExtent(ulong va, Pa root) => inner.UnmappedExtent(va, root);

    public Vmi.Core.Arch.Amd64.Registers? TryGetRegisters(VcpuId vcpu) => inner.TryGetRegisters(vcpu);
}

/// <summary>
/// -Profile: a Volatility 3 ISF made from the kernel's DWARF gives the same processes and modules as the kernel's own
/// BTF, also when the BTF is gone; a profile of another kernel, or a broken one, is refused with a clear error.
/// </summary>
[Collection("RealGuest")]
public sealed class ProfileTests(RealGuestFixture guests, ProfileFixture profiles) : IClassFixture<ProfileFixture>
{
    private static readonly (string Struct, string Path)[] UsedFields =
    [
        ("task_struct", "tasks"), ("task_struct", "pid"), ("task_struct", "tgid"), ("task_struct", "comm"), ("task_struct", "real_parent"),
        ("task_struct", "mm"), ("task_struct", "cred"), ("task_struct", "__state"), ("task_struct", "exit_state"), ("task_struct", "start_boottime"),
        ("task_struct", "flags"), ("task_struct", "worker_private"), ("kthread", "full_name"), ("cred", "uid.val"), ("mm_struct", "pgd"),
        ("mm_struct", "arg_start"), ("mm_struct", "arg_end"), ("module", "list"), ("module", "name"), ("module", "state"),
        ("module", "core_layout.base"), ("module", "core_layout.size"), ("cpuinfo_x86", "x86_capability"), ("module", "kallsyms"),
        ("module", "syms"), ("module", "num_syms"), ("module", "gpl_syms"), ("module", "num_gpl_syms"), ("mod_kallsyms", "symtab"),
        ("mod_kallsyms", "num_symtab"), ("mod_kallsyms", "strtab"), ("mod_kallsyms", "typetab"), ("kernel_symbol", "value_offset"), ("kernel_symbol", "name_offset"),
    ];

    public static TheoryData<string, string> Images => new() { { "kaslr", "elf" }, { "la57", "kdump" }, { "pti", "raw" } };

    private IsfProfile Profile => IsfProfile.Load(profiles.Path);

    [Fact]
    public void The_profile_from_DWARF_places_every_field_we_use_where_the_kernels_BTF_does()
    {
        RealGuest g = guests.Get("kaslr");
        using MemoryImage image = g.Open("elf");
        using var core = new VmiCore(image);
        LinuxKernel kernel = LinuxKernel.Open(new CoreGuestMemory(core, image.Vmcoreinfo));
        IKernelTypes btf = kernel.Types!;
        IsfProfile profile = Profile;
        Assert.StartsWith("Linux version ", profile.Banner, StringComparison.Ordinal);
        foreach ((string s, string path) in UsedFields)
        {
            Assert.True(btf.TryGetField(s, path, out KernelField b), $"BTF: {s}.{path}");
            Assert.True(profile.TryGetField(s, path, out KernelField d), $"profile: {s}.{path}");
            Assert.Equal((b.Offset, b.Size), (d.Offset, d.Size));
        }
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void With_the_BTF_blanked_the_profile_gives_the_same_processes_and_modules(string variant, string format)
    {
        RealGuest g = guests.Get(variant);
        using MemoryImage image = g.Open(format);
        using var core = new VmiCore(image);
        var memory = new CoreGuestMemory(core, image.Vmcoreinfo);
        LinuxKernel withBtf = LinuxKernel.Open(memory);
        var blanked = new BlankedMemory(memory, withBtf.Symbols.GetAddress("__start_BTF"), withBtf.Symbols.GetAddress("__stop_BTF"));

        // No BTF and no profile: symbols still work, the lists say what is missing and what to give.
        LinuxKernel bare = LinuxKernel.Open(blanked);
        Assert.Null(bare.Types);
        Assert.Equal(withBtf.Symbols.Count, bare.Symbols.Count);
        var e = Assert.Throws<LinuxIntrospectionException>(() => bare.GetProcesses().ToList());
        Assert.Contains("BTF blob", e.Message, StringComparison.Ordinal);
        Assert.Contains("-Profile", e.Message, StringComparison.Ordinal);

        LinuxKernel viaProfile = LinuxKernel.Open(blanked, Profile);
        Assert.IsType<IsfProfile>(viaProfile.Types);
        Assert.Equal($"ISF profile '{System.IO.Path.GetFileName(profiles.Path)}' ({Profile.Count} types; banner and 6 symbols agree)", viaProfile.Info.TypeSource);
        Assert.Equal(withBtf.Info.PtiEnabled, viaProfile.Info.PtiEnabled);
        Assert.Equal(variant == "pti", viaProfile.Info.PtiEnabled);

        var warnings = new List<string>();
        List<LinuxProcess> expected = withBtf.GetProcesses(warning: warnings.Add).ToList();
        List<LinuxProcess> actual = viaProfile.GetProcesses(warning: warnings.Add).ToList();
        Assert.Empty(warnings);
        Assert.Equal(expected, actual); // records: every field, command lines and CR3s included
        Assert.Equal(g.Tasks.Select(t => t.Pid).Where(p => p != g.PrinterPid).Order(), actual.Select(p => p.Pid).Where(p => p != 0 && p < g.PrinterPid).Order());
        // the profile of make-isf.py has no btf_module or btf layouts, so modules' BTF is not found through it
        Assert.Equal(withBtf.GetModules().Select(m => m with { BtfTypeCount = null }).ToList(), viaProfile.GetModules(warning: warnings.Add).ToList());
        Assert.All(withBtf.GetModules(), m => Assert.True(m.HasBtf));
        var noBase = Assert.Throws<LinuxIntrospectionException>(() => viaProfile.ModuleTypes("quota_tree"));
        Assert.Contains("types come from the profile", noBase.Message, StringComparison.Ordinal);
        Assert.Equal(g.Modules.Select(m => (m.Name, m.Base, m.Size)), viaProfile.GetModules().Select(m => (m.Name, m.Base, m.Size)));
        RealGuestTruthTests.AssertModuleSymbols(g.Truth, viaProfile); // module.kallsyms, mod_kallsyms and kernel_symbol from the profile
        Assert.Empty(warnings);
    }

    private LinuxKernel OpenKaslrWith(JsonNode profile, string name)
    {
        RealGuest g = guests.Get("kaslr");
        using MemoryImage image = g.Open("elf");
        using var core = new VmiCore(image);
        LinuxKernel k = LinuxKernel.Open(new CoreGuestMemory(core, image.Vmcoreinfo), IsfProfile.Parse(System.Text.Encoding.UTF8.GetBytes(profile.ToJsonString()), name));
        return k;
    }

    private JsonNode ProfileJson() => JsonNode.Parse(File.ReadAllText(profiles.Path))!;

    [Fact]
    public void A_profile_of_another_kernel_is_refused_by_its_banner()
    {
        JsonNode doc = ProfileJson();
        doc["symbols"]!["linux_banner"]!["constant_data"] = Convert.ToBase64String("Linux version 6.1.0-99-amd64 (someone@else) #1 SMP\n\0"u8);
        var e = Assert.Throws<LinuxIntrospectionException>(() => OpenKaslrWith(doc, "other.json"));
        Assert.Contains("The profile 'other.json' is for another kernel: it was made for \"Linux version 6.1.0-99-amd64 (someone@else) #1 SMP\", but the guest runs \"Linux version 6.1.0-", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_profile_of_another_build_is_refused_by_its_symbols()
    {
        JsonNode doc = ProfileJson();
        doc["symbols"]!.AsObject().Remove("linux_banner"); // no banner to compare: the symbols must tell
        ulong initTask = doc["symbols"]!["init_task"]!["address"]!.GetValue<ulong>();
        doc["symbols"]!["init_task"]!["address"] = initTask + 0x40;
        var e = Assert.Throws<LinuxIntrospectionException>(() => OpenKaslrWith(doc, "rebuilt.json"));
        Assert.Contains("The profile 'rebuilt.json' does not match this kernel: it puts init_task at _text+0x", e.Message, StringComparison.Ordinal);
        Assert.Contains("another build", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_profile_without_a_field_we_need_names_it()
    {
        JsonNode doc = ProfileJson();
        doc["user_types"]!["task_struct"]!["fields"]!.AsObject().Remove("real_parent");
        LinuxKernel k = OpenKaslrWith(doc, "partial.json");
        var e = Assert.Throws<LinuxIntrospectionException>(() => k.GetProcesses().ToList());
        Assert.Equal("The profile 'partial.json' has no field task_struct.real_parent.", e.Message);
    }

    [Theory]
    [InlineData("{", "is not valid JSON")]
    [InlineData("[1, 2]", "is not an ISF profile: it has no \"user_types\" object")]
    [InlineData("{\"symbols\": {}}", "is not an ISF profile")]
    public void A_file_that_is_not_a_profile_is_refused(string text, string message)
    {
        var e = Assert.Throws<LinuxIntrospectionException>(() => IsfProfile.Parse(System.Text.Encoding.UTF8.GetBytes(text), "bad.json"));
        Assert.Contains("The profile 'bad.json' " + message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compressed_profiles_gzip_is_read_and_xz_is_named()
    {
        byte[] json = File.ReadAllBytes(profiles.Path);
        using var packed = new MemoryStream();
        using (var gz = new System.IO.Compression.GZipStream(packed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
        {
            gz.Write(json);
        }

        IsfProfile p = IsfProfile.Parse(packed.ToArray(), "p.json.gz");
        Assert.Equal(Profile.Count, p.Count);
        Assert.Equal(Profile.Banner, p.Banner);
        var e = Assert.Throws<LinuxIntrospectionException>(() => IsfProfile.Parse([0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0, 1, 2], "p.json.xz"));
        Assert.Contains("xz -dk", e.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<LinuxIntrospectionException>(() => IsfProfile.Load("/nonexistent/profile.json"));
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_members_and_anonymous_loops_end_in_an_error_or_not_found_never_a_hang()
    {
        // anonymous members that contain each other, and an offset that is not a number
        const string text = """
            {"user_types": {
              "a": {"size": 8, "kind": "struct", "fields": {"unnamed_field_0": {"offset": 0, "anonymous": true, "type": {"kind": "struct", "name": "b"}}}},
              "b": {"size": 8, "kind": "struct", "fields": {"unnamed_field_0": {"offset": 0, "anonymous": true, "type": {"kind": "struct", "name": "a"}}}},
              "c": {"size": 8, "kind": "struct", "fields": {"x": {"offset": "zero", "type": {"kind": "base", "name": "int"}}}}
            }, "base_types": {"int": {"size": 4, "signed": true, "kind": "int", "endian": "little"}}}
            """;
        IsfProfile p = IsfProfile.Parse(System.Text.Encoding.UTF8.GetBytes(text), "loop.json");
        Assert.False(p.TryGetField("a", "missing", out _));
        var e = Assert.Throws<LinuxIntrospectionException>(() => p.TryGetField("c", "x", out _));
        Assert.Contains("The profile 'loop.json' is malformed where it describes c.x", e.Message, StringComparison.Ordinal);
    }
}
