using Vmi.Core;

namespace Vmi.Os.Linux;

/// <summary>The guest's kernel could not be understood: names what was missing and what to try.</summary>
public sealed class LinuxIntrospectionException : VmiException
{
    public LinuxIntrospectionException(string message)
        : base(message)
    {
    }

    public LinuxIntrospectionException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
