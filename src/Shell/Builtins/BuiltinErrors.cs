using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Error ids of the builtins, and the one place that turns a failure into an <see cref="ErrorRecord"/>.</summary>
internal static class BuiltinErrors
{
    public const string BadPropertyKey = "IllegalKey";
    public const string NoExpression = "ExpressionMissing";
    public const string ExpressionFailed = "PropertyEvaluation";
    public const string PropertyNotFound = "ExpandPropertyNotFound";
    public const string MeasurePropertyNotFound = "GenericMeasurePropertyNotFound";
    public const string NotNumeric = "NotNumeric";
    public const string PathNotFound = "PathNotFound";
    public const string ReadFailed = "ReadError";
    public const string WriteFailed = "WriteError";
    public const string BadEncoding = "BadEncoding";
    public const string NoClobber = "NoClobber";
    public const string BadClixml = "InvalidClixml";

    public static ErrorRecord Create(Exception exception, string id, ErrorCategory category, object? target) =>
        new(exception, id, category, target);

    public static ErrorRecord Argument(string message, string id, object? target) =>
        new(new ArgumentException(message), id, ErrorCategory.InvalidArgument, target);

    /// <summary>The category a file-system failure belongs to.</summary>
    public static ErrorRecord FromIO(Exception exception, string id, string path) => new(
        exception,
        id,
        exception switch
        {
            FileNotFoundException or DirectoryNotFoundException or ItemNotFoundException => ErrorCategory.ObjectNotFound,
            UnauthorizedAccessException => ErrorCategory.PermissionDenied,
            _ => id == WriteFailed ? ErrorCategory.WriteError : ErrorCategory.ReadError,
        },
        path);
}
