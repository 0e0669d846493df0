using System.Globalization;
using Vmi.Core;
using Vmi.Qemu;

// Usage: Vmi.Qemu.Helper <qmp socket> <hex address>...
// Connects, sets a breakpoint at each address, prints "READY <n>" and answers breakpoint hits (printing "HIT") until killed.
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Vmi.Qemu.Helper <qmp socket> <hex address>...");
    return 2;
}

using QemuDriver driver = QemuDriver.Connect(args[0]);
foreach (string a in args.Skip(1))
{
    driver.SetBreakpoint(new BreakpointRequest(new Va(ulong.Parse(a, NumberStyles.HexNumber, CultureInfo.InvariantCulture))));
}

Console.WriteLine($"READY {driver.Breakpoints.Count}");
Console.Out.Flush();
while (true)
{
    driver.WaitForEvents(TimeSpan.FromSeconds(1), 1, e =>
    {
        Console.WriteLine($"HIT {e.Registers.Rip:x}");
        Console.Out.Flush();
        return VmiEventResponse.Continue;
    });
}
