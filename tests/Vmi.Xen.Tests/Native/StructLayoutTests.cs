using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Vmi.Xen.Events;
using Vmi.Xen.Native;

namespace Vmi.Xen.Tests.Native;

/// <summary>
/// Compiles layout_probe.c against the Xen headers in /usr/include (libxen-dev) with the system C compiler and
/// checks that every size, member offset and constant it prints matches the C# mirrors in src/Xen/Native.
/// </summary>
public sealed class StructLayoutTests
{
    private static readonly Dictionary<string, Type> Mirrors = new(StringComparer.Ordinal)
    {
        ["vm_event_st"] = typeof(VmEventSt),
        ["vm_event_regs_x86"] = typeof(VmEventRegsX86),
        ["vm_event_x86_selector_reg"] = typeof(VmEventX86SelectorReg),
        ["vm_event_sring_header"] = typeof(VmEventSringHeader),
        ["hvm_save_descriptor"] = typeof(HvmSaveDescriptor),
        ["hvm_hw_cpu"] = typeof(HvmHwCpu),
        ["hvm_hw_mtrr"] = typeof(HvmHwMtrr),
        ["hvm_hw_cpu_xsave_head"] = typeof(HvmHwCpuXsaveHead),
        ["xen_domctl_getdomaininfo"] = typeof(XenDomctlGetdomaininfo),
        ["xen_domctl_getvcpuinfo"] = typeof(XenDomctlGetvcpuinfo),
        ["xen_domctl_monitor_op"] = typeof(XenDomctlMonitorOp),
    };

