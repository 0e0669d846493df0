namespace Vmi.Core.Tests;

public class EventTests
{
    public static TheoryData<string, MonitorKind, uint> Valid() => new()
    {
        { "Cr0", MonitorKind.ControlRegister, 0 },
        { "cr3", MonitorKind.ControlRegister, 3 },
        { " CR4 ", MonitorKind.ControlRegister, 4 },
        { "Xcr0", MonitorKind.ControlRegister, 16 },
        { "Msr:0xC0000082", MonitorKind.Msr, 0xC0000082 },
        { "msr 0xc0000080", MonitorKind.Msr, 0xC0000080 },
        { "Msr=376", MonitorKind.Msr, 376 },
        { "Msr: 0x1b", MonitorKind.Msr, 0x1B },
        { "Breakpoint", MonitorKind.Breakpoint, 0 },
        { "debugexception", MonitorKind.DebugException, 0 },
        { "Singlestep", MonitorKind.Singlestep, 0 },
        { "CPUID", MonitorKind.Cpuid, 0 },
        { "Io", MonitorKind.Io, 0 },
        { "Hypercall", MonitorKind.Hypercall, 0 },
        { "GuestRequest", MonitorKind.GuestRequest, 0 },
        { "DescriptorAccess", MonitorKind.DescriptorAccess, 0 },
    };

    [Theory]
    [MemberData(nameof(Valid))]
    public void Parse_accepts_the_documented_names(string text, MonitorKind kind, uint parameter)
    {
        EventMonitor m = EventMonitor.Parse(text);
        Assert.Equal(kind, m.Kind);
        Assert.Equal(parameter, m.Parameter);
        Assert.Equal(m, EventMonitor.Parse(m.ToString())); // ToString round-trips
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("Cr2")]
    [InlineData("Cr8")]
    [InlineData("3")]
    [InlineData("+3")]
    [InlineData("-1")]
    [InlineData("+5")]
    [InlineData("Cr0,Cr3")]
    [InlineData("Io,Cpuid")]
    [InlineData("Cr0, Cr4")]
    [InlineData("ControlRegister")]
    [InlineData("Msr")]
    [InlineData("Msr:")]
    [InlineData("Msr:ff")]
    [InlineData("Msr:0x100000000")]
    [InlineData("Cr3:1")]
    [InlineData("Breakpoints")]
    public void Parse_rejects_anything_else_with_a_helpful_message(string text)
    {
        Assert.False(EventMonitor.TryParse(text, out _));
        var e = Assert.Throws<FormatException>(() => EventMonitor.Parse(text));
        Assert.Contains("Msr:0xC0000082", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_listed_name_parses()
    {
        foreach (string n in EventMonitor.Names)
        {
            Assert.True(EventMonitor.TryParse(n, out _), n);
        }
    }

    public static TheoryData<VmiEventResponse> ValidResponses() => new()
    {
        VmiEventResponse.Continue,
        VmiEventResponse.Deny,
        VmiEventResponse.Emulate,
        VmiEventResponse.ReinjectInterrupt,
        VmiEventResponse.ToggleSinglestep(),
        VmiEventResponse.ToggleSinglestep(new View(2)),
        VmiEventResponse.FastSinglestep(new View(1)),
        VmiEventResponse.SwitchView(new View(3)),
        new VmiEventResponse(VmiEventResponseFlags.Continue, null, new Registers { Rip = 0x1000 }),
    };

    [Theory]
    [MemberData(nameof(ValidResponses))]
    public void Valid_responses_validate(VmiEventResponse response) => response.Validate();

    [Fact]
    public void Fast_singlestep_needs_a_view()
    {
        var e = Assert.Throws<ArgumentException>(() => new VmiEventResponse(VmiEventResponseFlags.ToggleFastSinglestep).Validate());
        Assert.Contains("View", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Singlestep_and_fast_singlestep_together_are_refused()
    {
        var r = new VmiEventResponse(VmiEventResponseFlags.ToggleFastSinglestep | VmiEventResponseFlags.ToggleSinglestep, new View(1));
        Assert.Throws<ArgumentException>(r.Validate);
    }

    [Fact]
    public void WaitForEvents_validates_the_handlers_answer_and_still_answers_the_event()
    {
        var driver = new FullDriver();
        driver.Queue.Add(new VmiEvent(new VcpuId(0), View.Default, VmiEventFlags.VcpuPaused, new Registers(), new GuestRequestReason()));
        Assert.Throws<ArgumentException>(() => driver.WaitForEvents(TimeSpan.Zero, _ => new VmiEventResponse(VmiEventResponseFlags.ToggleFastSinglestep)));
        Assert.Single(driver.Responses);
        Assert.Equal(0, driver.EventsPending);
    }

    [Fact]
    public void WaitForEvents_passes_a_null_answer_on_as_continue()
    {
        var driver = new FullDriver();
        driver.Queue.Add(new VmiEvent(new VcpuId(1), View.Default, VmiEventFlags.VcpuPaused, new Registers(), new CpuidReason(1, 0, 2)));
        Assert.Equal(1, driver.WaitForEvents(TimeSpan.Zero, _ => null!));
        Assert.Same(VmiEventResponse.Continue, Assert.Single(driver.Responses));
    }
}
