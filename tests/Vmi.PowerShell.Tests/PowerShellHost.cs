using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace Vmi.PowerShell.Tests;

/// <summary>
/// A runspace of the real PowerShell engine (System.Management.Automation) with the built module imported
/// from its manifest — the path a user's pwsh takes.
/// </summary>
public sealed class PowerShellHost : IDisposable
{
    private static readonly Lazy<string> s_modulePath = new(FindModule);

    public PowerShellHost(bool importModule = true)
    {
        Runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        Runspace.Open();
        if (importModule)
        {
            Run($"Import-Module '{ModuleManifest}' -ErrorAction Stop");
        }
    }

    public Runspace Runspace { get; }

    /// <summary>The manifest `dotnet build` laid out: artifacts/module/Vmi/Vmi.psd1.</summary>
    public static string ModuleManifest => s_modulePath.Value;

    public static string ModuleDirectory => Path.GetDirectoryName(ModuleManifest)!;

    public static string RepoRoot => Path.GetFullPath(Path.Combine(ModuleDirectory, "..", "..", ".."));

    /// <summary>A file of the built vmi shell (src/Shell/bin/&lt;configuration&gt;/net10.0), e.g. "vmi.dll" or the "vmi" executable.</summary>
    public static string ShellFile(string name)
    {
#if DEBUG_BUILD
        const string configuration = "Debug";
#else
        const string configuration = "Release";
#endif
        string path = Path.Combine(RepoRoot, "src", "Shell", "bin", configuration, "net10.0", name);
        Assert.True(File.Exists(path), "The vmi shell was not built at " + path);
        return path;
    }

    /// <summary>Runs a script; returns its output. Errors are collected in <see cref="LastErrors"/>.</summary>
    public Collection<PSObject> Run(string script, IDictionary<string, object?>? variables = null)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = Runspace;
        if (variables is not null)
        {
            foreach ((string name, object? value) in variables)
            {
                Runspace.SessionStateProxy.SetVariable(name, value);
            }
        }

        ps.AddScript(script);
        Collection<PSObject> output = ps.Invoke();
        LastErrors = ps.Streams.Error.ToList();
        LastWarnings = ps.Streams.Warning.Select(w => w.Message).ToList();
        LastVerbose = ps.Streams.Verbose.Select(w => w.Message).ToList();
        return output;
    }

    /// <summary>Runs a script that must not write errors.</summary>
    public Collection<PSObject> RunClean(string script)
    {
        Collection<PSObject> output = Run(script);
        Assert.True(LastErrors.Count == 0, "Unexpected errors:\n" + string.Join("\n", LastErrors.Select(e => e.FullyQualifiedErrorId + ": " + e)));
        return output;
    }

    /// <summary>Runs a script that must fail (a terminating error); returns the error.</summary>
    public ErrorRecord RunFailing(string script)
    {
        try
        {
            Run(script);
        }
        catch (RuntimeException e)
        {
            return e.ErrorRecord;
        }

        Assert.True(LastErrors.Count > 0, "The script was expected to fail: " + script);
        return LastErrors[0];
    }

    public List<ErrorRecord> LastErrors { get; private set; } = [];

    public List<string> LastWarnings { get; private set; } = [];

    public List<string> LastVerbose { get; private set; } = [];

    public T Get<T>(string script) => (T)Run(script).Single().BaseObject;

    public void Dispose()
    {
        Runspace.Dispose();
    }

    private static string FindModule()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "artifacts", "module", "Vmi", "Vmi.psd1");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("The module folder artifacts/module/Vmi was not found above " + AppContext.BaseDirectory + ": build src/Cmdlets first (dotnet build).");
    }
}
