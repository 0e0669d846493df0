using System.Management.Automation;
using System.Text;
using Microsoft.PowerShell.Commands.Internal.Format;

namespace Vmi.Shell.Builtins;

/// <summary>Out-String: renders its input as text with the engine's formatter, as one string or a line at a time (-Stream).</summary>
[Cmdlet(VerbsData.Out, "String", DefaultParameterSetName = NoNewlineSet)]
[OutputType(typeof(string))]
public sealed class OutStringCommand : FrontEndCommandBase
{
    private const string NoNewlineSet = "NoNewLineFormatting";
    private const string StreamSet = "StreamFormatting";

    private readonly StringBuilder _buffer = new();
    private LineWriter? _writer;

    /// <summary>Write each line as it is formatted instead of one string at the end.</summary>
    [Parameter(ParameterSetName = StreamSet)]
    public SwitchParameter Stream { get; set; }

    /// <summary>The number of columns to format to (unlimited by default).</summary>
    [Parameter]
    [ValidateRange(2, int.MaxValue)]
    public int Width { get; set; } = int.MaxValue;

    /// <summary>Join the lines without line breaks.</summary>
    [Parameter(ParameterSetName = NoNewlineSet)]
    public SwitchParameter NoNewline { get; set; }

    protected override void BeginProcessing()
    {
        _writer = new LineWriter(OnLine);
        EngineInternals.UseTextOutput(this, _writer, Width);
        base.BeginProcessing();
    }

    protected override void EndProcessing()
    {
        base.EndProcessing();
        _writer?.Flush();
        if (!Stream)
        {
            WriteObject(_buffer.ToString());
        }
    }

    private void OnLine(string line)
    {
        if (Stream)
        {
            WriteObject(line);
        }
        else if (NoNewline)
        {
            _buffer.Append(line);
        }
        else
        {
            _buffer.Append(line).Append('\n');
        }
    }

    /// <summary>A text writer that hands over each completed line.</summary>
    private sealed class LineWriter(Action<string> onLine) : TextWriter
    {
        private readonly StringBuilder _partial = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            if (value == '\n')
            {
                EmitLine();
            }
            else if (value != '\r')
            {
                _partial.Append(value);
            }
        }

        public override void Write(string? value)
        {
            foreach (char c in value ?? string.Empty)
            {
                Write(c);
            }
        }

        public override void WriteLine(string? value)
        {
            Write(value);
            EmitLine();
        }

        public override void Flush()
        {
            if (_partial.Length > 0)
            {
                EmitLine();
            }
        }

        private void EmitLine()
        {
            onLine(_partial.ToString());
            _partial.Clear();
        }
    }
}
