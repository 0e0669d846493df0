namespace Vmi.PowerShell;

/// <summary>
/// The stable error ids of the module (an ErrorRecord's FullyQualifiedErrorId starts with one of these).
/// Scripts may match on them; they do not change between versions.
/// </summary>
public static class VmiErrorIds
{
    public const string NoSession = "Vmi.NoSession";
    public const string SessionClosed = "Vmi.SessionClosed";
    public const string SessionNotFound = "Vmi.SessionNotFound";
    public const string ReadOnly = "Vmi.ReadOnly";
    public const string PageFault = "Vmi.PageFault";
    public const string GfnNotPresent = "Vmi.GfnNotPresent";
    public const string NonCanonical = "Vmi.NonCanonicalAddress";
    public const string RootNotPresent = "Vmi.RootNotPresent";
    public const string InvalidAddressWidth = "Vmi.InvalidAddressWidth";
    public const string NotSupported = "Vmi.NotSupported";
    public const string VcpuNotFound = "Vmi.VcpuNotFound";
    public const string ViewNotFound = "Vmi.ViewNotFound";
    public const string DriverError = "Vmi.DriverError";
    public const string XenUnavailable = "Vmi.XenUnavailable";
    public const string FormatError = "Vmi.FormatError";
    public const string InvalidArgument = "Vmi.InvalidArgument";
    public const string InvalidOperation = "Vmi.InvalidOperation";
    public const string Unreadable = "Vmi.Unreadable";
    public const string InvalidResponse = "Vmi.InvalidResponse";
    public const string RestoreFailed = "Vmi.RestoreFailed";
    public const string Stopped = "Vmi.Stopped";
    public const string OsNotRecognized = "Vmi.OsNotRecognized";
    public const string SymbolNotFound = "Vmi.SymbolNotFound";
    public const string PathNotFound = "Vmi.PathNotFound";
    public const string PathIsDirectory = "Vmi.PathIsDirectory";
    public const string InvalidWildcard = "Vmi.InvalidWildcard";
    public const string AddressKindMismatch = "Vmi.AddressKindMismatch";
    public const string Error = "Vmi.Error";
}
