using System.Management.Automation;
using Vmi.Core;

namespace Vmi.PowerShell.Tests;

/// <summary>Issue 10: silent wrong answers and raw .NET texts at the cmdlet surface, through the real PowerShell engine.</summary>
public sealed class ReliabilityCmdletTests : MockSessionTest
{
    private const string Hello = "0xffffffff82000100"; // "Hello from the V..." in the demo guest

    [Theory]
    [InlineData("([byte]0x48)", 0)] // 'H': once searched for 0x72 ("72" read as hex), found at 'r' (offset 7)
    [InlineData("0x56", 15)] // 'V'
    [InlineData("$b", 15)] // $b = 0x56, an int
    [InlineData("@(0x6c, 0x6c)", 2)] // "ll"
    [InlineData("'48 65'", 0)] // text stays hex text
    public void A_number_as_a_pattern_is_a_byte_value(string pattern, int offset)
    {
        VmiMemoryMatch m = Host.Get<VmiMemoryMatch>($"$b = 0x56; Find-VmiMemory -Pattern {pattern} -Address {Hello} -Length 16 -First 1");
        Assert.Equal(0xffffffff82000100UL + (ulong)offset, m.Address);
    }

    [Theory]
    [InlineData("300")]
    [InlineData("(-1)")]
    [InlineData("@(1, 256)")]
    public void A_number_that_is_not_a_byte_is_refused_clearly(string pattern)
    {
        ErrorRecord e = Host.RunFailing($"Find-VmiMemory -Pattern {pattern} -Address {Hello} -Length 16");
        Assert.Contains("from 0 to 255", e.Exception.Message, StringComparison.Ordinal);
    }
}

