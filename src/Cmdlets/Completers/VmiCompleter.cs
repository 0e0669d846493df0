using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace Vmi.PowerShell;

/// <summary>Shared plumbing of the module's argument completers: prefix matching and the session in scope.</summary>
public abstract class VmiCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        string prefix = (wordToComplete ?? string.Empty).Trim('\'', '"');
        IEnumerable<(string Text, string Tooltip)> candidates;
        try
        {
            candidates = Candidates(SessionFrom(fakeBoundParameters)).ToArray();
        }
#pragma warning disable CA1031 // completion must never throw into the user's prompt
        catch (Exception)
#pragma warning restore CA1031
        {
            yield break;
        }

        foreach ((string text, string tooltip) in candidates)
        {
            if (text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                string quoted = text.Contains(' ', StringComparison.Ordinal) ? "'" + text + "'" : text;
                yield return new CompletionResult(quoted, text, CompletionResultType.ParameterValue, tooltip);
            }
        }
    }

    /// <summary>The candidates, given the session the command line names (or the default).</summary>
    protected abstract IEnumerable<(string Text, string Tooltip)> Candidates(VmiSession? session);

    private static VmiSession? SessionFrom(IDictionary? bound)
    {
        object? value = bound?["Session"];
        value = value is PSObject pso ? pso.BaseObject : value;
        return value switch
        {
            VmiSession s => s,
            int id => VmiSessionRegistry.All.FirstOrDefault(s => s.Id == id),
            string name => VmiSessionRegistry.All.LastOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)),
            _ => VmiSessionRegistry.Default ?? VmiSessionRegistry.All.LastOrDefault(),
        };
    }
}
