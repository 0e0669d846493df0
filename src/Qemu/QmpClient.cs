using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Vmi.Core;

namespace Vmi.Qemu;

/// <summary>QEMU refused a QMP command: the error class and description QEMU gave.</summary>
public sealed class QmpException(string command, string errorClass, string description)
    : VmiDriverException($"QEMU refused '{command}': {errorClass}: {description}")
{
    public string Command { get; } = command;

    public string ErrorClass { get; } = errorClass;
}

/// <summary>
/// A QMP client (the QEMU Machine Protocol: JSON lines over a socket). Connecting reads the greeting and leaves
/// capabilities negotiation (<c>qmp_capabilities</c>) done; <see cref="Execute"/> sends one command and returns its
/// <c>return</c> value, collecting asynchronous events that arrive meanwhile in <see cref="Events"/>.
/// Calls are serialised on the socket; nothing else is locked.
/// </summary>
public sealed class QmpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly object _io = new();
    private readonly List<JsonObject> _events = [];
    private int _nextId;

    private QmpClient(Socket socket, TimeSpan timeout)
    {
        _socket = socket;
        _socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        _socket.SendTimeout = (int)timeout.TotalMilliseconds;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, new UTF8Encoding(false), false, 65536);
        JsonObject greeting = ReadMessage() ?? throw new VmiDriverException("QMP closed the connection before its greeting: is this a QMP socket (-qmp unix:PATH,server=on,wait=off)?");
        if (greeting["QMP"] is not JsonObject qmp)
        {
            throw new VmiDriverException($"The peer did not greet as QMP does ({Truncate(greeting.ToJsonString())}): is this a QMP socket and not the human monitor?");
        }

        Greeting = qmp;
        Execute("qmp_capabilities");
    }

    /// <summary>The "QMP" object of the greeting (version, capabilities).</summary>
    public JsonObject Greeting { get; }

    /// <summary>QEMU's version from the greeting, e.g. 7.2.22.</summary>
    public Version Version
    {
        get
        {
            JsonNode? q = Greeting["version"]?["qemu"];
            return new Version((int?)q?["major"] ?? 0, (int?)q?["minor"] ?? 0, (int?)q?["micro"] ?? 0);
        }
    }

    /// <summary>Asynchronous events received so far (STOP, RESUME, DEBUG, ...), oldest first.</summary>
    public IReadOnlyList<JsonObject> Events
    {
        get
        {
            lock (_io)
            {
                return [.. _events];
            }
        }
    }

    /// <summary>Connects to a QMP socket: a unix socket path, or host:port for TCP.</summary>
    public static QmpClient Connect(string endpoint, TimeSpan? timeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(endpoint);
        Socket socket = SocketEndpoint.Connect(endpoint, "QMP");
        try
        {
            return new QmpClient(socket, timeout ?? TimeSpan.FromSeconds(60));
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            socket.Dispose();
            throw new VmiDriverException($"QMP at '{endpoint}' did not answer ({e.Message}); QEMU serves one QMP client per socket: is another client connected?", 0, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs a command; returns its "return" value (an empty object for commands that return nothing).</summary>
    public JsonNode Execute(string command, JsonObject? arguments = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        lock (_io)
        {
            string id = "vmi-" + (++_nextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var message = new JsonObject { ["execute"] = command, ["id"] = id };
            if (arguments is not null)
            {
                message["arguments"] = arguments.DeepClone();
            }

            byte[] line = Encoding.UTF8.GetBytes(message.ToJsonString() + "\n");
            try
            {
                _stream.Write(line);
                while (true)
                {
                    JsonObject reply = ReadMessage() ?? throw new VmiDriverException($"QMP closed the connection while '{command}' was running: did QEMU exit?");
                    if (reply["event"] is not null)
                    {
                        _events.Add(reply);
                        continue;
                    }

                    if ((string?)reply["id"] != id)
                    {
                        continue; // an answer to a command we did not send (cannot happen with one client); skip it
                    }

                    if (reply["error"] is JsonObject error)
                    {
                        throw new QmpException(command, (string?)error["class"] ?? "GenericError", (string?)error["desc"] ?? "");
                    }

                    return reply["return"]?.DeepClone() ?? new JsonObject();
                }
            }
            catch (IOException e)
            {
                throw new VmiDriverException($"QMP '{command}' failed: {e.Message} (did QEMU exit or hang?)", 0, e);
            }
        }
    }

    /// <summary>Runs a human-monitor command (optionally on one vCPU) and returns its text output with CR removed.</summary>
    public string Hmp(string commandLine, int? cpuIndex = null)
    {
        var args = new JsonObject { ["command-line"] = commandLine };
        if (cpuIndex is int cpu)
        {
            args["cpu-index"] = cpu;
        }

        return ((string?)Execute("human-monitor-command", args) ?? "").Replace("\r", "", StringComparison.Ordinal);
    }

    /// <summary>The VM's run state ("running", "paused", "debug", ...).</summary>
    public string Status() => (string?)Execute("query-status")["status"] ?? "unknown";

    private JsonObject? ReadMessage()
    {
        while (true)
        {
            string? line = _reader.ReadLine();
            if (line is null)
            {
                return null;
            }

            if (line.Length == 0)
            {
                continue;
            }

            try
            {
                return JsonNode.Parse(line) as JsonObject ?? throw new VmiFormatException($"a QMP message is not a JSON object: {Truncate(line)}", "QMP");
            }
            catch (JsonException e)
            {
                throw new VmiFormatException($"QMP sent a line that is not JSON ({e.Message}): {Truncate(line)}", "QMP");
            }
        }
    }

    private static string Truncate(string s) => s.Length <= 200 ? s : s[..200] + "...";

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
    }
}

/// <summary>Opens the sockets QEMU serves: "unix:PATH", a path, "tcp:HOST:PORT" or "HOST:PORT".</summary>
internal static class SocketEndpoint
{
    public static Socket Connect(string endpoint, string what)
    {
        string e = endpoint.StartsWith("unix:", StringComparison.Ordinal) ? endpoint[5..] : endpoint;
        bool tcp = e.StartsWith("tcp:", StringComparison.Ordinal) || (!e.Contains('/', StringComparison.Ordinal) && e.Contains(':', StringComparison.Ordinal));
        if (tcp)
        {
            string hp = e.StartsWith("tcp:", StringComparison.Ordinal) ? e[4..] : e;
            int colon = hp.LastIndexOf(':');
            if (colon < 0 || !int.TryParse(hp[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture, out int port))
            {
                throw new ArgumentException($"'{endpoint}' is not a {what} endpoint: give a unix socket path or HOST:PORT.", nameof(endpoint));
            }

            string host = colon == 0 ? "127.0.0.1" : hp[..colon];
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                s.Connect(host, port);
                return s;
            }
            catch (SocketException x)
            {
                s.Dispose();
                throw new VmiDriverException($"Cannot connect to the {what} socket {host}:{port}: {x.Message}.", (int)x.SocketErrorCode, x);
            }
        }

        if (!File.Exists(e))
        {
            throw new VmiDriverException($"The {what} socket '{e}' does not exist: start QEMU with -qmp unix:{e},server=on,wait=off (libvirt: see docs/qemu.md).");
        }

        var u = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            u.Connect(new UnixDomainSocketEndPoint(e));
            return u;
        }
        catch (SocketException x)
        {
            u.Dispose();
            string hint = x.SocketErrorCode == SocketError.AccessDenied ? " (permission denied: the socket belongs to QEMU's user; run as that user or root)" : "";
            throw new VmiDriverException($"Cannot connect to the {what} socket '{e}': {x.Message}{hint}.", (int)x.SocketErrorCode, x);
        }
    }
}
