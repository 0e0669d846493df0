using System.Globalization;
using System.Text;
using Vmi.Core;

namespace Vmi.Xen;

/// <summary>
/// What a read-write session has changed in a domain, kept in dom0's part of xenstore while it is changed
/// (<c>/local/domain/0/vmi/DOMID/PID-N</c>), with the identity of the process that owns it: its PID, its start time
/// (so a reused PID is not taken for it) and the boot it ran in. A process killed without restoring (SIGKILL, a
/// crash) leaves its record behind; the next session reads it, sees the owner is gone and undoes what it names.
/// </summary>
internal sealed record XenSessionRecord(int Pid, ulong StartTicks, string BootId)
{
    /// <summary>The xenstore directory of one domain's records.</summary>
    public static string DirectoryOf(uint domid) => string.Create(CultureInfo.InvariantCulture, $"/local/domain/0/vmi/{domid}");

    /// <summary>True while the session holds the domain's monitor ring.</summary>
    public bool HasRing { get; init; }

    public IReadOnlyList<EventMonitor> Monitors { get; init; } = [];

    /// <summary>vCPUs on which the session turned single-stepping on (itself or by an event response).</summary>
    public IReadOnlyList<ushort> SinglestepVcpus { get; init; } = [];

    /// <summary>Pauses of the domain the session has not released.</summary>
    public int Pauses { get; init; }

    /// <summary>The INT3s of the session's breakpoints, "physical address:original byte" in hex.</summary>
    public IReadOnlyList<string> Int3s { get; init; } = [];

    /// <summary>Nothing left to undo: the record can go.</summary>
    public bool IsEmpty => !HasRing && Monitors.Count == 0 && SinglestepVcpus.Count == 0 && Pauses == 0 && Int3s.Count == 0;

    /// <summary>This process, as /proc describes it (PID, start time in clock ticks since boot, boot id).</summary>
    public static XenSessionRecord ForThisProcess() => new(Environment.ProcessId, StartTicksOf(Environment.ProcessId) ?? 0, ReadBootId());

    /// <summary>
    /// Whether the process that wrote this record is still running: same boot, a process with that PID, started at the
    /// same tick. A record from an earlier boot, a missing PID or a PID reused by a later process means the owner is gone.
    /// </summary>
    public bool IsOwnerAlive() => string.Equals(BootId, ReadBootId(), StringComparison.Ordinal) && StartTicksOf(Pid) is { } t && t == StartTicks;

    public string Format()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"pid={Pid};start={StartTicks};boot={BootId};ring={(HasRing ? 1 : 0)};pauses={Pauses}");
        sb.Append(";monitors=").AppendJoin(',', Monitors.Select(m => string.Create(CultureInfo.InvariantCulture, $"{(byte)m.Kind}:{m.Parameter}")));
        sb.Append(";singlestep=").AppendJoin(',', SinglestepVcpus.Select(v => v.ToString(CultureInfo.InvariantCulture)));
        if (Int3s.Count > 0)
        {
            sb.Append(";int3=").AppendJoin(',', Int3s);
        }

        return sb.ToString();
    }

    /// <summary>Reads a record <see cref="Format"/> wrote; null when the text is not one (someone else's node).</summary>
    public static XenSessionRecord? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string part in text.Split(';'))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                fields[part[..eq]] = part[(eq + 1)..];
            }
        }

        if (!fields.TryGetValue("pid", out string? pidText) || !int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
            || !fields.TryGetValue("start", out string? startText) || !ulong.TryParse(startText, NumberStyles.None, CultureInfo.InvariantCulture, out ulong start))
        {
            return null;
        }

        var monitors = new List<EventMonitor>();
        foreach (string m in Split(fields.GetValueOrDefault("monitors")))
        {
            string[] kp = m.Split(':');
            if (kp.Length == 2 && byte.TryParse(kp[0], NumberStyles.None, CultureInfo.InvariantCulture, out byte kind)
                && uint.TryParse(kp[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint parameter) && Enum.IsDefined((MonitorKind)kind))
            {
                monitors.Add(new EventMonitor((MonitorKind)kind, parameter));
            }
        }

        var vcpus = new List<ushort>();
        foreach (string v in Split(fields.GetValueOrDefault("singlestep")))
        {
            if (ushort.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out ushort id))
            {
                vcpus.Add(id);
            }
        }

        return new XenSessionRecord(pid, start, fields.GetValueOrDefault("boot") ?? string.Empty)
        {
            HasRing = fields.GetValueOrDefault("ring") == "1",
            Pauses = int.TryParse(fields.GetValueOrDefault("pauses"), NumberStyles.None, CultureInfo.InvariantCulture, out int p) ? p : 0,
            Monitors = monitors,
            SinglestepVcpus = vcpus,
            Int3s = Split(fields.GetValueOrDefault("int3")),
        };
    }

    private static string[] Split(string? list) => string.IsNullOrEmpty(list) ? [] : list.Split(',', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Field 22 of /proc/PID/stat (the start time in clock ticks after boot); null when there is no such process.</summary>
    internal static ulong? StartTicksOf(int pid)
    {
        string stat;
        try
        {
            stat = File.ReadAllText(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"));
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        // The command name (field 2) is in parentheses and may hold spaces and ')': count fields after the last ')'.
        int close = stat.LastIndexOf(')');
        string[] rest = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return rest.Length > 19 && ulong.TryParse(rest[19], NumberStyles.None, CultureInfo.InvariantCulture, out ulong ticks) ? ticks : null;
    }

    private static string ReadBootId()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (IOException)
        {
            return string.Empty;
        }
        catch (UnauthorizedAccessException)
        {
            return string.Empty;
        }
    }
}