    private static readonly Dictionary<string, ulong> Constants = new(StringComparer.Ordinal)
    {
        ["RING_SIZE_4096"] = (ulong)RingCapacity(4096),
        ["VM_EVENT_INTERFACE_VERSION"] = VmEventAbi.InterfaceVersion,
        ["VM_EVENT_FLAG_VCPU_PAUSED"] = VmEventAbi.FlagVcpuPaused,
        ["VM_EVENT_FLAG_EMULATE"] = VmEventAbi.FlagEmulate,
        ["VM_EVENT_FLAG_TOGGLE_SINGLESTEP"] = VmEventAbi.FlagToggleSinglestep,
        ["VM_EVENT_FLAG_DENY"] = VmEventAbi.FlagDeny,
        ["VM_EVENT_FLAG_ALTERNATE_P2M"] = VmEventAbi.FlagAlternateP2m,
        ["VM_EVENT_FLAG_SET_REGISTERS"] = VmEventAbi.FlagSetRegisters,
        ["VM_EVENT_FLAG_FAST_SINGLESTEP"] = VmEventAbi.FlagFastSinglestep,
        ["VM_EVENT_FLAG_SET_EMUL_INSN_DATA"] = VmEventAbi.FlagSetEmulInsnData,
        ["VM_EVENT_REASON_MEM_ACCESS"] = VmEventAbi.ReasonMemAccess,
        ["VM_EVENT_REASON_WRITE_CTRLREG"] = VmEventAbi.ReasonWriteCtrlreg,
        ["VM_EVENT_REASON_MOV_TO_MSR"] = VmEventAbi.ReasonMovToMsr,
        ["VM_EVENT_REASON_SOFTWARE_BREAKPOINT"] = VmEventAbi.ReasonSoftwareBreakpoint,
        ["VM_EVENT_REASON_SINGLESTEP"] = VmEventAbi.ReasonSinglestep,
        ["VM_EVENT_REASON_GUEST_REQUEST"] = VmEventAbi.ReasonGuestRequest,
        ["VM_EVENT_REASON_DEBUG_EXCEPTION"] = VmEventAbi.ReasonDebugException,
        ["VM_EVENT_REASON_CPUID"] = VmEventAbi.ReasonCpuid,
        ["VM_EVENT_REASON_DESCRIPTOR_ACCESS"] = VmEventAbi.ReasonDescriptorAccess,
        ["VM_EVENT_X86_CR0"] = VmEventAbi.X86Cr0,
        ["VM_EVENT_X86_CR3"] = VmEventAbi.X86Cr3,
        ["VM_EVENT_X86_CR4"] = VmEventAbi.X86Cr4,
        ["VM_EVENT_X86_XCR0"] = VmEventAbi.X86Xcr0,
        ["MEM_ACCESS_R"] = VmEventAbi.MemAccessR,
        ["MEM_ACCESS_W"] = VmEventAbi.MemAccessW,
        ["MEM_ACCESS_X"] = VmEventAbi.MemAccessX,
        ["MEM_ACCESS_GLA_VALID"] = VmEventAbi.MemAccessGlaValid,
        ["XENMEM_access_n"] = (ulong)Core.MemoryAccess.None,
        ["XENMEM_access_rwx"] = (ulong)Core.MemoryAccess.RWX,
        ["XENMEM_access_rx2rw"] = 8,
        ["XENMEM_access_n2rwx"] = 9,
        ["HVM_PARAM_ALTP2M"] = XenCtrl.HvmParamAltp2m,
        ["XEN_DOMCTL_DEBUG_OP_SINGLE_STEP_OFF"] = XenCtrl.DebugOpSingleStepOff,
        ["XEN_DOMCTL_DEBUG_OP_SINGLE_STEP_ON"] = XenCtrl.DebugOpSingleStepOn,
        ["XENVER_version"] = XenCtrl.XenverVersion,
        ["XBT_NULL"] = XenStore.XbtNull,
        ["XEN_DOMINF_dying"] = XenDomctlGetdomaininfo.FlagDying,
        ["XEN_DOMINF_hvm_guest"] = XenDomctlGetdomaininfo.FlagHvmGuest,
        ["XEN_DOMINF_shutdown"] = XenDomctlGetdomaininfo.FlagShutdown,
        ["XEN_DOMINF_paused"] = XenDomctlGetdomaininfo.FlagPaused,
        ["XEN_DOMINF_blocked"] = XenDomctlGetdomaininfo.FlagBlocked,
        ["XEN_DOMINF_running"] = XenDomctlGetdomaininfo.FlagRunning,
        ["XEN_X86_EMU_PIC"] = XenDomctlGetdomaininfo.EmuPic,
        ["HVM_SAVE_CODE(CPU)"] = HvmSaveDescriptor.CodeCpu,
        ["HVM_SAVE_CODE(MTRR)"] = HvmSaveDescriptor.CodeMtrr,
        ["CPU_XSAVE_CODE"] = HvmSaveDescriptor.CodeCpuXsave,
        ["XEN_DOMCTL_monitor_op"] = XenDomctlMonitorOp.CmdMonitorOp,
        ["XEN_DOMCTL_MONITOR_OP_CONTROL_REGISTERS"] = XenDomctlMonitorOp.OpControlRegisters,
        ["xen_domctl.u.monitor_op.op"] = (ulong)Marshal.OffsetOf<XenDomctlMonitorOp>(nameof(XenDomctlMonitorOp.Op)),
        ["xen_domctl.u.monitor_op.event"] = (ulong)Marshal.OffsetOf<XenDomctlMonitorOp>(nameof(XenDomctlMonitorOp.Event)),
    };

    private static readonly Lazy<string[]> ProbeOutput = new(RunProbe);

    [Fact]
    public void Probe_covers_every_mirrored_struct()
    {
        var seen = ProbeOutput.Value.Where(l => l.StartsWith("S ", StringComparison.Ordinal)).Select(l => l.Split(' ')[1]).ToHashSet();
        Assert.Equal(Mirrors.Keys.Order(), seen.Order());
        Assert.True(ProbeOutput.Value.Count(l => l.StartsWith("F ", StringComparison.Ordinal)) > 150, "the probe printed too few members");
    }

