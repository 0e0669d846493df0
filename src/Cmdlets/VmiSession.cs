using System.Globalization;
using Vmi.Core;
using Vmi.Core.Arch.Amd64;
using Vmi.Core.Drivers;

namespace Vmi.PowerShell;

[Newtonsoft.Json.JsonConverter(typeof(Newtonsoft.Json.Converters.StringEnumConverter))]
public enum VmiSessionState
{
    Open,
    Closed,
}

/// <summary>
/// A connection to one guest: what <c>Connect-VmiDomain</c> returns and every other cmdlet takes as <c>-Session</c>.
/// The PowerShell face of a <see cref="VmiGuest"/>: a name, an id, the runspace that owns it. Everything else —
/// the lock, read-only, events, close and restore — is the guest's.
/// </summary>
public sealed class VmiSession : IDisposable
{
    private static int s_nextId;

    /// <summary>
    /// Opens <paramref name="target"/> through the engine's driver registry, builds its guest and registers the session
    /// (the runspace's default from now on); <paramref name="warn"/> hears what the driver found worth saying (a domain left
    /// changed by an earlier session). A target that cannot be opened is <paramref name="failure"/> (null is returned),
    /// with nothing left open: the guest, or the driver, is disposed.
    /// </summary>
    internal static VmiSession? Open(VmiTarget target, VmiGuestOptions options, string? name, Action<string> warn, out Exception? failure)
    {
        VmiGuest? guest = null;
        try
        {
            VmiOpenedDriver opened = VmiDriverRegistry.Open(target with { ReadOnly = options.ReadOnly });
            guest = new VmiGuest(opened.Driver, options); // disposes its driver when it cannot be built
            var session = new VmiSession(guest, name ?? opened.Name, opened.Source, VmiSessionRegistry.CurrentRunspaceId);
            VmiSessionRegistry.Add(session);
            failure = null;
            if (opened.Notice is { } notice)
            {
                warn(notice);
            }

            return session;
        }
        catch (Exception e) when (e is VmiException or ArgumentException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            guest?.Dispose();
            failure = e;
            return null;
        }
    }

    internal VmiSession(VmiGuest guest, string name, string source, Guid ownerRunspace)
    {
        Guest = guest;
        Id = Interlocked.Increment(ref s_nextId);
        Name = name;
        Source = source;
        OwnerRunspace = ownerRunspace;
        ConnectedAt = DateTime.Now;
    }

    /// <summary>
    /// The guest object, for scripts that need what no cmdlet offers. Safe from any thread or runspace (every member
    /// takes the guest's lock); a read-only session's guest cannot change the guest.
    /// </summary>
    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiGuest Guest { get; }

    /// <summary>A number unique in this process; <c>-Session 1</c> finds the session by it.</summary>
    public int Id { get; }

    /// <summary>The session's name (the domain name, the image file name, or "mock").</summary>
    public string Name { get; }

    /// <summary>The driver behind the session, e.g. "Mock", "Xen", "ELF core".</summary>
    public string Driver => Guest.DriverName;

    /// <summary>What was connected to: a domain, an image path, the demo guest.</summary>
    public string Source { get; }

    /// <summary>True when the session refuses every change to the guest.</summary>
    public bool ReadOnly => Guest.IsReadOnly;

    public VmiSessionState State => Guest.IsClosed ? VmiSessionState.Closed : VmiSessionState.Open;

    public DateTime ConnectedAt { get; }

    public int VcpuCount => Info.VcpuCount;

    public uint PageSize => Info.PageSize;

    public ulong MaxGfn => Info.MaxGfn.Value;

    public IReadOnlyList<VmiCapability> Capabilities => Guest.Capabilities;

    /// <summary>The paging mode of vCPU 0 (how virtual addresses are translated by default); null once closed.</summary>
    public PagingMode? PagingMode
    {
        get
        {
            try
            {
                return Guest.PagingMode;
            }
            catch (GuestClosedException)
            {
                return null;
            }
        }
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiInfo Info => Guest.Info;

    /// <summary>The runspace that created the session; closing that runspace closes the session.</summary>
    internal Guid OwnerRunspace { get; }

    /// <summary>The runspace whose Disconnect-VmiDomain closed the session, once one did.</summary>
    internal Guid? ClosedByRunspace { get; set; }

    public bool Supports(VmiCapability capability) => Guest.Supports(capability);

    internal void ThrowIfClosed()
    {
        if (Guest.IsClosed)
        {
            throw new VmiSessionClosedException(this);
        }
    }

    /// <summary>Closes the guest (restores it, releases the driver) once; never throws. False when restoring failed.</summary>
    internal bool Close(Action<string>? log = null) => Guest.Close(log);

    /// <summary>
    /// Disconnects on behalf of the current runspace (its own pipeline then ends quietly): leaves the registry, restores
    /// the guest and releases the driver. Each thing that could not be restored goes to <paramref name="failure"/>;
    /// false when any could not.
    /// </summary>
    internal bool Disconnect(Action<string> failure)
    {
        VmiSessionRegistry.Remove(this);
        ClosedByRunspace ??= VmiSessionRegistry.CurrentRunspaceId;
        return Close(failure);
    }

    public void Dispose()
    {
        VmiSessionRegistry.Remove(this);
        Close();
    }

    /// <summary>The name: what a session turns into when a record holding it is serialised, and what -Session accepts back.</summary>
    public override string ToString() => Name;
}

/// <summary>A cmdlet was given a session that has been disconnected.</summary>
public sealed class VmiSessionClosedException(VmiSession session)
    : VmiException(string.Format(CultureInfo.InvariantCulture, Messages.SessionClosed, session?.Name, session?.Id))
{
    public VmiSession? Session { get; } = session;
}

/// <summary>No session was given and none is connected.</summary>
public sealed class VmiNoSessionException()
    : VmiException(Messages.NoSession);

/// <summary>A virtual address was given, but there is no CR3 to translate it: no -Cr3, and a driver without registers.</summary>
public sealed class VmiNoTranslationRootException(VmiSession session, Exception? innerException = null)
    : VmiException(string.Format(CultureInfo.InvariantCulture, Messages.NoTranslationRoot, session?.Name, session?.Driver), innerException);
