using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Vmi.Core;

namespace Vmi.Qemu;

/// <summary>A stop reply of the remote serial protocol: "T05thread:p01.02;swbreak:;" and the like.</summary>
/// <param name="Kind">'T' or 'S' (stopped), 'W' (exited), 'X' (terminated).</param>
/// <param name="Signal">The signal number (5 = SIGTRAP: a breakpoint or a step; 2 = SIGINT: paused).</param>
/// <param name="Thread">The thread that stopped ("p01.02"), or null.</param>
public sealed record GdbStopReply(char Kind, int Signal, string? Thread, IReadOnlyDictionary<string, string> Fields, string Raw)
{
    public const int SigInt = 2;
    public const int SigTrap = 5;

    public static bool IsStopReply(string packet) =>
        packet.Length >= 3 && packet[0] is 'T' or 'S' or 'W' or 'X' && Uri.IsHexDigit(packet[1]) && Uri.IsHexDigit(packet[2]);

    public static GdbStopReply Parse(string packet)
    {
        if (!IsStopReply(packet))
        {
            throw new VmiFormatException($"'{packet}' is not a stop reply", "gdbstub");
        }

        int signal = int.Parse(packet.AsSpan(1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        if (packet[0] == 'T')
        {
            foreach (string pair in packet[3..].Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                int colon = pair.IndexOf(':', StringComparison.Ordinal);
                fields[colon < 0 ? pair : pair[..colon]] = colon < 0 ? "" : pair[(colon + 1)..];
            }
        }

        return new GdbStopReply(packet[0], signal, fields.GetValueOrDefault("thread"), fields, packet);
    }
}

/// <summary>
/// A client of the GDB remote serial protocol (QEMU's gdbstub) over a unix or TCP socket: framing, checksums,
/// acknowledgements until no-ack mode is agreed, run-length decoding, and stop replies kept apart from command
/// replies (QEMU sends a stop reply whenever the VM stops, also when QMP stopped it). Calls are serialised on the
/// socket; nothing else is locked.
/// </summary>
public sealed class GdbRemote : IDisposable
{
    private readonly Socket _socket;
    private readonly object _io = new();
    private readonly Queue<GdbStopReply> _stops = new();
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _start;
    private int _end;
    private bool _ackMode = true;
    private bool _disposed;

    public GdbRemote(Socket socket, TimeSpan? timeout = null)
    {
        _socket = socket ?? throw new ArgumentNullException(nameof(socket));
        Timeout = timeout ?? TimeSpan.FromSeconds(60);
    }

    public static GdbRemote Connect(string endpoint, TimeSpan? timeout = null) => new(SocketEndpoint.Connect(endpoint, "gdbstub"), timeout);

    /// <summary>How long a command waits for its reply before the stub is declared hung.</summary>
    public TimeSpan Timeout { get; set; }

    /// <summary>True once the stub agreed to QStartNoAckMode.</summary>
    public bool NoAckMode => !_ackMode;

    /// <summary>What the stub said to qSupported (name to value, "+" / "-" for flags).</summary>
    public IReadOnlyDictionary<string, string> Features { get; private set; } = new Dictionary<string, string>();

    /// <summary>Packets sent and received (for tests and the benchmarks).</summary>
    public long PacketsSent { get; private set; }

    /// <summary>Says hello: qSupported, then no-ack mode when the stub offers it.</summary>
    public void Handshake()
    {
        string reply = Command("qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+;xmlRegisters=i386");
        var features = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string f in reply.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = f.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                features[f[..eq]] = f[(eq + 1)..];
            }
            else if (f.EndsWith('+') || f.EndsWith('-'))
            {
                features[f[..^1]] = f[^1..];
            }
        }

        Features = features;
        // QEMU accepts QStartNoAckMode without advertising it; an empty reply means "not supported": stay in ack mode.
        if (Command("QStartNoAckMode") == "OK")
        {
            lock (_io)
            {
                _ackMode = false;
            }
        }
    }

    /// <summary>Sends a packet and returns its reply (not a stop reply: those are queued for <see cref="TryTakeStop"/>).</summary>
    public string Command(string packet)
    {
        lock (_io)
        {
            SendLocked(packet);
            DateTime deadline = DateTime.UtcNow + Timeout;
            while (true)
            {
                string reply = ReceiveLocked(deadline) ?? throw new VmiDriverException($"The gdbstub did not answer '{Describe(packet)}' within {Timeout.TotalSeconds:0} s: is the VM's QEMU hung?");
                if (GdbStopReply.IsStopReply(reply))
                {
                    _stops.Enqueue(GdbStopReply.Parse(reply));
                    continue;
                }

                if (reply.Length > 0 && reply[0] == 'O' && reply.Length % 2 == 1 && packet[0] is 'c' or 's' or 'v')
                {
                    continue; // console output
                }

                return reply;
            }
        }
    }

