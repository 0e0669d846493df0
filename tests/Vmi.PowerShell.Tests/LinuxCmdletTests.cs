using Vmi.Mock;
using Vmi.Mock.Linux;
using X = Vmi.Mock.Linux.DemoLinuxLayout;

namespace Vmi.PowerShell.Tests;

/// <summary>Get-VmiKernel, Get-VmiSymbol, Get-VmiProcess and Get-VmiModule on the demo guest, through the real PowerShell engine.</summary>
public sealed class LinuxCmdletTests : MockSessionTest
{
    [Fact]
    public void Get_VmiKernel_reports_the_demo_kernel()
    {
        VmiKernel k = Host.Get<VmiKernel>("Get-VmiKernel");
        Assert.Equal("6.6.0-vmi-demo", k.Release);
        Assert.Equal(DemoGuestLayout.KernelTextVa, k.TextBase);
        Assert.Equal("IA32_LSTAR", k.TextFoundBy);
        Assert.StartsWith("kallsyms in guest memory", k.SymbolSource, StringComparison.Ordinal);
        Assert.StartsWith("BTF in guest memory", k.TypeSource, StringComparison.Ordinal);
    }

    [Fact]
    public void Get_VmiSymbol_by_name_by_wildcard_and_by_address()
    {
        Assert.Equal(X.SysOpenatVa, Host.Get<VmiSymbol>("Get-VmiSymbol __x64_sys_openat").Address);
        string[] syscalls = Host.Run("Get-VmiSymbol '__x64_sys_*' | ForEach-Object Name").Select(o => o.ToString()!).ToArray();
        Assert.Equal(["__x64_sys_openat", "__x64_sys_read", "__x64_sys_write", "__x64_sys_execve"], syscalls);
        VmiSymbol near = Host.Get<VmiSymbol>($"Get-VmiSymbol -Address {Hex(X.SysOpenatVa + 0x21)}");
        Assert.Equal(("__x64_sys_openat", 0x21UL, "__x64_sys_openat+0x21"), (near.Name, near.Offset, near.ToString()));
        // the record binds as -Address downstream: the banner symbol reads as the banner
        Assert.Equal(DemoGuestLayout.KernelBanner, Host.Get<string>("Get-VmiSymbol linux_banner | Read-VmiMemory -As String"));
    }

    [Fact]
    public void Get_VmiSymbol_finds_module_symbols_by_name_wildcard_and_address()
    {
        DemoModule ascii = X.Modules.Single(m => m.Name == "nls_ascii");
        VmiSymbol probe = Host.Get<VmiSymbol>("Get-VmiSymbol nls_ascii_probe");
        Assert.Equal(("nls_ascii", ascii.Base + 0x100, 't'), (probe.Module, probe.Address, probe.Type));
        Assert.Equal(["vmi_demo_probe", "nls_ascii_probe", "qemu_fw_cfg_probe"], Host.Run("Get-VmiSymbol '*_probe' | ForEach-Object Name").Select(o => o.ToString()!));
        // an address inside a module is named by that module's nearest symbol, as "name+0x.. [module]"
        Assert.Equal("nls_ascii_remove+0x10 [nls_ascii]", Host.Get<VmiSymbol>($"Get-VmiSymbol -Address {Hex(ascii.Base + 0x190)}").ToString());
        Assert.Null(Host.Get<VmiSymbol>("Get-VmiSymbol __x64_sys_openat").Module);
    }

    [Fact]
    public void An_unknown_symbol_is_a_clear_non_terminating_error()
    {
        Host.Run("Get-VmiSymbol no_such_symbol");
        Assert.Contains(Host.LastErrors, e => e.FullyQualifiedErrorId.StartsWith(VmiErrorIds.SymbolNotFound, StringComparison.Ordinal)
            && e.Exception.Message.Contains("no_such_symbol", StringComparison.Ordinal));
    }

