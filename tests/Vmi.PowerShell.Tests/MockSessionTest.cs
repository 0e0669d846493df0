using System.Globalization;
using System.Management.Automation;
using Vmi.Mock;

namespace Vmi.PowerShell.Tests;

/// <summary>A runspace with the module imported and the demo guest connected as $s (the default session).</summary>
public abstract class MockSessionTest : IDisposable
{
    protected MockSessionTest()
    {
        Host = new PowerShellHost();
        Session = Host.Get<VmiSession>("$s = Connect-VmiDomain -Mock; $s");
    }

    protected PowerShellHost Host { get; }

    protected VmiSession Session { get; }

    /// <summary>The mock driver behind the session: its call log, pause count and responses show what the cmdlets did.</summary>
    protected MockGuest Guest => Session.Guest.GetDriver<MockGuest>()!;

    protected static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    protected static T Base<T>(PSObject o) => (T)o.BaseObject;

    public void Dispose()
    {
        Host.Dispose();
        GC.SuppressFinalize(this);
    }
}
