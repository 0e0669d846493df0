using System.Runtime.CompilerServices;
using Vmi.Core;
using Vmi.Dump;
using Vmi.Os.Linux;

namespace Vmi.PowerShell;

/// <summary>
/// The Linux view of each session, found once (symbols and types do not change while a kernel runs) and kept
/// with the session. Lists (processes, modules) are read fresh on every call.
/// </summary>
internal static class LinuxSessions
{
    private static readonly ConditionalWeakTable<VmiSession, LinuxKernel> s_kernels = new();

    public static LinuxKernel Get(VmiSession session)
    {
        if (s_kernels.TryGetValue(session, out LinuxKernel? kernel))
        {
            return kernel;
        }

        kernel = LinuxKernel.Open(Memory(session));
        return s_kernels.GetValue(session, _ => kernel);
    }

    /// <summary>The guest memory the kernel reads through: each read one call of the guest (its lock held for that call).</summary>
    public static IGuestMemory Memory(VmiSession session) => new GuestObjectMemory(session.Guest, session.Guest.GetDriver<IVmiDriver>() is IVmcoreinfoSource s ? s.Vmcoreinfo : null);
}

/// <summary>No kernel symbol matched a name given without wildcards.</summary>
public sealed class VmiSymbolNotFoundException(string name)
    : VmiException($"The guest kernel has no symbol named '{name}'. Use wildcards (Get-VmiSymbol '*{name}*') to search.");
