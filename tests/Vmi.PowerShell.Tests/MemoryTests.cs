using System.Management.Automation;
using System.Text;
using Vmi.Core;
using Vmi.Mock;
using L = Vmi.Mock.DemoGuestLayout;

namespace Vmi.PowerShell.Tests;

public class ReadMemoryTests : MockSessionTest
{
    [Fact]
    public void BytesComeBackAsRecordsWithAddressAndBytes()
    {
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>($"Read-VmiMemory {Hex(L.AsciiStringVa)} -Length 16");
        Assert.Equal(L.AsciiStringVa, r.Address);
        Assert.False(r.Physical);
        Assert.Equal(L.KernelCr3, r.Cr3);
        Assert.Equal(Encoding.ASCII.GetBytes(L.AsciiString)[..16], r.Bytes);
        Assert.Same(Session, r.Session);
    }

    [Fact]
    public void TheHexDumpLooksLikeFormatHex()
    {
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>($"Read-VmiMemory {Hex(L.AsciiStringVa)} -Length 20");
        string[] lines = r.HexDump().Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("Address", lines[0], StringComparison.Ordinal);
        Assert.Equal("FFFFFFFF82000100  4865 6C6C 6F20 6672 6F6D 2074 6865 2056  Hello from the V", lines[1]);
        Assert.StartsWith("FFFFFFFF82000110  6D69 2E50 ", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public void TheFormatViewRendersADeserializedRecordToo()
    {
        // Export-Clixml / Import-Clixml (or a remote session) turns the record into a property bag without its methods;
        // the view must still render the dump from its properties. Run the view's own script block on both.
        var view = System.Xml.Linq.XDocument.Load(Path.Combine(PowerShellHost.ModuleDirectory, "Vmi.Format.ps1xml"))
            .Descendants("View").Single(v => (string?)v.Element("Name") == "VmiMemoryRecord");
        string script = view.Descendants("ScriptBlock").Single().Value;
        Host.Runspace.SessionStateProxy.SetVariable("viewScript", script);
        string[] shown = Host.RunClean($$"""
            $r = Read-VmiMemory {{Hex(L.AsciiStringVa)}} -Length 20
            $d = [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($r))
            if ($d -is [Vmi.PowerShell.VmiMemoryRecord] -or $d.PSTypeNames[0] -ne 'Deserialized.Vmi.PowerShell.VmiMemoryRecord') { throw 'not a deserialized record' }
            $view = [scriptblock]::Create($viewScript)
            $r | ForEach-Object $view
            $d | ForEach-Object $view
            """).Select(o => o.ToString()).ToArray();
        Assert.Equal(2, shown.Length);
        Assert.Contains("4865 6C6C 6F20 6672 6F6D 2074 6865 2056  Hello from the V", shown[1], StringComparison.Ordinal);
        Assert.Equal(shown[0], shown[1]);
    }

    [Fact]
    public void AddressesTakeNumbersHexStringsAndNegativeHexLiterals()
    {
        // 0xffffffff82000100 typed in PowerShell is a negative Int64; it is taken bit for bit.
        Assert.Equal(L.AsciiString, Host.Get<string>("Read-VmiMemory 0xffffffff82000100 -As String"));
        Assert.Equal(L.AsciiString, Host.Get<string>("Read-VmiMemory '0xffffffff82000100' -As String"));
        Assert.Equal(L.AsciiString, Host.Get<string>("Read-VmiMemory '0xffff_ffff_8200_0100' -As String"));
        Assert.Equal(L.AsciiString, Host.Get<string>($"Read-VmiMemory {L.AsciiStringVa} -As String"));
        Assert.Equal(L.AsciiString, Host.Get<string>($"Read-VmiMemory ([uint64]{L.AsciiStringVa}) -As String"));
    }

    [Fact]
    public void ABadAddressSaysWhatAnAddressLooksLike()
    {
        ErrorRecord e = Host.RunFailing("Read-VmiMemory 'kernel32!foo'");
        Assert.Contains("0x-prefixed", e.Exception.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("UInt64", L.MagicValueVa, L.MagicValue)]
    [InlineData("UInt32", L.MagicValueVa, 0x89AB_CDEFUL)]
    [InlineData("UInt16", L.MagicValueVa, 0xCDEFUL)]
    [InlineData("UInt8", L.MagicValueVa, 0xEFUL)]
    public void IntegersOfEveryWidth(string type, ulong address, ulong expected)
    {
        object value = Host.Run($"Read-VmiMemory {Hex(address)} -As {type}").Single().BaseObject;
        Assert.Equal(expected, Convert.ToUInt64(value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(type switch { "UInt8" => typeof(byte), "UInt16" => typeof(ushort), "UInt32" => typeof(uint), _ => typeof(ulong) }, value.GetType());
    }

    [Fact]
    public void CountReadsConsecutiveValues()
    {
        object[] values = Host.Run($"Read-VmiMemory {Hex(L.MagicValueVa)} -As UInt32 -Count 2").Select(o => o.BaseObject).ToArray();
        Assert.Equal(new object[] { 0x89AB_CDEFu, 0x0123_4567u }, values);
    }

    [Fact]
    public void APointerCanBeFollowedThroughThePipeline()
    {
        VmiPointer p = Host.Get<VmiPointer>($"Read-VmiMemory {Hex(L.PointerVa)} -As Pointer");
        Assert.Equal(L.PointerVa, p.Location);
        Assert.Equal(L.AsciiStringVa, p.Address);
        Assert.Equal(8, p.Width);
        Assert.Equal(L.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(L.PointerVa)} -As Pointer | Read-VmiMemory -As String"));
    }

    [Fact]
    public void StringsAsciiWideAndAcrossAPage()
    {
        Assert.Equal(L.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(L.AsciiStringVa)} -As String"));
        Assert.Equal(L.WideString, Host.Get<string>($"Read-VmiMemory {Hex(L.WideStringVa)} -As WString"));
        Assert.Equal(L.CrossPageString, Host.Get<string>($"Read-VmiMemory {Hex(L.CrossPageStringVa)} -As String"));
    }

    [Fact]
    public void AStringCutAtItsLimitWarnsInsteadOfTruncatingSilently()
    {
        Assert.Equal("Hello", Host.Get<string>($"Read-VmiMemory {Hex(L.AsciiStringVa)} -As String -Length 5"));
        string warning = Assert.Single(Host.LastWarnings);
        Assert.Contains("-Length", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void PhysicalReadsAndReadsUnderACr3OrAVcpu()
    {
        Assert.Equal(L.AsciiString, Host.Get<string>($"Read-VmiMemory {Hex(L.KernelDataPa + 0x100)} -Physical -As String"));
        Assert.Equal(L.ProcessASecret, Host.Get<string>($"Read-VmiMemory {Hex(L.UserSecretVa)} -Cr3 {Hex(L.ProcessACr3)} -As String"));
        Assert.Equal(L.ProcessBSecret, Host.Get<string>($"Read-VmiMemory {Hex(L.UserSecretVa)} -Vcpu 2 -As String"));
        Assert.Equal(L.ProcessASecret, Host.Get<string>($"Read-VmiMemory {Hex(L.UserSecretVa)} -Vcpu 3 -As String"));
    }

    [Fact]
    public void PhysicalAndCr3TogetherIsAClearError()
    {
        Host.Run($"Read-VmiMemory 0x1000 -Physical -Cr3 {Hex(L.KernelCr3)}");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.Contains("-Physical and -Cr3", e.Exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnmappedPageIsANonTerminatingPageFaultNamingTheAddress()
    {
        object[] output = Host.Run($"{Hex(L.UnmappedVa)}, {Hex(L.AsciiStringVa)} | Read-VmiMemory -Length 4").Select(o => o.BaseObject).ToArray();
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.PageFault + ",Vmi.PowerShell.Commands.ReadVmiMemoryCommand", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.ReadError, e.CategoryInfo.Category);
        Assert.Equal(new Va(L.UnmappedVa), e.TargetObject);
        Assert.Contains("0xffffffff82005000", e.Exception.Message, StringComparison.Ordinal);

        // The next address in the pipeline was still read.
        VmiMemoryRecord r = Assert.IsType<VmiMemoryRecord>(Assert.Single(output));
        Assert.Equal(L.AsciiStringVa, r.Address);
    }

    [Fact]
    public void ZeroFillReadsThroughTheHoleAndWarnsWhichPages()
    {
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>($"Read-VmiMemory {Hex(L.UnmappedVa - 8)} -Length 0x1010 -ZeroFill");
        Assert.Empty(Host.LastErrors);
        Assert.All(r.Bytes[..8], b => Assert.Equal(L.BeforeHoleFill, b));
        Assert.All(r.Bytes[8..0x1008], b => Assert.Equal(0, b));
        Assert.All(r.Bytes[0x1008..], b => Assert.Equal(L.AfterHoleFill, b));
        Assert.Equal([L.UnmappedVa], r.ZeroFilledPages);
        string warning = Assert.Single(Host.LastWarnings);
        Assert.Contains("0xffffffff82005000", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void LargeReadsStreamInChunks()
    {
        // 200 KiB of the direct map: records of 64 KiB, contiguous, equal to the physical memory behind them.
        VmiMemoryRecord[] records = Host.Run($"Read-VmiMemory {Hex(L.DirectMapVa + L.KernelTextPa)} -Length 0x32000")
            .Select(o => (VmiMemoryRecord)o.BaseObject).ToArray();
        Assert.Equal(4, records.Length);
        Assert.Equal([0x10000, 0x10000, 0x10000, 0x2000], records.Select(r => r.Length));
        for (int i = 1; i < records.Length; i++)
        {
            Assert.Equal(records[i - 1].Address + (ulong)records[i - 1].Length, records[i].Address);
        }

        byte[] expected = new byte[0x32000];
        Guest.ReadPhysical(new Pa(L.KernelTextPa), expected);
        Assert.Equal(expected, records.SelectMany(r => r.Bytes).ToArray());
    }

    [Fact]
    public void ReadingPastTheEndOfTheAddressSpaceIsRefused()
    {
        Host.Run("Read-VmiMemory 0xfffffffffffffff0 -Length 0x20");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void ANonCanonicalAddressGetsItsOwnError()
    {
        Host.Run("Read-VmiMemory 0x0000900000000000 -Length 4");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.NonCanonical + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void AVcpuThatDoesNotExistIsNamed()
    {
        Host.Run("Read-VmiMemory 0x1000 -Vcpu 9");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.VcpuNotFound + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.ObjectNotFound, e.CategoryInfo.Category);
    }

    [Fact]
    public void ADriverFailureIsADeviceError()
    {
        Host.RunClean("Clear-VmiCache");
        Guest.FailNext(MockOperation.MapPage, new VmiDriverException("mapping refused", 13));
        Host.Run($"Read-VmiMemory {Hex(L.KernelDataPa)} -Physical -Length 4");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.DriverError + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.DeviceError, e.CategoryInfo.Category);
    }
}

public class WriteMemoryTests : MockSessionTest
{
    private byte[] Physical(ulong pa, int length)
    {
        byte[] b = new byte[length];
        Guest.ReadPhysical(new Pa(pa), b);
        return b;
    }

    [Fact]
    public void WhatIfWritesNothing()
    {
        byte[] before = Physical(L.KernelDataPa + 0x100, 4);
        Host.RunClean($"Write-VmiMemory {Hex(L.AsciiStringVa)} -Bytes 1,2,3,4 -WhatIf");
        Assert.Equal(before, Physical(L.KernelDataPa + 0x100, 4));
        Assert.Equal(0, Guest.CallCount(MockOperation.WritePage));
    }

    [Fact]
    public void WritesAreHighImpactAndConfirmByDefault()
    {
        var attr = (CmdletAttribute)Attribute.GetCustomAttribute(typeof(Commands.WriteVmiMemoryCommand), typeof(CmdletAttribute))!;
        Assert.Equal(ConfirmImpact.High, attr.ConfirmImpact);
        Assert.True(attr.SupportsShouldProcess);
        var reg = (CmdletAttribute)Attribute.GetCustomAttribute(typeof(Commands.SetVmiRegisterCommand), typeof(CmdletAttribute))!;
        Assert.Equal(ConfirmImpact.High, reg.ConfirmImpact);
    }

    [Fact]
    public void BytesAreWrittenAndPassThruReadsThemBack()
    {
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>($"Write-VmiMemory {Hex(L.AsciiStringVa)} -Bytes 0x4a,0x6f -Confirm:$false -PassThru");
        Assert.Equal(new byte[] { 0x4a, 0x6f }, r.Bytes);
        Assert.Equal("Jollo from", Encoding.ASCII.GetString(Physical(L.KernelDataPa + 0x100, 10)));
    }

    [Theory]
    [InlineData("UInt64", "0x1122334455667788", new byte[] { 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 })]
    [InlineData("UInt32", "0xffffffff", new byte[] { 0xff, 0xff, 0xff, 0xff })]
    [InlineData("UInt16", "513", new byte[] { 0x01, 0x02 })]
    [InlineData("UInt8", "7", new byte[] { 0x07 })]
    [InlineData("Pointer", "0xffffffff82000200", new byte[] { 0x00, 0x02, 0x00, 0x82, 0xff, 0xff, 0xff, 0xff })]
    [InlineData("String", "'hi'", new byte[] { 0x68, 0x69, 0x00 })]
    [InlineData("WString", "'hi'", new byte[] { 0x68, 0x00, 0x69, 0x00, 0x00, 0x00 })]
    public void ValuesOfEveryType(string type, string value, byte[] expected)
    {
        Host.RunClean($"Write-VmiMemory {Hex(L.KernelDataPa + 0x800)} -Physical -Value {value} -As {type} -Confirm:$false");
        Assert.Equal(expected, Physical(L.KernelDataPa + 0x800, expected.Length));
    }

    [Fact]
    public void ASavedByteRecordPipesBackToRestoreMemory()
    {
        Host.RunClean($"""
            $saved = Read-VmiMemory {Hex(L.AsciiStringVa)} -Length 16
            Write-VmiMemory {Hex(L.AsciiStringVa)} -Bytes (,[byte]0 * 16) -Confirm:$false
            $saved | Write-VmiMemory -Confirm:$false
            """);
        Assert.Equal(Encoding.ASCII.GetBytes(L.AsciiString)[..16], Physical(L.KernelDataPa + 0x100, 16));
        Assert.Equal(2, Guest.CallCount(MockOperation.WritePage));
    }

    [Fact]
    public void AValueTooLargeForItsTypeIsRefused()
    {
        Host.Run($"Write-VmiMemory {Hex(L.KernelDataPa)} -Physical -Value 0x1ff -As UInt8 -Confirm:$false");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(0, Guest.CallCount(MockOperation.WritePage));
    }

    [Fact]
    public void AWriteThatWouldFaultLeavesMemoryUntouched()
    {
        byte[] before = Physical(L.KernelDataPa + 0x4ffc, 4);
        Host.Run($"Write-VmiMemory {Hex(L.UnmappedVa - 4)} -Bytes (1..8) -Confirm:$false");
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.PageFault + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(before, Physical(L.KernelDataPa + 0x4ffc, 4));
        Assert.Equal(0, Guest.CallCount(MockOperation.WritePage));
    }
}

public class ResolveAddressTests : MockSessionTest
{
    [Fact]
    public void TranslatesUnderVcpu0ByDefault()
    {
        VmiTranslation t = Host.Get<VmiTranslation>($"Resolve-VmiAddress {Hex(L.AsciiStringVa)}");
        Assert.Equal(L.AsciiStringVa, t.Va);
        Assert.Equal(L.KernelDataPa + 0x100, t.Pa);
        Assert.Equal((L.KernelDataPa + 0x100) >> 12, t.Gfn);
        Assert.Equal(L.KernelCr3, t.Cr3);
        Assert.True(t.Writable);
        Assert.True(t.NoExecute);
        Assert.False(t.User);
    }

    [Fact]
    public void LargePagesAndOtherAddressSpaces()
    {
        VmiTranslation text = Host.Get<VmiTranslation>($"Resolve-VmiAddress {Hex(L.KernelEntryVa)}");
        Assert.Equal(Vmi.Core.Arch.Amd64.PageSizeKind.Size2M, text.PageSize);
        Assert.Equal(L.KernelTextPa + 0x100, text.Pa);
        VmiTranslation direct = Host.Get<VmiTranslation>($"Resolve-VmiAddress {Hex(L.DirectMapVa + 0x1234)}");
        Assert.Equal(Vmi.Core.Arch.Amd64.PageSizeKind.Size1G, direct.PageSize);
        Assert.Equal(0x1234UL, direct.Pa);
        Assert.Equal(L.ProcessBDataPa + 0x40, Host.Get<VmiTranslation>($"Resolve-VmiAddress {Hex(L.UserSecretVa)} -Vcpu 2").Pa);
        Assert.Equal(L.ProcessADataPa + 0x40, Host.Get<VmiTranslation>($"Resolve-VmiAddress {Hex(L.UserSecretVa)} -Cr3 {Hex(L.ProcessACr3)}").Pa);
    }

    [Fact]
    public void DetailedListsEveryLevel()
    {
        VmiPageWalk w = Host.Get<VmiPageWalk>($"Resolve-VmiAddress {Hex(L.AsciiStringVa)} -Detailed");
        Assert.True(w.Success);
        Assert.Equal(L.KernelDataPa + 0x100, w.Pa);
        Assert.Equal(4, w.Levels.Count);
        Assert.Equal([Vmi.Core.Arch.Amd64.PagingLevel.Pml4, Vmi.Core.Arch.Amd64.PagingLevel.Pdpt, Vmi.Core.Arch.Amd64.PagingLevel.Pd, Vmi.Core.Arch.Amd64.PagingLevel.Pt], w.Levels.Select(l => l.Level));
        Assert.Equal(L.KernelCr3, w.Levels[0].TableAddress);
        Assert.Equal(511, w.Levels[0].Index);
        Assert.All(w.Levels, l => Assert.True(l.Present));
        Assert.Equal(L.KernelDataPa, w.Levels[3].Entry & 0x000F_FFFF_FFFF_F000UL);
        Assert.Contains("=> PA 0x1200100", w.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void ADetailedWalkThatFaultsShowsWhereAndReportsIt()
    {
        VmiPageWalk w = Host.Get<VmiPageWalk>($"Resolve-VmiAddress {Hex(L.UnmappedVa)} -Detailed");
        Assert.False(w.Success);
        Assert.Null(w.Pa);
        Assert.Equal(Vmi.Core.Arch.Amd64.PagingLevel.Pt, w.FaultLevel);
        Assert.False(w.Levels[^1].Present);
        ErrorRecord e = Assert.Single(Host.LastErrors);
        Assert.StartsWith(VmiErrorIds.PageFault + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void TheTranslationPipesIntoReadAndTheAccessCmdlets()
    {
        // Va and Cr3 bind by property name: the read goes through the same address space.
        Assert.Equal(L.ProcessASecret, Host.Get<string>($"Resolve-VmiAddress {Hex(L.UserSecretVa)} -Vcpu 3 | Read-VmiMemory -As String"));
        VmiPageAccess a = Host.Get<VmiPageAccess>($"Resolve-VmiAddress {Hex(L.AsciiStringVa)} | Get-VmiMemoryAccess");
        Assert.Equal(L.KernelDataPa >> 12, a.Gfn);
    }
}

public class FindMemoryTests : MockSessionTest
{
    [Fact]
    public void FindsTheDemoPatternInPhysicalMemory()
    {
        VmiMemoryMatch m = Host.Get<VmiMemoryMatch>("Find-VmiMemory -Pattern '56 4d 49 21 de ad be ef ca fe ba be' -Physical");
        Assert.Equal(L.KernelDataPa + 0x3456, m.Address);
        Assert.True(m.Physical);
        Assert.Equal(L.Pattern.ToArray(), m.Bytes);
    }

    [Fact]
    public void WildcardsBytesArraysAndVirtualRanges()
    {
        VmiMemoryMatch m = Host.Get<VmiMemoryMatch>($"Find-VmiMemory -Pattern '56 4d ?? 21 ?? ad' -Address {Hex(L.KernelDataVa)} -Length 0x10000");
        Assert.Equal(L.PatternVa, m.Address);
        Assert.False(m.Physical);
        Assert.Equal(L.KernelCr3, m.Cr3);
        m = Host.Get<VmiMemoryMatch>($"Find-VmiMemory -Pattern ([byte[]](0xde,0xad,0xbe,0xef)) -Address {Hex(L.KernelDataVa)} -Length 0x10000");
        Assert.Equal(L.PatternVa + 4, m.Address);
    }

    [Fact]
    public void StringsAcrossAPageBoundary()
    {
        VmiMemoryMatch m = Host.Get<VmiMemoryMatch>($"Find-VmiMemory -String 'crosses a page' -Address {Hex(L.KernelDataVa)} -Length 0x4000");
        Assert.Equal(L.CrossPageStringVa + 12, m.Address);
        m = Host.Get<VmiMemoryMatch>($"Find-VmiMemory -WString 'System32' -Address {Hex(L.KernelDataVa)} -Length 0x4000");
        Assert.Equal(L.WideStringVa + 22, m.Address);
    }

    [Fact]
    public void HitsStreamAndFirstStops()
    {
        // The ASCII string is in physical memory once; the direct map sees it again at another VA.
        VmiMemoryMatch[] all = Host.Run("Find-VmiMemory -String 'Hello from the Vmi' -Physical").Select(o => (VmiMemoryMatch)o.BaseObject).ToArray();
        Assert.Single(all);
        VmiMemoryMatch[] two = Host.Run("Find-VmiMemory -Pattern 'aa aa' -Physical -First 2").Select(o => (VmiMemoryMatch)o.BaseObject).ToArray();
        Assert.Equal(2, two.Length);
        Assert.Equal(two[0].Address + 1, two[1].Address);
    }

    [Fact]
    public void UnreadablePagesAreSkippedNotMatched()
    {
        // Zeros: the hole is unmapped, so no hit may lie in it.
        VmiMemoryMatch[] hits = Host.Run($"Find-VmiMemory -Pattern '00 00 00 00' -Address {Hex(L.BeforeHoleVa)} -Length 0x3000").Select(o => (VmiMemoryMatch)o.BaseObject).ToArray();
        Assert.Empty(Host.LastErrors);
        Assert.DoesNotContain(hits, h => h.Address >= L.UnmappedVa - 3 && h.Address < L.AfterHoleVa);
    }

    [Fact]
    public void AHitPipesIntoRead()
    {
        VmiMemoryRecord r = Host.Get<VmiMemoryRecord>("Find-VmiMemory -Pattern '56 4d 49 21' -Physical | Read-VmiMemory");
        Assert.True(r.Physical);
        Assert.Equal(L.KernelDataPa + 0x3456, r.Address);
        Assert.Equal(Commands.ReadVmiMemoryCommand.DefaultLength, r.Length); // what follows the hit, not only the hit
        Assert.Equal("VMI!", Encoding.ASCII.GetString(r.Bytes[..4]));
    }

    [Theory]
    [InlineData("Find-VmiMemory -Pattern 'zz'", "is not a byte pattern")]
    [InlineData("Find-VmiMemory -Pattern '?? ??' -Physical", "not ??")]
    [InlineData("Find-VmiMemory -String abc", "needs a range")]
    public void BadPatternsAndMissingRangesAreExplained(string command, string message)
    {
        ErrorRecord e = Host.RunFailing(command);
        Assert.StartsWith(VmiErrorIds.InvalidArgument + ",", e.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains(message, e.Exception.Message, StringComparison.Ordinal);
    }
}
