using System.Management.Automation.Language;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// The repository's PowerShell scripts (build, examples, Pester suites) parse with the real engine's parser.
/// Pester itself is not installed here, so the suites are at least checked for syntax.
/// </summary>
public class ScriptTests
{
    public static TheoryData<string> Scripts()
    {
        var data = new TheoryData<string>();
        string root = PowerShellHost.RepoRoot;
        foreach (string dir in new[] { "examples", "tests/pester" })
        {
            foreach (string f in Directory.GetFiles(Path.Combine(root, dir), "*.ps*1", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                data.Add(Path.GetRelativePath(root, f));
            }
        }

        data.Add("build.ps1");
        data.Add("build.psm1");
        return data;
    }

    [Theory]
    [MemberData(nameof(Scripts))]
    public void ParsesWithoutErrors(string script)
    {
        Parser.ParseFile(Path.Combine(PowerShellHost.RepoRoot, script), out _, out ParseError[] errors);
        Assert.True(errors.Length == 0, script + ":\n" + string.Join("\n", errors.Select(e => $"{e.Extent.StartLineNumber}: {e.Message}")));
    }

    [Fact]
    public void ThePesterSuitesUseOnlyCmdletsTheModuleExports()
    {
        using var host = new PowerShellHost();
        HashSet<string> exported = host.Run("(Get-Module Vmi).ExportedCmdlets.Keys").Select(o => o.ToString()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (string f in Directory.GetFiles(Path.Combine(PowerShellHost.RepoRoot, "tests", "pester"), "*.ps1", SearchOption.AllDirectories))
        {
            Ast ast = Parser.ParseFile(f, out _, out _);
            foreach (CommandAst c in ast.FindAll(a => a is CommandAst, true).Cast<CommandAst>())
            {
                string? name = c.GetCommandName();
                if (name is not null && name.Contains("-Vmi", StringComparison.OrdinalIgnoreCase))
                {
                    Assert.True(exported.Contains(name), $"{Path.GetFileName(f)} calls {name}, which the module does not export");
                }
            }
        }
    }
}
