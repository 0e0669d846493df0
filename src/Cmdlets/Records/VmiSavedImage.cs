using Vmi.Dump;

namespace Vmi.PowerShell;

/// <summary>What Save-VmiMemory wrote: the file, its format and size, the memory stored, and how long it took.</summary>
public sealed class VmiSavedImage
{
    internal VmiSavedImage(VmiSession session, ImageFileResult r)
    {
        Session = session;
        Path = r.Path;
        Format = r.Format;
        Bytes = r.Bytes;
        DataBytes = r.DataBytes;
        Ranges = r.Ranges;
        PagesUnreadable = r.PagesUnreadable;
        Duration = r.Duration;
    }

    [Newtonsoft.Json.JsonIgnore, System.Management.Automation.Hidden]
    public VmiSession Session { get; }

    /// <summary>The image file (binds to -Path of Connect-VmiDomain).</summary>
    public string Path { get; }

    public ImageFormat Format { get; }

    /// <summary>The file's length (raw images keep unstored memory as holes, so this may exceed what is on disk).</summary>
    public long Bytes { get; }

    /// <summary>Bytes of guest memory stored.</summary>
    public long DataBytes { get; }

    /// <summary>Runs of physical memory stored.</summary>
    public int Ranges { get; }

    /// <summary>Frames listed as readable that could not be read when written (written as zeros).</summary>
    public ulong PagesUnreadable { get; }

    public TimeSpan Duration { get; }

    public override string ToString() => Path;
}
