using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;

namespace Vmi.Shell;

/// <summary>Console output and input for the engine: what Out-Default formats ends up here.</summary>
internal sealed class ShellUI : PSHostUserInterface
{
    private readonly ShellRawUI _raw = new();
    private readonly bool _color = !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("NO_COLOR") is null;

    public override PSHostRawUserInterface RawUI => _raw;

    public override bool SupportsVirtualTerminal => _color;

    public override string ReadLine() => Console.ReadLine() ?? string.Empty;

    public override SecureString ReadLineAsSecureString()
    {
        var s = new SecureString();
        foreach (char c in ReadLine())
        {
            s.AppendChar(c);
        }

        s.MakeReadOnly();
        return s;
    }

    public override void Write(string value) => Console.Out.Write(Plain(value));

    public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Console.Out.Write(Plain(value));

    public override void WriteLine(string value) => Console.Out.WriteLine(Plain(value));

    /// <summary>Without colour (redirected output, NO_COLOR), escape sequences the formatter added are removed.</summary>
    private string Plain(string value) => _color || value is null || !value.Contains('\x1b', StringComparison.Ordinal)
        ? value!
        : System.Text.RegularExpressions.Regex.Replace(value, "\x1b\\[[0-9;]*[A-Za-z]", string.Empty);

    public override void WriteErrorLine(string value) => WriteColored(Console.Error, "\x1b[91m", value);

    public override void WriteWarningLine(string message) => WriteColored(Console.Error, "\x1b[93m", "WARNING: " + message);

    public override void WriteVerboseLine(string message) => WriteColored(Console.Error, "\x1b[93m", "VERBOSE: " + message);

    public override void WriteDebugLine(string message) => WriteColored(Console.Error, "\x1b[93m", "DEBUG: " + message);

    /// <summary>
    /// Nothing to do: the engine itself writes what is to be shown (Write-Host's text, with its colours and -NoNewline,
    /// and records under InformationAction Continue) through Write/WriteLine; printing the record here doubled it.
    /// </summary>
    public override void WriteInformation(InformationRecord record)
    {
    }

    public override void WriteProgress(long sourceId, ProgressRecord record)
    {
        if (Console.IsErrorRedirected || record is null)
        {
            return; // progress is for people watching a terminal
        }

        if (record.RecordType == ProgressRecordType.Completed)
        {
            Console.Error.Write("\r\x1b[2K");
            return;
        }

        string line = $"{record.Activity}: {record.StatusDescription}{(record.PercentComplete >= 0 ? $" ({record.PercentComplete}%)" : string.Empty)}";
        Console.Error.Write("\r\x1b[2K" + line);
    }

    public override Dictionary<string, PSObject> Prompt(string caption, string message, Collection<FieldDescription> descriptions)
    {
        ArgumentNullException.ThrowIfNull(descriptions);
        WriteLine(caption);
        WriteLine(message);
        var result = new Dictionary<string, PSObject>();
        foreach (FieldDescription d in descriptions)
        {
            Write(d.Name + ": ");
            result[d.Name] = PSObject.AsPSObject(ReadLine());
        }

        return result;
    }

    public override int PromptForChoice(string caption, string message, Collection<ChoiceDescription> choices, int defaultChoice)
    {
        ArgumentNullException.ThrowIfNull(choices);
        if (Console.IsInputRedirected)
        {
            // Nobody can answer, and a change to a guest is never confirmed by default.
            throw new PSInvalidOperationException(
                $"'{caption}: {message}' needs confirmation, but input is not a terminal. Pass -Confirm:$false to confirm in a script, or -WhatIf to see what would happen.");
        }

        WriteLine(caption);
        WriteLine(message);
        string options = string.Join("  ", choices.Select((c, i) => $"[{HotKey(c.Label)}] {c.Label.Replace("&", string.Empty, StringComparison.Ordinal)}"));
        while (true)
        {
            Write($"{options} (default is \"{HotKey(choices[defaultChoice].Label)}\"): ");
            string answer = ReadLine().Trim();
            if (answer.Length == 0)
            {
                return defaultChoice;
            }

            for (int i = 0; i < choices.Count; i++)
            {
                if (string.Equals(answer, HotKey(choices[i].Label), StringComparison.OrdinalIgnoreCase)
                    || string.Equals(answer, choices[i].Label.Replace("&", string.Empty, StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase))
                {
                    return i;
                }
            }
        }
    }

    public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) =>
        throw new NotSupportedException("The vmi shell cannot prompt for credentials.");

    public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName, PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) =>
        throw new NotSupportedException("The vmi shell cannot prompt for credentials.");

    private static string HotKey(string label)
    {
        int amp = label.IndexOf('&', StringComparison.Ordinal);
        return amp >= 0 && amp + 1 < label.Length ? label[amp + 1].ToString() : label;
    }

    private void WriteColored(TextWriter writer, string color, string text) =>
        writer.WriteLine(_color && !Console.IsErrorRedirected ? color + text + "\x1b[0m" : Plain(text));
}

/// <summary>The console's size for the formatter (tables fit the window; 120 columns when output is redirected).</summary>
internal sealed class ShellRawUI : PSHostRawUserInterface
{
    public override ConsoleColor BackgroundColor { get; set; } = ConsoleColor.Black;

    public override ConsoleColor ForegroundColor { get; set; } = ConsoleColor.Gray;

    public override Size BufferSize
    {
        get => new(Width, 9999);
        set { }
    }

    public override Coordinates CursorPosition { get; set; }

    public override int CursorSize { get; set; } = 25;

    public override bool KeyAvailable => !Console.IsInputRedirected && Console.KeyAvailable;

    public override Size MaxPhysicalWindowSize => new(Width, 50);

    public override Size MaxWindowSize => new(Width, 50);

    public override Coordinates WindowPosition { get; set; }

    public override Size WindowSize
    {
        get => new(Width, 50);
        set { }
    }

    public override string WindowTitle { get; set; } = "vmi";

    private static int Width
    {
        get
        {
            if (Console.IsOutputRedirected)
            {
                return 120;
            }

            try
            {
                return Math.Max(80, Console.WindowWidth);
            }
            catch (IOException)
            {
                return 120;
            }
        }
    }

    public override void FlushInputBuffer()
    {
    }

    public override BufferCell[,] GetBufferContents(Rectangle rectangle) => throw new NotSupportedException();

    public override KeyInfo ReadKey(ReadKeyOptions options)
    {
        ConsoleKeyInfo k = Console.ReadKey((options & ReadKeyOptions.NoEcho) != 0);
        return new KeyInfo((int)k.Key, k.KeyChar, ControlKeyStates.NumLockOn, true);
    }

    public override void ScrollBufferContents(Rectangle source, Coordinates destination, Rectangle clip, BufferCell fill) => throw new NotSupportedException();

    public override void SetBufferContents(Coordinates origin, BufferCell[,] contents) => throw new NotSupportedException();

    public override void SetBufferContents(Rectangle rectangle, BufferCell fill) => throw new NotSupportedException();
}
