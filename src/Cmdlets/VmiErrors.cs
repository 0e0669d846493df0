using System.Management.Automation;
using Vmi.Core;
using Vmi.Core.Drivers;

namespace Vmi.PowerShell;

/// <summary>The one place an exception becomes an <see cref="ErrorRecord"/>: a stable id, the right category, the target object.</summary>
public static class VmiErrors
{
    public static ErrorRecord FromException(Exception exception, object? target)
    {
        ArgumentNullException.ThrowIfNull(exception);
        (string id, ErrorCategory category) = Classify(exception);
        var record = new ErrorRecord(exception, id, category, target);

        // .NET appends " (Parameter 'x')" to an ArgumentException's message; the error names the input itself.
        // (No RecommendedAction: the message already says how to fix it, and pwsh would print it a second time.)
        if (exception is ArgumentException { ParamName: not null } && ParameterSuffix(exception.Message) is { } plain)
        {
            record.ErrorDetails = new ErrorDetails(plain);
        }

        return record;
    }

    public static (string Id, ErrorCategory Category) Classify(Exception exception) => exception switch
    {
        VmiNoSessionException => (VmiErrorIds.NoSession, ErrorCategory.ResourceUnavailable),
        VmiAddressKindMismatchException => (VmiErrorIds.AddressKindMismatch, ErrorCategory.InvalidArgument),
        VmiSessionClosedException => (VmiErrorIds.SessionClosed, ErrorCategory.ResourceUnavailable),
        VmiSessionNotFoundException => (VmiErrorIds.SessionNotFound, ErrorCategory.ObjectNotFound),
        GuestReadOnlyException => (VmiErrorIds.ReadOnly, ErrorCategory.PermissionDenied),
        GuestClosedException => (VmiErrorIds.SessionClosed, ErrorCategory.ResourceUnavailable),
        PageFaultException => (VmiErrorIds.PageFault, ErrorCategory.ReadError),
        GfnNotPresentException => (VmiErrorIds.GfnNotPresent, ErrorCategory.ReadError),
        NonCanonicalAddressException => (VmiErrorIds.NonCanonical, ErrorCategory.InvalidArgument),
        RootNotPresentException or VmiNoTranslationRootException or NoTranslationRootException => (VmiErrorIds.RootNotPresent, ErrorCategory.InvalidArgument),
        InvalidAddressWidthException => (VmiErrorIds.InvalidAddressWidth, ErrorCategory.InvalidArgument),
        CapabilityNotSupportedException => (VmiErrorIds.NotSupported, ErrorCategory.NotImplemented),
        VcpuNotFoundException => (VmiErrorIds.VcpuNotFound, ErrorCategory.ObjectNotFound),
        ViewNotFoundException => (VmiErrorIds.ViewNotFound, ErrorCategory.ObjectNotFound),
        VmiFormatException => (VmiErrorIds.FormatError, ErrorCategory.InvalidData),
        Vmi.Os.Linux.LinuxIntrospectionException => (VmiErrorIds.OsNotRecognized, ErrorCategory.InvalidData),
        VmiSymbolNotFoundException => (VmiErrorIds.SymbolNotFound, ErrorCategory.ObjectNotFound),
        VmiDriverUnavailableException u => ("Vmi." + u.DriverName + "Unavailable", ErrorCategory.ResourceUnavailable),
        VmiDriverException => (VmiErrorIds.DriverError, ErrorCategory.DeviceError),
        NotSupportedException => (VmiErrorIds.NotSupported, ErrorCategory.NotImplemented),
        ObjectDisposedException => (VmiErrorIds.SessionClosed, ErrorCategory.ResourceUnavailable),
        ArgumentException or FormatException or OverflowException => (VmiErrorIds.InvalidArgument, ErrorCategory.InvalidArgument),
        InvalidOperationException => (VmiErrorIds.InvalidOperation, ErrorCategory.InvalidOperation),
        OperationCanceledException => (VmiErrorIds.Stopped, ErrorCategory.OperationStopped),
        VmiException => (VmiErrorIds.Error, ErrorCategory.NotSpecified),
        _ => (VmiErrorIds.Error, ErrorCategory.NotSpecified),
    };

    /// <summary>The message without .NET's " (Parameter 'x')", or null when it has none.</summary>
    private static string? ParameterSuffix(string message)
    {
        int at = message.IndexOf(" (Parameter '", StringComparison.Ordinal);
        int end = at < 0 ? -1 : message.IndexOf("')", at, StringComparison.Ordinal);
        return at > 0 && end > 0 ? message[..at] + message[(end + 2)..] : null;
    }

    /// <summary>An error for bad input the cmdlet found itself (not from the engine).</summary>
    public static ErrorRecord InvalidArgument(string message, object? target) =>
        new(new ArgumentException(ParameterSuffix(message) ?? message), VmiErrorIds.InvalidArgument, ErrorCategory.InvalidArgument, target);
}

/// <summary>No open session matched what -Session was given.</summary>
public sealed class VmiSessionNotFoundException(string message) : VmiException(message);
