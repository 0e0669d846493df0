using System.Management.Automation.Runspaces;
using Microsoft.PowerShell;

namespace Vmi.Shell;

/// <summary>
/// vmi: pwsh's own console host (Microsoft.PowerShell.ConsoleHost from the PowerShell SDK) with the Vmi module
/// imported at start. The command line is pwsh's: -Command, -File, -NoProfile, -NonInteractive, -NoExit, -sshs...
/// behave exactly as they do in pwsh, because the same code parses and runs them.
/// </summary>
/// <remarks>
/// The module sits in <c>Modules/Vmi</c> next to this program, a folder put on PSModulePath at start, so it is also
/// found by module auto-loading in runspaces this program does not create: the endpoint of an SSH remoting session
/// (<c>vmi -sshs</c>) and the runspaces of <c>ForEach-Object -Parallel</c>.
/// </remarks>
internal static class Program
{
    private const string Banner = "vmi: PowerShell with the Vmi module. Connect-VmiDomain -Mock starts a demo guest; Get-Help about_Vmi explains the rest.";

    private const string Help = """
        vmi - virtual machine introspection: PowerShell's console host with the Vmi module imported.
        It takes pwsh's command line (pwsh -Help lists it all):

          vmi                               interactive prompt
          vmi -Command <script>             run script text ('-' reads it from standard input)
          vmi -File <script.ps1> [args...]  run a script file with arguments
          vmi -NoProfile -NonInteractive    as in pwsh
          vmi -sshs                         serve PowerShell remoting over SSH (an sshd Subsystem line)

        Try:  vmi -Command 'Connect-VmiDomain -Mock; Get-VmiRegister'
        """;

    /// <summary>The prompt: pwsh's, with the default session's name in front while one is connected.</summary>
    private const string PromptFunction = """
        $session = Vmi\Get-VmiSession -Default -ErrorAction Ignore
        $location = $executionContext.SessionState.Path.CurrentLocation
        $nested = '>' * ($nestedPromptLevel + 1)
        if ($session) { "VMI [$($session.Name)] $location$nested " } else { "VMI $location$nested " }
        """;

    private static int Main(string[] args)
    {
        string modules = Path.Combine(AppContext.BaseDirectory, "Modules");
        string manifest = Path.Combine(modules, "Vmi", "Vmi.psd1");
        if (!File.Exists(manifest))
        {
            Console.Error.WriteLine($"vmi: the Vmi module is missing at {manifest}; rebuild or republish src/Shell.");
            return 70; // EX_SOFTWARE
        }

        // On the module path of this process and its children, so runspaces vmi does not create itself (the
        // endpoint of an SSH remoting session, ForEach-Object -Parallel, jobs) load the module by auto-loading.
        // A single-file publish puts the engine ($PSHOME) in the top folder but leaves pwsh's built-in modules (Utility,
        // Management, Security, Host) where the SDK package keeps them, under runtimes/<rid>/lib/<tfm>/Modules: without
        // that folder on the path too, Write-Host, Select-Object and the rest are missing.
        foreach (string folder in BuiltInModuleFolders().Prepend(modules))
        {
            string? modulePath = Environment.GetEnvironmentVariable("PSModulePath");
            if (modulePath is null || !modulePath.Split(Path.PathSeparator).Contains(folder, StringComparer.Ordinal))
            {
                Environment.SetEnvironmentVariable("PSModulePath", string.IsNullOrEmpty(modulePath) ? folder : folder + Path.PathSeparator + modulePath);
            }
        }

        if (CommandText(args) is { } command && !ReportParseErrors(command))
        {
            return 1; // as pwsh exits on a script that does not parse
        }

        InitialSessionState iss = InitialSessionState.CreateDefault2();
        iss.ImportPSModule(manifest);
        iss.Commands.Add(new SessionStateFunctionEntry("prompt", PromptFunction));
        return ConsoleShell.Start(iss, Banner, Help, args);
    }

    /// <summary>The folders of pwsh's built-in modules when they are not in <c>$PSHOME/Modules</c> (a single-file publish).</summary>
    private static IEnumerable<string> BuiltInModuleFolders()
    {
        string runtimes = Path.Combine(AppContext.BaseDirectory, "runtimes");
        if (File.Exists(Path.Combine(AppContext.BaseDirectory, "System.Management.Automation.dll")) && Directory.Exists(runtimes))
        {
            return Directory.EnumerateDirectories(runtimes, "Modules", SearchOption.AllDirectories)
                .Where(d => Directory.Exists(Path.Combine(d, "Microsoft.PowerShell.Utility")))
                .Order(StringComparer.Ordinal);
        }

        return [];
    }

    /// <summary>The script text of <c>-Command</c> (or any abbreviation pwsh takes: -c, -co, ...), if given inline.</summary>
    private static string? CommandText(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i].TrimStart('-', '/');
            if (a.Length == args[i].Length || a.Length == 0)
            {
                continue; // not a parameter
            }

            if ("command".StartsWith(a, StringComparison.OrdinalIgnoreCase))
            {
                return i + 1 < args.Length && args[i + 1] != "-" ? string.Join(' ', args[(i + 1)..]) : null;
            }

            if ("file".StartsWith(a, StringComparison.OrdinalIgnoreCase) || a.StartsWith("commandwith", StringComparison.OrdinalIgnoreCase) ||
                a.StartsWith("encoded", StringComparison.OrdinalIgnoreCase) || a.Equals("ec", StringComparison.OrdinalIgnoreCase))
            {
                return null; // everything after it belongs to the script
            }
        }

        return null;
    }

    /// <summary>
    /// Prints the parse errors of a -Command text to standard error, as pwsh prints those of a -File script; returns
    /// true when it parses. pwsh's own error view prints nothing for them (it reads the position of an invocation a
    /// parse error does not have), which leaves a user with an empty line and exit code 1.
    /// </summary>
    private static bool ReportParseErrors(string command)
    {
        System.Management.Automation.Language.Parser.ParseInput(command, out _, out System.Management.Automation.Language.ParseError[] errors);
        if (errors.Length == 0)
        {
            return true;
        }

        foreach (System.Management.Automation.Language.ParseError e in errors)
        {
            var start = e.Extent.StartScriptPosition;
            string line = start.Line.TrimEnd('\r', '\n');
            Console.Error.WriteLine($"ParserError: line {start.LineNumber}, column {start.ColumnNumber}: {e.Message}");
            Console.Error.WriteLine($"  {line}");
            Console.Error.WriteLine($"  {new string(' ', Math.Max(0, Math.Min(start.ColumnNumber - 1, line.Length)))}^");
        }

        return false;
    }
}
