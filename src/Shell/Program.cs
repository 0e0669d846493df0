using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;

namespace Vmi.Shell;

/// <summary>
/// vmi: the PowerShell engine with the Vmi module imported, for machines without pwsh.
/// <code>
/// vmi                              an interactive prompt
/// vmi -Command '&lt;script&gt;'         run a script text (also: vmi -c ..., or a script on standard input with -Command -)
/// vmi -File script.ps1 [args]      run a script file with arguments
/// </code>
/// Output is formatted by the engine with the module's views (Out-Default), as in pwsh.
/// </summary>
internal static class Program
{
    private const string Usage = """
        vmi - virtual machine introspection shell (the PowerShell engine with the Vmi module imported)

        Usage:
          vmi                               interactive prompt
          vmi -Command <script>             run script text ('-' reads it from standard input)
          vmi -File <script.ps1> [args...]  run a script file with arguments
          vmi -Version | -Help

        Try:  vmi -Command 'Connect-VmiDomain -Mock; Get-VmiRegister'
        """;

    private static int Main(string[] args)
    {
        string? command = null;
        string? file = null;
        var fileArgs = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (file is not null)
            {
                fileArgs.Add(a);
                continue;
            }

            switch (a.ToLowerInvariant())
            {
                case "-c" or "-command" or "--command":
                    if (i + 1 >= args.Length)
                    {
                        return Fail("-Command needs a script: vmi -Command 'Get-VmiSession'.");
                    }

                    command = string.Join(' ', args[(i + 1)..]);
                    i = args.Length;
                    break;
                case "-f" or "-file" or "--file":
                    if (i + 1 >= args.Length)
                    {
                        return Fail("-File needs a path: vmi -File script.ps1.");
                    }

                    file = args[++i];
                    break;
                case "-h" or "-help" or "--help" or "-?" or "/?":
                    Console.WriteLine(Usage);
                    return 0;
                case "-v" or "-version" or "--version":
                    Console.WriteLine($"vmi {typeof(Program).Assembly.GetName().Version} (PowerShell {typeof(PSObject).Assembly.GetName().Version})");
                    return 0;
                case "-noprofile" or "-nologo" or "-noninteractive":
                    break; // accepted for compatibility with pwsh command lines; vmi reads no profile
                default:
                    return Fail($"Unknown argument '{a}'. {Usage}");
            }
        }

        if (command == "-")
        {
            command = Console.In.ReadToEnd();
        }

        var ui = new ShellUI();
        var host = new ShellHost(ui);
        Runspace runspace;
        try
        {
            runspace = CreateRunspace(host);
        }
        catch (Exception e) when (e is RuntimeException or IOException)
        {
            return Fail($"vmi could not start the engine with the Vmi module: {e.Message}");
        }

        using var owned = runspace;
        using var shell = new Shell(runspace, host);
        if (command is not null)
        {
            return shell.RunCommand(command);
        }

        if (file is not null)
        {
            return shell.RunFile(file, fileArgs);
        }

        return shell.Interactive();
    }

    private static Runspace CreateRunspace(ShellHost host)
    {
        string manifest = Path.Combine(AppContext.BaseDirectory, "Vmi.psd1");
        if (!File.Exists(manifest))
        {
            throw new FileNotFoundException($"The Vmi module manifest is missing next to vmi ({manifest}); rebuild or republish src/Shell.", manifest);
        }

        Runspace runspace = RunspaceFactory.CreateRunspace(host, NewSessionState());
        runspace.Open();
        try
        {
            // Imported as a user would, from the manifest next to the executable.
            Invoke(runspace, ps => ps.AddCommand("Import-Module").AddParameter("Name", manifest).AddParameter("ErrorAction", "Stop"));
        }
        catch (RuntimeException)
        {
            // In a single-file bundle the engine resolves the manifest's TypesToProcess/FormatsToProcess to a wrong
            // path; load the same three pieces explicitly instead: the views, the types and the cmdlet assembly.
            runspace.Dispose();
            InitialSessionState iss = NewSessionState();
            iss.Formats.Add(new SessionStateFormatEntry(Path.Combine(AppContext.BaseDirectory, "Vmi.Format.ps1xml")));
            iss.Types.Add(new SessionStateTypeEntry(Path.Combine(AppContext.BaseDirectory, "Vmi.Types.ps1xml")));
            runspace = RunspaceFactory.CreateRunspace(host, iss);
            runspace.Open();
            Invoke(runspace, ps => ps.AddCommand("Import-Module").AddParameter("Assembly", typeof(Vmi.PowerShell.VmiSession).Assembly).AddParameter("ErrorAction", "Stop"));
        }

        if (Console.IsOutputRedirected || Environment.GetEnvironmentVariable("NO_COLOR") is not null)
        {
            // Plain text into files and pipes, as pwsh does.
            Invoke(runspace, ps => ps.AddScript("$PSStyle.OutputRendering = 'PlainText'"));
        }

        return runspace;
    }

    /// <summary>The engine's default state plus the shell's own Select-Object, Format-Table...: the NuGet engine only has the Core cmdlets.</summary>
    private static InitialSessionState NewSessionState()
    {
        InitialSessionState iss = InitialSessionState.CreateDefault2();
        Builtins.ShellBuiltins.AddMissing(iss);
        return iss;
    }

    private static void Invoke(Runspace runspace, Action<System.Management.Automation.PowerShell> build)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = runspace;
        build(ps);
        ps.Invoke();
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine(message);
        return 2;
    }
}

