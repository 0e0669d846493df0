using System.Globalization;
using System.Management.Automation;

namespace Vmi.Shell.Builtins;

/// <summary>Get-Date: the current (or a given) date and time, with parts replaced, in UTC on request, or formatted as text.</summary>
[Cmdlet(VerbsCommon.Get, "Date")]
[OutputType(typeof(DateTime), typeof(string))]
public sealed class GetDateCommand : PSCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("LastWriteTime")]
    public DateTime Date { get; set; }

    [Parameter]
    [ValidateRange(1, 9999)]
    public int Year { get; set; }

    [Parameter]
    [ValidateRange(1, 12)]
    public int Month { get; set; }

    [Parameter]
    [ValidateRange(1, 31)]
    public int Day { get; set; }

    [Parameter]
    [ValidateRange(0, 23)]
    public int Hour { get; set; }

    [Parameter]
    [ValidateRange(0, 59)]
    public int Minute { get; set; }

    [Parameter]
    [ValidateRange(0, 59)]
    public int Second { get; set; }

    /// <summary>A .NET format string ('o', 'yyyy-MM-dd HH:mm:ss'...), or FileDate, FileDateTime, FileDateUniversal, FileDateTimeUniversal.</summary>
    [Parameter]
    public string? Format { get; set; }

    [Parameter]
    public SwitchParameter AsUTC { get; set; }

    protected override void ProcessRecord()
    {
        var bound = MyInvocation.BoundParameters;
        DateTime d = bound.ContainsKey(nameof(Date)) ? Date : DateTime.Now;
        try
        {
            if (bound.ContainsKey(nameof(Year)) || bound.ContainsKey(nameof(Month)) || bound.ContainsKey(nameof(Day)))
            {
                int year = bound.ContainsKey(nameof(Year)) ? Year : d.Year;
                int month = bound.ContainsKey(nameof(Month)) ? Month : d.Month;
                int day = bound.ContainsKey(nameof(Day)) ? Day : Math.Min(d.Day, DateTime.DaysInMonth(year, month));
                d = new DateTime(year, month, day, d.Hour, d.Minute, d.Second, d.Millisecond, d.Kind);
            }

            d = d.AddHours((bound.ContainsKey(nameof(Hour)) ? Hour : d.Hour) - d.Hour)
                .AddMinutes((bound.ContainsKey(nameof(Minute)) ? Minute : d.Minute) - d.Minute)
                .AddSeconds((bound.ContainsKey(nameof(Second)) ? Second : d.Second) - d.Second);
        }
        catch (ArgumentOutOfRangeException e)
        {
            ThrowTerminatingError(BuiltinErrors.Create(e, "DateOutOfRange", ErrorCategory.InvalidArgument, d));
        }

        if (AsUTC)
        {
            d = d.ToUniversalTime();
        }

        if (Format is null)
        {
            WriteObject(d);
            return;
        }

        string text = Format.ToLowerInvariant() switch
        {
            "filedate" => d.ToString("yyyyMMdd", CultureInfo.InvariantCulture),
            "filedatetime" => d.ToString("yyyyMMddTHHmmssffff", CultureInfo.InvariantCulture),
            "filedateuniversal" => d.ToUniversalTime().ToString("yyyyMMddZ", CultureInfo.InvariantCulture),
            "filedatetimeuniversal" => d.ToUniversalTime().ToString("yyyyMMddTHHmmssffffZ", CultureInfo.InvariantCulture),
            _ => FormatDate(d),
        };
        WriteObject(text);
    }

    private string FormatDate(DateTime d)
    {
        try
        {
            return d.ToString(Format, CultureInfo.CurrentCulture);
        }
        catch (FormatException e)
        {
            ThrowTerminatingError(BuiltinErrors.Create(e, "BadDateFormat", ErrorCategory.InvalidArgument, Format));
            return string.Empty; // not reached
        }
    }
}
