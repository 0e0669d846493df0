using System.Reflection;
using System.Runtime.CompilerServices;

namespace Vmi.Core.Tests;

public class RegistersTests
{
    private static readonly Registers Sample = new()
    {
        Rax = 1, Rip = 0xffff_ffff_8100_0000, Rflags = 0x202, Cr3 = 0x10_0000, MsrLstar = 0xffff_ffff_8180_0000,
        Cs = new SegmentRegister(0x10, 0, 0xffff_ffff, 0xa9b), Idtr = new DescriptorTable(0xfffffe00_00000000, 0xfff),
    };

    [Fact]
    public void No_property_can_be_set_after_construction()
    {
        // The old record had public setters: a driver's or a script's copy could be changed and mistaken for the guest's.
        PropertyInfo[] settable = typeof(Registers).GetProperties().Where(p => p.SetMethod is { IsPublic: true }).ToArray();
        Assert.NotEmpty(settable);
        Assert.All(settable, p => Assert.Contains(typeof(IsExternalInit), p.SetMethod!.ReturnParameter.GetRequiredCustomModifiers()));
    }

    [Fact]
    public void The_name_table_covers_every_register_property_in_order()
    {
        string[] properties = typeof(Registers).GetProperties()
            .Where(p => p.SetMethod is not null && p.DeclaringType == typeof(Registers))
            .Select(p => p.Name).ToArray();
        Assert.Equal(properties, Registers.Names);
        Assert.Equal(properties.Where(n => typeof(Registers).GetProperty(n)!.PropertyType == typeof(ulong)), Registers.ValueNames);
        Assert.Equal(["Rax", "Rbx", "Rcx", "Rdx", "Rsp", "Rbp", "Rsi", "Rdi", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "Rip", "Rflags"], Registers.GeneralPurposeNames);
    }

    [Fact]
    public void Every_value_register_reads_and_changes_by_name_without_touching_the_others()
    {
        ulong n = 0x1000;
        foreach (string name in Registers.ValueNames)
        {
            n++;
            Registers changed = Sample.With(name.ToUpperInvariant(), n);
            Assert.Equal(n, changed[name.ToLowerInvariant()]);
            Assert.Equal(n, typeof(Registers).GetProperty(name)!.GetValue(changed));
            Assert.Equal([name], Sample.Differences(changed));
            Assert.NotEqual(n, Sample[name]); // the original is untouched
        }
    }

    [Fact]
    public void Segments_and_tables_read_by_name_and_are_not_set_by_name()
    {
        Assert.Equal(Sample.Cs, Sample["cs"]);
        Assert.Equal(Sample.Idtr, Sample["IDTR"]);
        var e = Assert.Throws<ArgumentException>(() => Sample.With("Cs", 1));
        Assert.Contains("64-bit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_name_lists_the_registers()
    {
        var e = Assert.Throws<ArgumentException>(() => Sample.With("Rpi", 1));
        Assert.Contains("'Rpi' is not a register", e.Message, StringComparison.Ordinal);
        Assert.Contains("MsrLstar", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Sample["eip"]);
        Assert.False(Registers.TryGetName("eip", out _));
        Assert.True(Registers.TryGetName("msrlstar", out string? canonical));
        Assert.Equal("MsrLstar", canonical);
    }

    [Fact]
    public void Several_changes_are_checked_before_any_is_made()
    {
        Registers r = Sample.With([new("Rax", 7), new("cr3", 0x20_0000)]);
        Assert.Equal((7UL, 0x20_0000UL), (r.Rax, r.Cr3));
        Assert.Throws<ArgumentException>(() => Sample.With([new("Rax", 7), new("Gdtr", 1)]));
    }

    [Fact]
    public void General_purpose_registers_are_taken_from_another_record_and_nothing_else()
    {
        Registers other = new() { Rax = 9, R15 = 8, Rip = 7, Rflags = 6, Cr3 = 5, MsrLstar = 4 };
        Registers r = Sample.WithGeneralPurpose(other);
        Assert.Equal((9UL, 8UL, 7UL, 6UL), (r.Rax, r.R15, r.Rip, r.Rflags));
        Assert.Equal((Sample.Cr3, Sample.MsrLstar, Sample.Cs), (r.Cr3, r.MsrLstar, r.Cs));
        Assert.All(r.Differences(other), n => Assert.DoesNotContain(n, Registers.GeneralPurposeNames));
    }

    [Fact]
    public void A_response_may_change_general_purpose_registers_only()
    {
        var e = new VmiEvent(new VcpuId(0), View.Default, VmiEventFlags.VcpuPaused, Sample, new GuestRequestReason());
        new VmiEventResponse(Registers: Sample with { Rax = 2, Rip = Sample.Rip + 3 }).Validate(e);
        new VmiEventResponse(Registers: Sample).Validate(e);

        var refused = Assert.Throws<ArgumentException>(() => new VmiEventResponse(Registers: Sample with { Rax = 2, Cr3 = 0x5000, MsrLstar = 0 }).Validate(e));
        Assert.Contains("Cr3, MsrLstar differ", refused.Message, StringComparison.Ordinal);

        // A response built from nothing is not the event's registers with changes: it would zero CR3 and the rest.
        Assert.Throws<ArgumentException>(() => new VmiEventResponse(Registers: new Registers { Rax = 2 }).Validate(e));
    }
}
