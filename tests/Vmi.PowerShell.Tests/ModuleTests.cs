using System.Management.Automation;
using System.Reflection;
using System.Xml.Linq;

namespace Vmi.PowerShell.Tests;

/// <summary>The module as pwsh sees it: the manifest, the exported cmdlets, the format and type files.</summary>
public class ModuleTests
{
    private static readonly Assembly ModuleAssembly = typeof(VmiSession).Assembly;

    private static IEnumerable<Type> CmdletTypes => ModuleAssembly.GetExportedTypes()
        .Where(t => !t.IsAbstract && t.GetCustomAttribute<CmdletAttribute>() is not null);

    private static string CmdletName(Type t)
    {
        CmdletAttribute a = t.GetCustomAttribute<CmdletAttribute>()!;
        return a.VerbName + "-" + a.NounName;
    }

    [Fact]
    public void DotnetBuildLaysOutAnImportableModuleFolder()
    {
        string dir = PowerShellHost.ModuleDirectory;
        foreach (string file in new[] { "Vmi.psd1", "Vmi.Format.ps1xml", "Vmi.Types.ps1xml", "Vmi.PowerShell.dll", "Vmi.Core.dll", "Vmi.Mock.dll" })
        {
            Assert.True(File.Exists(Path.Combine(dir, file)), file + " is missing from " + dir);
        }

        // The engine comes from the host (pwsh, vmi), never from the module folder.
        Assert.False(File.Exists(Path.Combine(dir, "System.Management.Automation.dll")));
    }

    [Fact]
    public void TestModuleManifestAcceptsTheManifest()
    {
        using var host = new PowerShellHost(importModule: false);
        PSObject info = host.Run($"Test-ModuleManifest -Path '{PowerShellHost.ModuleManifest}'").Single();
        Assert.Empty(host.LastErrors);
        var module = (PSModuleInfo)info.BaseObject;
        Assert.Equal("Vmi", module.Name);

        // The manifest's version is the project's single version number.
        Version assemblyVersion = ModuleAssembly.GetName().Version!;
        Assert.Equal(new Version(assemblyVersion.Major, assemblyVersion.Minor, assemblyVersion.Build), module.Version);
    }

    [Fact]
    public void ExportedCmdletsEqualTheCmdletClasses()
    {
        using var host = new PowerShellHost();
        string[] exported = host.Run("(Get-Module Vmi).ExportedCmdlets.Keys").Select(o => o.ToString()).Order(StringComparer.Ordinal).ToArray();
        string[] classes = CmdletTypes.Select(CmdletName).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(classes, exported);
        Assert.Equal(31, exported.Length);
    }

    [Fact]
    public void EveryCmdletUsesAnApprovedVerbAndTheVmiPrefix()
    {
        using var host = new PowerShellHost();
        HashSet<string> approved = host.Run("Get-Verb | ForEach-Object Verb").Select(o => o.ToString()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        if (approved.Count == 0)
        {
            // Get-Verb lives in Microsoft.PowerShell.Utility, which the bare engine lacks: use the Verbs* classes instead.
            approved = typeof(VerbsCommon).Assembly.GetTypes()
                .Where(t => t.Name.StartsWith("Verbs", StringComparison.Ordinal))
                .SelectMany(t => t.GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (string)f.GetValue(null)!))
                .ToHashSet(StringComparer.OrdinalIgnoreCase);
        }

        foreach (Type t in CmdletTypes)
        {
            CmdletAttribute a = t.GetCustomAttribute<CmdletAttribute>()!;
            Assert.Contains(a.VerbName, approved);
            Assert.StartsWith("Vmi", a.NounName, StringComparison.Ordinal);
            Assert.True(t.IsSealed, t.Name + " should be sealed");
            Assert.NotEmpty(t.GetCustomAttributes<OutputTypeAttribute>());
        }
    }

