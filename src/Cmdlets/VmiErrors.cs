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
        if (exception is VcpuNotFoundException or ViewNotFoundException or VmiNoSessionException or GuestReadOnlyException or RootNotPresentException)
        {
            // The message already says how to fix it; the recommended action repeats the fix for $Error readers.
            record.ErrorDetails = new ErrorDetails(exception.Message) { RecommendedAction = exception.Message };
        }

        return record;
    }

    public static (string Id, ErrorCategory Category) Classify(Exception exception) => exception switch
    {
        VmiNoSessionException => (VmiErrorIds.NoSession, ErrorCategory.ResourceUnavailable),
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

    /// <summary>An error for bad input the cmdlet found itself (not from the engine).</summary>
    public static ErrorRecord InvalidArgument(string message, object? target) =>
        new(new ArgumentException(message), VmiErrorIds.InvalidArgument, ErrorCategory.InvalidArgument, target);
}

/// <summary>No open session matched what -Session was given.</summary>
public sealed class VmiSessionNotFoundException(string message) : VmiException(message);