/// <summary>Runs scripts in the runspace with Out-Default formatting, and stops them on Ctrl+C.</summary>
internal sealed class Shell : IDisposable
{
    private readonly Runspace _runspace;
    private readonly ShellHost _host;
    private System.Management.Automation.PowerShell? _current;
    private readonly object _gate = new();

    public Shell(Runspace runspace, ShellHost host)
    {
        _runspace = runspace;
        _host = host;
        Console.CancelKeyPress += OnCancel;
    }

    public int RunCommand(string script) => Exit(Invoke(ps => ps.AddScript(script)));

    public int RunFile(string path, IReadOnlyList<string> args)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            Console.Error.WriteLine($"The script '{path}' does not exist.");
            return 2;
        }

        bool ok = Invoke(ps =>
        {
            ps.AddCommand(full);
            for (int i = 0; i < args.Count; i++)
            {
                string a = args[i];
                if (a.Length > 1 && a[0] == '-' && char.IsLetter(a[1]))
                {
                    int colon = a.IndexOf(':', StringComparison.Ordinal);
                    if (colon > 0)
                    {
                        ps.AddParameter(a[1..colon], a[(colon + 1)..]);
                    }
                    else if (i + 1 < args.Count && !(args[i + 1].Length > 1 && args[i + 1][0] == '-' && char.IsLetter(args[i + 1][1])))
                    {
                        ps.AddParameter(a[1..], args[++i]);
                    }
                    else
                    {
                        ps.AddParameter(a[1..]); // a switch
                    }
                }
                else
                {
                    ps.AddArgument(a);
                }
            }
        });

        // A script's `exit n` sets $LASTEXITCODE: that is the shell's exit code, as with pwsh -File.
        if (_host.ExitCode is null)
        {
            using var ps = System.Management.Automation.PowerShell.Create();
            ps.Runspace = _runspace;
            if (ps.AddScript("$global:LASTEXITCODE").Invoke().FirstOrDefault()?.BaseObject is int code)
            {
                return code;
            }
        }

        return Exit(ok);
    }

    public int Interactive()
    {
        Console.WriteLine("vmi - virtual machine introspection. Connect-VmiDomain -Mock starts a demo guest; Get-Command -Module Vmi lists the cmdlets; exit leaves.");
        var buffer = new System.Text.StringBuilder();
        while (_host.ExitCode is null)
        {
            Console.Write(buffer.Length == 0 ? Prompt() : ">> ");
            string? line = Console.ReadLine();
            if (line is null)
            {
                break; // end of input
            }

            buffer.AppendLine(line);
            string text = buffer.ToString();
            Parser.ParseInput(text, out _, out ParseError[] errors);
            if (errors.Any(e => e.IncompleteInput) && line.Length > 0)
            {
                continue; // more lines to come (an open brace, a here-string...)
            }

            buffer.Clear();
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            if (text.Trim().Equals("exit", StringComparison.OrdinalIgnoreCase))
            {
                break;
            }

            Invoke(ps => ps.AddScript(text), addToHistory: true);
        }

        return _host.ExitCode ?? 0;
    }

    private string Prompt()
    {
        try
        {
            using var ps = System.Management.Automation.PowerShell.Create();
            ps.Runspace = _runspace;
            string? session = ps.AddScript("(Get-VmiSession -Default).Name").Invoke<string>().FirstOrDefault();
            return session is null ? "VMI> " : $"VMI [{session}]> ";
        }
        catch (RuntimeException)
        {
            return "VMI> ";
        }
    }

    /// <summary>Runs the pipeline built by <paramref name="build"/>, formatted by Out-Default; returns false if it failed.</summary>
    private bool Invoke(Action<System.Management.Automation.PowerShell> build, bool addToHistory = false)
    {
        using var ps = System.Management.Automation.PowerShell.Create();
        ps.Runspace = _runspace;
        build(ps);
        ps.Commands.Commands[0].MergeMyResults(PipelineResultTypes.Error, PipelineResultTypes.Output);
        ps.AddCommand("Out-Default");
        lock (_gate)
        {
            _current = ps;
        }

        try
        {
            ps.Invoke(null, new PSInvocationSettings { AddToHistory = addToHistory });
            return !ps.HadErrors;
        }
        catch (RuntimeException e)
        {
            // A terminating error: show it as pwsh does, through the engine's error view.
            ShowError(e.ErrorRecord);
            return false;
        }
        finally
        {
            lock (_gate)
            {
                _current = null;
            }
        }
    }

    private void ShowError(ErrorRecord record)
    {
        try
        {
            using var ps = System.Management.Automation.PowerShell.Create();
            ps.Runspace = _runspace;
            ps.AddCommand("Out-Default").Invoke(new object[] { record });
        }
        catch (RuntimeException)
        {
            _host.UI.WriteErrorLine(record.ToString());
        }
    }

    private int Exit(bool ok) => _host.ExitCode ?? (ok ? 0 : 1);

    private void OnCancel(object? sender, ConsoleCancelEventArgs e)
    {
        System.Management.Automation.PowerShell? current;
        lock (_gate)
        {
            current = _current;
        }

        e.Cancel = true;
        if (current is not null)
        {
            // Stop the pipeline (Wait-VmiEvent answers every pending event); keep the shell, and the guest, alive.
            current.BeginStop(null, null);
            return;
        }

        // Ctrl+C at the prompt leaves the shell, but only after every guest is restored: closing the runspace
        // closes its sessions, then Environment.Exit runs the remaining exit handlers.
        Console.Error.WriteLine();
        try
        {
            _runspace.Close();
        }
        finally
        {
            Environment.Exit(130);
        }
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancel;

        // Restore every guest before the engine goes: closing the runspace closes its sessions.
        _runspace.Close();
    }
}
