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
    private static readonly ConditionalWeakTable<VmiSession, Found> s_kernels = new();

    /// <summary>
    /// The session's kernel. With <paramref name="profilePath"/> (a Volatility 3 ISF file), layouts come from that
    /// profile, and the kernel found with it is kept for the session's later calls that give no profile.
    /// </summary>
    public static LinuxKernel Get(VmiSession session, string? profilePath = null)
    {
        if (s_kernels.TryGetValue(session, out Found? found) && (profilePath is null || found.ProfilePath == profilePath))
        {
            return found.Kernel;
        }

        IsfProfile? profile = profilePath is null ? null : IsfProfile.Load(profilePath);
        LinuxKernel kernel = LinuxKernel.Open(Memory(session), profile);
        s_kernels.AddOrUpdate(session, new Found(kernel, profilePath));
        return kernel;
    }

    private sealed record Found(LinuxKernel Kernel, string? ProfilePath);

    /// <summary>The guest memory the kernel reads through: each read one call of the guest (its lock held for that call).</summary>
    public static IGuestMemory Memory(VmiSession session) => new GuestObjectMemory(session.Guest, session.Guest.GetDriver<IVmiDriver>() is IVmcoreinfoSource s ? s.Vmcoreinfo : null);
}

/// <summary>No kernel symbol matched a name given without wildcards.</summary>
public sealed class VmiSymbolNotFoundException(string name)
    : VmiException($"The guest kernel has no symbol named '{name}'. Use wildcards (Get-VmiSymbol '*{name}*') to search.");
