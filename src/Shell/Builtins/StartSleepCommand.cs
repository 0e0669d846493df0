using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Start-Sleep: waits for a time (seconds, milliseconds or a TimeSpan); Ctrl+C ends the wait at once.</summary>
[Cmdlet(VerbsLifecycle.Start, "Sleep", DefaultParameterSetName = SecondsSet)]
public sealed class StartSleepCommand : PSCmdlet, IDisposable
{
    private const string SecondsSet = "Seconds";
    private const string MillisecondsSet = "Milliseconds";
    private const string DurationSet = "FromTimeSpan";

    private readonly ManualResetEventSlim _stopped = new();

    [Parameter(Position = 0, Mandatory = true, ParameterSetName = SecondsSet, ValueFromPipeline = true)]
    [ValidateRange(0.0, int.MaxValue / 1000.0)]
    public double Seconds { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = MillisecondsSet, ValueFromPipelineByPropertyName = true)]
    [Alias("ms")]
    [ValidateRange(0, int.MaxValue)]
    public int Milliseconds { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = DurationSet, ValueFromPipelineByPropertyName = true)]
    [Alias("ts")]
    public TimeSpan Duration { get; set; }

    protected override void ProcessRecord()
    {
        TimeSpan wait = ParameterSetName switch
        {
            MillisecondsSet => TimeSpan.FromMilliseconds(Milliseconds),
            DurationSet => Duration,
            _ => TimeSpan.FromSeconds(Seconds),
        };
        if (wait < TimeSpan.Zero || wait.TotalMilliseconds > int.MaxValue)
        {
            ThrowTerminatingError(BuiltinErrors.Argument($"The duration {wait} is out of range (0 to {TimeSpan.FromMilliseconds(int.MaxValue)}).", "DurationOutOfRange", wait));
        }

        _stopped.Wait(wait);
    }

    protected override void StopProcessing() => _stopped.Set();

    public void Dispose() => _stopped.Dispose();
}