    [Fact]
    public void Struct_sizes_equal_the_C_sizes()
    {
        var mismatches = new List<string>();
        foreach (string[] f in Lines("S"))
        {
            int expected = int.Parse(f[2], CultureInfo.InvariantCulture);
            int actual = Marshal.SizeOf(Mirrors[f[1]]);
            if (expected != actual)
            {
                mismatches.Add($"sizeof({f[1]}): C {expected}, C# {actual}");
            }
        }

        Assert.Empty(mismatches);
    }

    [Fact]
    public void Member_offsets_and_sizes_equal_the_C_layout()
    {
        var mismatches = new List<string>();
        foreach (string[] f in Lines("F").Concat(Lines("A")))
        {
            (int offset, Type type) = Resolve(Mirrors[f[1]], f[2]);
            int expectedOffset = int.Parse(f[3], CultureInfo.InvariantCulture);
            if (offset != expectedOffset)
            {
                mismatches.Add($"offsetof({f[1]}, {f[2]}): C {expectedOffset}, C# {offset}");
            }

            if (f[0] == "F")
            {
                int expectedSize = int.Parse(f[4], CultureInfo.InvariantCulture);
                int size = Marshal.SizeOf(type);
                if (size != expectedSize)
                {
                    mismatches.Add($"sizeof({f[1]}.{f[2]}): C {expectedSize}, C# {size}");
                }
            }
        }

        Assert.Empty(mismatches);
    }

    [Fact]
    public void Constants_equal_the_header_values()
    {
        var mismatches = new List<string>();
        var seen = new HashSet<string>();
        foreach (string[] f in Lines("C"))
        {
            seen.Add(f[1]);
            ulong expected = ulong.Parse(f[2], CultureInfo.InvariantCulture);
            if (!Constants.TryGetValue(f[1], out ulong actual))
            {
                mismatches.Add($"{f[1]} has no C# counterpart in the test's table");
            }
            else if (actual != expected)
            {
                mismatches.Add($"{f[1]}: C {expected}, C# {actual}");
            }
        }

        Assert.Empty(mismatches);
        Assert.Equal(Constants.Keys.Order(), seen.Order());
    }

    private static IEnumerable<string[]> Lines(string kind) =>
        ProbeOutput.Value.Where(l => l.StartsWith(kind + " ", StringComparison.Ordinal)).Select(l => l.Split(' '));

    /// <summary>Follows a C member path ("u.mem_access.gfn") through the C# mirror, C names in PascalCase.</summary>
    private static (int Offset, Type Type) Resolve(Type root, string path)
    {
        int offset = 0;
        Type type = root;
        foreach (string member in path.Split('.'))
        {
            string name = string.Concat(member.Split('_', StringSplitOptions.RemoveEmptyEntries).Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
            FieldInfo field = type.GetField(name, BindingFlags.Public | BindingFlags.Instance)
                ?? throw new Xunit.Sdk.XunitException($"{root.Name} has no field {name} (C member {path})");
            offset += (int)Marshal.OffsetOf(type, name);
            type = field.FieldType;
        }

        return (offset, type);
    }

    private static unsafe int RingCapacity(int pageSize)
    {
        byte* page = (byte*)NativeMemory.AllocZeroed((nuint)pageSize);
        try
        {
            return new VmEventRing(page, pageSize, static () => { }).Capacity;
        }
        finally
        {
            NativeMemory.Free(page);
        }
    }

    private static string[] RunProbe()
    {
        string source = Path.Combine(AppContext.BaseDirectory, "Native", "layout_probe.c");
        Assert.True(File.Exists(source), $"{source} is missing from the test output");
        Assert.True(File.Exists("/usr/include/xen/vm_event.h"), "The Xen headers are missing: install them (apt-get install libxen-dev) to run the layout tests.");
        string dir = Directory.CreateTempSubdirectory("vmi-xen-layout").FullName;
        try
        {
            string exe = Path.Combine(dir, "probe");
            Run("cc", ["-std=gnu11", "-Wall", "-Werror", "-o", exe, source]);
            return Run(exe, []).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Run(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi) ?? throw new Xunit.Sdk.XunitException($"could not start {file}");
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), $"{file} did not finish in 60 s");
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr.Result}");
        return stdout.Result;
    }
}
