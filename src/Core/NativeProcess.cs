using System.Runtime.InteropServices;

namespace Vmi.Core;

/// <summary>The process itself, where .NET has no call for it.</summary>
public static partial class NativeProcess
{
    /// <summary>
    /// Ends the process now with <paramref name="status"/> (libc's <c>_exit</c>): no more .NET exit handlers run. For a
    /// process whose guests are already restored and whose normal exit is stuck in somebody else's handler.
    /// </summary>
    public static void ExitNow(int status) => SysExit(status);

    [LibraryImport("libc", EntryPoint = "_exit")]
    private static partial void SysExit(int status);
}
