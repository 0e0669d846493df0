using System.Collections;
using System.Management.Automation;
using System.Text;

namespace Vmi.Shell.Builtins;

/// <summary>
/// Write-Host: text for the person at the terminal, through the host, as an information record tagged PSHOST
/// (so 6&gt;, -InformationAction and -InformationVariable work as in pwsh).
/// </summary>
[Cmdlet(VerbsCommunications.Write, "Host")]
public sealed class WriteHostCommand : PSCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromRemainingArguments = true)]
    [Alias("Msg", "Message")]
    public object? Object { get; set; }

    [Parameter]
    public SwitchParameter NoNewline { get; set; }

    /// <summary>Put between the items of a collection (a space by default).</summary>
    [Parameter]
    public object Separator { get; set; } = " ";

    [Parameter]
    public ConsoleColor ForegroundColor { get; set; }

    [Parameter]
    public ConsoleColor BackgroundColor { get; set; }

    protected override void ProcessRecord()
    {
        var text = new StringBuilder();
        Append(text, Object, first: true);
        var message = new HostInformationMessage { Message = text.ToString(), NoNewLine = NoNewline };
        if (MyInvocation.BoundParameters.ContainsKey(nameof(ForegroundColor)))
        {
            message.ForegroundColor = ForegroundColor;
        }

        if (MyInvocation.BoundParameters.ContainsKey(nameof(BackgroundColor)))
        {
            message.BackgroundColor = BackgroundColor;
        }

        WriteInformation(message, ["PSHOST"]);
    }

    private bool Append(StringBuilder text, object? value, bool first)
    {
        object? item = value is PSObject ps ? ps.BaseObject : value;
        if (item is null)
        {
            return first;
        }

        if (item is not string && item is IEnumerable items)
        {
            foreach (object? element in items)
            {
                first = Append(text, element, first);
            }

            return first;
        }

        string s = LanguagePrimitives.ConvertTo<string>(value) ?? string.Empty;
        if (s.Length == 0)
        {
            return first;
        }

        if (!first)
        {
            text.Append(Separator);
        }

        text.Append(s);
        return false;
    }
}