    /// <summary>Sends a command whose reply is an error or "OK"; throws on an error reply.</summary>
    public void CommandOk(string packet, string what)
    {
        string reply = Command(packet);
        if (reply != "OK")
        {
            throw new VmiDriverException($"The gdbstub refused to {what} ('{Describe(packet)}' answered '{(reply.Length == 0 ? "(not supported)" : reply)}').");
        }
    }

    /// <summary>Sends a packet that has no immediate reply (c, vCont;c, vCont;s: the reply is a later stop).</summary>
    public void Send(string packet)
    {
        lock (_io)
        {
            SendLocked(packet);
        }
    }

    /// <summary>Sends the interrupt byte (^C): the stub stops the target and sends a stop reply.</summary>
    public void Interrupt()
    {
        lock (_io)
        {
            _socket.Send([0x03]);
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeout"/> until a stop reply is queued, without taking it; true when one is, or when
    /// <paramref name="alsoDone"/> (checked between slices of the wait) says so.
    /// </summary>
    /// <remarks>
    /// As in every wait here (<see cref="WaitUntil"/>), the waiting happens outside the lock: holding it while blocked on the socket starved
    /// every command from another thread (the restore on SIGTERM found the gdbstub still attached).
    /// </remarks>
    public bool WaitForStop(TimeSpan timeout, CancellationToken cancellationToken = default, Func<bool>? alsoDone = null) =>
        WaitUntil(timeout, cancellationToken, () => _stops.Count > 0, alsoDone);

    /// <summary>Takes the oldest stop reply, waiting up to <paramref name="timeout"/> for one to arrive.</summary>
    public bool TryTakeStop(TimeSpan timeout, out GdbStopReply? stop, CancellationToken cancellationToken = default)
    {
        GdbStopReply? taken = null;
        bool ok = WaitUntil(timeout, cancellationToken, () => _stops.TryDequeue(out taken));
        stop = taken;
        return ok;
    }

    /// <summary>
    /// Waits until <paramref name="doneLocked"/> (called under the lock, after the stop replies that have arrived are
    /// queued) or <paramref name="alsoDone"/> holds; false on timeout or cancellation. The waiting happens outside the
    /// lock, so that a command from another thread (Restore on SIGTERM) is never starved by this loop re-taking it.
    /// </summary>
    private bool WaitUntil(TimeSpan timeout, CancellationToken cancellationToken, Func<bool> doneLocked, Func<bool>? alsoDone = null)
    {
        DateTime deadline = timeout == System.Threading.Timeout.InfiniteTimeSpan ? DateTime.MaxValue : DateTime.UtcNow + timeout;
        while (true)
        {
            lock (_io)
            {
                QueueArrivedStopsLocked();
                if (doneLocked())
                {
                    return true;
                }
            }

            if (alsoDone?.Invoke() == true)
            {
                return true;
            }

            TimeSpan left = deadline - DateTime.UtcNow;
            if (cancellationToken.IsCancellationRequested || left <= TimeSpan.Zero)
            {
                return false;
            }

            TimeSpan slice = left < TimeSpan.FromMilliseconds(50) ? left : TimeSpan.FromMilliseconds(50);
            try
            {
                _socket.Poll((int)slice.TotalMicroseconds, SelectMode.SelectRead);
            }
            catch (ObjectDisposedException)
            {
                throw new VmiDriverException("The gdbstub connection was closed while waiting for the VM to stop (the session was disconnected).");
            }
        }
    }

    /// <summary>Queues every stop reply that has arrived, without waiting. Call under the lock.</summary>
    private void QueueArrivedStopsLocked()
    {
        while (ReceiveLocked(DateTime.UtcNow) is string packet)
        {
            if (GdbStopReply.IsStopReply(packet))
            {
                _stops.Enqueue(GdbStopReply.Parse(packet));
            }
        }
    }

    /// <summary>Drops the stop replies received and not taken; returns them.</summary>
    public IReadOnlyList<GdbStopReply> DrainStops()
    {
        lock (_io)
        {
            QueueArrivedStopsLocked();

            GdbStopReply[] all = [.. _stops];
            _stops.Clear();
            return all;
        }
    }

    // ------------------------------------------------------------------ helpers over packets

    /// <summary>Reads a qXfer object (e.g. features "target.xml") in as many pieces as the stub sends.</summary>
    public string ReadXfer(string obj, string annex)
    {
        var text = new StringBuilder();
        while (true)
        {
            string reply = Command(string.Create(CultureInfo.InvariantCulture, $"qXfer:{obj}:read:{annex}:{text.Length:x},fff"));
            if (reply.Length == 0 || reply[0] == 'E')
            {
                throw new VmiDriverException($"The gdbstub cannot give qXfer:{obj} '{annex}' (answered '{reply}').");
            }

            text.Append(reply, 1, reply.Length - 1);
            if (reply[0] == 'l')
            {
                return text.ToString();
            }

            if (reply[0] != 'm' || reply.Length == 1)
            {
                throw new VmiFormatException($"unexpected qXfer reply '{reply[..Math.Min(reply.Length, 40)]}'", "gdbstub");
            }
        }
    }

    /// <summary>The stub's thread ids (one per vCPU on QEMU), from qfThreadInfo/qsThreadInfo.</summary>
    public IReadOnlyList<string> Threads()
    {
        var threads = new List<string>();
        string reply = Command("qfThreadInfo");
        while (reply.Length > 0 && reply[0] == 'm')
        {
            threads.AddRange(reply[1..].Split(',', StringSplitOptions.RemoveEmptyEntries));
            reply = Command("qsThreadInfo");
        }

        if (reply != "l")
        {
            throw new VmiFormatException($"unexpected thread list reply '{reply}'", "gdbstub");
        }

        return threads;
    }

    /// <summary>Reads <paramref name="length"/> bytes with "m" packets (at most <paramref name="chunk"/> a packet).</summary>
    public void ReadMemory(ulong address, Span<byte> destination, int chunk = 0x7f0)
    {
        int done = 0;
        while (done < destination.Length)
        {
            int n = Math.Min(chunk, destination.Length - done);
            string reply = Command(string.Create(CultureInfo.InvariantCulture, $"m{address + (ulong)done:x},{n:x}"));
            if (reply.Length == 0 || reply[0] == 'E' || reply.Length % 2 != 0)
            {
                throw new VmiDriverException(string.Create(CultureInfo.InvariantCulture, $"The gdbstub cannot read 0x{address + (ulong)done:x} ({n} bytes): '{reply}'."));
            }

            int got = FromHex(reply, destination.Slice(done, Math.Min(n, reply.Length / 2)));
            if (got == 0)
            {
                throw new VmiDriverException(string.Create(CultureInfo.InvariantCulture, $"The gdbstub returned no bytes for 0x{address + (ulong)done:x}."));
            }

            done += got;
        }
    }

    /// <summary>Writes bytes with "M" packets.</summary>
    public void WriteMemory(ulong address, ReadOnlySpan<byte> data, int chunk = 0x3f0)
    {
        for (int done = 0; done < data.Length; done += chunk)
        {
            ReadOnlySpan<byte> part = data.Slice(done, Math.Min(chunk, data.Length - done));
            CommandOk(string.Create(CultureInfo.InvariantCulture, $"M{address + (ulong)done:x},{part.Length:x}:{Convert.ToHexStringLower(part)}"), string.Create(CultureInfo.InvariantCulture, $"write memory at 0x{address + (ulong)done:x}"));
        }
    }

    public static int FromHex(string hex, Span<byte> destination)
    {
        int n = Math.Min(destination.Length, hex.Length / 2);
        for (int i = 0; i < n; i++)
        {
            destination[i] = (byte)((HexValue(hex[2 * i]) << 4) | HexValue(hex[(2 * i) + 1]));
        }

        return n;
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => throw new VmiFormatException($"'{c}' is not a hex digit", "gdbstub"),
    };

    // ------------------------------------------------------------------ framing

    /// <summary>Frames a packet: $data#checksum, escaping '$', '#', '}' and '*'.</summary>
    public static byte[] Frame(string packet)
    {
        var bytes = new List<byte>(packet.Length + 4) { (byte)'$' };
        byte sum = 0;
        foreach (char ch in packet)
        {
            byte b = (byte)ch;
            if (b is (byte)'$' or (byte)'#' or (byte)'}' or (byte)'*')
            {
                bytes.Add((byte)'}');
                sum += (byte)'}';
                b ^= 0x20;
            }

            bytes.Add(b);
            sum += b;
        }

        bytes.Add((byte)'#');
        bytes.AddRange(Encoding.ASCII.GetBytes(sum.ToString("x2", CultureInfo.InvariantCulture)));
        return [.. bytes];
    }

    private void SendLocked(string packet)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        byte[] frame = Frame(packet);
        for (int attempt = 0; ; attempt++)
        {
            _socket.Send(frame);
            PacketsSent++;
            if (!_ackMode)
            {
                return;
            }

            // Wait for '+' (or '-': send again).
            DateTime deadline = DateTime.UtcNow + Timeout;
            while (true)
            {
                if (_start < _end)
                {
                    byte b = _buffer[_start];
                    if (b == (byte)'+')
                    {
                        _start++;
                        return;
                    }

                    if (b == (byte)'-')
                    {
                        _start++;
                        break;
                    }

                    if (b == (byte)'$')
                    {
                        return; // a packet without an ack first (a stub already in no-ack mode)
                    }

                    _start++;
                    continue;
                }

                if (!Fill(deadline))
                {
                    throw new VmiDriverException($"The gdbstub did not acknowledge '{Describe(packet)}' within {Timeout.TotalSeconds:0} s.");
                }
            }

            if (attempt >= 3)
            {
                throw new VmiDriverException($"The gdbstub rejected '{Describe(packet)}' {attempt + 1} times (bad checksum on the link).");
            }
        }
    }

    /// <summary>Receives one packet's payload (unescaped, run-length decoded), or null when <paramref name="deadline"/> passes first.</summary>
    private string? ReceiveLocked(DateTime deadline)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (true)
        {
            int dollar = Array.IndexOf(_buffer, (byte)'$', _start, _end - _start);
            if (dollar >= 0)
            {
                int hash = Array.IndexOf(_buffer, (byte)'#', dollar, _end - dollar);
                if (hash >= 0 && hash + 2 < _end)
                {
                    string payload = Decode(_buffer.AsSpan(dollar + 1, hash - dollar - 1), out byte sum);
                    string given = Encoding.ASCII.GetString(_buffer, hash + 1, 2);
                    _start = hash + 3;
                    bool ok = byte.TryParse(given, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte expected) && expected == sum;
                    if (_ackMode)
                    {
                        _socket.Send(ok ? "+"u8 : "-"u8);
                        if (!ok)
                        {
                            continue; // the stub sends it again
                        }
                    }
                    else if (!ok)
                    {
                        throw new VmiFormatException($"a packet with a bad checksum ({given}, computed {sum:x2}) arrived in no-ack mode", "gdbstub");
                    }

                    return payload;
                }
            }
            else
            {
                _start = _end; // acks and noise before a packet
            }

            if (!Fill(deadline))
            {
                return null;
            }
        }
    }

