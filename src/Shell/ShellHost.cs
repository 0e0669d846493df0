using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;

namespace Vmi.Shell;

/// <summary>The host the engine talks to: console output for the formatter, prompts, progress, exit requests.</summary>
internal sealed class ShellHost(ShellUI ui) : PSHost
{
    private readonly Guid _id = Guid.NewGuid();

    public override CultureInfo CurrentCulture => CultureInfo.CurrentCulture;

    public override CultureInfo CurrentUICulture => CultureInfo.CurrentUICulture;

    public override Guid InstanceId => _id;

    public override string Name => "vmi";

    public override PSHostUserInterface UI => ui;

    public override Version Version => typeof(ShellHost).Assembly.GetName().Version ?? new Version(0, 1);

    /// <summary>Set when a script ran `exit`.</summary>
    public int? ExitCode { get; private set; }

    public override void EnterNestedPrompt() => throw new NotSupportedException("Nested prompts are not supported by the vmi shell.");

    public override void ExitNestedPrompt() => throw new NotSupportedException("Nested prompts are not supported by the vmi shell.");

    public override void NotifyBeginApplication()
    {
    }

    public override void NotifyEndApplication()
    {
    }

    public override void SetShouldExit(int exitCode) => ExitCode = exitCode;
}
