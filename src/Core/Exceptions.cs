using Vmi.Core.Arch.Amd64;

namespace Vmi.Core;

/// <summary>The base of every error the engine raises.</summary>
public class VmiException : Exception
{
    public VmiException()
    {
    }

    public VmiException(string message)
        : base(message)
    {
    }

    public VmiException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A virtual address did not translate: names the address, the root and the level whose entry stopped the walk.</summary>
public sealed class PageFaultException : VmiException
{
    public PageFaultException(Va va, Pa root, PagingLevel level, WalkFaultKind kind)
        : base(Describe(va, root, level, kind))
    {
        Va = va;
        Root = root;
        Level = level;
        Kind = kind;
    }

    public Va Va { get; }

    public Pa Root { get; }

    public PagingLevel Level { get; }

    public WalkFaultKind Kind { get; }

    private static string Describe(Va va, Pa root, PagingLevel level, WalkFaultKind kind) => kind switch
    {
        WalkFaultKind.NotPresent => $"Page fault at {va} (root {root}): the {level} entry is not present.",
        WalkFaultKind.ReservedBit => $"Page fault at {va} (root {root}): the {level} entry sets a reserved bit.",
        WalkFaultKind.TableUnreadable => $"Page fault at {va} (root {root}): the {level} table lies in guest memory that cannot be read.",
        _ => $"Page fault at {va} (root {root}): {kind} at {level}.",
    };
}

/// <summary>A guest frame has no backing: outside guest memory, or a hole in a memory image.</summary>
public sealed class GfnNotPresentException(Gfn gfn, string? detail = null)
    : VmiException($"Guest frame {gfn} (physical {new Pa(gfn.Value << Amd64.PageShift)}) cannot be read: {detail ?? "it is not backed by guest memory"}.")
{
    public Gfn Gfn { get; } = gfn;
}

public sealed class NonCanonicalAddressException(Va va, PagingMode mode)
    : VmiException(Describe(va, mode))
{
    private static string Describe(Va va, PagingMode mode) => Amd64.VirtualAddressWidth(mode) == 32
        ? $"{va} is not an address in {mode} paging: linear addresses are 32-bit, so bits 63..32 must be zero."
        : $"{va} is not a canonical address in {mode} paging: bits above bit {Amd64.VirtualAddressWidth(mode) - 1} must all equal that bit (did you mean {Amd64.Canonicalize(va, mode)}?).";

    public Va Va { get; } = va;

    public PagingMode Mode { get; } = mode;
}

public sealed class RootNotPresentException()
    : VmiException("A paging translation needs a page-table root: give a CR3 (AccessContext.Paging(va, root)), or let the session use the CR3 of a vCPU.");

public sealed class InvalidAddressWidthException(int width)
    : VmiException($"An address width of {width} bytes is not supported: use 4 or 8.")
{
    public int Width { get; } = width;
}

/// <summary>The driver lacks a capability: names the driver and the capability.</summary>
public sealed class CapabilityNotSupportedException(string driverName, VmiCapability capability)
    : VmiException($"The {driverName} driver does not support {Describe(capability)} ({capability}).")
{
    public string DriverName { get; } = driverName;

    public VmiCapability Capability { get; } = capability;

    internal static string Describe(VmiCapability c) => c switch
    {
        VmiCapability.Read => "reading memory",
        VmiCapability.Write => "writing memory",
        VmiCapability.QueryProtection => "querying memory access",
        VmiCapability.SetProtection => "setting memory access",
        VmiCapability.QueryRegisters => "reading registers",
        VmiCapability.SetRegisters => "setting registers",
        VmiCapability.ViewControl => "views (altp2m)",
        VmiCapability.EventControl => "events",
        VmiCapability.VmControl => "controlling the VM (pause, resume, GFN allocation, interrupt injection)",
        _ => c.ToString(),
    };
}

public sealed class ViewNotFoundException(View view)
    : VmiException($"View {view} does not exist: create a view first (IVmiViewControl.CreateView) and use the number it returns.")
{
    public View View { get; } = view;
}

public sealed class VcpuNotFoundException(VcpuId vcpu, int vcpuCount)
    : VmiException($"vCPU {vcpu} does not exist: the guest has {vcpuCount} vCPU(s), numbered 0 to {vcpuCount - 1}.")
{
    public VcpuId Vcpu { get; } = vcpu;
}

/// <summary>A driver-level failure: a hypervisor call or a file operation failed. Carries the native error code where there is one.</summary>
public class VmiDriverException : VmiException
{
    public VmiDriverException(string message, int errorCode = 0, Exception? innerException = null)
        : base(message, innerException)
    {
        ErrorCode = errorCode;
    }

    public int ErrorCode { get; }
}

/// <summary>The input (an image file, a ring, an argument) is malformed. Names what and where.</summary>
public sealed class VmiFormatException(string message, string? source = null, long offset = -1)
    : VmiException(source is null ? message : offset >= 0 ? $"{source} at offset 0x{offset:x}: {message}" : $"{source}: {message}")
{
    public string? SourceName { get; } = source;

    public long Offset { get; } = offset;
}

/// <summary>The one place a failed translation becomes an exception.</summary>
public static class TranslationFault
{
    /// <summary>The exception for <paramref name="result"/>, a failed translation of <paramref name="va"/> under <paramref name="root"/>.</summary>
    public static VmiException ToException(Va va, Pa root, PagingMode mode, in TranslationResult result) => result.Fault == WalkFaultKind.NonCanonical
        ? new NonCanonicalAddressException(va, mode)
        : new PageFaultException(va, root, result.FaultLevel, result.Fault);
}