    private static string Decode(ReadOnlySpan<byte> raw, out byte sum)
    {
        sum = 0;
        var sb = new StringBuilder(raw.Length);
        for (int i = 0; i < raw.Length; i++)
        {
            byte b = raw[i];
            sum += b;
            if (b == (byte)'}' && i + 1 < raw.Length)
            {
                i++;
                sum += raw[i];
                sb.Append((char)(raw[i] ^ 0x20));
            }
            else if (b == (byte)'*' && i + 1 < raw.Length && sb.Length > 0)
            {
                i++;
                sum += raw[i];
                int repeat = raw[i] - 29;
                sb.Append(sb[^1], repeat);
            }
            else
            {
                sb.Append((char)b);
            }
        }

        return sb.ToString();
    }

    /// <summary>Reads more bytes into the buffer; false when the deadline passed with nothing read.</summary>
    private bool Fill(DateTime deadline)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            throw new VmiFormatException("a packet longer than 64 KiB arrived", "gdbstub");
        }

        TimeSpan left = deadline - DateTime.UtcNow;
        int micro = left <= TimeSpan.Zero ? 0 : left.TotalMicroseconds > int.MaxValue ? int.MaxValue : (int)left.TotalMicroseconds;
        if (!_socket.Poll(micro, SelectMode.SelectRead))
        {
            return false;
        }

        int n = _socket.Receive(_buffer, _end, _buffer.Length - _end, SocketFlags.None);
        if (n == 0)
        {
            throw new VmiDriverException("The gdbstub closed the connection: did QEMU exit, or did another debugger take the stub over?");
        }

        _end += n;
        return true;
    }

    private static string Describe(string packet) => packet.Length <= 40 ? packet : packet[..40] + "...";

    public void Dispose()
    {
        lock (_io)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _socket.Dispose();
        }
    }
}
