using System.Reflection;
using System.Text.RegularExpressions;
using Vmi.Core;
using Vmi.Core.Drivers;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// Issue 8: cmdlets are thin (bind, call one engine method, write records) and name no driver, so a new driver touches
/// no cmdlet. A scan of src/Cmdlets/Commands.
/// </summary>
public sealed class ThinCmdletTests
{
    /// <summary>The most lines a cmdlet's file may have.</summary>
    private const int MaxLines = 80;

    private static string[] CommandFiles()
    {
        string dir = Path.Combine(PowerShellHost.RepoRoot, "src", "Cmdlets", "Commands");
        string[] files = Directory.GetFiles(dir, "*.cs");
        Assert.True(files.Length >= 30, $"expected the cmdlets' sources in {dir}, found {files.Length} files");
        return files;
    }

    [Fact]
    public void No_cmdlet_is_longer_than_80_lines()
    {
        string[] tooLong = CommandFiles()
            .Select(f => (File: Path.GetFileName(f), Lines: File.ReadAllLines(f).Length))
            .Where(f => f.Lines > MaxLines)
            .Select(f => $"{f.File}: {f.Lines} lines")
            .ToArray();
        Assert.True(tooLong.Length == 0, $"Cmdlets longer than {MaxLines} lines (move the logic into the engine or a shared internal helper):\n" + string.Join("\n", tooLong));
    }

    [Fact]
    public void No_cmdlet_names_a_driver_type()
    {
        // Every type of the driver-only assemblies, and the drivers and providers of the image assembly (whose image
        // writer Save-VmiMemory uses: an acquisition format, not a driver).
        string[] driverAssemblies = ["Vmi.Xen", "Vmi.Qemu", "Vmi.Mock"];
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in driverAssemblies)
        {
            names.UnionWith(Assembly.Load(name).GetTypes().Where(t => !t.IsNested && !t.Name.Contains('<', StringComparison.Ordinal)).Select(Plain));
        }

        names.UnionWith(Assembly.Load("Vmi.Dump").GetTypes()
            .Where(t => typeof(IVmiDriver).IsAssignableFrom(t) || typeof(IVmiDriverProvider).IsAssignableFrom(t))
            .Select(Plain));
        Assert.Contains("MockGuest", names); // the scan knows the drivers it looks for
        Assert.Contains("XenDriver", names);
        names.ExceptWith(typeof(VmiGuest).Assembly.GetTypes().Select(Plain)); // a name the engine also has is the engine's

        var found = new List<string>();
        foreach (string file in CommandFiles())
        {
            string source = File.ReadAllText(file);
            found.AddRange(driverAssemblies.Where(a => Regex.IsMatch(source, @"\b" + Regex.Escape(a) + @"\b")).Select(a => $"{Path.GetFileName(file)}: {a}"));
            found.AddRange(names.Where(n => Regex.IsMatch(source, @"\b" + Regex.Escape(n) + @"\b")).Select(n => $"{Path.GetFileName(file)}: {n}"));
        }

        Assert.True(found.Count == 0, "Cmdlets naming a driver (open targets through VmiDriverRegistry):\n" + string.Join("\n", found));
    }

    private static string Plain(Type t) => t.Name.Split('`')[0];
}