/// <summary>Issue 10: typed addresses keep their meaning or are refused; frame ranges never wrap.</summary>
public sealed class TypedAddressTests : MockSessionTest
{
    [Fact]
    public void A_gfn_is_never_taken_as_a_byte_address()
    {
        // once: frame 0x1200 was read at physical address 0x1200
        ErrorRecord e = Host.RunFailing("Read-VmiMemory ([Vmi.Core.Gfn]0x1200) -Physical -Length 8");
        Assert.Contains("is a frame number, not a byte address", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("0x1200000", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pa_given_for_a_frame_means_the_frame_that_holds_it_and_a_va_is_refused()
    {
        VmiPageAccess a = Host.Get<VmiPageAccess>("Get-VmiMemoryAccess ([Vmi.Core.Pa]0x1234567)");
        Assert.Equal(0x1234UL, a.Gfn);
        ErrorRecord e = Host.RunFailing("Get-VmiMemoryAccess ([Vmi.Core.Va]::new(4096))");
        Assert.Contains("has no frame until it is translated", e.Exception.Message, StringComparison.Ordinal);
    }

    private const string DataPa = "0x1200100"; // the physical address of "Hello from the V..."

    [Fact]
    public void A_pa_as_the_address_of_a_read_means_physical_without_physical()
    {
        // once: the Pa's number was translated as a virtual address (a page fault, or another page's bytes)
        VmiMemoryRecord typed = Host.Get<VmiMemoryRecord>($"Read-VmiMemory ([Vmi.Core.Pa]{DataPa}) -Length 16");
        VmiMemoryRecord physical = Host.Get<VmiMemoryRecord>($"Read-VmiMemory {DataPa} -Physical -Length 16");
        Assert.True(typed.Physical);
        Assert.Null(typed.Cr3);
        Assert.Equal(0x1200100UL, typed.Address);
        Assert.Equal(physical.Bytes, typed.Bytes);
        Assert.Equal("Hello from the V"u8.ToArray(), typed.Bytes);
        Assert.Equal(0x89ABCDEFU, Host.Get<uint>("Read-VmiMemory ([Vmi.Core.Pa]0x1200010) -As UInt32"));
        Assert.Equal("Hello from the Vmi.PowerShell demo guest!", Host.Get<string>($"Read-VmiMemory ([Vmi.Core.Pa]{DataPa}) -As String"));
    }

    [Fact]
    public void A_pa_as_the_address_of_a_write_a_search_or_a_breakpoint_means_physical()
    {
        Host.RunClean("Write-VmiMemory ([Vmi.Core.Pa]0x1200800) -Bytes 1,2,3,4 -Confirm:$false");
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, Host.Get<VmiMemoryRecord>("Read-VmiMemory 0x1200800 -Physical -Length 4").Bytes);

        VmiMemoryMatch hit = Host.Get<VmiMemoryMatch>($"Find-VmiMemory -String 'from' -Address ([Vmi.Core.Pa]{DataPa}) -Length 16");
        Assert.True(hit.Physical);
        Assert.Equal(0x1200106UL, hit.Address);

        // A Pa start needs no -Length: the default range of a physical search, all guest memory from there.
        VmiMemoryMatch first = Host.Get<VmiMemoryMatch>("Find-VmiMemory -String 'Hello from the V' -Address ([Vmi.Core.Pa]0x1200000) -First 1");
        Assert.True(first.Physical);
        Assert.Equal(0x1200100UL, first.Address);

        VmiBreakpointInfo bp = Host.Get<VmiBreakpointInfo>("Set-VmiBreakpoint ([Vmi.Core.Pa]0x10002a0) -Confirm:$false");
        Assert.True(bp.Physical);
        Assert.Equal(0x10002a0UL, bp.Address);
    }

    [Theory]
    [InlineData("Read-VmiMemory ([Vmi.Core.Va]::new(0xffffffff82000100u)) -Physical -Length 8")]
    [InlineData("Write-VmiMemory ([Vmi.Core.Va]::new(0xffffffff82000800u)) -Physical -Bytes 1 -Confirm:$false")]
    [InlineData("Find-VmiMemory -String 'x' -Address ([Vmi.Core.Va]::new(0xffffffff82000100u)) -Length 16 -Physical")]
    [InlineData("Set-VmiBreakpoint ([Vmi.Core.Va]::new(0xffffffff810002a0u)) -Physical -Confirm:$false")]
    public void A_va_with_physical_is_refused_naming_both(string script)
    {
        ErrorRecord e = Host.RunFailing(script);
        Assert.StartsWith(VmiErrorIds.AddressKindMismatch + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("0xffffffff8", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("-Physical", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("[Vmi.Core.Va]", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, Guest.CallCount(Vmi.Mock.MockOperation.WritePage));
    }

    [Fact]
    public void A_pa_with_cr3_is_refused()
    {
        ErrorRecord e = Host.RunFailing($"Read-VmiMemory ([Vmi.Core.Pa]{DataPa}) -Cr3 0x100000 -Length 8");
        Assert.StartsWith(VmiErrorIds.AddressKindMismatch + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("-Cr3", e.Exception.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Resolve-VmiAddress ([Vmi.Core.Pa]0x1200100)")]
    [InlineData("Get-VmiSymbol -Address ([Vmi.Core.Pa]0x1200100)")]
    public void A_pa_where_only_a_virtual_address_has_meaning_is_refused(string script)
    {
        // once: Resolve-VmiAddress translated the physical address's number as if it were virtual
        ErrorRecord e = Host.RunFailing(script);
        Assert.Contains("is a physical address", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("[ulong]", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_page_table_root_is_physical_a_va_is_refused_and_a_pa_taken()
    {
        ErrorRecord e = Host.RunFailing("Read-VmiMemory 0xffffffff82000100 -Cr3 ([Vmi.Core.Va]0x100000) -Length 8");
        Assert.Contains("is a virtual address", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("physical", e.Exception.Message, StringComparison.Ordinal);
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>("Read-VmiMemory 0xffffffff82000100 -Cr3 ([Vmi.Core.Pa]0x100000) -Length 16");
        Assert.Equal("Hello from the V"u8.ToArray(), r.Bytes);
        Assert.Equal(0x100000UL, r.Cr3);
    }

    [Fact]
    public void A_view_remap_takes_frames_a_gfn_is_its_frame_and_a_pa_the_frame_that_holds_it()
    {
        // once: -Gfn refused a [Vmi.Core.Gfn] and took a [Vmi.Core.Pa]'s byte address as a frame number
        VmiViewInfo v = Host.Get<VmiViewInfo>("New-VmiView");
        Host.RunClean($"Set-VmiViewGfn -View {v.View} -Gfn ([Vmi.Core.Gfn]0x1200) -NewGfn ([Vmi.Core.Pa]0x1201234)");
        Assert.Equal(new Gfn(0x1201), Guest.ResolveViewGfn(new View(v.View), new Gfn(0x1200)));
        ErrorRecord e = Host.RunFailing($"Set-VmiViewGfn -View {v.View} -Gfn ([Vmi.Core.Va]::new(0xffffffff82000000u)) -Reset");
        Assert.Contains("has no frame until it is translated", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Piped_records_bind_as_before()
    {
        // Resolve-VmiAddress's record binds Va (and Cr3): a virtual read of the same bytes.
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>("Resolve-VmiAddress 0xffffffff82000100 | Read-VmiMemory -Length 16");
        Assert.False(r.Physical);
        Assert.Equal(0xffffffff82000100UL, r.Address);
        Assert.Equal("Hello from the V"u8.ToArray(), r.Bytes);

        // A typed address piped by value keeps its meaning too.
        VmiMemoryRecord byValue = Host.Get<VmiMemoryRecord>($"[Vmi.Core.Pa]::new({DataPa}) | Read-VmiMemory -Length 16");
        Assert.True(byValue.Physical);
        Assert.Equal("Hello from the V"u8.ToArray(), byValue.Bytes);

        // A physical record stays physical down the pipeline.
        VmiMemoryRecord p = Host.Get<VmiMemoryRecord>($"Read-VmiMemory ([Vmi.Core.Pa]{DataPa}) -Length 4 | Read-VmiMemory -Length 16");
        Assert.True(p.Physical);
        Assert.Equal("Hello from the V"u8.ToArray(), p.Bytes);
    }

    [Theory]
    [InlineData("Read-VmiMemory ([ulong]::MaxValue) -Length 2")]
    [InlineData("Read-VmiMemory ([ulong]::MaxValue) -Length 2 -Physical")]
    [InlineData("Read-VmiMemory 0xfffffffffffffffcu -As UInt32 -Count 2 -Physical")]
    [InlineData("Read-VmiMemory 0xfffffffffffffff8u -As UInt64 -Count 2")]
    [InlineData("Write-VmiMemory ([ulong]::MaxValue) -Bytes 1,2 -Physical -Confirm:$false")]
    [InlineData("Find-VmiMemory -String 'ab' -Address 0xfffffffffffff000u -Length 0x2000 -Physical")]
    [InlineData("Find-VmiMemory -String 'ab' -Address 0xfffffffffffff000u -Length 0x2000")]
    public void A_range_past_the_end_of_the_address_space_is_refused_and_never_wraps(string script)
    {
        ErrorRecord e = Assert.Single(Host.Run(script + " -ErrorAction SilentlyContinue -ErrorVariable ev; $ev").Select(o => o.BaseObject).OfType<ErrorRecord>());
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("runs past the end of the address space", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, Guest.CallCount(Vmi.Mock.MockOperation.WritePage));
    }

    [Fact]
    public void Setting_access_past_the_last_frame_is_refused_and_never_wraps()
    {
        var errors = Host.Run("Set-VmiMemoryAccess ([ulong]::MaxValue) -Count 2 -Access R -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable ev; $ev");
        ErrorRecord e = Assert.Single(errors.Select(o => o.BaseObject).OfType<ErrorRecord>());
        Assert.Contains("last frame", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, Guest.CallCount(Vmi.Mock.MockOperation.SetMemoryAccess));
    }

    [Fact]
    public void A_frame_range_past_the_last_frame_is_one_error_and_never_wraps()
    {
        var errors = Host.Run("Get-VmiMemoryAccess ([ulong]::MaxValue) -Count 2 -ErrorAction SilentlyContinue -ErrorVariable ev; $ev");
        ErrorRecord e = Assert.Single(errors.Select(o => o.BaseObject).OfType<ErrorRecord>());
        Assert.Contains("run past the guest's last frame", e.Exception.Message, StringComparison.Ordinal);
        ulong max = Session.MaxGfn;
        var many = Host.Run($"Get-VmiMemoryAccess {Hex(max - 1)} -Count 512 -ErrorAction SilentlyContinue -ErrorVariable ev; $ev");
        Assert.Single(many.Select(o => o.BaseObject).OfType<ErrorRecord>()); // once 512 errors, one per frame
        Assert.Empty(many.Select(o => o.BaseObject).OfType<VmiPageAccess>());
    }
}

/// <summary>Issue 10: what once reached users as raw .NET text, and exits that once failed loudly.</summary>
public sealed class ClearErrorTests : MockSessionTest
{
    [Fact]
    public void A_session_id_no_session_has_is_not_found_however_large()
    {
        // once: "Value was either too large or too small for an Int32"
        ErrorRecord e = Host.RunFailing("Read-VmiMemory 0x1000 -Physical -Session ([long]::MaxValue)");
        Assert.Contains("No open session matches '9223372036854775807'", e.Exception.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Int32", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_wildcard_is_a_clear_error_with_its_own_id()
    {
        // once: WildcardPatternException with the id RuntimeException
        ErrorRecord e = Host.RunFailing("Get-VmiSession -Name '['");
        Assert.StartsWith(VmiErrorIds.InvalidWildcard + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("'[' is not a valid wildcard pattern", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("backtick", e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal("mock", Host.Get<VmiSession>("Get-VmiSession -Name 'mo*'").Name); // good patterns still match
    }

    [Theory]
    [InlineData("-1", "UInt8", new byte[] { 0xff })] // once: "Cannot use '-1' as an address"
    [InlineData("-128", "UInt8", new byte[] { 0x80 })]
    [InlineData("-2", "UInt16", new byte[] { 0xfe, 0xff })]
    [InlineData("0xffffffff", "UInt32", new byte[] { 0xff, 0xff, 0xff, 0xff })] // the Int32 -1 PowerShell makes of it
    [InlineData("255", "UInt8", new byte[] { 0xff })]
    public void A_negative_value_is_written_in_twos_complement_when_the_type_holds_it(string value, string type, byte[] expected)
    {
        Host.RunClean($"Write-VmiMemory 0x1200100 -Physical -Value {value} -As {type} -Confirm:$false");
        Assert.Equal(expected, Host.Get<VmiMemoryRecord>($"Read-VmiMemory 0x1200100 -Physical -Length {expected.Length}").Bytes);
    }

    [Theory]
    [InlineData("-129", "UInt8", "from -128 to 255")]
    [InlineData("256", "UInt8", "from -128 to 255")]
    [InlineData("0x10000", "UInt16", "from -32768 to 65535")]
    public void A_value_outside_the_types_range_is_refused_naming_the_range(string value, string type, string range)
    {
        Host.Run($"Write-VmiMemory 0x1200100 -Physical -Value {value} -As {type} -Confirm:$false");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains(range, e.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, Guest.CallCount(Vmi.Mock.MockOperation.WritePage));
    }

    [Theory]
    [InlineData("(-1)")]
    [InlineData("0xffffffff")] // the Int32 -1: once read at 0xffffffff, now refused with the way to write it
    public void A_negative_int_is_never_an_address(string address)
    {
        ErrorRecord e = Host.RunFailing($"Read-VmiMemory {address} -Physical -Length 1");
        Assert.Contains("An address is never negative, and -1 is", e.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("0xffffffffu", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_record_pipes_its_session_to_disconnect()
    {
        // once: "Cannot use 'Vmi.PowerShell.VmiVcpuRegisters' as a session" although the docs said it binds
        Host.RunClean("Get-VmiRegister -Vcpu 0 | Disconnect-VmiDomain");
        Assert.Equal(VmiSessionState.Closed, Session.State);
    }

    [Fact]
    public void Disconnecting_inside_the_sessions_own_wait_ends_the_wait_quietly()
    {
        // once: a terminating Vmi.SessionClosed from Wait-VmiEvent
        var output = Host.RunClean("Enable-VmiMonitor Cr3 -Confirm:$false; Wait-VmiEvent -Timeout 60 | ForEach-Object { $_.Response = 'Deny'; Disconnect-VmiDomain }; 'after the wait'");
        Assert.Equal("after the wait", Assert.Single(output).BaseObject);
        Assert.Equal(VmiSessionState.Closed, Session.State);
        Assert.Single(Guest.Responses); // the event in hand was answered
    }

    [Fact]
    public void A_large_cache_budget_is_taken_without_allocating_it()
    {
        // once: 1.15 GB per session up front
        VmiCacheInfo c = Host.Get<VmiCacheInfo>("$t = Connect-VmiDomain -Mock -CacheSize 16777216; Get-VmiCache -Session $t | Select-Object -First 1");
        Assert.Equal(16777216, c.Capacity);
    }
}

/// <summary>Issue 10: a disconnect from another runspace cancels a Save in progress, says so, and leaves no file behind.</summary>
public sealed class SaveDisconnectTests : MockSessionTest
{
    [Fact]
    public async Task Disconnect_from_another_runspace_cancels_a_running_save()
    {
        string dir = Directory.CreateTempSubdirectory("vmi-save-").FullName;
        try
        {
            // The save blocks on its first page read until the disconnect has begun: deterministic, no timing.
            using var reading = new ManualResetEventSlim();
            int once = 0;
            CancellationToken closing = Session.Guest.Closing;
            Guest.FailNext(Vmi.Mock.MockOperation.MapPage, null, _ =>
            {
                if (Interlocked.Exchange(ref once, 1) == 0)
                {
                    reading.Set();
                    closing.WaitHandle.WaitOne(TimeSpan.FromMinutes(5)); // a hang guard
                }

                return false;
            });

            string target = Path.Combine(dir, "guest.elf");
            Task<System.Collections.ObjectModel.Collection<PSObject>> save = Task.Run(() => Host.Run($"Save-VmiMemory '{target}'"));
            Assert.True(reading.Wait(TimeSpan.FromMinutes(5)), "the save did not start reading");
            using (var other = new PowerShellHost())
            {
                other.Run("Disconnect-VmiDomain -Session $t", new Dictionary<string, object?> { ["t"] = Session });
                Assert.Empty(other.LastErrors);
            }

            await save.WaitAsync(TimeSpan.FromMinutes(5));
            ErrorRecord e = Assert.Single(Host.LastErrors);
            Assert.StartsWith(VmiErrorIds.SessionClosed + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
            Assert.Contains("was disconnected", e.Exception.Message, StringComparison.Ordinal);
            Assert.Empty(Directory.GetFileSystemEntries(dir)); // neither the image nor its temporary file
            Assert.True(Guest.IsDisposed);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>Issue 10: a disconnect from another runspace while a handler runs gives the answer the handler set.</summary>
public sealed class HandlerDisconnectTests : MockSessionTest
{
    [Fact]
    public async Task Disconnect_from_another_runspace_keeps_the_handlers_answer()
    {
        // once: the handler's Deny was replaced by Continue when the other runspace's disconnect released the event
        using var ready = new ManualResetEventSlim();
        var variables = new Dictionary<string, object?> { ["ready"] = ready, ["g"] = Guest };
        Task wait = Task.Run(() =>
        {
            try
            {
                // The handler sets Deny, then stays until the disconnect has finished (the mock disposed): a hang guard of 5 minutes.
                Host.Run("Enable-VmiMonitor Cr3 -Confirm:$false; Wait-VmiEvent -Timeout 300 | ForEach-Object { $_.Response = 'Deny'; $ready.Set(); $n = 0; while (-not $g.IsDisposed -and $n++ -lt 6000) { Start-Sleep -Milliseconds 50 } }", variables);
            }
            catch (RuntimeException)
            {
                // the wait ends with the session closed under it: what is checked is the answer
            }
        });
        Assert.True(ready.Wait(TimeSpan.FromMinutes(5)), "the handler did not run");
        using (var other = new PowerShellHost())
        {
            other.Run("Disconnect-VmiDomain -Session $t", new Dictionary<string, object?> { ["t"] = Session });
            Assert.Empty(other.LastErrors);
        }

        await wait.WaitAsync(TimeSpan.FromMinutes(6));
        Vmi.Mock.MockEventAnswer answer = Assert.Single(Guest.Responses);
        Assert.Equal(Vmi.Core.VmiEventResponseFlags.Deny, answer.Response.Flags);
        Assert.Equal(0x100000UL, Guest.GetRegistersUnlogged(new Vmi.Core.VcpuId(0)).Cr3); // the CR3 write was denied
    }
}
