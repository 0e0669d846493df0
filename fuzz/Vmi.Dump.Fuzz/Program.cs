using SharpFuzz;
using Vmi.Core;
using Vmi.Dump;

namespace Vmi.Dump.Fuzz;

/// <summary>
/// Feeds AFL++ inputs to MemoryImage.Open and touches every page, register and VMCOREINFO entry.
/// Only <see cref="VmiFormatException"/> is an expected failure; anything else is a crash AFL++ keeps.
/// Usage: see fuzz/README.md. With a file argument, runs that one input (to reproduce a crash).
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        string path = Path.Combine(Path.GetTempPath(), $"vmi-afl-{Environment.ProcessId}.img");
        try
        {
            if (args.Length == 1)
            {
                using FileStream input = File.OpenRead(args[0]);
                Run(input, path);
                return;
            }

            Fuzzer.OutOfProcess.Run(stream => Run(stream, path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void Run(Stream stream, string path)
    {
        using (var f = new FileStream(path, FileMode.Create, FileAccess.Write))
        {
            stream.CopyTo(f);
        }

        try
        {
            using MemoryImage image = MemoryImage.Open(path);
            int pages = 0;
            foreach (PhysicalRange r in image.Ranges.Take(64))
            {
                for (ulong pa = r.Start.Value; pa < r.End.Value && pages < 256; pa += 4096, pages++)
                {
                    if (image.TryMapPage(new Gfn(pa >> 12), out MappedPage? p))
                    {
                        using (p)
                        {
                            _ = p.Span[^1];
                        }
                    }
                }
            }

            foreach (var regs in image.Registers)
            {
                _ = regs.PagingMode;
            }

            _ = image.VmcoreinfoEntries.Count;
        }
        catch (VmiFormatException)
        {
            // expected: malformed input named with file and offset
        }
    }
}
