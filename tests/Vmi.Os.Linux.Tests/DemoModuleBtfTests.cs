using Vmi.Core;
using Vmi.Mock;
using L = Vmi.Mock.DemoGuestLayout;
using X = Vmi.Mock.Linux.DemoLinuxLayout;

namespace Vmi.Os.Linux.Tests;

/// <summary>
/// Modules' split BTF on the demo guest (its btf_modules list holds vmi_demo's and qemu_fw_cfg's), and the same list
/// made hostile: loops, bogus pointers, absurd sizes end with a warning or a clear error, never a hang.
/// </summary>
public sealed class DemoModuleBtfTests
{
    private static (VmiCore Core, LinuxKernel Kernel) Open()
    {
        var core = new VmiCore(DemoGuest.Create());
        return (core, LinuxKernel.Open(new CoreGuestMemory(core)));
    }

    private static AccessContext Kernel(ulong va) => AccessContext.Paging(new Va(va), new Pa(L.KernelCr3));

    [Fact]
    public void Modules_with_btf_are_listed_and_their_structs_resolve_through_the_kernels_types()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            Assert.Equal(X.ModulesWithBtf, k.GetModuleBtf().Select(m => m.Module));
            List<LinuxModule> modules = k.GetModules().ToList();
            Assert.Equal(X.Modules.Select(m => X.ModulesWithBtf.Contains(m.Name)), modules.Select(m => m.HasBtf));
            var kernelTypes = Assert.IsType<BtfTypes>(k.Types);
            foreach (string name in X.ModulesWithBtf)
            {
                BtfTypes t = k.ModuleTypes(name);
                Assert.Equal(kernelTypes.LastId + 1, t.FirstId);
                Assert.Equal(modules.Single(m => m.Name == name).BtfTypeCount, (uint)t.Count);
                string s = X.ModuleStruct(name);
                Assert.Equal((0UL, 16UL, 24UL, 8UL), (t.GetField(s, "list").Offset, t.GetField(s, "counter").Offset, t.GetField(s, "tag").Offset, t.GetField(s, "tag").Size));
                Assert.Equal(8UL, t.GetField(s, "list.prev").Offset); // the kernel's list_head
                ModuleBtfChecks.AssertEveryReferenceResolves(t, name);
            }

            Assert.False(k.ModuleTypes("vmi_demo").TryFindStruct(X.ModuleStruct("qemu_fw_cfg"), out _)); // each module its own
            var e = Assert.Throws<LinuxIntrospectionException>(() => k.ModuleTypes("nls_ascii"));
            Assert.Contains("no BTF", e.Message, StringComparison.Ordinal);
            Assert.Contains("vmi_demo, qemu_fw_cfg", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_btf_modules_list_that_loops_ends_with_a_warning()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            List<LinuxModuleBtf> all = k.GetModuleBtf().ToList();
            ulong list = k.Types!.GetField("btf_module", "list").Offset;
            ulong second = core.ReadU64(Kernel(X.BtfModulesVa)); // head.next: the first entry; its next is the second
            second = core.ReadU64(Kernel(second));
            core.WriteU64(Kernel(second + list), second + list); // the second entry points at itself
            var warnings = new List<string>();
            Assert.Equal(all.Count, k.GetModuleBtf(warning: warnings.Add).Count());
            Assert.Contains("loops back", Assert.Single(warnings), StringComparison.Ordinal);
            warnings.Clear();
            Assert.Equal(X.Modules.Count, k.GetModules(warning: warnings.Add).Count()); // the module list itself is fine
            Assert.Contains("btf_modules list loops back", Assert.Single(warnings), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(0xDEAD_0000_0000_0000UL)]
    [InlineData(0xFFFF_C900_1234_5000UL)]
    [InlineData(0UL)]
    public void A_bogus_btf_modules_pointer_ends_the_walk_with_a_warning(ulong bogus)
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            ulong first = core.ReadU64(Kernel(X.BtfModulesVa));
            core.WriteU64(Kernel(first), bogus);
            var warnings = new List<string>();
            Assert.Single(k.GetModuleBtf(warning: warnings.Add));
            Assert.Contains("not readable kernel memory", Assert.Single(warnings), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_btf_modules_walk_stops_at_the_entry_limit()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            var warnings = new List<string>();
            Assert.Single(k.GetModuleBtf(new LinuxWalkOptions { MaxEntries = 1 }, warnings.Add));
            Assert.Contains("more than 1", Assert.Single(warnings), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(0xFFFF_FFFFu, "more than")]
    [InlineData(LinuxKernel.MaxModuleBtfSize + 1, "more than")]
    [InlineData(0x10_0000u, "not all readable")] // 1 MiB from the image data: runs off its mapping
    public void An_absurd_btf_size_is_refused_with_a_clear_error(uint size, string what)
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            LinuxModuleBtf m = k.GetModuleBtf().First();
            core.WriteU32(Kernel(m.BtfAddress + k.Types!.GetField("btf", "data_size").Offset), size);
            LinuxModuleBtf damaged = k.GetModuleBtf().First();
            Assert.Equal(size, damaged.DataSize);
            var e = Assert.Throws<LinuxIntrospectionException>(() => k.ModuleTypes(m.Module));
            Assert.Contains(what, e.Message, StringComparison.Ordinal);
            Assert.Contains(m.Module, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_module_btf_that_does_not_continue_the_kernels_is_refused()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            LinuxModuleBtf m = k.GetModuleBtf().First();
            core.WriteU32(Kernel(m.BtfAddress + k.Types!.GetField("btf", "start_id").Offset), 7);
            var e = Assert.Throws<LinuxIntrospectionException>(() => k.ModuleTypes(m.Module));
            Assert.Contains("continues a base", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_damaged_module_btf_blob_fails_with_the_modules_name()
    {
        (VmiCore core, LinuxKernel k) = Open();
        using (core)
        {
            LinuxModuleBtf m = k.GetModuleBtf().Last();
            core.WriteU16(Kernel(m.DataAddress), 0x1234); // the magic
            var e = Assert.Throws<LinuxIntrospectionException>(() => k.ModuleTypes(m.Module));
            Assert.Contains($"Module {m.Module}: The BTF blob is not valid: magic", e.Message, StringComparison.Ordinal);
        }
    }
}
