using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.InteropServices;
using Vmi.Core;

namespace Vmi.Xen.Native;

/// <summary>Maps errno from the Xen libraries to <see cref="VmiDriverException"/> with what failed and what to do.</summary>
internal static class XenErrors
{
    public const int EPerm = 1;
    public const int ENoEnt = 2;
    public const int ESrch = 3;
    public const int EBusy = 16;
    public const int EExist = 17;
    public const int ENoDev = 19;
    public const int EInval = 22;
    public const int ENoMem = 12;
    public const int EAcces = 13;
    public const int EFault = 14;
    public const int ENoSys = 38;
    public const int EOpNotSupp = 95;

    /// <summary>Throws unless <paramref name="rc"/> is 0 or more. Reads errno at once: call right after the native call.</summary>
    public static void Check(int rc, string what, uint domid)
    {
        if (rc < 0)
        {
            Throw(Marshal.GetLastPInvokeError(), what, domid);
        }
    }

    [DoesNotReturn]
    public static void Throw(int errno, string what, uint domid) => throw Create(errno, what, domid);

    public static VmiDriverException Create(int errno, string what, uint domid)
    {
        string reason = errno == 0 ? "unknown error" : Marshal.GetPInvokeErrorMessage(errno);
        string hint = errno switch
        {
            EPerm or EAcces => " Run as root in dom0. If you are, the hypervisor may be a different Xen release than libxenctrl (install the tools of the running Xen), or XSM/FLASK policy denies it.",
            ESrch => " The domain no longer exists.",
            ENoMem => " Xen is out of memory for this, or the domain is at its memory limit (xl mem-max).",
            ENoSys or EOpNotSupp => " This Xen, CPU or domain does not offer it.",
            EBusy => " The domain is busy with this: another session or tool may hold what it needs.",
            ENoDev => " The domain's monitor ring is not enabled.",
            _ => string.Empty,
        };
        return new VmiDriverException(
            string.Format(CultureInfo.InvariantCulture, "Xen failed {0} (domain {1}): {2} (errno {3}).{4}", what, domid, reason, errno, hint),
            errno);
    }
}