    [Fact]
    public void A_profile_that_is_missing_or_of_another_kernel_is_a_clear_error_and_the_kernel_stays_usable()
    {
        Host.Run("Get-VmiProcess -Profile ./no-such-profile.json");
        Assert.Contains(Host.LastErrors, e => e.FullyQualifiedErrorId.StartsWith(VmiErrorIds.OsNotRecognized, StringComparison.Ordinal)
            && e.Exception.Message.Contains("no-such-profile.json' does not exist", StringComparison.Ordinal));

        // an ISF profile whose banner is another kernel's: refused before any of its layouts is used
        string path = Path.Combine(Path.GetTempPath(), $"vmi-other-kernel-{Environment.ProcessId}.json");
        string banner = Convert.ToBase64String("Linux version 5.10.0-99-amd64 (someone@else) #1 SMP\n\0"u8);
        File.WriteAllText(path, """{"metadata": {"format": "6.2.0"}, "base_types": {}, "user_types": {}, "enums": {}, "symbols": {"linux_banner": {"address": 0, "constant_data": """ + "\"" + banner + "\"}}}");
        try
        {
            Host.Run($"Get-VmiKernel -Profile '{path}'");
            Assert.Contains(Host.LastErrors, e => e.FullyQualifiedErrorId.StartsWith(VmiErrorIds.OsNotRecognized, StringComparison.Ordinal)
                && e.Exception.Message.Contains("is for another kernel: it was made for \"Linux version 5.10.0-99-amd64 (someone@else) #1 SMP\", but the guest runs \"Linux version 6.6.0-vmi-demo", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }

        Assert.StartsWith("BTF in guest memory", Host.Get<VmiKernel>("Get-VmiKernel").TypeSource, StringComparison.Ordinal); // nothing kept from the refused profile
    }

    [Fact]
    public void Get_VmiProcess_lists_the_demo_tasks_and_filters()
    {
        var all = Host.Run("Get-VmiProcess").Select(o => (VmiProcess)o.BaseObject).ToList();
        Assert.Equal(X.Tasks.Select(t => (t.Pid, t.Ppid, t.Name, t.CommandLine)), all.Select(p => (p.Pid, p.Ppid, p.Name, p.CommandLine)));
        Assert.Equal([412], Host.Run("Get-VmiProcess -Name ssh*").Select(o => ((VmiProcess)o.BaseObject).Pid));
        Assert.Equal(["bash"], Host.Run("Get-VmiProcess -Id 1337").Select(o => ((VmiProcess)o.BaseObject).Name));
    }

    [Fact]
    public void A_process_piped_into_Read_VmiMemory_reads_inside_that_process()
    {
        Assert.Equal(DemoGuestLayout.ProcessASecret, Host.Get<string>($"Get-VmiProcess sshd | Read-VmiMemory {Hex(DemoGuestLayout.UserSecretVa)} -As String"));
        Assert.Equal(DemoGuestLayout.ProcessBSecret, Host.Get<string>($"Get-VmiProcess bash | Read-VmiMemory {Hex(DemoGuestLayout.UserSecretVa)} -As String"));
    }

    [Fact]
    public void Get_VmiModule_lists_the_demo_modules()
    {
        var modules = Host.Run("Get-VmiModule").Select(o => (VmiModule)o.BaseObject).ToList();
        Assert.Equal(X.Modules.Select(m => (m.Name, m.Base, m.Size)), modules.Select(m => (m.Name, m.Base, m.Size)));
        Assert.Equal(["nls_ascii"], Host.Run("Get-VmiModule nls*").Select(o => ((VmiModule)o.BaseObject).Name));
        Assert.Equal(X.Modules.Select(m => X.ModulesWithBtf.Contains(m.Name)), modules.Select(m => m.HasBtf));
        // a struct the module defines, resolved through its split BTF (read on this call)
        Assert.Equal(24UL, Host.Get<ulong>("(Get-VmiModule vmi_demo).GetBtf().GetField('vmi_demo_ctx', 'tag').Offset"));
    }

    [Theory]
    [InlineData("VmiProcess", "Get-VmiProcess -Id 2", "[kthreadd]")]
    [InlineData("VmiProcess", "Get-VmiProcess -Id 412", "0x180000")]
    [InlineData("VmiModule", "Get-VmiModule vmi_demo", "0xffffffffc0002000")]
    [InlineData("VmiSymbol", "Get-VmiSymbol -Address 0xffffffff81001010", "__x64_sys_openat+0x10")]
    [InlineData("VmiKernel", "Get-VmiKernel", "0xffffffff81000000")]
    public void The_views_script_blocks_render_the_records(string view, string command, string expected)
    {
        // the bare engine has no Out-String: run the view's own script blocks on a record, as the formatter would
        var scripts = System.Xml.Linq.XDocument.Load(System.IO.Path.Combine(PowerShellHost.ModuleDirectory, "Vmi.Format.ps1xml"))
            .Descendants("View").Single(v => (string?)v.Element("Name") == view).Descendants("ScriptBlock").Select(e => e.Value).ToArray();
        Assert.NotEmpty(scripts);
        Host.Runspace.SessionStateProxy.SetVariable("viewScripts", scripts);
        string[] shown = Host.RunClean($"$r = {command}; foreach ($s in $viewScripts) {{ $r | ForEach-Object ([scriptblock]::Create($s)) }}")
            .Where(o => o is not null).Select(o => o.ToString()).ToArray();
        Assert.Contains(expected, shown);
    }
}