    [Fact]
    public void EveryTypeNamedInTheFormatAndTypeFilesExists()
    {
        foreach (string file in new[] { "Vmi.Format.ps1xml", "Vmi.Types.ps1xml" })
        {
            XDocument doc = XDocument.Load(Path.Combine(PowerShellHost.ModuleDirectory, file));
            IEnumerable<string> names = file.StartsWith("Vmi.Format", StringComparison.Ordinal)
                ? doc.Descendants("TypeName").Select(e => e.Value)
                : doc.Root!.Elements("Type").Select(e => e.Element("Name")!.Value);
            List<string> list = names.ToList();
            Assert.NotEmpty(list);
            foreach (string name in list.Select(n => n.StartsWith("Deserialized.", StringComparison.Ordinal) ? n["Deserialized.".Length..] : n))
            {
                // The module's records, or the engine's own models the module decorates (Registers, the event reasons).
                Assert.True((ModuleAssembly.GetType(name) ?? typeof(Vmi.Core.VmiGuest).Assembly.GetType(name)) is not null, $"{file} names {name}, which does not exist");
            }
        }
    }

    [Fact]
    public void EveryRecordACmdletWritesHasADefaultView()
    {
        XDocument doc = XDocument.Load(Path.Combine(PowerShellHost.ModuleDirectory, "Vmi.Format.ps1xml"));
        HashSet<string> viewed = doc.Descendants("TypeName").Select(e => e.Value).ToHashSet();
        IEnumerable<Type> records = CmdletTypes
            .SelectMany(t => t.GetCustomAttributes<OutputTypeAttribute>())
            .SelectMany(a => a.Type)
            .Select(p => p.Type)
            .Where(t => t is not null && t.Assembly == ModuleAssembly)
            .Distinct()!;
        foreach (Type record in records)
        {
            Assert.True(viewed.Contains(record.FullName!), record.FullName + " has no view in Vmi.Format.ps1xml");
        }
    }

    [Fact]
    public void TheFormatAndTypeFilesLoadWithoutErrors()
    {
        using var host = new PowerShellHost();
        string dir = PowerShellHost.ModuleDirectory.Replace("'", "''", StringComparison.Ordinal);
        host.Run($"$null = [System.Management.Automation.Runspaces.FormatTable]::new([string[]]@('{dir}/Vmi.Format.ps1xml'))");
        Assert.Empty(host.LastErrors);
        host.Run($"$e = [System.Collections.ObjectModel.Collection[string]]::new(); $null = [System.Management.Automation.Runspaces.TypeTable]::new([string[]]@('{dir}/Vmi.Types.ps1xml'))");
        Assert.Empty(host.LastErrors);
    }

    [Fact]
    public void ParameterSetNamesAreDeclaredAsConstantsAndDefaultsExist()
    {
        foreach (Type t in CmdletTypes)
        {
            CmdletAttribute a = t.GetCustomAttribute<CmdletAttribute>()!;
            IEnumerable<string> sets = t.GetProperties()
                .SelectMany(p => p.GetCustomAttributes<ParameterAttribute>())
                .Select(p => p.ParameterSetName)
                .Where(n => n != ParameterAttribute.AllParameterSets)
                .Distinct();
            foreach (string set in sets)
            {
                Assert.Contains(t.GetFields(BindingFlags.Public | BindingFlags.Static), f => f.IsLiteral && (string?)f.GetRawConstantValue() == set);
            }

            if (sets.Any())
            {
                // A default set may hold no parameter of its own (Resolve-VmiAddress without -Detailed), but it is named by a constant.
                Assert.False(string.IsNullOrEmpty(a.DefaultParameterSetName), t.Name + " has parameter sets but no DefaultParameterSetName");
                Assert.Contains(t.GetFields(BindingFlags.Public | BindingFlags.Static), f => f.IsLiteral && (string?)f.GetRawConstantValue() == a.DefaultParameterSetName);
            }
        }
    }
}
